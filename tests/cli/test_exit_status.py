"""The exit status of ``mmface4d``: what a verb returns only counts when it is an int."""

from __future__ import annotations

import mmface4d.cli.demo as demo_cli
from mmface4d.cli import main


def test_a_verb_returning_a_value_exits_zero(monkeypatch, tmp_path):
    # the demo verb returns the library call's dict of written files: not a status
    monkeypatch.setattr(demo_cli, "demo", lambda *args, **kwargs: {"mp4": "out/demo.mp4"})
    assert main(["demo", "-o", str(tmp_path)]) == 0


def test_a_verb_returning_an_int_sets_the_status(monkeypatch, tmp_path):
    monkeypatch.setattr(demo_cli, "demo", lambda *args, **kwargs: 1)
    assert main(["demo", "-o", str(tmp_path)]) == 1


def test_silent_audio_is_a_one_line_warning_not_an_error(tmp_path, capsys):
    import numpy as np
    import scipy.io.wavfile

    silence = tmp_path / "quiet.wav"
    scipy.io.wavfile.write(silence, 16_000, np.zeros(16_000, np.int16))
    argv = ["animate", str(silence), "-o", str(tmp_path / "out"), "--formats", "npz", "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"mmface4d: warning: {silence}: the audio is silent (peak below -60 dBFS); "
        "the face stays at rest"
    ]
    assert (tmp_path / "out" / "quiet.npz").is_file()
