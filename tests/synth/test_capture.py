"""Filming synthetic recordings into the MMFace4D raw layout, read back with the real-data
reader (:meth:`Capture.from_raw`) and scored against the studio's ground truth."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmface4d import cli
from mmface4d.capture import Capture
from mmface4d.capture.layout import read_landmarks
from mmface4d.data.sequence import MeshSequence, save_sequence
from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.facemodel.landmark_maps import HRNET98_OF_IBUG68
from mmface4d.synth.capture import (
    BROW_THICKNESS,
    capture,
    hrnet98_from_ibug68,
    is_complete,
    plan_capture,
)
from mmface4d.synth.corpus import corpus
from mmface4d.synth.studio import LANDMARK_NOISE_PX, load_ground_truth, project_landmarks

SCALE = 1 / 8  # 240 x 135, cropped to 240 x 134
FRAMES = 10
OTHER_30 = np.setdiff1d(np.arange(98), HRNET98_OF_IBUG68)


@pytest.fixture(scope="module")
def model():
    return load_face_model("synth")


@pytest.fixture(scope="module")
def filmed(tmp_path_factory):
    """A one-recording corpus and its capture: (corpus dir, capture dir, key, seconds)."""
    root = tmp_path_factory.mktemp("capture")
    source = root / "corpus"
    corpus(source, subjects=1, sentences=1, lang="en", seed=2, workers=1, progress=False)
    start = time.perf_counter()
    out = capture(source, root / "out", scale=SCALE, frames=FRAMES, seed=4, progress=False)
    seconds = time.perf_counter() - start
    (key,) = json.loads((out / "capture.json").read_text())["recordings"]
    return source, out, key, seconds


def _open(out, key):
    subject, name = key.split("/")
    return Capture.from_raw(out / subject, name), load_ground_truth(
        out / subject / f"{name}_gt_capture.npz"
    )


def test_reads_back_as_a_real_recording(filmed, model):
    source, out, key, _ = filmed
    cap, truth = _open(out, key)
    assert cap.num_cameras == 3 and len(cap) == FRAMES and cap.fps == 30.0
    assert [(c.width, c.height) for c in cap.calibrations] == [(240, 134)] * 3
    assert truth.image_size == (240, 134)
    assert truth.vertices.shape == (FRAMES, model.num_vertices, 3)
    # the json files hold the true intrinsics but, like the dataset's, no extrinsics
    for calibration, k in zip(cap.calibrations, truth.intrinsics, strict=True):
        np.testing.assert_allclose(calibration.intrinsics, k, atol=1e-6)
        np.testing.assert_array_equal(calibration.extrinsics, np.eye(4))
    np.testing.assert_allclose(truth.camera_from_world[1], np.eye(4), atol=1e-12)
    assert not np.allclose(truth.camera_from_world[0], truth.camera_from_world[2])
    speech = cap.audio()
    assert speech is not None and abs(len(speech) - FRAMES / 30 * 16000) <= 1  # cut to the video
    frames = list(cap.frames())
    assert len(frames) == FRAMES
    for frame in frames[:1]:
        for colour, depth in zip(frame.colour, frame.depth, strict=True):
            assert colour.shape == (134, 240, 3) and depth.shape == (134, 240)
            assert 30 < colour.mean() < 220 and colour.std() > 5  # a picture, not black
            # mostly the backdrop (1.5 m straight ahead, a curved wall), the face ~0.7 m away
            valid = depth[depth > 0]
            assert 1100 < np.median(valid) < 1600 and 600 < valid.min() < 800


def _vertex_depth(points_cam: np.ndarray, pixels: np.ndarray, width: int, height: int):
    """(H, W) mean depth in mm of the vertices falling in each pixel, where they lie on one
    surface (at least 2, spanning < 12 mm; else 0): the slow, obvious reference of the
    rasterised depth (for a locally flat surface the mean is the depth at the pixel centre)."""
    u, v = np.round(pixels).astype(int).T
    keep = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    z = 1000.0 * points_cam[keep, 2]
    cell = (v[keep], u[keep])
    count, total = np.zeros((height, width)), np.zeros((height, width))
    near, far = np.full((height, width), np.inf), np.full((height, width), -np.inf)
    np.add.at(count, cell, 1.0)
    np.add.at(total, cell, z)
    np.minimum.at(near, cell, z)
    np.maximum.at(far, cell, z)
    one_surface = (count >= 2) & (far - near < 12.0)
    return np.where(one_surface, total / np.maximum(count, 1.0), 0.0)


def test_depth_of_face_pixels_matches_the_true_mesh(filmed):
    """Every camera: the read depth where the true mesh's vertices project (with the true
    poses of the ground truth) equals their depth within the sensor noise."""
    _, out, key, _ = filmed
    cap, truth = _open(out, key)
    cameras = truth.cameras()
    for frame in cap.frames():
        verts = torch.as_tensor(truth.vertices[frame.index], dtype=torch.float64)
        for camera, depth in zip(cameras, frame.depth, strict=True):
            points = camera.world_to_camera(verts).numpy()
            pixels = camera.project(verts).numpy()
            expected = _vertex_depth(points, pixels, camera.width, camera.height)
            # inside the face, 2 pixels from its silhouette (where a pixel centre may miss the
            # mesh and flying pixels mix face and backdrop)
            inside = ndimage.binary_erosion(expected > 0, np.ones((3, 3)), iterations=2)
            inside &= depth > 0
            assert inside.sum() > 100
            error = np.abs(depth[inside].astype(float) - expected[inside])
            assert np.median(error) < 2.0, np.median(error)  # sensor noise: 1.4 mm std
            assert np.percentile(error, 90) < 5.0, np.percentile(error, 90)


def test_landmarks_are_the_projected_model_landmarks(filmed, model):
    _, out, key, _ = filmed
    cap, truth = _open(out, key)
    noise = LANDMARK_NOISE_PX * SCALE
    for camera_index, camera in enumerate(truth.cameras()):
        landmarks = cap.landmarks(camera_index)
        assert landmarks.shape == (FRAMES, 98, 2) and np.isfinite(landmarks).all()
        exact = project_landmarks(truth.vertices, model.landmarks, camera)
        error = landmarks[:, HRNET98_OF_IBUG68] - exact
        assert 0.5 * noise < error.std() < 2.0 * noise  # the detector-like noise, no bias
        assert np.abs(error.mean()) < 0.2 * noise
        np.testing.assert_allclose(
            landmarks, hrnet98_from_ibug68(landmarks[:, HRNET98_OF_IBUG68]), atol=1e-9
        )


def test_resume_and_reproduce(filmed, tmp_path):
    source, out, key, seconds = filmed
    subject, name = key.split("/")
    files = sorted(p for p in (out / subject).iterdir())
    stamps = [p.stat().st_mtime_ns for p in files]
    start = time.perf_counter()
    capture(source, out, scale=SCALE, frames=FRAMES, seed=4, progress=False)
    assert time.perf_counter() - start < min(1.0, seconds / 2)
    assert [p.stat().st_mtime_ns for p in files] == stamps
    assert not [p for p in (out / subject).iterdir() if p.name.startswith(".")]  # no temps
    assert is_complete(out, key)
    # the same seed reproduces the recording from its prefix alone; another seed does not
    again = capture(
        source / key, tmp_path / "a", scale=SCALE, frames=FRAMES, seed=4, progress=False
    )
    first = read_landmarks(out / subject / f"{name}_1.pkl")
    np.testing.assert_array_equal(read_landmarks(again / subject / f"{name}_1.pkl"), first)
    other = capture(source / key, tmp_path / "b", scale=SCALE, frames=2, seed=5, progress=False)
    assert not np.allclose(read_landmarks(other / subject / f"{name}_1.pkl"), first[:2])
    # an incomplete recording is filmed again
    (out / subject / f"{name}_gt_capture.json").unlink()
    assert not is_complete(out, key)
    capture(source, out, scale=SCALE, frames=FRAMES, seed=4, progress=False)
    assert is_complete(out, key)
    # a different configuration is refused rather than mixed in
    with pytest.raises(InputError, match="different capture"):
        capture(source, out, scale=SCALE, frames=FRAMES, seed=5, progress=False)


def test_npz_sequence_without_model_topology(tmp_path, model):
    """A foreign mesh (a plane, model frame): skin tone, no landmark file."""
    grid = np.linspace(-0.08, 0.08, 9)
    x, y = np.meshgrid(grid, grid)
    plane = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], -1)
    corner = np.array([r * 9 + c for r in range(8) for c in range(8)])
    faces = np.concatenate(
        [
            np.stack([corner, corner + 1, corner + 9], -1),
            np.stack([corner + 1, corner + 10, corner + 9], -1),
        ]
    )
    sequence = MeshSequence(np.stack([plane, plane + [0, 0.01, 0]]), faces, 30.0)
    path = save_sequence(sequence, tmp_path / "clips" / "plane.npz")
    out = capture(path, tmp_path / "out", scale=SCALE, progress=False)
    cap = Capture.from_raw(out / "clips", "plane")
    assert len(cap) == 2 and cap.landmarks(1) is None and cap.audio() is None
    colour = next(cap.frames()).colour[1]
    centre = colour[60:74, 113:127].reshape(-1, 3).mean(0)  # the plane faces the centre camera
    assert centre[0] > centre[1] > centre[2]  # a skin tone, not the grey backdrop
    truth = load_ground_truth(out / "clips" / "plane_gt_capture.npz")
    np.testing.assert_allclose(truth.vertices[0, :, 2], 0.72, atol=1e-6)  # model -> camera frame


def test_bad_sources_and_arguments(tmp_path, filmed):
    source = filmed[0]
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    cases = [
        (tmp_path / "missing", "not a corpus folder"),
        (tmp_path / "empty", "no manifest.csv"),
        (tmp_path / "gone.npz", "not found"),
        (tmp_path / "broken.npz", "not a readable .npz"),
    ]
    for bad, message in cases:
        with pytest.raises(InputError, match=message):
            capture(bad, tmp_path / bad.stem, scale=SCALE, progress=False)
        assert not list((tmp_path / bad.stem).glob("*/*"))  # no recording files
    with pytest.raises(InputError, match="frames"):
        capture(source, tmp_path / "out", scale=SCALE, frames=0, progress=False)
    with pytest.raises(InputError, match="scale"):
        capture(source, tmp_path / "out", scale=0.001, progress=False)
    assert not (tmp_path / "out").exists()  # nothing written for a refused call
    with pytest.raises(InputError, match="pass --face-model"):  # ~6000 vertices, not ~10800
        capture(
            source, tmp_path / "m", scale=SCALE, face_model="synth:vertices=6000", progress=False
        )
    assert cli.main(["synth", "capture", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2


def test_cli_capture(tmp_path, filmed):
    source, _, key, _ = filmed
    jobs, spec = plan_capture(source)
    assert [job.key for job in jobs] == [key] and spec == "synth"
    assert jobs[0].truth is not None and jobs[0].audio is not None
    out = tmp_path / "cli"
    assert cli.main(_capture_argv(source / key, out)) == 0
    cap = Capture.from_raw(out / key.split("/")[0], key.split("/")[1])
    assert len(cap) == 2 and cap.landmarks(0).shape == (2, 98, 2)


def test_hrnet98_from_ibug68_known_values():
    points = np.random.default_rng(0).uniform(0, 100, (3, 68, 2))
    full = hrnet98_from_ibug68(points)
    assert full.shape == (3, 98, 2) and np.isfinite(full).all()
    np.testing.assert_array_equal(full[:, HRNET98_OF_IBUG68], points)
    np.testing.assert_allclose(full[:, 1], (points[:, 0] + points[:, 1]) / 2)  # odd jaw point
    # a level brow above a level eye: the lower edge lies straight below the upper edge
    level = np.zeros((68, 2))
    level[36:48, 1] = 50.0  # the eyes, outer corners 36 and 45 100 px apart
    level[36:48, 0] = [0, 10, 20, 30, 20, 10, 70, 80, 90, 100, 90, 80]
    level[17:22] = np.stack([np.linspace(0, 40, 5), np.full(5, 30.0)], -1)
    level[22:27] = np.stack([np.linspace(60, 100, 5), np.full(5, 30.0)], -1)
    full = hrnet98_from_ibug68(level)
    np.testing.assert_allclose(full[38], full[37] + [0.0, 100 * BROW_THICKNESS])
    np.testing.assert_allclose(full[50], full[42] + [0.0, 100 * BROW_THICKNESS])
    with pytest.raises(InputError, match="68, 2"):
        hrnet98_from_ibug68(np.zeros((98, 2)))


def test_hrnet98_interpolation_on_real_landmarks(shared_data):
    """The 30 interpolated points land near HRNet's own on the real sample."""
    sample = shared_data / "mmface4d_sample"
    real = np.concatenate([read_landmarks(sample / f"000337_{c}.pkl") for c in range(3)])
    estimate = hrnet98_from_ibug68(real[:, HRNET98_OF_IBUG68])
    eye_span = np.linalg.norm(real[:, 60] - real[:, 72], axis=-1)[:, None]
    error = np.linalg.norm(estimate - real, axis=-1)[:, OTHER_30] / eye_span
    assert np.median(error) < 0.03 and error.max() < 0.1


