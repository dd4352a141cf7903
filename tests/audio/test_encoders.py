"""The encoder interface, the log-mel encoder and the spec/registry (no transformers needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmface4d.audio.encoders import (
    AudioEncoder,
    MelEncoder,
    build_encoder,
    parse_encoder_spec,
    prepare_audio,
)
from mmface4d.audio.mel import hz_to_mel, mel_filterbank, mel_to_hz
from mmface4d.errors import InputError

RATE = 16_000


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(RATE * seconds), dtype=torch.float64) / RATE
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def reference_log_mel(audio: np.ndarray, filterbank: np.ndarray) -> np.ndarray:
    """Slow numpy log-mel: frame j is the 400 samples centred on (j + 0.5) * 160, zeros outside."""
    hop, win = 160, 400
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = []
    for j in range(math.ceil(len(audio) / hop)):
        start = (j * hop + hop // 2) - win // 2
        segment = np.zeros(win)
        for m in range(win):
            if 0 <= start + m < len(audio):
                segment[m] = audio[start + m]
        power = np.abs(np.fft.rfft(segment * hann, n=512)) ** 2
        frames.append(np.log(filterbank @ power + 1e-6))
    return np.stack(frames)


def test_mel_scales_known_values():
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)  # Slaney: linear up to 1 kHz
    assert float(hz_to_mel(6400.0)) == pytest.approx(42.0)  # 27 log steps of ln(6.4) / 27
    assert float(hz_to_mel(700.0, "htk")) == pytest.approx(2595 * math.log10(2))
    freqs = np.array([0.0, 300.0, 1000.0, 4321.0, 8000.0])
    for scale in ("slaney", "htk"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs, scale), scale), freqs, atol=1e-9)


def test_filterbank_triangles_have_unit_area():
    fbank = mel_filterbank(40, 4096, RATE).double().numpy()
    bin_hz = RATE / 4096
    # Slaney normalisation: each triangle integrates to 1 over Hz
    np.testing.assert_allclose(fbank.sum(axis=1) * bin_hz, 1.0, rtol=0.02)
    assert (fbank >= 0).all()
    peaks = fbank.argmax(axis=1)
    assert (np.diff(peaks) > 0).all()


def test_mel_shapes_and_rate():
    encoder = build_encoder("mel")
    assert isinstance(encoder, AudioEncoder) and isinstance(encoder, MelEncoder)
    assert encoder.feature_rate == 100.0 and encoder.dim == 80
    features = encoder(torch.randn(3, RATE) * 0.1)
    assert features.shape == (3, 100, 80)
    assert encoder(torch.randn(RATE + 1) * 0.1).shape == (1, 101, 80)  # ceil(N / hop)
    assert encoder.num_features(RATE + 1) == 101


def test_mel_matches_slow_reference():
    audio = (torch.randn(1234, generator=torch.Generator().manual_seed(1)) * 0.2).numpy()
    encoder = MelEncoder(n_mels=40)
    fast = encoder(torch.from_numpy(audio))[0].double().numpy()
    slow = reference_log_mel(audio.astype(np.float64), encoder.filterbank.double().numpy())
    assert fast.shape == slow.shape == (8, 40)
    np.testing.assert_allclose(fast, slow, atol=2e-3)


def test_pure_tone_lands_in_its_mel_band():
    encoder = MelEncoder()
    # band m peaks at the (m + 1)-th of 82 edges equally spaced in Slaney mel over 0..8 kHz
    centre_hz = mel_to_hz(np.linspace(0.0, float(hz_to_mel(8000.0)), 82))[1:-1]
    for freq in (100.0, 440.0, 1000.0, 3000.0, 7000.0):
        band = int(encoder(tone(freq))[0, 10:-10].mean(dim=0).argmax())
        assert band == int(np.abs(centre_hz - freq).argmin()), freq


def test_mel_short_and_silent_audio():
    encoder = MelEncoder()
    assert encoder(torch.zeros(7)).shape == (1, 1, 80)  # shorter than a window: zero-padded
    silent = encoder(torch.zeros(2, 800))
    assert torch.allclose(silent, torch.full_like(silent, math.log(1e-6)))
    normalized = MelEncoder(normalize=True)(tone(500.0) + 0.01 * torch.randn(RATE))[0]
    assert torch.allclose(normalized.mean(dim=0), torch.zeros(80), atol=1e-4)


def test_encoder_follows_its_dtype():
    encoder = MelEncoder(n_mels=8).double()
    features = encoder(np.zeros(400, dtype=np.float32))
    assert features.dtype == torch.float64 and features.shape == (1, 3, 8)


def test_mel_is_differentiable():
    audio = (torch.randn(1, 800) * 0.1).requires_grad_()
    MelEncoder(n_mels=8)(audio).sum().backward()
    assert audio.grad is not None and torch.isfinite(audio.grad).all()


def test_encode_to_frames_gives_num_frames():
    encoder = build_encoder("mel")
    audio = torch.randn(2, 3 * RATE) * 0.1
    assert encoder.encode_to_frames(audio, fps=30).shape == (2, 90, 80)
    assert encoder.encode_to_frames(audio, fps=30, num_frames=87).shape == (2, 87, 80)
    assert encoder.encode_to_frames(audio[0, :1000], fps=30).shape == (1, 2, 80)  # round(1.875)
    assert encoder.encode_to_frames(audio[0, :10], fps=30).shape == (1, 1, 80)
    # frame i's centre (i + 0.5) / 30 s falls on feature (i + 0.5) * 100 / 30 - 0.5 (centres):
    # frame 3 -> feature 11 + 1 / 6
    features = encoder(audio)
    expected = features[:, 11] + (features[:, 12] - features[:, 11]) / 6
    np.testing.assert_allclose(
        encoder.encode_to_frames(audio, fps=30)[:, 3], expected, rtol=1e-5, atol=1e-5
    )


def test_prepare_audio_validates():
    assert prepare_audio(np.zeros(5)).shape == (1, 5)
    assert prepare_audio(np.zeros(5)).dtype == torch.float32
    with pytest.raises(InputError, match="N >= 1"):
        prepare_audio(torch.zeros(2, 0))
    with pytest.raises(InputError, match="shape"):
        prepare_audio(torch.zeros(1, 2, 3))
    with pytest.raises(InputError, match="float samples"):
        prepare_audio(np.zeros(5, dtype=np.int16))
    with pytest.raises(InputError, match="finite"):
        prepare_audio(torch.tensor([0.0, float("nan")]))
    with pytest.raises(InputError, match="N >= 1"):
        build_encoder("mel").encode_to_frames(torch.zeros(0), fps=30)


def test_parse_encoder_spec():
    spec = parse_encoder_spec(" hubert:path=/x/y=z:w, layer=12 ")
    assert spec.name == "hubert"
    assert spec.options == {"path": "/x/y=z:w", "layer": "12"}
    assert parse_encoder_spec("mel").options == {}
    with pytest.raises(InputError, match="key=value"):
        parse_encoder_spec("mel:n_mels")
    with pytest.raises(InputError, match="twice"):
        parse_encoder_spec("mel:n_mels=40,n_mels=20")
    with pytest.raises(InputError, match="name"):
        parse_encoder_spec(":n_mels=40")


def test_build_encoder_options_and_errors():
    encoder = build_encoder("mel:n_mels=40,normalize=true,scale=htk", f_max=7600)
    assert encoder.dim == 40 and encoder.normalize is True
    with pytest.raises(InputError, match="unknown name 'melody'"):
        build_encoder("melody")
    with pytest.raises(InputError, match=r"unknown options \['layers'\]"):
        build_encoder("mel", layers=3)
    with pytest.raises(InputError, match="n_mels expects int"):
        build_encoder("mel:n_mels=many")
    with pytest.raises(InputError, match="true/false"):
        build_encoder("mel:normalize=maybe")
    with pytest.raises(InputError, match="both in the spec"):
        build_encoder("mel:n_mels=40", n_mels=20)
    with pytest.raises(InputError, match="slaney"):
        build_encoder("mel:scale=bark")
    with pytest.raises(InputError, match="f_max"):
        build_encoder("mel", f_max=9000.0)
