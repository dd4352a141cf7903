"""Sequence tracking: the three-stage fit on the first frame, then frame-to-frame tracking.

:func:`reconstruct_capture` streams a recording (:class:`~mmface4d.capture.capture.Capture`),
fits the first usable frame from scratch (:meth:`FaceFitter.fit_first_frame`) and every later
one from the last good frame (:meth:`FaceFitter.track`), then low-pass filters the vertices
over time (:func:`smooth_vertices`; the official release filters at 5 Hz).

Per frame it records a status and residuals (:class:`FrameRecord`). A frame is ``failed`` when
it cannot be fitted -- no camera has depth, or the fit diverges twice (the second try restarts
from the last good frame at half the rate) -- and ``recovered`` when the second try succeeded.
A failed frame's mesh is interpolated from its good neighbours and flagged, never left as
garbage; a recording whose every frame failed raises :class:`ReconstructionFailed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from scipy import signal
from tqdm import tqdm

from mmface4d.capture.capture import Capture, CaptureFrame
from mmface4d.capture.landmarks import FrameLandmarks, LandmarkMode
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry.frames import MM_PER_M
from mmface4d.reconstruct.config import ReconstructConfig, StageConfig
from mmface4d.reconstruct.fitting import FaceFitter, FaceParameters, FitDiverged, StageReport
from mmface4d.reconstruct.observation import FrameObservation, observe, reduction_factor

#: Fewest measured depth pixels (all cameras, working resolution) for a frame to be fitted.
MIN_DEPTH_PIXELS = 200


class ReconstructionFailed(RuntimeError):
    """No frame of a recording could be fitted."""


@dataclass
class FrameRecord:
    """How one frame went.

    Attributes:
        index: frame index.
        status: ``ok``, ``recovered`` (diverged once, refitted), ``failed`` (interpolated from
            its neighbours) or ``skipped`` (outside the requested range).
        reason: why it failed or was recovered.
        seconds: fitting time.
        depth_rmse_mm: RMS depth residual over the pixels where the fitted face and the
            measurement overlap (residuals over 20 mm, i.e. other surfaces, left out).
        depth_coverage: fraction of the rendered face pixels that have a measured depth.
        landmark_rmse_px: RMS landmark distance at the recording's resolution.
        loss: final total loss.
        iterations: optimiser iterations (all stages).
        cameras_with_landmarks: how many cameras had landmarks.
    """

    index: int
    status: str = "ok"
    reason: str | None = None
    seconds: float = 0.0
    depth_rmse_mm: float | None = None
    depth_coverage: float | None = None
    landmark_rmse_px: float | None = None
    loss: float | None = None
    iterations: int = 0
    cameras_with_landmarks: int = 0


@dataclass
class Reconstruction:
    """A tracked recording.

    Attributes:
        vertices: (T, V, 3) float32 metres in the reference camera's frame, smoothed when the
            config asks for it.
        raw_vertices: (T, V, 3) before smoothing.
        coefficients: per-frame arrays: ``expression`` (T, K_exp), ``rotation`` (T, 3, 3),
            ``translation`` (T, 3), ``lighting`` (T, C, 27); per-recording ``identity``
            (K_id,) and ``albedo`` (K_alb,) of the first frame.
        frames: one :class:`FrameRecord` per frame.
        stages: the first frame's :class:`StageReport` per stage.
        stage_vertices: (3, V, 3) the first fitted frame after each stage (for error maps).
        first_frame: index of the first fitted frame.
        fps: frame rate.
    """

    vertices: np.ndarray
    raw_vertices: np.ndarray
    coefficients: dict[str, np.ndarray]
    frames: list[FrameRecord]
    stages: list[StageReport]
    stage_vertices: np.ndarray
    first_frame: int
    fps: float

    def summary(self) -> dict[str, object]:
        """Counts and medians, JSON-able."""
        statuses = [f.status for f in self.frames]

        def median(name: str) -> float | None:
            values = [getattr(f, name) for f in self.frames if getattr(f, name) is not None]
            return round(float(np.median(values)), 4) if values else None

        tracked = [f.seconds for f in self.frames if f.status in ("ok", "recovered")][1:]
        per_tracked_frame = round(float(np.mean(tracked)), 3) if tracked else None
        return {
            "frames": len(self.frames),
            **{status: statuses.count(status) for status in ("ok", "recovered", "failed")},
            "seconds_first_frame": round(sum(s.seconds for s in self.stages), 3),
            "seconds_per_tracked_frame": per_tracked_frame,
            "median_depth_rmse_mm": median("depth_rmse_mm"),
            "median_landmark_rmse_px": median("landmark_rmse_px"),
        }


def smooth_vertices(vertices: np.ndarray, fps: float, cutoff_hz: float | None) -> np.ndarray:
    """Zero-phase low-pass filter of a (T, V, 3) sequence along time (4th-order Butterworth,
    forward and backward); sequences too short to filter are returned unchanged."""
    if cutoff_hz is None or len(vertices) < 4 or cutoff_hz >= fps / 2:
        return vertices.copy()
    sos = signal.butter(4, cutoff_hz, fs=fps, output="sos")
    padlen = min(len(vertices) - 1, 3 * (2 * len(sos) + 1))
    flat = vertices.reshape(len(vertices), -1).astype(np.float64)
    return (
        signal.sosfiltfilt(sos, flat, axis=0, padlen=padlen)
        .reshape(vertices.shape)
        .astype(np.float32)
    )


def frame_residuals(
    fitter: FaceFitter, params: FaceParameters, observation: FrameObservation, factor: int
) -> dict[str, float | None]:
    """Depth RMS (mm), depth coverage and landmark RMS (full-resolution pixels) of a fit."""
    with torch.no_grad():
        render = fitter.render(params, observation)
        mask = render.mask[0]
        measured = mask & (observation.depth > 0)
        residual = (render.depth[0] - observation.depth)[measured] * MM_PER_M
        residual = residual[residual.abs() < 20.0]
        out: dict[str, float | None] = {
            "depth_rmse_mm": float(residual.square().mean().sqrt()) if len(residual) else None,
            "depth_coverage": float(measured.sum() / mask.sum().clamp_min(1)),
            "landmark_rmse_px": None,
        }
        valid = observation.landmark_valid
        if valid.any() and observation.landmarks.shape[1] == len(fitter.landmark_index):
            projected = fitter.project_landmarks(params, observation)
            distance = (projected - observation.landmarks).norm(dim=-1)[valid]
            out["landmark_rmse_px"] = float(distance.square().mean().sqrt()) * factor
    return out


def _halved(stage: StageConfig) -> StageConfig:
    return replace(stage, lr=stage.lr / 2)


@dataclass
class _Track:
    """What :func:`reconstruct_capture` gathers, frame by frame."""

    records: list[FrameRecord] = field(default_factory=list)
    raw: list[np.ndarray | None] = field(default_factory=list)
    """Per frame, the (V, 3) fitted vertices or None (failed)."""
    per_frame: list[dict[str, np.ndarray] | None] = field(default_factory=list)
    """Per frame, the fitted coefficients or None (failed)."""
    last: FaceParameters | None = None
    """The last good frame's parameters (where the next frame starts)."""
    stages: list[StageReport] = field(default_factory=list)
    stage_vertices: np.ndarray | None = None
    first: int = -1
    """Index of the first fitted frame (-1: none yet)."""


