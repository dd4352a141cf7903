"""The speech/pause mouth-motion measure on constructed clips with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmface4d.animate.lipsync import (
    mouth_opening,
    plot_speech_pause,
    speech_pause_motion,
    voice_activity,
)
from mmface4d.errors import InputError
from mmface4d.facemodel.regions import INNER_LIP_PAIRS

FPS, RATE = 30.0, 16_000
LANDMARKS = np.arange(68)  # vertex i is landmark i


def _speech(seconds_on: list[tuple[float, float]], total: float) -> np.ndarray:
    """A 200 Hz tone during the given spans, silence elsewhere."""
    t = np.arange(int(total * RATE)) / RATE
    audio = np.zeros_like(t)
    for a, b in seconds_on:
        on = (t >= a) & (t < b)
        audio[on] = 0.3 * np.sin(2 * np.pi * 200 * t[on])
    return audio.astype(np.float32)


def _face(opening: np.ndarray) -> np.ndarray:
    """(T, 68, 3) points whose inner-lip pairs are ``opening`` apart (metres)."""
    vertices = np.zeros((len(opening), 68, 3), dtype=np.float32)
    for _upper, lower in INNER_LIP_PAIRS:
        vertices[:, lower, 1] = -opening
    return vertices


def test_mouth_opening_known_value() -> None:
    opening = np.array([0.0, 0.005, 0.01])
    np.testing.assert_allclose(mouth_opening(_face(opening), LANDMARKS), opening, atol=1e-7)
    with pytest.raises(InputError, match="landmarks"):
        mouth_opening(_face(opening), np.arange(5))


def test_voice_activity_finds_speech_and_fills_short_gaps() -> None:
    audio = _speech([(1.0, 2.0), (2.1, 3.0)], 4.0)  # a 0.1 s gap inside speech
    active = voice_activity(audio, RATE, FPS, 120)
    assert not active[:29].any() and not active[92:].any()
    assert active[31:89].all()  # the short gap counts as speech


def test_ratio_is_large_when_the_mouth_moves_only_in_speech() -> None:
    audio = _speech([(1.0, 3.0)], 4.0)
    t = (np.arange(120) + 0.5) / FPS
    talking = np.where((t > 1.0) & (t < 3.0), 0.005 * (1 + np.sin(2 * np.pi * 4 * t)), 0.001)
    motion = speech_pause_motion(_face(talking), LANDMARKS, audio, RATE, FPS)
    assert motion.motion_ratio > 20
    assert motion.speech_opening > 4 * motion.pause_opening
    mumbling = 0.005 * (1 + np.sin(2 * np.pi * 4 * t))  # moves all the time
    always = speech_pause_motion(_face(mumbling), LANDMARKS, audio, RATE, FPS)
    assert 0.5 < always.motion_ratio < 2.0


def test_needs_speech_and_pauses(tmp_path: Path) -> None:
    audio = _speech([(0.0, 4.0)], 4.0)
    with pytest.raises(InputError, match="pause frames"):
        speech_pause_motion(_face(np.zeros(120)), LANDMARKS, audio, RATE, FPS)
    picture = plot_speech_pause(
        tmp_path / "p.png", _face(np.zeros(120)), LANDMARKS, _speech([(1.0, 2.0)], 4.0), RATE, FPS
    )
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_openness_curve_follows_the_phones() -> None:
    from mmface4d.animate.lipsync import openness_curve

    phones = [("m", 0.0, 0.1), ("a", 0.1, 0.3), ("i", 0.3, 0.5), ("p", 0.5, 0.6)]
    curve = openness_curve(phones, FPS, 24, smooth_s=0.0)
    assert curve[1] == 0.0 and curve[5] == 1.0 and curve[12] == 0.35 and curve[16] == 0.0
    assert curve[20] == 0.0  # after the last phone: a pause, mouth at rest
    smooth = openness_curve(phones, FPS, 24)
    assert smooth.argmax() in (4, 5, 6) and 0 < smooth[3] < 1
