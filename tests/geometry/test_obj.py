"""Tests of the OBJ reader on small handwritten files, against a naive reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.geometry.obj import fan_triangulate, read_obj, read_obj_vertices

TINY_OBJ = """\
# a comment with a non-UTF-8 byte follows: \udcff
mtllib tiny.mtl
o tiny
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0 0.5 0.5 0.5
v 0.5 0.5 1.5
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vn 0 0 1
vn 0 0 -1
usemtl skin
g front
f 1/1/1 2/2/1 3/3/1 4/4/1
f 1//2 2//2 5//2
f\t3 4 5
s off
f -4/-3 -3/-2 -1/-1
l 1 2
f 1 2 3 4 5
"""


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


def _reference_fan(polygons: list[list[int]]) -> np.ndarray:
    """Slow, obviously-correct fan triangulation."""
    out = []
    for poly in polygons:
        for j in range(1, len(poly) - 1):
            out.append([poly[0], poly[j], poly[j + 1]])
    return np.asarray(out, dtype=np.int64)


def test_read_obj_tiny(tmp_path: Path) -> None:
    mesh = read_obj(_write(tmp_path / "tiny.obj", TINY_OBJ))
    assert mesh.vertices.dtype == np.float32
    np.testing.assert_array_equal(
        mesh.vertices, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1.5]]
    )
    assert mesh.num_vertices == 5
    polygons = [[0, 1, 2, 3], [0, 1, 4], [2, 3, 4], [1, 2, 4], [0, 1, 2, 3, 4]]
    np.testing.assert_array_equal(mesh.polygon_sizes, [len(p) for p in polygons])
    np.testing.assert_array_equal(mesh.polygon_vertices, np.concatenate(polygons))
    np.testing.assert_array_equal(mesh.polygons(4), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(mesh.polygons(3), [[0, 1, 4], [2, 3, 4], [1, 2, 4]])
    np.testing.assert_array_equal(mesh.polygons(5), [[0, 1, 2, 3, 4]])
    assert mesh.polygons(6).shape == (0, 6)
    np.testing.assert_array_equal(mesh.triangles(), _reference_fan(polygons))
    assert mesh.texcoords.shape == (4, 2) and mesh.normals.shape == (2, 3)
    # corner attributes: -1 where a corner has none; negative indices are relative
    np.testing.assert_array_equal(
        mesh.polygon_texcoords, [0, 1, 2, 3, -1, -1, -1, -1, -1, -1, 1, 2, 3, -1, -1, -1, -1, -1]
    )
    np.testing.assert_array_equal(
        mesh.polygon_normals, [0, 0, 0, 0, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1]
    )


def test_read_obj_vertices_matches_full_reader(tmp_path: Path) -> None:
    path = _write(tmp_path / "tiny.obj", TINY_OBJ)
    np.testing.assert_array_equal(read_obj_vertices(path), read_obj(path).vertices)


def test_fan_triangulate_random_polygons_against_reference() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 8, size=40)
    polygons = [list(rng.integers(0, 100, size=k)) for k in sizes]
    got = fan_triangulate(np.concatenate(polygons), sizes)
    np.testing.assert_array_equal(got, _reference_fan(polygons))


def test_fan_triangulate_rejects_bad_sizes() -> None:
    with pytest.raises(InputError, match="sum to 7"):
        fan_triangulate(np.arange(8), np.array([3, 4]))
    with pytest.raises(InputError, match=">= 3 corners"):
        fan_triangulate(np.arange(5), np.array([3, 2]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", r"line 4: face v index 4 out of range"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 0\n", r"line 4: face v index 0 out of range"),
        ("v 0 0 0\nv 1 0 0\nf 1 2\n", r"line 3: a face needs >= 3 corners, found 2"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1/5 2 3\n", r"face vt index 5 out of range"),
        ("v 0 0 0\nv 1 x 0\nv 0 1 0\nf 1 2 3\n", r"non-number"),
        ("v 0 0\nv 1 0 0\nv 0 1 0\n", r"statement 1 has 2 values, expected at least 3"),
        ("# only a comment\n", r"no vertex"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 a\n", r"index 'a' is not an integer"),
    ],
)
def test_read_obj_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "bad.obj", text)
    with pytest.raises(InputError, match=message) as info:
        read_obj(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    for reader in (read_obj, read_obj_vertices):
        with pytest.raises(InputError, match="nope.obj: OBJ file not found"):
            reader(tmp_path / "nope.obj")
