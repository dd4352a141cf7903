"""``mmface4d.animate(...)``: speech (a file, samples, or text) to an :class:`AnimationResult`.

The function returns arrays; writing files is :func:`mmface4d.animate.outputs.write_animation`.
:func:`animate_to_files` does both in one pass, the frames streamed into the files as they come,
so that files of any length fit in memory (the ``mmface4d animate`` verb).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmface4d import __version__
from mmface4d.animate.animator import (
    DEFAULT_MODEL,
    SAMPLE_RATE,
    AnimationResult,
    Animator,
    Speaker,
)
from mmface4d.animate.closure import ClosureConfig
from mmface4d.animate.liveliness import LivelinessConfig, add_liveliness
from mmface4d.animate.outputs import DEFAULT_FORMATS
from mmface4d.animate.streaming import offline_settings
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry.frames import from_camera_frame

if TYPE_CHECKING:
    from mmface4d.character.character import Character

#: Longest speech animated in one call (the result is held in memory: ~4.7 GB per hour of
#: 10,794-vertex frames); split longer recordings.
MAX_SECONDS = 1800.0
#: Peak level (dBFS) below which audio counts as silent.
SILENCE_DBFS = -60.0
_ANIMATORS: dict[tuple[str, str | None, str], Animator] = {}


#: Blinks and saccades on, seed 0.
DEFAULT_LIVELINESS = LivelinessConfig()
#: Lips closed at recognised p, b, m.
DEFAULT_CLOSURE = ClosureConfig()


class SilentAudioWarning(UserWarning):
    """The audio given to :func:`animate` is silent: the face was left at rest."""


def load_animator(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    face_model: str | None = None,
    device: str = "cpu",
) -> Animator:
    """:meth:`Animator.load`, cached per (model, face model, device) for repeated calls."""
    key = (str(model), face_model, str(device))
    if key not in _ANIMATORS:
        _ANIMATORS[key] = Animator.load(model, face_model, device)
    return _ANIMATORS[key]


def speech_samples(
    audio: str | os.PathLike[str] | np.ndarray | None,
    sample_rate: int | None = None,
    text: str | None = None,
    lang: str = "en",
) -> tuple[np.ndarray, str]:
    """(N,) float32 16 kHz mono speech from a file, samples or text, and a name for outputs.

    Args:
        audio: a file PyAV reads (wav, flac, mp3, m4a, ...), or (N,) / (N, C) samples.
        sample_rate: rate of ``audio`` samples (required for arrays).
        text: speak this with the synthetic voice instead (``audio`` must be None).
        lang: ``en`` or ``zh`` for ``text``.
    """
    from mmface4d.audio.io import load_audio

    if (audio is None) == (text is None):
        raise InputError("give either an audio file (or samples) or --text, not both or neither")
    if text is not None:
        from mmface4d.synth.speech import EspeakEngine

        utterance = EspeakEngine(sample_rate=SAMPLE_RATE).synthesize(text, lang)
        return np.asarray(utterance.audio, dtype=np.float32), "speech"
    if isinstance(audio, np.ndarray):
        if sample_rate is None or sample_rate <= 0:
            raise InputError("sample_rate: required (a positive integer) for audio samples")
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)  # (N, C) -> mono
        if samples.ndim != 1:
            raise InputError(f"audio: expected (N,) or (N, C) samples, got shape {audio.shape}")
        if int(sample_rate) != SAMPLE_RATE and samples.size:
            from scipy.signal import resample_poly  # 1-2 s to import: only for arrays to resample

            g = np.gcd(int(sample_rate), SAMPLE_RATE)
            samples = resample_poly(samples, SAMPLE_RATE // g, int(sample_rate) // g)
        return samples.astype(np.float32), "speech"
    path = Path(audio)
    return load_audio(path, SAMPLE_RATE), path.stem


def _check_speech(samples: np.ndarray, source: str, max_seconds: float) -> bool:
    """Check the audio; True when it is silent (peak below :data:`SILENCE_DBFS`)."""
    seconds = samples.size / SAMPLE_RATE
    if samples.size < SAMPLE_RATE // 10:
        raise InputError(f"{source}: {seconds:.3f} s of audio; expected at least 0.1 s of speech")
    if not np.isfinite(samples).all():
        raise InputError(f"{source}: audio holds NaN or infinite samples")
    if seconds > max_seconds:
        raise InputError(
            f"{source}: {seconds:.0f} s of audio, more than max_seconds="
            f"{max_seconds:g}; split it or raise the limit"
        )
    peak = max(float(samples.max()), -float(samples.min()))  # no copy of long speech
    return peak <= 10 ** (SILENCE_DBFS / 20)


def load_template(path: str | os.PathLike[str], num_vertices: int) -> np.ndarray:
    """(V, 3) neutral face from a PLY/OBJ mesh or an NPZ (``template`` or ``vertices``, (V, 3)
    or its first frame), in the face model's frame (y up, metres)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: template mesh not found")
    if path.suffix.lower() == ".npz":
        data = np.load(path, allow_pickle=False)
        key = next((k for k in ("template", "vertices") if k in data), None)
        if key is None:
            raise InputError(f"{path}: expected an array 'template' or 'vertices'")
        vertices = np.asarray(data[key], dtype=np.float32)
        vertices = vertices[0] if vertices.ndim == 3 else vertices
    elif path.suffix.lower() in (".ply", ".obj"):
        import trimesh

        try:
            mesh = trimesh.load(path, process=False, force="mesh")
        except Exception as exc:  # noqa: BLE001 - trimesh raises many types for bad files
            raise InputError(f"{path}: not a readable mesh ({type(exc).__name__})") from None
        vertices = np.asarray(mesh.vertices, dtype=np.float32)
    else:
        raise InputError(f"{path}: expected a .ply, .obj or .npz template")
    if vertices.shape != (num_vertices, 3):
        raise InputError(
            f"{path}: {vertices.shape[0]} vertices, the model animates "
            f"{num_vertices} (give a mesh in the model's topology)"
        )
    return vertices


