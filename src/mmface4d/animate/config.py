"""Training configuration: nested dataclasses, ``section.key=value`` overrides, JSON round trip.

Precedence, lowest first: the defaults (the model's from the registry), a config file (JSON or
TOML, e.g. another run's ``config.json``, or a preset of ``configs/train/`` such as
``table2_ours``), the ``--ablation``, then command-line overrides such
as ``model.latent_dim=128 optim.lr=3e-4 optim.steps=200 data.window=32``. Values are converted
to each field's type (``true/false`` for booleans, ``none`` for optional fields, ``8,8,16,16``
or ``[8,8,16,16]`` for tuples). Every run saves the resolved configuration with the package
version as ``RUN/config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmface4d import __version__
from mmface4d.animate.registry import default_model_config, get_model
from mmface4d.atomic import atomic_path
from mmface4d.audio.augment_config import AugmentConfig
from mmface4d.errors import InputError
from mmface4d.settings import (
    apply_dataclass_overrides,
    coerce,
    find_config,
    load_config_file,
    update_dataclass,
)

DEFAULT_MODEL = "ours"
TENSORBOARD_CHOICES = ("auto", "on", "off")


@dataclass
class EncoderConfig:
    """The speech encoder (:func:`mmface4d.audio.encoders.build_encoder`)."""

    spec: str = "mel"
    """Encoder spec: ``mel`` (no weights), ``hubert:path=DIR`` (the paper's), ``wav2vec2:...``."""


@dataclass
class DataConfig:
    """What the model sees (:class:`mmface4d.data.dataset.FaceSequenceDataset`)."""

    split: str = "train"
    """Split of the store to train on."""
    window: int = 64
    """L: frames per training window (sequences shorter than L are left out)."""
    batch_size: int = 8
    """Windows per step and process (the paper: 8); under DDP the global batch is x world size."""
    workers: int = 0
    """DataLoader worker processes (0: load in the training process)."""


@dataclass
class OptimConfig:
    """Adam and the length of training."""

    lr: float = 1e-4
    """Learning rate (the paper: 1e-4)."""
    steps: int = 1_000_000
    """Optimisation steps to reach (the paper: 1e6); a resumed run continues up to this."""
    grad_clip: float = 1.0
    """Largest global gradient norm; 0 disables clipping."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's moment decay rates."""
    eps: float = 1e-8
    """Adam's denominator term."""
    weight_decay: float = 0.0
    """L2 weight decay."""


@dataclass
class LoopConfig:
    """The training loop: seeds, logging, checkpoints, device."""

    seed: int = 0
    """Seed of the model initialisation, dropout and the data order and windows."""
    log_every: int = 50
    """Steps between rows of log.csv (each row: the mean loss since the previous one)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (a killed run redoes at most this many)."""
    device: str = "auto"
    """``auto`` (CUDA when available, ``cuda:LOCAL_RANK`` under torchrun), ``cpu``, ``cuda:0``."""
    amp: bool = True
    """Mixed precision (bf16, else fp16 with loss scaling) on CUDA; ignored on CPU."""
    tensorboard: str = "auto"
    """TensorBoard events in RUN/tensorboard: ``auto`` (when installed), ``on``, ``off``."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class LossConfig:
    """Lip-sync terms added to the model's loss (all 0: the paper's eq. 8 alone): the weights of
    :func:`mmface4d.animate.losses.lip_sync_loss`."""

    gap_weight: float = 0.0
    """Weight of the inner-lip gap error (mm^2); 0 disables it."""
    closure_boost: float = 0.0
    """Extra weight of the gap error on frames where the truth's lips are shut."""
    closed_mm: float = 1.0
    """The truth's lips count as shut below this inner-lip gap, millimetres."""
    velocity_weight: float = 0.0
    """Weight of the vertex velocity error (mm^2 per frame^2); 0 disables it."""
    landmarks: str | None = None
    """Where the 68 landmark vertices come from: a face model spec of the store's topology or a
    ``facemodel_info.mat``; default the synthetic face model when the vertex count matches."""

    @property
    def enabled(self) -> bool:
        """Whether any term is on."""
        return self.gap_weight > 0 or self.velocity_weight > 0

    def validate(self) -> None:
        """An :class:`InputError` naming the key of a negative weight."""
        for key in ("gap_weight", "closure_boost", "velocity_weight"):
            if not getattr(self, key) >= 0:
                raise InputError(f"loss.{key}: expected a weight >= 0, found {getattr(self, key)}")
        if not self.closed_mm > 0:
            raise InputError(f"loss.closed_mm: expected > 0, found {self.closed_mm}")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``RUN/config.json``)."""

    model_name: str = DEFAULT_MODEL
    """Registered model (:mod:`mmface4d.animate.registry`)."""
    ablation: str | None = None
    """Ablation applied to the model's defaults (ours: ``composite`` or ``regional``)."""
    model: Any = None
    """The model's hyper-parameters (its registered config dataclass)."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The speech encoder."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data loading."""
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(enabled=False))
    """Speech augmentation of the training windows (off by default, as in the paper; on for
    models meant to hear real speech after training on synthetic voices)."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Lip-sync terms added to the model's own loss (all off: the paper's eq. 8)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser."""
    train: LoopConfig = field(default_factory=LoopConfig)
    """Loop, logging and checkpoints."""


