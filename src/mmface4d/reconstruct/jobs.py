"""``mmface4d reconstruct``: one recording or a whole capture folder, as resumable batch jobs.

INPUT is a folder in the MMFace4D raw layout (``REC_<cam>.{mp4,nut,json}``, optional
``REC_<cam>.pkl`` landmarks and ``REC.wav``) or a folder of such folders (one per subject, as
``mmface4d synth capture`` writes). Each recording is one pure, idempotent job
(:func:`reconstruct_recording`) whose outputs go to ``OUT/<subject>/``::

    REC_0.nut REC_1.nut REC_2.nut   the tracked mesh sequence (x, y, z; FFV1 gray16le, the
                                    dataset's format), metres in the centre camera's frame
    REC_fit.npz                     per-frame coefficients, raw (unsmoothed) vertices, faces
    REC_calibration.json            the cameras' extrinsics (when estimated here)
    REC_stages.png                  Fig. 3-style per-stage error maps (with ``figures``)
    REC_fit.json                    config, per-frame status and residuals, stage reports,
                                    timings and, for studio captures (``REC_gt_capture.npz``
                                    beside the input), the errors against the ground truth;
                                    written last: its presence marks a finished recording

Every file is written under a temporary name and renamed when complete. The batch
(:func:`mmface4d.batch.run_batch`) skips finished recordings, records failures in
``OUT/manifest.json`` and runs locally or on a Ray cluster.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d import __version__
from mmface4d.atomic import atomic_path
from mmface4d.batch import BatchReport, Job, check_executor, run_batch
from mmface4d.capture.calibration import calibrate, load_calibration, save_calibration
from mmface4d.capture.capture import Capture
from mmface4d.capture.ground_truth import ground_truth_path, read_ground_truth
from mmface4d.capture.layout import find_recordings
from mmface4d.data.nut import encode_nut
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.sources import load_face_model
from mmface4d.reconstruct.config import ReconstructConfig, check_config
from mmface4d.reconstruct.evaluation import vertex_errors
from mmface4d.reconstruct.tracking import Reconstruction, reconstruct_capture, records_as_dicts
from mmface4d.settings import update_dataclass


@dataclass(frozen=True)
class RecordingTask:
    """One recording to reconstruct (the picklable payload of a batch job).

    Attributes:
        folder: the raw recording's folder.
        recording: its id (file prefix).
        output: the output prefix ``OUT/<subject>/<rec>``.
        config: the :class:`ReconstructConfig` as a dictionary.
        face_model: face model spec.
        landmarks: ``auto``, ``file`` or ``detect``.
        calibration: a calibration JSON for every recording, or None (estimate per recording).
        frames: at most this many frames (None: all).
        figures: also write the per-stage error figure.
        progress: show a progress bar over the recording's frames (in-process batches).
    """

    folder: str
    recording: str
    output: str
    config: dict[str, Any]
    face_model: str = "synth"
    landmarks: str = "auto"
    calibration: str | None = None
    frames: int | None = None
    figures: bool = False
    progress: bool = False


def find_tasks(input_folder: str | os.PathLike[str]) -> list[tuple[str, Path, str]]:
    """(key, folder, recording) of every raw recording in ``input_folder`` or its
    immediate subfolders; key = ``<subfolder>/<rec>`` (or ``<folder name>/<rec>``)."""
    root = Path(input_folder)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    found = [(f"{root.name}/{rec}", root, rec) for rec in find_recordings(root)]
    if not found:
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            found += [(f"{sub.name}/{rec}", sub, rec) for rec in find_recordings(sub)]
    if not found:
        raise InputError(
            f"{root}: no recording found (expected REC_<cam>.json/.mp4/.nut files in it or in "
            "its subfolders)"
        )
    return found


def fit_json_path(prefix: str | os.PathLike[str]) -> Path:
    return Path(f"{prefix}_fit.json")


_MODELS: dict[str, FaceModel] = {}


def _face_model(spec: str) -> FaceModel:
    if spec not in _MODELS:  # one load per worker process
        _MODELS[spec] = load_face_model(spec)
    return _MODELS[spec]


def _calibrated(capture: Capture, task: RecordingTask) -> tuple[Capture, str]:
    if task.calibration is not None:
        result = load_calibration(task.calibration)
        source = task.calibration
    else:
        path = Path(f"{task.output}_calibration.json")
        if path.is_file():
            result = load_calibration(path)
        else:
            result = calibrate(capture, landmarks=task.landmarks)  # type: ignore[arg-type]
            save_calibration(path, result)
        source = str(path)
    if len(result.extrinsics) != capture.num_cameras:
        raise InputError(
            f"{source}: calibrates {len(result.extrinsics)} cameras, the recording has "
            f"{capture.num_cameras}"
        )
    return capture.with_extrinsics(result.extrinsics), source


def reconstruct_recording(task: RecordingTask, progress: bool = False) -> dict[str, Any]:
    """Reconstruct one recording and write its outputs (see the module doc).

    Returns:
        The summary also stored in ``REC_fit.json`` (without the per-frame records).
    """
    start = time.perf_counter()
    config = update_dataclass(ReconstructConfig(), task.config, "reconstruct config")
    check_config(config)
    model = _face_model(task.face_model)
    # a camera that stopped early leaves blank frames: the others carry the fit on
    capture = Capture.from_raw(task.folder, task.recording, allow_dropouts=True)
    capture, calibration = _calibrated(capture, task)
    result = reconstruct_capture(
        capture,
        model,
        config,
        landmarks=task.landmarks,  # type: ignore[arg-type]
        frames=task.frames,
        progress=progress,
    )
    prefix = Path(task.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    encode_nut(result.vertices, prefix, fps=result.fps)
    with atomic_path(f"{prefix}_fit.npz") as tmp:
        np.savez_compressed(
            tmp,
            raw_vertices=result.raw_vertices,
            faces=model.faces,
            stage_vertices=result.stage_vertices,
            fps=np.float64(result.fps),
            **{f"coefficients_{k}": v for k, v in result.coefficients.items()},
        )
    truth_vertices = _truth_vertices(task, model)
    truth = None if truth_vertices is None else ground_truth_errors(result, truth_vertices, model)
    if task.figures:
        from mmface4d.reconstruct.figures import stage_figure

        first = None if truth_vertices is None else truth_vertices[result.first_frame]
        stage_figure(capture, model, result, config, f"{prefix}_stages.png", first)
    summary = {
        **result.summary(),
        "recording": f"{task.folder}/{task.recording}",
        "calibration": calibration,
        "camera_frames": list(capture.ends),
        "face_model": task.face_model,
        "stages": [
            {
                "stage": s.stage,
                "iterations": s.iterations,
                "seconds": round(s.seconds, 3),
                "loss": [round(x, 6) for x in s.loss],
            }
            for s in result.stages
        ],
        "ground_truth": truth,
        "seconds": round(time.perf_counter() - start, 2),
    }
    record = {
        "version": __version__,
        "summary": summary,
        "config": config.to_dict(),
        "frames": records_as_dicts(result.frames),
    }
    with atomic_path(fit_json_path(prefix)) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return summary


def _truth_vertices(task: RecordingTask, model: FaceModel) -> np.ndarray | None:
    """(T, V, 3) the studio's true meshes beside the input (``REC_gt_capture.npz``), when
    there are some of the fitted model's topology."""
    path = ground_truth_path(task.folder, task.recording)
    if not path.is_file():
        return None
    vertices = read_ground_truth(path).vertices
    return vertices if vertices.shape[1] == model.num_vertices else None