def load_style(style: str, animator: Animator) -> tuple[np.ndarray, str]:
    """(T_s, V, 3) style reference (face model frame) and its label: a built-in style id, or an
    NPZ / ``.nut`` reference sequence of the speaker."""
    from mmface4d.data.nut import decode_nut

    if style in animator.styles:
        return animator.style_reference(style), style
    path = Path(style)
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"--style {path}: file not found")
        data = np.load(path, allow_pickle=False)
        if "vertices" not in data:
            raise InputError(f"--style {path}: expected an array 'vertices' (T_s, V, 3)")
        frames = np.asarray(data["vertices"], dtype=np.float32)
        if "frame" in data and str(data["frame"]) == "camera":
            frames = from_camera_frame(frames, animator.camera_distance)
        return animator.style_reference(frames), str(path)
    if Path(f"{style}_0.nut").is_file():  # MMFace4D convention: centre-camera frame
        frames = decode_nut(style, animator.num_vertices)
        frames = from_camera_frame(frames, animator.camera_distance)
        return animator.style_reference(frames), style
    known = ", ".join(animator.styles) or "none"
    raise InputError(f"--style {style!r}: not a built-in style ({known}), an .npz or a .nut prefix")


def _neutral_face(
    animator: Animator, subject: str | None, template: str | os.PathLike[str] | np.ndarray | None
) -> np.ndarray:
    """(V, 3) the face to animate: a template mesh or array, else a built-in subject's face."""
    if template is None:
        return animator.subject_template(subject)
    if isinstance(template, np.ndarray):
        neutral = np.asarray(template, dtype=np.float32)
        if neutral.shape != (animator.num_vertices, 3):
            raise InputError(
                f"template: expected ({animator.num_vertices}, 3), got {neutral.shape}"
            )
        return neutral
    return load_template(template, animator.num_vertices)


def _builtin_style(
    animator: Animator, style: str | None, emotion: str | None, subject: str | None
) -> str | None:
    """The built-in style id that ``--style`` or ``--emotion`` choose (the default style when
    neither is given), or None for a reference file (or a model without built-in styles)."""
    if emotion is not None:
        if style is not None:
            raise InputError("give --style or --emotion, not both")
        base = subject or str(animator.default_style).split("-")[0]
        style = base if emotion == "neutral" else f"{base}-{emotion}"
        if style not in animator.styles:
            have = sorted(v.emotion for k, v in animator.styles.items() if k.split("-")[0] == base)
            raise InputError(
                f"--emotion {emotion}: model {animator.name} has no {emotion} style "
                f"for {base} (it has {', '.join(have) or 'none'})"
            )
    if style is None:
        return animator.default_style
    return style if style in animator.styles else None


