"""Streaming inference: chunks of any size give the whole file's frames, within the look-ahead,
in bounded memory; the live defaults stay near the file's defaults."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d.animate.api import load_animator
from mmface4d.animate.closure import ClosureConfig
from mmface4d.animate.liveliness import LivelinessConfig
from mmface4d.animate.metrics import inner_lip_gap
from mmface4d.animate.streaming import (
    LIVE,
    OFFLINE,
    PIECE_FRAMES,
    FaceStream,
    StreamSettings,
    stream_frames,
)
from mmface4d.errors import InputError
from mmface4d.export.arkit import solve_arkit_weights
from mmface4d.facemodel.arkit import ARKIT_52

RATE = 16_000


@pytest.fixture(scope="module")
def animator():
    return load_animator()


@pytest.fixture(scope="module")
def speaker(animator):
    return animator.builtin_speaker(None, animator.default_style)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 1.5 s of speech, 1.5 s of digital silence, then speech again."""
    from mmface4d.synth.speech import EspeakEngine

    said = EspeakEngine(sample_rate=RATE).synthesize("Bob made maple bread.", "en").audio
    said = np.asarray(said, np.float32)
    assert 1.0 < said.size / RATE < 2.0
    return np.concatenate([said, np.zeros(int(1.5 * RATE), np.float32), said])


def _silence(speech: np.ndarray) -> tuple[float, float]:
    """Start and end of the silence in :func:`speech`, seconds."""
    said = (speech.size - int(1.5 * RATE)) // 2
    return said / RATE, said / RATE + 1.5


@pytest.fixture(scope="module")
def whole_file(animator, speaker, speech):
    """The file's frames with the live settings and every layer."""
    vertices, _ = animator.animate_speech(speech, speaker, settings=LIVE)
    return vertices


def _stream(animator, speaker, speech, chunk: int):
    stream = animator.stream(speaker)
    batches, waited = [], []
    for start in range(0, speech.size, chunk):
        batches.append(stream.push(speech[start : start + chunk]))
        heard = (start + len(speech[start : start + chunk])) / RATE
        # every frame whose end is lookahead_s behind the audio heard has been given
        waited.append(stream.frames_given >= int((heard - LIVE.lookahead_s) * animator.fps))
    batches.append(stream.flush())
    assert [b.start for b in batches if len(b)] == list(
        np.cumsum([0] + [len(b) for b in batches if len(b)])[:-1]
    )
    assert all(waited)
    vertices = np.concatenate([b.vertices for b in batches])
    arkit = np.concatenate([b.arkit for b in batches])
    return vertices, arkit


def test_chunks_of_10_ms_37_ms_and_1_s_give_the_whole_files_frames(
    animator, speaker, speech, whole_file
) -> None:
    small, arkit = _stream(animator, speaker, speech, 160)
    assert small.shape == whole_file.shape == (round(speech.size * 30 / RATE), 10794, 3)
    # the same steps, the same arithmetic: equal to float rounding (measured: 0)
    np.testing.assert_allclose(small, whole_file, rtol=0, atol=1e-6)
    for chunk in (592, RATE):
        vertices, weights = _stream(animator, speaker, speech, chunk)
        np.testing.assert_array_equal(vertices, small)
        np.testing.assert_array_equal(weights, arkit)
    # a whole file's way: pieces of at most PIECE_FRAMES, the same frames
    stream = animator.stream(speaker, settings=OFFLINE)
    pieces = list(stream_frames(stream, speech, 4 * RATE))
    assert max(len(p) for p in pieces) <= PIECE_FRAMES < len(whole_file)
    offline, _ = animator.animate_speech(speech, speaker, settings=OFFLINE)
    np.testing.assert_array_equal(np.concatenate([p.vertices for p in pieces]), offline)


def test_frames_carry_the_52_arkit_weights_of_their_vertices(
    animator, speaker, speech, whole_file
) -> None:
    stream = animator.stream(speaker)
    frames = stream.push(speech[:RATE])
    later = len(stream.push(speech[RATE:])) + len(stream.flush())
    assert frames.arkit.shape == (len(frames), len(ARKIT_52))
    assert len(frames) + later == len(whole_file)
    solver, columns = animator.arkit_solver()
    offsets = whole_file[: len(frames)] - speaker.template[None]
    expected = solve_arkit_weights(offsets, solver.flat_basis.reshape(len(columns), -1, 3))
    np.testing.assert_allclose(frames.arkit[:, columns], expected.weights, atol=1e-4)
    assert 0.0 <= frames.arkit.min() and frames.arkit.max() <= 1.0
    assert frames.arkit[:, ARKIT_52.index("jawOpen")].max() > 0.05  # the mouth opens


