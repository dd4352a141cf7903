"""The paper's dataset analysis (section V.B, Fig. 4): motion statistics of face regions.

- ``v(region)``: the mean absolute per-frame displacement of a region's vertices along each axis,
  a 3-vector per sequence (x, y, z), in metres per frame (multiply by fps for metres per second).
- Subject clustering of ``v(lip)`` (Fig. 4a, the composite nature): the silhouette score of the
  per-sequence ``v(lip)`` vectors labelled by subject, in [-1, 1]; above 0 means sequences of
  one subject lie closer to each other than to other subjects'.
- Region correlation (Fig. 4d, the regional nature): each region's per-frame speed (mean vertex
  displacement norm between consecutive frames), Pearson-correlated between regions over all
  frames of all sequences; regions are linked when the correlation is at least 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmface4d.errors import InputError
from mmface4d.geometry.align import stabilise
from mmface4d.geometry.checks import check_vertices

AXES = ("x", "y", "z")


def region_velocity(vertices: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``v(region)``: mean |displacement| per frame along x, y, z.

    Args:
        vertices: (T, V, 3), T >= 2.
        region: (N,) vertex indices.

    Returns:
        (3,) metres per frame.
    """
    verts = check_vertices(vertices, min_frames=2, finite=False)
    disp = np.abs(np.diff(verts[:, region].astype(np.float64), axis=0))  # (T-1, N, 3)
    return disp.mean(axis=(0, 1))