def _style_reference(
    animator: Animator, style: str | None, emotion: str | None, subject: str | None
) -> tuple[np.ndarray, str]:
    """The style reference and its label from ``--style`` or ``--emotion`` (default style else)."""
    chosen = _builtin_style(animator, style, emotion, subject)
    if chosen is not None or style is None:
        return animator.style_reference(chosen), str(chosen)
    return load_style(style, animator)


def _triangles(
    face_model: FaceModel | None, template: str | os.PathLike[str] | np.ndarray | None
) -> np.ndarray:
    """(F, 3) triangles: the face model's, else a template mesh file's, else none."""
    if face_model is not None:
        return face_model.faces
    if isinstance(template, str | os.PathLike) and Path(template).suffix != ".npz":
        import trimesh

        return np.asarray(trimesh.load(template, process=False, force="mesh").faces, np.int64)
    return np.zeros((0, 3), dtype=np.int64)


def _character(character: str | os.PathLike[str] | Character, animator: Animator) -> Character:
    """The registered character (a mesh file registered now or read from the cache)."""
    from mmface4d.character.character import Character, register_character

    fm = animator.face_model
    if fm is None:
        raise InputError(f"--character: model {animator.name} has no face model to register")
    if isinstance(character, Character):
        return character.bind(fm)
    return register_character(character, fm)


def animate(
    audio: str | os.PathLike[str] | np.ndarray | None = None,
    *,
    sample_rate: int | None = None,
    text: str | None = None,
    lang: str = "en",
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    style: str | None = None,
    emotion: str | None = None,
    subject: str | None = None,
    template: str | os.PathLike[str] | np.ndarray | None = None,
    character: str | os.PathLike[str] | Character | None = None,
    face_model: str | None = None,
    device: str = "cpu",
    window_s: float = 20.0,
    max_seconds: float = MAX_SECONDS,
    progress: bool = False,
    liveliness: LivelinessConfig | None = DEFAULT_LIVELINESS,
    closure: ClosureConfig | None = DEFAULT_CLOSURE,
) -> AnimationResult:
    """Animate speech with a trained model.

    Args:
        audio: speech file or (N,) / (N, C) samples (give ``sample_rate``); or None with ``text``.
        sample_rate: rate of ``audio`` samples.
        text: say this with the synthetic voice instead of ``audio``.
        lang: ``en`` or ``zh`` for ``text``.
        model: ``default`` (shipped), an animator ``.pt``, or a training run folder.
        style: built-in style id (see ``Animator.styles``) or a reference sequence file; default
            the model's first built-in style.
        emotion: pick the built-in style of ``subject`` (or of the default style's subject)
            with this emotion (``happy``, ``sad``, ...); the model's emotion comes from its style
            reference, as in MMFace4D.
        subject: built-in subject whose neutral face is animated (default the face model's
            mean face).
        template: a neutral mesh (PLY/OBJ/NPZ path, or (V, 3) array) in the model's topology;
            overrides ``subject``.
        character: your own head mesh in any topology (OBJ, PLY, glTF/GLB), or a ``.char``
            file or :class:`~mmface4d.character.Character` from ``mmface4d character
            register``: the model animates its fit to the head and the motion is carried onto
            the head's own vertices (registered once, then cached); the result is in the
            head's topology. Excludes ``template`` and ``subject``.
        face_model: face model spec overriding the model's (needed for run folders).
        device: ``cpu`` or ``cuda``.
        window_s: speech is animated in steps of half this, each with as much past context
            (:func:`~mmface4d.animate.streaming.offline_settings`; memory bounded by a step).
        max_seconds: refuse longer speech (the result is held in memory).
        progress: show progress bars.
        liveliness: blinks and saccades added on top (:mod:`mmface4d.animate.liveliness`);
            None adds nothing.
        closure: lips closed at the p, b and m the phoneme recogniser finds
            (:mod:`mmface4d.animate.closure`); None leaves the model's mouth as it is.

    Silent audio (peak below :data:`SILENCE_DBFS`) is not an error: the face stays at rest
    (with its blinks), and a :class:`SilentAudioWarning` says so.

    Returns:
        An :class:`AnimationResult` in the face model's frame (the character's topology with
        ``character``).
    """
    job = _prepare(
        audio, sample_rate, text, lang, model, style, emotion, subject, template, character,
        face_model, device, max_seconds,
    )  # fmt: skip
    animator, samples, neutral = job.animator, job.samples, job.neutral
    closed: dict[str, object] = {"skipped": "switched off"}
    lively: dict[str, object] = {"skipped": "switched off"}
    if job.silent:
        frames = max(1, int(round(samples.size * animator.fps / SAMPLE_RATE)))
        vertices = np.repeat(np.asarray(neutral, dtype=np.float32)[None], frames, axis=0)
        if liveliness is not None:
            fm = animator.face_model
            vertices, lively = add_liveliness(vertices, neutral, fm, animator.fps, liveliness)
    else:  # the live stream's path, in steps of half window_s (mmface4d.animate.streaming)
        vertices, facts = animator.animate_speech(
            samples,
            job.speaker,
            settings=offline_settings(window_s),
            closure=closure,
            liveliness=liveliness,
            progress=progress,
        )
        closed, lively = facts["lip_closure"], facts["liveliness"]  # type: ignore[assignment]
    if job.character is not None:
        vertices = job.character.animate_frames(vertices)
    return AnimationResult(
        vertices=vertices,
        faces=job.faces,
        fps=animator.fps,
        audio=samples,
        sample_rate=SAMPLE_RATE,
        template=job.output_neutral,
        colors=job.colors,
        face_model=job.face_model,
        metadata=job.metadata(lively, closed),
    )


