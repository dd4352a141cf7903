"""Film synthetic recordings with the studio into the MMFace4D raw capture layout.

``capture(SOURCE, OUT)`` turns mesh sequences whose every vertex is known into what the MMFace4D
cameras record, so that calibration, reconstruction and tracking read them exactly as real data
(:meth:`mmface4d.capture.Capture.from_raw`) and can be scored against the truth.

SOURCE is a synthetic corpus folder (every recording of its ``manifest.csv``), one recording
prefix (``DIR/S001/210003`` of ``DIR/S001/210003_{0,1,2}.nut``) or an NPZ mesh sequence with
faces (:func:`mmface4d.data.sequence.load_sequence`). Layout of OUT, one folder per subject as
in the corpus (a lone prefix or NPZ goes in a folder named like its parent folder)::

    capture.json                     the configuration (scale, frames, seed, face model, source)
    S001/210003_<c>.mp4              colour, H.264, camera c = 0, 1, 2 (1 = centre)
    S001/210003_<c>.nut              depth, FFV1 gray16le millimetres, registered to colour
    S001/210003_<c>.json             intrinsics (MMFace4D json; no extrinsics, as the dataset)
    S001/210003_<c>.pkl              HRNetv2-98 landmarks, (T, 98, 2) float64 pixels
    S001/210003.wav                  the speech (when the source has one), cut to the video
    S001/210003_gt_capture.npz/.json the truth: camera poses, intrinsics, meshes, lighting
                                     (:func:`mmface4d.synth.studio.save_ground_truth`); written
                                     last, so its presence marks a complete recording

Colour: the subject's albedo (the corpus ground truth's albedo coefficients on the face model),
else the NPZ's ``colors``, else the face model's mean albedo when the vertex count matches, else
a uniform skin tone (:data:`SKIN_TONE`).

Landmarks imitate the dataset's HRNetv2 (WFLW-98) files: the 68 iBUG-equivalent points are the
face model's landmark vertices projected into each camera with the studio's detector-like noise
(:data:`~mmface4d.synth.studio.LANDMARK_NOISE_PX`, scaled with the resolution) and placed at
their WFLW indices (:data:`~mmface4d.facemodel.landmark_maps.HRNET98_OF_IBUG68`); the other 30
are interpolated from them (:func:`hrnet98_from_ibug68`), so no point is NaN. A mesh whose
vertex count differs from the face model's has no landmark vertices: it gets no ``.pkl``.
Hidden landmarks are projected all the same: in the side views the far cheek's contour points
fall inside the face, where HRNet would put them on the silhouette.

Odd working sizes (scale 1/8 gives 240 x 135) lose their last row or column, since H.264 yuv420p
needs even sizes; cropping the bottom/right keeps the intrinsics exact.

Randomness: the rig's pose perturbation and backdrop are drawn per subject (one studio session:
every recording of a subject shares the cameras), the lighting and all per-frame noise per
recording; both from (seed, name), so re-running reproduces every file and resumes where it
stopped (finished recordings are skipped; each file is written under a temporary name first).
Recordings are the jobs of one batch (:func:`mmface4d.batch.run_batch`: local processes or Ray,
``OUT/manifest.json`` records what each run did, a failed recording fails alone and is listed).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mmface4d import __version__
from mmface4d.atomic import atomic_path
from mmface4d.audio.io import DEFAULT_SAMPLE_RATE, load_audio
from mmface4d.batch import Job, check_executor, run_batch
from mmface4d.capture.cameras import CameraCalibration
from mmface4d.capture.ground_truth import GT_SUFFIX
from mmface4d.capture.layout import RawRecordingWriter
from mmface4d.errors import InputError
from mmface4d.facemodel.landmark_maps import HRNET98_OF_IBUG68, landmark_vertices
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.sources import load_face_model
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.synth.studio import (
    LANDMARK_NOISE_PX,
    StudioGroundTruth,
    StudioRig,
    project_landmarks,
    render_capture,
    sample_lighting,
    save_ground_truth,
)

#: Linear RGB albedo of meshes without colours: the synth model's mean albedo, averaged.
SKIN_TONE = (0.76, 0.57, 0.48)
#: Lower-brow-edge offset from the upper edge, as a fraction of the outer-eye-corner distance:
#: 0.071-0.087 (mean 0.082) on the real MMFace4D sample 000337, 3 cameras x 67 frames.
BROW_THICKNESS = 0.08
CONFIG_NAME = "capture.json"
_CAMERAS = 3


@dataclass(frozen=True)
class CaptureConfig:
    """What ``mmface4d synth capture`` films (saved as ``capture.json`` in the output)."""

    source: str
    """The corpus folder, recording prefix or NPZ sequence (absolute path)."""
    scale: float = 1.0
    """Working resolution as a fraction of 1920x1080 (0.25 -> 480x270)."""
    frames: int | None = None
    """Film at most this many frames of each recording (None: all)."""
    seed: int = 0
    """Seed of the rigs, lighting and all noise."""
    face_model: str = "synth"
    """Face model spec of the meshes (topology, albedo, landmark vertices)."""
    detail_mm: float = 0.0
    """Std of each subject's fine surface detail, millimetres (0: none; see
    :func:`add_subject_detail`)."""


@dataclass(frozen=True)
class CaptureJob:
    """One recording to film.

    Attributes:
        key: ``subject/name``, e.g. ``S001/210003``; the output is ``OUT/subject/name_*``.
        mesh: the mesh source: a ``.nut`` prefix or an ``.npz`` file.
        truth: the corpus ground truth (``<prefix>_gt.npz``) when there is one.
        audio: the speech file when there is one.
    """

    key: str
    mesh: Path
    truth: Path | None
    audio: Path | None

    @property
    def subject(self) -> str:
        return self.key.split("/")[0]

    @property
    def name(self) -> str:
        return self.key.split("/")[1]


def stable_seed(seed: int, name: str) -> int:
    """A 32-bit seed from a run's seed and a name, the same in every process and run."""
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def hrnet98_from_ibug68(points: np.ndarray) -> np.ndarray:
    """WFLW/HRNetv2-98 landmarks from the 68 iBUG points: the 68 at their WFLW indices, the
    other 30 interpolated.

    The 30: the odd jaw points are the midpoints of their neighbours; the top and bottom middle
    points of each eye (62, 66, 70, 74) the midpoints of the points beside them; the pupils (96,
    97) each eye's 8-point contour centre; the lower brow edges (38-41 below 37-34, 47-50 below
    45-42) the upper edge moved towards the eye, perpendicular to the brow's corner-to-corner
    chord, by :data:`BROW_THICKNESS` of the outer-eye-corner distance. Applied to the 68 of the
    real sample 000337 they land on HRNet's own 30 points within a median 1.5% (at most 8%) of
    the outer-eye-corner distance.

    Args:
        points: (..., 68, 2) iBUG-68 pixels (0-based iBUG order).

    Returns:
        (..., 98, 2) float64 pixels in WFLW order.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2:] != (68, 2):
        raise InputError(f"iBUG-68 landmarks must be (..., 68, 2), got {points.shape}")
    out = np.full((*points.shape[:-2], 98, 2), np.nan)
    out[..., HRNET98_OF_IBUG68, :] = points
    out[..., 1:32:2, :] = (out[..., 0:31:2, :] + out[..., 2:33:2, :]) / 2
    for middle in (62, 66, 70, 74):
        out[..., middle, :] = (out[..., middle - 1, :] + out[..., middle + 1, :]) / 2
    out[..., 96, :] = out[..., 60:68, :].mean(-2)
    out[..., 97, :] = out[..., 68:76, :].mean(-2)
    eye_span = np.linalg.norm(out[..., 72, :] - out[..., 60, :], axis=-1)[..., None]
    brows = (
        (33, 37, 96, {38: 37, 39: 36, 40: 35, 41: 34}),  # subject's right: outer 33, inner 37
        (42, 46, 97, {47: 45, 48: 44, 49: 43, 50: 42}),  # subject's left: inner 42, outer 46
    )
    for first, last, eye, lower_of_upper in brows:
        chord = out[..., last, :] - out[..., first, :]
        normal = np.stack([-chord[..., 1], chord[..., 0]], -1)
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
        towards_eye = np.sign(((out[..., eye, :] - out[..., first, :]) * normal).sum(-1))
        offset = BROW_THICKNESS * eye_span * towards_eye[..., None] * normal
        for lower, upper in lower_of_upper.items():
            out[..., lower, :] = out[..., upper, :] + offset
    return out


#: Gaussian bumps of a subject's surface detail, and their radius range in metres.
DETAIL_BUMPS = 60
DETAIL_RADIUS_M = (0.006, 0.02)


def add_subject_detail(
    vertices: np.ndarray, faces: np.ndarray, region: np.ndarray, std_mm: float, seed: int
) -> np.ndarray:
    """Give a face person-specific relief that the face model's bases cannot express.

    Real faces differ from any 3DMM fit by millimetres of local shape (wrinkles, bumps,
    asymmetries); the corpus's meshes lie exactly in the model's space, so without this the
    vertex-level stage of a reconstruction would have nothing to recover. A scalar height field
    -- :data:`DETAIL_BUMPS` Gaussian bumps of random sign and radius
    (:data:`DETAIL_RADIUS_M`) centred on random ``region`` vertices, measured on the first
    frame and normalised to std ``std_mm`` over the region -- displaces the region's vertices
    along their normals in every frame (so it follows head motion and expressions).

    Args:
        vertices: (T, V, 3) metres.
        faces: (F, 3).
        region: vertex indices that get detail (the face model's ``face`` region).
        std_mm: standard deviation of the heights over the region, millimetres.
        seed: the subject's seed (the same relief in every recording of a subject).

    Returns:
        (T, V, 3) float32.
    """
    from mmface4d.geometry import vertex_normals

    rng = np.random.default_rng(seed)
    first = vertices[0].astype(np.float64)
    centres = first[rng.choice(region, DETAIL_BUMPS)]
    radii = rng.uniform(*DETAIL_RADIUS_M, DETAIL_BUMPS)
    signs = rng.choice([-1.0, 1.0], DETAIL_BUMPS) * rng.uniform(0.5, 1.0, DETAIL_BUMPS)
    squared = ((first[region, None, :] - centres[None]) ** 2).sum(-1)  # (R, K)
    heights = (signs * np.exp(-squared / (2 * radii**2))).sum(-1)
    heights = (heights - heights.mean()) / max(heights.std(), 1e-12) * std_mm / 1000.0
    normals = vertex_normals(
        torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces)
    ).numpy()
    out = vertices.astype(np.float32).copy()
    out[:, region] += (heights[None, :, None] * normals[:, region]).astype(np.float32)
    return out


# ---------------------------------------------------------------------- the source
def _corpus_face_model(root: Path) -> str | None:
    path = root / "corpus.json"
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text()).get("config", {}).get("face_model")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"{path}: not a corpus configuration ({exc})") from None
    return str(spec) if spec else None


def _prefix_job(prefix: Path) -> CaptureJob:
    prefix = prefix.resolve()
    missing = [
        f"{prefix.name}_{axis}.nut"
        for axis in range(3)
        if not prefix.with_name(f"{prefix.name}_{axis}.nut").is_file()
    ]
    if missing:
        raise InputError(f"{prefix}: recording is missing {', '.join(missing)}")
    truth = prefix.with_name(f"{prefix.name}_gt.npz")
    audio = prefix.with_name(f"{prefix.name}.wav")
    return CaptureJob(
        f"{prefix.parent.name or 'recording'}/{prefix.name}",
        prefix,
        truth if truth.is_file() else None,
        audio if audio.is_file() else None,
    )


def plan_capture(source: str | os.PathLike[str]) -> tuple[list[CaptureJob], str | None]:
    """The recordings a source holds, and the face model its corpus was made with (if known).

    Raises:
        InputError: the source is none of a corpus folder, a recording prefix or an NPZ file.
    """
    path = Path(source)
    if path.is_dir():
        manifest = path / "manifest.csv"
        if not manifest.is_file():
            raise InputError(
                f"{path}: no manifest.csv (expected a synthetic corpus folder, a recording "
                "prefix DIR/S001/210003 or an .npz mesh sequence)"
            )
        with open(manifest, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "recording" not in rows[0]:
            raise InputError(f"{manifest}: no recordings (expected a 'recording' column)")
        jobs = []
        for row in rows:
            key = row["recording"]
            if key.count("/") != 1:
                raise InputError(f"{manifest}: recording {key!r} is not SUBJECT/NAME")
            jobs.append(_prefix_job(path / key))
        return jobs, _corpus_face_model(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"{path}: mesh sequence not found")
        path = path.resolve()
        audio = path.with_suffix(".wav")
        key = f"{path.parent.name or 'recording'}/{path.stem}"
        return [CaptureJob(key, path, None, audio if audio.is_file() else None)], None
    if path.with_name(f"{path.name}_0.nut").is_file():
        return [_prefix_job(path)], _corpus_face_model(path.resolve().parent.parent)
    raise InputError(
        f"{source}: not a corpus folder (manifest.csv), a recording prefix (PREFIX_0.nut) or an "
        ".npz mesh sequence"
    )


def _load_mesh(
    job: CaptureJob, model: FaceModel, spec: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(T, V, 3) centre-camera vertices, (F, 3) faces, (V, 3) albedo and the frame rate."""
    from mmface4d.data.nut import decode_nut, nut_info
    from mmface4d.data.sequence import load_sequence

    if job.mesh.suffix == ".npz":
        try:
            sequence = load_sequence(job.mesh)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{job.mesh}: not a readable .npz mesh sequence ({exc})") from None
        vertices = sequence.vertices
        if sequence.frame == "model":
            vertices = to_camera_frame(vertices)
        faces, fps, colours = sequence.faces, sequence.fps, sequence.colors
    else:
        try:
            vertices = decode_nut(job.mesh, num_vertices=model.num_vertices)
        except InputError as exc:
            raise InputError(
                f"{exc} (is {job.mesh.name} a mesh of face model {spec!r}? pass --face-model)"
            ) from None
        faces, fps, colours = model.faces, nut_info(job.mesh).fps, None
    matches = vertices.shape[1] == model.num_vertices
    if job.truth is not None and matches:
        with np.load(job.truth) as truth:
            coefficients = truth["albedo"] if "albedo" in truth.files else None
        if coefficients is not None:
            with torch.no_grad():
                albedo = model.albedo(torch.as_tensor(coefficients, dtype=torch.float32)[None])
            colours = albedo[0].clamp(0.0, 1.0).numpy()
    if colours is None:
        colours = model.albedo_mean if matches else np.tile(SKIN_TONE, (vertices.shape[1], 1))
    return vertices, faces, np.asarray(colours, dtype=np.float32), float(fps)


# ---------------------------------------------------------------------- one recording
def _outputs(folder: Path, name: str) -> list[Path]:
    files = [
        folder / f"{name}_{c}{ext}" for c in range(_CAMERAS) for ext in (".mp4", ".nut", ".json")
    ]
    return files + [folder / f"{name}{GT_SUFFIX}.npz", folder / f"{name}{GT_SUFFIX}.json"]


def is_complete(output: str | os.PathLike[str], key: str) -> bool:
    """Whether recording ``key`` (``subject/name``) of a capture folder is finished."""
    subject, name = key.split("/")
    return all(path.is_file() for path in _outputs(Path(output) / subject, name))


def _calibrations(rig: StudioRig, width: int, height: int) -> list[CameraCalibration]:
    """The cameras as the dataset's json files have them: intrinsics only (identity extrinsics),
    the image cropped to ``width`` x ``height``."""
    calibrations = []
    for camera in rig.cameras():
        calibration = CameraCalibration.from_pinhole(camera)
        calibrations.append(replace(calibration, width=width, height=height, extrinsics=np.eye(4)))
    return calibrations


def capture_recording(
    job: CaptureJob,
    config: CaptureConfig,
    output: str | os.PathLike[str],
    model: FaceModel,
    progress: bool = False,
) -> Path:
    """Film one recording into ``output/<subject>/`` (see the module doc).

    Args:
        job: the recording.
        config: scale, frame limit, seed and face model.
        output: the capture folder.
        model: the face model ``config.face_model`` names.
        progress: show a progress bar over the frames.

    Returns:
        The path of its ground truth ``<name>_gt_capture.npz``.
    """
    vertices, faces, albedo, fps = _load_mesh(job, model, config.face_model)
    if config.frames is not None:
        vertices = vertices[: config.frames]
    if config.detail_mm > 0:
        region = model.regions.get("face") if vertices.shape[1] == model.num_vertices else None
        region = np.arange(vertices.shape[1]) if region is None else region
        seed = stable_seed(config.seed, f"detail/{job.subject}")
        vertices = add_subject_detail(vertices, faces, region, config.detail_mm, seed)
    rig = StudioRig(scale=config.scale, seed=stable_seed(config.seed, f"rig/{job.subject}"))
    noise_seed = stable_seed(config.seed, f"capture/{job.key}")
    rng = np.random.default_rng(noise_seed)
    lighting = sample_lighting(rig, rng)
    width, height = (size - size % 2 for size in rig.image_size)
    calibrations = _calibrations(rig, width, height)
    landmarks: list[np.ndarray] | None = None
    if vertices.shape[1] == model.num_vertices:
        index = landmark_vertices(model, "ibug68").vertex_index
        marks = np.random.default_rng(stable_seed(config.seed, f"landmarks/{job.key}"))
        noise = LANDMARK_NOISE_PX * config.scale
        landmarks = [
            hrnet98_from_ibug68(project_landmarks(vertices, index, camera, noise, marks))
            for camera in rig.cameras()
        ]
    audio = None
    if job.audio is not None:  # as long as the (possibly shortened) video
        audio = load_audio(job.audio, DEFAULT_SAMPLE_RATE)
        audio = audio[: round(len(vertices) / fps * DEFAULT_SAMPLE_RATE)]
    folder = Path(output) / job.subject
    frames = render_capture(vertices, faces, albedo, rig, rng, lighting=lighting)
    with RawRecordingWriter(folder, job.name, calibrations, fps=fps) as writer:
        bar = tqdm(
            frames,
            total=len(vertices),
            desc=job.key,
            unit="frame",
            leave=False,
            disable=not progress,
        )
        for t, views in enumerate(bar):
            writer.write(
                [view.colour[:height, :width] for view in views],
                [view.depth[:height, :width] for view in views],
                None if landmarks is None else [points[t] for points in landmarks],
            )
        writer.finish(audio, DEFAULT_SAMPLE_RATE)
    truth = StudioGroundTruth.create(rig, vertices, faces, lighting, seed=noise_seed)
    truth = replace(truth, image_size=(width, height))
    return save_ground_truth(folder / f"{job.name}{GT_SUFFIX}.npz", truth)


# ---------------------------------------------------------------------- a whole source
_MODELS: dict[str, FaceModel] = {}


def _face_model(spec: str) -> FaceModel:
    if spec not in _MODELS:  # one load per worker process (forked workers inherit it)
        _MODELS[spec] = load_face_model(spec)
    return _MODELS[spec]


def capture_job(args: tuple[CaptureJob, CaptureConfig, str, bool]) -> dict[str, str]:
    """The batch job of one recording: film it into ``output/<subject>/``."""
    job, config, output, progress = args
    truth = capture_recording(job, config, output, _face_model(config.face_model), progress)
    return {"ground_truth": truth.name}


def _check_config(output: Path, config: CaptureConfig, keys: Sequence[str]) -> None:
    path = output / CONFIG_NAME
    wanted = asdict(config)
    if path.is_file():
        try:
            saved = json.loads(path.read_text()).get("config")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise InputError(f"{path}: not a capture configuration ({exc})") from None
        if isinstance(saved, dict):  # settings added since the folder was written: defaults
            saved = {"detail_mm": 0.0, **saved}
        if saved != wanted:
            raise InputError(
                f"{output}: holds a different capture ({path} says {saved}); choose another folder"
            )
    elif output.is_file():
        raise InputError(f"{output}: is a file, expected an output folder")
    elif output.is_dir() and any(output.iterdir()):
        raise InputError(f"{output}: folder is not empty and holds no {CONFIG_NAME}")
    record = {"config": wanted, "recordings": list(keys), "version": __version__}
    text = json.dumps(record, indent=1) + "\n"
    if path.is_file() and path.read_text() == text:
        return
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # rewritten when a grown corpus lists new recordings
        tmp.write_text(text)


def capture(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    frames: int | None = None,
    seed: int = 0,
    face_model: str | None = None,
    detail_mm: float = 0.0,
    workers: int = 1,
    progress: bool = True,
    executor: str = "local",
) -> Path:
    """Film synthetic recordings with the studio into the MMFace4D raw layout; resumes.

    Args:
        source: a synthetic corpus folder, a recording prefix (``DIR/S001/210003``) or an NPZ
            mesh sequence with faces.
        output: the capture folder (see the module doc for its layout).
        scale: working resolution as a fraction of 1920x1080 (1/8 -> 240x134 after cropping
            to even sizes).
        frames: film at most this many frames of each recording (None: all).
        seed: seed of the rigs, the lighting and all noise.
        face_model: face model spec of the meshes; None: the corpus's (its ``corpus.json``),
            else ``synth``.
        detail_mm: std of each subject's added surface detail (:func:`add_subject_detail`).
        workers: recordings filmed at once.
        progress: show a progress bar.
        executor: ``local`` (this process or a process pool) or ``ray``
            (:func:`mmface4d.batch.run_batch`).

    Returns:
        The output folder.

    Raises:
        InputError: a bad source or argument, or an output folder holding something else.
        BatchFailed: some recordings failed (:class:`mmface4d.batch.BatchFailed`, an
            InputError); the others are filmed and listed in ``OUT/manifest.json``.
    """
    if frames is not None and (isinstance(frames, bool) or int(frames) != frames or frames < 1):
        raise InputError(f"--frames must be a positive integer, got {frames}")
    check_executor(executor, workers)
    StudioRig(scale=scale)  # checks the scale before anything is read or written
    if not 0 <= detail_mm <= 10:
        raise InputError(f"--detail-mm must be in [0, 10] millimetres, got {detail_mm}")
    jobs, corpus_model = plan_capture(source)
    spec = face_model or corpus_model or "synth"
    _face_model(spec)  # fails early on a bad spec (and in-process jobs reuse it)
    if len({job.key for job in jobs}) != len(jobs):
        raise InputError(f"{source}: two recordings share a subject/name")
    config = CaptureConfig(
        str(Path(source).resolve()),
        float(scale),
        None if frames is None else int(frames),
        int(seed),
        spec,
        float(detail_mm),
    )
    out = Path(output)
    _check_config(out, config, [job.key for job in jobs])
    alone = progress and executor == "local" and workers == 1  # a bar over the frames
    report = run_batch(
        [Job(job.key, (job, config, str(out), alone)) for job in jobs],
        capture_job,
        out,
        is_done=lambda key: is_complete(out, key),
        executor=executor,
        workers=workers,
        progress=progress,
        desc="synth capture",
    )
    report.check("recordings")
    return out
