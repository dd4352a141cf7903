"""Rigid and similarity alignment of point sets (Kabsch / Umeyama)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmface4d.errors import InputError


@dataclass(frozen=True)
class Similarity:
    """``y = scale * R x + t``.

    Attributes:
        rotation: (3, 3) proper rotation.
        translation: (3,).
        scale: scalar (1 for rigid alignment).
    """

    rotation: np.ndarray
    translation: np.ndarray
    scale: float = 1.0

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) -> (..., 3)."""
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation


def fit_similarity(source: np.ndarray, target: np.ndarray, with_scale: bool = False) -> Similarity:
    """Least-squares transform taking ``source`` onto ``target`` (Umeyama 1991).

    Args:
        source: (N, 3) points, N >= 3 and not collinear.
        target: (N, 3) corresponding points.
        with_scale: also fit a uniform scale (similarity); else rigid (Kabsch).
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise InputError(
            f"need two (N >= 3, 3) point sets of one shape, got {src.shape}, {dst.shape}"
        )
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    fix = np.diag([1.0, 1.0, d])
    rotation = u @ fix @ vt
    var = (a**2).sum() / len(src)
    scale = float((sig * np.diag(fix)).sum() / var) if with_scale and var > 0 else 1.0
    return Similarity(rotation, mu_d - scale * rotation @ mu_s, scale)


def stabilise(vertices: np.ndarray, anchors: np.ndarray, reference: int = 0) -> np.ndarray:
    """Remove rigid head motion: align every frame to frame ``reference`` on ``anchors``.

    Args:
        vertices: (T, V, 3).
        anchors: vertex indices that move rigidly with the head (e.g. forehead and nose).

    Returns:
        (T, V, 3) stabilised vertices.
    """
    verts = np.asarray(vertices, dtype=np.float64)
    ref = verts[reference, anchors]
    out = np.empty_like(verts)
    for t in range(len(verts)):
        out[t] = fit_similarity(verts[t, anchors], ref).apply(verts[t])
    return out.astype(np.asarray(vertices).dtype)


def axis_angle_matrix(rotation: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of axis-angle vectors (Rodrigues), differentiable, smooth at zero.

    Args:
        rotation: (..., 3) axis times angle, radians.

    Returns:
        (..., 3, 3).
    """
    if rotation.shape[-1] != 3:
        raise InputError(f"axis-angle vectors must be (..., 3), got {tuple(rotation.shape)}")
    squared = rotation.square().sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = squared < 1e-8
    safe = torch.where(small, torch.ones_like(squared), squared)
    angle = safe.sqrt()
    # sin(a)/a and (1 - cos(a))/a^2, with their Taylor series near zero
    first = torch.where(small, 1.0 - squared / 6.0, torch.sin(angle) / angle)
    second = torch.where(small, 0.5 - squared / 24.0, (1.0 - torch.cos(angle)) / safe)
    x, y, z = rotation.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(cross)
    return eye + first * cross + second * (cross @ cross)