@dataclass
class _Job:
    """What :func:`animate` and :func:`animate_to_files` prepare before the animation."""

    started: float
    samples: np.ndarray
    name: str
    silent: bool
    animator: Animator
    speaker: Speaker | None
    neutral: np.ndarray  # the face the model animates (the character's fit with a character)
    style_label: str
    subject: str | None
    template_label: str | None
    character: Character | None
    faces: np.ndarray  # the output's triangles, neutral face, colours and face model
    output_neutral: np.ndarray
    colors: np.ndarray | None
    face_model: FaceModel | None

    def metadata(self, lively: dict[str, object], closed: dict[str, object]) -> dict:
        return {
            "name": self.name,
            "model": self.animator.name,
            "style": self.style_label,
            "subject": self.subject,
            "template": self.template_label,
            "mmface4d_version": __version__,
            "seconds": time.perf_counter() - self.started,
            "silent": self.silent,
            "liveliness": lively,
            "lip_closure": closed,
        }


def _prepare(
    audio: str | os.PathLike[str] | np.ndarray | None,
    sample_rate: int | None,
    text: str | None,
    lang: str,
    model: str | os.PathLike[str],
    style: str | None,
    emotion: str | None,
    subject: str | None,
    template: str | os.PathLike[str] | np.ndarray | None,
    character: str | os.PathLike[str] | Character | None,
    face_model: str | None,
    device: str,
    max_seconds: float,
) -> _Job:
    """The speech, the model, the speaker and the output's mesh (see :func:`animate`)."""
    started = time.perf_counter()
    if character is not None and (template is not None or subject is not None):
        raise InputError("give --character or --template/--subject, not both")
    samples, name = speech_samples(audio, sample_rate, text, lang)
    source = str(audio) if isinstance(audio, str | os.PathLike) else ("text" if text else "audio")
    silent = _check_speech(samples, source, max_seconds)
    if silent:
        warnings.warn(
            f"{source}: the audio is silent (peak below {SILENCE_DBFS:g} dBFS); the face stays "
            "at rest",
            SilentAudioWarning,
            stacklevel=3,
        )
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine")
    animator = load_animator(model, face_model, device)
    if character is not None:
        character = _character(character, animator)
        template = character.fitted
    builtin = _builtin_style(animator, style, emotion, subject) if template is None else None
    if builtin is not None:  # a built-in subject and style: prepared once per animator
        speaker = animator.builtin_speaker(subject, builtin)
        neutral, style_label = speaker.template.copy(), builtin  # the caller may edit it
    else:
        neutral = _neutral_face(animator, subject, template)
        reference, style_label = _style_reference(animator, style, emotion, subject)
        speaker = None if silent else animator.speaker(neutral, reference)
    fm = animator.face_model
    colors = None if fm is None else np.clip(fm.albedo_mean, 0.0, 1.0)
    faces = _triangles(fm, template)
    output_neutral = neutral
    if character is not None:
        output_neutral, faces, colors = character.vertices, character.faces, None
        fm = character.face_model(fm)
        template = f"character:{character.info.get('source', character.name)}"
    if template is None:
        template_label = None
    elif isinstance(template, np.ndarray):
        template_label = "array"
    else:
        template_label = str(template)
    return _Job(
        started, samples, name, silent, animator, speaker, neutral, style_label, subject,
        template_label, character, faces, output_neutral, colors, fm,
    )  # fmt: skip


