"""Reconstruction error against a known truth (studio captures), per face region.

The error of a vertex is its Euclidean distance to the same vertex of the truth (the studio
films meshes of the fitted model's topology), in millimetres. Per region: the mean over the
region's vertices and frames, and the 95th percentile.
"""

from __future__ import annotations

import numpy as np

from mmface4d.errors import InputError
from mmface4d.geometry.frames import MM_PER_M

#: Regions reported (those of the face model that exist).
REGIONS = ("face", "lip", "upper_face", "eyes", "nose", "cheeks", "chin", "forehead")


def vertex_distances_mm(vertices: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T, V) distances in millimetres of two (T, V, 3) metre sequences (or (V, 3) -> (V,))."""
    vertices, truth = np.asarray(vertices), np.asarray(truth)
    if vertices.shape != truth.shape or vertices.shape[-1] != 3:
        raise InputError(
            f"reconstruction {vertices.shape} and truth {truth.shape} must both be (T, V, 3)"
        )
    return np.linalg.norm(vertices.astype(np.float64) - truth, axis=-1) * MM_PER_M


def vertex_errors(
    vertices: np.ndarray, truth: np.ndarray, regions: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Per region ``{"mean_mm", "p95_mm"}`` of (T, V, 3) reconstructions against the truth."""
    distances = vertex_distances_mm(vertices, truth)
    out = {}
    for name in REGIONS:
        if name in regions and len(regions[name]):
            values = distances[..., regions[name]]
            out[name] = {
                "mean_mm": round(float(values.mean()), 4),
                "p95_mm": round(float(np.percentile(values, 95)), 4),
            }
    return out
