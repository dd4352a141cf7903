"""The loss terms of the three-stage fit, one function each (eq. 2-4 of the paper).

Units are chosen so that the paper's weights (depth 2, prior 0.001, offset 0.01) balance; the
colour, landmark, edge and Laplacian weights differ from the paper's (3, 300, 2, 2 against 1,
100, 20, 20; measured: :mod:`mmface4d.reconstruct.config`,
:class:`~mmface4d.reconstruct.config.LossWeights`):

- :func:`colour_loss`, :func:`depth_loss`: the mean Geman-McClure penalty
  ``r^2 / (r^2 + sigma^2)`` (in [0, 1), so an outlier -- hair, a flying pixel, the background
  behind a misplaced silhouette -- costs at most 1) over the pixels where the render and the
  measurement overlap; colour residuals are RGB distances in linear [0, 1] units, depth residuals
  millimetres.
- :func:`landmark_loss`: mean squared 2D distance in units of the image height.
- :func:`prior_loss`: mean squared coefficient (the models' coefficients are scaled to unit
  variance, or to [0, 1] for ARKit-style expressions).
- :func:`edge_loss`, :func:`laplacian_loss`, :func:`offset_loss`: means over edges or vertices
  of squared per-vertex offsets in millimetres.

Shapes: C cameras, H, W image size, K landmarks, V vertices, E edges.
"""

from __future__ import annotations

import torch

from mmface4d.errors import InputError
from mmface4d.geometry.frames import MM_PER_M


def geman_mcclure(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Elementwise ``r^2 / (r^2 + sigma^2)``: quadratic near 0, bounded by 1."""
    squared = residual.square()
    return squared / (squared + sigma * sigma)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    return (values * mask).sum() / count.clamp_min(1)


def colour_loss(
    rendered: torch.Tensor, observed: torch.Tensor, mask: torch.Tensor, sigma: float = 0.1
) -> torch.Tensor:
    """Robust photometric term.

    Args:
        rendered, observed: (C, H, W, 3) linear RGB.
        mask: (C, H, W) bool, pixels where both exist.
        sigma: Geman-McClure scale (RGB distance).
    """
    distance = (rendered - observed).square().sum(-1).add(1e-12).sqrt()
    return _masked_mean(geman_mcclure(distance, sigma), mask)


def depth_loss(
    rendered_m: torch.Tensor, observed_m: torch.Tensor, mask: torch.Tensor, sigma_mm: float = 2.0
) -> torch.Tensor:
    """Robust depth term.

    Args:
        rendered_m, observed_m: (C, H, W) camera-frame depth, metres.
        mask: (C, H, W) bool, pixels rendered and measured.
        sigma_mm: Geman-McClure scale, millimetres.
    """
    return _masked_mean(geman_mcclure((rendered_m - observed_m) * MM_PER_M, sigma_mm), mask)


def landmark_loss(
    projected: torch.Tensor, observed: torch.Tensor, valid: torch.Tensor, image_height: int
) -> torch.Tensor:
    """Mean squared distance between model and detected landmarks, in image heights.

    Args:
        projected: (C, K, 2) model landmarks projected into each camera, pixels.
        observed: (C, K, 2) detected landmarks, pixels (any value where not ``valid``).
        valid: (C, K) bool.
        image_height: H, pixels.
    """
    if projected.shape != observed.shape or projected.shape[:2] != valid.shape:
        raise InputError(
            f"landmarks: projected {tuple(projected.shape)}, observed {tuple(observed.shape)} "
            f"and valid {tuple(valid.shape)} must agree"
        )
    squared = (projected - torch.nan_to_num(observed)).square().sum(-1) / float(image_height) ** 2
    return _masked_mean(squared, valid)


def prior_loss(*coefficients: torch.Tensor) -> torch.Tensor:
    """Mean squared coefficient over all the given vectors (identity, expression, albedo)."""
    flat = torch.cat([c.reshape(-1) for c in coefficients])
    return flat.square().mean()


def edge_loss(offsets_mm: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean squared change of the mesh's edge vectors caused by the offsets.

    ``|(v_i + d_i) - (v_j + d_j) - (v_i - v_j)|^2 = |d_i - d_j|^2``.

    Args:
        offsets_mm: (V, 3) per-vertex offsets, millimetres.
        edges: (E, 2) int64 vertex pairs.
    """
    return (offsets_mm[edges[:, 0]] - offsets_mm[edges[:, 1]]).square().sum(-1).mean()


def laplacian_loss(offsets_mm: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Mean squared uniform Laplacian of the offsets (their local bending).

    Args:
        offsets_mm: (V, 3), millimetres.
        laplacian: (V, V) sparse (:func:`mmface4d.geometry.uniform_laplacian`).
    """
    return torch.sparse.mm(laplacian, offsets_mm).square().sum(-1).mean()


def offset_loss(offsets_mm: torch.Tensor) -> torch.Tensor:
    """Mean squared offset length, millimetres squared: (V, 3) -> scalar."""
    return offsets_mm.square().sum(-1).mean()
