"""Waveform augmentation, so that a speech-to-face model trained on synthetic (espeak) speech
generalises to real recorded human speech.

Synthetic speech is clean, level-normalised, dry and comes from a handful of voices. Each
augmentation below simulates one way real recordings differ:

- :func:`change_speed`: speaking rate (and, with it, pitch), like tape or Kaldi speed
  perturbation. Changes the duration, so :func:`augment` does NOT apply it: the caller must
  resample the mesh frames in time as well (draw the factor with :meth:`AugmentConfig.draw_speed`).
- :func:`shift_pitch`: other voices (higher or lower fundamental and formants) at the same
  duration, by a phase-vocoder time stretch followed by resampling.
- :func:`add_noise`: background noise (fans, traffic, microphone hiss) as white, pink (1/f) or
  brown (1/f^2) noise at a given speech-to-noise ratio measured on the active speech only.
- :func:`add_reverb`: a room, by convolving with a synthetic impulse response (direct path, then
  exponentially decaying noise that falls 60 dB in ``rt60`` seconds, slightly low-passed).
- :func:`change_level`: microphone gain (quiet recordings, and loud ones that clip).

Defaults (:class:`AugmentConfig`), each applied with its own probability: speed 0.9-1.1 (p 0.5,
caller's job), pitch -3..+3 semitones (p 0.3), reverb RT60 0.1-0.7 s (p 0.3), noise SNR
5-40 dB (p 0.5), gain -25..+5 dB (p 0.8). Every random draw comes from an explicit
:class:`numpy.random.Generator`, so a seed reproduces an augmentation exactly.

Audio is mono, shape (N,), float in [-1, 1]; every function returns a new float32 array.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from mmface4d.audio.augment_config import (
    MAX_SEMITONES,
    RT60_RANGE,
    AugmentConfig,
    check_number,
    check_rng,
)
from mmface4d.errors import InputError

NOISE_COLOURS = ("white", "pink", "brown")
"""Noise spectra of :func:`add_noise`: flat, 1/f and 1/f^2 power."""

SILENT_NOISE_RMS = 1e-3
"""RMS of the noise added to all-zero input (-60 dBFS), where an SNR is undefined."""

ACTIVE_FRAME_SECONDS = 0.02
"""Frame length over which speech activity is measured for the SNR."""

ACTIVE_RANGE_DB = 40.0
"""Frames whose RMS is within this many dB of the loudest frame count as active speech."""

NOISE_LOW_CORNER_HZ = 20.0
"""Pink and brown noise are flat below this frequency (no inaudible rumble eating the power)."""

_LOWPASS_HZ = 6000.0  # one-pole low-pass of the reverberant tail (walls absorb high frequencies)


# ----------------------------------------------------------------------------- validation


def _check_audio(audio: object, name: str = "audio") -> np.ndarray:
    """``audio`` as float64 (N,), or InputError."""
    if not isinstance(audio, np.ndarray):
        raise InputError(f"{name}: expected a numpy array of shape (N,), found {type(audio)}")
    if audio.ndim != 1:
        raise InputError(f"{name}: expected mono audio of shape (N,), found shape {audio.shape}")
    if not (np.issubdtype(audio.dtype, np.floating) or np.issubdtype(audio.dtype, np.integer)):
        raise InputError(f"{name}: expected real samples, found dtype {audio.dtype}")
    samples = audio.astype(np.float64)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{name}: expected finite samples, found NaN or infinity")
    return samples


def _check_sample_rate(sample_rate: object) -> float:
    rate = check_number(sample_rate, "sample_rate")
    if rate <= 0:
        raise InputError(f"sample_rate: expected a positive rate in Hz, found {sample_rate!r}")
    return rate


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad at the end to exactly ``length`` samples."""
    if len(samples) >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - len(samples))])


