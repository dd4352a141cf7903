"""The canonical evaluation kit: every published lip/face metric from one function.

Definitions (``docs/FORMATS.md``, "Metrics"); distances in the data's unit (metres):

- Paper metrics (this project's headline): per frame the maximum (``*_max``) or mean
  (``*_mean``) Euclidean distance, not squared, between predicted and ground-truth vertices of a
  region; then the mean over frames, and over sequences.
- ``lve``: CodeTalker/FaceDiffuser's lip vertex error: per frame the maximum SQUARED distance
  over lip vertices, averaged over frames (and sequences).
- ``fdd``: upper-face dynamics deviation: per upper-face vertex the standard deviation over time
  of the squared norm of its displacement from the template; ground truth minus prediction,
  averaged over vertices (and sequences).

Lip-sync metrics (:func:`lip_sync_metrics`; what the paper's distances do not see: a mouth that
never closes can win them). The inner-lip gap of a frame is the mean distance of the facing
inner-lip landmark pairs (:data:`mmface4d.facemodel.regions.INNER_LIP_PAIRS`); the lips are
closed when it is below ``closed`` (1 mm):

- ``closure``: share of the bilabial phones (p, b, m) during which, +-1 frame, the predicted
  lips close, over the bilabials where the truth's lips close (pooled over sequences: closed
  bilabials / bilabials; ``bilabials`` counts them). Without a truth, over all bilabials.
- ``false_closure``: share of the frames where the truth's lips are clearly open (gap above
  3 mm) at which the predicted lips are closed (lips that shut too often or at the wrong time).
- ``gap_error``: mean absolute inner-lip gap error; ``gap_corr``: Pearson correlation of the
  predicted and true gaps over frames.
- ``range_ratio``: the predicted mouth-opening range (95th minus 5th percentile of the gap)
  over the truth's (1 is right; below 1 an under-articulated mouth).
- ``jitter_ratio``: the predicted jitter (mean norm of the second difference of the lip
  vertices, times fps^2: m/s^2) over the truth's (1 is right; above 1 a trembling mouth).

Three landmark pairs can close while the lips around them stay open (a model trained with
lip terms at those vertices alone can learn to pull just them: spikes). The lip line
(:func:`lip_line_pairs`) sees that: every vertex of the upper inner lip from landmark 61 to 63,
each facing the nearest vertex of the lower inner lip; :func:`lip_line_gap` is a frame's widest
opening along it beyond the neutral face's, and ``line_closure`` the share of the bilabials
where it falls below ``closed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmface4d.errors import InputError
from mmface4d.facemodel.regions import inner_lip_pairs
from mmface4d.geometry.checks import check_vertices

#: Metric name -> (region, reduction) of the paper's four numbers.
PAPER_METRICS: dict[str, tuple[str, str]] = {
    "lip_max": ("lip", "max"),
    "lip_mean": ("lip", "mean"),
    "upper_max": ("upper_face", "max"),
    "face_max": ("face", "max"),
}
ALL_METRICS = (*PAPER_METRICS, "lve", "fdd")
#: Lip-sync metrics (with phone timing); ``closure`` is pooled over bilabials, not averaged.
LIP_SYNC_METRICS = (
    "closure",
    "false_closure",
    "gap_error",
    "gap_corr",
    "range_ratio",
    "jitter_ratio",
)
#: Inner-lip gap below which the lips count as closed, metres.
CLOSED_GAP = 1e-3
#: Inner-lip gap above which the truth's lips count as clearly open (``false_closure``), metres.
OPEN_GAP = 3e-3


def inner_lip_gap(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(T, V, 3) vertices -> (T,) inner-lip gap (mean over the facing pairs), same unit."""
    vertices = check_vertices(vertices, min_frames=0, finite=False).astype(np.float64)
    upper, lower = inner_lip_pairs(landmarks)
    return np.linalg.norm(vertices[:, upper] - vertices[:, lower], axis=2).mean(axis=1)


