"""Register the face model to a user's neutral head mesh and build the dense correspondence.

Steps (all in the face model's frame, metres; the head is brought there by the similarity):

1. **Landmarks.** MediaPipe's 468 points on both the head and the model's neutral
   (:mod:`mmface4d.character.landmarks`), or the user's 68 iBUG points against the model's
   landmark vertices. Points on the face's silhouette (MediaPipe's face oval, iBUG's jaw) weigh
   :data:`SILHOUETTE_WEIGHT`: where a contour meets the silhouette depends on the face's shape.
2. **Similarity** (Umeyama) of the model's landmarks onto the head's.
3. **Identity**: a few rounds of closest points and one linear solve for the identity
   coefficients (a unit Gaussian prior, weight :attr:`RegisterConfig.identity_prior`), landmark
   and point-to-plane terms, then the similarity again.
4. **Non-rigid**: per-vertex offsets of the model's skin, rounds of closest points (both ways:
   model vertex to head surface, head vertex to model surface) with a Laplacian stiffness that
   falls over :attr:`RegisterConfig.stiffness`; each round is one sparse linear solve.
5. **Correspondence**: each head vertex's closest point on the fitted model (triangle and
   barycentrics) and a weight: 1 on the face, falling to 0 where the head leaves the model's
   surface (back of the head, ears, neck) or the model's skin ends, smoothed over the head.

Around the mouth, closest points never pair an upper lip with a lower one: the vertices within
reach of the mouth are labelled by their geodesic distance to the outer upper-lip and outer
lower-lip landmarks (on a mesh whose mouth is cut open, the inside of a lip is reached only
through its own lip), on the model and on the head alike, and pairs must agree.

The head's extra parts (connected components other than the largest one: eyes, teeth, tongue)
are not registered: they move rigidly with their neighbourhood (:mod:`.transfer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from mmface4d.character.landmarks import SurfaceLandmarks, inner_frame
from mmface4d.character.mesh import connected_components
from mmface4d.facemodel.landmark_maps import MEDIAPIPE468_OF_IBUG68
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.regions import OUTER_LIP
from mmface4d.geometry.align import Similarity, fit_similarity
from mmface4d.geometry.mesh import edge_length_graph, unique_edges

#: Weight of landmarks on the face's silhouette (MediaPipe's face oval, iBUG's jaw contour).
SILHOUETTE_WEIGHT = 0.1
#: Outer-lip iBUG landmarks that seed the upper and the lower lip labels.
UPPER_LIP_SEEDS = np.array([49, 50, 51, 52, 53])
LOWER_LIP_SEEDS = np.array([55, 56, 57, 58, 59])


@dataclass
class RegisterConfig:
    """Settings of :func:`register`."""

    identity_rounds: int = 4
    """Rounds of closest points + identity solve + similarity."""
    identity_prior: float = 1e-4
    """Weight of the unit Gaussian prior on the identity coefficients (m^2 per unit^2)."""
    stiffness: tuple[float, ...] = (30.0, 10.0, 5.0, 3.0, 2.0)
    """Laplacian stiffness of the non-rigid rounds, one round each, stiff to supple."""
    max_distance_m: float = 0.012
    """Closest-point pairs farther apart than this are not used."""
    max_normal_angle: float = 60.0
    """Closest-point pairs whose normals differ by more than this (degrees) are not used."""
    landmark_weight: float = 3.0
    """Weight of a landmark pair relative to a surface pair."""
    reach_m: tuple[float, float] = (0.004, 0.015)
    """Head vertices within the first distance of the fitted model (facing its way) sit on it;
    those beyond the second (and away from the mouth) stay still; those between, and those
    near the mouth, are filled in harmonically."""
    fade_m: float = 0.03
    """Head vertices that do not sit on the model but lie within this geodesic distance (over
    the head) of those that do are filled in harmonically too: the model's motion fades over
    this band of the head (a neck below a chin that the jaw moves) instead of inside the model's
    own border, where it would fold the skin."""


@dataclass
class Registration:
    """The face model fitted to a head, and where each head vertex sits on it.

    Attributes:
        transform: model frame -> head frame (metres): ``head = scale * R @ model + t``.
        fitted: (V, 3) the model fitted to the head, in the model frame (the template to animate).
        identity: (K_id,) identity coefficients of the fit before the non-rigid step.
        triangles: (N,) int64 model triangle under each head vertex (-1 where it does not move).
        barycentrics: (N, 3) its corner weights.
        weights: (N,) how much each head vertex follows the model's motion: 1 where it sits on
            the model, 0 elsewhere (those move by the fill or stay still).
        free: head vertices that do not sit on the model (farther than the first
            :attr:`RegisterConfig.reach_m`, facing another way, or on the other lip) but are
            near it or the mouth: they move as the harmonic blend of their neighbours.
        parts: head vertex indices of each extra part (eyes, teeth, ...), moved rigidly.
        part_anchors: model vertex indices each part follows rigidly.
        head_landmarks: (68, 3) the head's iBUG landmarks (head frame, metres).
        errors: fit errors (millimetres): ``surface_mean``, ``surface_median``, ``surface_p95``
            (head face vertices to the fitted model), ``landmark_mean`` (fitted model landmarks
            to the head's).
        surface_error: (N,) each head vertex's distance to the fitted model, mm (NaN where the
            vertex is not on the face).
    """

    transform: Similarity
    fitted: np.ndarray
    identity: np.ndarray
    triangles: np.ndarray
    barycentrics: np.ndarray
    weights: np.ndarray
    free: np.ndarray
    parts: list[np.ndarray]
    part_anchors: list[np.ndarray]
    head_landmarks: np.ndarray
    errors: dict[str, float]
    surface_error: np.ndarray
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- mesh helpers
def laplacian(num_vertices: int, faces: np.ndarray) -> sp.csr_matrix:
    """Uniform graph Laplacian ``I - D^-1 A`` (rows sum to 0)."""
    e = unique_edges(faces)
    a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices,) * 2)
    a = (a + a.T).tocsr()
    degree = np.asarray(a.sum(1)).ravel()
    inv = sp.diags(1.0 / np.maximum(degree, 1))
    return (sp.identity(num_vertices) - inv @ a).tocsr()


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    corners = vertices[faces]
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    out = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-20)


def outward(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether the triangles are wound with normals pointing away from the mesh's centre."""
    corners = vertices[faces]
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return float((n * (corners.mean(1) - vertices.mean(0))).sum()) >= 0


