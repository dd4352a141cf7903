"""Vertex-animation files: one NPZ per clip, or one PLY/OBJ mesh per frame.

The NPZ is the project's one sequence layout (:mod:`mmface4d.data.sequence`: vertices (T, V, 3)
float32 metres, faces (F, 3) int64) with the frame and audio rates and a JSON metadata string,
loadable without pickle. The per-frame meshes are for tools that read mesh sequences (Blender's
importers, MeshLab, Houdini): binary little-endian PLY or text OBJ, files named
``<stem>_00000.<fmt>``.

Letters: T frames, V vertices, F faces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mmface4d.atomic import atomic_path
from mmface4d.data.sequence import MeshSequence, read_sequence_npz, save_sequence
from mmface4d.errors import InputError
from mmface4d.geometry.checks import check_faces, check_vertices

#: An animation read from NPZ is the project's one sequence type (kept name).
AnimationFile = MeshSequence


def write_animation_npz(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    fps: float,
    sample_rate: int,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a clip as an uncompressed NPZ: the :class:`~mmface4d.data.sequence.MeshSequence`
    layout with the keys ``vertices`` (T, V, 3) float32, ``faces`` (F, 3) int64, ``fps`` float64
    scalar, ``sample_rate`` int64 scalar and ``metadata`` a JSON string (a 0-d unicode array).

    Args:
        path: output path (``.npz`` by convention), written atomically.
        vertices: (T, V, 3) finite vertex positions, metres, face model frame.
        faces: (F, 3) triangles.
        fps: frame rate, > 0.
        sample_rate: audio rate, Hz, > 0.
        metadata: JSON-serialisable facts (model, subject, version ...).

    Returns:
        ``path``.
    """
    sequence = MeshSequence(
        vertices, faces, fps, sample_rate=sample_rate, metadata=dict(metadata or {})
    )
    return save_sequence(sequence, path)


def read_animation_npz(path: str | Path) -> MeshSequence:
    """Read an NPZ written by :func:`write_animation_npz` (any name; the sequence's
    ``sample_rate`` and ``metadata`` are set)."""
    return read_sequence_npz(path)


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
    vertices = check_vertices(vertices).astype(np.float32, copy=False)
    faces = check_faces(faces, vertices.shape[1])
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
