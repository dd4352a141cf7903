"""The loss terms of the three-stage fit (mmface4d.reconstruct.losses): known values, masks,
units, invariances and float64 gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmface4d.errors import InputError
from mmface4d.geometry import uniform_laplacian, unique_edges
from mmface4d.reconstruct import losses

# Two triangles sharing an edge (a unit square split along its diagonal), plus a third
# triangle on top so that the Laplacian has vertices of different degrees.
FACES = np.array([[0, 1, 2], [0, 2, 3], [3, 2, 4]])
NUM_VERTICES = 5


def _double(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


# ---------------------------------------------------------------------- Geman-McClure
def test_geman_mcclure_known_values_and_bound():
    r = torch.tensor([0.0, 1.0, -2.0, 3.0, 1e6])
    expected = torch.tensor([0.0, 0.5, 0.8, 0.9, 1.0])
    torch.testing.assert_close(losses.geman_mcclure(r, 2.0), torch.tensor([0, 0.2, 0.5, 9 / 13, 1]))
    torch.testing.assert_close(losses.geman_mcclure(r, 1.0)[:4], expected[:4])
    big = losses.geman_mcclure(torch.logspace(-3, 6, 50, dtype=torch.float64), 0.1)
    assert (big < 1).all() and (big >= 0).all()
    assert (big.diff() > 0).all()  # monotone in |r|
    # quadratic near zero: r^2 / sigma^2
    small = torch.tensor([1e-4], dtype=torch.float64)
    torch.testing.assert_close(
        losses.geman_mcclure(small, 0.1), small.square() / 0.01, rtol=1e-5, atol=0
    )


def test_geman_mcclure_batch_and_gradcheck():
    r = _double(2, 3, 4).requires_grad_()
    assert losses.geman_mcclure(r, 0.5).shape == (2, 3, 4)
    assert torch.autograd.gradcheck(lambda x: losses.geman_mcclure(x, 0.5), (r,))


# ---------------------------------------------------------------------- colour and depth
def _images(seed: int = 0):
    rendered = _double(2, 4, 5, 3, seed=seed).abs()
    observed = _double(2, 4, 5, 3, seed=seed + 1).abs()
    mask = _double(2, 4, 5, seed=seed + 2) > 0
    return rendered, observed, mask


def test_colour_loss_zero_for_identical_images_and_masked_pixels_ignored():
    rendered, observed, mask = _images()
    assert float(losses.colour_loss(rendered, rendered, mask)) == pytest.approx(0.0, abs=1e-10)
    # changing only unmasked pixels changes nothing
    scribbled = torch.where(mask[..., None], rendered, rendered + 100.0)
    assert float(losses.colour_loss(rendered, scribbled, mask)) == pytest.approx(0.0, abs=1e-10)
    # an empty mask gives 0, not NaN
    assert float(losses.colour_loss(rendered, observed, torch.zeros_like(mask))) == 0.0


def test_colour_loss_known_value_is_the_masked_mean_of_rgb_distances():
    rendered = torch.zeros(1, 1, 2, 3)
    observed = torch.zeros(1, 1, 2, 3)
    observed[0, 0, 0] = torch.tensor([0.3, 0.0, 0.4])  # distance 0.5
    observed[0, 0, 1] = 1.0  # a masked-out outlier
    mask = torch.tensor([[[True, False]]])
    # 0.25 / (0.25 + 0.01)
    assert float(losses.colour_loss(rendered, observed, mask, sigma=0.1)) == pytest.approx(
        0.25 / 0.26, rel=1e-5
    )
    mask[0, 0, 1] = True  # the mean over two pixels: (0.9615 + 3/3.01) / 2
    assert float(losses.colour_loss(rendered, observed, mask, sigma=0.1)) == pytest.approx(
        (0.25 / 0.26 + 3 / 3.01) / 2, rel=1e-5
    )


def test_colour_loss_slow_reference():
    rendered, observed, mask = _images(seed=4)
    total, count = 0.0, 0
    for index in np.ndindex(*mask.shape):
        if mask[index]:
            d = float(np.linalg.norm((rendered[index] - observed[index]).numpy()))
            total += d * d / (d * d + 0.2**2)
            count += 1
    assert float(losses.colour_loss(rendered, observed, mask, 0.2)) == pytest.approx(
        total / count, rel=1e-9
    )


def test_depth_loss_units_and_mask():
    rendered = torch.full((1, 2, 2), 0.700)
    observed = rendered.clone()
    observed[0, 0, 0] += 0.002  # 2 mm = sigma: penalty 1/2
    observed[0, 1, 1] = 5.0  # an outlier outside the mask
    mask = torch.tensor([[[True, True], [True, False]]])
    assert float(losses.depth_loss(rendered, rendered, mask)) == pytest.approx(0.0, abs=1e-12)
    assert float(losses.depth_loss(rendered, observed, mask, sigma_mm=2.0)) == pytest.approx(
        0.5 / 3, rel=1e-3
    )
    assert float(losses.depth_loss(rendered, observed, mask, sigma_mm=1.0)) == pytest.approx(
        0.8 / 3, rel=1e-3
    )


def test_colour_and_depth_gradcheck():
    rendered, observed, mask = _images(seed=7)
    rendered.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: losses.colour_loss(x, observed, mask, 0.5), (rendered,)
    )
    depth = (0.7 + 0.003 * _double(2, 4, 5, seed=8)).requires_grad_()
    measured = 0.7 + 0.003 * _double(2, 4, 5, seed=9)
    assert torch.autograd.gradcheck(lambda x: losses.depth_loss(x, measured, mask, 2.0), (depth,))


# ---------------------------------------------------------------------- landmarks
def test_landmark_loss_is_in_image_heights():
    projected = torch.zeros(2, 68, 2)
    observed = projected.clone()
    observed[..., 0] += 10.0  # 10 pixels
    valid = torch.ones(2, 68, dtype=torch.bool)
    assert float(losses.landmark_loss(projected, observed, valid, 100)) == pytest.approx(0.01)
    assert float(losses.landmark_loss(projected, observed, valid, 200)) == pytest.approx(0.0025)


def test_landmark_loss_ignores_invalid_and_nan_points():
    projected = torch.zeros(1, 4, 2)
    observed = torch.tensor([[[3.0, 4.0], [np.nan, np.nan], [1000.0, 0.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, False, False, True]])
    value = losses.landmark_loss(projected, observed, valid, 10)
    assert torch.isfinite(value)
    assert float(value) == pytest.approx((25 / 100 + 0) / 2)
    projected.requires_grad_()
    losses.landmark_loss(projected, observed, valid, 10).backward()
    assert torch.isfinite(projected.grad).all()
    assert (projected.grad[0, 1:3] == 0).all()


def test_landmark_loss_shapes_are_checked():
    with pytest.raises(InputError, match="must agree"):
        losses.landmark_loss(torch.zeros(2, 68, 2), torch.zeros(2, 67, 2), torch.ones(2, 68), 10)
    with pytest.raises(InputError, match="must agree"):
        losses.landmark_loss(torch.zeros(2, 68, 2), torch.zeros(2, 68, 2), torch.ones(3, 68), 10)


def test_landmark_loss_gradcheck():
    projected = _double(3, 68, 2).requires_grad_()
    observed = _double(3, 68, 2, seed=1)
    valid = _double(3, 68, seed=2) > -0.5
    assert torch.autograd.gradcheck(
        lambda x: losses.landmark_loss(x, observed, valid, 90), (projected,)
    )


# ---------------------------------------------------------------------- prior
def test_prior_loss_mean_square_over_all_coefficients():
    value = losses.prior_loss(torch.tensor([1.0, -1.0]), torch.tensor([2.0]), torch.zeros(3))
    assert float(value) == pytest.approx((1 + 1 + 4) / 6)
    x = _double(4).requires_grad_()
    y = _double(2, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(losses.prior_loss, (x, y))


# ---------------------------------------------------------------------- offset regularisers
@pytest.fixture(scope="module")
def mesh():
    edges = torch.as_tensor(unique_edges(FACES))
    laplacian = uniform_laplacian(FACES, NUM_VERTICES).to(torch.float64)
    return edges, laplacian


def test_edge_loss_zero_for_a_translation_positive_otherwise(mesh):
    edges, _ = mesh
    translation = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64).expand(NUM_VERTICES, 3)
    assert float(losses.edge_loss(translation, edges)) == 0.0
    bumped = translation.clone()
    bumped[4, 2] += 1.0
    # vertex 4 has two edges (to 2 and 3) of the 7: each changes by 1 mm
    assert len(edges) == 7
    assert float(losses.edge_loss(bumped, edges)) == pytest.approx(2 / 7)


def test_edge_loss_slow_reference(mesh):
    edges, _ = mesh
    offsets = _double(NUM_VERTICES, 3)
    pairs = {tuple(sorted((int(f[i]), int(f[(i + 1) % 3])))) for f in FACES for i in range(3)}
    expected = np.mean([float((offsets[i] - offsets[j]).square().sum()) for i, j in pairs])
    assert float(losses.edge_loss(offsets, edges)) == pytest.approx(expected, rel=1e-12)


def test_laplacian_loss_zero_for_constant_offsets(mesh):
    _, laplacian = mesh
    constant = torch.tensor([[0.5, 0.5, -1.0]], dtype=torch.float64).expand(NUM_VERTICES, 3)
    assert float(losses.laplacian_loss(constant.contiguous(), laplacian)) == pytest.approx(
        0.0, abs=1e-12
    )  # the Laplacian is stored in float32: its rows sum to 0 within ~1e-8
    bumped = constant.clone()
    bumped[4, 0] += 1.0
    # L @ bump: 1 at vertex 4, minus 1/degree at its neighbours 2 and 3
    value = float(losses.laplacian_loss(bumped, laplacian))
    assert value > 0
    # vertex 2 neighbours {0,1,3,4} (1/4), vertex 3 neighbours {0,2,4} (1/3)
    assert value == pytest.approx((1 + (1 / 4) ** 2 + (1 / 3) ** 2) / NUM_VERTICES)


def test_offset_loss_known_value():
    offsets = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    assert float(losses.offset_loss(offsets)) == pytest.approx(12.5)


def test_regularisers_gradcheck(mesh):
    edges, laplacian = mesh
    offsets = _double(NUM_VERTICES, 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: losses.edge_loss(x, edges), (offsets,))
    assert torch.autograd.gradcheck(lambda x: losses.laplacian_loss(x, laplacian), (offsets,))
    assert torch.autograd.gradcheck(losses.offset_loss, (offsets,))
