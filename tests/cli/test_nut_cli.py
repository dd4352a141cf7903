"""``mmface4d nut decode|encode`` through ``mmface4d.cli.main``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmface4d.cli import main
from mmface4d.data.nut import axis_paths, decode_nut, nut_info


def test_encode_then_decode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    vertices = (rng.normal(size=(5, 120, 3)) * 0.05 + [0, 0.03, 0.72]).astype(np.float32)
    np.save(tmp_path / "in.npy", vertices)

    assert main(["nut", "encode", str(tmp_path / "in.npy"), "-o", str(tmp_path / "seq")]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(p) for p in axis_paths(tmp_path / "seq")]
    assert all(Path(p).is_file() for p in written)

    out = tmp_path / "out.npy"
    code = main(["nut", "decode", str(tmp_path / "seq"), "-o", str(out), "--vertices", "120"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    decoded = np.load(out)
    assert decoded.shape == (5, 120, 3) and decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, decode_nut(tmp_path / "seq", 120))
    step = (vertices.max(axis=1) - vertices.min(axis=1) + 0.1) / 65536  # (T, 3)
    assert np.all(np.abs(decoded - vertices) <= step[:, None, :])


def test_encode_fps(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", np.zeros((2, 10, 3)))
    assert (
        main(["nut", "encode", str(tmp_path / "in.npy"), "-o", str(tmp_path / "s"), "--fps", "25"])
        == 0
    )
    assert nut_info(tmp_path / "s").fps == 25


def test_decode_real_sample(shared_data: Path, tmp_path: Path) -> None:
    prefix = shared_data / "mmface4d_sample" / "reconstruct_filt"
    assert main(["nut", "decode", str(prefix), "-o", str(tmp_path / "v.npy")]) == 0
    assert np.load(tmp_path / "v.npy").shape == (67, 35_709, 3)


def test_decode_missing_prefix_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v.npy"
    assert main(["nut", "decode", str(tmp_path / "nope"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmface4d: error: ") and err.count("\n") == 1
    assert "nope_0.nut" in err
    assert not out.exists()


@pytest.mark.parametrize("content", [None, b"not an array", "shape"])
def test_encode_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | str | None
) -> None:
    source = tmp_path / "in.npy"
    if content == "shape":
        np.save(source, np.zeros((4, 3)))
    elif content is not None:
        source.write_bytes(content)
    assert main(["nut", "encode", str(source), "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(source) in err
    assert not any(tmp_path.glob("s_*.nut"))
