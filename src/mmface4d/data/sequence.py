"""Mesh sequences on disk: the project's NPZ and the MMFace4D ``.nut`` triple, read as one type.

NPZ layout (what ``animate`` writes and ``video`` reads): ``vertices`` (T, V, 3) float32 metres,
``faces`` (F, 3) int64, ``fps`` scalar; optional ``colors`` (V, 3) in [0, 1], ``sample_rate``,
``frame`` (``"model"``: y up, z out of the face; ``"camera"``: OpenCV centre camera).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError
from mmface4d.geometry.frames import flip_axes

FRAMES = ("model", "camera")


@dataclass
class MeshSequence:
    """A topology-uniform mesh sequence.

    Attributes:
        vertices: (T, V, 3) float32 metres.
        faces: (F, 3) int64.
        fps: frames per second.
        frame: ``"model"`` (x subject's left, y up, z out of the face) or ``"camera"``
            (OpenCV: x right, y down, z forward, as MMFace4D's reconstructions).
        colors: optional (V, 3) per-vertex albedo in [0, 1].
    """

    vertices: np.ndarray
    faces: np.ndarray
    fps: float
    frame: str = "model"
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices)
        if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] < 1 or v.shape[1] < 3:
            raise InputError(f"vertices must be (T, V, 3) with T >= 1, V >= 3, got {v.shape}")
        if not np.isfinite(v).all():
            bad = np.argwhere(~np.isfinite(v))[0]
            raise InputError(f"vertices hold NaN/inf (frame {bad[0]}, vertex {bad[1]})")
        f = np.asarray(self.faces)
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise InputError(f"faces must be (F, 3) with F >= 1, got {f.shape}")
        if f.min() < 0 or f.max() >= v.shape[1]:
            raise InputError(
                f"faces index vertices {f.min()}..{f.max()}, but the sequence has {v.shape[1]}"
            )
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise InputError(f"fps must be positive, got {self.fps}")
        if self.frame not in FRAMES:
            raise InputError(f"frame must be one of {FRAMES}, got {self.frame!r}")
        if self.colors is not None and np.shape(self.colors) != (v.shape[1], 3):
            raise InputError(f"colors must be ({v.shape[1]}, 3), got {np.shape(self.colors)}")
        self.vertices = v.astype(np.float32, copy=False)
        self.faces = f.astype(np.int64, copy=False)

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def in_model_frame(self) -> np.ndarray:
        """(T, V, 3) vertices with y up and z out of the face (camera-frame data flipped)."""
        if self.frame == "model":
            return self.vertices
        return flip_axes(self.vertices)


def load_topology(source: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(F, 3) int64 triangles, and per-vertex albedo when the source is a face model.

    ``source``: a Deep3DFaceRecon ``facemodel_info.mat`` / ``BFM_model_front.mat`` (``tri``,
    1-based), an ``.npy`` (F, 3) array (0-based), an ``.obj``/``.ply`` mesh, or any face model
    spec (``synth``, ``bfm:DIR``, ``ict:DIR``, a model ``.npz``; these also give the albedo).
    """
    text = str(source)
    path = Path(text)
    if path.suffix in (".mat", ".npy", ".obj", ".ply") and not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.suffix == ".mat":
        mat = scipy.io.loadmat(path, variable_names=["tri"])
        if "tri" not in mat:
            raise InputError(f"{path}: no 'tri' field (expected BFM triangles, 1-based)")
        return mat["tri"].astype(np.int64) - 1, None
    if path.suffix == ".npy":
        return np.load(path).astype(np.int64), None
    if path.suffix in (".obj", ".ply"):
        import trimesh

        mesh = trimesh.load(path, process=False, force="mesh")
        return np.asarray(mesh.faces, dtype=np.int64), None
    from mmface4d.facemodel.sources import load_face_model

    model = load_face_model(text)
    return model.faces, model.albedo_mean


def load_faces(source: str | Path) -> np.ndarray:
    """(F, 3) int64 triangles from a file or a face-model spec (see :func:`load_topology`)."""
    return load_topology(source)[0]


def load_sequence(
    source: str | Path, faces: str | Path | None = None, fps: float | None = None
) -> MeshSequence:
    """Read an NPZ sequence or an MMFace4D ``.nut`` triple (``PREFIX`` of ``PREFIX_0.nut``).

    Args:
        source: ``.npz`` file or ``.nut`` prefix.
        faces: where the triangles come from (see :func:`load_faces`); required for ``.nut``
            (which holds none), optional for NPZ (overrides its ``faces``).
        fps: overrides the stored frame rate.
    """
    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"{path}: sequence file not found")
        data = np.load(path, allow_pickle=False)
        missing = [k for k in ("vertices", "fps") if k not in data]
        if missing or ("faces" not in data and faces is None):
            raise InputError(
                f"{path}: expected arrays vertices, faces, fps; missing {missing or ['faces']}"
            )
        return MeshSequence(
            vertices=data["vertices"],
            faces=load_faces(faces) if faces is not None else data["faces"],
            fps=float(fps or data["fps"]),
            frame=str(data["frame"]) if "frame" in data else "model",
            colors=data["colors"] if "colors" in data else None,
        )
    from mmface4d.data.nut import decode_nut, nut_info

    if faces is None:
        raise InputError(f"{source}: a .nut sequence holds no triangles; pass faces (e.g. --faces)")
    tri, colors = load_topology(faces)
    vertices = decode_nut(source, num_vertices=int(tri.max()) + 1 if len(tri) else None)
    if colors is not None and len(colors) != vertices.shape[1]:
        colors = None
    return MeshSequence(
        vertices, tri, float(fps or nut_info(source).fps), frame="camera", colors=colors
    )


def save_sequence(sequence: MeshSequence, path: str | Path, **extra: np.ndarray) -> Path:
    """Write a sequence as NPZ (atomically); ``extra`` arrays are stored beside it."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: expected an .npz output path")
    arrays = {
        "vertices": sequence.vertices, "faces": sequence.faces, "fps": np.float64(sequence.fps),
        "frame": np.array(sequence.frame), **extra,
    }  # fmt: skip
    if sequence.colors is not None:
        arrays["colors"] = np.asarray(sequence.colors, dtype=np.float32)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path
