"""Differentiable per-face and per-vertex quantities of triangle meshes."""

from __future__ import annotations

import numpy as np
import torch


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted face normals (not normalised: length = 2 x triangle area).

    Args:
        vertices: (B, V, 3).
        faces: (F, 3) int64.

    Returns:
        (B, F, 3) cross products ``(v1 - v0) x (v2 - v0)``.
    """
    v0 = vertices[:, faces[:, 0]]
    v1 = vertices[:, faces[:, 1]]
    v2 = vertices[:, faces[:, 2]]
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit vertex normals: the area-weighted mean of adjacent face normals.

    Args:
        vertices: (B, V, 3) or (V, 3).
        faces: (F, 3) int64 (counter-clockwise seen from outside).

    Returns:
        Unit normals of the input's shape; isolated vertices get a zero vector.
    """
    squeeze = vertices.dim() == 2
    verts = vertices.unsqueeze(0) if squeeze else vertices
    faces = torch.as_tensor(faces, device=verts.device, dtype=torch.long)
    fn = face_normals(verts, faces)  # (B, F, 3)
    normals = torch.zeros_like(verts)
    for corner in range(3):
        normals = normals.index_add(1, faces[:, corner], fn)
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(eps)
    return normals[0] if squeeze else normals


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) int64 undirected edges of a triangle mesh, each once, smaller index first."""
    faces = np.asarray(faces, dtype=np.int64)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    return np.unique(edges, axis=0)