def test_parallel_workers_film_the_same_recordings(tmp_path):
    source = tmp_path / "corpus"
    corpus(source, subjects=2, sentences=1, lang="en", seed=1, workers=1, progress=False)
    parallel = capture(source, tmp_path / "p", scale=SCALE, frames=2, workers=2, progress=False)
    serial = capture(source, tmp_path / "s", scale=SCALE, frames=2, workers=1, progress=False)
    keys = json.loads((parallel / "capture.json").read_text())["recordings"]
    assert [key.split("/")[0] for key in keys] == ["S001", "S002"]
    for key in keys:
        assert is_complete(parallel, key)
        for camera in range(3):
            name = f"{key}_{camera}.pkl"
            np.testing.assert_array_equal(
                read_landmarks(parallel / name), read_landmarks(serial / name)
            )
    # the subjects' studios differ (one rig per subject), the centre camera is the world
    poses = [load_ground_truth(parallel / f"{k}_gt_capture.npz").camera_from_world for k in keys]
    assert not np.allclose(poses[0][0], poses[1][0])
    np.testing.assert_allclose(poses[0][1], poses[1][1])


# ---------------------------------------------------------------------- the batch (mmface4d.batch)
@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """A corpus of two one-sentence subjects."""
    source = tmp_path_factory.mktemp("two") / "corpus"
    corpus(source, subjects=2, sentences=1, lang="en", seed=1, workers=1, progress=False)
    return source


