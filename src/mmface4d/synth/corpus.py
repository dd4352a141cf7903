"""The synthetic talking-face corpus, written in the MMFace4D layout.

Layout of ``DIR`` (one folder per subject, recordings named like MMFace4D sentences: a two-digit
emotion code then a four-digit sentence number, English sentences 0001-4999, Mandarin 5001-)::

    corpus.json                      the generating config (seed, counts, face model, version)
    subjects.json                    every subject: age, gender, identity, albedo, style, voice
    templates.npz                    every subject's neutral face (V, 3), corpus frame, metres
                                     (``data pack`` makes it the subject's template)
    manifest.csv                     one row per recording (columns: MANIFEST_COLUMNS; the
                                     recording column is the path without extension, S001/210003)
    S001/210003.wav                  16 kHz mono speech
    S001/210003_0.nut ... _2.nut     the mesh sequence (x, y, z), MMFace4D .nut codec, metres,
                                     centre-camera frame (OpenCV axes), 30 fps
    S001/210003_gt.npz               ground truth: ARKit weights, head pose, lip closure,
                                     phonemes, identity; written last (its presence = complete)

Every recording is a pure function of (config, subject, sentence): re-running the same command
skips finished recordings and reproduces the same corpus. Recordings are the jobs of one batch
(:func:`mmface4d.batch.run_batch`: local processes or Ray, ``DIR/manifest.json`` records what
each run did, a failed recording fails alone and is listed).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mmface4d import __version__
from mmface4d.atomic import atomic_path
from mmface4d.batch import Job, check_executor, read_manifest, run_batch
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.sources import load_face_model
from mmface4d.geometry.frames import to_camera_frame
from mmface4d.synth.languages import CORPUS_LANGS
from mmface4d.synth.style import Subject, sample_subjects

MANIFEST_COLUMNS = (
    "recording", "subject", "age", "gender", "emotion", "emotion_code", "sentence_id",
    "sentence", "language", "voice", "duration_s", "num_frames", "fps", "num_vertices",
    "source",
)  # fmt: skip
FPS = 30.0
#: Per-subject neutral faces, read by ``data pack`` (:mod:`mmface4d.data.importers`).
TEMPLATES_NAME = "templates.npz"
PAD_SILENCE_S = (0.2, 0.9)


@dataclass(frozen=True)
class CorpusConfig:
    """What ``mmface4d synth corpus`` generates (saved as ``corpus.json``)."""

    subjects: int = 4
    """Number of subjects."""
    sentences: int = 10
    """Sentences per subject."""
    lang: str = "both"
    """en, zh, or both (subjects alternate languages)."""
    seed: int = 0
    """Seed of everything random."""
    face_model: str = "synth"
    """Face model spec."""
    emotion_intensity: float = 0.7
    """Intensity of emotional sentences."""
    head_motion: bool = True
    """Move the head (nods, sway) as MMFace4D's camera-frame captures do; False keeps the head
    still, giving pose-free sequences like the registered meshes of VOCASET/BIWI (what the
    animation models are trained on: they predict offsets from the template, not head pose)."""
    pad_silence: bool = False
    """Add 0.2-0.9 s of silence before and after each sentence, the face at rest (models learn
    to keep the mouth still in pauses; espeak's own output starts and ends on speech)."""
    text_file: str | None = None
    """The user's sentences (one per line, optionally ``emotion<TAB>text``) instead of the
    built-in corpus; one language (``lang`` en or zh)."""


@dataclass(frozen=True)
class RecordingJob:
    subject_index: int
    recording: str
    sentence_id: str
    text: str
    lang: str
    emotion: str
    emotion_code: str


def _subject_lang(config: CorpusConfig, index: int) -> str:
    if config.lang == "both":
        return "zh" if index % 2 else "en"
    return config.lang


def plan_jobs(config: CorpusConfig) -> list[RecordingJob]:
    """Every recording of the corpus, in a fixed order."""
    from mmface4d.synth.sentences import load_sentence_file, sentences

    jobs = []
    for k in range(config.subjects):
        lang = _subject_lang(config, k)
        pool = load_sentence_file(config.text_file, lang) if config.text_file else sentences(lang)
        rng = np.random.default_rng([config.seed, k, 1])
        picks = rng.permutation(len(pool))
        picks = np.concatenate([picks] * (config.sentences // len(pool) + 1))[: config.sentences]
        seen: set[str] = set()
        for i in picks:
            s = pool[int(i)]
            number = int(s.id.split("-")[-1]) if "-" in str(s.id) else int(i)
            base = (5000 if lang == "zh" else 0) + 1 + number % 4999
            name = f"{s.emotion_code}{base:04d}"
            while name in seen:  # a sentence repeated when M exceeds the pool
                base += 1
                name = f"{s.emotion_code}{base:04d}"
            seen.add(name)
            jobs.append(RecordingJob(k, name, str(s.id), s.text, lang, s.emotion, s.emotion_code))
    return jobs


_MODELS: dict[str, FaceModel] = {}


def _face_model(spec: str) -> FaceModel:
    if spec not in _MODELS:  # one load per worker process (forked workers inherit it)
        _MODELS[spec] = load_face_model(spec)
    return _MODELS[spec]


def _recording_paths(folder: Path, name: str) -> dict[str, Path]:
    return {
        "wav": folder / f"{name}.wav",
        "prefix": folder / name,
        "gt": folder / f"{name}_gt.npz",
    }


def render_recording(
    job: RecordingJob, subject: Subject, config: CorpusConfig, folder: Path, model: FaceModel
) -> dict[str, object]:
    """Synthesise one recording (speech, performance, meshes) into ``folder``; return its row."""
    from mmface4d.audio.io import write_wav
    from mmface4d.data.nut import encode_nut
    from mmface4d.synth.performance import perform, performance_vertices
    from mmface4d.synth.speech import EspeakEngine, phoneme_class, sample_voice
    from mmface4d.synth.visemes import TimedClass

    voice = sample_voice(np.random.default_rng(subject.voice_seed), job.lang, subject.gender)
    voice = type(voice)(**{**asdict(voice), "rate": int(round(voice.rate * subject.style.tempo))})
    utt = EspeakEngine().synthesize(job.text, job.lang, voice)
    phonemes = [TimedClass(phoneme_class(p.symbol), p.start, p.end) for p in utt.phonemes]
    audio, symbols = utt.audio, [p.symbol for p in utt.phonemes]
    if config.pad_silence:  # the face at rest before and after the sentence
        pad_rng = np.random.default_rng(
            [config.seed, job.subject_index, hash_name(job.recording), 2]
        )
        lead, trail = (int(round(s * utt.sample_rate)) for s in pad_rng.uniform(*PAD_SILENCE_S, 2))
        audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
        t0, t1 = lead / utt.sample_rate, (lead + len(utt.audio)) / utt.sample_rate
        phonemes = [
            TimedClass("silence", 0.0, t0),
            *(TimedClass(p.cls, p.start + t0, p.end + t0) for p in phonemes),
            TimedClass("silence", t1, len(audio) / utt.sample_rate),
        ]
        symbols = ["_", *symbols, "_"]
    seed_rng = np.random.default_rng([config.seed, job.subject_index, hash_name(job.recording)])
    seed = int(seed_rng.integers(0, 2**31 - 1))
    intensity = config.emotion_intensity if job.emotion != "neutral" else 0.0
    perf = perform(phonemes, audio, utt.sample_rate, subject, job.emotion, intensity, FPS, seed)
    if not config.head_motion:
        perf = replace(
            perf,
            head_rotation=np.zeros_like(perf.head_rotation),
            head_translation=np.zeros_like(perf.head_translation),
        )
    verts = performance_vertices(model, subject, perf, camera_frame=True)
    paths = _recording_paths(folder, job.recording)
    folder.mkdir(parents=True, exist_ok=True)
    write_wav(paths["wav"], audio, utt.sample_rate)
    encode_nut(verts, paths["prefix"], fps=FPS)
    with atomic_path(paths["gt"]) as tmp:
        np.savez_compressed(
            tmp,
            arkit_weights=perf.arkit_weights,
            head_rotation=perf.head_rotation,
            head_translation=perf.head_translation,
            lip_closure=perf.lip_closure,
            phoneme_classes=np.array([p.cls for p in perf.phonemes]),
            phoneme_symbols=np.array(symbols),
            phoneme_times=np.array([[p.start, p.end] for p in perf.phonemes]).reshape(-1, 2),
            blink_onsets=np.array(perf.blink_onsets),
            identity=subject.identity,
            albedo=subject.albedo,
        )
    return {
        "recording": f"{subject.subject_id}/{job.recording}",
        "subject": subject.subject_id,
        "age": subject.age,
        "gender": subject.gender,
        "emotion": job.emotion,
        "emotion_code": job.emotion_code,
        "sentence_id": job.sentence_id,
        "sentence": job.text,
        "language": job.lang,
        "voice": voice.name + (f"+{voice.variant}" if getattr(voice, "variant", "") else ""),
        "duration_s": round(len(audio) / utt.sample_rate, 4),
        "num_frames": perf.num_frames,
        "fps": FPS,
        "num_vertices": model.num_vertices,
        "source": f"synth:{config.face_model}",
    }


def hash_name(name: str) -> int:
    """A stable (process-independent) integer of a recording name."""
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


def render_job(args: tuple[RecordingJob, Subject, CorpusConfig, str]) -> dict[str, object]:
    """The batch job of one recording: render it into ``out/<subject>/``; its manifest row."""
    job, subject, config, out = args
    folder = Path(out) / subject.subject_id
    return render_recording(job, subject, config, folder, _face_model(config.face_model))


def _check_config(out: Path, config: CorpusConfig) -> None:
    path = out / "corpus.json"
    wanted = {**asdict(config)}
    if path.is_file():
        saved = json.loads(path.read_text()).get("config", {})
        saved.setdefault("head_motion", True)  # corpora written before the options existed
        saved.setdefault("pad_silence", False)
        if saved != wanted:
            raise InputError(
                f"{out}: holds a different corpus ({path} says {saved}); choose another folder"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out}: folder is not empty and holds no corpus.json")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"config": wanted, "version": __version__}, indent=2))


def corpus(
    output: str | Path,
    subjects: int = 4,
    sentences: int = 10,
    lang: str = "both",
    seed: int = 0,
    face_model: str = "synth",
    workers: int | None = None,
    progress: bool = True,
    text_file: str | Path | None = None,
    head_motion: bool = True,
    pad_silence: bool = False,
    executor: str = "local",
) -> Path:
    """Write a synthetic corpus (see the module doc); resumes an interrupted run.

    Args:
        output: the corpus folder.
        subjects: number of subjects (>= 1).
        sentences: sentences per subject (>= 1).
        lang: ``en``, ``zh`` or ``both``.
        seed: seed of everything random.
        face_model: face model spec.
        workers: recordings rendered at once (None: one per available core).
        progress: show a progress bar.
        text_file: speak these sentences instead of the built-in ones (``lang`` en or zh).
        head_motion: False for pose-free sequences (see :class:`CorpusConfig`).
        pad_silence: silence before and after each sentence (see :class:`CorpusConfig`).
        executor: ``local`` (this process or a process pool) or ``ray``
            (:func:`mmface4d.batch.run_batch`).

    Returns:
        The manifest's path.

    Raises:
        InputError: bad arguments or an output folder holding something else.
        BatchFailed: some recordings failed (:class:`mmface4d.batch.BatchFailed`, an
            InputError); the others are written and listed in the manifest.
    """
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    config = _corpus_config(
        subjects, sentences, lang, seed, face_model, text_file, head_motion, pad_silence
    )
    check_executor(executor, workers)
    plan_jobs(config)  # reads and checks the sentences before anything is written
    model = _face_model(face_model)
    out = Path(output)
    _check_config(out, config)
    people = sample_subjects(model, subjects, seed)
    with atomic_path(out / "subjects.json") as tmp:
        tmp.write_text(json.dumps([s.to_dict() for s in people], indent=1))
    _write_templates(out / TEMPLATES_NAME, model, people)
    jobs = []
    for job in plan_jobs(config):
        subject = people[job.subject_index]
        jobs.append(Job(f"{subject.subject_id}/{job.recording}", (job, subject, config, str(out))))
    manifest = out / "manifest.csv"
    rows = _finished_rows(out, manifest)
    try:
        report = run_batch(
            jobs,
            render_job,
            out,
            is_done=rows.__contains__,
            executor=executor,
            workers=workers,
            progress=progress,
            desc="synth corpus",
        )
    finally:
        _write_manifest(manifest, _finished_rows(out, manifest))
    report.check("recordings")
    return manifest


def _write_templates(path: Path, model: FaceModel, people: list[Subject]) -> None:
    """Each subject's neutral face (zero expression) in the corpus frame, as ``data pack`` reads
    it: a talking subject's mean frame has the mouth open, the neutral face is exact."""
    templates = {}
    with torch.no_grad():
        for person in people:
            identity = torch.as_tensor(np.asarray(person.identity)[: model.identity_dims])
            neutral = model.vertices(identity[None].float()).numpy()[0]
            templates[person.subject_id] = to_camera_frame(neutral).astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **templates)


def _corpus_config(
    subjects: int,
    sentences: int,
    lang: str,
    seed: int,
    face_model: str,
    text_file: str | Path | None,
    head_motion: bool,
    pad_silence: bool,
) -> CorpusConfig:
    """The corpus's configuration, its arguments checked."""
    if lang not in CORPUS_LANGS:
        raise InputError(f"--lang {lang!r}: expected one of {', '.join(CORPUS_LANGS)}")
    if subjects < 1 or sentences < 1:
        raise InputError(f"need at least one subject and one sentence, got {subjects}, {sentences}")
    if text_file is not None and lang == "both":
        raise InputError("--text-file holds one language: pass --lang en or --lang zh")
    own = str(Path(text_file).resolve()) if text_file else None
    return CorpusConfig(
        subjects,
        sentences,
        lang,
        seed,
        face_model,
        head_motion=head_motion,
        pad_silence=pad_silence,
        text_file=own,
    )


def _finished_rows(out: Path, manifest: Path) -> dict[str, dict[str, object]]:
    """The manifest rows of the finished recordings (their ground truth is written): those of
    ``manifest.csv`` and those the batch manifest has a summary of (written after every
    recording, so a killed run loses none)."""
    rows: dict[str, dict[str, object]] = {}
    if manifest.is_file():
        with open(manifest, newline="") as fh:
            rows = {r["recording"]: r for r in csv.DictReader(fh)}
    for key, entry in read_manifest(out).items():
        if entry.get("summary"):
            rows[key] = entry["summary"]
    return {
        key: row
        for key, row in rows.items()
        if _recording_paths(out / str(row["subject"]), key.split("/")[-1])["gt"].is_file()
    }


def _write_manifest(path: Path, rows: dict[str, dict[str, object]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for key in sorted(rows):
            writer.writerow({c: rows[key][c] for c in MANIFEST_COLUMNS})


def say(
    text: str,
    output: str | Path,
    subject: int = 1,
    emotion: str = "neutral",
    lang: str = "en",
    seed: int = 0,
    face_model: str = "synth",
) -> Path:
    """Write one recording of ``text`` spoken by subject number ``subject`` (1-based).

    The folder gets ``say.wav``, ``say_{0,1,2}.nut`` and ``say_gt.npz`` (see the module doc).
    """
    from mmface4d.emotions import resolve_emotion

    if lang not in ("en", "zh"):
        raise InputError(f"--lang {lang!r}: expected en or zh")
    if not text.strip():
        raise InputError("text is empty; expected something to say")
    if subject < 1:
        raise InputError(f"--subject must be >= 1, got {subject}")
    model = load_face_model(face_model)
    person = sample_subjects(model, subject, seed)[subject - 1]
    config = CorpusConfig(subject, 1, lang, seed, face_model)
    emotion, code = resolve_emotion(emotion)
    job = RecordingJob(subject - 1, "say", "say", text, lang, emotion, code)
    out = Path(output)
    if out.is_file():
        raise InputError(f"{out}: is a file, expected an output folder")
    render_recording(job, person, config, out, model)
    return out / "say.wav"
