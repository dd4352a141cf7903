"""Audio loading (PyAV) and WAV writing."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mmface4d.audio.io import load_audio, write_wav
from mmface4d.errors import InputError


def raw_float_wav(path: Path) -> np.ndarray:
    """The data chunk of a float32 WAV, read by hand."""
    raw = path.read_bytes()
    at = raw.find(b"data")
    size = int.from_bytes(raw[at + 4 : at + 8], "little")
    return np.frombuffer(raw[at + 8 : at + 8 + size], dtype="<f4")


def write_with_pyav(path: Path, channels: np.ndarray, rate: int, codec: str) -> None:
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(channels.astype(np.int16), format="s16p", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_real_sample_is_bit_exact(shared_data: Path) -> None:
    path = shared_data / "mmface4d_sample" / "000337.wav"
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (35_733,)
    np.testing.assert_array_equal(audio, raw_float_wav(path))


def test_real_speech_resampled_from_44k(shared_data: Path) -> None:
    audio = load_audio(shared_data / "speech" / "english_male_test.wav", 16_000)
    assert abs(audio.size / 16_000 - 11.5) < 0.1  # the README's 11.5 s
    assert 0.01 < float(np.abs(audio).max()) <= 1.0


def test_float_round_trip_and_resampling(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_wav(tmp_path / "tone.wav", tone, 8000)
    np.testing.assert_array_equal(load_audio(path, 8000), tone)
    up = load_audio(path, 16_000)
    assert abs(up.size - 16_000) <= 32
    # the tone survives resampling: same frequency, same amplitude
    spectrum = np.abs(np.fft.rfft(up[1000:15000]))
    peak_hz = np.argmax(spectrum) * 16_000 / 14_000
    assert abs(peak_hz - 440) < 3 and abs(np.abs(up[1000:15000]).max() - 0.5) < 0.02


def test_pcm16_writing(tmp_path: Path) -> None:
    audio = np.linspace(-1.2, 1.2, 1000).astype(np.float32)
    back = load_audio(write_wav(tmp_path / "a.wav", audio, 16_000, "pcm16"))
    np.testing.assert_allclose(back, np.clip(audio, -1, 32767 / 32768), atol=0.5 / 32768 + 1e-7)


def test_stereo_flac_downmix_is_the_channel_mean(tmp_path: Path) -> None:
    left, right = np.full(4000, 16000), np.full(4000, -4000)
    path = tmp_path / "stereo.flac"
    write_with_pyav(path, np.stack([left, right]), 16_000, "flac")
    audio = load_audio(path)
    np.testing.assert_allclose(audio, (16000 - 4000) / 2 / 32768, atol=1e-6)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.wav: audio file not found"):
        load_audio(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(InputError, match="junk.wav"):
        load_audio(junk)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.wav"):
        load_audio(empty)
    with pytest.raises(InputError, match="sample_rate"):
        load_audio(junk, 0)


def test_write_wav_rejects_bad_audio(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="non-empty"):
        write_wav(tmp_path / "x.wav", np.zeros((2, 3)), 16_000)
    with pytest.raises(InputError, match="finite"):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.nan]), 16_000)
    assert not (tmp_path / "x.wav").exists()
