import os
import stat

import pytest

from mmface4d.atomic import atomic_path


def test_written_on_success_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_nothing_left_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_directory_target_rejected(tmp_path):
    with pytest.raises(IsADirectoryError), atomic_path(tmp_path):
        pass
