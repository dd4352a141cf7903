"""Library functions behind ``mmface4d facemodel info|export|fetch``.

``facemodel show`` renders, so it is :func:`mmface4d.render.picture.show_face_model`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.regions import save_region_indices
from mmface4d.facemodel.sources import load_face_model
from mmface4d.settings import coerce, split_assignment

ICT_REPOSITORY = "https://github.com/ICT-VGL/ICT-FaceKit.git"


def info(spec: str | Path | FaceModel) -> dict[str, Any]:
    """JSON-ready summary of a face model (vertices, faces, dims, names, regions, unit)."""
    return load_face_model(spec).info()


def export(
    spec: str | Path | FaceModel, output: str | Path, regions_dir: str | Path | None = None
) -> Path:
    """Save a model as one ``.npz`` (readable by every ``--face-model`` option).

    Args:
        spec: the model's spec.
        output: the ``.npz`` path.
        regions_dir: also write each region as ``<name>.txt`` index files there.
    """
    model = load_face_model(spec)
    path = model.save(output)
    if regions_dir is not None:
        save_region_indices(model.regions, regions_dir)
    return path


def parse_expression_weights(items: list[str] | None) -> dict[str, float]:
    """``["jawOpen=0.8", "eyeBlinkLeft=1"]`` -> ``{"jawOpen": 0.8, ...}`` with clear errors."""
    weights: dict[str, float] = {}
    for item in items or []:
        message = f"--expression {item!r}: expected NAME=WEIGHT with a finite number"
        try:
            name, value = split_assignment(item, "--expression", "NAME=WEIGHT")
            weight = coerce(value, float, f"--expression {name}")
        except InputError:
            raise InputError(message) from None
        if not np.isfinite(weight):
            raise InputError(message)
        weights[name] = weight
    return weights


def fetch(name: str, directory: str | Path) -> Path:
    """Download a public face model's repository (needs internet; ICT FaceKit only).

    The licence-gated models (BFM) cannot be fetched: register with their owners and pass the
    folder as ``bfm:DIR``.
    """
    if name != "ict":
        raise InputError(f"facemodel fetch: only 'ict' can be downloaded, got {name!r}")
    target = Path(directory)
    if target.exists() and any(target.iterdir()):
        raise InputError(f"{target}: folder exists and is not empty")
    try:
        subprocess.run(
            ["git", "clone", "--depth", "1", ICT_REPOSITORY, str(target)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except FileNotFoundError:
        raise InputError("facemodel fetch needs git on PATH") from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (getattr(exc, "stderr", "") or "").strip().splitlines()
        raise InputError(
            f"could not download ICT FaceKit from {ICT_REPOSITORY} (offline?): "
            f"{detail[-1] if detail else exc}. Download it on a machine with internet and pass "
            f"ict:PATH/FaceXModel"
        ) from None
    return target / "FaceXModel"
