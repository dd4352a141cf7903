"""The project's one mesh-sequence type, :class:`MeshSequence`, and its files (NPZ or ``.nut``).

A sequence is what ``mmface4d.animate(...)`` returns, what ``mmface4d animate`` writes as NPZ,
what ``mmface4d video`` reads, and what the reconstruction and the corpus tools hand around:
vertices (T, V, 3) float32 metres, triangles, a frame rate and the frame the vertices are in,
with optional per-vertex colours and, for an animation, its speech, neutral template, face model
and metadata. Its inputs are checked once, when it is made (:mod:`mmface4d.geometry.checks`).

NPZ layout (:func:`save_sequence` writes it, :func:`load_sequence` reads it; loadable without
pickle):

- ``vertices`` (T, V, 3) float32 metres, ``faces`` (F, 3) int64, ``fps`` float64 scalar: always;
- ``frame``: a 0-d string, ``"model"`` (y up, z out of the face) or ``"camera"`` (the OpenCV
  centre camera); read as ``"model"`` when absent;
- ``colors`` (V, 3) float32 in [0, 1], ``sample_rate`` int64 scalar (the rate of the speech the
  animation goes with), ``metadata`` a JSON string (0-d unicode array): when the sequence has
  them.

An animation written by ``mmface4d animate`` holds ``vertices``, ``faces``, ``fps``,
``sample_rate`` and ``metadata`` (see :func:`mmface4d.export.meshes.write_animation_npz`).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError
from mmface4d.geometry.checks import check_faces, check_vertices
from mmface4d.geometry.frames import flip_axes

if TYPE_CHECKING:
    from mmface4d.facemodel.model import FaceModel

FRAMES = ("model", "camera")


@dataclass
class MeshSequence:
    """A topology-uniform mesh sequence, optionally an animation with its speech.

    Attributes:
        vertices: (T, V, 3) float32 metres.
        faces: (F, 3) int64 triangles; F = 0 for points without triangles (an animator with
            no face model and no mesh template).
        fps: frames per second.
        frame: ``"model"`` (x subject's left, y up, z out of the face) or ``"camera"``
            (OpenCV: x right, y down, z forward, as MMFace4D's reconstructions).
        colors: optional (V, 3) per-vertex albedo in [0, 1].
        audio: optional (N,) float32 mono speech the sequence was animated from.
        sample_rate: rate of that speech in Hz (an integer; required with ``audio``).
        template: optional (V, 3) float32 neutral face the animation moves from.
        face_model: the face model of the topology (an animator's), or None.
        metadata: free JSON-serialisable facts (model, style, subject, version, timings).
    """

    vertices: np.ndarray
    faces: np.ndarray
    fps: float
    frame: str = "model"
    colors: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    template: np.ndarray | None = None
    face_model: FaceModel | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = check_vertices(self.vertices, min_vertices=3)
        V = v.shape[1]
        self.vertices = v.astype(np.float32, copy=False)
        self.faces = check_faces(self.faces, V, allow_empty=True)
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be a positive number, got {self.fps}")
        self.fps = float(self.fps)
        if self.frame not in FRAMES:
            raise InputError(f"frame must be one of {FRAMES}, got {self.frame!r}")
        if self.colors is not None and np.shape(self.colors) != (V, 3):
            raise InputError(f"colors must be ({V}, 3), got {np.shape(self.colors)}")
        if self.template is not None:
            if np.shape(self.template) != (V, 3):
                raise InputError(f"template must be ({V}, 3), got {np.shape(self.template)}")
            self.template = np.asarray(self.template, dtype=np.float32)
        if self.sample_rate is not None:
            if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
                raise InputError(f"sample_rate must be a positive integer, got {self.sample_rate}")
            self.sample_rate = int(self.sample_rate)
        if self.audio is not None:
            self.audio = np.asarray(self.audio, dtype=np.float32)
            if self.audio.ndim != 1:
                raise InputError(f"audio must be (N,) mono samples, got {self.audio.shape}")
            if self.sample_rate is None:
                raise InputError("audio needs its sample_rate")
        if not isinstance(self.metadata, dict):
            raise InputError(f"metadata must be a dict, got {type(self.metadata).__name__}")

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[1])

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
        import scipy.io  # here: scipy.io costs a mesh sequence's every reader half a second

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
        return read_sequence_npz(path, faces, fps)
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


def read_sequence_npz(
    path: str | Path, faces: str | Path | None = None, fps: float | None = None
) -> MeshSequence:
    """Read an NPZ sequence whatever its file name (the layout in the module doc).

    Args:
        path: the file.
        faces: triangles overriding the stored ones (see :func:`load_faces`).
        fps: overrides the stored frame rate.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: sequence file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        metadata = json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:  # also pickles, bad JSON
        raise InputError(f"{path}: not a readable .npz sequence ({exc})") from None
    missing = [k for k in ("vertices", "fps") if k not in arrays]
    if missing or ("faces" not in arrays and faces is None):
        raise InputError(
            f"{path}: expected arrays vertices, faces, fps; missing {missing or ['faces']}"
        )
    return MeshSequence(
        vertices=arrays["vertices"],
        faces=load_faces(faces) if faces is not None else arrays["faces"],
        fps=float(fps or arrays["fps"]),
        frame=str(arrays["frame"]) if "frame" in arrays else "model",
        colors=arrays.get("colors"),
        sample_rate=int(arrays["sample_rate"]) if "sample_rate" in arrays else None,
        metadata=metadata,
    )


def save_sequence(sequence: MeshSequence, path: str | Path, **extra: np.ndarray) -> Path:
    """Write a sequence as NPZ, atomically, at exactly ``path`` (``.npz`` by convention).

    The optional keys of the layout are written when they differ from their defaults
    (``frame`` when not ``"model"``, ``colors`` and ``sample_rate`` when set, ``metadata`` when
    not empty or when the sequence has a ``sample_rate``); the speech, template and face model
    are not stored. ``extra`` arrays are stored beside them.

    Returns:
        ``path``.
    """
    arrays: dict[str, np.ndarray] = {
        "vertices": sequence.vertices,
        "faces": sequence.faces,
        "fps": np.float64(sequence.fps),
    }
    if sequence.frame != "model":
        arrays["frame"] = np.array(sequence.frame)
    if sequence.colors is not None:
        arrays["colors"] = np.asarray(sequence.colors, dtype=np.float32)
    if sequence.sample_rate is not None:
        arrays["sample_rate"] = np.int64(sequence.sample_rate)
    if sequence.metadata or sequence.sample_rate is not None:
        try:
            arrays["metadata"] = np.array(json.dumps(sequence.metadata, sort_keys=True))
        except TypeError as exc:
            raise InputError(f"metadata must be JSON-serialisable: {exc}") from None
    arrays |= extra
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
    return Path(path)
