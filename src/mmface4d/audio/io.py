"""Reading and writing speech through PyAV (FFmpeg's libraries; no ffmpeg binary needed).

:func:`load_audio` reads any container and codec FFmpeg reads (wav, flac, mp3, m4a/aac, ogg,
the audio track of a video), resamples with libswresample and downmixes to mono by averaging the
channels (librosa's convention; FFmpeg's own stereo->mono matrix would scale by 1/sqrt(2)).
A float32 mono file already at the requested rate comes back bit-exact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import av
import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.constants import SAMPLE_RATE
from mmface4d.errors import InputError

#: The speech sample rate of the whole project (:data:`mmface4d.constants.SAMPLE_RATE`).
DEFAULT_SAMPLE_RATE = SAMPLE_RATE


def _check_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise InputError(f"sample_rate: expected a positive integer (Hz), found {sample_rate!r}")
    if sample_rate <= 0:
        raise InputError(f"sample_rate: expected a positive integer (Hz), found {sample_rate}")
    return int(sample_rate)


def load_audio(path: str | os.PathLike[str], sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Load the first audio stream of a file as mono float32 at ``sample_rate``.

    Args:
        path: any file PyAV reads (wav, flac, mp3, m4a, ogg, mp4, ...).
        sample_rate: output rate in Hz (16 kHz for the speech encoders).

    Returns:
        (N,) float32 samples, nominally in [-1, 1].

    Raises:
        InputError: the file is missing, unreadable, has no audio stream or no samples.
    """
    rate = _check_rate(sample_rate)
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: audio file not found")
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(source)) as container:
            if not container.streams.audio:
                raise InputError(f"{source}: no audio stream (expected speech audio)")
            stream = container.streams.audio[0]
            resampler: av.AudioResampler | None = None
            for frame in container.decode(stream):
                if resampler is None:
                    # keep the channels (planar float), downmix ourselves by averaging
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            if resampler is not None:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
    except av.FFmpegError as exc:
        raise InputError(f"{source}: cannot read audio ({exc})") from exc
    total = sum(chunk.shape[1] for chunk in chunks)
    if not chunks or total == 0:
        raise InputError(f"{source}: audio stream holds no samples")
    # mono into one array, each decoded block freed as it is copied: the speech is held once
    # (an hour at 16 kHz is 230 MB), not twice
    audio = np.empty(total, dtype=np.float32)
    chunks.reverse()
    position = 0
    while chunks:
        chunk = chunks.pop()
        audio[position : position + chunk.shape[1]] = (
            chunk[0] if chunk.shape[0] == 1 else chunk.mean(axis=0)
        )
        position += chunk.shape[1]
    if not np.isfinite(audio).all():
        raise InputError(f"{source}: audio holds non-finite samples (NaN or inf)")
    return audio


def write_wav(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    encoding: Literal["float32", "pcm16"] = "float32",
) -> Path:
    """Write mono audio as a WAV file, atomically (temporary name, then rename).

    Args:
        path: output ``.wav`` path.
        audio: (N,) samples in [-1, 1].
        sample_rate: rate in Hz.
        encoding: ``"float32"`` (lossless, what MMFace4D ships) or ``"pcm16"`` (16-bit integer,
            samples clipped to [-1, 1]; read by every player).

    Returns:
        The path written.
    """
    rate = _check_rate(sample_rate)
    samples = np.asarray(audio)
    if samples.ndim != 1 or samples.size == 0 or samples.dtype.kind not in "fiu":
        raise InputError(
            f"audio: expected a non-empty (N,) real array, found shape {samples.shape} "
            f"dtype {samples.dtype}"
        )
    if encoding == "float32":
        codec, frame_format = "pcm_f32le", "flt"
    elif encoding == "pcm16":
        codec, frame_format = "pcm_s16le", "s16"
    else:
        raise InputError(f"encoding: expected 'float32' or 'pcm16', found {encoding!r}")
    for start in range(0, samples.size, _WAV_BLOCK):
        if not np.isfinite(samples[start : start + _WAV_BLOCK]).all():
            raise InputError("audio: expected finite samples, found NaN or inf")
    target = Path(path)
    with atomic_path(target) as temp, av.open(str(temp), "w", format="wav") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        for start in range(0, samples.size, _WAV_BLOCK):  # in blocks: long speech held once
            block = samples[start : start + _WAV_BLOCK]
            if encoding == "float32":
                data = block.astype(np.float32)
            else:  # FFmpeg (and this module's reader) maps int16 to float dividing by 32768
                data = np.clip(np.round(block * 32768.0), -32768, 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data[None, :], format=frame_format, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return target


#: Samples converted and encoded at once by :func:`write_wav`.
_WAV_BLOCK = 1 << 16
