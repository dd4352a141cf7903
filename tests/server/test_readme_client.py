"""The README's Python client runs against a real server (a WAV at 22.05 kHz: resampled)."""

from __future__ import annotations

import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from .conftest import say

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- serve-client:"


def readme_client() -> str:
    text = README.read_text(encoding="utf-8")
    after = text[text.index(MARKER) :]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_readme_client_streams_a_wav_file_and_prints_its_frames(server, tmp_path) -> None:
    code = readme_client()
    assert len(code.strip().splitlines()) <= 30
    script = tmp_path / "client.py"
    script.write_text(code)
    audio = resample_poly(say("Bob made maple bread."), 441, 320)  # 16 kHz -> 22.05 kHz
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    done = subprocess.run(
        [sys.executable, str(script), str(wav), f"{server.url}/stream"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    frames = round(audio.size / 22050 * 30)
    assert abs(len(lines) - 1 - frames) <= 1
    assert lines[0].strip().startswith("0.000 s  jawOpen ")
    assert lines[-1].startswith("closed 1000 {'end': True, 'frames': ")
