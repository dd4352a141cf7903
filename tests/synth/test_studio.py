import json
import math

import numpy as np
import pytest
from scipy import ndimage

from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.render.camera import PinholeCamera
from mmface4d.synth.depth_noise import DepthNoise
from mmface4d.synth.studio import (
    CENTRE_CAMERA,
    SAMPLE_INTRINSICS,
    StudioGroundTruth,
    StudioLighting,
    StudioRig,
    landmark_visibility,
    load_ground_truth,
    project_landmarks,
    render_capture,
    render_capture_frame,
    sample_lighting,
    save_ground_truth,
)

SMALL = 1 / 12  # 160 x 90
MEDIUM = 1 / 4  # 480 x 270


@pytest.fixture(scope="module")
def model():
    return load_face_model("synth")


@pytest.fixture(scope="module")
def face(model):
    """(V, 3) neutral face in the centre camera's frame."""
    return to_camera_frame(model.mean.astype(np.float32))


@pytest.fixture(scope="module")
def face_frames(model, face):
    rig = StudioRig(scale=MEDIUM, seed=1)
    return rig, render_capture_frame(face, model.faces, model.albedo_mean, rig, 5)


def plane(
    yaw_degrees=0.0, size=0.3, depth=0.72, hole=0.0, n=31
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square (optionally with a centred square hole of side ``hole``) facing the centre
    camera, turned ``yaw_degrees`` about the vertical axis through its centre.

    Returns (V, 3) vertices, (F, 3) faces, (3,) unit normal (towards the camera)."""
    grid = np.linspace(-size / 2, size / 2, n)
    x, y = np.meshgrid(grid, grid)
    yaw = math.radians(yaw_degrees)
    verts = np.stack(
        [x.ravel() * math.cos(yaw), y.ravel(), depth + x.ravel() * math.sin(yaw)], -1
    ).astype(np.float32)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            centre = np.array([(grid[c] + grid[c + 1]) / 2, (grid[r] + grid[r + 1]) / 2])
            if hole and np.all(np.abs(centre) < hole / 2):
                continue
            a, b, d = r * n + c, r * n + c + 1, (r + 1) * n + c
            faces += [[a, b, d], [b, (r + 1) * n + c + 1, d]]
    normal = np.array([math.sin(yaw), 0.0, -math.cos(yaw)])
    return verts, np.array(faces), normal


def grey(verts):
    return np.full(verts.shape, 0.6, dtype=np.float32)


def rotation_angle_degrees(a, b):
    cos = (np.trace(a.T @ b) - 1) / 2
    return math.degrees(math.acos(np.clip(cos, -1, 1)))


# ---------------------------------------------------------------- rig


def test_nominal_rig_places_cameras_around_the_face():
    rig = StudioRig()
    poses = rig.nominal_camera_from_world()
    assert poses.shape == (3, 4, 4)
    np.testing.assert_allclose(poses[CENTRE_CAMERA], np.eye(4), atol=1e-12)
    centres = [-pose[:3, :3].T @ pose[:3, 3] for pose in poses]
    for cam in (0, 2):
        rotation = poses[cam, :3, :3]
        axis = rotation[2]  # optical axis in the world
        assert math.degrees(math.acos(axis @ [0, 0, 1])) == pytest.approx(45.0, abs=1e-9)
        assert np.linalg.norm(centres[cam] - rig.pivot) == pytest.approx(0.72, abs=1e-9)
        assert centres[cam][1] == pytest.approx(0.0, abs=1e-12)  # same height as camera 1
        np.testing.assert_allclose(rotation[1], [0, 1, 0], atol=1e-12)  # no tilt, no roll
        # The pivot (the face) lies on the optical axis.
        np.testing.assert_allclose(rotation @ rig.pivot + poses[cam, :3, 3], [0, 0, 0.72])
    assert centres[0][0] > 0.4 and centres[2][0] < -0.4  # 0: subject's left, 2: right
    assert rotation_angle_degrees(poses[0, :3, :3], poses[2, :3, :3]) == pytest.approx(90.0)


def test_side_camera_poses_are_perturbed_reproducibly():
    rig = StudioRig(seed=3)
    nominal, poses = rig.nominal_camera_from_world(), rig.camera_from_world()
    np.testing.assert_array_equal(poses[CENTRE_CAMERA], np.eye(4))
    for cam in (0, 2):
        rotation = poses[cam, :3, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        angle = rotation_angle_degrees(rotation, nominal[cam, :3, :3])
        assert 0.05 < angle < 6.0
        shift = np.linalg.norm(
            rotation.T @ poses[cam, :3, 3] - nominal[cam, :3, :3].T @ nominal[cam, :3, 3]
        )
        assert 1e-4 < shift < 0.06
    np.testing.assert_array_equal(StudioRig(seed=3).camera_from_world(), poses)
    assert not np.allclose(StudioRig(seed=4).camera_from_world(), poses)
    still = StudioRig(pose_jitter_degrees=0, pose_jitter_m=0).camera_from_world()
    np.testing.assert_allclose(still, nominal)


def test_scale_scales_intrinsics_consistently():
    full, small = StudioRig().cameras(), StudioRig(scale=1 / 8).cameras()
    assert StudioRig(scale=1 / 8).image_size == (240, 135)
    assert (small[0].width, small[0].height) == (240, 135)
    point = np.array([[0.05, -0.03, 0.7]])
    for big, little, k in zip(full, small, SAMPLE_INTRINSICS, strict=True):
        assert (big.fx, big.fy, big.cx, big.cy) == k
        assert little.fx == pytest.approx(k[0] / 8) and little.fy == pytest.approx(k[1] / 8)
        assert little.cx == pytest.approx((k[2] + 0.5) / 8 - 0.5)
        uv_big, uv_small = big.project(point).numpy(), little.project(point).numpy()
        np.testing.assert_allclose(uv_small, (uv_big + 0.5) / 8 - 0.5, atol=1e-9)
        np.testing.assert_allclose(np.asarray(little.R), np.asarray(big.R))


def test_default_intrinsics_are_the_real_sample_cameras(shared_data):
    for cam, rig_cam in enumerate(StudioRig().cameras()):
        real = PinholeCamera.from_mmface4d_json(shared_data / f"mmface4d_sample/000337_{cam}.json")
        np.testing.assert_allclose(rig_cam.intrinsic_matrix(), real.intrinsic_matrix())
        assert (rig_cam.width, rig_cam.height) == (real.width, real.height)


def test_rig_rejects_bad_configuration():
    with pytest.raises(InputError, match="scale"):
        StudioRig(scale=0.001)
    with pytest.raises(InputError, match="distance"):
        StudioRig(distance=1.6)
    with pytest.raises(InputError, match="side_angle"):
        StudioRig(side_angle_degrees=95)


# ---------------------------------------------------------------- renders


def test_every_camera_sees_the_face(model, face):
    rig = StudioRig(scale=SMALL, seed=2)
    frames = render_capture_frame(face, model.faces, model.albedo_mean, rig, 0)
    assert len(frames) == 3
    face_colours = []
    for frame in frames:
        assert frame.colour.shape == (90, 160, 3) and frame.colour.dtype == np.uint8
        assert frame.depth.shape == (90, 160) and frame.depth.dtype == np.uint16
        assert frame.mask.dtype == bool and frame.mask.sum() > 150
        rows, cols = np.nonzero(frame.mask)
        assert 20 < rows.mean() < 70 and 40 < cols.mean() < 120  # near the image centre
        skin = frame.colour[frame.mask].mean(0)
        wall = frame.colour[~frame.mask].mean()
        assert 40 < skin.mean() < 230 and 30 < wall < 220  # neither black nor blown out
        assert skin[0] > skin[2]  # skin is redder than it is blue
        assert 600 < np.median(frame.depth[frame.mask & (frame.depth > 0)]) < 800
        assert 1300 < np.median(frame.depth[~frame.mask & (frame.depth > 0)]) < 1600
        face_colours.append(skin)
    assert np.ptp(np.array(face_colours), axis=0).max() > 3  # per-camera light and exposure


def test_depth_noise_on_a_frontal_plane_matches_the_model():
    verts, faces, _ = plane()
    noise = DepthNoise(dropout_rate=0.0)
    rig = StudioRig(scale=MEDIUM)
    frame = render_capture_frame(verts, faces, grey(verts), rig, 11, depth_noise=noise)[1]
    interior = ndimage.binary_erosion(frame.mask, iterations=2)
    assert interior.sum() > 5000
    assert np.all(frame.depth[interior] > 0)  # no holes facing the camera
    np.testing.assert_allclose(frame.depth_true[interior], 0.72, atol=1e-5)
    error = frame.depth[interior] / 1000.0 - frame.depth_true[interior]
    expected = math.sqrt(noise.std(0.72, 0.0) ** 2 + 1e-6 / 12)  # + mm quantisation
    assert noise.std(0.72, 0.0) == pytest.approx(0.0012 + 0.0019 * 0.32**2)
    assert abs(error.mean()) < 1e-4
    assert error.std() == pytest.approx(expected, rel=0.06)


def test_depth_noise_grows_with_the_incidence_angle():
    verts, faces, normal = plane(yaw_degrees=60.0, size=0.25)
    noise = DepthNoise(dropout_rate=0.0)
    rig = StudioRig(scale=MEDIUM)
    frame = render_capture_frame(verts, faces, grey(verts), rig, 12, depth_noise=noise)[1]
    camera = rig.cameras()[1]
    interior = ndimage.binary_erosion(frame.mask, iterations=2)
    rows, cols = np.nonzero(interior)
    rays = np.stack(
        [(cols - camera.cx) / camera.fx, (rows - camera.cy) / camera.fy, np.ones(len(rows))], -1
    )
    theta = np.arccos(np.abs(rays @ normal) / np.linalg.norm(rays, axis=-1))
    assert theta.min() > math.radians(50) and theta.max() < math.radians(70)
    z = frame.depth_true[rows, cols]
    error = frame.depth[rows, cols] / 1000.0 - z
    scale = np.sqrt(noise.std(z, theta) ** 2 + 1e-6 / 12)
    assert (error / scale).std() == pytest.approx(1.0, rel=0.08)
    assert abs((error / scale).mean()) < 0.1
    assert error.std() > 1.3 * noise.std(0.72, 0.0)
    # The hole probability ramps from 70 to 80 degrees: none here.
    assert np.all(frame.depth[interior] > 0)


@pytest.mark.parametrize("yaw", [75.0, 84.0])
def test_grazing_angles_make_holes(yaw):
    verts, faces, normal = plane(yaw_degrees=yaw, size=0.3)
    noise = DepthNoise(dropout_rate=0.0)
    rig = StudioRig(scale=MEDIUM)
    frame = render_capture_frame(verts, faces, grey(verts), rig, 13, depth_noise=noise)[1]
    camera = rig.cameras()[1]
    covered = frame.mask
    assert covered.sum() > 300
    rows, cols = np.nonzero(covered)
    rays = np.stack(
        [(cols - camera.cx) / camera.fx, (rows - camera.cy) / camera.fy, np.ones(len(rows))], -1
    )
    theta = np.degrees(np.arccos(np.abs(rays @ normal) / np.linalg.norm(rays, axis=-1)))
    expected = np.clip((theta - 70.0) / 10.0, 0, 1).mean()
    holes = (frame.depth[rows, cols] == 0).mean()
    assert holes == pytest.approx(expected, abs=0.05)
    if yaw == 84.0:
        assert holes == 1.0


def test_face_depth_has_holes_at_the_rim_and_is_accurate_inside(face_frames):
    rig, frames = face_frames
    noise = DepthNoise()
    centre = frames[CENTRE_CAMERA]
    interior = ndimage.binary_erosion(centre.mask, iterations=3)
    rim = centre.mask & ~ndimage.binary_erosion(centre.mask)
    rim_holes = (centre.depth[rim] == 0).mean()
    inner_holes = (centre.depth[interior] == 0).mean()
    assert rim_holes > 0.2 and inner_holes < 0.02
    valid = interior & (centre.depth > 0)
    error = centre.depth[valid] / 1000.0 - centre.depth_true[valid]
    assert abs(error.mean()) < 2e-4
    assert np.median(np.abs(error)) < 2.5 * noise.std(0.72, 0.0)
    for frame in frames:  # holes at grazing angles in every view
        rim = frame.mask & ~ndimage.binary_erosion(frame.mask)
        assert (frame.depth[rim] == 0).mean() > 0.1


def test_flying_pixels_sit_on_depth_edges(model, face, face_frames):
    rig, frames = face_frames

    def flying(frame):
        """Readings 3 cm or more off the truth (> 8 sigma of the noise anywhere in view)."""
        return (frame.depth > 0) & (np.abs(frame.depth / 1000.0 - frame.depth_true) > 0.03)

    for frame in frames:
        wrong = flying(frame)
        assert wrong.sum() > 5
        square = np.ones((3, 3), dtype=bool)
        silhouette = ndimage.binary_dilation(frame.mask, square) & ~ndimage.binary_erosion(
            frame.mask, square
        )
        assert silhouette[wrong].mean() > 0.5  # mostly the face against the backdrop
        for row, col in zip(*np.nonzero(wrong), strict=True):
            around = frame.depth_true[row - 1 : row + 2, col - 1 : col + 2]
            low, high = around.min(), around.max()
            assert high - low > 0.05  # a depth discontinuity (the nose before a cheek, ...)
            assert low - 0.02 < frame.depth[row, col] / 1000.0 < high + 0.02  # a mixed depth
    calm = DepthNoise(flying_fraction=0.0)
    still = render_capture_frame(face, model.faces, model.albedo_mean, rig, 5, depth_noise=calm)
    assert not any(flying(frame).any() for frame in still)


def test_depth_field_of_view_and_range(model, face, face_frames):
    rig, frames = face_frames
    for frame, camera in zip(frames, rig.cameras(), strict=True):
        cols = np.arange(camera.width)
        outside = np.abs(cols - camera.cx) / camera.fx > math.tan(math.radians(37.5)) + 0.01
        assert outside.any() and np.all(frame.depth[:, outside] == 0)
        assert (frame.depth[:, ~outside] > 0).mean() > 0.9
    near = DepthNoise(max_range_m=0.9)
    frame = render_capture_frame(face, model.faces, model.albedo_mean, rig, 5, depth_noise=near)[1]
    assert np.all(frame.depth <= 900)
    backdrop = ~ndimage.binary_dilation(frame.mask, np.ones((3, 3), dtype=bool))
    assert np.all(frame.depth[backdrop] == 0)  # the backdrop is out of range
    assert (frame.depth[frame.mask] > 0).mean() > 0.8


def test_openings_in_the_mesh_show_a_cavity_not_the_backdrop():
    verts, faces, _ = plane(size=0.3, hole=0.06)
    rig = StudioRig(scale=MEDIUM)
    frame = render_capture_frame(verts, faces, grey(verts), rig, 3)[1]
    hole = ndimage.binary_fill_holes(frame.mask) & ~frame.mask
    assert hole.sum() > 100
    np.testing.assert_allclose(frame.depth_true[hole], 0.75, atol=1e-4)
    assert frame.colour[hole].mean() < 40  # dark
    assert np.median(frame.depth[hole]) == pytest.approx(750, abs=3)


def test_capture_is_reproducible_and_streams(model, face):
    rig = StudioRig(scale=SMALL, seed=5)
    verts = np.stack([face, face + [0.0, 0.004, 0.0], face + [0.003, 0.0, 0.01]])
    args = (verts, model.faces, model.albedo_mean, rig)
    first = list(render_capture(*args, 7, frames_per_batch=3))
    again = list(render_capture(*args, 7, frames_per_batch=1))
    other = list(render_capture(*args, 8, frames_per_batch=3))
    assert len(first) == 3 and all(len(frame) == 3 for frame in first)
    for a, b, c in zip(first, again, other, strict=True):
        for x, y, z in zip(a, b, c, strict=True):
            np.testing.assert_array_equal(x.colour, y.colour)
            np.testing.assert_array_equal(x.depth, y.depth)
            np.testing.assert_array_equal(x.mask, y.mask)
            assert not np.array_equal(x.depth, z.depth)
    # The face moves between frames: the truth follows it.
    assert not np.array_equal(first[0][1].depth_true, first[2][1].depth_true)
    lighting = sample_lighting(rig, 1)
    assert lighting.sh.shape == (3, 27) and lighting.gains.shape == (3, 3)
    assert not np.allclose(lighting.sh[0], lighting.sh[1])
    np.testing.assert_array_equal(sample_lighting(rig, 1).sh, lighting.sh)


# ---------------------------------------------------------------- landmarks


def test_landmarks_project_onto_the_face(model, face, face_frames):
    rig, frames = face_frames
    cameras = rig.cameras()
    for cam, (camera, frame) in enumerate(zip(cameras, frames, strict=True)):
        pixels = project_landmarks(face, model.landmarks, camera)
        assert pixels.shape == (68, 2)
        # Reference: K (R X + t), divided by z.
        points = face[model.landmarks].astype(np.float64) @ np.asarray(camera.R).T + camera.t
        homogeneous = points @ camera.intrinsic_matrix().T
        np.testing.assert_allclose(pixels, homogeneous[:, :2] / homogeneous[:, 2:], atol=1e-6)
        seen = landmark_visibility(face, model.landmarks, camera, frame.depth_true)
        u, v = np.round(pixels[seen]).astype(int).T
        assert np.all(frame.mask[v, u])
        if cam == CENTRE_CAMERA:  # all but the inner eye corners (on the eye openings)
            assert seen.sum() >= 64
        else:
            assert 40 <= seen.sum() < 68  # the far side hides behind the nose and cheek


def test_landmark_noise_has_the_documented_std(model, face):
    camera = StudioRig(scale=MEDIUM).cameras()[1]
    verts = np.repeat(face[None], 200, axis=0)
    exact = project_landmarks(verts, model.landmarks, camera)
    noisy = project_landmarks(verts, model.landmarks, camera, noise_std_px=0.5, rng=3)
    assert exact.shape == noisy.shape == (200, 68, 2)
    error = noisy - exact
    assert error.std() == pytest.approx(0.5, rel=0.03) and abs(error.mean()) < 0.01
    with pytest.raises(InputError, match="rng"):
        project_landmarks(face, model.landmarks, camera, noise_std_px=1.0)
    with pytest.raises(InputError, match="landmark indices"):
        project_landmarks(face, [0, len(face)], camera)


# ---------------------------------------------------------------- ground truth


def test_ground_truth_round_trip(tmp_path, model, face):
    rig = StudioRig(scale=SMALL, seed=4)
    lighting = sample_lighting(rig, 9)
    verts = np.stack([face, face + 0.001])
    truth = StudioGroundTruth.create(rig, verts, model.faces, lighting, seed=9)
    path = save_ground_truth(tmp_path / "rec_studio.npz", truth)
    meta = json.loads((tmp_path / "rec_studio.json").read_text())
    assert "centre camera" in meta["world"] and meta["depth_noise"]["axial_base_m"] == 0.0012
    loaded = load_ground_truth(path)
    assert loaded.rig == rig and loaded.depth_noise == truth.depth_noise
    assert loaded.colour_noise == truth.colour_noise and loaded.seed == 9
    assert loaded.image_size == (160, 90)
    np.testing.assert_array_equal(loaded.vertices, verts)
    np.testing.assert_array_equal(loaded.faces, model.faces)
    np.testing.assert_array_equal(loaded.camera_from_world, rig.camera_from_world())
    np.testing.assert_array_equal(loaded.lighting.sh, lighting.sh)
    for mine, theirs in zip(loaded.cameras(), rig.cameras(), strict=True):
        np.testing.assert_allclose(mine.intrinsic_matrix(), theirs.intrinsic_matrix())
        np.testing.assert_allclose(np.asarray(mine.R), np.asarray(theirs.R))
        np.testing.assert_allclose(np.asarray(mine.t), np.asarray(theirs.t))
    with pytest.raises(InputError, match=".npz"):
        save_ground_truth(tmp_path / "rec.json", truth)
    (tmp_path / "rec_studio.json").unlink()
    with pytest.raises(InputError, match=".json"):
        load_ground_truth(path)


# ---------------------------------------------------------------- user mistakes


def test_user_mistakes_raise_input_errors(model, face):
    rig = StudioRig(scale=SMALL)
    args = (model.faces, model.albedo_mean, rig, 0)
    with pytest.raises(InputError, match=r"\(T, V, 3\)"):
        next(render_capture(face, *args))
    with pytest.raises(InputError, match=r"\(V, 3\) for one frame"):
        render_capture_frame(face[None], *args)
    with pytest.raises(InputError, match="centre camera"):
        render_capture_frame(model.mean, *args)  # model frame, not camera frame
    with pytest.raises(InputError, match="albedo"):
        render_capture_frame(face, model.faces, model.albedo_mean[:10], rig, 0)
    bad_light = StudioLighting(np.zeros((2, 27)), np.ones((2, 3)), np.ones(2))
    with pytest.raises(InputError, match="lighting"):
        render_capture_frame(face, *args, lighting=bad_light)
    with pytest.raises(InputError, match="rng"):
        render_capture_frame(face, model.faces, model.albedo_mean, rig, "seed")
