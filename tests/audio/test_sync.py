"""The audio/mesh synchronisation rules, with known values and a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmface4d.audio.sync import (
    align_lengths,
    frame_to_sample,
    frames_to_samples,
    resample_to_frames,
)
from mmface4d.errors import InputError


def slow_resample(features: np.ndarray, rate: float, fps: float, frames: int) -> np.ndarray:
    """Frame i samples the piecewise-linear curve through (feature centre (j + 0.5) / rate,
    f[j]) at its own centre (i + 0.5) / fps, held flat beyond the first and last centres."""
    centres = (np.arange(len(features)) + 0.5) / rate
    out = np.empty((frames, features.shape[1]))
    for i in range(frames):
        t = (i + 0.5) / fps
        for c in range(features.shape[1]):
            out[i, c] = np.interp(t, centres, features[:, c])
    return out


def test_frame_to_sample_known_values() -> None:
    # 16000 / 30 = 533.33... samples per frame, rounded half up
    assert [frame_to_sample(i, 30, 16_000) for i in range(4)] == [0, 533, 1067, 1600]
    assert frames_to_samples(64, 30, 16_000) == 34_133
    assert frames_to_samples(67, 30, 16_000) == 35_733  # the real sample's wav length
    assert frame_to_sample(1, 60, 16_000) == 267  # 266.67
    assert frame_to_sample(25, 25, 16_000) == 16_000
    assert frame_to_sample(3, 29.97, 16_000) == round(3 * 16_000 / 29.97)
    with pytest.raises(InputError, match="fps"):
        frame_to_sample(1, 0, 16_000)


def test_resample_known_values_on_a_ramp() -> None:
    features = np.arange(10, dtype=np.float32)[:, None]  # f[j] = j at 50 Hz
    out = resample_to_frames(features, 50, 25)  # every frame spans two features
    assert out.shape == (5, 1) and out.dtype == np.float32
    # frame centre (i + 0.5) / 25 s = feature position 2i + 0.5
    np.testing.assert_allclose(out[:, 0], [0.5, 2.5, 4.5, 6.5, 8.5])
    up = resample_to_frames(features, 50, 100)  # 20 frames, clamped at both ends
    np.testing.assert_allclose(up[[0, 1, 2, -1], 0], [0.0, 0.25, 0.75, 9.0])


@pytest.mark.parametrize(("rate", "fps", "frames"), [(50, 30, 60), (50, 25, 17), (49, 60, 130)])
def test_resample_matches_slow_reference_and_torch(rate: float, fps: float, frames: int) -> None:
    features = np.random.default_rng(0).standard_normal((100, 3))
    out = resample_to_frames(features, rate, fps, frames)
    np.testing.assert_allclose(out, slow_resample(features, rate, fps, frames), atol=1e-12)
    tensor = torch.from_numpy(features)[None]
    if frames == round(100 * fps / rate):
        expected = torch.nn.functional.interpolate(
            tensor.transpose(1, 2), size=frames, mode="linear", align_corners=False
        ).transpose(1, 2)[0]
        np.testing.assert_allclose(out, expected.numpy(), atol=1e-6)


def test_resample_torch_batch_keeps_gradients() -> None:
    features = torch.randn(2, 50, 4, dtype=torch.float64, requires_grad=True)
    out = resample_to_frames(features, 50, 30)
    assert out.shape == (2, 30, 4) and out.dtype == torch.float64
    np.testing.assert_allclose(
        out[1].detach().numpy(), resample_to_frames(features[1].detach().numpy(), 50, 30)
    )
    assert torch.autograd.gradcheck(lambda f: resample_to_frames(f, 50, 30), (features,))


def test_resample_rejects_bad_shapes() -> None:
    with pytest.raises(InputError, match=r"\(N, C\)"):
        resample_to_frames(np.zeros(10), 50, 30)
    with pytest.raises(InputError, match="num_frames"):
        resample_to_frames(np.zeros((10, 2)), 50, 30, 0)


def test_align_trims_longer_audio() -> None:
    audio, vertices = np.ones(40_000, np.float32), np.zeros((67, 5, 3))
    aligned = align_lengths(audio, vertices, stream_rate=16_000, fps=30)
    assert aligned.vertices.shape[0] == 67 and aligned.stream.shape == (35_733,)
    assert (aligned.trimmed_frames, aligned.trimmed_samples, aligned.padded_samples) == (
        0,
        40_000 - 35_733,
        0,
    )


def test_align_pads_audio_short_by_under_half_a_frame() -> None:
    audio = np.ones(35_733 - 200, np.float32)
    aligned = align_lengths(audio, np.zeros((67, 5, 3)), stream_rate=16_000, fps=30)
    assert aligned.vertices.shape[0] == 67 and aligned.stream.shape == (35_733,)
    assert aligned.padded_samples == 200 and not aligned.stream[-200:].any()


def test_align_trims_mesh_when_audio_is_a_frame_short() -> None:
    audio = np.ones(frames_to_samples(66, 30, 16_000), np.float32)
    aligned = align_lengths(audio, np.zeros((67, 5, 3)), stream_rate=16_000, fps=30)
    assert aligned.vertices.shape[0] == 66 and aligned.trimmed_frames == 1
    with pytest.raises(InputError, match=r"seq7: audio .* shorter than the mesh .* by 1 frames"):
        align_lengths(
            audio, np.zeros((67, 5, 3)), stream_rate=16_000, fps=30, max_trim_frames=0, name="seq7"
        )


def test_align_refuses_much_shorter_audio() -> None:
    audio = np.ones(16_000, np.float32)  # 1 s of audio, 2.23 s of mesh
    with pytest.raises(InputError, match="by 37 frames; expected at most 1"):
        align_lengths(audio, np.zeros((67, 5, 3)), stream_rate=16_000, fps=30, max_trim_frames=1)
    aligned = align_lengths(audio, np.zeros((67, 5, 3)), stream_rate=16_000, fps=30)
    assert aligned.vertices.shape[0] == 30 and aligned.trimmed_frames == 37


def test_align_features_pad_by_repeating_the_last_row() -> None:
    features = torch.arange(12.0).reshape(6, 2)  # 6 features at 50 Hz = 0.12 s
    aligned = align_lengths(features, torch.zeros(4, 3), stream_rate=50, fps=30)
    # 4 frames at 30 fps span round(6.67) = 7 features: one padded
    assert aligned.stream.shape == (7, 2) and aligned.padded_samples == 1
    assert torch.equal(aligned.stream[-1], features[-1])
    assert math.isclose(aligned.stream.shape[0] / 50, 4 / 30, abs_tol=0.5 / 50)
