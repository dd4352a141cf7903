"""A small, fast Wavefront OBJ reader for face templates and blendshape meshes.

Reads the geometry statements every face model ships with: ``v`` (positions; extra values such as
vertex colours after x y z are ignored), ``vt``, ``vn`` and ``f`` with ``v``, ``v/vt``, ``v//vn``
or ``v/vt/vn`` corners, polygons of any size, 1-based or negative (relative) indices. Vertex
order is kept exactly as in the file (no merging, no splitting at texture seams), which is what
blendshape sets need: the i-th ``v`` of every shape is the same point of the face. Materials,
groups, lines and free-form statements are skipped.

Letters: V vertices, P polygons, N polygon corners (sum of the polygon sizes), F triangles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmface4d.errors import InputError


@dataclass
class ObjMesh:
    """The geometry of one OBJ file, indices 0-based.

    Attributes:
        vertices: (V, 3) float32 positions in file order.
        polygon_vertices: (N,) int64 vertex index of every polygon corner, polygon after polygon.
        polygon_sizes: (P,) int64 number of corners of each polygon (>= 3), in file order.
        texcoords: (T, 2) float32 ``vt`` coordinates (T may be 0).
        normals: (Vn, 3) float32 ``vn`` vectors (Vn may be 0).
        polygon_texcoords: (N,) int64 ``vt`` index of each corner, -1 where the corner has none.
        polygon_normals: (N,) int64 ``vn`` index of each corner, -1 where the corner has none.
    """

    vertices: np.ndarray
    polygon_vertices: np.ndarray
    polygon_sizes: np.ndarray
    texcoords: np.ndarray
    normals: np.ndarray
    polygon_texcoords: np.ndarray
    polygon_normals: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def polygon_offsets(self) -> np.ndarray:
        """(P,) int64 index into ``polygon_vertices`` of each polygon's first corner."""
        return np.cumsum(self.polygon_sizes) - self.polygon_sizes

    def polygons(self, size: int) -> np.ndarray:
        """(P_size, size) int64 vertex indices of the polygons with ``size`` corners, file order."""
        starts = self.polygon_offsets[self.polygon_sizes == size]
        return self.polygon_vertices[starts[:, None] + np.arange(size)]

    def triangles(self) -> np.ndarray:
        """(F, 3) int64 fan triangulation of every polygon in file order (winding kept).

        A polygon (a, b, c, d, ...) becomes (a, b, c), (a, c, d), ...; a quad gives two triangles.
        """
        return fan_triangulate(self.polygon_vertices, self.polygon_sizes)


def fan_triangulate(polygon_vertices: np.ndarray, polygon_sizes: np.ndarray) -> np.ndarray:
    """Split polygons into triangles fanning from each polygon's first corner.

    Args:
        polygon_vertices: (N,) vertex indices of all corners, polygon after polygon.
        polygon_sizes: (P,) corners per polygon, each >= 3, summing to N.

    Returns:
        (F, 3) int64 triangles, F = sum(sizes - 2), in polygon order, with the polygons' winding.
    """
    corners = np.asarray(polygon_vertices, dtype=np.int64)
    sizes = np.asarray(polygon_sizes, dtype=np.int64)
    if sizes.ndim != 1 or corners.ndim != 1 or int(sizes.sum()) != len(corners):
        raise InputError(
            f"fan_triangulate: polygon sizes sum to {int(sizes.sum())}, "
            f"expected the corner count {len(corners)}"
        )
    if len(sizes) and sizes.min() < 3:
        raise InputError(f"fan_triangulate: polygons need >= 3 corners, found {sizes.min()}")
    per_polygon = sizes - 2
    first = np.repeat(np.cumsum(sizes) - sizes, per_polygon)
    step = np.arange(int(per_polygon.sum())) - np.repeat(
        np.cumsum(per_polygon) - per_polygon, per_polygon
    )
    return np.stack([corners[first], corners[first + step + 1], corners[first + step + 2]], axis=1)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: OBJ file not found")
    # Comments in OBJ files written by DCC tools are not always UTF-8; geometry is ASCII.
    return path.read_bytes().decode("utf-8", errors="replace")


