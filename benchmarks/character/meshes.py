"""Test characters with known correspondence, for the registration benchmark (issue 17).

    .venv/bin/python benchmarks/character/meshes.py --out DIR            # ICT and synth
    .venv/bin/python benchmarks/character/meshes.py --out DIR --sources synth --identities 1

writes one OBJ per case (``DIR/<case>.obj``, the mesh a user would hand in), its ground truth
(``DIR/<case>_truth.npz``) and ``DIR/manifest.json`` (every case's file, unit, transform and
true landmarks). From Python, :func:`build_cases` returns :class:`Case` objects.

Sources (every one in metres, the project's model frame; seeded):

- ``ict-neutral``, ``ict-id<k>``: ICT FaceKit light (``../shared/data/ict_facekit``, centimetres
  converted at the boundary), its neutral and neutral + sum of the first 10 identity shapes with
  coefficients N(0, 1) (ICT's identity shapes are principal components scaled to one standard
  deviation: the first moves the face by 0.39 cm RMS, the tenth by 0.07 cm). The whole head:
  26,719 vertices with the eyes, teeth, mouth socket and eyelashes. Face area: vertices
  0..9408; landmarks: ICT's 68 iBUG vertices.
- ``synth-mean``, ``synth-id<k>``: the project's default face model (``synth``), its mean and
  mean + identity basis x N(0, 0.8) on all components (the spread of the synthetic corpus's
  subjects, ``synth.style``). Face area: ``regions["face"]``; landmarks: the model's 68.

Variants of each source (the head mesh handed to the registration):

- ``original``: the source mesh, metres.
- ``decimated_5k``: quadric decimation (``fast-simplification``) to about 5,000 vertices.
- ``subdivided``: one midpoint subdivision (every triangle into 4; the surface is unchanged,
  ~4x the vertices).
- ``retriangulated``: vertex positions unchanged, triangles changed: ICT's quads split along
  their other diagonal; the synth model's edges flipped at random (each flip between two
  nearly coplanar triangles, normals within 10 degrees: about 85% of the triangles change).
- ``mm``, ``cm``: the original scaled to millimetres, centimetres.
- ``rotated30``: the original turned 30 degrees about the vertical axis (+y, the model frame's
  up), metres.
- ``decimated_5k_cm_rotated``: decimated, in centimetres and turned 30 degrees about a mixed
  axis (1, 3, 0.5)/|.| (mostly a turn of the head, some nod and tilt).

Ground truth of a case, in the case's frame and unit: the source's dense surface (its original
vertices and triangles transformed like the head; surface distances are measured against it),
the source's face-area vertices (indices into that surface), the 68 true landmark positions
(the source's landmark vertices transformed: for a remeshed head they are points on the
surface, not vertex indices of the head) and the :class:`Transform`. Transforms rotate about the
origin of the model frame and then scale: ``case = scale * R @ metres``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
ICT_DIR = SHARED_DATA / "ict_facekit"

VARIANTS: tuple[str, ...] = (
    "original",
    "decimated_5k",
    "subdivided",
    "retriangulated",
    "mm",
    "cm",
    "rotated30",
    "decimated_5k_cm_rotated",
)
SOURCES: tuple[str, ...] = ("ict", "synth")

#: Length units of the cases: numbers per metre.
UNITS_PER_METRE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}

DECIMATED_VERTICES = 5000
ICT_IDENTITY_COMPONENTS = 10
SYNTH_IDENTITY_STD = 0.8
MIXED_AXIS = (1.0, 3.0, 0.5)
FLIP_MAX_ANGLE_DEG = 10.0


# ---------------------------------------------------------------------- data types
@dataclass
class Transform:
    """How a case's frame comes from the source's metres: ``case = scale * rotation @ metres``.

    Attributes:
        scale: case units per metre (1, 100 or 1000).
        rotation: (3, 3) rotation matrix, applied before the scale.
        description: in words (for the manifest).
    """

    scale: float
    rotation: np.ndarray
    description: str

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) source metres -> the case's frame and unit (float64)."""
        return self.scale * (np.asarray(points, dtype=np.float64) @ self.rotation.T)

    def invert(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) case frame and unit -> source metres."""
        return (np.asarray(points, dtype=np.float64) / self.scale) @ self.rotation

    def to_json(self) -> dict:
        return {
            "scale_units_per_metre": self.scale,
            "rotation": self.rotation.tolist(),
            "description": self.description,
        }


@dataclass
class Source:
    """A source face in metres with its correspondence facts.

    Attributes:
        name: ``ict-neutral``, ``ict-id0``, ``synth-mean`` ...
        vertices: (V, 3) float64 metres, model frame.
        faces: (F, 3) int64 triangles (counter-clockwise from outside).
        landmarks: (68,) int64 iBUG landmark vertices.
        face_vertices: (Vf,) int64 face-area vertices (where surface error is measured).
        quads: (Q, 4) int64 quads whose split (a, b, c), (a, c, d) are ``faces[:2Q]`` in pairs
            (ICT), or None (a triangle mesh).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray
    face_vertices: np.ndarray
    quads: np.ndarray | None = None


