"""ICT FaceKit (USC ICT, MIT licence) as a :class:`FaceModel`: spec ``ict:DIR``.

Two layouts of ``DIR`` are read:

- the upstream ``FaceXModel`` folder: ``generic_neutral_mesh.obj``, one OBJ per expression named
  as in :data:`ICT_EXPRESSION_NAMES` (all 53 are required), ``identity000.obj`` ...
  ``identity099.obj`` (at least one; all present are used, in numeric order) and optionally
  ``vertex_indices.json`` (its ``idx_to_landmark_verts`` gives the landmarks; without it
  :data:`ICT_LANDMARK_VERTICES`, the same 68 indices, is used). Expression and identity OBJs
  hold full positions: delta = shape - neutral. A folder holding ``FaceXModel/`` (the cloned
  repository) is accepted too.
- a folder holding ``ict_facekit_light.npz`` with the arrays ``neutral`` (V, 3), ``quads``
  (Q, 4), ``tris`` (T, 3), ``expression_names`` (K,), ``expression_deltas`` (K, V, 3),
  ``identity_deltas`` (I, V, 3) and ``landmark_vertices`` (68,), all in centimetres.

The OBJ folder is preferred when complete, else the npz; when neither is complete one
:class:`InputError` names the folder and what is missing.

Conversions at the boundary: centimetres -> metres (x 0.01). ICT's axes already are the
project's (x: subject's left, y: up, z: out of the face; checked on the landmarks: the left-eye
landmarks 42-47 have x > 0, the nose tip has the largest z), so no axis change. Triangles are the
quads split as (a, b, c), (a, c, d) followed by the triangles, which are counter-clockwise seen
from outside (the nose-tip normal points to +z; checked on load). ICT light has no albedo: a
constant colour per part (skin, mouth socket, teeth, eyes ...) and an empty albedo basis.
Regions: ``face`` is ICT's face area (vertices 0..9408), the rest come from
:func:`mmface4d.facemodel.regions.landmark_regions`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import canonical_arkit_name
from mmface4d.facemodel.model import AXES, FaceModel
from mmface4d.facemodel.regions import landmark_regions
from mmface4d.geometry.mesh import vertex_normals
from mmface4d.geometry.obj import fan_triangulate, read_obj, read_obj_vertices

#: Vertex count of the ICT FaceKit topology the part ranges and landmarks refer to.
ICT_NUM_VERTICES = 26719

#: Scale from ICT's centimetres to the project's metres.
CM_TO_M = 0.01

NEUTRAL_OBJ = "generic_neutral_mesh.obj"
VERTEX_INDICES_JSON = "vertex_indices.json"
LIGHT_NPZ = "ict_facekit_light.npz"

#: ICT's 53 expression shapes, in upstream order (``vertex_indices.json`` ``expressions``).
ICT_EXPRESSION_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R",
    "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel",
    "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip

#: The 68 iBUG landmark vertices (0-based), upstream ``idx_to_landmark_verts``.
ICT_LANDMARK_VERTICES: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272,
    4088, 3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942,
    4857, 1140, 2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756,
    3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841,
    5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)  # fmt: skip

#: Upstream vertex ranges (first, last), inclusive; "left" is the subject's left (x > 0).
ICT_PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9408),
    "head_and_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_socket_left": (13294, 13677),
    "eye_socket_right": (13678, 14061),
    "gums_and_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeball_left": (21451, 23020),
    "eyeball_right": (23021, 24590),
    "lacrimal_fluid_left": (24591, 24794),
    "lacrimal_fluid_right": (24795, 24998),
    "eye_blend_left": (24999, 25022),
    "eye_blend_right": (25023, 25046),
    "eye_occlusion_left": (25047, 25198),
    "eye_occlusion_right": (25199, 25350),
    "eyelashes_left": (25351, 26034),
    "eyelashes_right": (26035, 26718),
}

#: Iris vertices inside the eyeballs (the ``M_Iris*`` material groups of the OBJ).
_IRIS = ((22221, 23020), (23791, 24590))

_SKIN = (0.80, 0.60, 0.50)
#: Constant albedo per part (RGB in [0, 1]); parts not listed are skin.
_PART_ALBEDO: dict[str, tuple[float, float, float]] = {
    "mouth_socket": (0.40, 0.12, 0.12),
    "eye_socket_left": (0.55, 0.38, 0.32),
    "eye_socket_right": (0.55, 0.38, 0.32),
    "gums_and_tongue": (0.70, 0.30, 0.30),
    "teeth": (0.95, 0.93, 0.88),
    "eyeball_left": (0.95, 0.95, 0.95),
    "eyeball_right": (0.95, 0.95, 0.95),
    "lacrimal_fluid_left": (0.90, 0.80, 0.78),
    "lacrimal_fluid_right": (0.90, 0.80, 0.78),
    "eye_occlusion_left": (0.90, 0.88, 0.86),
    "eye_occlusion_right": (0.90, 0.88, 0.86),
    "eyelashes_left": (0.10, 0.08, 0.07),
    "eyelashes_right": (0.10, 0.08, 0.07),
}
_IRIS_ALBEDO = (0.35, 0.22, 0.12)

_IDENTITY_OBJ = re.compile(r"identity(\d+)\.obj")


def load_ict(directory: str | Path) -> FaceModel:
    """Load ICT FaceKit from an upstream ``FaceXModel`` folder or an ``ict_facekit_light.npz``.

    Args:
        directory: folder with the OBJ files (see the module doc), the cloned repository holding
            ``FaceXModel/``, or a folder holding ``ict_facekit_light.npz``.

    Returns:
        A :class:`FaceModel` named ``ict`` in metres: V = 26,719 vertices, 53 expressions (ICT
        names, ``metadata["arkit_names"]`` maps them to ARKit), the identity shapes as identity
        basis, 68 landmarks, regions and ``metadata["parts"]`` (upstream vertex ranges).

    Raises:
        InputError: the folder is missing, neither layout is complete, or a file is malformed.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError(f"ict:{folder}: folder not found (expected the ICT FaceKit FaceXModel)")
    if not (folder / NEUTRAL_OBJ).is_file() and (folder / "FaceXModel" / NEUTRAL_OBJ).is_file():
        folder = folder / "FaceXModel"
    missing = _missing_obj_files(folder)
    if not missing:
        return _load_obj_folder(folder)
    npz = folder / LIGHT_NPZ
    if npz.is_file():
        return _load_light_npz(npz)
    shown = ", ".join(missing[:8]) + (f" ... ({len(missing) - 8} more)" if len(missing) > 8 else "")
    raise InputError(
        f"ict:{folder}: not an ICT FaceKit folder: neither {LIGHT_NPZ} nor the complete "
        f"FaceXModel OBJ set is there (missing {len(missing)}: {shown})"
    )


