"""Normals of triangle meshes against a naive per-face loop, and their gradients."""

from __future__ import annotations

import numpy as np
import torch

from mmface4d.geometry import face_normals, vertex_normals
from mmface4d.geometry.mesh import vertex_normals_by_coordinate


def _mesh(seed: int = 0, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A small random mesh in float64: (batch, 12, 3) vertices, (14, 3) faces; vertex 11 is
    isolated."""
    rng = np.random.default_rng(seed)
    verts = torch.tensor(rng.normal(size=(batch, 12, 3)))
    faces = torch.tensor(np.stack([rng.permutation(11)[:3] for _ in range(14)]))
    return verts, faces


def _reference_vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Loop over faces: add each face's cross product to its corners, normalise."""
    out = np.zeros_like(verts)
    for a, b, c in faces:
        normal = np.cross(verts[b] - verts[a], verts[c] - verts[a])
        out[[a, b, c]] += normal
    length = np.linalg.norm(out, axis=-1, keepdims=True)
    return out / np.maximum(length, 1e-12)


def test_vertex_normals_match_a_per_face_loop():
    verts, faces = _mesh()
    normals = vertex_normals(verts, faces)
    assert normals.shape == verts.shape and normals.is_contiguous()
    for b in range(len(verts)):
        expected = _reference_vertex_normals(verts[b].numpy(), faces.numpy())
        np.testing.assert_allclose(normals[b].numpy(), expected, atol=1e-12)
    assert (normals[:, 11] == 0).all()  # isolated vertex
    torch.testing.assert_close(vertex_normals(verts[1], faces), normals[1])  # (V, 3) input
    by_coordinate = vertex_normals_by_coordinate(verts.permute(2, 0, 1), faces)
    torch.testing.assert_close(by_coordinate.permute(1, 2, 0), normals)


def test_face_normals_are_corner_cross_products():
    verts, faces = _mesh(1)
    normals = face_normals(verts, faces)
    v0, v1, v2 = (verts[:, faces[:, k]] for k in range(3))
    torch.testing.assert_close(normals, torch.cross(v1 - v0, v2 - v0, dim=-1))


def test_vertex_normals_gradcheck():
    verts, faces = _mesh(2)
    verts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: vertex_normals(v, faces), (verts,))
    assert torch.autograd.gradcheck(lambda v: face_normals(v, faces), (verts,))
