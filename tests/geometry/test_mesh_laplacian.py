"""mmface4d.geometry.uniform_laplacian against a dense, obviously-correct construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmface4d.geometry import uniform_laplacian

TWO_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]])


def naive_laplacian(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Dense I - D^-1 A by loops over the faces; zero rows for isolated vertices."""
    neighbours: list[set[int]] = [set() for _ in range(num_vertices)]
    for face in faces:
        for i in range(3):
            a, b = int(face[i]), int(face[(i + 1) % 3])
            neighbours[a].add(b)
            neighbours[b].add(a)
    dense = np.zeros((num_vertices, num_vertices))
    for i, around in enumerate(neighbours):
        if not around:
            continue
        dense[i, i] = 1.0
        for j in around:
            dense[i, j] = -1.0 / len(around)
    return dense


def random_mesh(num_vertices: int = 30, num_faces: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    faces = [rng.choice(num_vertices - 2, 3, replace=False) for _ in range(num_faces)]
    return np.array(faces)  # the last two vertices are isolated


def test_two_triangles_known_matrix():
    laplacian = uniform_laplacian(TWO_TRIANGLES, 4)
    assert laplacian.is_sparse and laplacian.shape == (4, 4) and laplacian.dtype == torch.float32
    third, half = 1 / 3, 1 / 2
    expected = np.array(
        [
            [1, -third, -third, -third],  # 0 touches 1, 2, 3
            [-half, 1, -half, 0],
            [-third, -third, 1, -third],
            [-half, 0, -half, 1],
        ]
    )
    np.testing.assert_allclose(laplacian.to_dense().numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(laplacian.to_dense().numpy(), naive_laplacian(TWO_TRIANGLES, 4))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_naive_construction_with_isolated_vertices(seed):
    faces = random_mesh(seed=seed)
    laplacian = uniform_laplacian(faces, 30).to_dense().numpy()
    np.testing.assert_allclose(laplacian, naive_laplacian(faces, 30), atol=1e-7)
    assert (laplacian[28:] == 0).all() and (laplacian[:, 28:] == 0).all()


def test_rows_sum_to_zero_and_constants_are_in_the_kernel():
    faces = random_mesh(seed=3)
    laplacian = uniform_laplacian(faces, 30)
    np.testing.assert_allclose(laplacian.to_dense().sum(1).numpy(), 0.0, atol=1e-6)
    constant = torch.full((30, 3), 2.5)
    np.testing.assert_allclose(torch.sparse.mm(laplacian, constant).numpy(), 0.0, atol=1e-6)
    # an affine field is not in the kernel in general, but a vertex's value minus its
    # neighbours' mean is what L computes
    values = torch.arange(30, dtype=torch.float32)[:, None]
    out = torch.sparse.mm(laplacian, values)[:, 0].numpy()
    dense = naive_laplacian(faces, 30)
    np.testing.assert_allclose(out, dense @ np.arange(30.0), atol=1e-4)


def test_batch_of_columns_and_gradient():
    faces = random_mesh(seed=4)
    laplacian = uniform_laplacian(faces, 30).to(torch.float64)
    x = torch.randn(30, 7, dtype=torch.float64, requires_grad=True)
    out = torch.sparse.mm(laplacian, x)
    assert out.shape == (30, 7)
    assert torch.autograd.gradcheck(lambda v: torch.sparse.mm(laplacian, v), (x,))


def test_duplicate_faces_do_not_double_weights():
    doubled = np.concatenate([TWO_TRIANGLES, TWO_TRIANGLES[:, ::-1]])
    np.testing.assert_allclose(
        uniform_laplacian(doubled, 4).to_dense().numpy(),
        uniform_laplacian(TWO_TRIANGLES, 4).to_dense().numpy(),
    )
