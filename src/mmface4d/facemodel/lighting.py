"""Second-order spherical-harmonics lighting (the Deep3DFaceRecon / MMFace4D convention).

Nine bands per colour channel; a lighting vector ``gamma`` has 27 values (3 channels x 9 bands).
``0.8`` is added to each channel's first (ambient) coefficient, so ``gamma = 0`` is a plain,
evenly lit face.
"""

from __future__ import annotations

import math

import torch

from mmface4d.errors import InputError

SH_BANDS = 9
SH_COEFFS = 3 * SH_BANDS
AMBIENT_OFFSET = 0.8

_A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
_C = (
    1 / math.sqrt(4 * math.pi),
    math.sqrt(3.0) / math.sqrt(4 * math.pi),
    3 * math.sqrt(5.0) / math.sqrt(12 * math.pi),
)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The nine SH basis values of unit normals.

    Args:
        normals: (..., 3) unit normals (x, y, z).

    Returns:
        (..., 9) basis [a0c0, -a1c1 y, a1c1 z, -a1c1 x, a2c2 xy, -a2c2 yz,
        0.5 a2c2/sqrt(3) (3z^2-1), -a2c2 xz, 0.5 a2c2 (x^2-y^2)].
    """
    if normals.shape[-1] != 3:
        raise InputError(f"normals must be (..., 3), got {tuple(normals.shape)}")
    x, y, z = normals.unbind(-1)
    a0c0 = _A[0] * _C[0]
    a1c1 = _A[1] * _C[1]
    a2c2 = _A[2] * _C[2]
    return torch.stack(
        [
            torch.full_like(x, a0c0),
            -a1c1 * y,
            a1c1 * z,
            -a1c1 * x,
            a2c2 * x * y,
            -a2c2 * y * z,
            0.5 * a2c2 / math.sqrt(3.0) * (3 * z * z - 1),
            -a2c2 * x * z,
            0.5 * a2c2 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_shade(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Colour = (SH basis . gamma) * albedo, per channel.

    Args:
        albedo: (B, N, 3) RGB albedo.
        normals: (B, N, 3) unit normals.
        gamma: (B, 27) lighting, channel-major (R bands 0..8, G, B); 0.8 is added to each
            channel's first coefficient here.

    Returns:
        (B, N, 3) shaded colour (not clamped).
    """
    if gamma.dim() != 2 or gamma.shape[1] != SH_COEFFS:
        raise InputError(f"SH lighting must be (B, {SH_COEFFS}), got {tuple(gamma.shape)}")
    if albedo.shape != normals.shape or albedo.dim() != 3 or albedo.shape[-1] != 3:
        raise InputError(
            f"albedo and normals must both be (B, N, 3), got {tuple(albedo.shape)} "
            f"and {tuple(normals.shape)}"
        )
    coeffs = gamma.reshape(-1, 3, SH_BANDS).clone()
    coeffs[:, :, 0] = coeffs[:, :, 0] + AMBIENT_OFFSET
    irradiance = torch.einsum("bnk,bck->bnc", sh_basis(normals), coeffs)
    return irradiance * albedo
