"""Finding and reading 4D speech sequences in the layouts users bring.

**MMFace4D layout** (:func:`scan_mmface4d`), searched recursively under SRC:

- ``<dir>/<name>.wav`` with ``<dir>/<name>_0.nut``, ``_1.nut``, ``_2.nut`` (the x, y, z mesh
  files): recording ``<name>``, subject ``<dir>``'s name. Triples whose frames are not square
  (the raw release's 1920x1080 depth videos share that naming) are skipped.
- ``<dir>/reconstruct_filt_{0,1,2}.nut`` (or ``reconstruct_{0,1,2}.nut``) with exactly one
  ``<id>.wav`` (the official sample's one-recording-per-folder style): recording ``<id>``,
  subject the name of ``<dir>``'s parent.

The sequence id is ``<subject>_<recording>``; the sentence is the recording name and the emotion
its two-digit prefix code (00 neutral, 21 happy, 22 angry, 23 sad, 24 surprise, 25 fear,
26 disgust; none when the prefix is not a code). An optional ``SRC/manifest.csv`` overrides
these: its column ``recording`` (required) is the recording's path relative to SRC with ``/``
and without extension (``<dir>/<name>`` for the first style, ``<dir>`` for the second); the
optional columns ``subject``, ``age`` (integer years), ``gender``, ``emotion`` (a name),
``sentence``, ``language`` and ``num_vertices`` (V of the ``.nut`` files, which the frame size
alone does not fix) replace the defaults where non-empty; other columns are ignored.
A row that matches no recording is an error. A subject's template is its neutral face from
``SRC/templates.npz`` (subject -> (V, 3), what ``mmface4d synth corpus`` writes); MMFace4D has no
neutral scan, so without that file it is the mean of all frames of all the subject's packed
sequences (computed when a pack finishes; a talking face's mean has the mouth ~5 mm open).

**FaceFormer layout** (:func:`scan_faceformer`): ``<ds>/wav/<Subject>_<sentence>.wav``,
``<ds>/vertices_npy/<same>.npy`` ((T, V*3) or (T, V, 3) float) and ``<ds>/templates.pkl``
(pickled dict subject -> (V, 3), read with ``encoding="latin1"`` as FaceFormer does: only open
pickles you trust). The subject is the stem without its last ``_`` part, as in FaceFormer. The
frame rate is not stored in this layout and must be given (VOCASET 60 fps, commonly subsampled
by 2 to 30; BIWI 25). A wav without a vertex file (or the reverse) is reported, not packed.

Audio is read at 16 kHz mono and cut to the mesh with :func:`mmface4d.audio.sync.align_lengths`:
longer audio is trimmed; audio short by less than half a frame is zero-padded; audio shorter
by more frames than ``max_trim_frames`` (default 1) is an error, otherwise the mesh is trimmed.
"""

from __future__ import annotations

import csv
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from mmface4d.audio.io import DEFAULT_SAMPLE_RATE, load_audio
from mmface4d.audio.sync import align_lengths
from mmface4d.data.manifest import check_name, emotion_code, emotion_from_sentence
from mmface4d.data.nut import axis_paths, decode_nut
from mmface4d.errors import InputError

#: Per-subject neutral faces beside MMFace4D-layout recordings (written by ``synth corpus``).
TEMPLATES_FILE = "templates.npz"

LAYOUTS = ("auto", "mmface4d", "faceformer")
_METADATA_COLUMNS = ("subject", "age", "gender", "emotion", "sentence", "language", "num_vertices")


@dataclass(frozen=True)
class SequenceSource:
    """Where one sequence comes from, before it is read.

    Attributes:
        sequence_id: unique name in the store.
        layout: ``mmface4d`` or ``faceformer``.
        vertices_path: the .nut prefix (``.../reconstruct_filt``) or the .npy file.
        audio_path: the speech file.
        source: the vertex file(s) relative to SRC (recorded in the manifest; identifies the
            sequence when a pack resumes).
        fps: mesh frame rate after subsampling, Hz.
        subsample: keep every ``subsample``-th frame of the file.
        num_vertices: V expected (the template's), or None to accept what the file holds.
        metadata: subject, age, gender, emotion, emotion_code, sentence, language.
    """

    sequence_id: str
    layout: str
    vertices_path: str
    audio_path: str
    source: str
    fps: float
    subsample: int = 1
    num_vertices: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceScan:
    """The sequences found in SRC, the templates it provides and what could not be paired."""

    root: Path
    layout: str
    sources: list[SequenceSource]
    templates: dict[str, np.ndarray]
    unmatched: list[str]