def _why_not_fitted(observation: FrameObservation, record: FrameRecord, track: _Track) -> str:
    """Why a frame cannot be fitted ("" when it can)."""
    if int((observation.depth > 0).sum()) < MIN_DEPTH_PIXELS:
        return "no depth in any camera"
    if track.last is None and record.cameras_with_landmarks == 0:
        return "no face found to start from"
    return ""


def _keep_fit(fitter: FaceFitter, fit: _FrameFit | None, frame_index: int, track: _Track) -> None:
    """Append the frame's fit (or a gap) to ``track``; the first fit also gives the stages."""
    if fit is None:
        track.raw.append(None)
        track.per_frame.append(None)
        return
    params = fit.params
    if track.last is None:
        track.stages = fit.stages
        track.stage_vertices = np.stack(
            [fitter.world_vertices(p).detach().cpu().numpy() for p in fit.snapshots]
        )
        track.first = frame_index
    track.last = params
    with torch.no_grad():
        track.raw.append(fitter.world_vertices(params).cpu().numpy().astype(np.float32))
    track.per_frame.append(params.as_numpy())


def _track_frame(
    fitter: FaceFitter,
    capture: Capture,
    frame: CaptureFrame,
    source: FrameLandmarks,
    config: ReconstructConfig,
    track: _Track,
) -> FrameRecord:
    """Find the landmarks of one frame, fit it from the last good frame, and record it."""
    start = time.perf_counter()
    record = FrameRecord(frame.index)
    marks = source(frame.index, frame.colour)
    record.cameras_with_landmarks = sum(m is not None for m in marks)
    observation = observe(
        frame.index, frame.colour, frame.depth, capture.calibrations, marks, config.scale
    ).to(fitter.device)
    reason = _why_not_fitted(observation, record, track)
    if reason:
        record.status, record.reason = "failed", reason
    fit = None if reason else _fit_frame(fitter, track.last, observation, record)
    _keep_fit(fitter, fit, frame.index, track)
    if fit is not None:
        factor = reduction_factor(config.scale)
        record.__dict__.update(frame_residuals(fitter, fit.params, observation, factor))
    record.seconds = time.perf_counter() - start
    track.records.append(record)
    return record