# ---------------------------------------------------------------------- the two layouts
def _identity_files(folder: Path) -> list[Path]:
    """The ``identity###.obj`` files of a folder, in numeric order."""
    numbered = []
    for path in folder.iterdir():
        match = _IDENTITY_OBJ.fullmatch(path.name)
        if match and path.is_file():
            numbered.append((int(match.group(1)), path))
    return [path for _, path in sorted(numbered)]


def _missing_obj_files(folder: Path) -> list[str]:
    """Names the OBJ layout needs but the folder lacks (empty when complete)."""
    missing = [] if (folder / NEUTRAL_OBJ).is_file() else [NEUTRAL_OBJ]
    if not _identity_files(folder):
        missing.append("identity###.obj (at least one)")
    expressions = [f"{name}.obj" for name in ICT_EXPRESSION_NAMES]
    return missing + [name for name in expressions if not (folder / name).is_file()]


def _load_obj_folder(folder: Path) -> FaceModel:
    neutral_path = folder / NEUTRAL_OBJ
    mesh = read_obj(neutral_path)
    neutral = mesh.vertices
    _check_vertex_count(neutral_path, len(neutral))
    for size in np.unique(mesh.polygon_sizes):
        if size not in (3, 4):
            raise InputError(
                f"{neutral_path}: polygons with {size} corners, expected ICT quads and triangles"
            )

    def deltas(paths: list[Path]) -> np.ndarray:
        out = np.empty((len(paths), len(neutral), 3), dtype=np.float32)
        for k, path in enumerate(paths):
            shape = read_obj_vertices(path)
            if shape.shape != neutral.shape:
                raise InputError(
                    f"{path}: {len(shape)} vertices, expected {len(neutral)} like {NEUTRAL_OBJ}"
                )
            np.subtract(shape, neutral, out=out[k])
        return out

    identity_paths = _identity_files(folder)
    return _build_model(
        neutral_cm=neutral,
        quads=mesh.polygons(4),
        tris=mesh.polygons(3),
        expression_names=list(ICT_EXPRESSION_NAMES),
        expression_deltas_cm=deltas([folder / f"{n}.obj" for n in ICT_EXPRESSION_NAMES]),
        identity_names=[p.stem for p in identity_paths],
        identity_deltas_cm=deltas(identity_paths),
        landmarks=_landmarks_from_json(folder / VERTEX_INDICES_JSON, len(neutral)),
        source={"route": "FaceXModel OBJ folder", "path": str(folder)},
    )