@dataclass(frozen=True)
class LoadedSequence:
    """A sequence read and aligned: (T, V, 3) float32 ``vertices``, (N,) float32 ``audio`` with
    N = frames_to_samples(T), and what alignment cut."""

    vertices: np.ndarray
    audio: np.ndarray
    trimmed_frames: int
    trimmed_samples: int


def detect_layout(src: str | os.PathLike[str]) -> str:
    """``faceformer`` if SRC has ``wav/`` and ``vertices_npy/``, else ``mmface4d``."""
    root = Path(src)
    if (root / "wav").is_dir() and (root / "vertices_npy").is_dir():
        return "faceformer"
    return "mmface4d"


def scan_sources(
    src: str | os.PathLike[str],
    layout: str = "auto",
    fps: float | None = None,
    subsample: int = 1,
    num_vertices: int | None = None,
) -> SourceScan:
    """Find the sequences of SRC in the given (or detected) layout; see the module doc.

    Args:
        src: the source folder.
        layout: ``auto``, ``mmface4d`` or ``faceformer``.
        fps: frame rate of the files (MMFace4D default 30; required for FaceFormer).
        subsample: keep every n-th frame.
        num_vertices: V of MMFace4D .nut files (default 35,709 for 189x189 frames); FaceFormer
            takes V from the templates.
    """
    root = Path(src)
    if not root.is_dir():
        raise InputError(f"{root}: source folder not found")
    if layout not in LAYOUTS:
        raise InputError(f"layout: expected one of {', '.join(LAYOUTS)}, found {layout!r}")
    if isinstance(subsample, bool) or not isinstance(subsample, int) or subsample < 1:
        raise InputError(f"subsample: expected a positive integer, found {subsample!r}")
    if fps is not None and not (isinstance(fps, int | float) and 0 < fps < float("inf")):
        raise InputError(f"fps: expected a positive number, found {fps!r}")
    chosen = detect_layout(root) if layout == "auto" else layout
    if chosen == "faceformer":
        if fps is None:
            raise InputError(
                f"{root}: the FaceFormer layout does not store the frame rate; give fps "
                "(VOCASET 60, BIWI 25)"
            )
        scan = scan_faceformer(root, fps, subsample)
    else:
        scan = scan_mmface4d(root, 30.0 if fps is None else fps, subsample, num_vertices)
    seen: dict[str, str] = {}
    for source in scan.sources:
        if source.sequence_id in seen:
            raise InputError(
                f"duplicate sequence id {source.sequence_id!r}: {seen[source.sequence_id]} and "
                f"{source.source}"
            )
        seen[source.sequence_id] = source.source
    return scan


def _is_mesh_nut(prefix: Path) -> bool:
    """True when the x file of a triple holds square frames (a mesh, not a depth video)."""
    try:
        with av.open(str(axis_paths(prefix)[0])) as container:
            video = container.streams.video
            return bool(video) and video[0].codec_context.width == video[0].codec_context.height
    except av.FFmpegError as exc:
        raise InputError(f"{axis_paths(prefix)[0]}: cannot open .nut file ({exc})") from exc


