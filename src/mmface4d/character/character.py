"""A registered character: the user's head, its fit to the face model, and the ``.char`` file.

:func:`register_character` reads a head mesh, finds its landmarks, registers the face model to
it (:mod:`.register`) and returns a :class:`Character`, which turns the model's animation into
the head's (:meth:`Character.animate_frames`) and gives a face model of the head with the model's
expression shapes (the 52 ARKit ones) carried over (:meth:`Character.face_model`), so every
exporter writes the character as it writes the model.

Frame: a character's vertices are in metres and in the project's model axes (x the subject's
left, y up, z out of the face; ``docs/CONVENTIONS.md``), like every sequence. The head's file
pose is kept when its axes already are those (a y-up glTF head facing +z comes out as it went
in, only in metres); otherwise it is rotated by the axis permutation nearest to the fit's
rotation (an exact rotation when the head is tilted by more than 10 degrees from any).
``Character.to_source`` (a 3x3 matrix) and ``source_unit`` take the results back to the file's
pose and unit.

Registration takes seconds; the result is cached on disk (``characters/`` of
:func:`mmface4d.cache.cache_root`), keyed by the mesh file's bytes, the landmark file's, the unit,
the face model and the registration code, so a second run on the same head starts at once.
``register_character(..., output=PATH)`` also writes the ``.char`` file a user keeps, which
:func:`load_character` reads back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d import __version__
from mmface4d.atomic import atomic_path
from mmface4d.cache import cache_root
from mmface4d.character.transfer import HarmonicFill, transfer_displacements, transfer_matrix
from mmface4d.errors import InputError
from mmface4d.facemodel.model import AXES, FaceModel
from mmface4d.facemodel.regions import landmark_regions

FORMAT = "mmface4d-character"
FORMAT_VERSION = 1
#: Heads whose fit rotation is within this many degrees of an axis permutation keep its axes.
SNAP_DEGREES = 10.0


@dataclass
class Character:
    """A head registered to a face model.

    Attributes:
        name: the head's name (its file's stem).
        vertices: (N, 3) float32 neutral head, metres, model axes.
        faces: (F, 3) int64 triangles.
        fitted: (V, 3) float32 the model fitted to the head, in the model's frame: the template
            the animator animates.
        to_head: (3, 3) model-frame displacement -> character displacement (scale and rotation).
        to_head_offset: (3,) with ``to_head``, model-frame points -> character points
            (:meth:`model_points`).
        head_in_model: (N, 3) float32 the head in the model's frame (for its rigid parts).
        triangles: (N,) int64 model triangle under each head vertex (-1: does not move).
        barycentrics: (N, 3) float32 its corner weights.
        weights: (N,) float32 how much each vertex that sits on the model follows it, [0, 1].
        free: vertices filled in harmonically from their neighbours.
        parts: head vertex indices of each rigid part; ``anchors``: model vertices it follows.
        landmarks: (68, 3) float32 the head's iBUG landmarks (character frame).
        to_source: (3, 3) rotation from the character frame to the mesh file's axes.
        source_unit: the mesh file's unit (``m``, ``cm``, ``mm``).
        model_key: the face model it was registered to (:func:`model_key`).
        errors: fit errors in millimetres (see :class:`.register.Registration`).
        surface_error: (N,) float32 each vertex's distance to the fitted model, mm (NaN off the
            face).
        info: free facts (source file, timings, landmark scheme, ...).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    fitted: np.ndarray
    to_head: np.ndarray
    to_head_offset: np.ndarray
    head_in_model: np.ndarray
    triangles: np.ndarray
    barycentrics: np.ndarray
    weights: np.ndarray
    free: np.ndarray
    parts: list[np.ndarray]
    anchors: list[np.ndarray]
    landmarks: np.ndarray
    to_source: np.ndarray
    source_unit: str
    model_key: str
    errors: dict[str, float]
    surface_error: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def _matrix(self):
        cached = self.__dict__.get("_transfer")
        if cached is None:
            cached = transfer_matrix(
                len(self.fitted),
                self._model_faces,
                self.triangles,
                self.barycentrics,
                self.weights,
            )
            self.__dict__["_transfer"] = cached
        return cached

    def _fill(self) -> HarmonicFill:
        cached = self.__dict__.get("_harmonic")
        if cached is None:
            cached = HarmonicFill(self.num_vertices, self.faces, self.free)
            self.__dict__["_harmonic"] = cached
        return cached

    @property
    def _model_faces(self) -> np.ndarray:
        faces = self.__dict__.get("_model_faces_array")
        if faces is None:
            raise InputError(f"character {self.name}: bind it to its face model first (bind)")
        return faces

    def bind(self, model: FaceModel) -> Character:
        """Check that ``model`` is the one the head was registered to and keep its triangles."""
        key = model_key(model)
        if key != self.model_key:
            raise InputError(
                f"character {self.name}: registered to face model {self.model_key}, the animation "
                f"uses {key}; register the head again with this model"
            )
        self.__dict__["_model_faces_array"] = model.faces
        return self

    def model_points(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) model-frame points (the fitted model's) in the character's frame."""
        return np.asarray(points, dtype=np.float64) @ self.to_head.T + self.to_head_offset

    def displacements(self, model_displacements: np.ndarray) -> np.ndarray:
        """(T, N, 3) character displacements of (T, V, 3) model displacements (model frame)."""
        moved = transfer_displacements(
            self._matrix(),
            np.asarray(model_displacements, dtype=np.float64),
            self.fitted.astype(np.float64),
            self.head_in_model.astype(np.float64),
            self.parts,
            self.anchors,
            self._fill(),
        )
        return moved @ self.to_head.T

    def animate_frames(self, model_frames: np.ndarray) -> np.ndarray:
        """(T, N, 3) float32 character frames of (T, V, 3) model frames animating ``fitted``."""
        frames = np.asarray(model_frames, dtype=np.float64)
        if frames.ndim != 3 or frames.shape[1:] != self.fitted.shape:
            raise InputError(
                f"character {self.name}: expected model frames (T, {len(self.fitted)}, 3), got "
                f"{frames.shape}"
            )
        moved = self.displacements(frames - self.fitted[None])
        return (self.vertices[None] + moved).astype(np.float32)

    def face_model(self, model: FaceModel) -> FaceModel:
        """The head as a face model: its neutral, triangles, landmarks and regions, and
        ``model``'s expression shapes carried onto it (no identity or albedo variation)."""
        self.bind(model)
        basis = self.displacements(model.expression_basis.astype(np.float64))
        count = self.num_vertices
        nearest = _nearest_vertices(self.vertices, self.landmarks)
        face = np.flatnonzero(self.weights > 0.5)  # the vertices that sit on the model
        regions = landmark_regions(self.vertices, nearest, face)
        return FaceModel(
            name=f"character:{self.name}",
            mean=self.vertices,
            faces=self.faces,
            identity_basis=np.zeros((0, count, 3), np.float32),
            expression_basis=basis.astype(np.float32),
            expression_names=list(model.expression_names),
            albedo_mean=np.full((count, 3), 0.75, np.float32),
            albedo_basis=np.zeros((0, count, 3), np.float32),
            landmarks=nearest,
            regions=regions,
            metadata={"source": f"character {self.name} registered to {model.name}", "axes": AXES},
        )

    # ------------------------------------------------------------------ file
    def save(self, path: str | Path) -> Path:
        """Write the ``.char`` file (an uncompressed NPZ), atomically."""
        path = Path(path)
        offsets = np.cumsum([0] + [len(p) for p in self.parts])
        anchor_offsets = np.cumsum([0] + [len(a) for a in self.anchors])
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "mmface4d_version": __version__,
            "name": self.name,
            "source_unit": self.source_unit,
            "model_key": self.model_key,
            "errors": self.errors,
            "info": self.info,
        }
        arrays = {
            "vertices": self.vertices,
            "faces": self.faces,
            "fitted": self.fitted,
            "to_head": self.to_head,
            "to_head_offset": self.to_head_offset,
            "head_in_model": self.head_in_model,
            "triangles": self.triangles,
            "barycentrics": self.barycentrics,
            "weights": self.weights,
            "free": self.free,
            "parts": np.concatenate([np.zeros(0, np.int64), *self.parts]),
            "part_offsets": offsets,
            "anchors": np.concatenate([np.zeros(0, np.int64), *self.anchors]),
            "anchor_offsets": anchor_offsets,
            "landmarks": self.landmarks,
            "to_source": self.to_source,
            "surface_error": self.surface_error,
            "meta": np.asarray(json.dumps(meta)),
        }
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        return path