def region_speed(vertices: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(T-1,) mean displacement norm of a region's vertices between consecutive frames."""
    verts = np.asarray(vertices, dtype=np.float64)
    return np.linalg.norm(np.diff(verts[:, region], axis=0), axis=-1).mean(axis=1)


def silhouette_score(points: np.ndarray, labels: Sequence[object]) -> float:
    """Mean silhouette coefficient (Euclidean), the standard definition.

    For each point: a = mean distance to the other points of its cluster, b = the smallest mean
    distance to another cluster's points, s = (b - a) / max(a, b); points alone in their cluster
    get s = 0.

    Args:
        points: (N, D).
        labels: N cluster labels (at least two distinct).
    """
    pts = np.asarray(points, dtype=np.float64)
    lab = np.asarray(labels)
    names = np.unique(lab)
    if len(names) < 2 or len(pts) != len(lab):
        raise InputError(
            f"silhouette needs >= 2 clusters and one label per point, got {len(names)}"
        )
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    scores = np.zeros(len(pts))
    for i in range(len(pts)):
        own = lab == lab[i]
        if own.sum() < 2:
            continue
        a = dist[i, own].sum() / (own.sum() - 1)
        b = min(dist[i, lab == other].mean() for other in names if other != lab[i])
        scores[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return float(scores.mean())


def variance_explained(points: np.ndarray, labels: Sequence[object]) -> float:
    """Share of the variance of ``points`` explained by their label (eta squared, in [0, 1]).

    ``1 - sum of squared distances to the label means / sum of squared distances to the overall
    mean``: 1 when every label's points coincide, about (labels - 1) / (points - 1) for random
    labels.
    """
    pts = np.asarray(points, dtype=np.float64)
    lab = np.asarray(labels)
    total = ((pts - pts.mean(0)) ** 2).sum()
    within = sum(((pts[lab == k] - pts[lab == k].mean(0)) ** 2).sum() for k in np.unique(lab))
    return float(1.0 - within / total) if total > 0 else float("nan")


def region_correlation(
    sequences: Sequence[np.ndarray], regions: Mapping[str, np.ndarray]
) -> tuple[list[str], np.ndarray]:
    """Pearson correlation between regions' per-frame speeds over all frames of all sequences.

    Returns:
        (region names, (R, R) correlation matrix).
    """
    names = list(regions)
    series = [np.concatenate([region_speed(v, regions[n]) for v in sequences]) for n in names]
    return names, np.corrcoef(np.stack(series))


@dataclass
class DatasetStats:
    """The numbers of ``stats.json``.

    Attributes:
        fps: frame rate of the sequences (all equal).
        velocity: region -> (S, 3) per-sequence v(region), metres per frame.
        subjects: (S,) subject of each sequence.
        sequence_ids: (S,) ids.
        durations: (S,) seconds.
        lip_silhouette: subject clustering of v(lip) (NaN with fewer than two subjects).
        lip_subject_r2: share of the variance of v(lip) explained by the subject.
        correlation_regions, correlation: Fig. 4(d).
        metadata: per-sequence age/gender/emotion where known.
    """

    fps: float
    velocity: dict[str, np.ndarray]
    subjects: list[str]
    sequence_ids: list[str]
    durations: np.ndarray
    lip_silhouette: float
    lip_subject_r2: float
    correlation_regions: list[str]
    correlation: np.ndarray
    metadata: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary with units."""
        per_region = {}
        for name, v in self.velocity.items():
            mean = v.mean(axis=0)
            per_region[name] = {
                "v_m_per_frame": dict(zip(AXES, mean.tolist(), strict=True)),
                "v_m_per_second": dict(zip(AXES, (mean * self.fps).tolist(), strict=True)),
            }
        strong = [
            [a, b, round(float(self.correlation[i, j]), 3)]
            for i, a in enumerate(self.correlation_regions)
            for j, b in enumerate(self.correlation_regions)
            if i < j and self.correlation[i, j] >= 0.5
        ]
        chance = (len(set(self.subjects)) - 1) / max(len(self.subjects) - 1, 1)
        per_sequence: list[dict[str, object]] = []
        if "lip" in self.velocity:
            pairs = zip(self.sequence_ids, self.subjects, strict=True)
            per_sequence = [
                {
                    "id": s,
                    "subject": subj,
                    "v_lip_m_per_frame": self.velocity["lip"][k].tolist(),
                    **self.metadata[k],
                }
                for k, (s, subj) in enumerate(pairs)
            ]
        return {
            "sequences": len(self.sequence_ids),
            "subjects": len(set(self.subjects)),
            "fps": self.fps,
            "duration_s": {
                "total": float(self.durations.sum()),
                "median": float(np.median(self.durations)),
                "min": float(self.durations.min()),
                "max": float(self.durations.max()),
            },
            "velocity": per_region,
            "lip_velocity_subject_silhouette": self.lip_silhouette,
            "lip_velocity_variance_explained_by_subject": self.lip_subject_r2,
            "chance_variance_explained": chance,
            "region_correlation": {
                "regions": self.correlation_regions,
                "matrix": np.round(self.correlation, 4).tolist(),
                "edges_at_least_0.5": strong,
            },
            "per_sequence": per_sequence,
        }


def compute_stats(
    sequences: Sequence[np.ndarray],
    subjects: Sequence[str],
    sequence_ids: Sequence[str],
    regions: Mapping[str, np.ndarray],
    fps: float,
    metadata: Sequence[dict[str, object]] | None = None,
    stabilise_on: np.ndarray | None = None,
) -> DatasetStats:
    """All of the module's statistics over a set of sequences.

    Args:
        sequences: S arrays (T_s, V, 3), metres.
        subjects: S subject ids.
        sequence_ids: S sequence ids.
        regions: region name -> vertex indices (must include ``lip``).
        fps: frame rate.
        metadata: optional per-sequence dicts (age, gender, emotion ...).
        stabilise_on: vertex indices that move rigidly with the skull (e.g. forehead and
            nose); when given, head motion is removed first (each frame rigidly aligned to the
            sequence's first frame on them), so the statistics measure facial motion only.
    """
    if not sequences or len(sequences) != len(subjects) or len(subjects) != len(sequence_ids):
        raise InputError("need one subject and one id per sequence, and at least one sequence")
    if "lip" not in regions:
        raise InputError(f"regions must include 'lip', got {sorted(regions)}")
    if stabilise_on is not None:
        sequences = [stabilise(v, np.asarray(stabilise_on)) for v in sequences]
    velocity = {
        n: np.stack([region_velocity(v, idx) for v in sequences]) for n, idx in regions.items()
    }
    labels = list(subjects)
    silhouette = (
        silhouette_score(velocity["lip"], labels) if len(set(labels)) >= 2 else float("nan")
    )
    local = {n: idx for n, idx in regions.items() if n not in ("face", "upper_face")}
    names, corr = region_correlation(sequences, local)
    return DatasetStats(
        fps=fps,
        velocity=velocity,
        subjects=labels,
        sequence_ids=list(sequence_ids),
        durations=np.array([len(v) / fps for v in sequences]),
        lip_silhouette=silhouette,
        lip_subject_r2=variance_explained(velocity["lip"], labels)
        if len(set(labels)) >= 2
        else float("nan"),
        correlation_regions=names,
        correlation=corr,
        metadata=list(metadata) if metadata is not None else [{} for _ in sequences],
    )
