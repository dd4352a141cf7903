"""Training checkpoints and trained runs: atomic writes, validated reads, speech-to-face pipeline.

A run folder holds::

    RUN/config.json      the resolved TrainConfig and the package version
    RUN/checkpoint.pt    the full training state (model, trainable encoder, optimizer, loss
                         scaler, step, elapsed seconds, RNG states of every process, config)
    RUN/final.pt         the trained weights and config only, written when training finishes
    RUN/log.csv          step, loss, lr, seconds and the model's loss terms

Both ``.pt`` files are written to a temporary name and renamed, so a kill during a write never
replaces a good checkpoint with a partial one. They are read with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import pickle
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from mmface4d import __version__
from mmface4d.animate.config import TrainConfig, config_from_dict, config_to_dict
from mmface4d.animate.interface import AnimationModel, skip_parameter_init
from mmface4d.animate.registry import build_model
from mmface4d.atomic import atomic_path
from mmface4d.audio.encoders import AudioEncoder, build_encoder
from mmface4d.errors import InputError

if TYPE_CHECKING:
    from mmface4d.animate.animator import Animator
    from mmface4d.facemodel.model import FaceModel

CHECKPOINT_FORMAT = "mmface4d-animate-checkpoint"
CHECKPOINT_NAME = "checkpoint.pt"
FINAL_NAME = "final.pt"
_REQUIRED = ("format", "step", "config", "model", "num_vertices", "audio_dim")


class SpeechToFace(nn.Module):
    """Audio encoder + registered model: 16 kHz speech (B, N) -> vertices (B, T, V, 3).

    The encoder runs without gradients unless it has trainable parameters, in float32; the
    model runs under autocast when ``amp_dtype`` is set (CUDA mixed precision).

    Args:
        encoder: the speech encoder.
        model: the animation model (``model.audio_dim == encoder.dim``).
    """

    def __init__(self, encoder: AudioEncoder, model: AnimationModel) -> None:
        super().__init__()
        if model.audio_dim != encoder.dim:
            raise InputError(
                f"the model expects {model.audio_dim} audio channels, the encoder gives "
                f"{encoder.dim}"
            )
        self.encoder = encoder
        self.model = model
        self.amp_dtype: torch.dtype | None = None

    @property
    def encoder_trainable(self) -> bool:
        return any(p.requires_grad for p in self.encoder.parameters())

    def features(self, audio: torch.Tensor, fps: float, num_frames: int) -> torch.Tensor:
        """(B, N) speech -> (B, T, C) features at the mesh frame rate."""
        device = audio.device
        with (
            torch.set_grad_enabled(self.encoder_trainable and torch.is_grad_enabled()),
            torch.autocast(device.type, enabled=False),
        ):
            return self.encoder.encode_to_frames(audio, fps, num_frames)

    def forward(
        self,
        audio: torch.Tensor,
        fps: float,
        num_frames: int,
        template: torch.Tensor,
        reference: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Animate.

        Args:
            audio: (B, N) 16 kHz speech.
            fps: mesh frame rate, Hz.
            num_frames: T.
            template: (B, V, 3); reference: (B, T_s, V, 3); target: (B, T, V, 3) or None.

        Returns:
            (B, T, V, 3) vertices (float32).
        """
        speaker = self.prepare_speaker(template, reference)
        return self.synthesise_prepared(audio, fps, num_frames, speaker, target)

    def prepare_speaker(self, template: torch.Tensor, reference: torch.Tensor) -> Any:
        """The model's per-speaker part (:meth:`AnimationModel.prepare_speaker`), for
        :meth:`synthesise_prepared`.

        Args:
            template: (B, V, 3); reference: (B, T_s, V, 3).
        """
        with self._autocast(template.device):
            return self.model.prepare_speaker(template, reference)

    def synthesise_prepared(
        self,
        audio: torch.Tensor,
        fps: float,
        num_frames: int,
        conditioning: Any,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward` given the speaker's :meth:`prepare_speaker` (computed once per speaker).

        Returns:
            (B, T, V, 3) vertices (float32).
        """
        features = self.features(audio, fps, num_frames)
        with self._autocast(audio.device):
            vertices = self.model.synthesise_prepared(features, conditioning, target)
        return vertices.float()

    def _autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(
            device.type, dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype)
        )


def rng_state() -> dict[str, Any]:
    """This process's global random states (python, torch CPU and CUDA), checkpoint-safe.

    The project draws numpy randomness from explicit ``numpy.random.Generator`` objects (the
    dataset's windows come from ``default_rng([seed, epoch, index])``), so numpy's legacy global
    state is not part of it.
    """
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "version": __version__, **state}, tmp)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint.

    Raises:
        InputError: the file is not a readable checkpoint of this package (corrupt, truncated,
            or something else).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise InputError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: "
            f"{str(exc).split('. ')[0][:120]}); "
            "restore it or delete it to start over"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an mmface4d training checkpoint")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise InputError(f"{path}: checkpoint lacks {missing}")
    return state


def build_pipeline(config: TrainConfig, num_vertices: int, initialise: bool = True) -> SpeechToFace:
    """Encoder and model of a configuration (on the CPU); ``config.model`` becomes the model's
    resolved hyper-parameters.

    Args:
        config: the configuration.
        num_vertices: V.
        initialise: draw the model's random initial parameters; False leaves them unset
            (:func:`~mmface4d.animate.interface.skip_parameter_init`), for a caller that loads
            every one of them next.
    """
    encoder = build_encoder(config.encoder.spec)
    with contextlib.nullcontext() if initialise else skip_parameter_init():
        model = build_model(config.model_name, num_vertices, encoder.dim, config.model)
    config.model = model.config
    return SpeechToFace(encoder, model)


def trainable_encoder_state(pipeline: SpeechToFace) -> dict[str, torch.Tensor] | None:
    """The encoder's weights when it is fine-tuned (frozen encoders are rebuilt from the spec)."""
    return pipeline.encoder.state_dict() if pipeline.encoder_trainable else None


@dataclass
class TrainedRun:
    """A run loaded for inference or evaluation.

    Attributes:
        run: the run folder.
        checkpoint: the file loaded (final.pt, else checkpoint.pt of an unfinished run).
        step: optimisation steps it was trained for.
        config: its configuration.
        pipeline: encoder + model, in eval mode.
    """

    run: Path
    checkpoint: Path
    step: int
    config: TrainConfig
    pipeline: SpeechToFace

    @property
    def num_vertices(self) -> int:
        return self.pipeline.model.num_vertices

    def animator(self, fps: float = 30.0, face_model: FaceModel | None = None) -> Animator:
        """The run as users run it: an :class:`~mmface4d.animate.animator.Animator` of its
        pipeline (frame ``model``: the training data's own frame in and out).

        Args:
            fps: the mesh frame rate to produce.
            face_model: the face model of its topology, if known.
        """
        from mmface4d.animate.animator import Animator  # animator.py imports this module

        return Animator(self.pipeline, str(self.run), face_model, fps=fps)

    def predict(
        self,
        audio: torch.Tensor,
        fps: float,
        template: torch.Tensor,
        reference: torch.Tensor,
        num_frames: int | None = None,
    ) -> torch.Tensor:
        """Animate one whole sequence in one pass, through the users' code
        (:meth:`animator`'s ``synthesise`` with a window longer than the sequence).

        Args:
            audio: (N,) 16 kHz speech.
            fps: mesh frame rate, Hz.
            template: (V, 3); reference: (T_s, V, 3) style reference of the speaker.
            num_frames: T; default the frames the audio spans, round(N * fps / 16000).

        Returns:
            (T, V, 3) vertices on the CPU.
        """
        from mmface4d.animate.streaming import offline_settings

        samples = _numpy(audio)
        seconds = max(samples.size / self.pipeline.encoder.sample_rate, (num_frames or 0) / fps)
        animator = self.animator(fps)
        vertices = animator.synthesise(
            samples,
            animator.speaker(_numpy(template), _numpy(reference)),
            settings=offline_settings(2 * seconds + 2.0),  # one step
            num_frames=num_frames,
        )
        return torch.from_numpy(vertices)


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """float32 NumPy copy of a tensor on any device, or of an array."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def load_run(run: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Load a run folder's final weights (or its latest checkpoint if unfinished).

    Args:
        run: the ``-o`` folder of ``mmface4d train``.
        device: where to put the model.
    """
    run = Path(run)
    if not run.is_dir():
        raise InputError(f"{run}: not a run folder")
    path = next((run / n for n in (FINAL_NAME, CHECKPOINT_NAME) if (run / n).is_file()), None)
    if path is None:
        raise InputError(f"{run}: no {FINAL_NAME} or {CHECKPOINT_NAME} (train it first)")
    state = load_checkpoint(path)
    config, pipeline = pipeline_from_state(state, path)
    pipeline.to(device).eval()
    return TrainedRun(run, path, int(state["step"]), config, pipeline)


def pipeline_from_state(state: dict[str, Any], source: Path) -> tuple[TrainConfig, SpeechToFace]:
    """The configuration and the float32 CPU pipeline of a loaded checkpoint (any float dtype of
    the stored weights: shipped models keep them in float16)."""
    config = config_from_dict(state["config"], str(source))
    # no random initial values: the strict load below sets every parameter, or fails
    pipeline = build_pipeline(config, int(state["num_vertices"]), initialise=False)
    try:
        # copy_ converts stored float16 weights into the float32 parameters in one pass (the
        # values of .float() first, without the extra float32 copy of every tensor)
        pipeline.model.load_state_dict(state["model"])
        if state.get("encoder") is not None:
            pipeline.encoder.load_state_dict(state["encoder"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{source}: weights do not fit the saved configuration ({first})"
        ) from None
    return config, pipeline


def final_state(pipeline: SpeechToFace, config: TrainConfig, step: int) -> dict[str, Any]:
    """What final.pt holds: weights, config, step and the topology."""
    return {
        "step": step,
        "config": config_to_dict(config),
        "model": pipeline.model.state_dict(),
        "encoder": trainable_encoder_state(pipeline),
        "num_vertices": pipeline.model.num_vertices,
        "audio_dim": pipeline.model.audio_dim,
    }
