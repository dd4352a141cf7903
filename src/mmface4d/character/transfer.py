"""Carry the face model's motion onto a registered head, keeping the head's own detail.

Displacement transfer through the dense correspondence: each head vertex moves as the point of
the fitted model it sits on (the barycentric blend of its triangle's corners' displacements),
scaled by its weight (1 where it sits on the model, else 0), and rotated and scaled from the
model's frame into the head's. The head keeps its own surface detail: only displacements
travel, never positions. Since the map is linear and sparse
(:func:`transfer_matrix`: three non-zeros per moving vertex), a frame costs one sparse product;
ARKit shapes travel by the same map (a shape is one displacement field).

Head vertices that do not sit on the model but are near it or the mouth (a mouth socket, the
inside of a lip that faces away, a band of the head beyond the model's border such as the neck
under the chin) are filled in harmonically (:class:`HarmonicFill`): their displacement is the
solution of the mesh's Laplace equation with the moving vertices and the still ones (the rest
of the head) as the boundary, so the motion fades over the head's band instead of tearing, and
the model's own skin moves as the model does up to its border (fading inside it folded the skin
where the jaw moves the border).

Extra parts (eyes, teeth, tongue: the head's connected components other than the largest) move
rigidly: per frame, the rotation and translation (Kabsch) that best carry their anchors (model
skin vertices near them, outside the lips and eyes) is applied to the whole part.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mmface4d.errors import InputError


def transfer_matrix(
    num_model_vertices: int,
    model_faces: np.ndarray,
    triangles: np.ndarray,
    barycentrics: np.ndarray,
    weights: np.ndarray,
) -> sp.csr_matrix:
    """(N, V) sparse map from model vertex displacements to head vertex displacements."""
    moving = np.flatnonzero((triangles >= 0) & (weights > 0))
    rows = np.repeat(moving, 3)
    cols = model_faces[triangles[moving]].ravel()
    values = (barycentrics[moving] * weights[moving, None]).ravel()
    return sp.csr_matrix((values, (rows, cols)), shape=(len(triangles), num_model_vertices))


class HarmonicFill:
    """Displacements of the ``free`` vertices from all the others (a harmonic extension).

    Uniform Laplacian ``L`` of the mesh; ``L_ff x_f = -L_fo x_o`` for the free rows ``f`` and
    the others ``o``, one sparse factorisation per character (a tiny diagonal term sends a free
    island with no boundary to 0).
    """

    def __init__(self, num_vertices: int, faces: np.ndarray, free: np.ndarray) -> None:
        from scipy.sparse.linalg import splu

        self.free = np.asarray(free, dtype=np.int64)
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices,) * 2)
        a = ((a + a.T) > 0).astype(np.float64).tocsr()
        lap = (sp.diags(np.asarray(a.sum(1)).ravel()) - a).tocsr()
        self.rows = lap[self.free]
        self.solver = None
        if len(self.free):
            block = self.rows[:, self.free] + sp.identity(len(self.free)) * 1e-9
            self.solver = splu(block.tocsc())

    def __call__(self, displacements: np.ndarray) -> np.ndarray:
        """Fill the free rows of (N, C) displacements in place (free rows are ignored)."""
        if self.solver is None:
            return displacements
        displacements[self.free] = 0.0
        rhs = -np.asarray(self.rows @ displacements)
        displacements[self.free] = self.solver.solve(rhs)
        return displacements


def _kabsch_batch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame rigid transforms (T, 3, 3), (T, 3) taking ``source`` (K, 3) onto ``target``
    (T, K, 3)."""
    mu_s = source.mean(0)
    mu_t = target.mean(1)
    cov = np.einsum("tkd,ke->tde", target - mu_t[:, None], source - mu_s)
    u, _, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(target), 3))
    fix[:, 2] = d
    rotation = (u * fix[:, None, :]) @ vt
    translation = mu_t - np.einsum("tde,e->td", rotation, mu_s)
    return rotation, translation


def transfer_displacements(
    matrix: sp.csr_matrix,
    displacements: np.ndarray,
    model_rest: np.ndarray,
    head_rest_model: np.ndarray,
    parts: list[np.ndarray],
    anchors: list[np.ndarray],
    fill: HarmonicFill | None = None,
) -> np.ndarray:
    """(T, N, 3) head displacements, in the model's frame and scale, of model displacements.

    Args:
        matrix: :func:`transfer_matrix`.
        displacements: (T, V, 3) model displacements from ``model_rest``.
        model_rest: (V, 3) the fitted model the displacements start from.
        head_rest_model: (N, 3) the head in the model's frame (for the rigid parts).
        parts: head vertex indices of each rigid part.
        anchors: model vertex indices each part follows.
        fill: fills in the vertices that do not sit on the model.
    """
    frames, num_v, _ = displacements.shape
    if num_v != matrix.shape[1]:
        raise InputError(
            f"the animation has {num_v} vertices, the character was registered to a model of "
            f"{matrix.shape[1]}"
        )
    flat = np.ascontiguousarray(displacements.transpose(1, 0, 2)).reshape(num_v, frames * 3)
    head = np.asarray(matrix @ flat)
    if fill is not None:
        head = fill(head)
    head = head.reshape(-1, frames, 3).transpose(1, 0, 2)
    for members, anchor in zip(parts, anchors, strict=True):
        if len(anchor) < 3:
            continue
        rest = model_rest[anchor].astype(np.float64)
        moved = rest[None] + displacements[:, anchor]
        rotation, translation = _kabsch_batch(rest, moved)
        points = head_rest_model[members]
        placed = (rotation @ points.T).transpose(0, 2, 1) + translation[:, None]
        head[:, members] = placed - points[None]
    return head


def inverted_triangles(rest: np.ndarray, frames: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(T,) number of triangles whose normal turned by more than 90 degrees from ``rest``."""

    def normals(v: np.ndarray) -> np.ndarray:
        c = v[..., faces, :]
        return np.cross(c[..., 1, :] - c[..., 0, :], c[..., 2, :] - c[..., 0, :])

    base = normals(rest)
    keep = np.linalg.norm(base, axis=-1) > 1e-14  # degenerate rest triangles have no direction
    moved = normals(frames)
    return ((moved[:, keep] * base[keep]).sum(-1) < 0).sum(1)