@dataclass
class Case:
    """One test character: a head mesh and its ground truth, in the case's frame and unit.

    For the variants that keep the vertices (``original``, ``retriangulated``, ``mm``, ``cm``,
    ``rotated30``) head vertex i is truth vertex i; the others share no vertex indices.

    Attributes:
        name: ``<source>-<variant>``, e.g. ``ict-id1-decimated_5k``.
        head_vertices: (V, 3) float64 the mesh handed in, in ``unit``.
        head_faces: (F, 3) int64 its triangles.
        unit: ``"m"``, ``"cm"`` or ``"mm"``.
        landmarks_true: (68, 3) float64 true iBUG landmark positions.
        truth_vertices: (Vt, 3) float64 the source's dense surface, transformed.
        truth_faces: (Ft, 3) int64 its triangles.
        truth_face_vertices: (Vf,) int64 face-area vertices of the truth surface.
        transform: source metres -> this case.
        landmark_vertices: (68,) head vertex index of each true landmark where the head keeps
            the source's vertices (every variant but the decimated ones), else None.
    """

    name: str
    head_vertices: np.ndarray
    head_faces: np.ndarray
    unit: str
    landmarks_true: np.ndarray
    truth_vertices: np.ndarray
    truth_faces: np.ndarray
    truth_face_vertices: np.ndarray
    transform: Transform
    landmark_vertices: np.ndarray | None = None

    @property
    def mm_per_unit(self) -> float:
        """Multiply a length in the case's unit by this to get millimetres."""
        return 1000.0 / UNITS_PER_METRE[self.unit]

    @property
    def truth_face_faces(self) -> np.ndarray:
        """(Ff, 3) int64 the truth triangles whose three corners lie in the face area."""
        inside = np.zeros(len(self.truth_vertices), dtype=bool)
        inside[self.truth_face_vertices] = True
        return self.truth_faces[inside[self.truth_faces].all(axis=1)]


# ---------------------------------------------------------------------- sources
def ict_sources(directory: Path = ICT_DIR, identities: int = 3, seed: int = 0) -> list[Source]:
    """ICT FaceKit's neutral and ``identities`` random identities (see the module doc).

    Raises:
        FileNotFoundError: ``ict_facekit_light.npz`` is not in ``directory``.
    """
    from mmface4d.facemodel.ict import CM_TO_M, ICT_PARTS, LIGHT_NPZ, ict_faces

    path = Path(directory) / LIGHT_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ICT FaceKit light not found (../shared/data)")
    with np.load(path) as archive:
        neutral = archive["neutral"].astype(np.float64) * CM_TO_M
        deltas = archive["identity_deltas"][:ICT_IDENTITY_COMPONENTS].astype(np.float64) * CM_TO_M
        quads = archive["quads"].astype(np.int64)
        faces = ict_faces(quads, archive["tris"])
        landmarks = archive["landmark_vertices"].astype(np.int64)
    first, last = ICT_PARTS["face"]
    face = np.arange(first, last + 1)
    rng = np.random.default_rng([seed, 17, 1])
    shapes = [("ict-neutral", neutral)]
    for k in range(identities):
        coefficients = rng.normal(0.0, 1.0, len(deltas))
        shapes.append((f"ict-id{k}", neutral + np.tensordot(coefficients, deltas, axes=1)))
    return [Source(name, v, faces, landmarks, face, quads) for name, v in shapes]


