"""Waveform augmentation: known values (pitch of a sine, measured SNR, reverb decay rate), exact
lengths, float32 output, reproducibility from a seed, and the InputError cases."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

from mmface4d.audio.augment import (
    AugmentConfig,
    active_speech_power,
    add_noise,
    add_reverb,
    augment,
    change_level,
    change_speed,
    coloured_noise,
    shift_pitch,
)
from mmface4d.errors import InputError

SR = 16_000


def sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / SR)[np.argmax(spectrum)])


def speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope, bracketed by silence."""
    t = np.arange(round(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (t > 0.1) * (t < seconds - 0.1)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * voiced * envelope + noise * envelope).astype(np.float32)


# ----------------------------------------------------------------------------- speed


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.37, 2.0, 0.51])
def test_change_speed_length_and_dtype(factor: float) -> None:
    audio = speech_like(0.5)
    out = change_speed(audio, factor)
    assert out.shape == (round(len(audio) / factor),)
    assert out.dtype == np.float32


def test_change_speed_moves_pitch_with_it() -> None:
    out = change_speed(sine(200.0), 1.25)
    assert len(out) == 12_800
    assert peak_frequency(out) == pytest.approx(250.0, rel=0.01)
    np.testing.assert_array_equal(change_speed(sine(200.0), 1.0), sine(200.0))


@pytest.mark.parametrize("factor", [0.5, 2.01, 0.0, -1.0, float("nan"), "fast"])
def test_change_speed_rejects_bad_factor(factor: object) -> None:
    with pytest.raises(InputError, match="factor"):
        change_speed(sine(200.0, 0.1), factor)  # type: ignore[arg-type]


def test_bad_audio_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"audio.*\(N,\)"):
        change_speed(np.zeros((2, 100), dtype=np.float32), 1.1)
    with pytest.raises(InputError, match="audio"):
        change_level([0.1, 0.2], 3.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="finite"):
        shift_pitch(np.array([0.0, np.nan]), SR, 2.0)


# ----------------------------------------------------------------------------- pitch


@pytest.mark.parametrize("semitones", [12.0, -12.0, 3.0, -5.0])
def test_shift_pitch_moves_a_sine_and_keeps_duration(semitones: float) -> None:
    audio = sine(200.0)
    out = shift_pitch(audio, SR, semitones)
    assert out.shape == audio.shape and out.dtype == np.float32
    expected = 200.0 * 2 ** (semitones / 12)
    assert peak_frequency(out) == pytest.approx(expected, rel=0.05)
    # the level is kept: a steady sine stays a steady sine of the same RMS
    middle = out[2000:-2000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_shift_pitch_moves_every_harmonic() -> None:
    t = np.arange(SR) / SR
    harmonic = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6)).astype(np.float32)
    out = shift_pitch(harmonic, SR, 12.0)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(SR)))
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    strongest = np.sort(freqs[np.argsort(spectrum)[-60:]])
    for k in range(1, 4):  # 300, 600, 900 Hz are among the strong bins; 150 Hz is gone
        assert np.min(np.abs(strongest - 300 * k)) < 10
    assert np.min(np.abs(strongest - 150)) > 50


def test_shift_pitch_zero_is_a_copy() -> None:
    audio = speech_like(0.3)
    out = shift_pitch(audio, SR, 0.0)
    np.testing.assert_array_equal(out, audio)
    assert out is not audio


@pytest.mark.parametrize("semitones", [12.5, -13.0, float("inf")])
def test_shift_pitch_rejects_large_shifts(semitones: float) -> None:
    with pytest.raises(InputError, match="semitones"):
        shift_pitch(sine(200.0, 0.1), SR, semitones)


# ----------------------------------------------------------------------------- noise


def slow_active_power(audio: np.ndarray, sample_rate: int) -> float:
    """Frame by frame: 20 ms frames (the last one may be short), keep those within 40 dB of the
    loudest by RMS, and average the squared samples of the kept ones."""
    frame = round(0.02 * sample_rate)
    chunks = [audio[i : i + frame].astype(np.float64) for i in range(0, len(audio), frame)]
    rms = [np.sqrt(np.mean(c**2)) for c in chunks]
    kept = [c for c, r in zip(chunks, rms, strict=True) if 20 * np.log10(max(rms) / r) <= 40]
    return float(np.sum([np.sum(c**2) for c in kept]) / np.sum([len(c) for c in kept]))


