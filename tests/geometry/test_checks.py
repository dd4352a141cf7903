import numpy as np
import pytest

from mmface4d.errors import InputError
from mmface4d.geometry.checks import check_faces, check_vertices


def test_vertices_pass_through_unchanged():
    vertices = np.zeros((2, 4, 3), np.float64)
    assert check_vertices(vertices) is vertices
    assert check_vertices([[[0, 0, 0]]]).shape == (1, 1, 3)


@pytest.mark.parametrize(
    ("array", "options", "message"),
    [
        (np.zeros((4, 3)), {}, r"vertices must be \(T, V, 3\).*found \(4, 3\)"),
        (np.zeros((0, 4, 3)), {}, r"T >= 1"),
        (np.zeros((1, 4, 3)), {"min_frames": 2}, r"T >= 2"),
        (np.zeros((1, 2, 3)), {"min_vertices": 3}, r"V >= 3"),
        (np.zeros((1, 4, 3)), {"num_vertices": 5}, r"V = 5"),
        (np.array([[["a", "b", "c"]]]), {}, "expected real numbers"),
    ],
)
def test_vertices_name_what_is_wrong(array, options, message):
    with pytest.raises(InputError, match=message):
        check_vertices(array, **options)


def test_non_finite_vertices_are_located_unless_allowed():
    vertices = np.zeros((3, 5, 3))
    vertices[2, 4, 1] = np.nan
    with pytest.raises(InputError, match="offsets must be finite.*frame 2, vertex 4, axis y"):
        check_vertices(vertices, "offsets")
    assert check_vertices(vertices, finite=False) is vertices


def test_faces_become_int64_and_must_index_the_vertices():
    faces = check_faces(np.array([[0, 1, 2]], np.int32), 3)
    assert faces.dtype == np.int64
    with pytest.raises(InputError, match="faces index vertices 0..3, expected 0..2"):
        check_faces([[0, 1, 3]], 3)
    with pytest.raises(InputError, match="integer"):
        check_faces(np.array([[0.0, 1.0, 2.0]]), 3)
    with pytest.raises(InputError, match=r"F >= 1"):
        check_faces(np.zeros((0, 3), np.int64), 3)
    assert check_faces(np.zeros((0, 3)), 3, allow_empty=True).shape == (0, 3)
