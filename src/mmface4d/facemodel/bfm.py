"""Basel Face Model 2009 with Guo et al. expressions, Deep3DFaceRecon convention (``bfm:DIR``).

``DIR`` holds either Deep3DFaceRecon's converted ``BFM_model_front.mat`` (preferred when present:
it is the file Deep3DFaceRecon itself loads) or the raw inputs of its ``transferBFM09``:
``01_MorphableModel.mat`` (BFM09, licence-gated), ``Exp_Pca.bin`` (Guo et al., licence-gated),
``std_exp.txt``, ``BFM_exp_idx.mat``, ``BFM_front_idx.mat`` and ``facemodel_info.mat``.

The raw conversion is exactly ``transferBFM09``: identity basis ``shapePC * shapeEV`` / 1e5,
expression basis ``expPC * std_exp`` / 1e5, texture basis ``texPC * texEV``, mean shape
``shapeMU`` / 1e5, mean texture ``texMU``; the 35,709 front vertices are BFM vertices
``trimIndex[idx]`` for shape and texture and expression-basis vertices ``idx`` for expressions
(``idx`` indexes the 53,215 ``trimIndex`` entries; the composition equals Deep3DFaceRecon's
``select_vertex_id.mat``). As Deep3DFaceRecon does at load time, the mean shape is re-centred
(its centroid subtracted). At the boundary the project's conventions are applied: Deep3D's
decimetres become metres (x 0.1), textures become albedo in [0, 1] (/ 255), indices become 0-based.
BFM09's axes already match the project's (x: subject's left, y: up, z: out of the face); the
triangles are checked to face outwards (normal at the nose tip along +z) and flipped otherwise,
which ``metadata["faces_flipped"]`` records (the published ``facemodel_info.mat`` needs no flip).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch

from mmface4d.errors import InputError
from mmface4d.facemodel.model import AXES, FaceModel
from mmface4d.facemodel.regions import landmark_regions
from mmface4d.geometry import vertex_normals

RAW_FILES = (
    "01_MorphableModel.mat",
    "Exp_Pca.bin",
    "std_exp.txt",
    "BFM_exp_idx.mat",
    "BFM_front_idx.mat",
    "facemodel_info.mat",
)
CONVERTED_FILE = "BFM_model_front.mat"
MICROMETRES_PER_DECIMETRE = 1e5  # transferBFM09's divisor: BFM09 micrometres -> Deep3D decimetres
DECIMETRES_TO_METRES = 0.1
NOSE_TIP = 30  # iBUG landmark 31, 0-based


@dataclass
class _Deep3DArrays:
    """The front model in Deep3DFaceRecon's units (decimetres, texture 0..255), 0-based indices.

    Shapes: meanshape, meantex (V, 3); bases (K, V, 3); tri (F, 3); keypoints (68,).
    """

    meanshape: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    meantex: np.ndarray
    tex_basis: np.ndarray
    tri: np.ndarray
    keypoints: np.ndarray
    input: str


def load_bfm(
    directory: str | Path,
    *,
    identity_dims: int = 80,
    expression_dims: int = 64,
    albedo_dims: int = 80,
) -> FaceModel:
    """Load the BFM09 front-face model (35,709 vertices, 70,789 triangles) in metres.

    Args:
        directory: folder with ``BFM_model_front.mat`` or the six raw files (see module doc).
        identity_dims: identity components kept (Deep3D: 80), clipped to what the files hold.
        expression_dims: expression components kept (Deep3D: 64), clipped likewise.
        albedo_dims: albedo components kept (Deep3D: 80), clipped likewise.

    Returns:
        A :class:`FaceModel` named ``bfm``: mean (V, 3) metres re-centred, bases (K, V, 3),
        albedo in [0, 1], expression names ``exp_00``..., regions from the 68 landmarks.
    """
    label = f"bfm:{directory}"
    dims = {
        "identity_dims": identity_dims,
        "expression_dims": expression_dims,
        "albedo_dims": albedo_dims,
    }
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{label}: {name} must be a positive integer, got {value!r}")
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{label}: directory not found")
    if (root / CONVERTED_FILE).is_file():
        arrays = _read_converted(root / CONVERTED_FILE, identity_dims, expression_dims, albedo_dims)
    else:
        missing = [name for name in RAW_FILES if not (root / name).is_file()]
        if missing:
            raise InputError(
                f"{label}: missing {', '.join(missing)}; expected {', '.join(RAW_FILES)}, "
                f"or a converted {CONVERTED_FILE}"
            )
        arrays = _convert_raw(root, identity_dims, expression_dims, albedo_dims)
    return _build_model(arrays, root)


# ---------------------------------------------------------------------- reading and checking
def _load_mat(path: Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        data = scipy.io.loadmat(path, variable_names=list(fields))
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5)
        raise InputError(
            f"{path}: MATLAB v7.3 files are not supported; save as v5 ({exc})"
        ) from exc
    except (ValueError, TypeError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise InputError(f"{path}: not a readable MATLAB .mat file ({exc})") from exc
    missing = [name for name in fields if name not in data]
    if missing:
        raise InputError(f"{path}: missing field {', '.join(missing)}")
    return {name: np.asarray(data[name]) for name in fields}


def _matrix(path: Path, name: str, arr: np.ndarray, rows: int | str, cols: int | str) -> np.ndarray:
    """Check a (rows, cols) numeric field; a str dimension means "any positive size"."""
    ok = arr.ndim == 2 and arr.size > 0 and np.issubdtype(arr.dtype, np.number)
    ok = ok and all(
        isinstance(e, str) or e == a for e, a in zip((rows, cols), arr.shape, strict=True)
    )
    if not ok:
        raise InputError(f"{path}: field {name} must have shape ({rows}, {cols}), got {arr.shape}")
    return arr


def _vector(path: Path, name: str, arr: np.ndarray, length: int | str) -> np.ndarray:
    """Check an (L,), (L, 1) or (1, L) numeric field and return it flat."""
    ok = arr.ndim in (1, 2) and arr.size > 0 and np.issubdtype(arr.dtype, np.number)
    ok = ok and (arr.ndim == 1 or 1 in arr.shape)
    if not ok or (not isinstance(length, str) and arr.size != length):
        raise InputError(
            f"{path}: field {name} must have shape ({length}, 1) or (1, {length}), got {arr.shape}"
        )
    return arr.reshape(-1)


def _indices(path: Path, name: str, arr: np.ndarray, count: int, of: str) -> np.ndarray:
    """1-based indices into ``count`` items -> int64 0-based, with a range check."""
    values = np.asarray(arr, dtype=np.float64)
    if not np.array_equal(values, np.round(values)) or values.min() < 1 or values.max() > count:
        raise InputError(
            f"{path}: field {name} holds indices {values.min():g}..{values.max():g}, expected "
            f"integers 1..{count} (1-based into {of})"
        )
    return arr.astype(np.int64) - 1


def _triangles_and_keypoints(
    path: Path, data: dict[str, np.ndarray], v: int
) -> tuple[np.ndarray, np.ndarray]:
    tri = _indices(path, "tri", _matrix(path, "tri", data["tri"], "F", 3), v, f"{v} vertices")
    keypoints = _vector(path, "keypoints", data["keypoints"], 68)
    return tri, _indices(path, "keypoints", keypoints, v, f"{v} vertices")


# ---------------------------------------------------------------------- the two inputs
def _read_converted(path: Path, k_id: int, k_exp: int, k_tex: int) -> _Deep3DArrays:
    fields = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints")
    data = _load_mat(path, fields)
    mean = _vector(path, "meanshape", data["meanshape"], "3V")
    if mean.size % 3:
        raise InputError(f"{path}: field meanshape must hold 3V values, got {mean.size}")
    v = mean.size // 3
    bases = {}
    for name, k in (("idBase", k_id), ("exBase", k_exp), ("texBase", k_tex)):
        basis = _matrix(path, name, data[name], 3 * v, "K")[:, :k]
        bases[name] = basis.reshape(v, 3, -1).transpose(2, 0, 1).astype(np.float64)
    tri, keypoints = _triangles_and_keypoints(path, data, v)
    return _Deep3DArrays(
        meanshape=mean.reshape(v, 3).astype(np.float64),
        id_basis=bases["idBase"],
        exp_basis=bases["exBase"],
        meantex=_vector(path, "meantex", data["meantex"], 3 * v).reshape(v, 3).astype(np.float64),
        tex_basis=bases["texBase"],
        tri=tri,
        keypoints=keypoints,
        input=CONVERTED_FILE,
    )


def _convert_raw(root: Path, k_id: int, k_exp: int, k_tex: int) -> _Deep3DArrays:
    mm_path = root / "01_MorphableModel.mat"
    mm = _load_mat(mm_path, ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV"))
    shape_mu = _vector(mm_path, "shapeMU", mm["shapeMU"], "3N")
    if shape_mu.size % 3:
        raise InputError(f"{mm_path}: field shapeMU must hold 3N values, got {shape_mu.size}")
    n = shape_mu.size // 3
    shape_pc = _matrix(mm_path, "shapePC", mm["shapePC"], 3 * n, "K")
    shape_ev = _vector(mm_path, "shapeEV", mm["shapeEV"], shape_pc.shape[1])
    tex_mu = _vector(mm_path, "texMU", mm["texMU"], 3 * n)
    tex_pc = _matrix(mm_path, "texPC", mm["texPC"], 3 * n, "K")
    tex_ev = _vector(mm_path, "texEV", mm["texEV"], tex_pc.shape[1])

    trim_path, front_path = root / "BFM_exp_idx.mat", root / "BFM_front_idx.mat"
    trim = _vector(trim_path, "trimIndex", _load_mat(trim_path, ("trimIndex",))["trimIndex"], "M")
    trim = _indices(trim_path, "trimIndex", trim, n, f"the {n} vertices of 01_MorphableModel.mat")
    m = trim.size
    idx = _vector(front_path, "idx", _load_mat(front_path, ("idx",))["idx"], "V")
    idx = _indices(front_path, "idx", idx, m, f"the {m} trimIndex entries of BFM_exp_idx.mat")
    front = trim[idx]  # (V,) BFM09 vertex of each front vertex
    v = front.size
    info_path = root / "facemodel_info.mat"
    tri, keypoints = _triangles_and_keypoints(
        info_path, _load_mat(info_path, ("tri", "keypoints")), v
    )

    exp_pc, n_exp = _read_exp_pca(root / "Exp_Pca.bin", m, k_exp)  # (k, M, 3)
    std_path = root / "std_exp.txt"
    try:
        std_exp = np.loadtxt(std_path, dtype=np.float64, ndmin=1).reshape(-1)
    except ValueError as exc:
        raise InputError(f"{std_path}: expected whitespace-separated numbers ({exc})") from exc
    if std_exp.size < n_exp:
        raise InputError(
            f"{std_path}: expected {n_exp} values (Exp_Pca.bin's count), found {std_exp.size}"
        )
    k = exp_pc.shape[0]
    rows = (3 * front[:, None] + np.arange(3)).reshape(-1)  # BFM09 rows, xyz interleaved

    def front_basis(pc: np.ndarray, ev: np.ndarray, count: int) -> np.ndarray:
        count = min(count, pc.shape[1])
        selected = pc[rows, :count].astype(np.float64) * ev[:count].astype(np.float64)
        return selected.reshape(v, 3, count).transpose(2, 0, 1)  # (K, V, 3)

    return _Deep3DArrays(
        meanshape=shape_mu[rows].astype(np.float64).reshape(v, 3) / MICROMETRES_PER_DECIMETRE,
        id_basis=front_basis(shape_pc, shape_ev, k_id) / MICROMETRES_PER_DECIMETRE,
        exp_basis=exp_pc[:, idx].astype(np.float64)
        * std_exp[:k, None, None]
        / MICROMETRES_PER_DECIMETRE,
        meantex=tex_mu[rows].astype(np.float64).reshape(v, 3),
        tex_basis=front_basis(tex_pc, tex_ev, k_tex),
        tri=tri,
        keypoints=keypoints,
        input="raw",
    )


def _read_exp_pca(path: Path, m: int, k_exp: int) -> tuple[np.ndarray, int]:
    """Read the first ``k_exp`` Guo et al. components as (k, M, 3) float32; return them and n."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4)
    if len(head) < 4:
        raise InputError(f"{path}: expected at least 4 bytes (int32 component count), found {size}")
    n = int(np.frombuffer(head, dtype="<i4")[0])
    if n < 1:
        raise InputError(f"{path}: component count (first int32) must be positive, got {n}")
    expected = 4 + 4 * 3 * m * (1 + n)
    if size != expected:
        raise InputError(
            f"{path}: expected {expected} bytes (int32 count {n}, then {1 + n} x 3 x {m} float32 "
            f"for the {m} vertices of BFM_exp_idx.mat), found {size}"
        )
    k = min(k_exp, n)
    data = np.fromfile(path, dtype="<f4", count=k * 3 * m, offset=4 + 4 * 3 * m)  # skip the mean
    return data.reshape(k, m, 3), n