class SurfaceIndex:
    """Closest points on a triangle mesh (candidates from a k-d tree of triangle centres)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, candidates: int = 12) -> None:
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.faces = faces
        corners = self.vertices[faces]
        self.tree = cKDTree(corners.mean(1))
        self.candidates = min(candidates, len(faces))
        n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        self.normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)

    def closest_masked(
        self, points: np.ndarray, triangle_label: np.ndarray | None, point_label=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) triangle, (N, 3) barycentrics and (N,) distance of each point's closest point.

        With labels, a point labelled 0 or 1 takes only triangles of its own label or unlabelled
        (-1) ones, when any of its candidates is such.
        """
        points = np.asarray(points, dtype=np.float64)
        _, cand = self.tree.query(points, k=self.candidates)
        cand = cand.reshape(len(points), -1)
        corners = self.vertices[self.faces[cand]]  # (N, k, 3, 3)
        pts = np.repeat(points[:, None], cand.shape[1], 1)
        closest = _closest_on_triangles(pts.reshape(-1, 3), corners.reshape(-1, 3, 3))
        dist = np.linalg.norm(closest - pts.reshape(-1, 3), axis=1).reshape(cand.shape)
        if triangle_label is not None and point_label is not None:
            tl = triangle_label[cand]
            pl = np.asarray(point_label)[:, None]
            bad = (pl >= 0) & (tl >= 0) & (tl != pl)
            bad[bad.all(1)] = False  # no candidate of its side near: take the nearest anyway
            dist = np.where(bad, np.inf, dist)
        pick = dist.argmin(1)
        rows = np.arange(len(points))
        tri = cand[rows, pick]
        best = closest.reshape(len(points), -1, 3)[rows, pick]
        bary = _barycentric(best, self.vertices[self.faces[tri]])
        return tri, bary, dist[rows, pick]