def _capture_argv(source, out, *extra: str) -> list[str]:
    return [
        "synth",
        "capture",
        str(source),
        "-o",
        str(out),
        "--scale",
        "0.125",
        "--frames",
        "2",
        "--seed",
        "1",
        *extra,
    ]


def test_a_failed_recording_fails_alone_is_listed_and_a_rerun_resumes(
    two_subjects, tmp_path, capsys
):
    source = tmp_path / "corpus"
    shutil.copytree(two_subjects, source)
    first, bad = (job.key for job in plan_capture(source)[0])
    broken = source / f"{bad}_1.nut"
    good = broken.read_bytes()
    broken.write_bytes(b"not a video")
    out = tmp_path / "out"
    capsys.readouterr()
    assert cli.main(_capture_argv(source, out)) == 1  # the failure report, not a crash
    stdout = capsys.readouterr().out
    assert stdout.startswith("1 done, 0 skipped, 1 failed") and f"\n  {bad}: " in stdout
    assert is_complete(out, first) and not is_complete(out, bad)
    jobs = json.loads((out / "manifest.json").read_text())["jobs"]
    assert (jobs[first]["status"], jobs[bad]["status"]) == ("done", "failed")
    files = sorted((out / first.split("/")[0]).iterdir())
    stamps = [path.stat().st_mtime_ns for path in files]
    broken.write_bytes(good)  # fixed: a re-run films the failed recording only
    assert cli.main(_capture_argv(source, out)) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert is_complete(out, bad) and [path.stat().st_mtime_ns for path in files] == stamps
    batch = json.loads((out / "manifest.json").read_text())
    assert batch["desc"] == "synth capture"
    assert batch["totals"] == {"done": 1, "skipped": 1, "failed": 0}


@pytest.mark.slow  # starting Ray takes ~14 s on a busy core
def test_ray_executor_films_the_same_recordings(two_subjects, tmp_path, capsys):
    pytest.importorskip("ray", exc_type=ImportError)
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    assert (
        cli.main(_capture_argv(two_subjects, ray_out, "--executor", "ray", "--workers", "2")) == 0
    )
    assert cli.main(_capture_argv(two_subjects, local_out)) == 0
    keys = [job.key for job in plan_capture(two_subjects)[0]]
    for key in keys:
        assert is_complete(ray_out, key)
        np.testing.assert_array_equal(
            read_landmarks(ray_out / f"{key}_0.pkl"), read_landmarks(local_out / f"{key}_0.pkl")
        )
        truth = [load_ground_truth(out / f"{key}_gt_capture.npz") for out in (ray_out, local_out)]
        np.testing.assert_array_equal(truth[0].vertices, truth[1].vertices)
    jobs = json.loads((ray_out / "manifest.json").read_text())["jobs"]
    assert {jobs[key]["status"] for key in keys} == {"done"}
