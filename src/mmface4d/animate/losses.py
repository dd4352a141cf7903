"""Lip-sync training losses added to any registered model's own loss (the ``loss`` section).

A model trained only on the mean squared vertex error (eq. 8) learns the average mouth of the
speech it hears: brief events such as the lip closure of p, b and m are smoothed away, because
a few frames of a few lip vertices weigh little in a mean over the whole face. These terms look
where viewers look (all in squared :data:`~mmface4d.animate.model.LOSS_UNIT`, mm^2):

- **lip gap** (``gap_weight``): squared error of the inner-lip gap, the distance between each
  upper and lower inner-lip landmark pair (:data:`mmface4d.facemodel.regions.INNER_LIP_PAIRS`),
  frames where the truth's lips are shut (gap below ``closed_mm``) weighted
  ``1 + closure_boost``;
- **velocity** (``velocity_weight``): squared error of the frame-to-frame vertex motion, mean over
  vertices (the field's answer to over-smoothed, lagging mouths; FaceFormer descendants use it).

All weights 0 is the paper's setting (eq. 8 alone). The losses apply to every registered model
alike (the Table II baselines get the same terms), through :func:`lip_sync_loss`.

Shapes: B batch, T frames, V vertices, P landmark pairs.
"""

from __future__ import annotations

import torch

from mmface4d.animate.config import LossConfig
from mmface4d.animate.model import LOSS_UNIT


def lip_gaps(vertices: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """(B, T, V, 3) metres -> (B, T, P) inner-lip gaps in :data:`LOSS_UNIT` (mm)."""
    diff = vertices[..., upper, :] - vertices[..., lower, :]
    return torch.linalg.vector_norm(diff, dim=-1) / LOSS_UNIT


def lip_sync_loss(
    config: LossConfig,
    prediction: torch.Tensor,
    target: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The enabled lip-sync terms, weighted (sum them into the total), by name.

    Args:
        config: the weights.
        prediction, target: (B, T, V, 3) metres.
        upper, lower: (P,) inner-lip vertex indices
            (:func:`mmface4d.facemodel.regions.inner_lip_pairs`).

    Returns:
        ``{"lip_gap": ..., "velocity": ...}`` for the enabled terms, each a weighted scalar.
    """
    terms: dict[str, torch.Tensor] = {}
    if config.gap_weight > 0:
        gap_pred = lip_gaps(prediction, upper, lower)
        gap_true = lip_gaps(target, upper, lower)
        closed = (gap_true < config.closed_mm).to(prediction.dtype)
        weight = 1.0 + config.closure_boost * closed
        terms["lip_gap"] = config.gap_weight * (weight * (gap_pred - gap_true) ** 2).mean()
    if config.velocity_weight > 0 and prediction.shape[1] > 1:
        motion_pred = torch.diff(prediction, dim=1) / LOSS_UNIT
        motion_true = torch.diff(target, dim=1) / LOSS_UNIT
        error = ((motion_pred - motion_true) ** 2).sum(-1).mean()
        terms["velocity"] = config.velocity_weight * error
    return terms
