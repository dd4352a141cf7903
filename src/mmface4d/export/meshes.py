"""Vertex-animation files: one NPZ per clip, or one PLY/OBJ mesh per frame.

The NPZ keeps the project's canonical layout (vertices (T, V, 3) float32 metres, faces (F, 3)
int64) with the frame and audio rates and a JSON metadata string, loadable without pickle. The
per-frame meshes are for tools that read mesh sequences (Blender's importers, MeshLab,
Houdini): binary little-endian PLY or text OBJ, files named ``<stem>_00000.<fmt>``.

Letters: T frames, V vertices, F faces.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError


@dataclass
class AnimationFile:
    """A vertex animation read from an NPZ file.

    Attributes:
        vertices: (T, V, 3) float32 metres.
        faces: (F, 3) int64 triangles.
        fps: frame rate.
        sample_rate: rate of the audio the animation goes with, Hz.
        metadata: free JSON metadata.
    """

    vertices: np.ndarray
    faces: np.ndarray
    fps: float
    sample_rate: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])


def _check_animation(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0:
        raise InputError(f"vertices must be (T, V, 3) with T >= 1, got {vertices.shape}")
    if not np.issubdtype(vertices.dtype, np.number) or not np.isfinite(vertices).all():
        raise InputError("vertices must be finite numbers (found NaN, inf or non-numbers)")
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise InputError(f"faces must be (F, 3) with F >= 1, got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"faces must be integer vertex indices, got dtype {faces.dtype}")
    V = vertices.shape[1]
    if faces.min() < 0 or faces.max() >= V:
        raise InputError(f"faces index vertices {faces.min()}..{faces.max()}, expected 0..{V - 1}")
    return vertices.astype(np.float32), faces.astype(np.int64)


def write_animation_npz(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    fps: float,
    sample_rate: int,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a clip as an uncompressed NPZ.

    Keys: ``vertices`` (T, V, 3) float32, ``faces`` (F, 3) int64, ``fps`` float64 scalar,
    ``sample_rate`` int64 scalar, ``metadata`` a JSON string (a 0-d unicode array).

    Args:
        path: output path (``.npz`` by convention), written atomically.
        vertices: (T, V, 3) finite vertex positions, metres.
        faces: (F, 3) triangles.
        fps: frame rate, > 0.
        sample_rate: audio rate, Hz, > 0.
        metadata: JSON-serialisable facts (model, subject, version ...).

    Returns:
        ``path``.
    """
    vertices, faces = _check_animation(vertices, faces)
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer, got {sample_rate}")
    try:
        metadata_json = json.dumps(metadata or {}, sort_keys=True)
    except TypeError as exc:
        raise InputError(f"metadata must be JSON-serialisable: {exc}") from None
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(
                f,
                vertices=vertices,
                faces=faces,
                fps=np.float64(fps),
                sample_rate=np.int64(sample_rate),
                metadata=np.array(metadata_json),
            )
    return Path(path)


def read_animation_npz(path: str | Path) -> AnimationFile:
    """Read an NPZ written by :func:`write_animation_npz`.

    Args:
        path: the ``.npz`` file.

    Returns:
        :class:`AnimationFile`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such animation NPZ file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"vertices", "faces", "fps", "sample_rate", "metadata"} - set(data.files)
            if missing:
                raise InputError(f"{path}: missing keys {sorted(missing)} in the animation NPZ")
            vertices, faces = data["vertices"], data["faces"]
            fps, sample_rate = float(data["fps"]), int(data["sample_rate"])
            metadata = json.loads(str(data["metadata"]))
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable animation NPZ ({exc})") from exc
    vertices, faces = _check_animation(vertices, faces)
    return AnimationFile(vertices, faces, fps, sample_rate, metadata)


def _ply_header(num_vertices: int, num_faces: int) -> bytes:
    return (
        "ply\nformat binary_little_endian 1.0\ncomment written by mmface4d\n"
        f"element vertex {num_vertices}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {num_faces}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")


def write_mesh_sequence(
    folder: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    fmt: str = "ply",
    stem: str = "frame",
    progress: bool = True,
) -> list[Path]:
    """Write one mesh file per frame: ``<folder>/<stem>_00000.<fmt>``, ...

    PLY files are binary little-endian (float32 x y z; faces as a uchar count and int32
    indices); OBJ files are text with 1-based ``f`` lines and coordinates printed with 9
    significant digits (float32 round trip). Each file is written atomically and existing
    files are overwritten. The frame number has at least 5 digits (more for longer clips).

    Args:
        folder: output folder, created if missing.
        vertices: (T, V, 3) finite vertex positions, metres.
        faces: (F, 3) triangles.
        fmt: ``"ply"`` or ``"obj"``.
        stem: file-name prefix.
        progress: show a tqdm progress bar.

    Returns:
        The T paths written, in frame order.
    """
    vertices, faces = _check_animation(vertices, faces)
    if fmt not in ("ply", "obj"):
        raise InputError(f"fmt must be 'ply' or 'obj', got {fmt!r}")
    if not stem or "/" in stem or "\\" in stem:
        raise InputError(f"stem must be a plain file-name prefix, got {stem!r}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    T, V, _ = vertices.shape
    digits = max(5, len(str(T - 1)))
    if fmt == "ply":
        header = _ply_header(V, len(faces))
        face_records = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        face_records["n"] = 3
        face_records["v"] = faces
        face_bytes = face_records.tobytes()
    else:
        face_text = "".join(f"f {a} {b} {c}\n" for a, b, c in (faces + 1).tolist())
    paths = []
    for t in tqdm(range(T), desc=f"writing {fmt.upper()} frames", disable=not progress):
        target = folder / f"{stem}_{t:0{digits}d}.{fmt}"
        with atomic_path(target) as tmp:
            if fmt == "ply":
                with open(tmp, "wb") as f:
                    f.write(header)
                    f.write(vertices[t].astype("<f4").tobytes())
                    f.write(face_bytes)
            else:
                lines = "".join(f"v {x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in vertices[t].tolist())
                tmp.write_text("# written by mmface4d\n" + lines + face_text, encoding="ascii")
        paths.append(target)
    return paths
