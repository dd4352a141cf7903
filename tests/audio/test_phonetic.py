"""The phonetic encoder and phone alignment, on synthetic and (when present) real speech."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from mmface4d.audio.encoders import build_encoder
from mmface4d.audio.io import load_audio
from mmface4d.audio.phonetic import (
    BILABIAL_PHONES,
    _chunks,
    align_phones,
    bilabial_peaks,
    blank_index,
    chunked_log_probs,
    frame_levels,
    phoneme_tokens,
    posteriorgram,
    recognise_log_probs,
)
from mmface4d.errors import InputError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
ENGLISH = SHARED / "speech" / "english_male_test.wav"
SENTENCE = "Bob and Pam made maple bread, baby, by the mill pond."


@pytest.fixture(scope="module")
def utterance():
    from mmface4d.synth.speech import EspeakEngine

    return EspeakEngine(sample_rate=16_000).synthesize(SENTENCE, "en")


@pytest.fixture(scope="module")
def spoken(utterance) -> np.ndarray:
    return utterance.audio


def test_features_are_distributions_plus_level_at_50_hz(spoken: np.ndarray) -> None:
    encoder = build_encoder("phonetic")
    features = encoder(spoken)
    assert features.shape == (1, -(-spoken.size // 320), encoder.dim)
    assert encoder.dim == len(phoneme_tokens()) + 1 and encoder.feature_rate == 50.0
    phones = features[0, :, :-2]
    torch.testing.assert_close(phones.sum(-1), torch.ones(len(phones)), atol=1e-4, rtol=0)
    blank, level = features[0, :, -2], features[0, :, -1]
    assert ((blank >= 0) & (blank <= 1)).all() and level.max() == 0 and level.min() >= -1.5
    frames = encoder.encode_to_frames(np.stack([spoken, spoken]), fps=30.0, num_frames=40)
    assert frames.shape == (2, 40, encoder.dim)
    torch.testing.assert_close(frames[0], frames[1])


def test_posteriorgram_renormalises_without_the_blank() -> None:
    log_probs = np.log(np.array([[0.1, 0.1, 0.8], [0.5, 0.3, 0.2]]))
    features = posteriorgram(log_probs, blank=2)
    np.testing.assert_allclose(features, [[0.5, 0.5, 0.8], [0.625, 0.375, 0.2]], rtol=1e-6)


def test_long_audio_is_chunked_with_overlaps_that_tile_it(spoken: np.ndarray) -> None:
    spans = _chunks(1000, 300, 50)
    kept = np.concatenate([np.arange(a, b) for _, _, a, b in spans])
    np.testing.assert_array_equal(kept, np.arange(1000))
    assert all(start <= a and b <= stop for start, stop, a, b in spans)
    long = np.tile(spoken, 4)
    chunked = chunked_log_probs(long, chunk_s=3.0, overlap_s=1.0)
    whole = recognise_log_probs(long)
    assert chunked.shape == whole.shape
    agree = (chunked.argmax(1) == whole.argmax(1)).mean()
    assert agree > 0.85  # the recogniser sees less context near chunk edges, not another clip


def test_short_and_silent_audio() -> None:
    assert recognise_log_probs(np.zeros(10, np.float32)).shape == (1, len(phoneme_tokens()))
    assert frame_levels(np.zeros(640), 2).tolist() == [0.0, 0.0]
    assert align_phones(np.zeros(16_000, np.float32)) == []
    with pytest.raises(InputError, match="chunk_s"):
        build_encoder("phonetic:chunk_s=2,overlap_s=1")


def test_alignment_finds_the_bilabials_of_synthetic_speech(spoken: np.ndarray) -> None:
    phones = align_phones(spoken)
    labels = [p.label for p in phones]
    # espeak's robotic voice loses some word-initial stops; real voices fare better (below)
    assert sum(label in BILABIAL_PHONES for label in labels) >= 5
    assert all(a.end <= b.start + 1e-9 for a, b in zip(phones, phones[1:], strict=False))
    assert all(p.start < p.end for p in phones)
    assert blank_index() == len(phoneme_tokens()) - 1


def test_bilabial_peaks_find_more_p_b_m_than_the_greedy_path(utterance) -> None:
    bilabial = ("p", "b", "m")
    truth = [(p.start + p.end) / 2 for p in utterance.phonemes if p.symbol in bilabial]
    assert len(truth) == 13  # espeak says "Pam made" with two m
    peaks = bilabial_peaks(utterance.audio)
    found = sum(np.abs(peaks - t).min() < 0.1 for t in truth)
    aligned = align_phones(utterance.audio)
    greedy = [(p.start + p.end) / 2 for p in aligned if p.label in BILABIAL_PHONES]
    assert found >= 10 and found > sum(np.abs(np.array(greedy) - t).min() < 0.1 for t in truth)
    assert len(peaks) <= len(truth) + 2  # few false ones
    assert bilabial_peaks(np.zeros(16_000, np.float32)).size == 0
    with pytest.raises(InputError, match="threshold"):
        bilabial_peaks(utterance.audio, threshold=0)


@pytest.mark.skipif(not ENGLISH.is_file(), reason="../shared/data (real speech) not present")
def test_real_english_speech_is_recognised() -> None:
    audio = load_audio(ENGLISH, 16_000)
    phones = align_phones(audio)
    text = "".join(p.label for p in phones)
    assert "θæŋk" in text or "æŋks" in text  # "... Thanksgiving ..."
    assert sum(p.label in BILABIAL_PHONES for p in phones) >= 5


def test_the_encoder_registry_and_the_class_agree_on_defaults() -> None:
    import inspect

    from mmface4d.audio.encoders import ENCODERS
    from mmface4d.audio.phonetic import PhoneticEncoder

    signature = inspect.signature(PhoneticEncoder.__init__).parameters
    for name, option in ENCODERS["phonetic"].options.items():
        assert signature[name].default == option.default, name
    # the encoder and the lip-closure layer's alignment recognise a clip with the same chunking,
    # so the second asks the cache, not the recogniser
    assert inspect.signature(chunked_log_probs).parameters["overlap_s"].default == (
        signature["overlap_s"].default
    )


def test_the_recogniser_loads_when_audio_is_first_encoded(monkeypatch, spoken) -> None:
    """Building the encoder (loading a model that uses it) does not load the recogniser; its
    width is known beforehand and agrees with the recogniser's classes."""
    from mmface4d.audio import phonetic

    loads = []
    load = phonetic._recogniser.__wrapped__  # the loader itself, with its check of the classes
    monkeypatch.setattr(phonetic, "_recogniser", functools.cache(lambda: loads.append(1) or load()))
    encoder = build_encoder("phonetic")
    assert not loads and encoder.dim == phonetic.NUM_CLASSES + 1
    phonetic.clear_cache()
    assert encoder(spoken[:8000]).shape[-1] == encoder.dim and loads == [1]
    assert len(phoneme_tokens()) == phonetic.NUM_CLASSES
