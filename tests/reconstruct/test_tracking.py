"""Sequence tracking (mmface4d.reconstruct.tracking): temporal smoothing, failed-frame filling,
per-frame records, recovery from divergence, on a tiny studio recording; and the per-frame
landmark source it reads (mmface4d.capture.landmarks.FrameLandmarks)."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d.capture.capture import CaptureFrame
from mmface4d.capture.landmarks import FrameLandmarks
from mmface4d.errors import InputError
from mmface4d.facemodel.landmark_maps import to_ibug68
from mmface4d.reconstruct.fitting import FaceFitter, FitDiverged
from mmface4d.reconstruct.tracking import (
    MIN_DEPTH_PIXELS,
    FrameRecord,
    Reconstruction,
    ReconstructionFailed,
    _fill_failed,
    _stack_coefficients,
    reconstruct_capture,
    records_as_dicts,
    smooth_vertices,
)

from .conftest import STUDIO_FRAMES, EditedCapture, without_depth


def face_error_mm(vertices: np.ndarray, truth: np.ndarray, model) -> np.ndarray:
    """(T,) mean face-region distance in millimetres."""
    face = model.regions["face"]
    return np.linalg.norm(vertices[:, face] - truth[:, face], axis=-1).mean(axis=1) * 1000.0


# ---------------------------------------------------------------------- smoothing
def _waves(frames: int = 120, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(frames) / fps
    slow = 0.002 * np.sin(2 * np.pi * 1.0 * t)
    fast = 0.001 * np.sin(2 * np.pi * 12.0 * t)
    vertices = np.zeros((frames, 2, 3), dtype=np.float32)
    vertices[:, 0, 0] = slow + fast
    vertices[:, 1, 2] = 0.7 + slow
    return vertices, slow, fast


def test_smoothing_removes_12_hz_and_keeps_1_hz():
    vertices, slow, _ = _waves()
    out = smooth_vertices(vertices, 30.0, 5.0)
    assert out.shape == vertices.shape and out.dtype == np.float32
    inner = slice(15, -15)
    # the 12 Hz wave (1 mm) is gone to within 2% of its amplitude ...
    assert np.abs(out[inner, 0, 0] - slow[inner]).max() < 0.02 * 0.001 + 0.01 * 0.002
    # ... and the 1 Hz wave (2 mm) is kept to 1% (zero phase: no lag)
    np.testing.assert_allclose(out[inner, 1, 2], 0.7 + slow[inner], atol=0.01 * 0.002)
    # untouched axes stay exactly 0 apart from rounding
    np.testing.assert_allclose(out[:, 0, 1:], 0.0, atol=1e-9)


def test_smoothing_slow_reference():
    """Same as filtering every coordinate on its own with SciPy's sosfiltfilt."""
    from scipy import signal

    vertices = np.random.default_rng(0).normal(size=(40, 3, 3)).astype(np.float32)
    out = smooth_vertices(vertices, 30.0, 5.0)
    sos = signal.butter(4, 5.0, fs=30.0, output="sos")
    for v in range(3):
        for axis in range(3):
            expected = signal.sosfiltfilt(sos, vertices[:, v, axis].astype(np.float64), padlen=15)
            np.testing.assert_allclose(out[:, v, axis], expected, atol=1e-6)


def test_smoothing_leaves_short_sequences_and_disabled_filters_unchanged():
    vertices, _, _ = _waves(frames=3)
    for fps, cutoff in ((30.0, 5.0), (30.0, None), (8.0, 5.0)):  # 5 Hz >= Nyquist of 8 fps
        out = smooth_vertices(vertices, fps, cutoff)
        np.testing.assert_array_equal(out, vertices)
        assert out is not vertices  # a copy
    long, _, _ = _waves(frames=40)
    np.testing.assert_array_equal(smooth_vertices(long, 8.0, 5.0), long)
    np.testing.assert_array_equal(smooth_vertices(long, 30.0, None), long)
    # four frames is enough to filter
    assert not np.array_equal(smooth_vertices(long[:4], 30.0, 5.0), long[:4])


def test_smoothing_keeps_a_still_face():
    still = np.tile(np.array([[0.01, -0.02, 0.7]], dtype=np.float32), (30, 5, 1))
    np.testing.assert_allclose(smooth_vertices(still, 30.0, 5.0), still, atol=1e-6)