def ground_truth_errors(
    result: Reconstruction, truth: np.ndarray, model: FaceModel
) -> dict[str, Any]:
    """Per-region errors of the first frame after each stage and of the whole sequence
    (smoothed and not) against (T, V, 3) true meshes."""
    frames = len(result.vertices)
    first = truth[result.first_frame][None]
    return {
        "first_frame_after_stage": {
            stage.stage: vertex_errors(vertices[None], first, model.regions)
            for stage, vertices in zip(result.stages, result.stage_vertices, strict=True)
        },
        "sequence": vertex_errors(result.vertices, truth[:frames], model.regions),
        "sequence_unsmoothed": vertex_errors(result.raw_vertices, truth[:frames], model.regions),
    }


def _run_task(task: RecordingTask) -> dict[str, Any]:
    return reconstruct_recording(task, progress=task.progress)


def reconstruct(
    input_folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: ReconstructConfig | None = None,
    *,
    face_model: str = "synth",
    landmarks: str = "auto",
    calibration: str | os.PathLike[str] | None = None,
    frames: int | None = None,
    figures: bool = False,
    executor: str = "local",
    workers: int = 1,
    progress: bool = True,
) -> BatchReport:
    """Reconstruct every recording of ``input_folder`` into ``output`` (see the module doc).

    Finished recordings (their ``REC_fit.json`` exists) are skipped; failures are recorded in
    ``output/manifest.json`` and do not stop the batch.

    Args:
        input_folder: one raw recording folder or a folder of them.
        output: the output folder.
        config: the fit's configuration (default: the paper's).
        face_model: face model spec (``synth``, ``bfm:DIR``, ``ict:DIR``, ``model.npz``).
        landmarks: ``auto``, ``file`` or ``detect``.
        calibration: one calibration JSON for every recording (None: estimated per recording).
        frames: at most this many frames per recording.
        figures: also write each recording's per-stage error figure.
        executor: ``local`` or ``ray``.
        workers: parallel recordings.
        progress: show the batch's progress.
    """
    config = config or ReconstructConfig()
    check_config(config)
    check_executor(executor, workers)
    if landmarks not in ("auto", "file", "detect"):
        raise InputError(f"--landmarks: expected auto, file or detect, got {landmarks!r}")
    if calibration is not None and not Path(calibration).is_file():
        raise InputError(f"{calibration}: calibration file not found")
    if frames is not None and frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    _face_model(face_model)  # fails early on a bad spec (and in-process jobs reuse it)
    out = Path(output)
    jobs = []
    for key, folder, recording in find_tasks(input_folder):
        task = RecordingTask(
            folder=str(folder.resolve()),
            recording=recording,
            output=str((out / key).resolve()),
            config=config.to_dict(),
            face_model=face_model,
            landmarks=landmarks,
            calibration=None if calibration is None else str(Path(calibration).resolve()),
            frames=frames,
            figures=figures,
            progress=progress and executor == "local" and workers == 1,
        )
        jobs.append(Job(key, task))
    return run_batch(
        jobs,
        _run_task,
        out,
        is_done=lambda key: fit_json_path(out / key).is_file(),
        executor=executor,
        workers=workers,
        progress=progress,
        desc="reconstruct",
    )