def _resample(samples: np.ndarray, ratio: Fraction) -> np.ndarray:
    """Resample by ``1 / ratio`` in length: ``ratio`` > 1 plays faster (fewer samples)."""
    if ratio == 1:
        return samples.copy()
    from scipy import signal  # seconds to import: not for AugmentConfig (every run's config)

    return signal.resample_poly(samples, up=ratio.denominator, down=ratio.numerator)


# ----------------------------------------------------------------------------- speed, pitch


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``audio`` ``factor`` times faster; the pitch moves with it (tape-style).

    Args:
        audio: (N,) mono samples.
        factor: speed factor in (0.5, 2]; 1.1 is 10% faster. Applied as the nearest fraction
            with a denominator of at most 100 (exact for factors such as 0.9 or 1.1).

    Returns:
        (round(N / factor),) float32 samples.
    """
    samples = _check_audio(audio)
    speed = check_number(factor, "factor")
    if not 0.5 < speed <= 2.0:
        raise InputError(f"factor: expected a speed factor in (0.5, 2], found {factor!r}")
    length = round(len(samples) / speed)
    ratio = Fraction(speed).limit_denominator(100)
    return _fit_length(_resample(samples, ratio), length).astype(np.float32)


def _stft_size(sample_rate: float) -> int:
    """Power-of-two FFT size nearest to 64 ms (1024 at 16 kHz), a good size for voiced speech."""
    return 1 << max(6, round(math.log2(0.064 * sample_rate)))


def _time_stretch(samples: np.ndarray, stretch: float, n_fft: int) -> np.ndarray:
    """Phase-vocoder time stretch with identity phase locking (Laroche and Dolson, 1999).

    Args:
        samples: (N,) float64 samples.
        stretch: output duration / input duration.
        n_fft: FFT size; frames overlap by 75%.

    Returns:
        (round(N * stretch),) float64 samples at the same pitch.
    """
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann: constant overlap-add at 75% overlap
    num_samples = len(samples)
    pad = n_fft // 2
    num_frames = 1 + math.ceil(num_samples / hop)
    padded = np.zeros((num_frames - 1) * hop + n_fft)
    padded[pad : pad + num_samples] = samples
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spectra = np.fft.rfft(frames * window, axis=1)  # (frames, K)
    spectra = np.concatenate([spectra, np.zeros((1, spectra.shape[1]))])  # frame i + 1 exists
    magnitude, phase = np.abs(spectra), np.angle(spectra)

    bins = np.arange(spectra.shape[1])
    expected_advance = 2.0 * np.pi * hop * bins / n_fft
    steps = np.arange(0.0, num_frames, 1.0 / stretch)  # fractional analysis frame per output
    steps = steps[steps < num_frames]  # float arange may overshoot its stop
    out_frames = np.empty((len(steps), n_fft))
    synth_phase = phase[0].copy()
    for m, step in enumerate(steps):
        i = int(step)
        frac = step - i
        mag = (1.0 - frac) * magnitude[i] + frac * magnitude[i + 1]
        if m > 0:
            deviation = phase[i + 1] - phase[i] - expected_advance
            deviation -= 2.0 * np.pi * np.round(deviation / (2.0 * np.pi))
            advanced = synth_phase + expected_advance + deviation
            # peaks carry their own phase forward; every other bin keeps its analysis phase
            # relation to the peak of its region, which avoids the "phasy" sound of a plain PV
            is_peak = np.zeros(len(mag), dtype=bool)
            is_peak[1:-1] = (mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])
            peaks = np.flatnonzero(is_peak)
            if len(peaks) == 0:
                synth_phase = advanced
            else:
                region = np.searchsorted((peaks[:-1] + peaks[1:]) / 2.0, bins)
                owner = peaks[region]
                synth_phase = advanced[owner] + phase[i] - phase[i][owner]
        out_frames[m] = np.fft.irfft(mag * np.exp(1j * synth_phase), n=n_fft) * window

    out_len = (len(steps) - 1) * hop + n_fft
    output = np.zeros(out_len)
    norm = np.zeros(out_len)
    for m in range(len(steps)):
        output[m * hop : m * hop + n_fft] += out_frames[m]
        norm[m * hop : m * hop + n_fft] += window**2
    output /= np.maximum(norm, 1e-8)
    return _fit_length(output[pad:], round(num_samples * stretch))


def shift_pitch(audio: np.ndarray, sample_rate: float, semitones: float) -> np.ndarray:
    """Raise (or lower) the pitch by ``semitones``, keeping the duration.

    A phase-vocoder time stretch by ``2 ** (semitones / 12)`` followed by resampling back to the
    original length; formants move with the pitch, as with a different (larger or smaller) voice.

    Args:
        audio: (N,) mono samples.
        sample_rate: in Hz (sets the STFT size: 64 ms).
        semitones: pitch change in [-12, 12]; 12 is an octave up.

    Returns:
        (N,) float32 samples; a copy of ``audio`` when ``semitones`` is 0.
    """
    samples = _check_audio(audio)
    rate = _check_sample_rate(sample_rate)
    shift = check_number(semitones, "semitones")
    if abs(shift) > MAX_SEMITONES:
        raise InputError(f"semitones: expected a value in [-12, 12], found {semitones!r}")
    if shift == 0 or len(samples) == 0:
        return samples.astype(np.float32)
    ratio = Fraction(2.0 ** (shift / 12.0)).limit_denominator(100)
    if ratio == 1:  # below the resolution of the rational resampling ratio (~0.02 semitones)
        return samples.astype(np.float32)
    stretched = _time_stretch(samples, float(ratio), _stft_size(rate))
    return _fit_length(_resample(stretched, ratio), len(samples)).astype(np.float32)


# ----------------------------------------------------------------------------- noise


def active_speech_power(audio: np.ndarray, sample_rate: float = 16_000) -> float:
    """Mean power of the active part of ``audio``: the 20 ms frames whose RMS is within 40 dB of
    the loudest frame, so that leading, trailing and pause silence does not lower it.

    Args:
        audio: (N,) mono samples.
        sample_rate: in Hz.

    Returns:
        Mean squared sample over the active frames; 0.0 for silent input.
    """
    samples = _check_audio(audio)
    frame = max(1, round(ACTIVE_FRAME_SECONDS * _check_sample_rate(sample_rate)))
    if len(samples) == 0:
        return 0.0
    starts = np.arange(0, len(samples), frame)
    energy = np.add.reduceat(np.square(samples), starts)
    counts = np.diff(np.append(starts, len(samples)))
    frame_power = energy / counts
    loudest = frame_power.max()
    if loudest == 0:
        return 0.0
    active = frame_power >= loudest * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    return float(energy[active].sum() / counts[active].sum())


def coloured_noise(
    num_samples: int, rng: np.random.Generator, colour: str = "white", sample_rate: float = 16_000
) -> np.ndarray:
    """Gaussian noise with a white, pink (1/f) or brown (1/f^2) power spectrum and unit RMS.

    Pink and brown noise are white noise shaped in the frequency domain, flat below 20 Hz.

    Args:
        num_samples: N.
        rng: source of the random draws.
        colour: ``white``, ``pink`` or ``brown``.
        sample_rate: in Hz (places the 20 Hz corner).

    Returns:
        (N,) float64 noise with RMS 1 (all zeros when N is 0).
    """
    if colour not in NOISE_COLOURS:
        raise InputError(f"colour: expected one of {', '.join(NOISE_COLOURS)}, found {colour!r}")
    rng = check_rng(rng)
    rate = _check_sample_rate(sample_rate)
    white = rng.standard_normal(num_samples)
    if colour != "white" and num_samples > 1:
        exponent = 1.0 if colour == "pink" else 2.0  # power ~ 1 / f ** exponent
        freqs = np.fft.rfftfreq(num_samples, d=1.0 / rate)
        amplitude = np.maximum(freqs, NOISE_LOW_CORNER_HZ) ** (-exponent / 2.0)
        white = np.fft.irfft(np.fft.rfft(white) * amplitude, n=num_samples)
    rms = _rms(white)
    return white / rms if rms > 0 else white


def add_noise(
    audio: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    colour: str = "white",
    sample_rate: float = 16_000,
) -> np.ndarray:
    """Add background noise at a speech-to-noise ratio of ``snr_db``.

    The speech power is that of the active frames (:func:`active_speech_power`); the noise power
    is its mean over the whole clip. All-zero input gets noise at -60 dBFS RMS instead. The result
    is not clipped (:func:`augment` clips its final output).

    Args:
        audio: (N,) mono samples.
        snr_db: speech-to-noise power ratio in dB.
        rng: source of the random draws.
        colour: noise spectrum, ``white``, ``pink`` (1/f) or ``brown`` (1/f^2).
        sample_rate: in Hz (sets the 20 ms activity frames and the 20 Hz noise corner).

    Returns:
        (N,) float32 samples.
    """
    samples = _check_audio(audio)
    snr = check_number(snr_db, "snr_db")
    noise = coloured_noise(len(samples), rng, colour, sample_rate)
    speech_power = active_speech_power(samples, sample_rate)
    if speech_power == 0:
        noise_rms = SILENT_NOISE_RMS
    else:
        noise_rms = math.sqrt(speech_power / 10.0 ** (snr / 10.0))
    return (samples + noise_rms * noise).astype(np.float32)


# ----------------------------------------------------------------------------- reverb, level


def room_impulse_response(
    sample_rate: float,
    rt60: float,
    rng: np.random.Generator,
    direct_to_reverb_db: float = 3.0,
    pre_delay: float = 0.005,
) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path at sample 0, then, after
    ``pre_delay`` seconds, Gaussian noise (low-passed at 6 kHz) whose energy decays 60 dB in
    ``rt60`` seconds, scaled so that direct / reverberant energy is ``direct_to_reverb_db``.

    Args:
        sample_rate: in Hz.
        rt60: reverberation time in seconds, in (0.05, 2.0).
        rng: source of the random draws.
        direct_to_reverb_db: energy ratio of the direct path to the tail, in dB.
        pre_delay: seconds between the direct path and the tail (>= 0).

    Returns:
        (R,) float64 response, R = 1 + round((pre_delay + rt60) * sample_rate).
    """
    rate = _check_sample_rate(sample_rate)
    decay = check_number(rt60, "rt60")
    if not RT60_RANGE[0] < decay < RT60_RANGE[1]:
        raise InputError(f"rt60: expected seconds in (0.05, 2.0), found {rt60!r}")
    drr = check_number(direct_to_reverb_db, "direct_to_reverb_db")
    delay = check_number(pre_delay, "pre_delay")
    if delay < 0:
        raise InputError(f"pre_delay: expected seconds >= 0, found {pre_delay!r}")
    rng = check_rng(rng)
    delay_samples = max(1, round(delay * rate))
    tail_samples = max(1, round(decay * rate))
    tail = rng.standard_normal(tail_samples)
    if _LOWPASS_HZ < rate / 2:
        from scipy import signal

        pole = math.exp(-2.0 * math.pi * _LOWPASS_HZ / rate)
        tail = signal.lfilter([1.0 - pole], [1.0, -pole], tail)
    seconds = np.arange(tail_samples) / rate
    tail *= 10.0 ** (-3.0 * seconds / decay)  # amplitude -30 dB/rt60 -> energy -60 dB/rt60
    tail *= math.sqrt(10.0 ** (-drr / 10.0) / np.sum(np.square(tail)))
    response = np.zeros(delay_samples + tail_samples)
    response[0] = 1.0
    response[delay_samples:] = tail
    return response