def _closest_on_triangles(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N, 3) closest point on each triangle (N, 3, 3) to each point (N, 3) (Ericson's regions)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        v = vb * denom
        w = vc * denom
        out = a + ab * v[:, None] + ac * w[:, None]
        # edge regions
        vab = d1 / (d1 - d3)
        e_ab = a + ab * vab[:, None]
        wac = d2 / (d2 - d6)
        e_ac = a + ac * wac[:, None]
        wbc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        e_bc = b + (c - b) * wbc[:, None]
    conds = [
        ((d1 <= 0) & (d2 <= 0), a),
        ((d3 >= 0) & (d4 <= d3), b),
        ((d6 >= 0) & (d5 <= d6), c),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), e_ab),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), e_ac),
        ((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), e_bc),
    ]
    done = np.zeros(len(p), bool)
    result = out.copy()
    for cond, value in conds:
        take = cond & ~done
        result[take] = value[take]
        done |= take
    bad = ~np.isfinite(result).all(1)
    result[bad] = a[bad]
    return result


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denom = d00 * d11 - d01 * d01
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    bary = np.clip(np.stack([1 - w1 - w2, w1, w2], 1), 0, 1)
    return bary / np.maximum(bary.sum(1, keepdims=True), 1e-12)


def lip_labels(
    vertices: np.ndarray, faces: np.ndarray, ibug: np.ndarray, reach: float = 0.7
) -> np.ndarray:
    """(V,) 0 upper lip side, 1 lower lip side, -1 out of the mouth's reach.

    Vertices within ``reach`` mouth widths of the mouth's centre are labelled by which set of
    outer-lip landmarks is geodesically nearer (the nearest vertices to the landmarks seed the
    search).
    """
    tree = cKDTree(vertices)
    mouth = ibug[OUTER_LIP]
    width = float(np.linalg.norm(ibug[54] - ibug[48]))
    centre = mouth.mean(0)
    near = np.linalg.norm(vertices - centre, axis=1) <= reach * width * 1.5
    labels = np.full(len(vertices), -1, dtype=np.int64)
    if not near.any():
        return labels
    graph = edge_length_graph(vertices, faces)
    upper = np.unique(tree.query(ibug[UPPER_LIP_SEEDS])[1])
    lower = np.unique(tree.query(ibug[LOWER_LIP_SEEDS])[1])
    limit = 2.5 * width
    du = dijkstra(graph, indices=upper, min_only=True, limit=limit)
    dl = dijkstra(graph, indices=lower, min_only=True, limit=limit)
    labelled = near & (np.isfinite(du) | np.isfinite(dl))
    labels[labelled] = (dl < du)[labelled].astype(np.int64)
    return labels