def lip_line_pairs(neutral: np.ndarray, faces: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(P, 2) upper and lower vertex of each facing pair along the inner lips.

    The upper inner lip is the mesh's shortest edge path from landmark 61 through 62 to 63 on
    the neutral face; each of its vertices faces the nearest vertex of the lower one (67
    through 66 to 65).
    """
    from scipy.sparse.csgraph import dijkstra

    from mmface4d.geometry.mesh import edge_length_graph

    neutral = np.asarray(neutral, dtype=np.float64)
    landmarks = np.asarray(landmarks, dtype=np.int64)
    graph = edge_length_graph(neutral, faces)

    def path(marks: list[int]) -> np.ndarray:
        points = [int(landmarks[marks[0]])]
        for a, b in zip(marks[:-1], marks[1:], strict=True):
            start, end = int(landmarks[a]), int(landmarks[b])
            _, previous = dijkstra(graph, indices=start, return_predecessors=True)
            if previous[end] < 0 and end != start:
                raise InputError(f"landmarks {a} and {b} are not connected on the mesh")
            step, walk = end, []
            while step != start:
                walk.append(step)
                step = int(previous[step])
            points += walk[::-1]
        return np.array(points, dtype=np.int64)

    upper, lower = path([61, 62, 63]), path([67, 66, 65])
    facing = np.linalg.norm(neutral[upper][:, None] - neutral[lower][None], axis=2).argmin(1)
    return np.stack([upper, lower[facing]], axis=1)


def lip_line_gap(vertices: np.ndarray, pairs: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """(T, V, 3) vertices -> (T,) the widest opening along the lip line: the largest facing
    distance of :func:`lip_line_pairs` beyond the same pair's on the ``neutral`` face (a pair
    that is 2 mm apart at rest is closed at 2 mm)."""
    vertices = check_vertices(vertices, min_frames=0, finite=False).astype(np.float64)
    pairs = np.asarray(pairs, dtype=np.int64)
    neutral = np.asarray(neutral, dtype=np.float64)
    rest = np.linalg.norm(neutral[pairs[:, 0]] - neutral[pairs[:, 1]], axis=1)
    gaps = np.linalg.norm(vertices[:, pairs[:, 0]] - vertices[:, pairs[:, 1]], axis=2)
    return (gaps - rest).max(axis=1)


def phone_frames(times: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """(K, 2) phone [start, end) seconds -> (K, 2) inclusive [first, last] frame indices.

    A frame belongs to a phone when its interval ``[i / fps, (i + 1) / fps)`` overlaps it;
    phones are clipped to the clip; every phone keeps at least one frame.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1, 2)
    first = np.clip(np.floor(times[:, 0] * fps), 0, num_frames - 1)
    last = np.clip(np.ceil(times[:, 1] * fps) - 1, first, num_frames - 1)
    return np.stack([first, last], axis=1).astype(np.int64)


def closed_during(gap: np.ndarray, events: np.ndarray, closed: float, tolerance: int = 1):
    """(K,) bool: whether ``gap`` drops below ``closed`` within each event's frames +- tolerance."""
    out = np.zeros(len(events), dtype=bool)
    for k, (first, last) in enumerate(np.asarray(events, dtype=np.int64).reshape(-1, 2)):
        span = gap[max(0, first - tolerance) : last + tolerance + 1]
        out[k] = span.size > 0 and float(span.min()) < closed
    return out


def lip_jitter(lip_vertices: np.ndarray, fps: float) -> float:
    """Mean norm of the lip vertices' second difference times fps^2 (unit per s^2)."""
    lips = np.asarray(lip_vertices, dtype=np.float64)
    if len(lips) < 3:
        return float("nan")
    acceleration = lips[2:] - 2 * lips[1:-1] + lips[:-2]
    return float(np.linalg.norm(acceleration, axis=-1).mean() * fps**2)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and np.isfinite(a) else float("nan")


def lip_sync_metrics(
    prediction: np.ndarray,
    landmarks: np.ndarray,
    bilabials: np.ndarray,
    fps: float,
    ground_truth: np.ndarray | None = None,
    lip: np.ndarray | None = None,
    closed: float = CLOSED_GAP,
) -> dict[str, float]:
    """Lip-sync metrics of one sequence (see the module doc).

    Args:
        prediction: (T, V, 3) predicted vertices.
        landmarks: (68,) landmark vertex indices.
        bilabials: (K, 2) inclusive first/last frames of each p, b, m (:func:`phone_frames`).
        fps: frame rate.
        ground_truth: (T, V, 3) or None (real speech: only ``closure`` over all bilabials).
        lip: lip-region vertex indices for the jitter; default the inner-lip landmarks.
        closed: gap below which lips are closed, in the vertices' unit.

    Returns:
        ``closure`` (NaN without bilabials), ``bilabials`` and ``closed_bilabials`` (counts
        behind it), and with a truth ``false_closure``, ``gap_error``, ``gap_corr``,
        ``range_ratio``, ``jitter_ratio``.
    """
    gap_pred = inner_lip_gap(prediction, landmarks)
    events = np.asarray(bilabials, dtype=np.int64).reshape(-1, 2)
    hit = closed_during(gap_pred, events, closed)
    out: dict[str, float] = {}
    if ground_truth is not None:
        truth = np.asarray(ground_truth, dtype=np.float64)
        if truth.shape != np.shape(prediction):
            raise InputError(
                f"prediction {np.shape(prediction)} and ground truth {truth.shape} differ"
            )
        gap_true = inner_lip_gap(truth, landmarks)
        hit = hit[closed_during(gap_true, events, closed)]
        spread = lambda g: np.percentile(g, 95) - np.percentile(g, 5)  # noqa: E731
        both_vary = gap_pred.std() > 1e-9 and gap_true.std() > 1e-9
        lip_ids = np.asarray(landmarks)[60:68] if lip is None else np.asarray(lip)
        open_truth = gap_true > OPEN_GAP
        out |= {
            "false_closure": float((gap_pred[open_truth] < closed).mean())
            if open_truth.any()
            else np.nan,
            "gap_error": float(np.abs(gap_pred - gap_true).mean()),
            "gap_corr": float(np.corrcoef(gap_pred, gap_true)[0, 1]) if both_vary else np.nan,
            "range_ratio": _ratio(spread(gap_pred), spread(gap_true)),
            "jitter_ratio": _ratio(
                lip_jitter(np.asarray(prediction)[:, lip_ids], fps),
                lip_jitter(truth[:, lip_ids], fps),
            ),
        }
    out["bilabials"] = float(len(hit))
    out["closed_bilabials"] = float(hit.sum())
    out["closure"] = float(hit.mean()) if len(hit) else float("nan")
    return out


