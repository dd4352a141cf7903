"""Frame selection for calibration: head rotations from 2D landmarks, farthest-point sampling
over head pose and time (checked against a naive reference), missing frames and glitches."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mmface4d.capture.calibration_frames import (
    GLITCH_FACTOR,
    GLITCH_FLOOR_DEGREES,
    POSE_STEP_DEGREES,
    SMOOTHING_FRAMES,
    head_rotations,
    select_frames,
    spread_frames,
)
from mmface4d.errors import InputError
from mmface4d.facemodel import load_face_model
from mmface4d.geometry.frames import to_camera_frame


@pytest.fixture(scope="module")
def landmarks_3d():
    """(68, 3) the synth face's iBUG-68 landmarks, camera frame, ~0.72 m ahead."""
    model = load_face_model("synth")
    return to_camera_frame(model.mean[model.landmarks].astype(np.float64))


def film(points, rotvecs_degrees, noise_px=0.0, seed=0):
    """(T, 68, 2) pixels of the landmarks turned by each rotation about their centre, seen by a
    1000-pixel pinhole camera."""
    centre = points.mean(axis=0)
    turned = Rotation.from_rotvec(np.asarray(rotvecs_degrees, float), degrees=True)
    frames = np.stack([(points - centre) @ r.T + centre for r in turned.as_matrix()])
    pixels = 1000.0 * frames[..., :2] / frames[..., 2:] + [960.0, 540.0]
    return pixels + np.random.default_rng(seed).normal(0.0, noise_px, pixels.shape)


def test_spread_frames():
    assert spread_frames(100, 5) == [10, 30, 50, 70, 90]
    assert spread_frames(3, 5) == [0, 1, 2]
    assert spread_frames(1, 1) == [0]
    with pytest.raises(InputError):
        spread_frames(0, 5)


def test_head_rotations_recover_turns(landmarks_3d):
    truth = np.array([[0, 0, 0], [0, 10, 0], [-6, 0, 0], [0, 0, 5], [4, -12, 3]], float)
    found = head_rotations(film(landmarks_3d, truth))
    assert len(found) == 5
    relative = found * found[0].inv()  # the turns, whatever the generic face's own pose
    error = (relative.inv() * Rotation.from_rotvec(truth, degrees=True)).magnitude()
    # weak perspective at 0.72 m: within ~1.5 degrees of a 12-degree turn, ample to rank poses
    assert np.degrees(error).max() < 2.0
    with pytest.raises(InputError, match=r"\(T, 68, 2\)"):
        head_rotations(np.zeros((2, 98, 2)))
    with pytest.raises(InputError, match="finite"):
        head_rotations(np.full((1, 68, 2), np.nan))


def _naive_select(landmarks, count):
    """select_frames written out: per-frame median, glitch test, and farthest-point sampling
    with rotation objects and explicit loops (all frames finite, T >= SMOOTHING_FRAMES)."""
    total = len(landmarks)
    raw = head_rotations(landmarks).as_rotvec(degrees=True)
    half = SMOOTHING_FRAMES // 2
    padded = np.concatenate([np.repeat(raw[:1], half, 0), raw, np.repeat(raw[-1:], half, 0)])
    smooth = np.array([np.median(padded[t : t + SMOOTHING_FRAMES], axis=0) for t in range(total)])
    jitter = np.linalg.norm(raw - smooth, axis=1)
    limit = max(GLITCH_FACTOR * np.median(jitter), GLITCH_FLOOR_DEGREES)
    frames = [t for t in range(total) if jitter[t] <= limit]
    poses = {t: Rotation.from_rotvec(smooth[t], degrees=True) for t in frames}
    time = {t: t * count / total for t in frames}

    def distance(a, b):
        angle = np.degrees((poses[a].inv() * poses[b]).magnitude())
        return (angle / POSE_STEP_DEGREES) ** 2 + (time[a] - time[b]) ** 2

    mean = Rotation.from_rotvec(smooth[frames], degrees=True).mean()
    mean_time = np.mean([time[t] for t in frames])
    start = min(
        frames,
        key=lambda t: (
            (np.degrees((poses[t].inv() * mean).magnitude()) / POSE_STEP_DEGREES) ** 2
            + (time[t] - mean_time) ** 2
        ),
    )
    chosen = [start]
    while len(chosen) < count:
        rest = [t for t in frames if t not in chosen]
        chosen.append(max(rest, key=lambda t: min(distance(t, c) for c in chosen)))
    return sorted(chosen)


def test_select_frames_matches_a_naive_reference(landmarks_3d):
    rng = np.random.default_rng(1)
    drift = np.cumsum(rng.normal(0.0, 0.8, (90, 3)), axis=0)  # a wandering head, degrees
    marks = film(landmarks_3d, drift, noise_px=1.0, seed=2)
    marks[37] += 40.0 * rng.normal(size=(68, 2))  # a misdetection
    for count in (1, 4, 10):
        chosen = select_frames(marks, count)
        assert chosen == _naive_select(marks, count)
        assert len(chosen) == count and 37 not in chosen


def test_select_frames_prefers_turned_poses_and_spreads_a_still_head(landmarks_3d):
    total = 100
    still = film(landmarks_3d, np.zeros((total, 3)), noise_px=1.0)
    chosen = select_frames(still, 5)
    assert len(set(chosen)) == 5 and min(np.diff(chosen)) >= 15  # over the whole recording
    bump = np.clip(1.0 - np.abs(np.arange(total) - 45) / 6.0, 0.0, None)  # frames 40-50
    turn = np.column_stack([np.zeros(total), 15.0 * bump, np.zeros(total)])
    chosen = select_frames(film(landmarks_3d, turn, noise_px=1.0), 5)
    assert any(42 <= t <= 48 for t in chosen)  # the turned head
    assert chosen == sorted(chosen) and len(set(chosen)) == 5


def test_select_frames_skips_missing_frames(landmarks_3d):
    rng = np.random.default_rng(3)
    marks = film(landmarks_3d, rng.normal(0.0, 5.0, (30, 3)))
    marks[4] = np.nan
    marks[9, 20] = np.nan  # one landmark missing: the frame is not a candidate
    usable = np.ones(30, bool)
    usable[[0, 15]] = False  # e.g. a side camera has no landmarks there
    chosen = select_frames(marks, 26, usable)
    assert chosen == sorted(set(range(30)) - {0, 4, 9, 15})  # all 26 candidates
    assert not {0, 4, 9, 15} & set(select_frames(marks, 10, usable))
    assert select_frames(np.full((12, 68, 2), np.nan), 3) == spread_frames(12, 3)
    assert select_frames(marks[:1], 3) == [0]


def test_select_frames_rejects_bad_arguments(landmarks_3d):
    marks = film(landmarks_3d, np.zeros((5, 3)))
    with pytest.raises(InputError, match="landmarks"):
        select_frames(np.zeros((5, 98, 2)), 2)
    with pytest.raises(InputError, match="landmarks"):
        select_frames(np.zeros((0, 68, 2)), 2)
    with pytest.raises(InputError, match="count"):
        select_frames(marks, 0)
    with pytest.raises(InputError, match="count"):
        select_frames(marks, 2.5)
    with pytest.raises(InputError, match="usable"):
        select_frames(marks, 2, np.ones(4, bool))
    with pytest.raises(InputError, match="usable"):
        select_frames(marks, 2, np.ones(5))