def _float_rows(rows: list[str], width: int, path: Path, what: str) -> np.ndarray:
    """(len(rows), width) float32 from statement bodies holding at least ``width`` numbers."""
    if not rows:
        return np.zeros((0, width), dtype=np.float32)
    tokens = " ".join(rows).split()
    if len(tokens) != width * len(rows):  # extra values (vertex colours, w): keep the first ones
        split = [row.split() for row in rows]
        short = next((i for i, r in enumerate(split) if len(r) < width), None)
        if short is not None:
            raise InputError(
                f"{path}: {what} statement {short + 1} has {len(split[short])} values, "
                f"expected at least {width}"
            )
        tokens = [t for r in split for t in r[:width]]
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: {what} statements hold a non-number ({exc})") from None
    return values.reshape(len(rows), width).astype(np.float32)


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """Only the ``v`` positions of an OBJ file: the fast path for blendshape meshes.

    Args:
        path: the ``.obj`` file.

    Returns:
        (V, 3) float32 positions in file order.
    """
    path = Path(path)
    text = _read_text(path)
    rows = [line[2:] for line in text.splitlines() if line.startswith(("v ", "v\t"))]
    if not rows:
        raise InputError(f"{path}: no vertex ('v') statements, expected an OBJ mesh")
    return _float_rows(rows, 3, path, "'v'")


def _index(token: str, count: int, path: Path, lineno: int, what: str) -> int:
    """0-based index of a 1-based or negative OBJ index, checked against ``count`` items."""
    try:
        value = int(token)
    except ValueError:
        raise InputError(
            f"{path}: line {lineno}: face corner {what} index {token!r} is not an integer"
        ) from None
    index = value - 1 if value > 0 else count + value
    if value == 0 or not 0 <= index < count:
        raise InputError(
            f"{path}: line {lineno}: face {what} index {value} out of range, "
            f"expected 1..{count} (or -1..-{count}) from the {count} '{what}' statements before it"
        )
    return index


def read_obj(path: str | Path) -> ObjMesh:
    """Read positions, texture coordinates, normals and polygons of an OBJ file.

    Args:
        path: the ``.obj`` file.

    Returns:
        An :class:`ObjMesh` (indices 0-based, vertex order as in the file).

    Raises:
        InputError: missing file, no vertices, a malformed number, a polygon with fewer than 3
            corners or an index outside the statements before it (naming file and line).
    """
    path = Path(path)
    text = _read_text(path)
    v_rows: list[str] = []
    vt_rows: list[str] = []
    vn_rows: list[str] = []
    corner_v: list[int] = []
    corner_vt: list[int] = []
    corner_vn: list[int] = []
    sizes: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(("v", "f")):
            continue
        if "\t" in line:
            line = line.replace("\t", " ")
        key, _, body = line.partition(" ")
        if key == "v":
            v_rows.append(body)
        elif key == "vt":
            vt_rows.append(body)
        elif key == "vn":
            vn_rows.append(body)
        elif key == "f":
            corners = body.split()
            if len(corners) < 3:
                raise InputError(
                    f"{path}: line {lineno}: a face needs >= 3 corners, found {len(corners)}"
                )
            nv, nt, nn = len(v_rows), len(vt_rows), len(vn_rows)
            for corner in corners:
                parts = corner.split("/")
                corner_v.append(_index(parts[0], nv, path, lineno, "v"))
                has_vt = len(parts) > 1 and parts[1] != ""
                has_vn = len(parts) > 2 and parts[2] != ""
                corner_vt.append(_index(parts[1], nt, path, lineno, "vt") if has_vt else -1)
                corner_vn.append(_index(parts[2], nn, path, lineno, "vn") if has_vn else -1)
            sizes.append(len(corners))
    if not v_rows:
        raise InputError(f"{path}: no vertex ('v') statements, expected an OBJ mesh")
    texcoords = _float_rows(vt_rows, 2, path, "'vt'") if vt_rows else np.zeros((0, 2), np.float32)
    return ObjMesh(
        vertices=_float_rows(v_rows, 3, path, "'v'"),
        polygon_vertices=np.asarray(corner_v, dtype=np.int64),
        polygon_sizes=np.asarray(sizes, dtype=np.int64),
        texcoords=texcoords,
        normals=_float_rows(vn_rows, 3, path, "'vn'"),
        polygon_texcoords=np.asarray(corner_vt, dtype=np.int64),
        polygon_normals=np.asarray(corner_vn, dtype=np.int64),
    )
