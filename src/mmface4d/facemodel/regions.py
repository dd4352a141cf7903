"""Named vertex regions from one reproducible rule: the 68 iBUG landmarks of the neutral face.

Every model (BFM, ICT, synth, a user's own) gets its regions from :func:`landmark_regions`, so a
region means the same thing on every topology. The source supplies only ``face`` (the facial
surface: all of BFM-front, ICT's face area, the skin of the synth face). The rules work in a
face-aligned frame built from the landmarks (up: chin -> eye centres; right: the jaw contour's
ends), so they do not depend on a model's axis convention, and every distance is a multiple of
the inter-ocular distance ``d`` (centre of one eye's six landmarks to the other's):

- ``lip``: face vertices whose frontal projection lies inside the outer-lip contour (landmarks
  48-59) or within ``0.10 d`` of it.
- ``eyes``: face vertices inside either eye contour (36-41, 42-47) or within ``0.15 d`` of it
  (lids and eye corners).
- ``upper_face``: face vertices above the nose mid-bridge (landmark 29) along the up axis.
- ``forehead``: face vertices above the highest brow landmark (17-26).
- ``nose``: face vertices inside the polygon bridge-top (27), the nostril outline (31-35) and
  the bridge again, widened by ``0.10 d``.
- ``chin``: face vertices below the lowest outer-lip landmark (57) and within the jaw contour's
  middle (between landmarks 6 and 10 across).
- ``cheeks``: face vertices between the eye-bottom and mouth-corner levels, laterally outside
  the nose and lip regions.

Indices here are 0-based (iBUG's 1-based numbers minus one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError

REQUIRED_REGIONS = ("lip", "upper_face", "face", "eyes")

RIGHT_EYE = np.arange(36, 42)  # subject's right eye (image left)
LEFT_EYE = np.arange(42, 48)
OUTER_LIP = np.arange(48, 60)
INNER_LIP = np.arange(60, 68)
BROWS = np.arange(17, 27)
JAW = np.arange(0, 17)
#: Facing inner-lip landmark pairs (upper, lower): the inner-lip gap is their distance.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def inner_lip_pairs(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P,) upper and (P,) lower vertex indices of :data:`INNER_LIP_PAIRS`.

    Args:
        landmarks: (68,) landmark vertex indices of a face model.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.shape != (68,):
        raise InputError(f"landmarks: expected 68 vertex indices, found shape {landmarks.shape}")
    upper = landmarks[[a for a, _ in INNER_LIP_PAIRS]]
    lower = landmarks[[b for _, b in INNER_LIP_PAIRS]]
    return upper.astype(np.int64), lower.astype(np.int64)


def face_frame(landmarks_3d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A face-aligned frame from the 68 landmark positions.

    Args:
        landmarks_3d: (68, 3) landmark positions.

    Returns:
        (right, up, forward, d): unit axes (3,) each (right points to the subject's left, as
        +x of the project's convention) and the inter-ocular distance ``d``.
    """
    lm = np.asarray(landmarks_3d, dtype=np.float64)
    if lm.shape != (68, 3):
        raise InputError(f"landmarks must be (68, 3), got {lm.shape}")
    eye_r = lm[RIGHT_EYE].mean(0)
    eye_l = lm[LEFT_EYE].mean(0)
    d = float(np.linalg.norm(eye_l - eye_r))
    if d <= 0:
        raise InputError("landmarks: the two eye centres coincide; cannot build a face frame")
    up = (eye_r + eye_l) / 2 - lm[8]
    up /= np.linalg.norm(up)
    right = lm[16] - lm[0]
    right -= right.dot(up) * up
    right /= np.linalg.norm(right)
    forward = np.cross(right, up)
    return right, up, forward, d


