"""Coordinate frames and units shared by every stage: the one place for the axis flip.

Two frames hold face meshes in this project (``docs/CONVENTIONS.md`` states them in full):

* **Model frame** -- the face model's own axes: x towards the subject's left (the right of a
  picture taken from the front), y up, z out of the face towards a viewer. Face models, the
  animation models and every exported file (glTF, PLY/OBJ, NPZ with ``frame="model"``) use it.
* **Camera frame** -- OpenCV camera axes of the MMFace4D centre camera: x right, y down,
  z forward into the scene. MMFace4D's reconstructed meshes (``.nut`` files), the synthetic
  corpus and the studio's world are in it, with the face about :data:`CAMERA_DISTANCE` metres in
  front of the camera.

The two differ by a rotation of 180 degrees about x, ``diag(1, -1, -1)`` (:data:`AXIS_FLIP`),
which is its own inverse; going to the camera frame also moves the face ``distance`` metres
along +z. A camera in front of a model-frame face therefore has ``R = diag(1, -1, -1)``.

Units: lengths are metres everywhere in memory; depth images and reported errors are
millimetres (:data:`MM_PER_M`).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

#: Per-axis signs between the model frame and the camera frame (either direction).
AXIS_FLIP = (1.0, -1.0, -1.0)
#: Distance of the face from the MMFace4D centre camera, metres (the release's faces lie about
#: 0.66-0.78 m from it).
CAMERA_DISTANCE = 0.72
#: Millimetres per metre: ``metres * MM_PER_M`` is millimetres, ``mm / MM_PER_M`` is metres.
MM_PER_M = 1000.0
#: Metres per millimetre, for millimetre constants written as ``M_PER_MM * value``.
M_PER_MM = 0.001

_FLIP32 = np.array(AXIS_FLIP, dtype=np.float32)
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def axis_flip_matrix() -> np.ndarray:
    """(3, 3) float64 ``diag(1, -1, -1)``: model-frame axes <-> camera-frame axes (a new array).

    It is also the rotation of a camera that looks at a model-frame face from the front.
    """
    return np.diag(AXIS_FLIP)


def flip_axes(points: ArrayT) -> ArrayT:
    """(..., 3) points or directions with y and z negated: model <-> camera axes, no translation.

    A NumPy input keeps its float precision (float32 stays float32, float64 stays float64); a
    tensor keeps its dtype and device.
    """
    if isinstance(points, torch.Tensor):
        return points * points.new_tensor(AXIS_FLIP)
    return np.asarray(points) * _FLIP32


def to_camera_frame(vertices: np.ndarray, distance: float = CAMERA_DISTANCE) -> np.ndarray:
    """(..., 3) model-frame vertices -> the centre camera's frame (OpenCV axes), metres.

    The camera looks at the face from ``distance`` metres: x stays, y and z flip, z shifts by
    ``distance``. Inverse: :func:`from_camera_frame`.
    """
    out = flip_axes(np.asarray(vertices))
    out[..., 2] += distance
    return out


def from_camera_frame(vertices: np.ndarray, distance: float = CAMERA_DISTANCE) -> np.ndarray:
    """(..., 3) centre-camera-frame vertices -> the model frame; inverse of
    :func:`to_camera_frame` with the same ``distance``."""
    out = flip_axes(np.asarray(vertices))  # one pass: -(z - d) is exactly d - z
    out[..., 2] += distance
    return out