def add_reverb(
    audio: np.ndarray,
    sample_rate: float,
    rt60: float,
    rng: np.random.Generator,
    direct_to_reverb_db: float = 3.0,
) -> np.ndarray:
    """Make ``audio`` sound as if recorded in a room with reverberation time ``rt60``.

    Convolves with :func:`room_impulse_response` (direct path at sample 0, so the speech stays
    aligned with the face frames), truncates the tail to N samples and rescales to the input RMS.
    The result is not clipped (:func:`augment` clips its final output).

    Args:
        audio: (N,) mono samples.
        sample_rate: in Hz.
        rt60: seconds for the reverberant energy to fall 60 dB, in (0.05, 2.0).
        rng: source of the random draws.
        direct_to_reverb_db: energy ratio of the direct path to the reverberation, in dB (3 dB:
            a nearby laptop or phone microphone in an ordinary room).

    Returns:
        (N,) float32 samples with the RMS of ``audio``.
    """
    samples = _check_audio(audio)
    response = room_impulse_response(sample_rate, rt60, rng, direct_to_reverb_db)
    input_rms = _rms(samples)
    if input_rms == 0:
        return samples.astype(np.float32)
    from scipy import signal

    wet = signal.fftconvolve(samples, response)[: len(samples)]
    wet_rms = _rms(wet)
    return (wet * (input_rms / wet_rms) if wet_rms > 0 else wet).astype(np.float32)


