"""Extrinsic calibration from faces: landmark lifting, robust initialisation, face point clouds,
point-to-plane ICP (checked against a brute-force reference), and the whole pipeline on studio
captures with known camera poses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from mmface4d.capture import CENTRE_CAMERA, CameraCalibration, Capture, write_raw_recording
from mmface4d.capture import calibration as calib
from mmface4d.capture.calibration import (
    CalibrationConfig,
    align_landmarks,
    calibrate,
    calibrate_frames,
    initial_extrinsics,
    lift_landmarks,
    pose_error,
)
from mmface4d.capture.calibration_frames import select_frames
from mmface4d.capture.calibration_io import load_calibration, save_calibration
from mmface4d.capture.icp import face_point_cloud, icp_point_to_plane, landmark_box
from mmface4d.capture.landmarks import FrameLandmarks
from mmface4d.cli import main
from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.facemodel.landmark_maps import HRNET98_OF_IBUG68, to_ibug68
from mmface4d.geometry import vertex_normals
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.synth.studio import (
    LANDMARK_NOISE_PX,
    StudioRig,
    project_landmarks,
    render_capture,
)

SCALE = 1 / 4  # 480 x 270: the face spans ~50 pixels
FRAMES = 4


def camera(width=320, height=240, f=300.0, distortion=None) -> CameraCalibration:
    k = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    return CameraCalibration(k, width, height, distortion=distortion)


def rigid(rotvec_degrees, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_rotvec(np.radians(rotvec_degrees)).as_matrix()
    matrix[:3, 3] = translation
    return matrix


def apply(matrix, points):
    return points @ matrix[:3, :3].T + matrix[:3, 3]


@pytest.fixture(scope="module")
def model():
    return load_face_model("synth")


@pytest.fixture(scope="module")
def face_surface(model):
    """(V, 3) synth face in its model frame (centred near the origin) and (V, 3) normals."""
    verts = torch.as_tensor(model.mean, dtype=torch.float64)
    normals = vertex_normals(verts[None], torch.as_tensor(model.faces))[0]
    return verts.numpy(), normals.numpy()


def sample_surface(model, count, rng):
    """Points drawn uniformly over the face mesh's triangles (not its vertices)."""
    tri = model.mean.astype(np.float64)[model.faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(tri), count, p=area / area.sum())
    a, b = rng.random((2, count, 1))
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    t = tri[pick]
    return t[:, 0] + a * (t[:, 1] - t[:, 0]) + b * (t[:, 2] - t[:, 0])


# ---------------------------------------------------------------------- landmarks
def test_lift_landmarks_back_projects_with_the_depth():
    cam = camera()
    depth = np.full((240, 320), 800, np.uint16)
    points = np.array([[100.0, 50.0], [200.4, 180.6], [159.5, 119.5]])
    lifted, valid = lift_landmarks(points, depth, cam)
    assert valid.all()
    expected = np.column_stack([(points - [159.5, 119.5]) / 300.0, np.ones(3)]) * 0.8
    np.testing.assert_allclose(lifted, expected, atol=1e-12)


def test_lift_landmarks_round_trips_through_a_distorted_lens():
    cam = camera(distortion=[0.1, -0.05, 0.001, -0.002, 0.01])
    depth = np.full((240, 320), 750, np.uint16)
    points = np.array([[20.0, 30.0], [300.0, 200.0], [160.0, 120.0]])
    lifted, valid = lift_landmarks(points, depth, cam)
    assert valid.all()
    np.testing.assert_allclose(lifted[:, 2], 0.75)
    np.testing.assert_allclose(cam.project(lifted)[0], points, atol=1e-6)


