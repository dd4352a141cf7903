"""Delivery: the animate verb's files (mp4 with sound, glb, ARKit csv, npz, ply) and the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmface4d import cli
from mmface4d.animate.api import animate
from mmface4d.animate.outputs import parse_formats, write_animation
from mmface4d.audio.io import write_wav
from mmface4d.errors import InputError
from mmface4d.export import read_animation_npz, read_arkit_csv, read_glb_animation
from mmface4d.render.video import probe_video


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory) -> Path:
    """1.5 s of a stereo 44.1 kHz 'speech-like' signal (tone bursts)."""
    t = np.arange(int(1.5 * 44_100)) / 44_100
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    write_wav(path, tone.astype(np.float32), 44_100)
    return path


def test_every_format(packaged: Path, speech_file: Path, tmp_path: Path) -> None:
    result = animate(speech_file, model=packaged)
    formats = parse_formats("npz,glb,csv,mp4,ply")
    written = write_animation(result, tmp_path / "out", formats, progress=False, size=64)
    assert set(written) == {"npz", "glb", "wav", "csv", "mp4", "ply"}
    T, V = result.vertices.shape[:2]
    saved = read_animation_npz(written["npz"])
    np.testing.assert_array_equal(saved.vertices, result.vertices)
    glb = read_glb_animation(written["glb"])
    assert glb.weights.shape[0] == T and glb.targets.shape[1:] == (V, 3)
    rebuilt = glb.template[None] + np.einsum("tk,kvc->tvc", glb.weights, glb.targets)
    assert np.abs(rebuilt - result.vertices).max() < 0.01  # ARKit fit of a tiny model's output
    weights, names, fps = read_arkit_csv(written["csv"])
    assert weights.shape == (T, 52) and fps == 30 and 0 <= weights.min() <= weights.max() <= 1
    info = probe_video(written["mp4"])
    assert info.audio_duration_s is not None and info.frames == T
    assert len(list(written["ply"].glob("*.ply"))) == T
    assert not list((tmp_path / "out").glob("*.tmp*"))  # nothing left under temporary names


def test_cli_animate_and_bad_outputs(packaged: Path, speech_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    argv = ["animate", str(speech_file), "-o", str(out), "--model", str(packaged)]
    assert cli.main([*argv, "--formats", "npz,csv", "--quiet"]) == 0
    assert (out / "hello.npz").is_file() and (out / "hello_arkit.csv").is_file()
    file_not_folder = tmp_path / "afile"
    file_not_folder.write_text("x")
    bad = ["animate", str(speech_file), "-o", str(file_not_folder), "--model", str(packaged)]
    assert cli.main([*bad, "--quiet"]) == 2
    assert cli.main([*argv, "--formats", "gif", "--quiet"]) == 2
    with pytest.raises(InputError, match="formats"):
        parse_formats("npz,fbx")


def test_demo_writes_video_glb_and_csv(packaged: Path, tmp_path: Path) -> None:
    from mmface4d.demo import demo

    written = demo(tmp_path / "demo", text="Hi.", model=str(packaged), size=64, progress=False)
    for kind in ("mp4", "glb", "csv", "png"):
        assert written[kind].is_file()
    assert probe_video(written["mp4"]).audio_duration_s is not None


def test_a_builtin_speaker_is_prepared_once_per_animator(
    packaged: Path, speech_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmface4d.animate.api import load_animator

    first = animate(speech_file, model=packaged, liveliness=None)
    animator = load_animator(packaged)
    calls: list[int] = []
    prepare = animator.pipeline.model.prepare_speaker
    monkeypatch.setattr(
        animator.pipeline.model, "prepare_speaker", lambda *a: calls.append(1) or prepare(*a)
    )
    again = animate(speech_file, model=packaged, liveliness=None)
    assert not calls  # the built-in subject and style were prepared by the first call
    np.testing.assert_array_equal(again.vertices, first.vertices)
    style = next(iter(animator.styles))
    other = animate(speech_file, model=packaged, liveliness=None, template=first.template * 1.01)
    assert calls == [1]  # a user template is prepared for its call
    assert other.metadata["style"] == style
    assert np.abs(other.vertices - first.vertices).max() > 0
