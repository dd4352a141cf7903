"""An open registry of speech-to-face models: what ``train`` and ``evaluate`` can build by name.

Every registered model is an :class:`AnimationModel`, an ``nn.Module`` with one call signature
for training and inference, so the training loop and the evaluation kit never special-case a
model::

    vertices = model(audio_features, template, reference)            # (B, T, V, 3)
    vertices = model(audio_features, template, reference, target)    # teacher forcing
    losses = model.loss(vertices, target)                            # ModelLoss

A model plugs in with :func:`register_model`: a builder ``(num_vertices, audio_dim, config) ->
AnimationModel``, the dataclass of its hyper-parameters (the ``model.*`` section of the
training config, overridable as ``model.key=value``) and optional named ablations (config field
changes selected with ``--ablation``). Each model registers itself in its own module (the
paper's in :mod:`~mmface4d.animate.model`, the baselines in ``faceformer`` and ``meshtalk``);
the modules listed in :data:`MODEL_MODULES` are imported on the first lookup, so a new model
only needs its module named there. This module holds only the generic registry.

Shapes: B batch, T frames, V vertices, C audio channels, T_s style reference frames.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmface4d.errors import InputError

#: Modules that register their models when imported, one per model: the network, its loss and
#: its adapter to :class:`AnimationModel` live together in each.
MODEL_MODULES: tuple[str, ...] = (
    "mmface4d.animate.model",
    "mmface4d.animate.faceformer",
    "mmface4d.animate.meshtalk",
)


@dataclass
class ModelLoss:
    """A training loss and its named parts.

    Attributes:
        total: () the scalar to back-propagate.
        terms: name -> () unweighted parts, for the logs (e.g. ``reconstruction``, ``regional``).
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class AnimationModel(nn.Module):
    """Base of the registered models: speech features, template and style -> vertices.

    Attributes:
        num_vertices: V, the topology the model was built for.
        audio_dim: C, channels of the audio features it expects.
        config: the dataclass of its hyper-parameters, as resolved by the builder (saved with
            every run).
    """

    num_vertices: int
    audio_dim: int
    config: Any

    def forward(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        reference: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Synthesise vertices.

        Args:
            audio_features: (B, T, C) at the mesh frame rate.
            template: (B, V, 3) neutral faces of the speakers.
            reference: (B, T_s, V, 3) style reference motion of the same speakers.
            target: (B, T, V, 3) ground truth for teacher forcing (autoregressive models), or
                None at inference. Non-autoregressive models ignore it.

        Returns:
            (B, T, V, 3) predicted vertices.
        """
        raise NotImplementedError

    def prepare_speaker(self, template: torch.Tensor, reference: torch.Tensor) -> Any:
        """The per-speaker part of the synthesis, computed once and given to
        :meth:`synthesise_prepared` for all of the speaker's speech. A model whose every step
        depends on the speech keeps the inputs (this default); one with a speaker-only part
        (the paper's style path and template encoding) overrides it.

        Args:
            template: (B, V, 3); reference: (B, T_s, V, 3), as for :meth:`forward`.
        """
        return template, reference

    def synthesise_prepared(
        self,
        audio_features: torch.Tensor,
        conditioning: Any,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward` given the speaker's :meth:`prepare_speaker`:
        ``synthesise_prepared(f, prepare_speaker(t, r))`` equals ``forward(f, t, r)``."""
        template, reference = conditioning
        return self(audio_features, template, reference, target)

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> ModelLoss:
        """The model's training loss.

        Args:
            prediction, target: (B, T, V, 3).
            mask: (B, T) bool of valid frames, or None for all.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        build: ``(num_vertices, audio_dim, config) -> AnimationModel``.
        config_type: the dataclass of its hyper-parameters (default-constructible).
        ablations: ablation name -> config field changes, e.g. ``{"composite": False}``.
        summary: one line for help texts.
    """

    build: Callable[[int, int, Any], AnimationModel]
    config_type: type
    ablations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    summary: str = ""


_MODELS: dict[str, ModelEntry] = {}
_modules_loaded = False


def register_model(
    name: str,
    builder: Callable[[int, int, Any], AnimationModel],
    config_type: type,
    *,
    ablations: Mapping[str, Mapping[str, Any]] | None = None,
    summary: str = "",
) -> None:
    """Make a model available to ``train --model NAME`` and ``evaluate``.

    Args:
        name: the registry name (refuses to replace an existing one).
        builder: ``(num_vertices, audio_dim, config) -> AnimationModel``; ``audio_dim`` is the
            audio encoder's channel count and takes precedence over the config.
        config_type: a default-constructible dataclass of the model's hyper-parameters.
        ablations: ablation name -> config field changes.
        summary: one line describing the model.
    """
    if not name or not isinstance(name, str):
        raise InputError(f"model name: expected a non-empty string, found {name!r}")
    if name in _MODELS:
        raise InputError(f"model {name!r} is already registered")
    if not dataclasses.is_dataclass(config_type):
        raise InputError(f"model {name!r}: config_type must be a dataclass, found {config_type}")
    fields = {f.name for f in dataclasses.fields(config_type)}
    for ablation, changes in (ablations or {}).items():
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise InputError(f"model {name!r}: ablation {ablation!r} sets unknown fields {unknown}")
    _MODELS[name] = ModelEntry(builder, config_type, dict(ablations or {}), summary)


def _load_model_modules() -> None:
    global _modules_loaded
    if not _modules_loaded:
        _modules_loaded = True
        for module in MODEL_MODULES:
            importlib.import_module(module)


def model_names() -> list[str]:
    """The registered model names, sorted."""
    _load_model_modules()
    return sorted(_MODELS)


def get_model(name: str) -> ModelEntry:
    """The registry entry of ``name``; an :class:`InputError` listing the names if unknown.

    A name already registered (its module imported) is returned without importing the other
    model modules (loading the shipped model needs only its own)."""
    entry = _MODELS.get(name)
    if entry is None:
        _load_model_modules()
        entry = _MODELS.get(name)
    if entry is None:
        raise InputError(f"model: unknown name {name!r}; expected one of {model_names()}")
    return entry


def default_model_config(name: str, ablation: str | None = None) -> Any:
    """The model's default hyper-parameters with an ablation's changes applied.

    Args:
        name: registered model name.
        ablation: one of the entry's ablations, or None.
    """
    entry = get_model(name)
    config = entry.config_type()
    if ablation is None:
        return config
    if ablation not in entry.ablations:
        raise InputError(
            f"model {name!r}: unknown ablation {ablation!r}; expected one of "
            f"{sorted(entry.ablations) or 'none (it has no ablations)'}"
        )
    return dataclasses.replace(config, **entry.ablations[ablation])


def build_model(name: str, num_vertices: int, audio_dim: int, config: Any = None) -> AnimationModel:
    """Build a registered model.

    Args:
        name: registered model name.
        num_vertices: V.
        audio_dim: C of the audio features.
        config: an instance of the entry's ``config_type``; default its defaults.
    """
    entry = get_model(name)
    config = entry.config_type() if config is None else config
    if not isinstance(config, entry.config_type):
        raise InputError(
            f"model {name!r}: config must be {entry.config_type.__name__}, "
            f"found {type(config).__name__}"
        )
    for label, value in (("num_vertices", num_vertices), ("audio_dim", audio_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{label}: expected a positive integer, found {value!r}")
    model = entry.build(num_vertices, audio_dim, config)
    if not isinstance(model, AnimationModel):
        raise TypeError(f"builder of {name!r} returned {type(model).__name__}, not AnimationModel")
    return model
