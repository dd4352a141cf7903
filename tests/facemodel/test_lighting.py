import math

import numpy as np
import torch

from mmface4d.facemodel import sh_basis, sh_shade


def test_sh_basis_hand_computed():
    # normal along +z: only the constant, the z band and the (3z^2 - 1) band are non-zero
    basis = sh_basis(torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))[0].numpy()
    a0c0 = math.pi / math.sqrt(4 * math.pi)
    a1c1 = (2 * math.pi / math.sqrt(3)) * (math.sqrt(3) / math.sqrt(4 * math.pi))
    a2c2 = (2 * math.pi / math.sqrt(8)) * (3 * math.sqrt(5) / math.sqrt(12 * math.pi))
    expected = [a0c0, 0, a1c1, 0, 0, 0, 0.5 * a2c2 / math.sqrt(3) * 2, 0, 0]
    np.testing.assert_allclose(basis, expected, rtol=1e-12)
    # a diagonal normal exercises the mixed terms
    n = np.array([1.0, 2.0, 2.0]) / 3.0
    x, y, z = n
    b = sh_basis(torch.tensor(n))
    np.testing.assert_allclose(b[4].item(), a2c2 * x * y)
    np.testing.assert_allclose(b[8].item(), 0.5 * a2c2 * (x * x - y * y))


def test_sh_shade_ambient_and_channels():
    albedo = torch.tensor([[[0.5, 0.25, 1.0]]], dtype=torch.float64)
    normal = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)
    a0c0 = math.sqrt(math.pi) / 2
    out = sh_shade(albedo, normal, torch.zeros(1, 27, dtype=torch.float64))
    np.testing.assert_allclose(out[0, 0].numpy(), 0.8 * a0c0 * albedo[0, 0].numpy())
    gamma = torch.zeros(1, 27, dtype=torch.float64)
    gamma[0, 9 + 2] = 1.0  # green channel, z band
    out = sh_shade(albedo, normal, gamma)
    a1c1 = math.sqrt(3) * (2 * math.pi / math.sqrt(3)) / math.sqrt(4 * math.pi)
    np.testing.assert_allclose(out[0, 0, 1].item(), (0.8 * a0c0 + a1c1) * 0.25)
    np.testing.assert_allclose(out[0, 0, 0].item(), 0.8 * a0c0 * 0.5)


def test_sh_shade_gradcheck():
    albedo = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    normals = torch.nn.functional.normalize(torch.randn(1, 4, 3, dtype=torch.float64), dim=-1)
    normals.requires_grad_(True)
    gamma = torch.randn(1, 27, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sh_shade, (albedo, normals, gamma))