def change_level(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Apply a gain of ``gain_db`` dB, then clip to [-1, 1] as an overdriven recording would.

    Args:
        audio: (N,) mono samples.
        gain_db: gain in dB (negative: quieter).

    Returns:
        (N,) float32 samples in [-1, 1].
    """
    samples = _check_audio(audio)
    gain = check_number(gain_db, "gain_db")
    return np.clip(samples * 10.0 ** (gain / 20.0), -1.0, 1.0).astype(np.float32)


def augment(
    audio: np.ndarray, sample_rate: float, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """Augment one clip: pitch shift, reverb, noise, level change, in this order, each with its
    probability and a parameter drawn uniformly from its range (the noise colour uniformly among
    white, pink and brown). The result is clipped to [-1, 1].

    Does NOT change the speed, which also changes the duration: the caller draws it with
    :meth:`AugmentConfig.draw_speed` and applies it to both the audio and the mesh frames.

    Args:
        audio: (N,) mono samples.
        sample_rate: in Hz.
        config: the probabilities and ranges (validated here).
        rng: source of every random draw; the same seed gives the same output.

    Returns:
        (N,) float32 samples; with ``config.enabled`` false, a float32 copy of ``audio``.
    """
    if not isinstance(config, AugmentConfig):
        raise InputError(f"config: expected an AugmentConfig, found {type(config)}")
    samples = _check_audio(audio)
    if not config.enabled:
        return samples.astype(np.float32)
    config.validate()
    rate = _check_sample_rate(sample_rate)
    rng = check_rng(rng)
    # every draw is made whether or not its augmentation is applied, and each augmentation's
    # noise comes from its own child generator, so that changing one probability or range does
    # not reshuffle the others
    applied = rng.random(4) < [
        config.pitch_probability,
        config.reverb_probability,
        config.noise_probability,
        config.level_probability,
    ]
    semitones = rng.uniform(*config.bounds("pitch_semitones"))
    rt60 = rng.uniform(*config.bounds("rt60"))
    snr_db = rng.uniform(*config.bounds("snr_db"))
    colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
    gain_db = rng.uniform(*config.bounds("gain_db"))
    reverb_rng, noise_rng = (np.random.default_rng(seed) for seed in rng.integers(2**63, size=2))
    out = samples
    if applied[0]:
        out = shift_pitch(out, rate, semitones)
    if applied[1]:
        out = add_reverb(out, rate, rt60, reverb_rng)
    if applied[2]:
        out = add_noise(out, snr_db, noise_rng, colour, rate)
    if applied[3]:
        out = change_level(out, gain_db)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