_METADATA_KEYS = ("version",)


def update_config(config: TrainConfig, values: Mapping[str, Any], source: str) -> TrainConfig:
    """A copy of ``config`` with nested ``values`` (as in config.json) applied.

    ``model_name``, ``ablation`` and ``version`` are not set here (see :func:`resolve_config`).
    """
    return update_dataclass(
        config, values, source, skip=("model_name", "ablation", *_METADATA_KEYS)
    )


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """A copy of ``config`` with ``section.key=value`` overrides applied, in order."""
    for item in overrides:
        if item.partition("=")[0].strip().split(".")[0] in ("model_name", "ablation"):
            raise InputError(f"override {item!r}: choose the model with --model and --ablation")
    return apply_dataclass_overrides(config, overrides)


def resolve_config(
    model: str | None = None,
    ablation: str | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """The configuration of a run: defaults, config file, ablation, overrides (in that order).

    Args:
        model: registered model name; default the file's ``model_name``, else ``ours``.
        ablation: the model's ablation; default the file's ``ablation``, else none.
        config_file: JSON or TOML file of nested sections, or a preset name.
        overrides: ``section.key=value`` strings.
    """
    values = load_config_file(find_config(config_file, "train")) if config_file is not None else {}
    model = model or values.get("model_name") or DEFAULT_MODEL
    if ablation is None:  # "none" where a TOML file (no null) has no ablation
        ablation = coerce(values.get("ablation"), str | None, "ablation")
    get_model(model)
    config = TrainConfig(model_name=model, ablation=None, model=default_model_config(model))
    config = update_config(config, values, str(config_file))
    if ablation is not None:
        default_model_config(model, ablation)  # checks the name
        config.model = dataclasses.replace(config.model, **get_model(model).ablations[ablation])
        config.ablation = ablation
    config = apply_overrides(config, overrides)
    validate_config(config)
    return config


def config_from_dict(values: Mapping[str, Any], source: str) -> TrainConfig:
    """Rebuild a saved configuration (a run's config.json or a checkpoint's ``config``)."""
    model = values.get("model_name")
    if not isinstance(model, str):
        raise InputError(f"{source}: no model_name in the saved configuration")
    config = TrainConfig(model_name=model, model=default_model_config(model))
    config = update_config(config, values, source)
    config.ablation = values.get("ablation")
    return config


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested values of a configuration, with the package version."""
    return {"version": __version__, **dataclasses.asdict(config)}


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config.json`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config_to_dict(config), indent=2) + "\n")


def validate_config(config: TrainConfig) -> None:
    """Check value ranges; an :class:`InputError` naming the key otherwise."""
    positive = {
        "data.window": config.data.window,
        "data.batch_size": config.data.batch_size,
        "optim.steps": config.optim.steps,
        "train.log_every": config.train.log_every,
        "train.checkpoint_every": config.train.checkpoint_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise InputError(f"{key}: expected a positive integer, found {value}")
    checks = (
        ("optim.lr", config.optim.lr > 0, config.optim.lr),
        ("optim.grad_clip", config.optim.grad_clip >= 0, config.optim.grad_clip),
        ("data.workers", config.data.workers >= 0, config.data.workers),
        (
            "train.tensorboard",
            config.train.tensorboard in TENSORBOARD_CHOICES,
            f"{config.train.tensorboard!r} (expected {', '.join(TENSORBOARD_CHOICES)})",
        ),
    )
    for key, ok, value in checks:
        if not ok:
            raise InputError(f"{key}: invalid value {value}")
    config.augment.validate()
    config.loss.validate()