# ---------------------------------------------------------------------- project conventions
def _build_model(arrays: _Deep3DArrays, root: Path) -> FaceModel:
    centroid = arrays.meanshape.mean(axis=0)
    mean = (arrays.meanshape - centroid) * DECIMETRES_TO_METRES
    faces = arrays.tri
    normals = vertex_normals(torch.from_numpy(mean), torch.from_numpy(faces))
    flipped = bool(normals[arrays.keypoints[NOSE_TIP], 2] < 0)
    if flipped:
        faces = faces[:, [0, 2, 1]]
    v = mean.shape[0]
    k_exp = arrays.exp_basis.shape[0]
    return FaceModel(
        name="bfm",
        mean=mean,
        faces=faces,
        identity_basis=arrays.id_basis * DECIMETRES_TO_METRES,
        expression_basis=arrays.exp_basis * DECIMETRES_TO_METRES,
        expression_names=[f"exp_{i:02d}" for i in range(k_exp)],
        albedo_mean=arrays.meantex / 255.0,
        albedo_basis=arrays.tex_basis / 255.0,
        landmarks=arrays.keypoints,
        regions=landmark_regions(mean, arrays.keypoints, np.arange(v)),
        unit="m",
        metadata={
            "source": "bfm09",
            "source_unit": "dm (Deep3DFaceRecon)",
            "scale_to_metres": DECIMETRES_TO_METRES,
            "axes": AXES,
            "input": arrays.input,
            "directory": str(root),
            "recentred_centroid_m": [float(c) * DECIMETRES_TO_METRES for c in centroid],
            "faces_flipped": flipped,
            "albedo": "Deep3D texture / 255",
            "expression_names": "PCA components of Guo et al. (unnamed)",
        },
    )
