"""The wheel ships the presets of the top-level configs/ folder as mmface4d/configs/, where an
installed package finds them (a source checkout reads configs/ itself: tests/test_settings.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built with the project's own pyproject.toml and setup.py from a copy holding the
    configs/ folder and the few modules the presets need (fast; the package is the same)."""
    pytest.importorskip("setuptools")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "configs", source / "configs")
    package = source / "src" / "mmface4d"
    package.mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "settings.py", "py.typed"):
        shutil.copy(ROOT / "src" / "mmface4d" / name, package / name)
    dist = tmp_path_factory.mktemp("dist")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        str(dist),
        str(source),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return next(dist.glob("mmface4d-*.whl"))


def test_the_wheel_holds_every_preset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {
        "mmface4d/configs/" + path.relative_to(ROOT / "configs").as_posix()
        for path in (ROOT / "configs").glob("*/*.toml")
    }
    assert presets and presets <= names
    assert "mmface4d/configs/reconstruct/paper.toml" in names


def test_an_installed_package_finds_its_presets(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)  # what pip install puts in site-packages
    script = (
        "import mmface4d, mmface4d.settings as s; "
        "print(mmface4d.__file__); print(s.presets_dir()); "
        "print(s.find_config('paper', 'reconstruct')); print(s.preset_names('train'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target)},
        check=True,
        timeout=60,
    )
    module, folder, paper, train = result.stdout.splitlines()
    assert Path(module).parent == target / "mmface4d"  # the installed copy, not src/
    assert Path(folder) == target / "mmface4d" / "configs"
    assert Path(paper) == target / "mmface4d" / "configs" / "reconstruct" / "paper.toml"
    assert "table2_ours" in train