def test_lift_landmarks_refuses_unreliable_depth():
    cam = camera()
    depth = np.full((240, 320), 800, np.uint16)
    depth[:, 250:] = 1500  # a step: background on the right
    depth[100:110, 100:110] = 0  # a hole
    depth[30, 30] = 900  # one odd pixel: outvoted by the median
    points = np.array(
        [
            [50.0, 50.0],  # fine
            [105.0, 105.0],  # in the hole
            [250.0, 60.0],  # straddles the step
            [np.nan, 10.0],  # missing
            [-5.0, 10.0],  # outside the image
            [290.0, 60.0],  # on the background
            [30.0, 30.0],  # the odd pixel
        ]
    )
    lifted, valid = lift_landmarks(points, depth, cam)
    assert valid.tolist() == [True, False, False, False, False, True, True]
    assert np.isnan(lifted[~valid]).all()
    assert lifted[6, 2] == pytest.approx(0.8)
    _, banded = lift_landmarks(points, depth, cam, band_m=0.1)
    assert banded.tolist() == [True, False, False, False, False, False, True]
    with pytest.raises(InputError, match="uint16"):
        lift_landmarks(points, depth.astype(np.float32), cam)
    with pytest.raises(InputError, match=r"\(K, 2\)"):
        lift_landmarks(points[:, :1], depth, cam)


def test_initial_extrinsics_is_exact_despite_outliers(model):
    rng = np.random.default_rng(0)
    ref = to_camera_frame(model.mean[model.landmarks]).astype(np.float64)
    truth = rigid([3.0, -44.0, 2.0], [0.5, 0.01, 0.2])  # a side camera, reference-from-camera
    cam = apply(np.linalg.inv(truth), ref)
    bad = rng.choice(68, 15, replace=False)
    cam[bad] += rng.normal(0, 0.05, (15, 3))  # 22% gross outliers (hidden or wrong landmarks)
    cam[[3, 7]] = np.nan
    alignment = align_landmarks(ref, cam)
    assert alignment.pairs == 66
    assert not alignment.inliers[np.searchsorted(np.setdiff1d(np.arange(68), [3, 7]), bad)].any()
    np.testing.assert_allclose(alignment.transform, truth, atol=1e-9)
    np.testing.assert_array_equal(initial_extrinsics(ref, cam), alignment.transform)


def test_initial_extrinsics_from_noisy_stacked_frames(model):
    rng = np.random.default_rng(1)
    truth = rigid([-2.0, 45.0, 1.0], [-0.5, 0.0, 0.2])
    frames = []
    for _ in range(3):  # the head turns between frames
        pose = rigid(rng.normal(0, 8, 3), rng.normal(0, 0.01, 3))
        frames.append(apply(pose, to_camera_frame(model.mean[model.landmarks]).astype(float)))
    ref = np.stack(frames)
    cam = apply(np.linalg.inv(truth), ref)
    ref = ref + rng.normal(0, 0.002, ref.shape)  # ~2 px landmark and ~1.5 mm depth noise
    cam = cam + rng.normal(0, 0.002, cam.shape)
    cam[:, :8] += [0.0, 0.0, 0.03]  # a hidden jaw contour lifted onto the cheek
    error = pose_error(initial_extrinsics(ref, cam), truth)
    assert error.rotation_degrees < 2.0
    alignment = align_landmarks(ref, cam)
    assert alignment.pairs == 3 * 68 and alignment.inliers.sum() >= 3 * 60
    assert 0.001 < alignment.rmse_m < 0.006
    with pytest.raises(InputError, match="valid pairs"):
        initial_extrinsics(ref[0, :5], cam[0, :5])
    with pytest.raises(InputError, match="one shape"):
        initial_extrinsics(ref, cam[0])