def _landmarks_from_json(path: Path, num_vertices: int) -> np.ndarray:
    if not path.is_file():
        return np.asarray(ICT_LANDMARK_VERTICES, dtype=np.int64)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "idx_to_landmark_verts" not in data:
        return np.asarray(ICT_LANDMARK_VERTICES, dtype=np.int64)
    landmarks = np.asarray(data["idx_to_landmark_verts"])
    if landmarks.shape != (68,) or not np.issubdtype(landmarks.dtype, np.integer):
        raise InputError(
            f"{path}: idx_to_landmark_verts must be 68 integers, got shape {landmarks.shape}"
        )
    if landmarks.min() < 0 or landmarks.max() >= num_vertices:
        raise InputError(
            f"{path}: idx_to_landmark_verts must index 0..{num_vertices - 1}, "
            f"found {landmarks.min()}..{landmarks.max()}"
        )
    return landmarks.astype(np.int64)


_NPZ_FIELDS = {
    "neutral": 2,
    "quads": 2,
    "tris": 2,
    "expression_names": 1,
    "expression_deltas": 3,
    "identity_deltas": 3,
    "landmark_vertices": 1,
}


def _load_light_npz(path: Path) -> FaceModel:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz archive ({exc})") from None
    with archive:
        absent = [name for name in _NPZ_FIELDS if name not in archive.files]
        if absent:
            raise InputError(f"{path}: missing arrays {', '.join(absent)}")
        arrays = {name: archive[name] for name in _NPZ_FIELDS}
        identity_names = (
            [str(n) for n in archive["identity_names"]] if "identity_names" in archive.files else []
        )
    for name, ndim in _NPZ_FIELDS.items():
        if arrays[name].ndim != ndim:
            raise InputError(
                f"{path}: {name} must have {ndim} dimensions, got {arrays[name].shape}"
            )
    neutral = arrays["neutral"].astype(np.float32)
    num_vertices = len(neutral)
    _check_vertex_count(path, num_vertices)
    for name, width in (("neutral", 3), ("quads", 4), ("tris", 3)):
        if arrays[name].shape[1] != width:
            raise InputError(f"{path}: {name} must be (N, {width}), got {arrays[name].shape}")
    names = [str(n) for n in arrays["expression_names"]]
    for name in ("expression_deltas", "identity_deltas"):
        if arrays[name].shape[1:] != (num_vertices, 3):
            raise InputError(
                f"{path}: {name} must be (K, {num_vertices}, 3), got {arrays[name].shape}"
            )
    if len(arrays["expression_deltas"]) != len(names):
        raise InputError(
            f"{path}: {len(names)} expression_names for "
            f"{len(arrays['expression_deltas'])} expression_deltas"
        )
    if len(identity_names) != len(arrays["identity_deltas"]):
        identity_names = [f"identity{k:03d}" for k in range(len(arrays["identity_deltas"]))]
    landmarks = arrays["landmark_vertices"]
    if landmarks.shape != (68,) or landmarks.min() < 0 or landmarks.max() >= num_vertices:
        raise InputError(
            f"{path}: landmark_vertices must be 68 indices in 0..{num_vertices - 1}, "
            f"got shape {landmarks.shape}"
        )
    return _build_model(
        neutral_cm=neutral,
        quads=arrays["quads"],
        tris=arrays["tris"],
        expression_names=names,
        expression_deltas_cm=arrays["expression_deltas"],
        identity_names=identity_names,
        identity_deltas_cm=arrays["identity_deltas"],
        landmarks=landmarks,
        source={"route": "ict_facekit_light.npz", "path": str(path)},
    )