def reconstruct_capture(
    capture: Capture,
    model: FaceModel,
    config: ReconstructConfig | None = None,
    *,
    landmarks: LandmarkMode = "auto",
    frames: int | None = None,
    progress: bool = True,
    on_frame: Callable[[FrameRecord], None] | None = None,
) -> Reconstruction:
    """Fit and track a face through a calibrated recording.

    Args:
        capture: the recording, its cameras' extrinsics set (:meth:`Capture.with_extrinsics`).
        model: the face model to fit.
        config: stages, weights and options (default :class:`ReconstructConfig`).
        landmarks: ``file``, ``detect`` or ``auto`` (see
            :class:`~mmface4d.capture.landmarks.FrameLandmarks`).
        frames: process at most this many frames from the start (None: all).
        progress: show a progress bar over the frames.
        on_frame: called with each frame's record as it is done.

    Raises:
        InputError: bad arguments.
        ReconstructionFailed: no frame could be fitted.
    """
    config = config or ReconstructConfig()
    total = len(capture) if frames is None else min(int(frames), len(capture))
    if total < 1:
        raise InputError(f"frames: expected at least 1 frame, got {frames}")
    fitter = FaceFitter(model, config, capture.num_cameras)
    track = _Track()
    bar = tqdm(total=total, desc="reconstruct", unit="frame", disable=not progress, leave=False)
    with FrameLandmarks(capture, landmarks) as source:
        for frame in capture.frames(0, total):
            record = _track_frame(fitter, capture, frame, source, config, track)
            if on_frame is not None:
                on_frame(record)
            bar.set_postfix(failed=sum(r.status == "failed" for r in track.records))
            bar.update()
    bar.close()
    if track.first < 0:
        reasons = sorted({r.reason for r in track.records if r.reason})
        raise ReconstructionFailed(f"no frame could be fitted ({'; '.join(reasons)})")
    vertices = _fill_failed(track.raw)
    return Reconstruction(
        vertices=smooth_vertices(vertices, capture.fps, config.smoothing_hz),
        raw_vertices=vertices,
        coefficients=_stack_coefficients(track.per_frame),
        frames=track.records,
        stages=track.stages,
        stage_vertices=track.stage_vertices,
        first_frame=track.first,
        fps=capture.fps,
    )


@dataclass
class _FrameFit:
    """A fitted frame: its parameters and, for the first frame, the stage reports and the
    parameters after each stage."""

    params: FaceParameters
    stages: list[StageReport] = field(default_factory=list)
    snapshots: list[FaceParameters] = field(default_factory=list)


def _fit_frame(
    fitter: FaceFitter,
    last: FaceParameters | None,
    observation: FrameObservation,
    record: FrameRecord,
) -> _FrameFit | None:
    """Fit a frame from scratch (``last`` None) or from the last good one; None when it
    failed (``record`` updated)."""
    config = fitter.config
    try:
        for attempt in range(2):
            try:
                if last is None:
                    params, reports, snapshots = fitter.fit_first_frame(observation)
                    record.iterations = sum(r.iterations for r in reports)
                    record.loss = reports[-1].loss[1]
                    return _FrameFit(params, reports, snapshots)
                params, report = fitter.track(last, observation)
                record.iterations, record.loss = report.iterations, report.loss[1]
                return _FrameFit(params)
            except FitDiverged as exc:
                record.status, record.reason = ("failed" if attempt else "recovered"), str(exc)
                fitter.config = replace(
                    config,
                    landmark_stage=_halved(config.landmark_stage),
                    model_stage=_halved(config.model_stage),
                    vertex_stage=_halved(config.vertex_stage),
                    tracking_stage=_halved(config.tracking_stage),
                )
        return None
    finally:
        fitter.config = config


def _fill_failed(raw: list[np.ndarray | None]) -> np.ndarray:
    """(T, V, 3): failed frames linearly interpolated between their good neighbours (held at
    the ends)."""
    good = [t for t, v in enumerate(raw) if v is not None]
    out = np.empty((len(raw), *raw[good[0]].shape), dtype=np.float32)
    for t, vertices in enumerate(raw):
        if vertices is not None:
            out[t] = vertices
            continue
        before = max((g for g in good if g < t), default=None)
        after = min((g for g in good if g > t), default=None)
        if before is None or after is None:
            out[t] = raw[before if after is None else after]
        else:
            w = (t - before) / (after - before)
            out[t] = (1 - w) * raw[before] + w * raw[after]
    return out


def _stack_coefficients(per_frame: list[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray]:
    """Per-frame arrays stacked over time (NaN for failed frames)."""
    good = next(p for p in per_frame if p is not None)
    out: dict[str, np.ndarray] = {"identity": good["identity"], "albedo": good["albedo"]}
    for key in ("expression", "rotation", "translation", "lighting"):
        stacked = np.full((len(per_frame), *good[key].shape), np.nan, dtype=np.float32)
        for t, params in enumerate(per_frame):
            if params is not None:
                stacked[t] = params[key]
        out[key] = stacked
    return out


def records_as_dicts(records: list[FrameRecord]) -> list[dict[str, object]]:
    """JSON-able frame records (floats rounded)."""
    rows = []
    for record in records:
        row = asdict(record)
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 4)
        rows.append(row)
    return rows