# ---------------------------------------------------------------------- point clouds
def test_face_point_cloud_keeps_the_surface_and_its_normals():
    cam = camera()
    rows, cols = np.mgrid[0:240, 0:320]
    x = (cols - 159.5) / 300.0
    # the plane z = 0.8 + 0.3 X in the camera frame, i.e. z = 0.8 / (1 - 0.3 x) along each ray
    z = 0.8 / (1 - 0.3 * x)
    depth = np.round(z * 1000).astype(np.uint16)
    depth[:, :40] = 1600  # background wall
    depth[:, 40] = 1200  # flying pixels between the wall and the plane
    depth[60:70, 200:210] = 0  # a hole
    full = face_point_cloud(depth, cam, depth_band=0.2, max_points=10**6, denoise_radius=0.0)
    assert 60000 < len(full) < 240 * 279 - 100  # the plane minus its edges and the hole
    cloud = face_point_cloud(depth, cam, depth_band=0.2, denoise_radius=0.0)
    assert 5000 <= len(cloud) <= 10000  # subsampled to max_points
    normal = np.array([0.3, 0.0, -1.0]) / math.hypot(0.3, 1.0)
    plane_z = 0.8 + 0.3 * cloud.points[:, 0]
    assert np.abs(cloud.points[:, 2] - plane_z).max() < 0.0012  # millimetre quantisation
    assert (cloud.points[:, 2] < 1.0).all()  # no wall, no flying pixel
    u = cloud.points[:, 0] / cloud.points[:, 2] * 300 + 159.5
    assert u.min() > 42  # the flying column and its neighbours are dropped
    np.testing.assert_allclose(cloud.normals @ normal, 1.0, atol=0.02)
    box = face_point_cloud(depth, cam, box=(100, 50, 150, 90), max_points=10**6)
    pixels = cam.project(box.points)[0]
    assert (pixels[:, 0] > 99).all() and (pixels[:, 0] < 150).all()
    mask = np.zeros((240, 320), bool)
    mask[:120] = True
    masked = face_point_cloud(depth, cam, mask=mask, max_points=10**6)
    assert (cam.project(masked.points)[0][:, 1] < 120).all()
    assert len(face_point_cloud(np.zeros((240, 320), np.uint16), cam)) == 0
    with pytest.raises(InputError, match="box"):
        face_point_cloud(depth, cam, box=(10, 10, 5, 20))


def test_landmark_box_grows_and_clips():
    points = np.array([[10.0, 20.0], [30.0, 60.0], [np.nan, np.nan]])
    assert landmark_box(points, 0.5, (100, 100)) == (0, 0, 41, 81)
    assert landmark_box(points, 0.0, (25, 100)) == (10, 20, 25, 61)
    with pytest.raises(InputError, match="2 finite"):
        landmark_box(points[1:], 0.1, (100, 100))


# ---------------------------------------------------------------------- ICP
def test_icp_recovers_a_known_transform_from_a_perturbed_start(model, face_surface):
    target, normals = face_surface
    rng = np.random.default_rng(2)
    truth = rigid([2.0, -3.0, 1.5], [0.012, -0.008, 0.01])  # target-from-source
    source = apply(np.linalg.inv(truth), sample_surface(model, 6000, rng))
    result = icp_point_to_plane(source, target, normals, np.eye(4))
    error = pose_error(result.transform, truth)
    assert error.rotation_degrees < 0.1 and error.translation_m < 0.0005
    assert result.converged and result.iterations < 30
    assert result.inliers > 5000 and result.rmse < 0.0003
    # and from a start on the other side of the truth, with several frames
    second = apply(np.linalg.inv(truth), sample_surface(model, 3000, rng))
    init = rigid([-1.0, 2.0, 0.0], [0.0, 0.005, -0.005]) @ truth
    both = icp_point_to_plane([source, second], [target] * 2, [normals] * 2, init)
    error = pose_error(both.transform, truth)
    assert error.rotation_degrees < 0.1 and error.translation_m < 0.0005