# ---------------------------------------------------------------------- failed frames
def test_fill_failed_interpolates_between_neighbours_and_holds_the_ends():
    a = np.zeros((2, 3), np.float32)
    b = np.full((2, 3), 3.0, np.float32)
    out = _fill_failed([None, a, None, None, b, None])
    assert out.shape == (6, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(_fill_failed([a]), a[None])


def test_stack_coefficients_marks_failed_frames_nan():
    good = {
        "identity": np.ones(2),
        "albedo": np.ones(1),
        "expression": np.ones(3),
        "rotation": np.eye(3),
        "translation": np.zeros(3),
        "lighting": np.zeros((3, 27)),
    }
    out = _stack_coefficients([None, good, good])
    assert out["expression"].shape == (3, 3) and np.isnan(out["expression"][0]).all()
    assert out["rotation"].shape == (3, 3, 3) and not np.isnan(out["rotation"][1:]).any()
    assert out["identity"].shape == (2,)


def test_records_as_dicts_rounds_floats():
    rows = records_as_dicts([FrameRecord(3, seconds=1.234567, depth_rmse_mm=None, loss=0.1 + 0.2)])
    assert rows == [
        {
            "index": 3,
            "status": "ok",
            "reason": None,
            "seconds": 1.2346,
            "depth_rmse_mm": None,
            "depth_coverage": None,
            "landmark_rmse_px": None,
            "loss": 0.3,
            "iterations": 0,
            "cameras_with_landmarks": 0,
        }
    ]


# ---------------------------------------------------------------------- a recording
def test_reconstruct_capture_tracks_the_recording(tracked, studio_capture, face_model):
    recording, result = tracked
    assert isinstance(result, Reconstruction)
    count, num_vertices = STUDIO_FRAMES, face_model.num_vertices
    assert result.vertices.shape == (count, num_vertices, 3) and result.vertices.dtype == np.float32
    assert result.raw_vertices.shape == result.vertices.shape
    np.testing.assert_array_equal(result.vertices, result.raw_vertices)  # 3 frames: no filter
    assert result.first_frame == 0 and result.fps == 30.0
    assert [s.stage for s in result.stages] == ["landmark", "model", "vertex"]
    assert result.stage_vertices.shape == (3, num_vertices, 3)
    np.testing.assert_allclose(result.stage_vertices[-1], result.raw_vertices[0], atol=1e-6)
    assert [f.status for f in result.frames] == ["ok"] * count
    for frame in result.frames:
        assert frame.cameras_with_landmarks == 3 and frame.iterations > 0
        assert 0 < frame.depth_rmse_mm < 4 and 0.8 < frame.depth_coverage <= 1
        assert frame.landmark_rmse_px < 1.5
    assert result.frames[0].iterations == 100 + 10 + 3 and result.frames[1].iterations == 3
    errors = face_error_mm(result.vertices, studio_capture.truth.vertices, face_model)
    assert (errors < 3.0).all(), errors
    coefficients = result.coefficients
    assert coefficients["expression"].shape == (count, face_model.expression_dims)
    assert coefficients["rotation"].shape == (count, 3, 3)
    assert coefficients["lighting"].shape == (count, 3, 27)
    assert coefficients["identity"].shape == (face_model.identity_dims,)
    summary = result.summary()
    assert summary["frames"] == count and summary["ok"] == count and summary["failed"] == 0
    assert summary["seconds_per_tracked_frame"] > 0 and summary["median_depth_rmse_mm"] > 0


def test_frames_limit_and_callback(studio_capture, face_model, tracking_config):
    seen = []
    result = reconstruct_capture(
        studio_capture.open(),
        face_model,
        tracking_config,
        frames=1,
        progress=False,
        on_frame=seen.append,
    )
    assert len(result.frames) == 1 and [r.index for r in seen] == [0]
    assert result.summary()["seconds_per_tracked_frame"] is None
    with pytest.raises(InputError, match="at least 1 frame"):
        reconstruct_capture(
            studio_capture.open(), face_model, tracking_config, frames=0, progress=False
        )


def test_a_frame_without_depth_fails_and_is_interpolated(
    studio_capture, face_model, tracking_config
):
    def edit(frame: CaptureFrame) -> CaptureFrame:
        return without_depth(frame) if frame.index == 1 else frame

    recording = EditedCapture(studio_capture.open(), edit)
    result = reconstruct_capture(recording, face_model, tracking_config, progress=False)
    statuses = [(f.status, f.reason) for f in result.frames]
    assert statuses == [("ok", None), ("failed", "no depth in any camera"), ("ok", None)]
    failed = result.frames[1]
    assert failed.depth_rmse_mm is None and failed.iterations == 0 and failed.loss is None
    np.testing.assert_allclose(
        result.raw_vertices[1], 0.5 * (result.raw_vertices[0] + result.raw_vertices[2]), atol=1e-6
    )
    assert np.isnan(result.coefficients["expression"][1]).all()
    assert not np.isnan(result.coefficients["expression"][[0, 2]]).any()
    assert result.summary()["failed"] == 1 and result.summary()["ok"] == 2
    errors = face_error_mm(result.vertices, studio_capture.truth.vertices, face_model)
    assert (errors < 5.0).all(), errors


def test_the_first_usable_frame_starts_the_fit(studio_capture, face_model, tracking_config):
    def edit(frame: CaptureFrame) -> CaptureFrame:
        return without_depth(frame) if frame.index == 0 else frame

    result = reconstruct_capture(
        EditedCapture(studio_capture.open(), edit),
        face_model,
        tracking_config,
        frames=2,
        progress=False,
    )
    assert result.first_frame == 1
    assert [f.status for f in result.frames] == ["failed", "ok"]
    np.testing.assert_array_equal(result.raw_vertices[0], result.raw_vertices[1])  # held
    assert result.frames[1].iterations == 100 + 10 + 3  # the full three-stage fit


def test_every_frame_failing_raises(studio_capture, face_model, tracking_config):
    recording = EditedCapture(studio_capture.open(), without_depth)
    with pytest.raises(
        ReconstructionFailed, match=r"no frame could be fitted \(no depth in any camera\)"
    ):
        reconstruct_capture(recording, face_model, tracking_config, progress=False)


def test_no_landmarks_to_start_from(studio_capture, face_model, tracking_config):
    class NoLandmarkFrames(EditedCapture):
        def landmarks(self, camera: int):
            return self._wrapped.landmarks(camera)[:0]  # a file shorter than the video

    recording = NoLandmarkFrames(studio_capture.open(), lambda frame: frame)
    with pytest.raises(ReconstructionFailed, match="no face found to start from"):
        reconstruct_capture(
            recording, face_model, tracking_config, landmarks="file", frames=2, progress=False
        )


def test_too_little_depth_counts_as_none(studio_capture, face_model, tracking_config):
    def sparse(frame: CaptureFrame) -> CaptureFrame:
        depth = []
        for image in frame.depth:
            kept = np.zeros_like(image)
            kept[:2, :2] = 700  # 4 full-resolution pixels: 1 working pixel per camera
            depth.append(kept)
        return CaptureFrame(frame.index, frame.colour, tuple(depth))

    assert MIN_DEPTH_PIXELS > 3
    with pytest.raises(ReconstructionFailed, match="no depth in any camera"):
        reconstruct_capture(
            EditedCapture(studio_capture.open(), sparse),
            face_model,
            tracking_config,
            frames=1,
            progress=False,
        )


def _diverging_track(monkeypatch, fail_times: int):
    """FaceFitter.track raising FitDiverged on its first ``fail_times`` calls; records the
    tracking learning rate of every call."""
    original = FaceFitter.track
    rates: list[float] = []

    def track(self, previous, observation):
        rates.append(self.config.tracking_stage.lr)
        if len(rates) <= fail_times:
            raise FitDiverged(f"tracking stage: the loss became nan at iteration {len(rates)}")
        return original(self, previous, observation)

    monkeypatch.setattr(FaceFitter, "track", track)
    return rates


def test_a_diverged_frame_is_recovered_at_half_the_rate(
    monkeypatch, studio_capture, face_model, tracking_config
):
    rates = _diverging_track(monkeypatch, fail_times=1)
    result = reconstruct_capture(studio_capture.open(), face_model, tracking_config, progress=False)
    lr = tracking_config.tracking_stage.lr
    assert rates == [lr, lr / 2, lr]  # frame 1 twice, then frame 2 at the configured rate
    frame = result.frames[1]
    assert frame.status == "recovered" and "loss became nan" in frame.reason
    assert frame.depth_rmse_mm is not None and result.frames[2].status == "ok"
    assert result.summary()["recovered"] == 1


def test_a_frame_diverging_twice_fails(monkeypatch, studio_capture, face_model, tracking_config):
    rates = _diverging_track(monkeypatch, fail_times=2)
    result = reconstruct_capture(studio_capture.open(), face_model, tracking_config, progress=False)
    lr = tracking_config.tracking_stage.lr
    assert rates == [lr, lr / 2, lr]
    assert [f.status for f in result.frames] == ["ok", "failed", "ok"]
    assert "iteration 2" in result.frames[1].reason
    np.testing.assert_allclose(
        result.raw_vertices[1], 0.5 * (result.raw_vertices[0] + result.raw_vertices[2]), atol=1e-6
    )


def test_a_nan_observation_fails_its_frame_only(
    monkeypatch, studio_capture, face_model, tracking_config
):
    """A frame whose observation holds NaN diverges on both tries: failed, interpolated, and
    the next frame is tracked from the last good one."""
    import mmface4d.reconstruct.tracking as tracking

    original = tracking.observe

    def observe(index, *args, **kwargs):
        observation = original(index, *args, **kwargs)
        if index == 1:
            observation.colour[0] = float("nan")  # one camera's whole image
        return observation

    monkeypatch.setattr(tracking, "observe", observe)
    result = reconstruct_capture(studio_capture.open(), face_model, tracking_config, progress=False)
    assert [f.status for f in result.frames] == ["ok", "failed", "ok"]
    assert result.frames[1].reason.startswith("tracking stage: the loss became nan")
    assert np.isfinite(result.vertices).all()
    np.testing.assert_allclose(
        result.raw_vertices[1], 0.5 * (result.raw_vertices[0] + result.raw_vertices[2]), atol=1e-6
    )


# ---------------------------------------------------------------------- landmark source
def test_frame_landmarks_from_files(studio_capture):
    recording = studio_capture.open()
    colour = next(recording.frames(0, 1)).colour
    with FrameLandmarks(recording, "auto") as source:
        assert source.mode == "file"
        points = source(0, colour)
        assert len(points) == 3
        for camera, marks in enumerate(points):
            assert marks.shape == (68, 2) and marks.dtype == np.float64
            expected = to_ibug68(recording.landmarks(camera)[0, :, :2], "hrnet98")
            np.testing.assert_allclose(marks, expected)
        # the file ends: no landmarks
        assert source(STUDIO_FRAMES, colour) == [None, None, None]
    with FrameLandmarks(recording, "file") as source:
        assert source.mode == "file"


def test_frame_landmarks_errors(studio_capture, tmp_path):
    recording = studio_capture.open()
    with pytest.raises(InputError, match="expected 'auto', 'file' or 'detect'"):
        FrameLandmarks(recording, "guess")

    class OneFileMissing(EditedCapture):
        def landmarks(self, camera: int):
            return None if camera == 2 else self._wrapped.landmarks(camera)

    with pytest.raises(InputError, match="no landmark file for this camera"):
        FrameLandmarks(OneFileMissing(recording, lambda f: f), "file")


def test_frame_landmarks_detection(studio_capture):
    pytest.importorskip("mediapipe", exc_type=ImportError)
    recording = studio_capture.open()
    colour = next(recording.frames(0, 1)).colour
    with FrameLandmarks(recording, "detect", detector_mode="image") as source:
        assert source.mode == "detect"
        points = source(0, colour)
    assert len(points) == 3
    for camera, marks in enumerate(points):
        if marks is None:  # a small face (about 50 pixels wide): detection may miss it
            continue
        assert marks.shape == (68, 2) and np.isfinite(marks).all()
        # near the studio's own (noisy) landmarks
        files = to_ibug68(recording.landmarks(camera)[0, :, :2], "hrnet98")
        assert np.median(np.linalg.norm(marks - files, axis=1)) < 6.0
    assert source._detectors == []  # closed on exit


def test_a_camera_dropping_out_leaves_the_others_fitting(
    studio_capture, face_model, tracking_config
):
    """Camera 2 blank (black, no depth) from frame 1 on, as ``allow_dropouts`` delivers it."""

    def edit(frame: CaptureFrame) -> CaptureFrame:
        if frame.index == 0:
            return frame
        colour = (*frame.colour[:2], np.zeros_like(frame.colour[2]))
        return CaptureFrame(frame.index, colour, (*frame.depth[:2], np.zeros_like(frame.depth[2])))

    result = reconstruct_capture(
        EditedCapture(studio_capture.open(), edit), face_model, tracking_config, progress=False
    )
    assert [f.status for f in result.frames] == ["ok"] * STUDIO_FRAMES
    truth = studio_capture.truth.vertices
    face = face_model.regions["face"]
    errors = [
        np.linalg.norm(result.raw_vertices[t] - truth[t], axis=1)[face].mean() * 1000
        for t in range(STUDIO_FRAMES)
    ]
    assert errors[-1] < errors[0] + 1.0  # two cameras keep the fit where three left it
