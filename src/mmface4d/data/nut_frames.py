"""The frame layout of the MMFace4D ``.nut`` format, as pure numpy (no video I/O).

One axis of one frame is a square uint16 image of side ``S = ceil(sqrt(V + 4))``, row-major:
slots 0..1 hold the little-endian bytes of the float32 minimum read as two uint16, slots 2..3 the
float32 maximum likewise, slots 4..4+V the quantised coordinates
``round((x - min) / (max - min) * 65536)``, the rest zeros. Decoding is
``x = q / 65536 * (max - min) + min``, in float32 exactly as the official decoder computes it.

The stored min/max are the frame's true min/max minus/plus a padding (0.05 m). ``x == max``
would give 65536, which does not fit a uint16; the padding keeps every ``x`` away from ``max``.
We clip to ``0..65535`` anyway, so a zero padding cannot wrap around to 0.
"""

from __future__ import annotations

import math

import numpy as np

from mmface4d.errors import InputError

DEFAULT_PADDING = 0.05
"""Metres added below the minimum and above the maximum of each axis before quantising."""
QUANT_LEVELS = 65_536
HEADER_SLOTS = 4


def image_side(num_vertices: int) -> int:
    """Side of the square frame image for V vertices: ``ceil(sqrt(V + 4))``."""
    side = math.isqrt(num_vertices + HEADER_SLOTS)
    return side if side * side == num_vertices + HEADER_SLOTS else side + 1


def axis_to_images(values: np.ndarray, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """Pack one axis of a sequence into the format's uint16 frame images.

    Quantises against the float32 min/max actually stored (the official encoder uses the
    unrounded float64 ones; the difference is far below one quantisation step), so decoding
    is within half a step plus float32 rounding.

    Args:
        values: (T, V) finite coordinates of one axis.
        padding: added below the minimum and above the maximum of every frame, >= 0.

    Returns:
        (T, S, S) uint16 images, S = ``image_side(V)``.
    """
    values = np.asarray(values, dtype=np.float64)
    frames, num_vertices = values.shape
    with np.errstate(over="ignore"):  # checked just below
        low = (values.min(axis=1) - padding).astype(np.float32)
        high = (values.max(axis=1) + padding).astype(np.float32)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise InputError("vertices: coordinates (plus padding) must fit float32 (|x| < 3.4e38)")
    span = high.astype(np.float64) - low.astype(np.float64)
    normalised = np.divide(
        values - low[:, None], span[:, None], out=np.zeros_like(values), where=span[:, None] > 0
    )
    quantised = np.clip(np.around(normalised * QUANT_LEVELS), 0, QUANT_LEVELS - 1)
    side = image_side(num_vertices)
    flat = np.zeros((frames, side * side), dtype=np.uint16)
    flat[:, 0:2] = low.astype("<f4").view("<u2").reshape(frames, 2)
    flat[:, 2:4] = high.astype("<f4").view("<u2").reshape(frames, 2)
    flat[:, HEADER_SLOTS : HEADER_SLOTS + num_vertices] = quantised
    return flat.reshape(frames, side, side)


def images_to_axis(images: np.ndarray, num_vertices: int, source: str = "images") -> np.ndarray:
    """Unpack one axis from frame images with the official formula, checking the layout.

    Args:
        images: (T, S, S) uint16 frame images.
        num_vertices: V; must satisfy ``ceil(sqrt(V + 4)) == S``.
        source: name used in error messages (the file).

    Returns:
        (T, V) float32 coordinates, ``q / 65536 * (max - min) + min`` in float32.
    """
    frames, side = images.shape[0], images.shape[1]
    if image_side(num_vertices) != side:
        need = image_side(num_vertices)
        raise InputError(
            f"{source}: {num_vertices} vertices need {need}x{need} frames, found {side}x{side} "
            f"(which hold {(side - 1) ** 2 - 3}..{side * side - HEADER_SLOTS} vertices)"
        )
    flat = images.reshape(frames, side * side)
    bounds = np.ascontiguousarray(flat[:, :HEADER_SLOTS]).astype("<u2").view("<f4")
    low, high = bounds[:, 0:1], bounds[:, 1:2]
    bad = ~(np.isfinite(low) & np.isfinite(high) & (low <= high))[:, 0]
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}: frame {t} is corrupt (stored min {low[t, 0]:g}, max {high[t, 0]:g}; "
            "expected finite min <= max)"
        )
    tail = flat[:, HEADER_SLOTS + num_vertices :]
    if tail.any():
        t = int(np.flatnonzero(tail.any(axis=1))[0])
        raise InputError(
            f"{source}: frame {t} holds non-zero values after {num_vertices} vertices "
            "(expected zeros: a wrong vertex count or a corrupt file)"
        )
    quantised = flat[:, HEADER_SLOTS : HEADER_SLOTS + num_vertices].astype(np.float32)
    return quantised / np.float32(QUANT_LEVELS) * (high - low) + low