def _check_vertex_count(path: Path, count: int) -> None:
    if count != ICT_NUM_VERTICES:
        raise InputError(
            f"{path}: {count} vertices, expected the ICT FaceKit topology of "
            f"{ICT_NUM_VERTICES} vertices"
        )


# ---------------------------------------------------------------------- assembly
def ict_faces(quads: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """ICT's triangles: each quad (a, b, c, d) as (a, b, c), (a, c, d), then the triangles.

    Args:
        quads: (Q, 4) vertex indices.
        tris: (T, 3) vertex indices.

    Returns:
        (2Q + T, 3) int64 triangles with the polygons' winding.
    """
    quads = np.asarray(quads, dtype=np.int64)
    split = fan_triangulate(quads.reshape(-1), np.full(len(quads), 4))
    return np.concatenate([split, np.asarray(tris, dtype=np.int64)])


def part_albedo(num_vertices: int = ICT_NUM_VERTICES) -> np.ndarray:
    """(V, 3) float32 constant albedo per ICT part (skin, mouth socket, teeth, eyes ...)."""
    albedo = np.tile(np.asarray(_SKIN, dtype=np.float32), (num_vertices, 1))
    for part, colour in _PART_ALBEDO.items():
        first, last = ICT_PARTS[part]
        albedo[first : last + 1] = colour
    for first, last in _IRIS:
        albedo[first : last + 1] = _IRIS_ALBEDO
    return albedo


def _build_model(
    *,
    neutral_cm: np.ndarray,
    quads: np.ndarray,
    tris: np.ndarray,
    expression_names: list[str],
    expression_deltas_cm: np.ndarray,
    identity_names: list[str],
    identity_deltas_cm: np.ndarray,
    landmarks: np.ndarray,
    source: dict[str, str],
) -> FaceModel:
    num_vertices = len(neutral_cm)
    faces = ict_faces(quads, tris)
    if faces.min() < 0 or faces.max() >= num_vertices:
        raise InputError(
            f"{source['path']}: faces index vertices {faces.min()}..{faces.max()}, "
            f"expected 0..{num_vertices - 1}"
        )
    mean = neutral_cm.astype(np.float32) * np.float32(CM_TO_M)
    landmarks = np.asarray(landmarks, dtype=np.int64)
    nose_tip = int(landmarks[30])
    normals = vertex_normals(torch.as_tensor(mean), torch.as_tensor(faces))
    flipped = bool(normals[nose_tip, 2] < 0)
    if flipped:  # keep the project's rule: counter-clockwise seen from outside
        faces = faces[:, ::-1].copy()
    first, last = ICT_PARTS["face"]
    face = np.arange(first, last + 1)
    regions = landmark_regions(mean, landmarks, face)
    metadata = {
        "source": "ict-facekit",
        "source_route": source["route"],
        "source_path": source["path"],
        "source_unit": "cm",
        "scale_to_metres": CM_TO_M,
        "axes": AXES,
        "axes_conversion": "none: ICT's axes are the project's",
        "faces_rule": "quads split (a,b,c),(a,c,d), then ICT's triangles"
        + (" (winding flipped)" if flipped else ""),
        "arkit_names": {name: canonical_arkit_name(name) for name in expression_names},
        "identity_names": list(identity_names),
        "identity_scale": "ICT identity shapes as given (coefficient 1 = one upstream shape)",
        "albedo": "constant per part (ICT light has no albedo); empty albedo basis",
        "parts": {name: [first, last] for name, (first, last) in ICT_PARTS.items()},
        "region_rule": "face = ICT face area vertices 0..9408; lip, eyes, upper_face ... from "
        "mmface4d.facemodel.regions.landmark_regions",
    }
    return FaceModel(
        name="ict",
        mean=mean,
        faces=faces,
        identity_basis=np.asarray(identity_deltas_cm, dtype=np.float32) * np.float32(CM_TO_M),
        expression_basis=np.asarray(expression_deltas_cm, dtype=np.float32) * np.float32(CM_TO_M),
        expression_names=expression_names,
        albedo_mean=part_albedo(num_vertices),
        albedo_basis=np.zeros((0, num_vertices, 3), dtype=np.float32),
        landmarks=landmarks,
        regions=regions,
        unit="m",
        metadata=metadata,
    )
