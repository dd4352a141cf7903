"""Building a packed store from a source folder (:func:`pack`) and summarising one (:func:`info`).

``pack`` is resumable: a sequence whose completion record exists is skipped; an interrupted one
(no record) is rewritten. Sequences are the independent jobs of one batch
(:func:`mmface4d.batch.run_batch`), so ``workers > 1`` decodes and writes them in parallel
processes (spawned, so no Zarr/fsspec event-loop thread is inherited) or Ray tasks; a local
store keeps the batch's ``manifest.json`` beside its ``manifest.parquet``. A sequence with bad
input (corrupt .nut, NaN vertices, short audio, ...) does not stop the others: the pack
finishes them, writes the store's manifest, then raises one error naming every failed sequence
(:class:`~mmface4d.batch.BatchFailed`). Any other error (a full disk) stops the pack.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d.audio.io import DEFAULT_SAMPLE_RATE
from mmface4d.batch import Job, check_executor, run_batch
from mmface4d.data.importers import (
    TEMPLATES_FILE,
    SequenceSource,
    SourceScan,
    load_sequence,
    scan_sources,
)
from mmface4d.data.manifest import SequenceRecord
from mmface4d.data.splits import load_splits
from mmface4d.data.store import Store
from mmface4d.errors import InputError

#: Template sources that came with the data (FaceFormer's pickle, a synthetic corpus's npz).
TEMPLATE_FILES = ("templates.pkl", TEMPLATES_FILE)


@dataclass(frozen=True)
class PackResult:
    """What a :func:`pack` run did.

    Attributes:
        store: the store's URL.
        layout: the source layout used.
        packed: sequence ids written by this run.
        skipped: sequence ids already complete (not rewritten).
        unmatched: source files that could not be paired (a wav without vertices, ...).
        frames_packed: frames written by this run.
        seconds: wall time of this run.
    """

    store: str
    layout: str
    packed: list[str]
    skipped: list[str]
    unmatched: list[str]
    frames_packed: int
    seconds: float


def _pack_one(store: Store, source: SequenceSource, max_trim_frames: int | None) -> SequenceRecord:
    loaded = load_sequence(source, max_trim_frames)
    metadata = dict(
        source.metadata,
        layout=source.layout,
        source=source.source,
        trimmed_frames=loaded.trimmed_frames,
        trimmed_samples=loaded.trimmed_samples,
    )
    return store.write_sequence(
        source.sequence_id,
        loaded.vertices,
        loaded.audio,
        fps=source.fps,
        sample_rate=DEFAULT_SAMPLE_RATE,
        metadata=metadata,
    )


def _pack_job(args: tuple[Store, SequenceSource, int | None]) -> dict[str, Any]:
    """The batch job of one sequence: decode it and write it to the store."""
    record = _pack_one(*args)
    return {"num_frames": record.num_frames, "num_vertices": record.num_vertices}


def pack(
    src: str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    layout: str = "auto",
    fps: float | None = None,
    subsample: int = 1,
    num_vertices: int | None = None,
    workers: int = 1,
    max_trim_frames: int | None = 1,
    storage_options: dict | None = None,
    progress: bool = True,
    executor: str = "local",
) -> PackResult:
    """Pack the sequences of a source folder into a store (resumable).

    Args:
        src: an MMFace4D-layout or FaceFormer-layout folder (see :mod:`.importers`).
        store: the store's folder or fsspec URL; created if new, extended if it exists.
        layout: ``auto``, ``mmface4d`` or ``faceformer``.
        fps: mesh frame rate of the files (MMFace4D default 30; required for FaceFormer).
        subsample: keep every n-th frame (VOCASET: fps 60, subsample 2).
        num_vertices: V of MMFace4D .nut files (default 35,709 for 189x189 frames).
        workers: sequences packed at once (1: in this process).
        max_trim_frames: most mesh frames that may be dropped because the audio is shorter.
        storage_options: fsspec options for the store.
        progress: show a tqdm progress bar.
        executor: ``local`` (this process or a process pool) or ``ray``
            (:func:`mmface4d.batch.run_batch`).

    Returns:
        What was packed and skipped.

    Raises:
        InputError: bad arguments, a duplicate sequence id, or (after packing all others,
            :class:`~mmface4d.batch.BatchFailed`) the sequences whose input was bad.
    """
    started = time.perf_counter()
    check_executor(executor, workers)
    scan = scan_sources(src, layout, fps, subsample, num_vertices)
    target = Store(store, storage_options)
    if (workers > 1 or executor == "ray") and target.url.startswith("memory://"):
        raise InputError(f"{target.url}: a memory:// store lives in one process; use workers=1")
    target.initialise()
    finished = target.finished_records()
    skipped = _skipped(scan, finished)
    report = run_batch(
        [Job(s.sequence_id, (target, s, max_trim_frames)) for s in scan.sources],
        _pack_job,
        Path(target.path("")) if target.is_local else None,  # beside manifest.parquet
        is_done=finished.__contains__,
        executor=executor,
        workers=workers,
        progress=progress,
        desc="data pack",
        job_errors=InputError,  # bad input fails its sequence; a full disk stops the pack
        start_method="spawn",
    )
    written = [r for r in report.results if r.status == "done"]
    _finalise(target, scan, [r.key for r in written])
    report.check("sequences")
    return PackResult(
        store=target.url,
        layout=scan.layout,
        packed=sorted(r.key for r in written),
        skipped=skipped,
        unmatched=scan.unmatched,
        frames_packed=sum(int(r.summary["num_frames"]) for r in written if r.summary),
        seconds=time.perf_counter() - started,
    )


def _skipped(scan: SourceScan, finished: dict[str, SequenceRecord]) -> list[str]:
    """The ids of the scanned sequences already packed from the same source.

    Raises:
        InputError: a packed sequence of the same id came from another source.
    """
    skipped = []
    for source in scan.sources:
        done = finished.get(source.sequence_id)
        if done is None:
            continue
        if done.source != source.source or done.layout != source.layout:
            raise InputError(
                f"duplicate sequence id {source.sequence_id!r}: already packed from "
                f"{done.source} ({done.layout}), found again in {scan.root / source.source}"
            )
        skipped.append(source.sequence_id)
    return skipped


def _finalise(store: Store, scan: SourceScan, written: list[str]) -> None:
    """Write templates for subjects that need one, then the manifest from all records."""
    records = store.finished_records()
    by_subject: dict[str, list[SequenceRecord]] = defaultdict(list)
    for record in records.values():
        by_subject[record.subject].append(record)
    existing = store.template_info()
    changed = {records[sid].subject for sid in written if sid in records}
    templates: dict[str, tuple[np.ndarray, str]] = {}
    for subject, subject_records in sorted(by_subject.items()):
        vertex_counts = {r.num_vertices for r in subject_records}
        if len(vertex_counts) != 1:
            raise InputError(
                f"subject {subject!r}: sequences have different vertex counts {vertex_counts}"
            )
        given = scan.templates.get(subject)
        if given is not None:
            if given.shape[0] not in vertex_counts:
                raise InputError(
                    f"subject {subject!r}: template has {given.shape[0]} vertices, sequences "
                    f"have {vertex_counts.pop()}"
                )
            if subject in changed or subject not in existing:
                label = TEMPLATE_FILES[0] if scan.layout == "faceformer" else TEMPLATE_FILES[1]
                templates[subject] = (given, label)
        elif existing.get(subject, {}).get("source") in TEMPLATE_FILES:
            continue
        elif subject in changed or subject not in existing:
            templates[subject] = _mean_template(store, subject_records)
    if templates:
        store.write_templates(templates)
    store.write_manifest(list(records.values()))


def _mean_template(store: Store, records: list[SequenceRecord]) -> tuple[np.ndarray, str]:
    """Mean of all frames of a subject's sequences: the frame-weighted mean of their stored
    reference frames (each the mean of its sequence)."""
    total = np.zeros((records[0].num_vertices, 3), dtype=np.float64)
    frames = 0
    for record in records:
        total += store.read_reference(record.sequence_id) * record.num_frames
        frames += record.num_frames
    return (total / frames).astype(np.float32), (
        f"mean of {frames} frames of {len(records)} sequences"
    )


@dataclass(frozen=True)
class StoreInfo:
    """Summary of a store, as ``mmface4d data info`` prints it.

    Attributes:
        store: URL.
        sequences, subjects, frames: counts.
        hours: total speech duration.
        bytes_on_disk: all files of the store.
        bytes_per_frame: bytes_on_disk / frames.
        num_vertices, fps: the distinct values.
        layouts, emotions: sequence counts per source layout and per emotion.
        split: the name of the stored split (``random``, ``vocaset``, ``biwi``) or None.
        splits: per split {"sequences", "subjects", "frames"}.
        unfinalised: complete sequence records not yet in the manifest (re-run pack).
    """

    store: str
    sequences: int
    subjects: int
    frames: int
    hours: float
    bytes_on_disk: int
    bytes_per_frame: float
    num_vertices: list[int]
    fps: list[float]
    layouts: dict[str, int]
    emotions: dict[str, int]
    split: str | None
    splits: dict[str, dict[str, int]]
    unfinalised: int


def info(store: str | os.PathLike[str] | Store, storage_options: dict | None = None) -> StoreInfo:
    """Summarise a packed store (sequences, subjects, frames, hours, bytes, splits)."""
    st = store if isinstance(store, Store) else Store(store, storage_options)
    records = list(st.records.values())
    frames = sum(r.num_frames for r in records)
    size = int(st.fs.du(st.path(""), total=True))
    counts: dict[str, dict[str, Any]] = {}
    splits = load_splits(st)
    if splits is not None:
        by_split: dict[str, list[SequenceRecord]] = defaultdict(list)
        for record in records:
            by_split[splits.sequences.get(record.sequence_id, "unassigned")].append(record)
        counts = {
            name: {
                "sequences": len(rs),
                "subjects": len({r.subject for r in rs}),
                "frames": sum(r.num_frames for r in rs),
            }
            for name, rs in sorted(by_split.items())
        }

    def tally(values: list[Any]) -> dict[str, int]:
        table: dict[str, int] = defaultdict(int)
        for value in values:
            table[str(value)] += 1
        return dict(sorted(table.items()))

    return StoreInfo(
        store=st.url,
        sequences=len(records),
        subjects=len({r.subject for r in records}),
        frames=frames,
        hours=sum(r.duration_s for r in records) / 3600.0,
        bytes_on_disk=size,
        bytes_per_frame=size / frames if frames else 0.0,
        num_vertices=sorted({r.num_vertices for r in records}),
        fps=sorted({r.fps for r in records}),
        layouts=tally([r.layout for r in records]),
        emotions=tally([r.emotion for r in records]),
        split=None if splits is None else splits.name,
        splits=counts,
        unfinalised=len(set(st.finished_records()) - {r.sequence_id for r in records}),
    )
