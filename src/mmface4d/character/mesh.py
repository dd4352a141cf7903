"""A user's neutral head mesh of any topology, read in metres with its vertex order kept.

Rules:

- Formats: ``.obj`` through the project's own reader (:func:`mmface4d.geometry.obj.read_obj`:
  file order, no splitting at texture seams); ``.ply`` through trimesh with ``process=False``;
  ``.gltf``/``.glb`` through trimesh as a scene, every mesh placed by its nodes' transforms and
  concatenated in the file's mesh order (each mesh's instances in node order, each primitive's
  vertex order kept); ``.npz`` with ``vertices`` (V, 3) and ``faces`` (F, K >= 3) arrays.
- Polygons are fan-triangulated from their first corner, winding kept (a quad (a, b, c, d)
  gives (a, b, c), (a, c, d)); the vertex order is the file's, so that anything written for the
  user lines up with their own mesh. Pose and orientation are the file's; only the scale changes.
- Unit: the one given (``m``, ``cm``, ``mm``), else read from the largest extent E of the
  bounding box: metres if 0.08 <= E <= 0.6, centimetres if 8 <= E <= 60, millimetres if
  80 <= E <= 600 (a face alone or a whole head with neck fits each range); any other E is an
  :class:`InputError` asking for ``--unit``. A given unit is checked loosely: the head must come
  out 0.02-2 m across.
- Accepted: 1,000 to 500,000 vertices, finite positions, at least one triangle, faces indexing
  the vertices. Anything else is one :class:`InputError` line naming the file.
- Components: connected parts over the triangles' edges, labelled by size: 0 is the part with
  the most vertices (the head, usually), then the teeth, eyes ... (ties: the part whose first
  vertex comes first). Vertices at the same position stay apart, so that eyelashes or tear films
  that touch the eyelids stay parts of their own; a file split at texture seams (glTF always is)
  can be welded with ``connected_components(..., weld=True)``.

Letters: V vertices, F triangles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmface4d.errors import InputError
from mmface4d.geometry.checks import check_faces
from mmface4d.geometry.obj import fan_triangulate, read_obj

if TYPE_CHECKING:
    import trimesh

#: Length of one unit in metres, for the units a head file may use.
UNIT_SCALE: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}

#: Largest bounding-box extent (in the file's numbers) that identifies each unit, inclusive.
UNIT_EXTENTS: dict[str, tuple[float, float]] = {
    "m": (0.08, 0.6),
    "cm": (8.0, 60.0),
    "mm": (80.0, 600.0),
}

#: Extent in metres a head must have when its unit is given.
METRE_EXTENT_LIMITS = (0.02, 2.0)

MIN_VERTICES = 1_000
MAX_VERTICES = 500_000

SUPPORTED_SUFFIXES = (".obj", ".ply", ".gltf", ".glb", ".npz")


@dataclass
class HeadMesh:
    """A neutral head in metres, in the file's vertex order and pose.

    Attributes:
        vertices: (V, 3) float64 positions in metres.
        faces: (F, 3) int64 triangles (the file's polygons fan-triangulated, winding kept).
        source_unit: the file's unit, ``"m"``, ``"cm"`` or ``"mm"``.
        path: the file read, or None for a mesh built in memory.
    """

    vertices: np.ndarray
    faces: np.ndarray
    source_unit: str = "m"
    path: Path | None = None

    @property
    def num_vertices(self) -> int:
        """V, the number of vertices."""
        return int(self.vertices.shape[0])

    @cached_property
    def components(self) -> np.ndarray:
        """(V,) int64 connected-part label of each vertex, 0 for the part with most vertices."""
        return connected_components(self.vertices, self.faces)


def connected_components(
    vertices: np.ndarray, faces: np.ndarray, *, weld: bool = False
) -> np.ndarray:
    """Label the connected parts of a triangle mesh by size (see the module doc).

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) triangles.
        weld: also join vertices at exactly the same position (a surface split at seams).

    Returns:
        (V,) int64 labels: 0 for the part with the most vertices, then decreasing size (ties in
        the order of each part's first vertex). A vertex no triangle uses is a part of its own.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    count = len(vertices)
    faces = np.asarray(faces, dtype=np.int64)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    if weld:  # each vertex linked to the first vertex at its position
        _, position = np.unique(np.asarray(vertices), axis=0, return_inverse=True)
        position = position.reshape(-1)
        first = np.full(count, count, dtype=np.int64)
        np.minimum.at(first, position, np.arange(count))
        rows, cols = (
            np.concatenate([rows, np.arange(count)]),
            np.concatenate([cols, first[position]]),
        )
    graph = coo_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(count, count))
    _, raw = scipy_components(graph, directed=False)
    sizes = np.bincount(raw)
    first_vertex = np.full(len(sizes), count, dtype=np.int64)
    np.minimum.at(first_vertex, raw, np.arange(count))
    order = np.lexsort((first_vertex, -sizes))  # biggest first, then by first vertex
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[order] = np.arange(len(sizes))
    return rank[raw]


