import numpy as np
import torch

from mmface4d.geometry.frames import (
    AXIS_FLIP,
    CAMERA_DISTANCE,
    M_PER_MM,
    MM_PER_M,
    axis_flip_matrix,
    flip_axes,
    from_camera_frame,
    to_camera_frame,
)
from mmface4d.render.camera import PinholeCamera


def test_a_point_in_front_of_the_face_lands_on_the_camera_axis_at_the_distance():
    # the model frame's nose direction (+z) points at the camera; its y (up) is image-up
    face = np.array([[0.0, 0.0, 0.0], [0.01, 0.02, 0.03]], dtype=np.float32)
    camera = to_camera_frame(face, 0.7)
    np.testing.assert_allclose(camera, [[0.0, 0.0, 0.7], [0.01, -0.02, 0.67]], atol=1e-7)
    assert to_camera_frame(face)[0, 2] == np.float32(CAMERA_DISTANCE)


def test_to_and_from_camera_frame_round_trip_and_keep_the_input():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(4, 5, 3)).astype(np.float32)
    before = points.copy()
    back = from_camera_frame(to_camera_frame(points, 0.66), 0.66)
    np.testing.assert_allclose(back, points, atol=1e-6)
    np.testing.assert_array_equal(points, before)


def test_flip_is_its_own_inverse_and_matches_the_matrix():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(7, 3))
    np.testing.assert_array_equal(flip_axes(flip_axes(points)), points)
    np.testing.assert_allclose(flip_axes(points), points @ axis_flip_matrix().T)
    np.testing.assert_array_equal(axis_flip_matrix(), np.diag(AXIS_FLIP))


def test_flip_keeps_precision_dtype_and_device():
    assert flip_axes(np.zeros((2, 3), np.float32)).dtype == np.float32
    assert flip_axes(np.zeros((2, 3), np.float64)).dtype == np.float64
    tensor = torch.ones(2, 3, dtype=torch.float64)
    flipped = flip_axes(tensor)
    assert isinstance(flipped, torch.Tensor) and flipped.dtype == torch.float64
    assert flipped.device == tensor.device
    assert flipped[0].tolist() == [1.0, -1.0, -1.0]


def test_the_matrix_is_a_new_array_each_time():
    matrix = axis_flip_matrix()
    matrix[0, 0] = 5.0
    assert axis_flip_matrix()[0, 0] == 1.0


def test_a_front_camera_has_the_flip_as_its_rotation():
    camera = PinholeCamera.look_at([0.0, 0.0, 0.7], [0.0, 0.0, 0.0], width=64, height=64)
    np.testing.assert_allclose(np.asarray(camera.R), axis_flip_matrix(), atol=1e-12)


def test_millimetre_factors():
    assert 0.0125 * MM_PER_M == 12.5 and 12.5 / MM_PER_M == 0.0125
    assert M_PER_MM * MM_PER_M == 1.0