def test_silence_rests_the_lips_and_speech_resumes(animator, speaker, speech, whole_file) -> None:
    gap = inner_lip_gap(whole_file, animator.face_model.landmarks)
    rest = inner_lip_gap(speaker.template[None], animator.face_model.landmarks)[0]
    start, end = _silence(speech)
    silence = slice(int((start + 0.4) * 30), int((end - 0.3) * 30))  # the rest's ramps aside
    assert np.abs(gap[silence] - rest).max() < 0.5e-3  # lips at rest (0.3 mm), not drifting
    lower = np.setdiff1d(np.arange(whole_file.shape[1]), animator.face_model.regions["upper_face"])
    motion = np.linalg.norm(np.diff(whole_file[silence][:, lower], axis=0), axis=2).max()
    assert motion < 0.5e-3  # the lower face is still (the eyes blink and look around)
    before, after = gap[: int(start * 30)], gap[int(end * 30) :]
    assert np.ptp(before) > 4e-3 and np.ptp(after) > 4e-3  # the mouth talks again


def test_the_live_defaults_stay_near_the_files_defaults(animator, speaker, speech, whole_file):
    offline, _ = animator.animate_speech(speech, speaker, settings=OFFLINE)
    rms = np.sqrt((np.linalg.norm(whole_file - offline, axis=2) ** 2).mean())
    landmarks = animator.face_model.landmarks
    corr = np.corrcoef(inner_lip_gap(whole_file, landmarks), inner_lip_gap(offline, landmarks))
    # docs/STREAMING.md: 0.77 mm RMS and a lip-gap correlation of 0.83 over four real clips
    assert rms < 1.2e-3 and corr[0, 1] > 0.7


def test_state_stays_bounded_over_a_long_stream(animator, speaker, monkeypatch) -> None:
    from mmface4d.audio import phonetic

    table = np.log(np.random.default_rng(0).dirichlet(np.ones(191) * 0.2, size=997))

    def recognise(audio, *args, **kwargs):  # a fast stand-in for the recogniser
        count = max(1, -(-len(audio) // phonetic.HOP))
        return table[np.arange(count) % len(table)].astype(np.float32)

    monkeypatch.setattr(phonetic, "chunked_log_probs", recognise)
    settings = StreamSettings(lookahead_s=2.2, step_s=2.0, context_s=3.0)
    stream = FaceStream(
        animator,
        speaker,
        settings,
        closure=ClosureConfig(),
        liveliness=LivelinessConfig(),
        arkit=False,
    )
    rng = np.random.default_rng(1)
    held = []
    for second in range(180):  # three minutes of noise bursts and pauses
        level = 0.1 if second % 7 else 0.0
        stream.push((rng.standard_normal(RATE) * level).astype(np.float32))
        held.append(stream.retained())
    assert stream.frames_given >= (180 - 3) * 30
    for key in held[0]:
        late = max(h[key] for h in held[90:])
        assert late <= max(h[key] for h in held[10:60]), key  # no growth after a minute
    assert held[-1]["audio_samples"] <= 3.0 * RATE  # ~recognition context + step + look-ahead
    assert held[-1]["feature_frames"] <= 5.1 * 50  # ~context + step, 50 features a second
    assert held[-1]["eye_events"] <= 3


def test_push_names_what_is_wrong_with_its_samples(animator, speaker) -> None:
    stream = animator.stream(speaker)
    with pytest.raises(InputError, match="samples: expected a \\(N,\\) float32"):
        stream.push(np.zeros(160, np.int16))
    with pytest.raises(InputError, match="samples: expected"):
        stream.push(np.zeros((160, 2), np.float32))
    with pytest.raises(InputError, match="samples: expected"):
        stream.push([0.0] * 160)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="finite"):
        stream.push(np.full(160, np.nan, np.float32))
    assert len(stream.push(np.zeros(0, np.float32))) == 0
    stream.flush()
    with pytest.raises(InputError, match="flushed"):
        stream.push(np.zeros(160, np.float32))
    with pytest.raises(InputError, match="lookahead_s"):
        animator.stream(speaker, settings=StreamSettings(lookahead_s=0.1, step_s=0.2))
    with pytest.raises(InputError, match="speaker"):
        FaceStream(animator, speaker.template)  # type: ignore[arg-type]


def test_any_registered_model_and_encoder_streams_as_it_animates_a_file() -> None:
    import torch

    from mmface4d.animate.animator import Animator
    from mmface4d.animate.checkpoint import SpeechToFace
    from mmface4d.animate.registry import build_model
    from mmface4d.audio.encoders import build_encoder

    torch.manual_seed(0)
    encoder = build_encoder("mel")
    model = build_model("faceformer", 40, encoder.dim).eval()  # no linear last layer
    animator = Animator(SpeechToFace(encoder, model), "faceformer")
    rng = np.random.default_rng(0)
    speaker = animator.speaker(rng.standard_normal((40, 3)), rng.standard_normal((5, 40, 3)))
    audio = (rng.standard_normal(2 * RATE) * 0.1).astype(np.float32)
    settings = StreamSettings(lookahead_s=0.3, step_s=0.2, context_s=1.0)
    whole = animator.synthesise(audio, speaker, settings=settings)
    stream = animator.stream(speaker, settings=settings)
    given = [stream.push(audio[k : k + 592]) for k in range(0, audio.size, 592)]
    given.append(stream.flush())
    assert all(b.arkit is None for b in given)  # no face model, no ARKit shapes
    np.testing.assert_allclose(np.concatenate([b.vertices for b in given]), whole, atol=1e-6)
