"""The package list, the one thing pyproject.toml cannot state: the code under src/, plus the
top-level configs/ folder (named presets, ``--config paper``) shipped as the data-only package
``mmface4d.configs``, so a wheel holds ``mmface4d/configs/<verb>/<name>.toml``
(:func:`mmface4d.settings.presets_dir` reads it there, or here in a source checkout)."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
CONFIGS = ["mmface4d.configs"] + [
    f"mmface4d.configs.{name}" for name in find_namespace_packages(str(ROOT / "configs"))
]

setup(
    # as pyproject's own discovery would (namespaces on: the data folder assets/ included)
    packages=[*find_namespace_packages(str(ROOT / "src"), include=["mmface4d*"]), *CONFIGS],
    package_dir={"": "src", "mmface4d.configs": "configs"},
)
