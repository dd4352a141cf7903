"""An open registry of speech-to-face models: what ``train`` and ``evaluate`` can build by name.

A model plugs in with :func:`register_model`: a builder ``(num_vertices, audio_dim, config) ->
AnimationModel`` (a callable, or its ``"module:function"`` path, imported when the model is
first built), the dataclass of its hyper-parameters (the ``model.*`` section of the training
config, overridable as ``model.key=value``) and optional named ablations (config field changes
selected with ``--ablation``). Every registered model is an
:class:`~mmface4d.animate.interface.AnimationModel`, an ``nn.Module`` with one call signature for
training and inference (see :mod:`~mmface4d.animate.interface`).

The built-in models (the paper's, FaceFormer and MeshTalk) are declared in
:data:`BUILTIN_MODELS`, imported on the first lookup: their hyper-parameter dataclasses and their
builders by path, so that listing them (``train --help``), resolving a configuration or reading a
run's ``config.json`` imports no torch; a model's network module (``model``, ``faceformer``,
``meshtalk``) is imported when that model is built. This module holds only the generic registry
and imports no torch (``AnimationModel`` and ``ModelLoss`` are still importable from it, loaded
from :mod:`~mmface4d.animate.interface` on first use).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmface4d.errors import InputError

if TYPE_CHECKING:
    from mmface4d.animate.interface import AnimationModel

#: The module that declares the built-in models (their configs, ablations, summaries and
#: builders by path) when imported; it imports no torch.
BUILTIN_MODELS = "mmface4d.animate.model_configs"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        build: ``(num_vertices, audio_dim, config) -> AnimationModel``, or the
            ``"module:function"`` path of one (see :meth:`builder`).
        config_type: the dataclass of its hyper-parameters (default-constructible).
        ablations: ablation name -> config field changes, e.g. ``{"composite": False}``.
        summary: one line for help texts.
    """

    build: Callable[[int, int, Any], AnimationModel] | str
    config_type: type
    ablations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    summary: str = ""

    def builder(self) -> Callable[[int, int, Any], AnimationModel]:
        """The build function; a ``"module:function"`` path is imported here (the first build
        of a built-in model imports its network module, and torch)."""
        if not isinstance(self.build, str):
            return self.build
        module, _, function = self.build.partition(":")
        return getattr(importlib.import_module(module), function)


_MODELS: dict[str, ModelEntry] = {}
_builtins_loaded = False


def register_model(
    name: str,
    builder: Callable[[int, int, Any], AnimationModel] | str,
    config_type: type,
    *,
    ablations: Mapping[str, Mapping[str, Any]] | None = None,
    summary: str = "",
) -> None:
    """Make a model available to ``train --model NAME`` and ``evaluate``.

    Args:
        name: the registry name (refuses to replace an existing one).
        builder: ``(num_vertices, audio_dim, config) -> AnimationModel``, or its
            ``"module:function"`` path, imported when the model is first built (so that
            registering and listing the model need not import its network); ``audio_dim`` is
            the audio encoder's channel count and takes precedence over the config.
        config_type: a default-constructible dataclass of the model's hyper-parameters.
        ablations: ablation name -> config field changes.
        summary: one line describing the model.
    """
    if not name or not isinstance(name, str):
        raise InputError(f"model name: expected a non-empty string, found {name!r}")
    if name in _MODELS:
        raise InputError(f"model {name!r} is already registered")
    if isinstance(builder, str):
        module, colon, function = builder.partition(":")
        if not (module and colon and function.isidentifier()):
            raise InputError(
                f"model {name!r}: builder must be a callable or 'module:function', "
                f"found {builder!r}"
            )
    elif not callable(builder):
        raise InputError(f"model {name!r}: builder must be callable, found {builder!r}")
    if not dataclasses.is_dataclass(config_type):
        raise InputError(f"model {name!r}: config_type must be a dataclass, found {config_type}")
    fields = {f.name for f in dataclasses.fields(config_type)}
    for ablation, changes in (ablations or {}).items():
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise InputError(f"model {name!r}: ablation {ablation!r} sets unknown fields {unknown}")
    _MODELS[name] = ModelEntry(builder, config_type, dict(ablations or {}), summary)


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module(BUILTIN_MODELS)


def model_names() -> list[str]:
    """The registered model names, sorted."""
    _load_builtins()
    return sorted(_MODELS)


def get_model(name: str) -> ModelEntry:
    """The registry entry of ``name``; an :class:`InputError` listing the names if unknown."""
    entry = _MODELS.get(name)
    if entry is None:
        _load_builtins()
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
    from mmface4d.animate.interface import AnimationModel

    model = entry.builder()(num_vertices, audio_dim, config)
    if not isinstance(model, AnimationModel):
        raise TypeError(f"builder of {name!r} returned {type(model).__name__}, not AnimationModel")
    return model


def __getattr__(name: str) -> Any:
    """``AnimationModel`` and ``ModelLoss``, where models written against this module import
    them from (they live in :mod:`~mmface4d.animate.interface`, with torch)."""
    if name in ("AnimationModel", "ModelLoss"):
        from mmface4d.animate import interface

        return getattr(interface, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