def synth_sources(identities: int = 3, seed: int = 0, spec: str = "synth") -> list[Source]:
    """The default face model's mean and ``identities`` random identities (module doc)."""
    from mmface4d.facemodel.sources import load_face_model

    model = load_face_model(spec)
    mean = np.asarray(model.mean, dtype=np.float64)
    basis = np.asarray(model.identity_basis, dtype=np.float64)
    faces = np.asarray(model.faces, dtype=np.int64)
    landmarks = np.asarray(model.landmarks, dtype=np.int64)
    face = np.asarray(model.regions["face"], dtype=np.int64)
    rng = np.random.default_rng([seed, 17, 2])
    shapes = [("synth-mean", mean)]
    for k in range(identities):
        coefficients = rng.normal(0.0, SYNTH_IDENTITY_STD, len(basis))
        shapes.append((f"synth-id{k}", mean + np.tensordot(coefficients, basis, axes=1)))
    return [Source(name, v, faces, landmarks, face) for name, v in shapes]


# ---------------------------------------------------------------------- remeshing
def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``degrees`` about ``axis`` (right-handed)."""
    from scipy.spatial.transform import Rotation

    axis_array = np.asarray(axis, dtype=np.float64)
    axis_array = axis_array / np.linalg.norm(axis_array)
    return Rotation.from_rotvec(np.radians(degrees) * axis_array).as_matrix()


def decimate(
    vertices: np.ndarray, faces: np.ndarray, target_vertices: int = DECIMATED_VERTICES
) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to about ``target_vertices`` (fast-simplification, one correction)."""
    import fast_simplification

    def run(reduction: float) -> tuple[np.ndarray, np.ndarray]:
        v, f = fast_simplification.simplify(
            np.ascontiguousarray(vertices, dtype=np.float64),
            np.ascontiguousarray(faces, dtype=np.int32),
            target_reduction=float(np.clip(reduction, 0.0, 0.99)),
        )
        return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)

    reduction = 1.0 - target_vertices / len(vertices)
    v, f = run(reduction)
    if abs(len(v) - target_vertices) > 0.02 * target_vertices:  # one proportional correction
        kept = (1.0 - reduction) * target_vertices / len(v)
        v, f = run(1.0 - kept)
    return v, f


def subdivide(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One midpoint subdivision: every triangle into 4, the old vertices first."""
    import trimesh.remesh

    v, f = trimesh.remesh.subdivide(vertices, faces)
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def split_quads_other_diagonal(quads: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """ICT's triangles with each quad (a, b, c, d) split as (a, b, d), (b, c, d) instead."""
    q = np.asarray(quads, dtype=np.int64)
    other = np.stack([q[:, [0, 1, 3]], q[:, [1, 2, 3]]], axis=1).reshape(-1, 3)
    return np.concatenate([other, faces[2 * len(q) :]])


def flip_edges(
    vertices: np.ndarray,
    faces: np.ndarray,
    rng: np.random.Generator,
    max_angle_deg: float = FLIP_MAX_ANGLE_DEG,
) -> np.ndarray:
    """Flip interior edges in random order, each triangle at most once.

    An edge shared by triangles (a, b, c) and (b, a, d) becomes (a, d, c), (d, b, c) when the
    two triangles' normals are within ``max_angle_deg``, both new triangles face the same way
    as the old ones and the edge c-d does not exist yet.
    """
    faces = np.asarray(faces, dtype=np.int64)
    count = len(vertices)
    num_faces = len(faces)
    a = faces.T.reshape(-1)  # half-edge e = k * F + f runs faces[f, k] -> faces[f, k + 1]
    b = np.roll(faces, -1, axis=1).T.reshape(-1)
    c = np.roll(faces, -2, axis=1).T.reshape(-1)
    face_of = np.tile(np.arange(num_faces), 3)
    key = a * count + b
    order = np.argsort(key)
    twin_at = np.searchsorted(key[order], b * count + a)
    twin_at = np.minimum(twin_at, len(key) - 1)
    twin = order[twin_at]
    interior = (key[twin] == b * count + a) & (a < b)
    edges = np.flatnonzero(interior)
    d = c[twin[edges]]
    e_a, e_b, e_c = a[edges], b[edges], c[edges]
    p = np.asarray(vertices, dtype=np.float64)

    def normal(i, j, k):
        n = np.cross(p[j] - p[i], p[k] - p[i])
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)

    n1, n2 = normal(e_a, e_b, e_c), normal(e_b, e_a, d)
    n3, n4 = normal(e_a, d, e_c), normal(d, e_b, e_c)
    mean = n1 + n2
    good = (
        ((n1 * n2).sum(1) > np.cos(np.radians(max_angle_deg)))
        & ((n3 * mean).sum(1) > 0)
        & ((n4 * mean).sum(1) > 0)
    )
    existing = set((np.minimum(a, b) * count + np.maximum(a, b)).tolist())
    used = np.zeros(num_faces, dtype=bool)
    out = faces.copy()
    for i in rng.permutation(np.flatnonzero(good)):
        f1, f2 = face_of[edges[i]], face_of[twin[edges[i]]]
        new_key = min(e_c[i], d[i]) * count + max(e_c[i], d[i])
        if used[f1] or used[f2] or new_key in existing:
            continue
        used[f1] = used[f2] = True
        existing.add(new_key)
        out[f1] = (e_a[i], d[i], e_c[i])
        out[f2] = (d[i], e_b[i], e_c[i])
    return out