def load_character(path: str | Path) -> Character:
    """Read a ``.char`` file (:meth:`Character.save`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: character file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a character file ({type(exc).__name__})") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: not a character file")
    if meta.get("version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: character file version {meta.get('version')}, this mmface4d reads "
            f"{FORMAT_VERSION}; register the head again"
        )

    def split(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
        return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

    return Character(
        name=meta["name"],
        vertices=arrays["vertices"],
        faces=arrays["faces"],
        fitted=arrays["fitted"],
        to_head=arrays["to_head"],
        to_head_offset=arrays["to_head_offset"],
        head_in_model=arrays["head_in_model"],
        triangles=arrays["triangles"],
        barycentrics=arrays["barycentrics"],
        weights=arrays["weights"],
        free=arrays["free"],
        parts=split(arrays["parts"], arrays["part_offsets"]),
        anchors=split(arrays["anchors"], arrays["anchor_offsets"]),
        landmarks=arrays["landmarks"],
        to_source=arrays["to_source"],
        source_unit=meta["source_unit"],
        model_key=meta["model_key"],
        errors=meta["errors"],
        surface_error=arrays["surface_error"],
        info=meta["info"],
    )


def model_key(model: FaceModel) -> str:
    """A face model's identity for registrations: its name, size and a digest of its neutral."""
    digest = hashlib.sha256(np.ascontiguousarray(model.mean, np.float32).tobytes()).hexdigest()
    return f"{model.name}-{model.num_vertices}-{digest[:12]}"


