"""Audio/mesh synchronisation: THE one place where the project maps between the mesh frame
rate and an audio (or audio-feature) rate.

Time convention: frame ``i`` of a sequence at ``fps`` covers the interval
``[i / fps, (i + 1) / fps)``; item ``j`` of a stream at ``rate`` (an audio sample, or one
feature vector of an encoder) covers ``[j / rate, (j + 1) / rate)``. Hence

- the audio of frames ``[s, s + L)`` is ``samples[frame_to_sample(s) : ... + frames_to_samples(L)]``
  (both rounded half up, so a window's sample count depends only on ``L``);
- features are resampled to frames by linear interpolation at frame CENTRES ``(i + 0.5) / fps``
  from feature centres ``(j + 0.5) / rate``, clamped at both ends. This is exactly
  ``torch.nn.functional.interpolate(mode="linear", align_corners=False)`` when the frame count is
  ``N * fps / rate``, and it does not shift the signal by half a feature period as the
  frame-start convention would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from mmface4d.errors import InputError

ArrayT = TypeVar("ArrayT")


def _rate(value: object, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction | np.number):
        raise InputError(f"{name}: expected a positive number, found {value!r}")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise InputError(f"{name}: expected a positive number, found {value!r}")
    return Fraction(value).limit_denominator(1_000_000)


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def frame_to_sample(frame: int, fps: float, sample_rate: float) -> int:
    """Index of the first stream item (audio sample) of mesh frame ``frame``.

    Args:
        frame: frame index (>= 0).
        fps: mesh frame rate in Hz.
        sample_rate: stream rate in Hz (audio samples or feature vectors per second).

    Returns:
        ``round(frame * sample_rate / fps)``, rounded half up with exact rational arithmetic.
    """
    return _round_half_up(frame * _rate(sample_rate, "sample_rate") / _rate(fps, "fps"))


def frames_to_samples(num_frames: int, fps: float, sample_rate: float) -> int:
    """Number of stream items (audio samples) that ``num_frames`` frames span, rounded half up.

    With 30 fps and 16 kHz a 64-frame window is 34,133 samples, wherever it starts.
    """
    return frame_to_sample(num_frames, fps, sample_rate)


def _is_torch(array: object) -> bool:
    return type(array).__module__.split(".")[0] == "torch"


def resample_to_frames(
    features: ArrayT, feature_rate: float, fps: float, num_frames: int | None = None
) -> ArrayT:
    """Resample features along time to the mesh frame rate (linear, at frame centres).

    Args:
        features: (N, C) or (B, N, C) numpy array or torch tensor at ``feature_rate`` Hz (e.g.
            HuBERT at 50 Hz). Torch inputs stay on their device and differentiable.
        feature_rate: rate of the features in Hz.
        fps: mesh frame rate in Hz.
        num_frames: T, the output length; default ``round(N * fps / feature_rate)``. Frames past
            the last feature repeat it (clamping), so a caller can ask for the mesh's T.

    Returns:
        (T, C) or (B, T, C), same array type and dtype as ``features``.
    """
    shape = tuple(features.shape)  # type: ignore[attr-defined]
    if len(shape) not in (2, 3) or shape[-2] == 0:
        raise InputError(f"features: expected shape (N, C) or (B, N, C) with N >= 1, found {shape}")
    n = shape[-2]
    rate, frame_rate = _rate(feature_rate, "feature_rate"), _rate(fps, "fps")
    if num_frames is None:
        num_frames = _round_half_up(n * frame_rate / rate)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"num_frames: expected a positive integer, found {num_frames!r}")
    centres = (np.arange(num_frames, dtype=np.float64) + 0.5) * float(rate / frame_rate) - 0.5
    position = np.clip(centres, 0.0, n - 1)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, n - 1)
    weight = position - lower
    if _is_torch(features):
        import torch

        tensor: Any = features
        lo = torch.as_tensor(lower, device=tensor.device)
        hi = torch.as_tensor(upper, device=tensor.device)
        w = torch.as_tensor(weight, device=tensor.device, dtype=tensor.dtype)[:, None]
        a, b = tensor.index_select(-2, lo), tensor.index_select(-2, hi)
        return a + (b - a) * w  # type: ignore[return-value]
    array = np.asarray(features)
    a, b = array[..., lower, :], array[..., upper, :]
    w = weight[:, None].astype(array.dtype if array.dtype.kind == "f" else np.float64)
    return a + (b - a) * w  # type: ignore[return-value]


@dataclass(frozen=True)
class AlignedStreams:
    """Two streams cut to the same duration.

    Attributes:
        stream: (N', ...) audio samples or features, ``N' = frames_to_samples(T')``.
        vertices: (T', V, 3) mesh frames (or any (T', ...) per-frame array).
        trimmed_frames: frames dropped from the end of the mesh (the stream was shorter).
        trimmed_samples: items dropped from the end of the stream (it was longer).
        padded_samples: items appended to the stream (it was short by less than half a frame):
            zeros for 1-D audio, the last row repeated for (N, C) features.
    """

    stream: Any
    vertices: Any
    trimmed_frames: int
    trimmed_samples: int
    padded_samples: int


def align_lengths(
    stream: ArrayT,
    vertices: Any,
    *,
    stream_rate: float,
    fps: float,
    max_trim_frames: int | None = None,
    name: str = "sequence",
) -> AlignedStreams:
    """Cut an audio (or feature) stream and a mesh sequence to the shorter of the two.

    The stream covers ``round(N * fps / stream_rate)`` frames; the mesh keeps
    ``T' = min(T, that)`` frames and the stream exactly ``frames_to_samples(T')`` items (trimmed,
    or padded by less than half a frame), so that every frame window has its audio.

    Args:
        stream: (N,) audio or (N, C) features at ``stream_rate`` (numpy or torch).
        vertices: (T, ...) per-frame data at ``fps`` (numpy or torch).
        stream_rate: rate of ``stream`` in Hz.
        fps: mesh frame rate in Hz.
        max_trim_frames: refuse (InputError) to drop more mesh frames than this because the
            audio is short; None allows any.
        name: the sequence's name for error messages.

    Returns:
        The cut streams and how much was trimmed or padded.
    """
    n, t = int(stream.shape[0]), int(vertices.shape[0])  # type: ignore[attr-defined]
    rate, frame_rate = _rate(stream_rate, "stream_rate"), _rate(fps, "fps")
    covered = _round_half_up(n * frame_rate / rate)
    kept = min(t, covered)
    if kept < 1:
        raise InputError(f"{name}: no frame left to align (audio {n} samples, mesh {t} frames)")
    trimmed_frames = t - kept
    if max_trim_frames is not None and trimmed_frames > max_trim_frames:
        raise InputError(
            f"{name}: audio ({n / float(rate):.3f} s) is shorter than the mesh ({t} frames, "
            f"{t / float(frame_rate):.3f} s) by {trimmed_frames} frames; expected at most "
            f"{max_trim_frames} (allow more with max_trim_frames)"
        )
    target = frames_to_samples(kept, frame_rate, rate)
    padded = max(0, target - n)
    cut: Any = stream[:target]  # type: ignore[index]
    if padded:
        if _is_torch(cut):
            import torch

            tail = torch.zeros_like(cut[:1]) if cut.ndim == 1 else cut[-1:]
            cut = torch.cat([cut, tail.expand(padded, *cut.shape[1:])])
        else:
            mode = "constant" if cut.ndim == 1 else "edge"
            cut = np.pad(cut, [(0, padded)] + [(0, 0)] * (cut.ndim - 1), mode=mode)
    return AlignedStreams(
        stream=cut,
        vertices=vertices[:kept],
        trimmed_frames=trimmed_frames,
        trimmed_samples=max(0, n - target),
        padded_samples=padded,
    )