# ---------------------------------------------------------------------- cases
def make_case(source: Source, variant: str, seed: int = 0) -> Case:
    """Build one variant (see :data:`VARIANTS`) of one source."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} unknown; expected one of {', '.join(VARIANTS)}")
    vertices, faces = source.vertices, source.faces
    unit, turn, words = "m", np.eye(3), "identity (metres)"
    if variant in ("decimated_5k", "decimated_5k_cm_rotated"):
        vertices, faces = decimate(vertices, faces)
    elif variant == "subdivided":
        vertices, faces = subdivide(vertices, faces)
    elif variant == "retriangulated":
        if source.quads is not None:
            faces = split_quads_other_diagonal(source.quads, faces)
        else:
            faces = flip_edges(vertices, faces, np.random.default_rng([seed, 17, 3]))
    if variant in ("mm", "cm"):
        unit, words = variant, f"scaled to {variant}"
    elif variant == "rotated30":
        turn, words = rotation((0.0, 1.0, 0.0), 30.0), "30 degrees about +y (metres)"
    elif variant == "decimated_5k_cm_rotated":
        unit, turn = "cm", rotation(MIXED_AXIS, 30.0)
        words = f"30 degrees about {MIXED_AXIS}/|.|, then to cm"
    transform = Transform(UNITS_PER_METRE[unit], turn, words)
    return Case(
        name=f"{source.name}-{variant}",
        head_vertices=transform.apply(vertices),
        head_faces=np.asarray(faces, dtype=np.int64),
        unit=unit,
        landmarks_true=transform.apply(source.vertices[source.landmarks]),
        truth_vertices=transform.apply(source.vertices),
        truth_faces=source.faces,
        truth_face_vertices=source.face_vertices,
        transform=transform,
        landmark_vertices=None if variant.startswith("decimated") else source.landmarks,
    )


def build_cases(
    sources: tuple[str, ...] = SOURCES,
    variants: tuple[str, ...] = VARIANTS,
    identities: int = 3,
    seed: int = 0,
    ict_dir: Path = ICT_DIR,
) -> list[Case]:
    """Every variant of every source face (``ict`` and/or ``synth``), in a fixed order."""
    faces: list[Source] = []
    for name in sources:
        if name == "ict":
            faces += ict_sources(ict_dir, identities, seed)
        elif name == "synth":
            faces += synth_sources(identities, seed)
        else:
            raise ValueError(f"source {name!r} unknown; expected one of {', '.join(SOURCES)}")
    return [make_case(source, variant, seed) for source in faces for variant in variants]


# ---------------------------------------------------------------------- measuring
def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) distance from ``p`` to the segments a-b (a point where a = b)."""
    ab = b - a
    length = (ab * ab).sum(-1)
    t = np.clip(((p - a) * ab).sum(-1) / np.where(length > 0, length, 1.0), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def _triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(...,) distance from ``p`` to the triangles (a, b, c), broadcast; degenerate ones too.

    The distance to the plane where ``p`` projects inside the triangle, else to the nearest
    edge.
    """
    normal = np.cross(b - a, c - a)
    area2 = np.linalg.norm(normal, axis=-1)
    inside = area2 > 0
    for u, v in ((a, b), (b, c), (c, a)):
        inside = inside & ((np.cross(v - u, p - u) * normal).sum(-1) >= 0)
    plane = np.abs(((p - a) * normal).sum(-1)) / np.where(area2 > 0, area2, 1.0)
    edges = np.minimum(
        np.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)),
        _segment_distance(p, c, a),
    )
    return np.where(inside, plane, edges)


def surface_error(
    points: np.ndarray, truth_vertices: np.ndarray, truth_faces: np.ndarray
) -> np.ndarray:
    """Exact distance of each point to a triangle surface (same unit as the inputs).

    A first guess measures the 8 triangles with the nearest centroids. Then every triangle that
    could still be nearer is measured: the triangles are grouped by size (centroid-to-corner
    radius, factors of 2, a k-d tree of centroids per group), and in each group those whose
    centroid lies within the distance found plus their radius. About 2.5 s of CPU for 27k
    points 1.5 mm off ICT's 52k triangles, under 1 s for points on or very near the surface.

    Args:
        points: (N, 3) positions.
        truth_vertices: (V, 3) the surface's vertices.
        truth_faces: (F, 3) its triangles.

    Returns:
        (N,) float64 distances.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    triangles = np.asarray(truth_vertices, dtype=np.float64)[np.asarray(truth_faces)]
    centroids = triangles.mean(axis=1)
    radii = np.linalg.norm(triangles - centroids[:, None], axis=2).max(axis=1)
    distance = np.full(len(points), np.inf)

    def measure(rows: np.ndarray, members: np.ndarray) -> None:
        """Lower ``distance[rows]`` by the triangles ``members`` (pairs, flat)."""
        step = 1 << 18
        for start in range(0, len(rows), step):
            r, t = rows[start : start + step], triangles[members[start : start + step]]
            np.minimum.at(distance, r, _triangle_distance(points[r], t[:, 0], t[:, 1], t[:, 2]))

    first = cKDTree(centroids).query(points, k=min(8, len(triangles)))[1].reshape(len(points), -1)
    measure(np.repeat(np.arange(len(points)), first.shape[1]), first.reshape(-1))
    tiny = max(float(radii.min()), 1e-12)
    group = np.floor(np.log2(np.maximum(radii, tiny) / tiny)).astype(int)
    for level in np.unique(group):
        members = np.flatnonzero(group == level)
        balls = cKDTree(centroids[members]).query_ball_point(
            points, distance + radii[members].max(), return_sorted=False
        )
        counts = np.fromiter((len(ball) for ball in balls), dtype=np.int64, count=len(points))
        if not counts.any():
            continue
        rows = np.repeat(np.arange(len(points)), counts)
        near = members[np.concatenate([ball for ball in balls if ball]).astype(np.int64)]
        keep = np.linalg.norm(centroids[near] - points[rows], axis=1) - radii[near] < distance[rows]
        measure(rows[keep], near[keep])
    return distance


# ---------------------------------------------------------------------- files
def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A plain OBJ (``v`` and 1-based ``f`` lines, 9 significant digits)."""
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in vertices.tolist()]
    lines += [f"f {a} {b} {c}\n" for a, b, c in (faces + 1).tolist()]
    path.write_text("".join(lines), encoding="ascii")


def write_cases(cases: list[Case], out: Path) -> Path:
    """Write every case's OBJ and truth npz into ``out`` and return ``out/manifest.json``."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for case in cases:
        write_obj(out / f"{case.name}.obj", case.head_vertices, case.head_faces)
        np.savez_compressed(
            out / f"{case.name}_truth.npz",
            truth_vertices=case.truth_vertices,
            truth_faces=case.truth_faces,
            truth_face_vertices=case.truth_face_vertices,
            landmarks_true=case.landmarks_true,
            scale=case.transform.scale,
            rotation=case.transform.rotation,
        )
        entries.append(
            {
                "name": case.name,
                "head": f"{case.name}.obj",
                "truth": f"{case.name}_truth.npz",
                "unit": case.unit,
                "num_vertices": len(case.head_vertices),
                "num_faces": len(case.head_faces),
                "transform": case.transform.to_json(),
                "landmarks_true": np.round(case.landmarks_true, 6).tolist(),
            }
        )
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({"cases": entries}, indent=1) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the files")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--identities", type=int, default=3, help="random identities a source")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cases = build_cases(tuple(args.sources), tuple(args.variants), args.identities, args.seed)
    manifest = write_cases(cases, args.out)
    for case in cases:
        print(f"{case.name:40s} {len(case.head_vertices):7d} vertices  {case.unit}")
    print(f"wrote {len(cases)} cases: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