def _reference_icp(source, target, normals, init, iterations=60):
    """Brute-force ICP: all-pairs nearest neighbours, every pair kept, and the point-to-plane
    objective minimised exactly over (rotation vector, translation) by scipy's least squares."""
    params = np.concatenate([Rotation.from_matrix(init[:3, :3]).as_rotvec(), init[:3, 3]])

    def transform(x):
        return rigid(np.degrees(x[:3]), x[3:])

    for _ in range(iterations):
        moved = apply(transform(params), source)
        nearest = ((moved[:, None] - target[None]) ** 2).sum(-1).argmin(1)
        q, n = target[nearest], normals[nearest]
        fit = least_squares(
            lambda x, q=q, n=n: ((apply(transform(x), source) - q) * n).sum(1), params
        )
        if np.abs(fit.x - params).max() < 1e-10:
            break
        params = fit.x
    return transform(params)


def test_icp_matches_a_brute_force_reference(model, face_surface):
    target, normals = face_surface
    rng = np.random.default_rng(3)
    keep = rng.choice(len(target), 1500, replace=False)
    target, normals = target[keep], normals[keep]
    truth = rigid([1.0, -1.5, 0.5], [0.004, 0.003, -0.002])
    source = apply(np.linalg.inv(truth), sample_surface(model, 400, rng))
    source += rng.normal(0, 0.0005, source.shape)  # noise: the optimum is not the truth
    expected = _reference_icp(source, target, normals, np.eye(4))
    fast = icp_point_to_plane(
        source,
        target,
        normals,
        np.eye(4),
        iterations=100,
        max_correspondence=1.0,
        min_correspondence=1.0,
        trim=1.0,
        tolerance=(1e-12, 1e-12),
    )
    error = pose_error(fast.transform, expected)
    assert error.rotation_degrees < 1e-4 and error.translation_m < 1e-6


def test_icp_without_overlap_stops_and_says_so(face_surface):
    target, normals = face_surface
    far = target + [1.0, 0.0, 0.0]
    result = icp_point_to_plane(far, target, normals, np.eye(4))
    assert result.inliers == 0 and not result.converged and math.isnan(result.rmse)
    np.testing.assert_array_equal(result.transform, np.eye(4))
    with pytest.raises(InputError, match="normals"):
        icp_point_to_plane(target, target, normals[:10])
    with pytest.raises(InputError, match="frames"):
        icp_point_to_plane([target, target], [target], [normals])


# ---------------------------------------------------------------------- the studio, end to end
def _studio(model, seed, scale=SCALE, frames=FRAMES, motion=1.0):
    """Render a moving head with the studio (head pose std 4, 8, 2 degrees and 1 cm, times
    ``motion``); return the rig, per-frame camera frames and noisy iBUG-68 landmarks of every
    camera."""
    rng = np.random.default_rng(seed)
    face = to_camera_frame(model.mean.astype(np.float64))
    pivot = face.mean(0) + [0.0, 0.0, 0.05]
    verts = np.stack(
        [
            apply(
                rigid(motion * rng.normal(0, [4, 8, 2]), motion * rng.normal(0, 0.01, 3)),
                face - pivot,
            )
            + pivot
            for _ in range(frames)
        ]
    ).astype(np.float32)
    rig = StudioRig(scale=scale, seed=seed)
    shots = list(render_capture(verts, model.faces, model.albedo_mean, rig, seed))
    noise = LANDMARK_NOISE_PX * scale
    landmarks = [
        [project_landmarks(v, model.landmarks, cam, noise, rng) for cam in rig.cameras()]
        for v in verts
    ]
    return rig, shots, landmarks


@pytest.fixture(scope="module")
def studio_capture(model, tmp_path_factory):
    """A studio capture written in the raw layout with 98-point landmark files."""
    rig, shots, landmarks = _studio(model, seed=4)
    folder = tmp_path_factory.mktemp("studio")
    calibrations = [
        CameraCalibration.from_pinhole(c).with_extrinsics(np.eye(4)) for c in rig.cameras()
    ]
    hrnet = []
    for cam in range(3):
        points = np.stack([frame[cam] for frame in landmarks])
        full = np.repeat(points.mean(axis=1, keepdims=True), 98, axis=1)  # unmapped points
        full[:, HRNET98_OF_IBUG68] = points
        hrnet.append(full)
    write_raw_recording(
        folder,
        "000001",
        calibrations,
        colour=[np.stack([s[c].colour for s in shots]) for c in range(3)],
        depth=[np.stack([s[c].depth for s in shots]) for c in range(3)],
        landmarks=hrnet,
        crf=28,
        preset="ultrafast",
    )
    return rig, folder


