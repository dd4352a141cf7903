"""Ground truth beside a recording: the true cameras, meshes and lighting a capture was made from.

A synthetic studio capture (``mmface4d synth capture``) writes, beside the raw files of recording
``<rec>``, ``<rec>_gt_capture.npz`` and ``<rec>_gt_capture.json`` (:data:`GT_SUFFIX`); the studio
(:mod:`mmface4d.synth.studio`) fills them and reconstruction scores its fit against them. This
module owns the file pair, so both read and write it the same way.

``.npz`` arrays: ``camera_from_world`` (C, 4, 4) true poses, ``p_cam = T @ p_world``;
``intrinsics`` (C, 3, 3) colour intrinsics at the working resolution; ``vertices`` (T, V, 3)
float32 meshes; ``faces`` (F, 3) int64; ``sh`` (C, 27) SH lighting per camera; ``white_balance``
(C, 3); ``exposure`` (C,). The world is the centre camera's frame (OpenCV axes, metres; see
:mod:`mmface4d.geometry.frames`).

``.json``: ``format`` (:data:`GT_FORMAT`), ``image_size`` (W, H), and what the writer adds (the
conventions in words, the seed, the configuration that made the capture).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError

#: Name suffix of a recording's ground truth: ``<rec>_gt_capture.npz`` and ``.json``.
GT_SUFFIX = "_gt_capture"
#: ``format`` of the ``.json``.
GT_FORMAT = "mmface4d-studio-gt/1"
#: The arrays of the ``.npz``, in the order they are written.
GT_ARRAYS = (
    "camera_from_world",
    "intrinsics",
    "vertices",
    "faces",
    "sh",
    "white_balance",
    "exposure",
)


def ground_truth_path(folder: str | os.PathLike[str], recording: str) -> Path:
    """``folder/<recording>_gt_capture.npz``: where a recording's ground truth lies."""
    return Path(folder) / f"{recording}{GT_SUFFIX}.npz"


def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


@dataclass
class GroundTruthFile:
    """The contents of a ground-truth file pair, as stored.

    Attributes:
        arrays: the ``.npz`` arrays by name (:data:`GT_ARRAYS`; shapes in the module docstring).
        metadata: the ``.json`` object (``format``, ``image_size`` and the writer's entries).
    """

    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def vertices(self) -> np.ndarray:
        """(T, V, 3) float32 true meshes, world frame, metres."""
        return self.arrays["vertices"]

    @property
    def image_size(self) -> tuple[int, int]:
        """(W, H) of the working resolution the intrinsics refer to."""
        width, height = self.metadata["image_size"]
        return int(width), int(height)


def write_ground_truth(path: str | os.PathLike[str], truth: GroundTruthFile) -> Path:
    """Write ``path`` (.npz) and the .json beside it, both atomically; returns the .npz path.

    The .json starts with ``format`` (:data:`GT_FORMAT`), then ``truth.metadata`` in its order.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"ground truth path must end in .npz, got {path}")
    meta = {"format": GT_FORMAT, **{k: v for k, v in truth.metadata.items() if k != "format"}}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **{name: truth.arrays[name] for name in GT_ARRAYS})
    with atomic_path(_json_path(path)) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def read_ground_truth(path: str | os.PathLike[str]) -> GroundTruthFile:
    """Read what :func:`write_ground_truth` wrote (the .npz and the .json beside it)."""
    path = Path(path)
    if not path.is_file() or not _json_path(path).is_file():
        raise InputError(f"{path}: studio ground truth needs the .npz and its .json beside it")
    try:
        meta = json.loads(_json_path(path).read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{_json_path(path)}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != GT_FORMAT:
        raise InputError(f"{_json_path(path)}: not a studio ground truth ({GT_FORMAT})")
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    missing = [name for name in GT_ARRAYS if name not in arrays]
    if missing:
        raise InputError(f"{path}: not a complete studio ground truth (missing {missing})")
    return GroundTruthFile(arrays, meta)
