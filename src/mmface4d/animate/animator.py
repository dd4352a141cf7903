"""Speech in, face animation out: a trained model ready for inference (``mmface4d.animate``).

An :class:`Animator` wraps a trained speech-to-face pipeline with what inference needs besides
the weights: the face model (triangles, ARKit basis, built-in subjects), the coordinate frame the
model was trained in, and built-in speaking styles. It loads from

- ``"default"``: the model shipped in the package (``mmface4d/assets/default_animator.pt``),
  trained on the synthetic corpus (see ``benchmarks/table2/README.md`` for the command);
- a packaged animator file written by :func:`mmface4d.animate.packaging.package_animator`;
- a run folder of ``mmface4d train`` (or its ``final.pt``): give the face model spec, since a
  run does not record it.

Frames: results are always in the face model's frame (x the subject's left, y up, z out of the
face, metres), whatever the training data used; a model trained on MMFace4D-convention data
(the centre camera's OpenCV axes) gets its templates and styles converted in and its output
converted back.

Speech is animated as a stream (:mod:`mmface4d.animate.streaming`): a live one pushes chunks
(:meth:`Animator.stream`), a whole file is pushed in 10 s steps (:meth:`Animator.synthesise`),
so memory stays bounded by a step, not the input, and both give the same frames for the same
settings.

Shapes: T frames, V vertices, N audio samples, T_s style frames.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mmface4d import __version__
from mmface4d.animate.checkpoint import (
    CHECKPOINT_FORMAT,
    FINAL_NAME,
    SpeechToFace,
    load_checkpoint,
    load_run,
    pipeline_from_state,
)
from mmface4d.animate.closure import ClosureConfig
from mmface4d.animate.liveliness import LivelinessConfig
from mmface4d.animate.streaming import (
    LIVE,
    OFFLINE,
    FaceStream,
    StreamSettings,
    stream_frames,
)
from mmface4d.constants import SAMPLE_RATE
from mmface4d.data.sequence import FRAMES, MeshSequence
from mmface4d.errors import InputError
from mmface4d.export.arkit import ArkitSolver, arkit_basis
from mmface4d.facemodel.arkit import ARKIT_52
from mmface4d.facemodel.model import FaceModel
from mmface4d.geometry.frames import from_camera_frame, to_camera_frame

ANIMATOR_FORMAT = "mmface4d-animator"
DEFAULT_MODEL = "default"
#: Lips closed at recognised p, b, m.
DEFAULT_CLOSURE = ClosureConfig()
#: Blinks and saccades on, seed 0.
DEFAULT_LIVELINESS = LivelinessConfig()


def default_model_path() -> Path:
    """The shipped model file inside the installed package."""
    return Path(str(resources.files("mmface4d") / "assets" / "default_animator.pt"))


@dataclass(frozen=True)
class BuiltinStyle:
    """A speaking style shipped with a model: one training recording, stored compactly as face
    model coefficients (the mesh frames are rebuilt from the face model).

    Attributes:
        identity: (K_id,) identity coefficients of the subject.
        expression: (T_s, K_exp) expression weights per frame.
        fps: frame rate of ``expression``.
        source: the recording it comes from (e.g. ``S001/210003``).
        emotion: the recording's emotion name.
    """

    identity: np.ndarray
    expression: np.ndarray
    fps: float
    source: str
    emotion: str = "neutral"

    def to_state(self) -> dict[str, Any]:
        return {
            "identity": torch.as_tensor(self.identity, dtype=torch.float32),
            "expression": torch.as_tensor(self.expression, dtype=torch.float16),
            "fps": float(self.fps),
            "source": self.source,
            "emotion": self.emotion,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BuiltinStyle:
        return cls(
            identity=state["identity"].float().numpy(),
            expression=state["expression"].float().numpy(),
            fps=float(state["fps"]),
            source=str(state["source"]),
            emotion=str(state.get("emotion", "neutral")),
        )


#: What :func:`mmface4d.animate` returns: the project's one sequence type, with the speech, the
#: neutral template, the face model and the metadata set (kept name).
AnimationResult = MeshSequence


@dataclass(frozen=True)
class Speaker:
    """A speaker ready to animate (:meth:`Animator.speaker`): the neutral face and the model's
    per-speaker part (template encoding, the style path over the reference), computed once and
    reused by every :meth:`Animator.synthesise` of the speaker's speech.

    Attributes:
        template: (V, 3) neutral face, face model frame.
        conditioning: the model's :meth:`~mmface4d.animate.interface.AnimationModel.prepare_speaker`
            of the template and the style reference, on the model's device.
    """

    template: np.ndarray
    conditioning: Any


class Animator:
    """A trained model plus what inference needs (see the module doc).

    Args:
        pipeline: encoder + model (eval mode).
        name: where it came from (for metadata).
        face_model: the model's face model, or None.
        frame: ``model`` or ``camera`` (the frame of its training data).
        camera_distance: metres from the camera to the face for ``camera``.
        fps: the mesh frame rate it produces.
        styles: built-in style id -> :class:`BuiltinStyle`.
        info: free facts stored with a packaged model (training command, metrics).
    """

    def __init__(
        self,
        pipeline: SpeechToFace,
        name: str,
        face_model: FaceModel | None = None,
        frame: str = "model",
        camera_distance: float = 0.0,
        fps: float = 30.0,
        styles: dict[str, BuiltinStyle] | None = None,
        info: dict[str, Any] | None = None,
    ):
        if frame not in FRAMES:
            raise InputError(f"frame: expected one of {FRAMES}, found {frame!r}")
        self.pipeline = pipeline.eval()
        self.name = name
        self.face_model = face_model
        self.frame = frame
        self.camera_distance = float(camera_distance)
        self.fps = float(fps)
        self.styles = dict(styles or {})
        self.info = dict(info or {})
        self._builtin_speakers: dict[tuple[str | None, str], Speaker] = {}
        if face_model is not None and face_model.num_vertices != self.num_vertices:
            raise InputError(
                f"face model {face_model.name} has {face_model.num_vertices} vertices, the "
                f"model {name} animates {self.num_vertices}"
            )

    @property
    def num_vertices(self) -> int:
        return self.pipeline.model.num_vertices

    @property
    def device(self) -> torch.device:
        return next(self.pipeline.model.parameters()).device

    @property
    def default_style(self) -> str | None:
        return next(iter(self.styles), None)

    # ------------------------------------------------------------------ frames

    def _into_model_data(self, vertices: np.ndarray) -> np.ndarray:
        vertices = np.asarray(vertices, dtype=np.float32)
        if self.frame == "camera":
            return to_camera_frame(vertices, self.camera_distance)
        return vertices

    def _out_of_model_data(self, vertices: np.ndarray) -> np.ndarray:
        vertices = np.asarray(vertices, dtype=np.float32)
        if self.frame == "camera":
            return from_camera_frame(vertices, self.camera_distance)
        return vertices

    # ------------------------------------------------------------------ inputs

    def subject_template(self, subject: str | None) -> np.ndarray:
        """(V, 3) neutral face of a built-in subject (a style id), or the face model's mean."""
        model = self._require_face_model("a built-in subject")
        if subject is None:
            return model.mean.copy()
        match = [k for k, v in self.styles.items() if k == subject or k.startswith(f"{subject}-")]
        if not match:
            subjects = sorted({k.split("-")[0] for k in self.styles}) or ["none"]
            raise InputError(
                f"subject {subject!r}: unknown; model {self.name} has {', '.join(subjects)}"
            )
        style = self.styles[match[0]]
        with torch.no_grad():
            identity = torch.as_tensor(style.identity[: model.identity_dims])[None]
            return model.vertices(identity).numpy()[0]

    def style_reference(self, style: str | np.ndarray | None) -> np.ndarray:
        """(T_s, V, 3) style reference in the face model's frame: a built-in style id (default
        the first), or the frames themselves."""
        if isinstance(style, np.ndarray):
            reference = np.asarray(style, dtype=np.float32)
            if reference.ndim != 3 or reference.shape[1:] != (self.num_vertices, 3):
                raise InputError(
                    f"style reference: expected (T_s, {self.num_vertices}, 3) frames, got "
                    f"{reference.shape}"
                )
            return reference
        if style is None:
            style = self.default_style
            if style is None:
                raise InputError(
                    f"model {self.name} ships no built-in style; pass --style REF (a reference "
                    "sequence of the speaker, NPZ or .nut)"
                )
        chosen = self._style(style)
        model = self._require_face_model("a built-in style")
        with torch.no_grad():
            identity = torch.as_tensor(chosen.identity[: model.identity_dims])
            expression = torch.as_tensor(chosen.expression[:, : model.expression_dims])
            return model.vertices(identity.expand(len(expression), -1), expression).numpy()

    def _style(self, name: str) -> BuiltinStyle:
        if name not in self.styles:
            known = ", ".join(self.styles) or "none"
            raise InputError(f"style {name!r}: unknown; model {self.name} has {known}")
        return self.styles[name]

    def _require_face_model(self, what: str) -> FaceModel:
        if self.face_model is None:
            raise InputError(
                f"model {self.name} has no face model for {what}; pass --face-model SPEC or a "
                "--template mesh"
            )
        return self.face_model

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def speaker(self, template: np.ndarray, reference: np.ndarray) -> Speaker:
        """Prepare a speaker for :meth:`synthesise`: the model's per-speaker part, once.

        Args:
            template: (V, 3) neutral face, face model frame.
            reference: (T_s, V, 3) style reference, face model frame (:meth:`style_reference`).
        """
        V = self.num_vertices
        if np.shape(template) != (V, 3):
            raise InputError(f"template: expected ({V}, 3), got {np.shape(template)}")
        reference = np.asarray(reference, dtype=np.float32)
        if reference.ndim != 3 or reference.shape[1:] != (V, 3) or len(reference) < 1:
            raise InputError(f"style reference: expected (T_s, {V}, 3), got {reference.shape}")
        device = self.device
        tpl = torch.as_tensor(self._into_model_data(template), device=device)[None]
        ref = torch.as_tensor(self._into_model_data(reference), device=device)[None]
        return Speaker(np.asarray(template, np.float32), self.pipeline.prepare_speaker(tpl, ref))

    def builtin_speaker(self, subject: str | None, style: str) -> Speaker:
        """:meth:`speaker` of a built-in subject (None: the face model's mean face) and built-in
        style, prepared once per animator and kept (read-only) for later calls."""
        key = (subject, style)
        if key not in self._builtin_speakers:
            self._style(style)  # an unknown style fails before any work
            prepared = self.speaker(self.subject_template(subject), self.style_reference(style))
            prepared.template.flags.writeable = False
            self._builtin_speakers[key] = prepared
        return self._builtin_speakers[key]

    def stream(
        self,
        speaker: Speaker,
        lookahead_s: float = LIVE.lookahead_s,
        *,
        settings: StreamSettings | None = None,
        closure: ClosureConfig | None = DEFAULT_CLOSURE,
        liveliness: LivelinessConfig | None = DEFAULT_LIVELINESS,
        arkit: bool = True,
    ) -> FaceStream:
        """A live stream of ``speaker``'s speech: push 16 kHz audio chunks, get face frames
        (:class:`~mmface4d.animate.streaming.FaceStream`)::

            stream = animator.stream(animator.builtin_speaker(None, animator.default_style))
            for chunk in chunks:                       # (N,) float32, any length
                frames = stream.push(chunk)            # FaceFrames: vertices, arkit
            frames = stream.flush()                    # the rest, when the speech ends

        With the same settings the frames equal :meth:`synthesise`'s (and ``animate``'s with
        the same layers) to float rounding, whatever the chunks.

        Args:
            speaker: who speaks (:meth:`speaker` or :meth:`builtin_speaker`).
            lookahead_s: most audio past a frame's end that it waits for, seconds (frames come
                in steps of 0.16 s, or of the look-ahead when shorter).
            settings: all the stream's settings instead (``lookahead_s`` is then ignored).
            closure: the lip-closure layer (default on), or None.
            liveliness: blinks and saccades (default on, seed 0), or None.
            arkit: solve the 52 ARKit weights of each frame (face models with ARKit shapes).
        """
        if settings is None:
            settings = dataclasses.replace(
                LIVE, lookahead_s=lookahead_s, step_s=min(LIVE.step_s, lookahead_s)
            )
        return FaceStream(
            self, speaker, settings, closure=closure, liveliness=liveliness, arkit=arkit
        )

    def synthesise(
        self,
        audio: np.ndarray,
        speaker: Speaker,
        settings: StreamSettings | None = None,
        progress: bool = False,
        num_frames: int | None = None,
    ) -> np.ndarray:
        """Animate speech: the model's frames, without the closure or liveliness layers.

        This is the one inference path: ``mmface4d.animate``, ``mmface4d evaluate`` and
        :meth:`~mmface4d.animate.checkpoint.TrainedRun.predict` all animate through it, and it
        is a :class:`~mmface4d.animate.streaming.FaceStream` over the whole audio, in steps of
        ``settings`` (default :data:`~mmface4d.animate.streaming.OFFLINE`: 10 s steps with 1 s
        of look-ahead, so clips under 11 s are one step), memory bounded by a step.

        Args:
            audio: (N,) 16 kHz mono speech.
            speaker: who speaks, from :meth:`speaker` (computed once per speaker and style).
            settings: the steps (:func:`~mmface4d.animate.streaming.offline_settings`).
            progress: show a progress bar over frames.
            num_frames: T, the frames to give; default the frames the speech spans,
                round(N * fps / 16000) (evaluation asks for the ground truth's).

        Returns:
            (T, V, 3) float32 vertices, face model frame.
        """
        vertices, _ = self.animate_speech(
            audio,
            speaker,
            settings=settings,
            progress=progress,
            num_frames=num_frames,
            closure=None,
            liveliness=None,
        )
        return vertices

    def animate_speech(
        self,
        audio: np.ndarray,
        speaker: Speaker,
        *,
        settings: StreamSettings | None = None,
        closure: ClosureConfig | None = DEFAULT_CLOSURE,
        liveliness: LivelinessConfig | None = DEFAULT_LIVELINESS,
        progress: bool = False,
        num_frames: int | None = None,
    ) -> tuple[np.ndarray, dict[str, object]]:
        """:meth:`synthesise` with the lip-closure and liveliness layers (what
        ``mmface4d.animate`` gives): (T, V, 3) vertices and the layers' facts
        (``lip_closure``, ``liveliness``) for the metadata."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise InputError(f"audio: expected non-empty (N,) samples, got shape {audio.shape}")
        total = max(1, int(round(audio.size * self.fps / SAMPLE_RATE)))
        if num_frames is not None:
            if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
                raise InputError(f"num_frames: expected a positive integer, found {num_frames!r}")
            total = num_frames
        settings = settings or OFFLINE
        stream = FaceStream(
            self,
            speaker,
            settings,
            closure=closure,
            liveliness=liveliness,
            arkit=False,
            num_frames=total,
            record=True,
        )
        out = np.empty((total, self.num_vertices, 3), dtype=np.float32)
        chunk = max(SAMPLE_RATE, int(settings.step_s * SAMPLE_RATE))
        with tqdm(total=total, desc="animate", unit="frame", disable=not progress) as bar:
            for frames in stream_frames(stream, audio, chunk):
                out[frames.start : frames.start + len(frames)] = frames.vertices
                bar.update(len(frames))
        return out, stream.info

    def arkit_solver(self) -> tuple[ArkitSolver, np.ndarray] | None:
        """The face model's ARKit solver and the ``ARKIT_52`` columns of its targets (built
        once), or None for a face model without ARKit shapes."""
        if not hasattr(self, "_arkit"):
            basis = arkit_basis(self.face_model) if self.face_model is not None else None
            columns = [] if basis is None else [ARKIT_52.index(n) for n in basis.names]
            self._arkit = None if basis is None else (ArkitSolver(basis.targets), np.array(columns))
        return self._arkit

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        face_model: str | None = None,
        device: str | torch.device = "cpu",
    ) -> Animator:
        """Load the shipped model, a packaged animator file, or a training run.

        Args:
            model: ``default``, an animator ``.pt``, a run folder or its ``final.pt``.
            face_model: face model spec overriding the packaged one (required for a run
                folder to write meshes, unless a template mesh is given).
            device: where to run.
        """
        from mmface4d.facemodel.sources import load_face_model

        path = default_model_path() if str(model) == DEFAULT_MODEL else Path(model)
        if str(model) == DEFAULT_MODEL and not path.is_file():
            raise InputError(
                f"{path}: the shipped model is missing from this installation; reinstall "
                "mmface4d or pass --model"
            )
        if path.is_dir():
            run = load_run(path, device)
            faces = load_face_model(face_model) if face_model else None
            return cls(run.pipeline, str(path), faces)
        state = _load_state(path)
        _, pipeline = pipeline_from_state(state, path)
        pipeline.to(device)
        if state["format"] == CHECKPOINT_FORMAT:
            return cls(pipeline, str(path), load_face_model(face_model) if face_model else None)
        styles = {k: BuiltinStyle.from_state(v) for k, v in state["styles"].items()}
        return cls(
            pipeline,
            "default" if str(model) == DEFAULT_MODEL else str(path),
            load_face_model(face_model or state["face_model"]),
            frame=state["frame"],
            camera_distance=state["camera_distance"],
            fps=state["fps"],
            styles=styles,
            info=state.get("info", {}),
        )


def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such model file or run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise InputError(f"{path}: not a readable model file ({type(exc).__name__})") from None
    if isinstance(state, dict) and state.get("format") == ANIMATOR_FORMAT:
        required = (
            "config",
            "model",
            "num_vertices",
            "styles",
            "face_model",
            "frame",
            "camera_distance",
            "fps",
        )
        missing = [k for k in required if k not in state]
        if missing:
            raise InputError(f"{path}: animator file lacks {missing}")
        return state
    if path.name == FINAL_NAME or (isinstance(state, dict) and state.get("format")):
        return load_checkpoint(path)
    raise InputError(f"{path}: not an mmface4d model (expected an animator or a checkpoint)")


def animator_state(
    animator: Animator, step: int, config: dict[str, Any], face_model_spec: str
) -> dict[str, Any]:
    """What a packaged animator file holds (weights in float16)."""
    weights = {
        k: v.half() if v.is_floating_point() else v
        for k, v in animator.pipeline.model.state_dict().items()
    }
    return {
        "format": ANIMATOR_FORMAT,
        "version": __version__,
        "step": step,
        "config": config,
        "model": weights,
        "encoder": None,
        "num_vertices": animator.num_vertices,
        "audio_dim": animator.pipeline.model.audio_dim,
        "face_model": face_model_spec,
        "frame": animator.frame,
        "camera_distance": animator.camera_distance,
        "fps": animator.fps,
        "styles": {k: v.to_state() for k, v in animator.styles.items()},
        "info": animator.info,
    }