# ----------------------------------------------------------------------------- registration
def _pairs(
    model: FaceModel,
    model_marks: SurfaceLandmarks | None,
    head_marks: SurfaceLandmarks | None,
    head_vertices: np.ndarray,
    head_faces: np.ndarray,
    file_points: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Landmark pairs: model triangles (K,), barycentrics (K, 3), head points (K, 3), weights."""
    faces = model.faces
    if file_points is not None:
        # the model's landmark vertices as (triangle, one-hot barycentrics)
        tri_of = np.full(model.num_vertices, -1)
        for k in range(3):
            tri_of[faces[:, k]] = np.arange(len(faces))
        tri = tri_of[model.landmarks]
        bary = (faces[tri] == model.landmarks[:, None]).astype(np.float64)
        weights = np.ones(68)
        weights[:17] = SILHOUETTE_WEIGHT
        return tri, bary, file_points, weights
    assert model_marks is not None and head_marks is not None
    valid = model_marks.valid & head_marks.valid
    points = head_marks.positions(head_vertices, head_faces)
    weights = np.ones(len(valid))
    weights[_face_oval()] = SILHOUETTE_WEIGHT
    return (
        model_marks.triangles[valid],
        model_marks.barycentrics[valid],
        points[valid],
        weights[valid],
    )


def _face_oval() -> np.ndarray:
    """MediaPipe face-mesh indices on the face's outline (the silhouette in a front view)."""
    try:
        from mediapipe.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

        return np.unique(np.asarray(list(FACEMESH_FACE_OVAL)).ravel())
    except ImportError:  # pragma: no cover - landmarks came from MediaPipe, so it is there
        return np.asarray(MEDIAPIPE468_OF_IBUG68[:17])


def _apply_bary(vertices: np.ndarray, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray):
    return np.einsum("kc,kcd->kd", bary, vertices[faces[tri]])


def _bary_matrix(num_vertices: int, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray):
    """(K, V) sparse matrix taking vertex values to the barycentric points."""
    rows = np.repeat(np.arange(len(tri)), 3)
    return sp.csr_matrix((bary.ravel(), (rows, faces[tri].ravel())), shape=(len(tri), num_vertices))


def register(
    head_vertices: np.ndarray,
    head_faces: np.ndarray,
    model: FaceModel,
    head_marks: SurfaceLandmarks | None = None,
    model_marks: SurfaceLandmarks | None = None,
    landmark_points: np.ndarray | None = None,
    config: RegisterConfig | None = None,
    name: str = "mesh",
    progress=None,
) -> Registration:
    """Fit ``model`` to the head and build the correspondence (see the module doc).

    Args:
        head_vertices: (N, 3) the head in metres, its own pose.
        head_faces: (F, 3) its triangles.
        model: the face model the animation comes in.
        head_marks, model_marks: detected landmarks on the head and on the model's neutral.
        landmark_points: (68, 3) iBUG landmarks of the head (a user's file) instead.
        config: settings.
        name: the head's name for errors.
        progress: optional callable(str) told of each step.
    """
    cfg = config or RegisterConfig()
    say = progress or (lambda _msg: None)
    head_v = np.asarray(head_vertices, dtype=np.float64)
    head_f = np.asarray(head_faces, dtype=np.int64)
    if not outward(head_v, head_f):
        head_f_oriented = head_f[:, ::-1]
    else:
        head_f_oriented = head_f
    labels = connected_components(head_v, head_f)
    main = labels == 0
    main_faces = head_f_oriented[main[head_f_oriented].all(1)]

    tri_m, bary_m, head_pts, lm_w = _pairs(
        model, model_marks, head_marks, head_v, head_f, landmark_points
    )
    skin = _model_skin(model)
    mean = model.mean.astype(np.float64)
    model_pts = _apply_bary(mean, model.faces, tri_m, bary_m)
    inner = lm_w >= 1.0
    sim = fit_similarity(model_pts[inner], head_pts[inner], with_scale=True)
    say("similarity")

    # the head in the model frame
    def to_model(points: np.ndarray, s: Similarity) -> np.ndarray:
        return (points - s.translation) @ s.rotation / s.scale

    head_in = to_model(head_v, sim)
    target_lm = to_model(head_pts, sim)
    head_index = SurfaceIndex(head_in, main_faces)
    num_v = model.num_vertices
    lm_matrix = _bary_matrix(num_v, model.faces, tri_m, bary_m)
    skin_faces = model.faces[np.isin(model.faces, skin).all(1)]

    # head lip labels need the head's iBUG landmarks in the model frame
    head_ibug = _head_ibug(head_marks, landmark_points, head_v, head_f)
    missing = ~np.isfinite(head_ibug).all(1)  # off the mesh: where the model puts them
    head_ibug[missing] = sim.apply(mean[model.landmarks[missing]])
    head_lip = lip_labels(head_in, head_f, to_model(head_ibug, sim))
    model_lip = lip_labels(mean, model.faces, mean[model.landmarks])
    head_tri_label = _triangle_labels(head_lip, main_faces)

    basis = model.identity_basis.astype(np.float64).reshape(model.identity_dims, -1).T  # (3V, K)
    alpha = np.zeros(model.identity_dims)
    shape = mean
    for _round in range(cfg.identity_rounds):
        shape = mean + (basis @ alpha).reshape(-1, 3)
        normals = vertex_normals(shape, model.faces)
        idx, q, n = _model_to_head(shape, normals, skin, head_index, model_lip, head_tri_label, cfg)
        # rows: point-to-plane surface pairs, landmark pairs (3 rows each)
        b_surf = basis.reshape(num_v, 3, -1)[idx]  # (P, 3, K)
        a_surf = np.einsum("pd,pdk->pk", n, b_surf)
        r_surf = (n * (q - mean[idx])).sum(1)
        lm_b = (lm_matrix @ basis.reshape(num_v, -1)).reshape(len(tri_m), 3, -1)
        lm_r = target_lm - lm_matrix @ mean
        w_lm = np.sqrt(cfg.landmark_weight * lm_w)[:, None, None]
        a = np.concatenate([a_surf, (lm_b * w_lm).reshape(-1, basis.shape[1])])
        r = np.concatenate([r_surf, (lm_r * w_lm[:, :, 0]).ravel()])
        scale = len(r)
        alpha = np.linalg.solve(
            a.T @ a / scale + cfg.identity_prior * np.eye(len(alpha)), a.T @ r / scale
        )
        shape = mean + (basis @ alpha).reshape(-1, 3)
        # refit the similarity on the landmarks and the surface pairs
        src = np.concatenate([lm_matrix @ shape, shape[idx]])
        dst_model = np.concatenate([target_lm, q])
        dst = sim.apply(dst_model)
        sim = fit_similarity(src, dst, with_scale=True)
        head_in = to_model(head_v, sim)
        target_lm = to_model(head_pts, sim)
        head_index = SurfaceIndex(head_in, main_faces)
    say("identity")

    # non-rigid offsets of the skin
    lap = laplacian(num_v, skin_faces)
    free = np.zeros(num_v, bool)
    free[skin] = True
    fitted = shape.copy()
    head_normals = vertex_normals(head_in, head_f_oriented)
    face_near = _head_face_vertices(head_in, main, to_model(head_ibug, sim), head_normals)
    model_index_skin = SurfaceIndex(shape, skin_faces)
    model_tri_label = _triangle_labels(model_lip, skin_faces)
    for mu in cfg.stiffness:
        normals = vertex_normals(fitted, model.faces)
        idx, q, n = _model_to_head(
            fitted, normals, skin, head_index, model_lip, head_tri_label, cfg
        )
        model_index_skin = SurfaceIndex(fitted, skin_faces)
        hv = np.flatnonzero(face_near)
        tri_h, bary_h, dist_h = model_index_skin.closest_masked(
            head_in[hv], model_tri_label, head_lip[hv]
        )
        fn = model_index_skin.normals[tri_h]
        ok = (dist_h < cfg.max_distance_m) & (
            (fn * head_normals[hv]).sum(1) > np.cos(np.radians(cfg.max_normal_angle))
        )
        fitted = _solve_offsets(
            shape,
            fitted,
            lap,
            free,
            idx,
            q,
            n,
            lm_matrix,
            target_lm,
            lm_w,
            cfg,
            _bary_matrix(num_v, skin_faces, tri_h[ok], bary_h[ok]),
            head_in[hv[ok]],
            mu,
        )
    say("non-rigid fit")

    # correspondence: every head vertex on the fitted model
    model_index_skin = SurfaceIndex(fitted, skin_faces)
    tri, bary, dist = model_index_skin.closest_masked(
        head_in, _triangle_labels(model_lip, skin_faces), head_lip
    )
    head_normals = vertex_normals(head_in, head_f_oriented)
    tri_label = _triangle_labels(model_lip, skin_faces)[tri]
    agrees = (model_index_skin.normals[tri] * head_normals).sum(1) > np.cos(
        np.radians(cfg.max_normal_angle)
    )
    same_side = (head_lip < 0) | (tri_label < 0) | (tri_label == head_lip)
    # a lip's inner side faces the other lip, not the way the model's lip faces: it sits on its
    # own lip of the model all the same, so that the head's lips meet where the model's do
    on_own_lip = (head_lip >= 0) & (tri_label == head_lip)
    reliable = main & (dist <= cfg.reach_m[0]) & (agrees | on_own_lip) & same_side
    ibug_model = to_model(head_ibug, sim)
    mouth = ibug_model[OUTER_LIP].mean(0)
    mouth_width = float(np.linalg.norm(ibug_model[54] - ibug_model[48]))
    near_mouth = np.linalg.norm(head_in - mouth, axis=1) < 1.2 * mouth_width
    band = _geodesic_within(head_in, main_faces, reliable, cfg.fade_m)
    fixed = main & ~reliable & (dist > cfg.reach_m[1]) & ~near_mouth & ~band
    free = main & ~reliable & ~fixed
    weights = reliable.astype(np.float64)
    tri_model = _skin_to_model_triangles(model.faces, skin_faces)[tri]

    surface_mm = dist * 1000 * sim.scale
    on_face = face_near & main & np.isfinite(surface_mm)
    fitted_lm = lm_matrix @ fitted
    lm_err = np.linalg.norm(fitted_lm - target_lm, axis=1)[inner] * 1000 * sim.scale
    errors = {
        "surface_mean": float(surface_mm[on_face].mean()),
        "surface_median": float(np.median(surface_mm[on_face])),
        "surface_p95": float(np.percentile(surface_mm[on_face], 95)),
        "landmark_mean": float(lm_err.mean()),
    }
    parts, anchors = _parts(labels, head_in, fitted, model, skin)
    say("correspondence")
    return Registration(
        transform=sim,
        fitted=fitted.astype(np.float32),
        identity=alpha.astype(np.float32),
        triangles=np.where(reliable, tri_model, -1),
        barycentrics=bary,
        weights=weights,
        free=np.flatnonzero(free),
        parts=parts,
        part_anchors=anchors,
        head_landmarks=head_ibug,
        errors=errors,
        surface_error=np.where(on_face, surface_mm, np.nan),
        info={"name": name, "flipped_winding": head_f_oriented is not head_f},
    )


def _model_skin(model: FaceModel) -> np.ndarray:
    """Vertices of the model's largest component (its skin)."""
    labels = connected_components(model.mean, model.faces)
    return np.flatnonzero(labels == 0)


def _head_ibug(head_marks, landmark_points, head_v, head_f) -> np.ndarray:
    if landmark_points is not None:
        return np.asarray(landmark_points, dtype=np.float64)
    return head_marks.ibug68(head_v, head_f)


def _triangle_labels(vertex_labels: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """A triangle's label: its corners' common label, else -1."""
    corner = vertex_labels[faces]
    same = (corner == corner[:, :1]).all(1)
    return np.where(same, corner[:, 0], -1)


def _head_face_vertices(
    head_in: np.ndarray, main: np.ndarray, ibug: np.ndarray, normals: np.ndarray
) -> np.ndarray:
    """Head vertices on the face: in front of the ears, between the brows' top and the chin,
    facing forward (not the inside of the mouth or of the eye sockets)."""
    right, up, forward, d = inner_frame(ibug)
    centre = ibug[27:36].mean(0)
    rel = head_in - centre
    x, y, z = rel @ right, rel @ up, rel @ forward
    brow_top = float(((ibug[17:27] - centre) @ up).max())
    chin = float((ibug[8] - centre) @ up) if np.isfinite(ibug[8]).all() else -1.6 * d
    inside = (np.abs(x) < 1.1 * d) & (y < brow_top + 0.6 * d) & (y > chin) & (z > -0.9 * d)
    return main & inside & (normals @ forward > 0.2)


def _model_to_head(shape, normals, skin, head_index, model_lip, head_tri_label, cfg):
    """Model skin vertices' closest points on the head: indices, targets, target normals."""
    tri, _bary, dist = head_index.closest_masked(shape[skin], head_tri_label, model_lip[skin])
    corners = head_index.vertices[head_index.faces[tri]]
    q = np.einsum("kc,kcd->kd", _bary, corners)
    n = head_index.normals[tri]
    ok = (dist < cfg.max_distance_m) & (
        (n * normals[skin]).sum(1) > np.cos(np.radians(cfg.max_normal_angle))
    )
    return skin[ok], q[ok], n[ok]


def _solve_offsets(
    base,
    current,
    lap,
    free,
    idx,
    q,
    n,
    lm_matrix,
    target_lm,
    lm_w,
    cfg,
    rev_matrix,
    rev_targets,
    mu,
):
    """One stiffness round: the offsets from ``base`` (the identity fit) minimising surface,
    landmark and Laplacian terms, with pairs found on the ``current`` fit; the stiffness acts
    on the whole offset, so rounds do not pile up creases.

    Point-to-plane pairs enter as point-to-point pairs whose target is the model vertex's
    projection onto the head's tangent plane (plus a little of the closest point itself), so the
    three coordinates share one sparse system: one factorisation, three solves.
    """
    num_v = len(base)
    p = len(idx)
    along = (n * (q - current[idx])).sum(1, keepdims=True)
    target = current[idx] + 0.8 * along * n + 0.2 * (q - current[idx])
    rows = [sp.csr_matrix((np.ones(p), (np.arange(p), idx)), shape=(p, num_v))]
    rhs = [target - base[idx]]
    if rev_matrix.shape[0]:  # head vertex -> model surface, at half weight
        rows.append(0.5 * rev_matrix)
        rhs.append(0.5 * (rev_targets - rev_matrix @ base))
    w = np.sqrt(cfg.landmark_weight * lm_w)
    rows.append(sp.diags(w) @ lm_matrix)
    rhs.append(w[:, None] * (target_lm - lm_matrix @ base))
    density = np.sqrt(max(p, 1) / max(int(free.sum()), 1))
    rows.append(mu * density * lap)
    rhs.append(np.zeros((num_v, 3)))
    rows.append(sp.diags(np.where(free, 1e-3, 1e3)))  # the parts that are not skin stay put
    rhs.append(np.zeros((num_v, 3)))
    a = sp.vstack(rows).tocsr()
    b = np.concatenate(rhs)
    solve = splu((a.T @ a).tocsc())
    return base + solve.solve(np.asarray(a.T @ b))


def _geodesic_within(vertices, faces, sources: np.ndarray, reach_m: float) -> np.ndarray:
    """(N,) bool: vertices within ``reach_m`` (along the edges of ``faces``) of a ``sources``
    vertex (a bool mask)."""
    seeds = np.flatnonzero(sources)
    if len(seeds) == 0:
        return np.zeros(len(vertices), bool)
    graph = edge_length_graph(vertices, faces)
    dist = dijkstra(graph, indices=seeds, min_only=True, limit=reach_m)
    return np.isfinite(dist)


def _skin_to_model_triangles(faces: np.ndarray, skin_faces: np.ndarray) -> np.ndarray:
    """Index in ``faces`` of each row of ``skin_faces``."""
    lookup = {tuple(f): i for i, f in enumerate(faces.tolist())}
    return np.array([lookup[tuple(f)] for f in skin_faces.tolist()], dtype=np.int64)


def _parts(labels, head_in, fitted, model, skin):
    """Each extra head component and the model skin vertices it follows rigidly: the skin
    nearest to it outside the lips and the eyes (a lower row of teeth follows the chin, an
    eyeball the brow and cheek, not the lids)."""
    parts, anchors = [], []
    moving = np.concatenate([model.regions.get("lip", []), model.regions.get("eyes", [])])
    skin = np.setdiff1d(skin, moving)
    tree = cKDTree(fitted[skin])
    for label in range(1, int(labels.max()) + 1):
        members = np.flatnonzero(labels == label)
        centre = head_in[members].mean(0)
        _, near = tree.query(centre, k=min(40, len(skin)))
        parts.append(members)
        anchors.append(skin[np.atleast_1d(near)])
    return parts, anchors
