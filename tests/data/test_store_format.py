"""The store's vertex encoding: int16 offsets from the sequence mean at a 1 um step."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d.data.store_format import (
    QUANT_STEP_M,
    decode_offsets,
    encode_offsets,
    sequence_checksum,
)


def sequence(frames: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.uniform(-0.1, 0.1, (50, 3)) + [0.0, 0.0, 0.7]
    t = np.arange(frames)[:, None, None]
    return (base + 0.01 * np.sin(0.2 * t + rng.uniform(0, 6, (1, 50, 3)))).astype(np.float32)


def test_offset_encoding_error_is_half_a_micrometre() -> None:
    vertices = sequence(40)
    offsets, reference, step = encode_offsets(vertices)
    assert offsets.dtype == np.int16 and reference.dtype == np.float32
    assert step == pytest.approx(QUANT_STEP_M)
    error = np.abs(decode_offsets(offsets, reference, step) - vertices).max()
    assert error <= QUANT_STEP_M / 2 + 1e-7  # plus float32 rounding at 0.8 m (6e-8)


def test_wide_motion_widens_the_step() -> None:
    vertices = sequence(20)
    vertices[10:] += 0.2  # a 20 cm jump: offsets of +-10 cm exceed 32,766 um
    offsets, reference, step = encode_offsets(vertices)
    assert step > QUANT_STEP_M and np.abs(offsets).max() <= 32_767
    error = np.abs(decode_offsets(offsets, reference, step) - vertices).max()
    assert error <= step / 2 + 1e-7


def test_reference_is_the_mean_and_zero_motion_is_exact() -> None:
    still = np.repeat(sequence(1), 5, axis=0)
    offsets, reference, _ = encode_offsets(still)
    assert not offsets.any()
    np.testing.assert_array_equal(reference, still[0])
    np.testing.assert_array_equal(decode_offsets(offsets, reference, QUANT_STEP_M), still)


def test_checksum_sees_every_part() -> None:
    offsets, reference, _ = encode_offsets(sequence(4))
    audio = np.zeros(100, np.float32)
    base = sequence_checksum(offsets, reference, audio)
    assert base == sequence_checksum(offsets.copy(), reference.copy(), audio.copy())
    changed = audio.copy()
    changed[50] = 1e-6
    assert sequence_checksum(offsets, reference, changed) != base
    moved = offsets.copy()
    moved[0, 0, 0] += 1
    assert sequence_checksum(moved, reference, audio) != base
