"""The lip-closure layer: lips meet at recognised p/b/m, and only the opening changes."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d.animate.closure import ClosureConfig, close_lips, closure_weights, pause_weights
from mmface4d.animate.metrics import inner_lip_gap
from mmface4d.errors import InputError
from mmface4d.export.arkit import arkit_basis
from mmface4d.facemodel.sources import load_face_model

FPS = 30.0


@pytest.fixture(scope="module")
def face():
    return load_face_model("synth:vertices=5000")


def _speech(face, frames=90):
    """Jaw opening like syllables, a smile that grows, and brows that move with the speech."""
    basis = arkit_basis(face)
    shape = {n: basis.targets[basis.names.index(n)] for n in ("jawOpen", "mouthSmileLeft")}
    brow = basis.targets[basis.names.index("browInnerUp")]
    t = np.arange(frames) / FPS
    jaw = 0.35 * (1 + np.sin(2 * np.pi * 4 * t)) / 2 + 0.1
    smile = np.linspace(0.0, 0.6, frames)
    offsets = (
        jaw[:, None, None] * shape["jawOpen"]
        + smile[:, None, None] * shape["mouthSmileLeft"]
        + jaw[:, None, None] * 0.5 * brow
    )
    return (face.mean[None] + offsets).astype(np.float32), jaw


def test_weights_hold_at_the_bilabial_and_vanish_away_from_it() -> None:
    centres = [1.0]
    w = closure_weights(
        centres, FPS, 90, ClosureConfig(lead_s=0.05, lag_s=0.02, ramp_s=0.05, threshold=0.1)
    )
    assert w[29] == 1.0  # frame centred at 0.983 s, inside the hold
    assert w[:20].max() == 0.0 and w[40:].max() == 0.0
    assert 0.0 < w[27] < 1.0  # ramping in
    assert closure_weights([], FPS, 30).max() == 0.0


def test_lips_meet_at_the_bilabial_and_the_rest_of_the_face_keeps_its_motion(face) -> None:
    speech, _ = _speech(face)
    weights = closure_weights([1.0, 2.0], FPS, len(speech))
    closed, info = close_lips(
        speech, face.mean, face.landmarks, face.regions["upper_face"], weights
    )
    gap, before = inner_lip_gap(closed, face.landmarks), inner_lip_gap(speech, face.landmarks)
    neutral = float(inner_lip_gap(face.mean[None], face.landmarks)[0])
    assert before[29] > neutral + 3e-3  # the mouth was open there
    assert gap[29] < neutral + 0.5e-3 and gap[59] < neutral + 0.5e-3  # lips touching
    assert gap[29] > neutral  # touching, not crossing
    far = np.r_[0:20, 40:50, 70:90]
    np.testing.assert_allclose(closed[far], speech[far], atol=1e-7)  # away from p/b/m: as before
    upper = face.regions["upper_face"]
    np.testing.assert_allclose(closed[:, upper], speech[:, upper], atol=1e-7)  # brows untouched
    basis = arkit_basis(face)
    smile = basis.targets[basis.names.index("mouthSmileLeft")]
    corner = int(np.argmax(np.linalg.norm(smile, axis=1)))
    lift = lambda v: float((v[59, corner] - face.mean[corner]) @ smile[corner])  # noqa: E731
    assert lift(closed) == pytest.approx(lift(speech), rel=0.25)  # the smile stays while closed
    assert info["closed_frames"] >= 4


def test_lips_of_a_neutral_face_with_parted_lips_meet_at_the_bilabial_too(face) -> None:
    # a character whose neutral mouth is slightly open (ICT FaceKit's: about 1 mm)
    basis = arkit_basis(face)
    jaw = basis.targets[basis.names.index("jawOpen")]
    parted = (face.mean + 0.08 * jaw).astype(np.float32)
    rest = float(inner_lip_gap(parted[None], face.landmarks)[0])
    assert rest > 1.5e-3
    speech, _ = _speech(face)
    speech = speech - face.mean[None] + parted[None]
    weights = closure_weights([1.0, 2.0], FPS, len(speech))
    closed, _ = close_lips(speech, parted, face.landmarks, face.regions["upper_face"], weights)
    gap = inner_lip_gap(closed, face.landmarks)
    assert gap[29] < 0.6e-3 and gap[59] < 0.6e-3  # touching, not the neutral's gap
    assert gap[29] > 0.0


def test_nothing_changes_without_bilabials_landmarks_or_motion_and_when_off(face) -> None:
    speech, _ = _speech(face)
    upper = face.regions["upper_face"]
    cases = [
        (speech, face.landmarks, [], ClosureConfig(), "no bilabial or pause"),
        (speech, None, [1.0], ClosureConfig(), "landmarks"),
        (speech, face.landmarks, [1.0], ClosureConfig(enabled=False), "off"),
    ]
    still = np.repeat(speech[:1], 90, axis=0)
    cases.append((still, face.landmarks, [1.0], ClosureConfig(), "hardly moves"))
    for vertices, landmarks, centres, config, reason in cases:
        weights = closure_weights(centres, FPS, len(vertices))
        out, info = close_lips(vertices, face.mean, landmarks, upper, weights, config)
        np.testing.assert_array_equal(out, vertices)
        assert reason in info["skipped"]
    none = np.zeros(len(speech))
    with pytest.raises(InputError, match="threshold"):
        close_lips(speech, face.mean, face.landmarks, upper, none, ClosureConfig(threshold=1))
    with pytest.raises(InputError, match="ramp_s"):
        close_lips(speech, face.mean, face.landmarks, upper, none, ClosureConfig(ramp_s=-1))
    with pytest.raises(InputError, match="weights"):
        close_lips(speech, face.mean, face.landmarks, upper, none[:5])


def test_lips_rest_in_pauses_rising_from_the_speech_edge() -> None:
    speech = np.r_[np.zeros(10, bool), np.ones(30, bool), np.zeros(20, bool)]
    w = pause_weights(speech, FPS, 0.15)  # 4.5 frames of rise
    assert w[10:40].max() == 0.0  # speaking: the model's mouth
    assert w[0] == 1.0 and w[50:].min() == 1.0  # well inside the pauses: at rest
    assert 0 < w[40] < w[41] < w[43] < 1.0 == w[44]  # rising from the edge
    assert pause_weights(np.ones(5, bool), FPS, 0.15).max() == 0.0
    assert pause_weights(np.zeros(5, bool), FPS, 0.15).min() == 1.0


def test_animate_closes_the_lips_at_spoken_bilabials_unless_switched_off() -> None:
    from mmface4d.animate.api import animate
    from mmface4d.animate.metrics import CLOSED_GAP
    from mmface4d.synth.speech import EspeakEngine

    said = EspeakEngine(sample_rate=16_000).synthesize(
        "Bob and Pam made maple bread, baby, by the mill pond.", "en"
    )
    truth = [(p.start, p.end) for p in said.phonemes if p.symbol in ("p", "b", "m")]

    def closed_at(result) -> int:
        gap = inner_lip_gap(result.vertices, result.face_model.landmarks)
        frames = [(int(a * FPS) - 2, int(np.ceil(b * FPS)) + 2) for a, b in truth]
        return sum(gap[max(0, a) : b].min() < CLOSED_GAP for a, b in frames)

    kwargs = dict(sample_rate=16_000, model="default", liveliness=None)
    layered = animate(said.audio, **kwargs)
    bare = animate(said.audio, closure=ClosureConfig(enabled=False), **kwargs)
    assert closed_at(layered) >= 10 > closed_at(bare)  # of the 13 p, b, m spoken
    assert len(layered.metadata["lip_closure"]["bilabials"]) >= 10
    assert bare.metadata["lip_closure"]["skipped"] == "switched off"
    gap = inner_lip_gap(layered.vertices, layered.face_model.landmarks)
    assert np.percentile(gap, 90) > 4e-3  # the mouth still opens for the vowels
