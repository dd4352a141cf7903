"""The one set of input checks for mesh arrays: vertex sequences (T, V, 3) and triangles (F, 3).

Every stage that takes vertices or triangles from a caller checks them here, so a user sees the
same one-line :class:`~mmface4d.errors.InputError` whichever function they called: the argument's
name, what was expected and what was found. The checks do not copy or convert the array (a caller
that needs float32 or float64 casts the result itself).

Letters: T frames, V vertices, F faces.
"""

from __future__ import annotations

import numpy as np

from mmface4d.errors import InputError

AXES = "xyz"


def check_vertices(
    vertices: object,
    name: str = "vertices",
    *,
    min_frames: int = 1,
    min_vertices: int = 1,
    num_vertices: int | None = None,
    finite: bool = True,
) -> np.ndarray:
    """A (T, V, 3) array of real numbers, or an :class:`InputError` saying what is wrong.

    Args:
        vertices: the array (anything :func:`numpy.asarray` takes).
        name: what the caller calls it, for the message (``vertices``, ``offsets``, a file).
        min_frames: smallest T accepted.
        min_vertices: smallest V accepted.
        num_vertices: the V required, or None for any V >= ``min_vertices``.
        finite: also refuse NaN and infinite values (naming the first one).

    Returns:
        The array as an ``np.ndarray`` (the same object when it already was one).
    """
    array = np.asarray(vertices)
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected real numbers, found dtype {array.dtype}")
    wanted = f"V = {num_vertices}" if num_vertices is not None else f"V >= {min_vertices}"
    if (
        array.ndim != 3
        or array.shape[2] != 3
        or array.shape[0] < min_frames
        or array.shape[1] < min_vertices
        or (num_vertices is not None and array.shape[1] != num_vertices)
    ):
        raise InputError(
            f"{name} must be (T, V, 3) with T >= {min_frames}, {wanted}: expected shape "
            f"(T, V, 3), found {array.shape}"
        )
    if finite and array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            t, v, a = (int(i) for i in np.argwhere(bad)[0])
            raise InputError(
                f"{name} must be finite (no NaN or inf), found {array[t, v, a]} at frame {t}, "
                f"vertex {v}, axis {AXES[a]}"
            )
    return array


def check_faces(
    faces: object, num_vertices: int, name: str = "faces", *, allow_empty: bool = False
) -> np.ndarray:
    """(F, 3) int64 triangles indexing ``num_vertices`` vertices, or an :class:`InputError`.

    Args:
        faces: the triangles (any integer dtype).
        num_vertices: V, the vertices they index (0-based).
        name: what the caller calls them.
        allow_empty: accept F = 0 (a point sequence without triangles).
    """
    array = np.asarray(faces)
    if array.ndim != 2 or array.shape[1] != 3 or (len(array) == 0 and not allow_empty):
        least = 0 if allow_empty else 1
        raise InputError(f"{name} must be (F, 3) with F >= {least}, got {array.shape}")
    if len(array) == 0:
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise InputError(f"{name} must be integer vertex indices, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= num_vertices:
        raise InputError(
            f"{name} index vertices {array.min()}..{array.max()}, expected 0..{num_vertices - 1}"
        )
    return array.astype(np.int64, copy=False)