def _polygon_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) distance of 2D points to a closed polygon's edges (0 inside is not implied)."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a  # (E, 2)
    ap = points[:, None, :] - a[None]  # (N, E, 2)
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-20), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1).min(1)


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: 2D points inside a closed polygon (even-odd rule: a ray to +x crosses its
    edges an odd number of times). Points on an edge may fall either way; the callers add a
    margin around the polygon, which holds them."""
    x, y = points[:, :1], points[:, 1:]  # (N, 1)
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    straddles = (a[:, 1] > y) != (b[:, 1] > y)  # (N, E): the edge spans the point's height
    with np.errstate(divide="ignore", invalid="ignore"):  # horizontal edges never straddle
        x_cross = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (straddles & (x < x_cross)).sum(axis=1) % 2 == 1


def _inside_or_near(points2d: np.ndarray, polygon2d: np.ndarray, margin: float) -> np.ndarray:
    inside = _inside_polygon(points2d, polygon2d)
    return inside | (_polygon_distance(points2d, polygon2d) <= margin)


def landmark_regions(
    vertices: np.ndarray, landmarks: np.ndarray, face: np.ndarray
) -> dict[str, np.ndarray]:
    """Apply the module's rules to a neutral mesh.

    Args:
        vertices: (V, 3) neutral shape.
        landmarks: (68,) landmark vertex indices.
        face: (N,) indices of the facial surface (the source's definition).

    Returns:
        name -> sorted int64 vertex indices, for ``face``, ``lip``, ``eyes``, ``upper_face``,
        ``forehead``, ``nose``, ``chin`` and ``cheeks``.
    """
    verts = np.asarray(vertices, dtype=np.float64)
    face = np.unique(np.asarray(face, dtype=np.int64))
    lm3 = verts[np.asarray(landmarks, dtype=np.int64)]
    right, up, _, d = face_frame(lm3)
    origin = lm3[30]  # nose tip
    rel = verts[face] - origin
    p2 = np.stack([rel @ right, rel @ up], axis=1)  # frontal projection of the face vertices
    l2 = np.stack([(lm3 - origin) @ right, (lm3 - origin) @ up], axis=1)
    x, y = p2[:, 0], p2[:, 1]

    lip = _inside_or_near(p2, l2[OUTER_LIP], 0.10 * d)
    eyes = _inside_or_near(p2, l2[RIGHT_EYE], 0.15 * d) | _inside_or_near(
        p2, l2[LEFT_EYE], 0.15 * d
    )
    upper = y > l2[29, 1]
    forehead = y > l2[BROWS, 1].max()
    nose_outline = np.concatenate([l2[[27]], l2[31:36], l2[[27]]])
    nose = _inside_or_near(p2, nose_outline, 0.10 * d)
    chin = (y < l2[57, 1]) & (x > l2[6, 0]) & (x < l2[10, 0])
    eye_bottom = min(l2[[40, 41], 1].min(), l2[[46, 47], 1].min())
    cheek_band = (y < eye_bottom) & (y > l2[[48, 54], 1].min())
    lateral = np.abs(x) > np.abs(l2[[31, 35], 0]).max() + 0.10 * d
    cheeks = cheek_band & lateral & ~lip & ~nose

    named = {
        "lip": lip,
        "eyes": eyes,
        "upper_face": upper,
        "forehead": forehead,
        "nose": nose,
        "chin": chin,
        "cheeks": cheeks,
    }
    regions = {"face": face}
    for name, mask in named.items():
        if not mask.any():
            raise InputError(f"region rule {name!r} selected no vertex; are the landmarks right?")
        regions[name] = face[mask]
    return regions


def save_region_indices(regions: dict[str, np.ndarray], directory: str | Path) -> list[str]:
    """Write each region as ``<name>.txt`` (one 0-based vertex index per line); return paths."""
    out = Path(directory)
    paths = []
    for name, idx in sorted(regions.items()):
        path = out / f"{name}.txt"
        with atomic_path(path) as tmp:
            np.savetxt(tmp, np.asarray(idx, dtype=np.int64), fmt="%d")
        paths.append(str(path))
    return paths
