"""``mmface4d evaluate``: the canonical metrics of trained runs on a store's test split.

Every run is loaded from its folder (``final.pt``, or ``checkpoint.pt`` of an unfinished run,
with its ``config``) and animates every sequence of the split through the code users run
(:meth:`~mmface4d.animate.animator.Animator.synthesise`: windows of 20 s, so a sequence shorter
than that is predicted whole), from its speech, the subject's template (the store's) and a style
reference (another sequence of the same subject, drawn as
:class:`~mmface4d.data.dataset.FaceSequenceDataset` does with ``window=None`` and the given seed,
so every run sees the same references), for as many frames as its ground truth; the metrics come
from :func:`mmface4d.animate.metrics.evaluate_sequences`. Sequences are predicted one at a time
(nothing holds a whole split in memory).

Outputs: ``report.json`` (per run: overall and per-sequence metrics, with their definitions and
units) and optionally a Markdown table in the layout of the paper's Table II.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmface4d import __version__
from mmface4d.animate.animator import Animator
from mmface4d.animate.checkpoint import TrainedRun, load_run
from mmface4d.animate.closure import ClosureConfig, lip_closure
from mmface4d.animate.distributed import DistContext, select_device
from mmface4d.animate.metrics import (
    EvaluationReport,
    LipSyncInputs,
    evaluate_sequences,
    phone_frames,
)
from mmface4d.animate.train import require_split
from mmface4d.atomic import atomic_path
from mmface4d.audio.phonetic import BILABIAL_PHONES, align_phones
from mmface4d.data.analysis import resolve_landmarks, resolve_regions
from mmface4d.data.dataset import FaceSequenceDataset
from mmface4d.data.manifest import SequenceRecord
from mmface4d.data.store import Store
from mmface4d.errors import InputError

#: Metric -> (definition, unit of the values in report.json).
METRIC_DEFINITIONS: dict[str, tuple[str, str]] = {
    "lip_max": ("per frame the maximum Euclidean distance over lip vertices; mean over frames "
                "and sequences (the paper's lip max)", "m"),
    "lip_mean": ("per frame the mean Euclidean distance over lip vertices; mean over frames and "
                 "sequences (the paper's lip mean)", "m"),
    "upper_max": ("per frame the maximum Euclidean distance over upper-face vertices; mean over "
                  "frames and sequences (the paper's upper-face max)", "m"),
    "face_max": ("per frame the maximum Euclidean distance over face vertices; mean over frames "
                 "and sequences (the paper's face max)", "m"),
    "lve": ("lip vertex error (CodeTalker/FaceDiffuser): per frame the maximum SQUARED distance "
            "over lip vertices; mean over frames and sequences", "m^2"),
    "fdd": ("upper-face dynamics deviation: per upper-face vertex the std over time of the "
            "squared displacement norm from the template, ground truth minus prediction; mean "
            "over vertices and sequences", "m^2"),
    "closure": ("share of the bilabials (p, b, m) where the truth's lips close (inner-lip gap "
                "< 1 mm within the phone's frames +-1) at which the prediction's close too; "
                "pooled over sequences", "1"),
    "false_closure": ("share of the frames where the truth's lips are open (inner-lip gap > "
                      "3 mm) at which the prediction's are closed (< 1 mm); mean over "
                      "sequences", "1"),
    "gap_error": ("mean absolute error of the inner-lip gap (mean distance of the three facing "
                  "inner-lip landmark pairs)", "m"),
    "gap_corr": ("Pearson correlation over frames of the predicted and true inner-lip gaps; mean "
                 "over sequences", "1"),
    "range_ratio": ("mouth-opening range (95th - 5th percentile of the inner-lip gap), "
                    "prediction over truth", "1"),
    "jitter_ratio": ("mean norm of the lip vertices' second difference (x fps^2), prediction "
                     "over truth", "1"),
}  # fmt: skip

_REGIONS = ("lip", "upper_face", "face")

#: Table columns: metric, header, factor from the report's unit to the table's, number format.
TABLE_COLUMNS = (
    ("lip_max", "Lip max (mm)", 1e3, ".3f"),
    ("lip_mean", "Lip mean (mm)", 1e3, ".3f"),
    ("upper_max", "Upper max (mm)", 1e3, ".3f"),
    ("face_max", "Face max (mm)", 1e3, ".3f"),
    ("lve", "LVE (mm²)", 1e6, ".4g"),
    ("fdd", "FDD (mm²)", 1e6, ".4g"),
    ("closure", "Closure (%)", 100, ".1f"),
    ("false_closure", "False closed (%)", 100, ".1f"),
    ("gap_error", "Gap err (mm)", 1e3, ".3f"),
    ("gap_corr", "Gap corr", 1, ".3f"),
    ("range_ratio", "Range ratio", 1, ".2f"),
    ("jitter_ratio", "Jitter ratio", 1, ".2f"),
)


@dataclass
class RunEvaluation:
    """One run's metrics.

    Attributes:
        name: its label in the report and table (the folder name, or the path if ambiguous).
        run: the run folder; checkpoint: the file evaluated; step: its training step.
        model: registered model name; ablation: its ablation or None.
        report: per-sequence and overall metrics, in metres (squared for lve, fdd).
    """

    name: str
    run: Path
    checkpoint: Path
    step: int
    model: str
    ablation: str | None
    report: EvaluationReport


@dataclass
class EvaluateResult:
    """What :func:`evaluate` wrote.

    Attributes:
        report: the report.json path; table: the Markdown table path or None.
        split: the evaluated split; sequences: how many sequences.
        runs: the per-run results, in the order given.
        markdown: the table's text.
    """

    report: Path
    table: Path | None
    split: str
    sequences: int
    runs: list[RunEvaluation]
    markdown: str


class _Predictions(Sequence):
    """``evaluate_sequences`` items computed on access: (id, prediction, truth, template), the
    prediction by the run's :class:`Animator` at the sequence's frame rate."""

    def __init__(
        self,
        trained: TrainedRun,
        dataset: FaceSequenceDataset,
        closure: ClosureConfig | None = None,
        regions: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.trained, self.dataset = trained, dataset
        self.closure, self.regions = closure, regions
        self.animators: dict[float, Animator] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[override]
        item = self.dataset[index]
        fps, truth, template = float(item["fps"]), item["vertices"].numpy(), item["template"]
        if fps not in self.animators:
            self.animators[fps] = self.trained.animator(fps)
        animator = self.animators[fps]
        prediction = animator.synthesise(
            item["audio"].numpy(),
            animator.speaker(template.numpy(), item["style_vertices"].numpy()),
            num_frames=len(truth),
        )
        if self.closure is not None and self.regions is not None:
            landmarks, upper_face = self.regions
            # timed by the recogniser and the audio level, never by the ground truth
            prediction, _ = lip_closure(
                prediction,
                template.numpy(),
                item["audio"].numpy(),
                fps,
                landmarks,
                upper_face,
                self.closure,
            )
        return item["sequence_id"], prediction, truth, template.numpy()


def bilabial_events(
    store: Store, records: Sequence[SequenceRecord], phones: str | os.PathLike[str] | None
) -> dict[str, np.ndarray]:
    """Frames of each sequence's bilabials (p, b, m): sequence id -> (K, 2) first/last frames.

    Args:
        store: the store.
        records: its sequences to time.
        phones: a synthetic corpus folder (the timing its generator wrote: ``<recording>_gt.npz``
            beside each recording), or None to align the speech with the phoneme recogniser
            (:func:`mmface4d.audio.phonetic.align_phones`; real recordings).
    """
    events = {}
    for record in records:
        if phones is None:
            found = align_phones(store.read_audio(record.sequence_id))
            times = [(p.start, p.end) for p in found if p.label in BILABIAL_PHONES]
        else:
            path = Path(phones) / f"{record.source}_gt.npz"
            if not path.is_file():
                raise InputError(f"{path}: no phone timing for {record.sequence_id} (--phones)")
            with np.load(path) as truth:
                classes, spans = truth["phoneme_classes"], truth["phoneme_times"]
            times = spans[classes == "bilabial"]
        events[record.sequence_id] = phone_frames(
            np.asarray(times, dtype=np.float64).reshape(-1, 2), record.fps, record.num_frames
        )
    return events


def _names(runs: list[Path]) -> list[str]:
    names = [run.name or str(run) for run in runs]
    return names if len(set(names)) == len(names) else [str(run) for run in runs]


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def format_table(runs: list[RunEvaluation], split: str, store: str, regions: str) -> str:
    """A Table-II-style Markdown table: one row per run, distances in mm, LVE and FDD in mm²."""
    header = ["Run", "Model", "Step", *(column[1] for column in TABLE_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|" + "---:|" * len(TABLE_COLUMNS)]
    for run in runs:
        model = run.model + (f" w/o {run.ablation}" if run.ablation else "")
        cells = [run.name, model, str(run.step)]
        for metric, _, factor, spec in TABLE_COLUMNS:
            value = run.report.overall.get(metric, math.nan) * factor
            cells.append("n/a" if not math.isfinite(value) else format(value, spec))
        lines.append("| " + " | ".join(cells) + " |")
    count = len(runs[0].report.per_sequence) if runs else 0
    lines += [
        "",
        f"Split `{split}` of `{store}`, {count} sequences; regions from {regions}. Lip max/mean, "
        "upper max and face max: per frame the max (mean) Euclidean vertex distance over the "
        "region, averaged over frames and sequences, in millimetres (the paper's Table II gives "
        "them in metres: 1.52 mm = 0.00152 m). LVE: per frame the max squared lip-vertex "
        "distance, mm². FDD: upper-face dynamics deviation (ground truth minus prediction), mm². "
        "Closure: share of the bilabials where the truth's lips close (inner-lip gap < 1 mm, "
        "phone +-1 frame) at which the prediction's close too. Gap err / corr: inner-lip gap "
        "error and correlation. Range and jitter ratios: mouth-opening range and lip "
        "acceleration, prediction over truth (1 is right).",
    ]
    return "\n".join(lines) + "\n"


def evaluate(
    runs: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    split: str = "test",
    table: str | os.PathLike[str] | None = None,
    regions: str | None = None,
    device: str = "auto",
    seed: int = 0,
    phones: str | os.PathLike[str] | None = None,
    closure: ClosureConfig | None = None,
) -> EvaluateResult:
    """Evaluate trained runs on a store's split with the canonical metrics.

    Args:
        runs: run folders (``mmface4d train -o``).
        data: the store (with a ``splits.json`` holding ``split``).
        output: the report.json path.
        split: the split to evaluate (default ``test``).
        table: also write a Markdown table here.
        regions: region source for :func:`mmface4d.data.analysis.resolve_regions` (a face model
            spec, a BFM ``facemodel_info.mat`` or a folder of ``<region>.txt``); default the
            synthetic face model when the vertex count matches.
        device: ``auto``, ``cpu``, ``cuda``, ...
        seed: seed of the style-reference draw (the same for every run).
        phones: where the lip-sync metrics' phone timing comes from: a synthetic corpus folder
            (its generator's timing), or None to align each sequence's speech with the phoneme
            recogniser (:func:`bilabial_events`).
        closure: also run the lip-closure layer (:mod:`mmface4d.animate.closure`) on each
            prediction, as ``mmface4d animate`` does, timed by the recogniser (never by the
            corpus's timing); None scores the model alone.

    Returns:
        An :class:`EvaluateResult`.
    """
    if not runs:
        raise InputError("evaluate: no runs given")
    run_paths = [Path(r) for r in runs]
    store = Store(data)
    require_split(store, split)
    dataset = FaceSequenceDataset(store, split, window=None, seed=seed)
    num_vertices = dataset.records[0].num_vertices
    template = store.read_template(dataset.records[0].subject)
    region_sets = resolve_regions(regions, template)
    landmark_source = None if regions is None or Path(regions).is_dir() else regions
    landmarks = resolve_landmarks(landmark_source, template)
    lip_sync = LipSyncInputs(
        landmarks,
        bilabial_events(store, dataset.records, phones),
        dataset.records[0].fps,
    )
    target = select_device(device, DistContext())
    results = []
    for name, path in zip(_names(run_paths), run_paths, strict=True):
        trained = load_run(path, target)
        if trained.num_vertices != num_vertices:
            raise InputError(
                f"{path} was trained on {trained.num_vertices} vertices, {store.url} has "
                f"{num_vertices}"
            )
        predictions = _Predictions(
            trained, dataset, closure, (landmarks, region_sets["upper_face"])
        )
        report = evaluate_sequences(predictions, region_sets, lip_sync)
        results.append(
            RunEvaluation(
                name,
                path,
                trained.checkpoint,
                trained.step,
                trained.config.model_name,
                trained.config.ablation,
                report,
            )
        )
        del trained
        if target.type == "cuda":
            torch.cuda.empty_cache()
    source = regions or "the synth face model"
    document: dict[str, Any] = {
        "version": __version__,
        "store": store.url,
        "split": split,
        "sequences": len(dataset),
        "style_seed": seed,
        "regions": {"source": source, **{k: len(region_sets[k]) for k in _REGIONS}},
        "phones": str(phones) if phones is not None else "phoneme recogniser (hama)",
        "lip_closure": None if closure is None else asdict(closure),
        "unit": "m",
        "metrics": {k: {"definition": d, "unit": u} for k, (d, u) in METRIC_DEFINITIONS.items()},
        "runs": [
            {
                "name": r.name,
                "run": str(r.run),
                "checkpoint": str(r.checkpoint),
                "step": r.step,
                "model": r.model,
                "ablation": r.ablation,
                "overall": _finite(r.report.overall),
                "per_sequence": {s: _finite(m) for s, m in r.report.per_sequence.items()},
            }
            for r in results
        ],
    }
    report_path = Path(output)
    with atomic_path(report_path) as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    markdown = format_table(results, split, store.url, source)
    table_path = None if table is None else Path(table)
    if table_path is not None:
        with atomic_path(table_path) as tmp:
            tmp.write_text(markdown)
    return EvaluateResult(report_path, table_path, split, len(dataset), results, markdown)
