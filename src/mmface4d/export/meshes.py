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


class AnimationNpzWriter:
    """The NPZ of :func:`write_animation_npz` written as the frames come, so a long animation
    is never held whole: ``vertices`` is a ``.npy`` member of the (uncompressed) ZIP whose header
    gives the T frames announced, its rows appended; the other keys follow at :meth:`close`.
    The file is written under a temporary name and renamed when complete (all T frames); an
    error or an incomplete animation leaves no file.

    Args:
        path: output path.
        num_frames: T, the frames that will be written.
        faces: (F, 3) triangles.
        fps: frame rate, > 0.
        sample_rate: audio rate, Hz, > 0.
    """

    def __init__(
        self, path: str | Path, num_frames: int, faces: np.ndarray, fps: float, sample_rate: int
    ):
        import zipfile

        if num_frames < 1:
            raise InputError(f"num_frames: expected at least 1, found {num_frames}")
        self.path, self.num_frames, self.frames = Path(path), int(num_frames), 0
        self.faces = np.asarray(faces, dtype=np.int64)
        self.fps, self.sample_rate = float(fps), int(sample_rate)
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._zip = zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._member: Any = None
        self._shape: tuple[int, int] | None = None

    def write(self, vertices: np.ndarray) -> None:
        """Append (n, V, 3) finite vertices, the next n frames."""
        vertices = check_vertices(vertices, min_frames=0).astype("<f4", copy=False)
        if self._member is None:
            self._shape = vertices.shape[1:]
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                "fortran_order": False,
                "shape": (self.num_frames, *self._shape),
            }
            self._member = self._zip.open("vertices.npy", "w", force_zip64=True)
            np.lib.format.write_array_header_1_0(self._member, header)
        if vertices.shape[1:] != self._shape:
            raise InputError(f"vertices: expected (n, *{self._shape}), got {vertices.shape}")
        if self.frames + len(vertices) > self.num_frames:
            raise InputError(f"vertices: more than the {self.num_frames} frames announced")
        self._member.write(np.ascontiguousarray(vertices).tobytes())
        self.frames += len(vertices)

    def close(self, metadata: dict[str, Any] | None = None) -> Path:
        """Write the other keys and rename the file into place; ``path``."""
        import json

        try:
            if self.frames != self.num_frames or self._member is None:
                raise InputError(
                    f"vertices: {self.frames} frames of the {self.num_frames} announced"
                )
            self._member.close()
            if len(self.faces):
                check_faces(self.faces, self._shape[0])  # type: ignore[index]
            arrays = {
                "faces": self.faces,
                "fps": np.float64(self.fps),
                "sample_rate": np.int64(self.sample_rate),
                "metadata": np.array(json.dumps(dict(metadata or {}), sort_keys=True)),
            }
            for key, value in arrays.items():
                with self._zip.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            self._zip.close()
        except BaseException as error:
            self.abort(error)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self, error: BaseException | None = None) -> None:
        """Give up: remove the temporary file."""
        try:
            if self._member is not None and not self._member.closed:
                self._member.close()
            self._zip.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        error = error or RuntimeError("aborted")
        self._atomic.__exit__(type(error), error, None)


class MeshSequenceWriter:
    """:func:`write_mesh_sequence` as the frames come: one file per frame, each atomic.

    Args:
        folder: output folder, created if missing.
        faces: (F, 3) triangles.
        num_frames: T (sets the digits of the file names).
        fmt: ``"ply"`` or ``"obj"``.
        stem: file-name prefix.
    """

    def __init__(
        self,
        folder: str | Path,
        faces: np.ndarray,
        num_frames: int,
        fmt: str = "ply",
        stem: str = "frame",
    ):
        if fmt not in ("ply", "obj"):
            raise InputError(f"fmt must be 'ply' or 'obj', got {fmt!r}")
        if not stem or "/" in stem or "\\" in stem:
            raise InputError(f"stem must be a plain file-name prefix, got {stem!r}")
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"{self.folder}: exists and is not a folder")
        self.faces, self.fmt, self.stem = np.asarray(faces), fmt, stem
        self.digits = max(5, len(str(num_frames - 1)))
        self.frames = 0
        self._ready = False
        self.paths: list[Path] = []

    def _prepare(self, num_vertices: int) -> None:
        self.faces = check_faces(self.faces, num_vertices)
        if self.fmt == "ply":
            self._header = _ply_header(num_vertices, len(self.faces))
            records = np.empty(len(self.faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
            records["n"] = 3
            records["v"] = self.faces
            self._face_bytes = records.tobytes()
        else:
            rows = (self.faces + 1).tolist()
            self._face_text = "".join(f"f {a} {b} {c}\n" for a, b, c in rows)
        self._ready = True

    def write(self, vertices: np.ndarray) -> None:
        """Write the next (n, V, 3) frames, one file each."""
        vertices = check_vertices(vertices, min_frames=0).astype(np.float32, copy=False)
        if not self._ready:
            self._prepare(vertices.shape[1])
        for frame in vertices:
            target = self.folder / f"{self.stem}_{self.frames:0{self.digits}d}.{self.fmt}"
            with atomic_path(target) as tmp:
                if self.fmt == "ply":
                    with open(tmp, "wb") as f:
                        f.write(self._header)
                        f.write(frame.astype("<f4").tobytes())
                        f.write(self._face_bytes)
                else:
                    lines = "".join(f"v {x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in frame.tolist())
                    text = "# written by mmface4d\n" + lines + self._face_text
                    tmp.write_text(text, encoding="ascii")
            self.paths.append(target)
            self.frames += 1


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
    writer = MeshSequenceWriter(folder, faces, len(vertices), fmt, stem)
    for t in tqdm(range(len(vertices)), desc=f"writing {fmt.upper()} frames", disable=not progress):
        writer.write(vertices[t : t + 1])
    return writer.paths