def animate_to_files(
    audio: str | os.PathLike[str] | np.ndarray | None = None,
    output: str | os.PathLike[str] = ".",
    formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS,
    *,
    name: str | None = None,
    size: int = 512,
    sample_rate: int | None = None,
    text: str | None = None,
    lang: str = "en",
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    style: str | None = None,
    emotion: str | None = None,
    subject: str | None = None,
    template: str | os.PathLike[str] | np.ndarray | None = None,
    character: str | os.PathLike[str] | Character | None = None,
    face_model: str | None = None,
    device: str = "cpu",
    window_s: float = 20.0,
    max_seconds: float | None = None,
    progress: bool = False,
    liveliness: LivelinessConfig | None = DEFAULT_LIVELINESS,
    closure: ClosureConfig | None = DEFAULT_CLOSURE,
) -> dict[str, Path]:
    """:func:`animate` and :func:`~mmface4d.animate.outputs.write_animation` in one pass, for
    files of any length (``mmface4d animate``): the speech is streamed through the model in
    steps (:mod:`mmface4d.animate.streaming`) and every format written as the frames come
    (:func:`~mmface4d.animate.outputs.write_animation_frames`), so the memory held does not grow
    with the speech's length beyond the speech itself (16 kHz float32, 230 MB an hour). The
    files equal those of ``write_animation(animate(...))``.

    Args:
        audio ... closure: as :func:`animate` (``max_seconds`` None: no limit).
        output: the output folder.
        formats: some of :data:`~mmface4d.animate.outputs.FORMATS`.
        name: file stem (default the input's).
        size: video width and height in pixels (even).

    Returns:
        format -> written path.
    """
    from mmface4d.animate.liveliness import Liveliness
    from mmface4d.animate.outputs import _jsonable, write_animation_frames
    from mmface4d.animate.streaming import FaceStream, stream_frames

    job = _prepare(
        audio, sample_rate, text, lang, model, style, emotion, subject, template, character,
        face_model, device, np.inf if max_seconds is None else max_seconds,
    )  # fmt: skip
    animator, samples = job.animator, job.samples
    fps = animator.fps
    total = max(1, int(round(samples.size * fps / SAMPLE_RATE)))
    facts: dict[str, dict[str, object]] = {
        "lip_closure": {"skipped": "switched off"},
        "liveliness": {"skipped": "switched off"},
    }

    def frames() -> Iterator[np.ndarray]:
        if job.silent:
            lively = None
            if liveliness is not None:
                lively = Liveliness(animator.face_model, job.neutral, fps, liveliness)
            rest = np.asarray(job.neutral, dtype=np.float32)[None]
            for start in range(0, total, 256):
                batch = np.repeat(rest, min(256, total - start), axis=0)
                if lively is not None:
                    batch = lively.apply(batch, start)
                yield _to_output(job, batch)
            if lively is not None:
                facts["liveliness"] = lively.info
            return
        settings = offline_settings(window_s)
        stream = FaceStream(
            animator,
            job.speaker,  # type: ignore[arg-type]
            settings,
            closure=closure,
            liveliness=liveliness,
            arkit=False,
            num_frames=total,
            record=True,
        )
        chunk = max(SAMPLE_RATE, int(settings.step_s * SAMPLE_RATE))
        for batch in stream_frames(stream, samples, chunk):
            yield _to_output(job, batch.vertices)
        facts.update(stream.info)  # type: ignore[arg-type]

    return write_animation_frames(
        frames(),
        output,
        formats,
        name=name or job.name,
        num_frames=total,
        fps=fps,
        faces=job.faces,
        template=job.output_neutral,
        colors=job.colors,
        face_model=job.face_model,
        audio=samples,
        sample_rate=SAMPLE_RATE,
        metadata=lambda: _jsonable(job.metadata(facts["liveliness"], facts["lip_closure"])),
        progress=progress,
        size=size,
    )


def _to_output(job: _Job, vertices: np.ndarray) -> np.ndarray:
    """A batch of the model's frames in the output's topology (a character's own vertices)."""
    if job.character is None:
        return vertices
    return job.character.animate_frames(vertices)