def test_active_speech_power_against_slow_reference() -> None:
    rng = np.random.default_rng(3)
    audio = rng.standard_normal(10_050) * np.repeat(10.0 ** rng.uniform(-4, 0, 33), 305)[:10_050]
    assert active_speech_power(audio, SR) == pytest.approx(slow_active_power(audio, SR), rel=1e-9)
    # silence around the speech does not change it
    padded = np.concatenate([np.zeros(8000), sine(300.0, 0.5), np.zeros(4000)])
    assert active_speech_power(padded, SR) == pytest.approx(0.125, rel=1e-3)
    assert active_speech_power(np.zeros(500), SR) == 0.0


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr_db", [0.0, 12.0, 30.0])
def test_add_noise_hits_the_snr_on_tone_and_silence(colour: str, snr_db: float) -> None:
    audio = np.concatenate([np.zeros(8000), sine(300.0, 0.5, amplitude=0.2), np.zeros(6000)])
    out = add_noise(audio, snr_db, np.random.default_rng(1), colour)
    assert out.shape == audio.shape and out.dtype == np.float32
    noise = out.astype(np.float64) - audio
    measured = 10 * np.log10((0.2**2 / 2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize(("colour", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours_have_their_spectral_slope(colour: str, slope: float) -> None:
    noise = coloured_noise(4 * SR, np.random.default_rng(2), colour, SR)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    freqs = np.fft.rfftfreq(len(noise), 1 / SR)
    power = np.abs(np.fft.rfft(noise)) ** 2
    band = (freqs > 100) & (freqs < 6000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.1)


def test_add_noise_on_silence_uses_a_low_fixed_level() -> None:
    out = add_noise(np.zeros(SR, dtype=np.float32), 10.0, np.random.default_rng(0), "pink")
    assert np.all(np.isfinite(out))
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(1e-3, rel=1e-3)


def test_add_noise_is_reproducible() -> None:
    audio = speech_like(0.5)
    first = add_noise(audio, 10.0, np.random.default_rng(7), "brown")
    np.testing.assert_array_equal(first, add_noise(audio, 10.0, np.random.default_rng(7), "brown"))
    assert not np.allclose(first, add_noise(audio, 10.0, np.random.default_rng(8), "brown"))


def test_add_noise_input_errors() -> None:
    with pytest.raises(InputError, match="colour"):
        add_noise(sine(200.0, 0.1), 10.0, np.random.default_rng(0), "purple")
    with pytest.raises(InputError, match="rng"):
        add_noise(sine(200.0, 0.1), 10.0, 0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="snr_db"):
        add_noise(sine(200.0, 0.1), float("nan"), np.random.default_rng(0))


# ----------------------------------------------------------------------------- reverb


@pytest.mark.parametrize("rt60", [0.2, 0.5])
def test_reverb_of_an_impulse_decays_60_db_in_rt60(rt60: float) -> None:
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[0] = 1.0
    raw = add_reverb(impulse, SR, rt60, np.random.default_rng(4))
    assert raw.shape == impulse.shape and raw.dtype == np.float32
    out = raw.astype(np.float64)
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(1 / SR), rel=1e-4)
    assert np.argmax(np.abs(out)) == 0  # the direct path stays at sample 0 (no added latency)
    # direct-to-reverberant energy ratio: the 3 dB default
    assert 10 * np.log10(out[0] ** 2 / np.sum(out[1:] ** 2)) == pytest.approx(3.0, abs=0.05)
    # energy envelope in 10 ms frames over the first 40 dB of the decay
    frame = SR // 100
    energy = np.add.reduceat(out[1:] ** 2, np.arange(0, SR - 1, frame))
    times = (np.arange(len(energy)) + 0.5) * frame / SR
    fit = (times > 0.02) & (times < 0.66 * rt60)
    slope = np.polyfit(times[fit], 10 * np.log10(energy[fit]), 1)[0]  # dB per second
    assert slope == pytest.approx(-60.0 / rt60, rel=0.25)
    assert np.max(np.abs(out[round(1.1 * rt60 * SR) :])) < 1e-9  # the response ends at rt60


def test_reverb_keeps_length_and_rms_and_is_reproducible() -> None:
    audio = speech_like(1.0)
    out = add_reverb(audio, SR, 0.4, np.random.default_rng(5))
    assert out.shape == audio.shape and out.dtype == np.float32
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(rms, rel=1e-4)
    assert not np.allclose(out, audio, atol=1e-3)
    np.testing.assert_array_equal(out, add_reverb(audio, SR, 0.4, np.random.default_rng(5)))
    assert not np.allclose(out, add_reverb(audio, SR, 0.4, np.random.default_rng(6)))
    silent = add_reverb(np.zeros(100, dtype=np.float32), SR, 0.4, np.random.default_rng(5))
    np.testing.assert_array_equal(silent, np.zeros(100))


@pytest.mark.parametrize("rt60", [0.05, 2.0, 0.0, -0.3, 5.0])
def test_reverb_rejects_rt60_out_of_range(rt60: float) -> None:
    with pytest.raises(InputError, match="rt60"):
        add_reverb(sine(200.0, 0.1), SR, rt60, np.random.default_rng(0))


# ----------------------------------------------------------------------------- level


def test_change_level_known_values_and_clipping() -> None:
    audio = np.array([0.1, -0.2, 0.5, -0.9], dtype=np.float32)
    quieter = change_level(audio, -20.0)
    assert quieter.dtype == np.float32
    np.testing.assert_allclose(quieter, audio * 0.1, rtol=1e-6)
    louder = change_level(audio, 20.0)
    np.testing.assert_allclose(louder, [1.0, -1.0, 1.0, -1.0])
    np.testing.assert_allclose(change_level(audio, 6.0)[:2], audio[:2] * 10 ** (6 / 20), rtol=1e-6)
    with pytest.raises(InputError, match="gain_db"):
        change_level(audio, float("inf"))


# ----------------------------------------------------------------------------- config, augment


def test_config_defaults_and_field_types() -> None:
    config = AugmentConfig()
    assert config.validate() is config
    assert (config.speed, config.pitch_semitones, config.snr_db) == ((0.9, 1.1), (-3, 3), (5, 40))
    assert (config.rt60, config.gain_db) == ((0.1, 0.7), (-25.0, 5.0))
    hints = typing.get_type_hints(AugmentConfig)
    for name in ("speed", "pitch_semitones", "snr_db", "rt60", "gain_db"):
        assert hints[name] == tuple[float, float]  # what the command-line override system needs


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed_probability", 1.5),
        ("noise_probability", -0.1),
        ("level_probability", "often"),
        ("speed", (1.1, 0.9)),
        ("speed", (0.4, 1.1)),
        ("speed", (0.9, 2.5)),
        ("pitch_semitones", (-13.0, 0.0)),
        ("snr_db", (40.0, 5.0)),
        ("snr_db", (5.0,)),
        ("rt60", (0.01, 0.5)),
        ("rt60", (0.1, 3.0)),
        ("gain_db", (5.0, -25.0)),
        ("gain_db", "loud"),
    ],
)
def test_config_validate_names_the_bad_field(field: str, value: object) -> None:
    config = dataclasses.replace(AugmentConfig(), **{field: value})
    with pytest.raises(InputError, match=f"^{field}:"):
        config.validate()


def test_draw_speed() -> None:
    rng = np.random.default_rng(0)
    assert AugmentConfig(speed_probability=0.0).draw_speed(rng) == 1.0
    assert AugmentConfig(enabled=False, speed_probability=1.0).draw_speed(rng) == 1.0
    always = AugmentConfig(speed_probability=1.0, speed=(0.8, 1.2))
    draws = [always.draw_speed(rng) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in draws) and np.std(draws) > 0.05
    half = [AugmentConfig().draw_speed(rng) for _ in range(400)]
    assert 0.4 < np.mean(np.array(half) == 1.0) < 0.6


def test_augment_one_second_shape_dtype_and_reproducibility() -> None:
    audio = speech_like(1.0)
    config = AugmentConfig(
        pitch_probability=1.0,
        reverb_probability=1.0,
        noise_probability=1.0,
        level_probability=1.0,
    )
    out = augment(audio, SR, config, np.random.default_rng(11))
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.all(np.abs(out) <= 1.0)
    assert not np.allclose(out, audio, atol=1e-3)
    np.testing.assert_array_equal(out, augment(audio, SR, config, np.random.default_rng(11)))
    assert not np.allclose(out, augment(audio, SR, config, np.random.default_rng(12)))


def test_augment_disabled_or_never_drawn_returns_the_input() -> None:
    audio = speech_like(0.5)
    off = augment(audio, SR, AugmentConfig(enabled=False), np.random.default_rng(0))
    np.testing.assert_array_equal(off, audio)
    assert off is not audio and off.dtype == np.float32
    never = AugmentConfig(
        pitch_probability=0.0, reverb_probability=0.0, noise_probability=0.0, level_probability=0.0
    )
    np.testing.assert_array_equal(augment(audio, SR, never, np.random.default_rng(0)), audio)


def test_augment_applies_a_single_augmentation_exactly() -> None:
    audio = speech_like(0.5)
    level_only = AugmentConfig(
        pitch_probability=0.0,
        reverb_probability=0.0,
        noise_probability=0.0,
        level_probability=1.0,
        gain_db=(-6.0, -6.0),
    )
    out = augment(audio, SR, level_only, np.random.default_rng(0))
    np.testing.assert_allclose(out, change_level(audio, -6.0), rtol=1e-6)


def test_augment_input_errors() -> None:
    audio = speech_like(0.1)
    with pytest.raises(InputError, match="config"):
        augment(audio, SR, {"enabled": True}, np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="reverb_probability"):
        augment(audio, SR, AugmentConfig(reverb_probability=2.0), np.random.default_rng(0))
    with pytest.raises(InputError, match="rng"):
        augment(audio, SR, AugmentConfig(), 42)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="sample_rate"):
        augment(audio, 0, AugmentConfig(), np.random.default_rng(0))


def test_shift_pitch_handles_every_length() -> None:
    # regression: float arange overshooting its stop indexed past the last STFT frame
    rng = np.random.default_rng(0)
    for n in range(16_000, 17_200, 37):
        for semitones in (-1.3, 2.2):
            out = shift_pitch(0.1 * rng.standard_normal(n).astype(np.float32), 16_000, semitones)
            assert out.shape == (n,)
