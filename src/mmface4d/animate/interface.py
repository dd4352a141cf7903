"""The interface of every registered model: :class:`AnimationModel` and its :class:`ModelLoss`.

Every model of :mod:`~mmface4d.animate.registry` is an :class:`AnimationModel`, an ``nn.Module``
with one call signature for training and inference, so the training loop and the evaluation kit
never special-case a model::

    vertices = model(audio_features, template, reference)            # (B, T, V, 3)
    vertices = model(audio_features, template, reference, target)    # teacher forcing
    losses = model.loss(vertices, target)                            # ModelLoss

The registry itself (names, hyper-parameter dataclasses, ablations, builders) imports no torch;
this module is the torch side that the models and the training loop build on.

Shapes: B batch, T frames, V vertices, C audio channels, T_s style reference frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


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