def sequence_metrics(
    prediction: np.ndarray,
    ground_truth: np.ndarray,
    regions: Mapping[str, np.ndarray],
    template: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one sequence.

    Args:
        prediction: (T, V, 3) predicted vertices.
        ground_truth: (T, V, 3) ground truth, same T (trim before calling).
        regions: vertex indices of ``lip``, ``upper_face`` and ``face``.
        template: (V, 3) neutral face for FDD; None skips FDD (reported as NaN).

    Returns:
        ``{metric: value}`` for :data:`ALL_METRICS`.
    """
    pred = check_vertices(prediction, "prediction", finite=False).astype(np.float64)
    gt = check_vertices(ground_truth, "ground truth", finite=False).astype(np.float64)
    if pred.shape != gt.shape:
        raise InputError(
            f"prediction {pred.shape} and ground truth {gt.shape} must both be (T, V, 3), T >= 1"
        )
    missing = [r for r in ("lip", "upper_face", "face") if r not in regions]
    if missing:
        raise InputError(f"regions {missing} missing; expected lip, upper_face, face")
    dist = np.linalg.norm(pred - gt, axis=-1)  # (T, V)
    out: dict[str, float] = {}
    for name, (region, reduce) in PAPER_METRICS.items():
        per_frame = getattr(dist[:, regions[region]], reduce)(axis=1)
        out[name] = float(per_frame.mean())
    out["lve"] = float((dist[:, regions["lip"]] ** 2).max(axis=1).mean())
    if template is None:
        out["fdd"] = float("nan")
    else:
        tmpl = np.asarray(template, dtype=np.float64)
        if tmpl.shape != pred.shape[1:]:
            raise InputError(f"template must be {pred.shape[1:]}, got {tmpl.shape}")
        upper = regions["upper_face"]
        motion_gt = (np.linalg.norm(gt[:, upper] - tmpl[upper], axis=-1) ** 2).std(axis=0)
        motion_pred = (np.linalg.norm(pred[:, upper] - tmpl[upper], axis=-1) ** 2).std(axis=0)
        out["fdd"] = float((motion_gt - motion_pred).mean())
    return out


@dataclass
class EvaluationReport:
    """Per-sequence metrics and their means.

    Attributes:
        per_sequence: sequence id -> metrics.
        overall: metric -> mean over sequences.
        unit: unit of the distances (``lve`` and ``fdd`` are in unit squared).
    """

    per_sequence: dict[str, dict[str, float]] = field(default_factory=dict)
    overall: dict[str, float] = field(default_factory=dict)
    unit: str = "m"


@dataclass(frozen=True)
class LipSyncInputs:
    """What the lip-sync metrics need besides the vertices.

    Attributes:
        landmarks: (68,) landmark vertex indices of the topology.
        bilabials: sequence id -> (K, 2) inclusive first/last frames of its p, b, m.
        fps: frame rate of the sequences.
    """

    landmarks: np.ndarray
    bilabials: Mapping[str, np.ndarray]
    fps: float


def evaluate_sequences(
    items: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
    regions: Mapping[str, np.ndarray],
    lip_sync: LipSyncInputs | None = None,
) -> EvaluationReport:
    """Metrics over many sequences.

    Args:
        items: (sequence id, prediction (T, V, 3), ground truth (T, V, 3), template or None).
        regions: as in :func:`sequence_metrics`.
        lip_sync: also compute :data:`LIP_SYNC_METRICS` (``closure`` pooled over bilabials).
    """
    if not items:
        raise InputError("nothing to evaluate: no sequences")
    report = EvaluationReport()
    for seq_id, pred, gt, template in items:
        if seq_id in report.per_sequence:
            raise InputError(f"sequence {seq_id!r} given twice")
        metrics = sequence_metrics(pred, gt, regions, template)
        if lip_sync is not None:
            events = lip_sync.bilabials.get(seq_id, np.zeros((0, 2), dtype=np.int64))
            metrics |= lip_sync_metrics(
                pred, lip_sync.landmarks, events, lip_sync.fps, gt, regions["lip"]
            )
        report.per_sequence[seq_id] = metrics
    names = [*ALL_METRICS, *(LIP_SYNC_METRICS if lip_sync is not None else ())]
    for name in names:
        values = np.array([m[name] for m in report.per_sequence.values()])
        report.overall[name] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
    if lip_sync is not None:
        count = sum(m["bilabials"] for m in report.per_sequence.values())
        closed = sum(m["closed_bilabials"] for m in report.per_sequence.values())
        report.overall["closure"] = closed / count if count else float("nan")
        report.overall["bilabials"] = float(count)
    return report
