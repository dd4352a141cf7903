"""Log-mel spectrogram in pure PyTorch (no torchaudio, no librosa), differentiable.

Conventions (what :class:`mmface4d.audio.encoders.MelEncoder` uses):

- Hann window (periodic) of ``win_length`` samples (25 ms = 400 at 16 kHz), zero-padded to
  ``n_fft`` (512) in the middle, hop ``hop_length`` (10 ms = 160 at 16 kHz): 100 frames/s.
- Frame ``j``'s window is CENTRED on ``(j + 0.5) * hop_length`` samples, which is the time
  convention of :mod:`mmface4d.audio.sync` (item ``j`` of a stream covers
  ``[j / rate, (j + 1) / rate)``); the audio is zero-padded at both ends for that, and
  ``N`` samples give ``ceil(N / hop_length)`` frames (at least one: audio shorter than one
  window is zero-padded).
- Power spectrum ``|STFT|^2`` (window not normalised), triangular mel filters on the Slaney mel
  scale (linear below 1 kHz, logarithmic above; librosa's default) or the HTK scale
  ``2595 log10(1 + f / 700)``, each filter Slaney area-normalised (``2 / (f_high - f_low)``, so
  a filter's weights integrate to one over Hz: what librosa and Whisper use).
- ``log(mel + 1e-6)`` (natural log): the offset sits about at the level of -60 dBFS white noise,
  keeps digital silence finite (``log(1e-6) = -13.8``) and the gradient bounded.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from mmface4d.errors import InputError

MelScale = Literal["slaney", "htk"]
LOG_OFFSET = 1e-6

# Slaney (Auditory Toolbox) mel scale: linear below 1 kHz (200/3 Hz per mel), log above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(freq: np.ndarray | float, scale: MelScale = "slaney") -> np.ndarray:
    """Frequency in Hz to mel (Slaney or HTK scale), float64."""
    f = np.asarray(freq, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if scale != "slaney":
        raise InputError(f"scale: expected 'slaney' or 'htk', found {scale!r}")
    linear = f / _SLANEY_HZ_PER_MEL
    safe = np.maximum(f, _SLANEY_BREAK_HZ)
    log = _SLANEY_BREAK_MEL + np.log(safe / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(f >= _SLANEY_BREAK_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float, scale: MelScale = "slaney") -> np.ndarray:
    """Mel (Slaney or HTK scale) to frequency in Hz, float64; the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale != "slaney":
        raise InputError(f"scale: expected 'slaney' or 'htk', found {scale!r}")
    linear = m * _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (np.maximum(m, 0.0) - _SLANEY_BREAK_MEL))
    return np.where(m >= _SLANEY_BREAK_MEL, log, linear)


def mel_filterbank(
    num_mels: int,
    n_fft: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    scale: MelScale = "slaney",
) -> torch.Tensor:
    """Triangular mel filters, Slaney area-normalised.

    Args:
        num_mels: M, number of mel bands.
        n_fft: FFT size; the filters act on its ``n_fft // 2 + 1`` non-negative frequency bins.
        sample_rate: audio rate in Hz.
        f_min: lower edge of the first filter in Hz.
        f_max: upper edge of the last filter in Hz; default the Nyquist frequency.
        scale: ``"slaney"`` or ``"htk"`` mel scale for spacing the filter edges.

    Returns:
        (M, n_fft // 2 + 1) float32 weights; band ``m`` rises from edge ``m`` to its peak at edge
        ``m + 1`` and falls to edge ``m + 2`` of ``M + 2`` edges equally spaced in mel.
    """
    nyquist = sample_rate / 2.0
    f_max = nyquist if f_max is None else float(f_max)
    if num_mels < 1 or n_fft < 2:
        raise InputError(
            f"mel filterbank: expected n_mels >= 1 and n_fft >= 2, found {num_mels}, {n_fft}"
        )
    if not 0.0 <= f_min < f_max <= nyquist:
        raise InputError(
            f"mel filterbank: expected 0 <= f_min < f_max <= {nyquist:g} Hz, "
            f"found f_min={f_min:g}, f_max={f_max:g}"
        )
    bins_hz = np.linspace(0.0, nyquist, n_fft // 2 + 1)
    edges_mel = np.linspace(hz_to_mel(f_min, scale), hz_to_mel(f_max, scale), num_mels + 2)
    edges_hz = mel_to_hz(edges_mel, scale)
    widths = np.diff(edges_hz)  # (M + 1,)
    offsets = edges_hz[:, None] - bins_hz[None, :]  # (M + 2, K)
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def centred_window(win_length: int, n_fft: int) -> torch.Tensor:
    """(n_fft,) periodic Hann window of ``win_length`` samples placed in the middle of n_fft."""
    if not 1 <= win_length <= n_fft:
        raise InputError(f"win_length: expected 1..n_fft={n_fft}, found {win_length}")
    window = torch.zeros(n_fft)
    start = (n_fft - win_length) // 2
    window[start : start + win_length] = torch.hann_window(win_length, periodic=True)
    return window


def log_mel_spectrogram(
    audio: torch.Tensor,
    filterbank: torch.Tensor,
    window: torch.Tensor,
    hop_length: int,
    win_length: int,
) -> torch.Tensor:
    """Log-mel spectrogram with frames centred on ``(j + 0.5) * hop_length``.

    Args:
        audio: (B, N) float samples, N >= 1.
        filterbank: (M, n_fft // 2 + 1) from :func:`mel_filterbank`.
        window: (n_fft,) from :func:`centred_window`.
        hop_length: samples between frames.
        win_length: samples under the window (its support inside ``window``).

    Returns:
        (B, T, M) ``log(mel power + 1e-6)`` with ``T = ceil(N / hop_length)``.
    """
    n_fft = window.shape[0]
    num_samples = audio.shape[-1]
    num_frames = max(1, -(-num_samples // hop_length))
    # the window's support centre sits at n_fft // 2 - win_length / 2 + win_length / 2 = n_fft / 2
    # of each n_fft frame (for even n_fft - win_length); shift it onto (j + 0.5) * hop
    support_start = (n_fft - win_length) // 2
    left = support_start + win_length // 2 - hop_length // 2
    right = n_fft + hop_length * (num_frames - 1) - num_samples - left
    padded = torch.nn.functional.pad(audio, (left, max(0, right)))
    spectrum = torch.stft(
        padded,
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=False,
        return_complex=True,
    )  # (B, K, T)
    power = spectrum.real.square() + spectrum.imag.square()
    mel = torch.matmul(filterbank, power[..., :num_frames])  # (B, M, T)
    return torch.log(mel + LOG_OFFSET).transpose(1, 2)