def _truth(rig):
    return [np.linalg.inv(pose) for pose in rig.camera_from_world()]


def test_calibrate_a_studio_capture_from_its_files(studio_capture):
    rig, folder = studio_capture
    capture = Capture.from_raw(folder, "000001")
    result = calibrate(capture, frames=FRAMES)
    assert result.landmarks == "file" and result.frames == tuple(range(FRAMES))
    assert result.reference == CENTRE_CAMERA == capture.reference_camera
    np.testing.assert_array_equal(result.extrinsics[CENTRE_CAMERA], np.eye(4))
    truth = _truth(rig)
    for cam in (0, 2):
        found = result.cameras[cam]
        initial, refined = (pose_error(m, truth[cam]) for m in (found.initial, found.extrinsics))
        assert initial.rotation_degrees < 4.0  # landmarks alone: a few degrees
        # At 480x270 the face spans ~50 pixels; the strict 0.5 degree / 2 mm target is met at
        # 960x540 and 1920x1080 (benchmarks/bench_capture.py).
        assert found.refined and refined.rotation_degrees < 0.5 and refined.translation_m < 0.004
        assert refined.rotation_degrees < initial.rotation_degrees
        assert found.landmark_inliers >= 0.5 * found.landmark_pairs > 50
        assert 0.0002 < found.icp_rmse_m < 0.003 and found.icp_inliers > 1000
    calibrated = capture.with_extrinsics(result.extrinsics)
    np.testing.assert_allclose(calibrated.calibrations[0].extrinsics, result.extrinsics[0])


def test_calibration_meets_the_target_at_half_resolution(model):
    """960x540, five frames, the studio's depth noise and 1 px landmark noise: within 0.5
    degrees and 2 mm of the true poses (the issue's target)."""
    rig, shots, landmarks = _studio(model, seed=0, scale=0.5, frames=5)
    calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
    depths = [[c.depth for c in shot] for shot in shots]
    result = calibrate_frames(calibrations, depths, landmarks)
    for cam in (0, 2):
        error = pose_error(result.cameras[cam].extrinsics, _truth(rig)[cam])
        assert error.rotation_degrees < 0.5 and error.translation_m < 0.002


def test_calibration_meets_the_target_with_a_still_head(model):
    """The issue's failure: a head that never moves (here: not at all) leaves one-way trimmed
    ICP over five frames 3.4 mm off on camera 2 of this rig; the symmetric, untrimmed ICP over
    the default ten frames stays within 0.5 degrees and 2 mm."""
    rig, shots, landmarks = _studio(model, seed=0, scale=0.5, frames=10, motion=0.0)
    calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
    depths = [[c.depth for c in shot] for shot in shots]
    result = calibrate_frames(calibrations, depths, landmarks)
    for cam in (0, 2):
        error = pose_error(result.cameras[cam].extrinsics, _truth(rig)[cam])
        assert result.cameras[cam].refined
        assert error.rotation_degrees < 0.5 and error.translation_m < 0.002


