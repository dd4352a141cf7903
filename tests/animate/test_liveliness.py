"""Blinks and saccades on top of an animation: full closures at a natural rate, every format."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d.animate.liveliness import LivelinessConfig, add_liveliness
from mmface4d.errors import InputError
from mmface4d.export.arkit import arkit_basis, solve_arkit_weights
from mmface4d.facemodel.procedural import blink_weights, gaze_angles, gaze_weights
from mmface4d.facemodel.sources import load_face_model

FPS = 30.0


@pytest.fixture(scope="module")
def face():
    return load_face_model("synth:vertices=5000")


def _solve(face, vertices):
    basis = arkit_basis(face)
    weights = solve_arkit_weights(vertices - face.mean[None], basis.targets).weights
    return {name: weights[:, k] for k, name in enumerate(basis.names)}


def test_blinks_close_the_lids_fully_at_about_the_asked_rate(face) -> None:
    still = np.repeat(face.mean[None], int(120 * FPS), axis=0)
    lively, info = add_liveliness(still, face.mean, face, FPS, LivelinessConfig(seed=1))
    blink = _solve(face, lively)["eyeBlinkLeft"]
    assert blink.max() >= 0.9  # lids shut at the peak, as the ARKit solve reads them
    onsets = np.flatnonzero((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert len(onsets) == len(info["blinks"])
    assert 15 <= len(onsets) / 2.0 <= 40  # per minute, around the asked 26


def test_a_blink_the_model_already_makes_is_not_doubled(face) -> None:
    basis = arkit_basis(face)
    shape = basis.targets[basis.names.index("eyeBlinkLeft")]
    both = shape + basis.targets[basis.names.index("eyeBlinkRight")]
    closed = np.repeat((face.mean + both)[None], 90, axis=0)  # eyes already shut throughout
    lively, _ = add_liveliness(closed, face.mean, face, FPS, LivelinessConfig(saccades=False))
    np.testing.assert_allclose(lively, closed, atol=1e-6)


def test_switches_seed_and_faces_without_arkit_shapes(face) -> None:
    still = np.repeat(face.mean[None], 300, axis=0)
    off, info = add_liveliness(still, face.mean, face, FPS, LivelinessConfig(False, 26, False))
    np.testing.assert_array_equal(off, still)
    assert info["skipped"] == "switched off"
    a, _ = add_liveliness(still, face.mean, face, FPS, LivelinessConfig(seed=3))
    b, _ = add_liveliness(still, face.mean, face, FPS, LivelinessConfig(seed=3))
    c, _ = add_liveliness(still, face.mean, face, FPS, LivelinessConfig(seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    none, info = add_liveliness(still, face.mean, None, FPS)
    assert info["skipped"] and none is not None
    with pytest.raises(InputError, match="blink_rate"):
        add_liveliness(still, face.mean, face, FPS, LivelinessConfig(blink_rate=0))


def test_blink_and_saccade_timing_follow_the_published_ranges() -> None:
    rng = np.random.default_rng(0)
    weights, onsets = blink_weights(int(600 * FPS), FPS, 26.0, rng)
    closed = weights[:, 0] > 0  # eyeBlinkLeft is ARKit's first shape
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], closed, [0]]).astype(int))))
    durations = runs[::2] / FPS
    assert 0.1 <= durations.mean() <= 0.4 and durations.max() <= 0.4
    assert 20 <= len(onsets) / 10 <= 32
    gaze = gaze_angles(int(60 * FPS), FPS, rng)
    assert np.abs(gaze[:, 0]).max() <= 6.0 and np.abs(gaze[:, 1]).max() <= 3.0
    shifts = np.flatnonzero(np.linalg.norm(np.diff(gaze, axis=0), axis=1) > 0.05)
    assert 30 <= len(np.flatnonzero(np.diff(shifts) > 1)) + 1 <= 150  # ~0.5-2 per second
    looks = gaze_weights(np.array([[12.5, 0.0], [0.0, -12.5]]))
    assert looks.max() == pytest.approx(0.5) and looks.min() == 0.0


def test_lids_shut_fully_even_over_a_model_that_widens_or_squints_the_eyes(face) -> None:
    basis = arkit_basis(face)
    shape = lambda name: basis.targets[basis.names.index(name)]  # noqa: E731
    eyes = 0.6 * (shape("eyeWideLeft") + shape("eyeWideRight"))
    eyes[::2] = 0.5 * (shape("eyeSquintLeft") + shape("eyeSquintRight"))[::2]  # ragged motion
    staring = np.repeat((face.mean + eyes)[None], int(60 * FPS), axis=0)
    lively, info = add_liveliness(staring, face.mean, face, FPS, LivelinessConfig(seed=2))
    blink = _solve(face, lively)["eyeBlinkLeft"]
    assert len(info["blinks"]) >= 10
    closed = np.concatenate([[0], (blink > 0.1).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(closed))
    peaks = [blink[a:b].max() for a, b in zip(edges[::2], edges[1::2], strict=True)]
    assert len(peaks) >= 10 and min(peaks) >= 0.9  # every blink reads as shut


def test_eyes_are_the_same_whatever_pieces_the_frames_come_in(face) -> None:
    from mmface4d.animate.liveliness import Liveliness

    still = np.repeat(face.mean[None], int(20 * FPS), axis=0)
    whole, info = add_liveliness(still, face.mean, face, FPS, LivelinessConfig(seed=5))
    lively = Liveliness(face, face.mean, FPS, LivelinessConfig(seed=5))
    cuts = [0, 1, 7, 50, 51, 300, len(still)]
    pieces = [lively.apply(still[a:b], a) for a, b in zip(cuts, cuts[1:], strict=False)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert lively.info["blinks"] == info["blinks"] and len(info["blinks"]) >= 3
    with pytest.raises(InputError, match="first_frame"):
        lively.apply(still[:5], 3)
