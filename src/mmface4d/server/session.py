"""One client's stream: its audio decoded and resampled, its :class:`FaceStream`, its messages.

A :class:`StreamSession` is driven by one connection, one call at a time (possibly on different
threads of the server's pool): :meth:`StreamSession.push` takes the raw bytes of audio chunks and
gives the messages of the frames they complete, :meth:`StreamSession.flush` the rest. Everything
it changes is its own (its FaceStream, resampler and counters); the animator and the prepared
speaker it reads are shared by every session and never written (``tests/server``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.server.protocol import (
    ARKIT_DECIMALS,
    INVALID_DATA,
    ProtocolError,
    StreamHeader,
)

if TYPE_CHECKING:
    from mmface4d.animate.animator import Animator, Speaker
    from mmface4d.animate.streaming import FaceFrames


def decode_chunk(data: bytes, header: StreamHeader) -> np.ndarray:
    """(N,) float32 samples of one binary message in the header's format, or a
    :class:`ProtocolError` (not whole samples, or non-finite floats)."""
    size = header.sample_bytes
    if len(data) % size:
        raise ProtocolError(
            INVALID_DATA,
            f"audio: {len(data)} bytes is not a whole number of {header.format} samples "
            f"({size} bytes each)",
        )
    if header.format == "s16le":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise ProtocolError(INVALID_DATA, "audio: f32le samples hold NaN or infinity")
    return samples


class Resampler:
    """Chunks at ``rate`` Hz to chunks at ``target`` Hz with libswresample (PyAV): a stateful
    filter, so the output does not depend on how the input was cut (tested)."""

    def __init__(self, rate: int, target: int):
        import av

        self.rate, self.target = int(rate), int(target)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.target)

    def push(self, samples: np.ndarray) -> np.ndarray:
        import av

        if samples.size == 0:
            return samples
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32)[None], format="flt", layout="mono"
        )
        frame.sample_rate = self.rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: Sequence) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def frame_messages(frames: FaceFrames, outputs: tuple[str, ...]) -> list[str | bytes]:
    """The messages of some frames: per frame its JSON and, when asked, its vertices."""
    messages: list[str | bytes] = []
    want_arkit = "arkit" in outputs and frames.arkit is not None
    want_vertices = "vertices" in outputs
    weights = np.round(frames.arkit.astype(np.float64), ARKIT_DECIMALS) if want_arkit else None
    for k, index in enumerate(frames.indices):
        message: dict[str, object] = {"frame": int(index), "t": int(index) / frames.fps}
        if weights is not None:
            message["arkit"] = dict(zip(ARKIT_52, weights[k].tolist(), strict=True))
        messages.append(json.dumps(message, separators=(",", ":")))
        if want_vertices:
            messages.append(np.ascontiguousarray(frames.vertices[k], dtype="<f4").tobytes())
    return messages


class StreamSession:
    """One client's stream (module doc).

    Args:
        animator: the shared model (read only).
        speaker: the shared prepared speaker (read only).
        header: what the client asked for.
    """

    def __init__(self, animator: Animator, speaker: Speaker, header: StreamHeader):
        self.header = header
        self.stream = animator.stream(speaker, arkit="arkit" in header.outputs)
        rate = self.stream.sample_rate
        self._resampler = (
            Resampler(header.sample_rate, rate) if header.sample_rate != rate else None
        )
        self.frames_sent = 0

    def push(self, chunks: list[bytes]) -> list[str | bytes]:
        """The messages of the frames that these audio chunks complete."""
        samples = [decode_chunk(c, self.header) for c in chunks]
        audio = np.concatenate(samples) if len(samples) > 1 else samples[0]
        if self._resampler is not None:
            audio = self._resampler.push(audio)
        if audio.size == 0:
            return []
        return self._messages(self.stream.push(audio))

    def flush(self) -> list[str | bytes]:
        """The messages of the frames left, the speech having ended (no end message)."""
        messages: list[str | bytes] = []
        if self._resampler is not None:
            rest = self._resampler.flush()
            if rest.size:
                messages += self._messages(self.stream.push(rest))
        return messages + self._messages(self.stream.flush())

    def _messages(self, frames: FaceFrames) -> list[str | bytes]:
        self.frames_sent += len(frames)
        return frame_messages(frames, self.header.outputs) if len(frames) else []
