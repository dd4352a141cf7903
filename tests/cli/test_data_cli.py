"""``mmface4d data pack|info|split|verify`` through the command-line entry point."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmface4d.audio.io import write_wav
from mmface4d.cli import main


def make_faceformer(root: Path) -> Path:
    """3 subjects x 2 sentences of 40-90 frames at 60 fps, V = 20."""
    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    rng = np.random.default_rng(0)
    templates = {}
    for s, subject in enumerate(("SubjA", "SubjB", "SubjC")):
        templates[subject] = rng.standard_normal((20, 3)).astype(np.float32) * 0.1
        for k in (1, 2):
            frames = 40 + 10 * (2 * s + k)
            motion = 0.001 * rng.standard_normal((frames, 20, 3))
            vertices = (templates[subject] + motion).astype(np.float32).reshape(frames, -1)
            np.save(root / "vertices_npy" / f"{subject}_sentence{k:02d}.npy", vertices)
            audio = 0.1 * rng.standard_normal(frames * 16_000 // 60).astype(np.float32)
            write_wav(root / "wav" / f"{subject}_sentence{k:02d}.wav", audio)
    with open(root / "templates.pkl", "wb") as file:
        pickle.dump(templates, file)
    return root


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_pack_info_split_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_faceformer(tmp_path / "src")
    store = str(tmp_path / "store")
    packed = run_json(
        capsys, "data", "pack", str(src), "-o", store, "--fps", "60", "--subsample", "2"
    )
    assert packed["layout"] == "faceformer" and len(packed["packed"]) == 6
    again = run_json(
        capsys, "data", "pack", str(src), "-o", store, "--fps", "60", "--subsample", "2"
    )
    assert again["packed"] == [] and len(again["skipped"]) == 6
    summary = run_json(capsys, "data", "info", store)
    assert summary["sequences"] == 6 and summary["fps"] == [30.0] and summary["split"] is None
    splits = run_json(capsys, "data", "split", store, "--seed", "1", "--test-fraction", "0.34")
    assert splits["sequences"] == {"test": 2, "train": 4}
    assert len(splits["subjects"]["test"]) == 1
    summary = run_json(capsys, "data", "info", store)
    assert summary["split"] == "random" and summary["splits"]["train"]["sequences"] == 4
    assert run_json(capsys, "data", "verify", store)["ok"] is True


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "pack", str(tmp_path / "missing"), "-o", str(tmp_path / "s")]) == 2
    assert "source folder not found" in capsys.readouterr().err
    assert main(["data", "info", str(tmp_path)]) == 2
    assert "no manifest.parquet" in capsys.readouterr().err