def test_symmetric_refinement_averages_both_directions(model):
    """Symmetric ICP: the mean of the camera-onto-reference pose and the inverse of the
    reference-onto-camera pose; one-way ICP is the first alone."""
    half = calib._mean_pose(np.eye(4), rigid([0.0, 0.0, 2.0], [0.002, 0.0, -0.004]))
    np.testing.assert_allclose(half, rigid([0.0, 0.0, 1.0], [0.001, 0.0, -0.002]), atol=1e-12)
    rig, shots, landmarks = _studio(model, seed=6, frames=2)
    calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
    depths = [[c.depth for c in shot] for shot in shots]
    one_way = calibrate_frames(
        calibrations, depths, landmarks, config=CalibrationConfig(symmetric_icp=False)
    )
    both = calibrate_frames(calibrations, depths, landmarks)
    for cam in (0, 2):
        forward = one_way.cameras[cam].extrinsics
        assert both.cameras[cam].refined and one_way.cameras[cam].refined
        np.testing.assert_array_equal(both.cameras[cam].initial, one_way.cameras[cam].initial)
        change = pose_error(both.cameras[cam].extrinsics, forward)
        assert 0 < change.rotation_degrees < 0.5 and change.translation_m < 0.005


def test_calibration_records_frames_without_a_face(model):
    rig, shots, landmarks = _studio(model, seed=5, frames=3)
    calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
    landmarks[1][2] = None  # camera 2 found no face in frame 1
    landmarks[2][0] = np.full((68, 2), np.nan)  # camera 0 neither in frame 2
    depths = [[c.depth for c in shot] for shot in shots]
    result = calibrate_frames(calibrations, depths, landmarks, frame_indices=[10, 20, 30])
    failed = {(f.frame, f.camera, f.stage) for f in result.failures}
    assert failed == {(20, 2, "landmarks"), (30, 0, "landmarks")}
    assert result.cameras[2].frames == (10, 30) and result.cameras[0].frames == (10, 20)
    truth = _truth(rig)
    for cam in (0, 2):
        assert pose_error(result.cameras[cam].extrinsics, truth[cam]).rotation_degrees < 0.6
    # a camera that never sees the face cannot be calibrated: one clear error
    for frame in landmarks:
        frame[0] = None
    with pytest.raises(InputError, match="camera 0: no landmark initialisation"):
        calibrate_frames(calibrations, depths, landmarks)


def test_calibrate_with_detected_landmarks(studio_capture, model, monkeypatch):
    """The detection path, with a stand-in for MediaPipe that reports the true landmarks."""
    rig, folder = studio_capture
    capture = Capture.from_raw(folder, "000001")
    chosen = [0, 1, 3]
    files = [capture.landmarks(c)[:, HRNET98_OF_IBUG68] for c in range(3)]
    calls = []

    class FakeDetection:
        def __init__(self, points):
            self.points = points

        def ibug68(self):
            return self.points

    class FakeDetector:
        def __init__(self, mode):
            assert mode == "image"

        def detect(self, image):
            calls.append(image.shape)
            cam, frame = (len(calls) - 1) % 3, chosen[(len(calls) - 1) // 3]
            if frame == 1 and cam == 1:
                return None  # the centre camera misses the face in frame 1
            return FakeDetection(files[cam][frame])

        def close(self):
            calls.append("closed")

    monkeypatch.setattr("mmface4d.capture.landmarks.LandmarkDetector", FakeDetector)
    result = calibrate(capture, frames=chosen, landmarks="detect")
    # one detector per camera (FrameLandmarks), each closed at the end
    assert calls[-3:] == ["closed"] * 3 and len(calls) == 3 * 3 + 3
    assert calls[0] == (270, 480, 3)
    assert result.landmarks == "detect"
    assert [(f.frame, f.camera, f.stage) for f in result.failures] == [(1, 1, "landmarks")]
    for cam in (0, 2):
        assert pose_error(result.extrinsics[cam], _truth(rig)[cam]).rotation_degrees < 0.6


def test_calibrate_rejects_bad_arguments(studio_capture, tmp_path):
    _, folder = studio_capture
    capture = Capture.from_raw(folder, "000001")
    with pytest.raises(InputError, match="landmarks"):
        calibrate(capture, landmarks="guess")
    with pytest.raises(InputError, match="frames"):
        calibrate(capture, frames=[0, 99])
    with pytest.raises(InputError, match="frames: expected a positive count"):
        calibrate(capture, frames=0)
    # a copy without landmark files: 'file' says how to proceed
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in folder.iterdir():
        if path.suffix != ".pkl":
            (bare / path.name).write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="no landmark file.*detect"):
        calibrate(Capture.from_raw(bare, "000001"), landmarks="file")