def scan_mmface4d(
    root: Path, fps: float = 30.0, subsample: int = 1, num_vertices: int | None = None
) -> SourceScan:
    """Recordings of the MMFace4D layout under ``root`` (see the module doc)."""
    found: list[tuple[str, str, Path, Path]] = []  # (key, subject, nut prefix, wav)
    unmatched: list[str] = []
    for folder, _, files in sorted(os.walk(root)):
        here = Path(folder)
        names = set(files)
        prefixes = sorted(
            f[: -len("_0.nut")]
            for f in names
            if f.endswith("_0.nut") and {f[:-5] + "1.nut", f[:-5] + "2.nut"} <= names
        )
        wavs = sorted(f for f in names if f.lower().endswith(".wav"))
        reconstructed = [p for p in prefixes if p in ("reconstruct_filt", "reconstruct")]
        rel = here.relative_to(root).as_posix()
        if reconstructed:
            if len(wavs) != 1:
                raise InputError(
                    f"{here}: expected one .wav beside {reconstructed[0]}_0.nut, found {len(wavs)}"
                )
            subject = here.parent.name
            prefix = here / reconstructed[0]  # reconstruct_filt sorts after reconstruct
            found.append((rel, subject, prefix, here / wavs[0]))
            continue
        for name in prefixes:
            wav = next((w for w in wavs if w[: -len(".wav")] == name), None)
            if wav is None or not _is_mesh_nut(here / name):
                unmatched.append(f"{rel}/{name}_0.nut" if rel != "." else f"{name}_0.nut")
                continue
            key = f"{rel}/{name}" if rel != "." else name
            found.append((key, here.name, here / name, here / wav))
    if not found:
        raise InputError(
            f"{root}: no MMFace4D recordings found (expected <name>.wav with <name>_0/1/2.nut, "
            "or reconstruct_filt_0/1/2.nut with one .wav per folder)"
        )
    overrides = _read_manifest_csv(root, {key for key, *_ in found})
    sources = []
    for key, subject, prefix, wav in found:
        recording = wav.stem if prefix.name.startswith("reconstruct") else prefix.name
        row = overrides.get(key, {})
        metadata = _metadata(row, subject, recording, f"{root / key}")
        sequence_id = f"{metadata['subject']}_{recording}"
        check_name(sequence_id, "sequence id", str(root / key))
        sources.append(
            SequenceSource(
                sequence_id=sequence_id,
                layout="mmface4d",
                vertices_path=str(prefix),
                audio_path=str(wav),
                source=(Path(key) / prefix.name).as_posix()
                if prefix.name.startswith("reconstruct")
                else key,
                fps=fps / subsample,
                subsample=subsample,
                num_vertices=num_vertices or _manifest_vertices(row, str(root / key)),
                metadata=metadata,
            )
        )
    return SourceScan(root, "mmface4d", sources, _neutral_templates(root), unmatched)