def load_head(path: str | Path, unit: str | None = None) -> HeadMesh:
    """Read a head mesh (OBJ, PLY, glTF/GLB or NPZ) in metres; see the module doc.

    Args:
        path: the mesh file.
        unit: the file's unit, ``"m"``, ``"cm"`` or ``"mm"``; None reads it from the size.

    Returns:
        A :class:`HeadMesh` with the file's vertex order.

    Raises:
        InputError: a missing or unreadable file, an unsupported format, an unknown unit, no
            triangles, too few or too many vertices, NaN or inf, faces out of range, or a size
            that fits no unit.
    """
    path = Path(path)
    if unit is not None and unit not in UNIT_SCALE:
        raise InputError(f"unit {unit!r} unknown for {path}; expected one of m, cm, mm")
    if not path.is_file():
        raise InputError(f"{path}: head mesh file not found")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{path}: unsupported head mesh format {path.suffix!r}; expected one of "
            + ", ".join(SUPPORTED_SUFFIXES)
        )
    if suffix == ".obj":
        obj = read_obj(path)
        vertices, faces = obj.vertices, obj.triangles()
    elif suffix == ".npz":
        vertices, faces = _read_npz(path)
    else:
        vertices, faces = _read_trimesh(path, suffix)
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise InputError(f"{path}: vertices must be (V, 3), found shape {vertices.shape}")
    if len(faces) == 0:
        raise InputError(
            f"{path}: no faces (a point cloud?); expected a triangle or polygon surface mesh"
        )
    if not MIN_VERTICES <= len(vertices) <= MAX_VERTICES:
        raise InputError(
            f"{path}: {len(vertices):,} vertices, expected a head mesh of "
            f"{MIN_VERTICES:,} to {MAX_VERTICES:,} vertices"
        )
    bad = ~np.isfinite(vertices)
    if bad.any():
        v, a = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{path}: vertex positions must be finite, found {vertices[v, a]} at vertex {v}, "
            f"axis {'xyz'[a]}"
        )
    faces = check_faces(faces, len(vertices), name=f"{path}: faces")
    source_unit = _unit(path, vertices, unit)
    return HeadMesh(
        vertices=vertices * UNIT_SCALE[source_unit],
        faces=faces,
        source_unit=source_unit,
        path=path,
    )


def _unit(path: Path, vertices: np.ndarray, unit: str | None) -> str:
    """The file's unit: ``unit`` when given (checked loosely), else read from the extent."""
    extent = float(np.ptp(vertices, axis=0).max())
    if unit is not None:
        low, high = METRE_EXTENT_LIMITS
        metres = extent * UNIT_SCALE[unit]
        if not low <= metres <= high:
            raise InputError(
                f"{path}: with unit {unit!r} the head is {metres:.3g} m across (largest extent "
                f"{extent:.4g}), expected {low}-{high} m; check --unit"
            )
        return unit
    for name, (low, high) in UNIT_EXTENTS.items():
        if low <= extent <= high:
            return name
    ranges = ", ".join(f"{name} {low:g}-{high:g}" for name, (low, high) in UNIT_EXTENTS.items())
    raise InputError(
        f"{path}: cannot tell the unit from the largest extent {extent:.4g} (a head measures "
        f"{ranges}); give it with --unit m, cm or mm"
    )


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ("vertices", "faces") if name in archive}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz archive ({exc})") from None
    if len(arrays) < 2:
        raise InputError(
            f"{path}: holds {', '.join(arrays) or 'neither'} of the arrays 'vertices' (V, 3) and "
            f"'faces' (F, 3), expected both"
        )
    vertices, faces = arrays["vertices"], arrays["faces"]
    if vertices.dtype.kind not in "fiu":
        raise InputError(f"{path}: vertices must be real numbers, found dtype {vertices.dtype}")
    if faces.size == 0:
        return vertices, np.zeros((0, 3), dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] < 3 or faces.dtype.kind not in "iu":
        raise InputError(
            f"{path}: faces must be (F, K >= 3) integers, found shape {faces.shape} of "
            f"{faces.dtype}"
        )
    if faces.shape[1] > 3:
        faces = fan_triangulate(faces.reshape(-1), np.full(len(faces), faces.shape[1]))
    return vertices, faces


def _read_trimesh(path: Path, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of a PLY (one mesh) or glTF/GLB (a scene, transforms applied)."""
    import trimesh

    try:
        if suffix == ".ply":
            loaded = trimesh.load(path, process=False)
        else:
            loaded = trimesh.load(path, force="scene", process=False)
    except Exception as exc:  # trimesh raises many types on malformed files
        raise InputError(f"{path}: could not read the mesh ({type(exc).__name__}: {exc})") from None
    if isinstance(loaded, trimesh.Trimesh):
        return np.asarray(loaded.vertices), np.asarray(loaded.faces)
    if isinstance(loaded, trimesh.Scene):
        return _scene_arrays(loaded)
    points = getattr(loaded, "vertices", np.zeros((0, 3)))
    return np.asarray(points), np.zeros((0, 3), dtype=np.int64)


def _scene_arrays(scene: trimesh.Scene) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate a scene's meshes in its mesh order, each instance by its node's transform."""
    import trimesh

    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    offset = 0
    points = 0
    for name, geometry in scene.geometry.items():
        if not isinstance(geometry, trimesh.Trimesh):
            points += len(getattr(geometry, "vertices", ()))
            continue
        for node in scene.graph.geometry_nodes.get(name, []):
            transform, _ = scene.graph[node]
            placed = trimesh.transform_points(np.asarray(geometry.vertices), transform)
            vertices.append(placed)
            faces.append(np.asarray(geometry.faces, dtype=np.int64) + offset)
            offset += len(placed)
    if not vertices:
        return np.zeros((points, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vertices), np.concatenate(faces)