# ---------------------------------------------------------------------- files and CLI
def test_calibration_file_round_trip_and_cli(studio_capture, tmp_path, capsys):
    rig, folder = studio_capture
    out = tmp_path / "calib.json"
    assert main(["calibrate", str(folder), "000001", "-o", str(out), "--frames", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["landmarks"] == "file"
    assert [c["camera"] for c in summary["cameras"]] == [0, 2]
    assert all(c["refined"] and c["icp_rmse_mm"] > 0 for c in summary["cameras"])
    loaded = load_calibration(out)
    centre = to_ibug68(Capture.from_raw(folder, "000001").landmarks(1)[..., :2], "hrnet98")
    assert len(loaded.cameras) == 3 and loaded.frames == tuple(select_frames(centre, 3))
    for cam in (0, 2):
        assert pose_error(loaded.extrinsics[cam], _truth(rig)[cam]).rotation_degrees < 0.6
    again = tmp_path / "again.json"
    save_calibration(again, loaded)
    assert json.loads(again.read_text()) == json.loads(out.read_text())
    reference = json.loads(out.read_text())["cameras"][CENTRE_CAMERA]
    assert reference["extrinsics"] == np.eye(4).tolist() and reference["icp_rmse_m"] is None
    # user mistakes: one line, exit status 2
    assert main(["calibrate", str(folder), "000001", "-o", str(out), "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path), "nothing", "-o", str(out)]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "mmface4d-calibration/1", "cameras": [{}]}))
    with pytest.raises(InputError, match="malformed"):
        load_calibration(bad)
    document = json.loads(out.read_text())
    document["cameras"][0]["extrinsics"][0][0] = 2.0
    bad.write_text(json.dumps(document))
    with pytest.raises(InputError, match="rigid"):
        load_calibration(bad)
    with pytest.raises(InputError, match=r"\.json"):
        save_calibration(tmp_path / "calib.txt", loaded)


def test_file_landmarks_pad_short_files_with_nan():
    """HRNet-98 files as (T, C, 68, 2) iBUG-68; frames a file lacks are NaN (not usable)."""
    rng = np.random.default_rng(0)
    short, full = rng.random((3, 98, 3)), rng.random((5, 98, 2))

    class Files:  # the part of a Capture that FrameLandmarks reads
        num_cameras, sources = 2, ("a", "b")

        def landmarks(self, camera):
            return [short, full][camera]

    marks = FrameLandmarks(Files(), "file").stacked(5)
    assert marks.shape == (5, 2, 68, 2)
    np.testing.assert_array_equal(marks[:3, 0], short[:, HRNET98_OF_IBUG68, :2])
    np.testing.assert_array_equal(marks[:, 1], to_ibug68(full, "hrnet98"))
    assert np.isnan(marks[3:, 0]).all()


def test_config_is_used():
    """A configuration field reaches the point cloud (a smaller cap gives fewer points)."""
    assert CalibrationConfig().max_points == 10000
    cam = camera()
    depth = np.full((240, 320), 800, np.uint16)
    lifted = np.array([[0.0, 0.0, 0.8], [0.1, 0.1, 0.8]])
    points = np.array([[10.0, 10.0], [300.0, 230.0]])
    few = calib._frame_cloud(depth, cam, points, lifted, CalibrationConfig(max_points=500))
    many = calib._frame_cloud(depth, cam, points, lifted, CalibrationConfig(max_points=50000))
    assert len(few) <= 500 < 40000 < len(many)
