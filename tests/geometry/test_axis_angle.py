"""mmface4d.geometry.align.axis_angle_matrix (Rodrigues) against SciPy, at and near zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mmface4d.errors import InputError
from mmface4d.geometry.align import axis_angle_matrix


def test_matches_scipy_on_a_random_batch():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 5, 3)) * rng.uniform(0, 3, size=(4, 5, 1))
    out = axis_angle_matrix(torch.as_tensor(vectors))
    assert out.shape == (4, 5, 3, 3) and out.dtype == torch.float64
    expected = Rotation.from_rotvec(vectors.reshape(-1, 3)).as_matrix().reshape(4, 5, 3, 3)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_known_value_quarter_turn_about_z():
    matrix = axis_angle_matrix(torch.tensor([0.0, 0.0, np.pi / 2], dtype=torch.float64))
    np.testing.assert_allclose(matrix.numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)


def test_orthonormal_with_unit_determinant():
    vectors = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    matrices = axis_angle_matrix(vectors * 2)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    torch.testing.assert_close(matrices @ matrices.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(matrices), torch.ones(50, dtype=torch.float64))


def test_round_trip_through_scipy():
    vectors = np.array([[0.3, -0.2, 0.1], [1e-6, 0.0, -2e-6], [0.0, 2.5, 0.0]])
    matrices = axis_angle_matrix(torch.as_tensor(vectors)).numpy()
    np.testing.assert_allclose(Rotation.from_matrix(matrices).as_rotvec(), vectors, atol=1e-12)


def test_identity_at_zero_with_a_finite_gradient():
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    matrix = axis_angle_matrix(zero)
    torch.testing.assert_close(matrix, torch.eye(3, dtype=torch.float64))
    matrix.sum().backward()
    assert torch.isfinite(zero.grad).all()
    # d R / d w at 0 is the cross-product matrix: sum of [w]_x entries is 0 for each w
    torch.testing.assert_close(zero.grad, torch.zeros(3, dtype=torch.float64))
    # the derivative of one entry: R[2, 1] = w_x + O(w^2)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    axis_angle_matrix(w)[2, 1].backward()
    torch.testing.assert_close(w.grad, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize(
    "vector",
    [
        [0.0, 0.0, 0.0],
        [1e-6, -2e-6, 3e-7],  # the Taylor branch
        [3e-4, 2e-4, -1e-4],  # just past it
        [0.4, -1.1, 0.7],  # generic
    ],
)
def test_gradcheck(vector):
    w = torch.tensor(vector, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_matrix, (w,), eps=1e-7, atol=1e-6)


def test_continuous_across_the_taylor_threshold():
    """The Taylor branch (|w| < 1e-4) and the closed form agree where they meet."""
    direction = torch.tensor([0.6, -0.8, 0.0], dtype=torch.float64)
    below = axis_angle_matrix(direction * 0.99999e-4)
    above = axis_angle_matrix(direction * 1.00001e-4)
    torch.testing.assert_close(below, above, atol=1e-8, rtol=0)
    exact = Rotation.from_rotvec((direction * 0.99999e-4).numpy()).as_matrix()
    np.testing.assert_allclose(below.numpy(), exact, atol=1e-15)


def test_float32_small_angles_stay_rotations():
    """Above the Taylor threshold float32 loses (1 - cos a) / a^2 to cancellation; the
    matrix must still be the rotation to float32 accuracy."""
    for angle in (2e-4, 1e-3, 1e-2):
        w = torch.tensor([angle, 0.0, 0.0])
        expected = Rotation.from_rotvec(w.double().numpy()).as_matrix()
        np.testing.assert_allclose(axis_angle_matrix(w).numpy(), expected, atol=1e-6)


def test_bad_shape():
    with pytest.raises(InputError, match=r"\(\.\.\., 3\)"):
        axis_angle_matrix(torch.zeros(4, 2))