def _neutral_templates(root: Path) -> dict[str, np.ndarray]:
    """Subject -> (V, 3) neutral face from ``SRC/templates.npz`` (a synthetic corpus writes
    one), or none."""
    path = root / TEMPLATES_FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {str(k): np.asarray(data[k], dtype=np.float32) for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable templates file ({exc})") from None


def _manifest_vertices(row: dict[str, str], where: str) -> int | None:
    """The manifest's ``num_vertices`` column (the synthetic corpus writes it), if present."""
    text = (row.get("num_vertices") or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{where}: manifest.csv num_vertices {text!r} is not an integer") from None


def _metadata(
    row: dict[str, str], subject: str, sentence: str, where: str, infer_emotion: bool = True
) -> dict[str, Any]:
    subject = row.get("subject") or subject
    check_name(subject, "subject", where)
    sentence = row.get("sentence") or sentence
    emotion, code = emotion_from_sentence(sentence) if infer_emotion else (None, None)
    if row.get("emotion"):
        emotion, code = row["emotion"].strip().lower(), emotion_code(row["emotion"])
    age: int | None = None
    if row.get("age"):
        try:
            age = int(row["age"])
        except ValueError:
            raise InputError(
                f"{where}: manifest.csv age {row['age']!r} is not an integer"
            ) from None
    return {
        "subject": subject,
        "age": age,
        "gender": row.get("gender") or None,
        "emotion": emotion,
        "emotion_code": code,
        "sentence": sentence,
        "language": row.get("language") or None,
    }


def _read_manifest_csv(root: Path, keys: set[str]) -> dict[str, dict[str, str]]:
    path = root / "manifest.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or "recording" not in reader.fieldnames:
            raise InputError(f"{path}: expected a header with a 'recording' column")
        rows = {}
        for line, row in enumerate(reader, start=2):
            key = (row.get("recording") or "").strip().strip("/")
            if key not in keys:
                example = sorted(keys)[0]
                raise InputError(
                    f"{path}:{line}: recording {key!r} matches no recording under {root} "
                    f"(expected a path relative to it without extension, e.g. {example!r})"
                )
            rows[key] = {c: (row.get(c) or "").strip() for c in _METADATA_COLUMNS}
    return rows


def scan_faceformer(root: Path, fps: float, subsample: int = 1) -> SourceScan:
    """Sequences of the FaceFormer layout (see the module doc)."""
    template_path = root / "templates.pkl"
    if not template_path.is_file():
        raise InputError(f"{root}: FaceFormer layout needs templates.pkl (subject -> (V, 3))")
    try:
        with open(template_path, "rb") as file:
            raw = pickle.load(file, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"{template_path}: unreadable pickle ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{template_path}: expected a dict subject -> (V, 3), found {type(raw)}")
    templates = {}
    for subject, value in raw.items():
        array = np.asarray(value, dtype=np.float32)
        if array.ndim == 1 and array.size % 3 == 0:
            array = array.reshape(-1, 3)
        if array.ndim != 2 or array.shape[1] != 3 or not np.isfinite(array).all():
            raise InputError(
                f"{template_path}: template {subject!r} must be finite (V, 3), found {array.shape}"
            )
        templates[str(subject)] = array
    wavs = {p.stem: p for p in (root / "wav").glob("*.wav")}
    meshes = {p.stem: p for p in (root / "vertices_npy").glob("*.npy")}
    unmatched = sorted(f"wav/{s}.wav" for s in wavs.keys() - meshes.keys())
    unmatched += sorted(f"vertices_npy/{s}.npy" for s in meshes.keys() - wavs.keys())
    sources = []
    for stem in sorted(wavs.keys() & meshes.keys()):
        where = str(meshes[stem])
        check_name(stem, "sequence id", where)
        subject, _, sentence = stem.rpartition("_")
        if not subject:
            raise InputError(f"{where}: expected <Subject>_<sentence>.npy, found no '_'")
        if subject not in templates:
            raise InputError(f"{where}: subject {subject!r} has no template in {template_path}")
        sources.append(
            SequenceSource(
                sequence_id=stem,
                layout="faceformer",
                vertices_path=str(meshes[stem]),
                audio_path=str(wavs[stem]),
                source=f"vertices_npy/{stem}.npy",
                fps=fps / subsample,
                subsample=subsample,
                num_vertices=int(templates[subject].shape[0]),
                metadata=_metadata({}, subject, sentence, where, infer_emotion=False),
            )
        )
    if not sources:
        raise InputError(f"{root}: no wav/<name>.wav with vertices_npy/<name>.npy pairs found")
    return SourceScan(root, "faceformer", sources, templates, unmatched)


def _read_npy(source: SequenceSource) -> np.ndarray:
    path = source.vertices_path
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{source.sequence_id}: unreadable vertex file {path} ({exc})") from exc
    v = source.num_vertices
    if array.ndim == 2 and v is not None and array.shape[1] == 3 * v:
        array = array.reshape(array.shape[0], v, 3)
    if array.ndim != 3 or array.shape[2] != 3 or (v is not None and array.shape[1] != v):
        expected = f"(T, {3 * v}) or (T, {v}, 3)" if v else "(T, V, 3)"
        raise InputError(
            f"{source.sequence_id}: {path} has shape {array.shape}, expected {expected} "
            "(V from the subject's template)"
        )
    return array


def load_sequence(source: SequenceSource, max_trim_frames: int | None = 1) -> LoadedSequence:
    """Read, validate and align one sequence.

    Returns:
        The aligned (T, V, 3) float32 vertices and (N,) float32 16 kHz audio.

    Raises:
        InputError: unreadable or corrupt files, a wrong vertex count, non-finite vertices,
            audio shorter than the mesh by more than ``max_trim_frames`` frames.
    """
    name = source.sequence_id
    if source.layout == "mmface4d":
        try:
            vertices = decode_nut(source.vertices_path, source.num_vertices)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from exc
    else:
        vertices = _read_npy(source)
    vertices = np.ascontiguousarray(vertices[:: source.subsample], dtype=np.float32)
    if vertices.shape[0] == 0:
        raise InputError(f"{name}: {source.vertices_path} holds no frames")
    finite = np.isfinite(vertices)
    if not finite.all():
        t, v, a = (int(i) for i in np.argwhere(~finite)[0])
        raise InputError(
            f"{name}: non-finite vertex {v} (axis {'xyz'[a]}) at frame {t} in "
            f"{source.vertices_path}"
        )
    if source.num_vertices is not None and vertices.shape[1] != source.num_vertices:
        raise InputError(f"{name}: {vertices.shape[1]} vertices, expected {source.num_vertices}")
    try:
        audio = load_audio(source.audio_path, DEFAULT_SAMPLE_RATE)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    aligned = align_lengths(
        audio,
        vertices,
        stream_rate=DEFAULT_SAMPLE_RATE,
        fps=source.fps,
        max_trim_frames=max_trim_frames,
        name=name,
    )
    return LoadedSequence(
        vertices=aligned.vertices,
        audio=aligned.stream,
        trimmed_frames=aligned.trimmed_frames,
        trimmed_samples=aligned.trimmed_samples,
    )
