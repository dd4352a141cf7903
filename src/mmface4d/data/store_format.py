"""How the packed store encodes a sequence on disk (see :mod:`mmface4d.data.store`).

Vertices are stored as ``round((x - reference) / step)`` in int16 with ``step`` = 1 micrometre
(widened per sequence when an offset exceeds 32,766 steps, i.e. 3.3 cm), decoded as
``q * step + reference`` in float32: the maximum error is step / 2 = 0.5 um, well under the
.nut format's own quantisation (2-5 um). Chunks hold 16 frames x all vertices, Blosc-zstd with
byte shuffle and a CRC32C per chunk (corruption raises on read); one shard per array, so a
sequence is three data files whatever its length, and a 64-frame window reads 4-5 chunks.

Why (measured on the real sample, 67 frames x 35,709 vertices, Blosc-zstd level 5 with byte
shuffle; ``benchmarks/bench_store.py --layouts``, results in ``benchmarks/results/store.json``):
the sample's .nut triple is 119 KiB/frame. float32 absolute coordinates compress to 305 KiB/frame
(2.6x .nut). float16 offsets from the sequence mean give 134.5 KiB/frame (139 KiB from the first
frame) with a 3.8 um maximum error that grows with the offset: float16 spacing doubles every
octave (15 um at 5 cm), so a head that moves away from a subject template loses precision.
int16 offsets at a fixed 1 um step give 116 KiB/frame (0.98x .nut) with 0.5 um error everywhere;
0.5 um costs 127 KiB/frame, 2 um saves only 5 % (111 KiB) for twice the error. Chunks of 8, 16 or
32 frames cost the same bytes; 16 keeps the over-read of a random window small. A temporal delta
filter (tried while choosing, not kept in the benchmark) saved under 5 % and made reads 4-8x
slower. The reference is the sequence's own mean, not the subject template, so offsets stay
small whatever the head pose and a sequence encodes without its subject's other sequences; the
semantic template is stored separately per subject.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec, Crc32cCodec

STORE_FORMAT = "mmface4d-store"
STORE_VERSION = 1
TIME_CHUNK = 16
AUDIO_CHUNK = 32_768
QUANT_STEP_M = 1e-6
_QUANT_LIMIT = 32_766


def encode_offsets(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Quantise a sequence as int16 offsets from its mean frame.

    Args:
        vertices: (T, V, 3) finite float coordinates, metres.

    Returns:
        (T, V, 3) int16 offsets, (V, 3) float32 reference, and the step in metres.
    """
    reference = vertices.mean(axis=0, dtype=np.float64).astype(np.float32)
    peak = float(np.abs(vertices - reference).max())
    step = float(np.float32(max(QUANT_STEP_M, peak / _QUANT_LIMIT)))
    offsets = np.empty(vertices.shape, dtype=np.int16)
    for start in range(0, vertices.shape[0], 64):
        block = (vertices[start : start + 64].astype(np.float64) - reference) / step
        offsets[start : start + 64] = np.clip(np.rint(block), -32_767, 32_767)
    return offsets, reference, step


def decode_offsets(offsets: np.ndarray, reference: np.ndarray, step: float) -> np.ndarray:
    """Inverse of :func:`encode_offsets`: (T, V, 3) int16 -> (T, V, 3) float32 metres."""
    out = offsets.astype(np.float32)
    out *= np.float32(step)
    out += reference
    return out


def sequence_checksum(offsets: np.ndarray, reference: np.ndarray, audio: np.ndarray) -> str:
    """sha256 over the stored little-endian bytes of offsets, reference and audio."""
    digest = hashlib.sha256()
    for array, dtype in ((offsets, "<i2"), (reference, "<f4"), (audio, "<f4")):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()


def chunk_codecs(typesize: int) -> list[Any]:
    return [
        BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=typesize),
        Crc32cCodec(),
    ]


def template_checksum(template: np.ndarray) -> str:
    """sha256 of a (V, 3) template's little-endian float32 bytes."""
    return hashlib.sha256(np.ascontiguousarray(template, dtype="<f4").tobytes()).hexdigest()
