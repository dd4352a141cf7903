"""The canonical evaluation kit: every published lip/face metric from one function.

Definitions (FORMATS.md, "Metrics"); distances in the data's unit (metres):

- Paper metrics (this project's headline): per frame the maximum (``*_max``) or mean
  (``*_mean``) Euclidean distance, not squared, between predicted and ground-truth vertices of a
  region; then the mean over frames, and over sequences.
- ``lve``: CodeTalker/FaceDiffuser's lip vertex error: per frame the maximum SQUARED distance
  over lip vertices, averaged over frames (and sequences).
- ``fdd``: upper-face dynamics deviation: per upper-face vertex the standard deviation over time
  of the squared norm of its displacement from the template; ground truth minus prediction,
  averaged over vertices (and sequences).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmface4d.errors import InputError

#: Metric name -> (region, reduction) of the paper's four numbers.
PAPER_METRICS: dict[str, tuple[str, str]] = {
    "lip_max": ("lip", "max"),
    "lip_mean": ("lip", "mean"),
    "upper_max": ("upper_face", "max"),
    "face_max": ("face", "max"),
}
ALL_METRICS = (*PAPER_METRICS, "lve", "fdd")


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
    pred = np.asarray(prediction, dtype=np.float64)
    gt = np.asarray(ground_truth, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 3 or len(pred) == 0:
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


def evaluate_sequences(
    items: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
    regions: Mapping[str, np.ndarray],
) -> EvaluationReport:
    """Metrics over many sequences.

    Args:
        items: (sequence id, prediction (T, V, 3), ground truth (T, V, 3), template or None).
        regions: as in :func:`sequence_metrics`.
    """
    if not items:
        raise InputError("nothing to evaluate: no sequences")
    report = EvaluationReport()
    for seq_id, pred, gt, template in items:
        if seq_id in report.per_sequence:
            raise InputError(f"sequence {seq_id!r} given twice")
        report.per_sequence[seq_id] = sequence_metrics(pred, gt, regions, template)
    for name in ALL_METRICS:
        values = np.array([m[name] for m in report.per_sequence.values()])
        report.overall[name] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
    return report