def _nearest_vertices(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    return cKDTree(vertices).query(points)[1].astype(np.int64)


def _snapped(rotation: np.ndarray) -> np.ndarray:
    """The signed axis permutation nearest to ``rotation`` when within :data:`SNAP_DEGREES`,
    else ``rotation`` itself."""
    snap = np.zeros((3, 3))
    used: set[int] = set()
    for row in np.argsort(-np.abs(rotation).max(1)):
        order = [c for c in np.argsort(-np.abs(rotation[row])) if c not in used]
        col = order[0]
        used.add(col)
        snap[row, col] = np.sign(rotation[row, col]) or 1.0
    if np.linalg.det(snap) < 0:
        return rotation
    cosine = (np.trace(snap.T @ rotation) - 1) / 2
    angle = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    return snap if angle <= SNAP_DEGREES else rotation


def _code_digest() -> str:
    digest = hashlib.sha256(__version__.encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def _cache_path(
    mesh: Path, unit: str | None, landmarks: Path | None, model: FaceModel
) -> Path | None:
    root = cache_root()
    if root is None:
        return None
    digest = hashlib.sha256(mesh.read_bytes())
    digest.update(f"\0{unit}\0{model_key(model)}\0{_code_digest()}".encode())
    if landmarks is not None:
        digest.update(landmarks.read_bytes())
    return root / "characters" / f"{mesh.stem}-{digest.hexdigest()[:20]}.char"


def register_character(
    mesh: str | Path,
    model: FaceModel,
    unit: str | None = None,
    landmarks: str | Path | None = None,
    output: str | Path | None = None,
    figure: str | Path | None = None,
    cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Character:
    """Register ``model`` to a head mesh file, or read a ``.char`` file.

    Args:
        mesh: OBJ, PLY, glTF/GLB or NPZ head (see :mod:`.mesh`), or a ``.char`` file.
        model: the face model the animation comes in (the animator's).
        unit: the mesh file's unit (``m``, ``cm``, ``mm``); None detects it from its size.
        landmarks: a file of 68 iBUG landmarks instead of detecting them (see
            :func:`.landmarks.read_landmark_file`).
        output: also write the ``.char`` file here.
        figure: also write the registration figure (PNG) here.
        cache: read and keep registrations in the on-disk cache.
        progress: callable told of each step.
    """
    mesh = Path(mesh)
    if mesh.suffix.lower() == ".char":
        return load_character(mesh).bind(model)
    if not mesh.is_file():
        raise InputError(f"{mesh}: head mesh not found")
    landmark_path = None if landmarks is None else Path(landmarks)
    cached = _cache_path(mesh, unit, landmark_path, model) if cache else None
    if cached is not None and cached.is_file() and figure is None:
        try:
            character = load_character(cached).bind(model)
        except InputError:
            character = None  # a damaged entry: register again
        if character is not None:
            if output is not None:
                character.save(output)
            return character
    character, figure_inputs = _register(mesh, model, unit, landmark_path, progress)
    if figure is not None:
        from mmface4d.character.figures import registration_figure

        registration_figure(*figure_inputs, output=figure)
    if cached is not None:
        try:
            character.save(cached)
        except OSError:
            pass  # a read-only cache: the character is registered, only not kept
    if output is not None:
        character.save(output)
    return character


def _register(
    mesh: Path,
    model: FaceModel,
    unit: str | None,
    landmarks: Path | None,
    progress: Callable[[str], None] | None,
) -> tuple[Character, tuple]:
    import time

    from mmface4d.character.landmarks import detect_landmarks, read_landmark_file
    from mmface4d.character.mesh import load_head
    from mmface4d.character.register import register

    started = time.perf_counter()
    head = load_head(mesh, unit=unit)
    say = progress or (lambda _msg: None)
    say(f"read {head.num_vertices} vertices ({head.source_unit})")
    head_marks = model_marks = points = None
    if landmarks is not None:
        scale = {"m": 1.0, "cm": 0.01, "mm": 0.001}[head.source_unit]
        points = read_landmark_file(landmarks, head.vertices, scale)
        scheme = "ibug68 (file)"
    else:
        head_marks = detect_landmarks(head.vertices, head.faces, name=str(mesh))
        model_marks = _model_landmarks(model)
        scheme = "mediapipe468"
        say("landmarks")
    reg = register(
        head.vertices,
        head.faces,
        model,
        head_marks,
        model_marks,
        points,
        name=str(mesh),
        progress=say,
    )
    rotation = reg.transform.rotation  # model axes -> head axes
    to_character = _snapped(rotation).T  # head axes -> model axes (snapped)
    vertices = (head.vertices @ to_character.T).astype(np.float32)
    head_in_model = (head.vertices - reg.transform.translation) @ rotation / reg.transform.scale
    character = Character(
        name=mesh.stem,
        vertices=vertices,
        faces=head.faces.astype(np.int64),
        fitted=reg.fitted.astype(np.float32),
        to_head=(to_character @ rotation * reg.transform.scale),
        to_head_offset=to_character @ reg.transform.translation,
        head_in_model=head_in_model.astype(np.float32),
        triangles=reg.triangles,
        barycentrics=reg.barycentrics.astype(np.float32),
        weights=reg.weights.astype(np.float32),
        free=reg.free,
        parts=reg.parts,
        anchors=reg.part_anchors,
        landmarks=(reg.head_landmarks @ to_character.T).astype(np.float32),
        to_source=to_character.T,
        source_unit=head.source_unit,
        model_key=model_key(model),
        errors=reg.errors,
        surface_error=reg.surface_error.astype(np.float32),
        info={
            "source": str(mesh),
            "landmarks": scheme,
            "seconds": round(time.perf_counter() - started, 2),
            "flipped_winding": reg.info.get("flipped_winding", False),
        },
    ).bind(model)
    figure_inputs = (
        head.vertices,
        head.faces,
        reg,
        model.faces,
        None if head_marks is None else head_marks.image,
        None if head_marks is None else head_marks.pixels,
    )
    return character, figure_inputs


_MODEL_MARKS: dict[str, Any] = {}


def _model_landmarks(model: FaceModel):
    """The detector's landmarks on the model's neutral, once per process and model."""
    from mmface4d.character.landmarks import model_landmarks

    key = model_key(model)
    if key not in _MODEL_MARKS:
        _MODEL_MARKS[key] = model_landmarks(model.mean, model.faces)
    return _MODEL_MARKS[key]
