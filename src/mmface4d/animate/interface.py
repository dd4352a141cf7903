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

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


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

    def linear_decoding(
        self, audio_features: torch.Tensor, conditioning: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """:meth:`synthesise_prepared` split before a last linear layer, for models that end in
        one (the paper's ``W_d``): ``(latent, weight, addend)`` with (B, T, D) ``latent``,
        (D, 3V) ``weight`` and (B, 3V) ``addend``, such that the vertices are
        ``addend + latent @ weight`` viewed as (B, T, V, 3). A stream decodes only the frames it
        gives and fits the lip modes in the latent space. None (this default) for other models.
        """
        return None

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> ModelLoss:
        """The model's training loss.

        Args:
            prediction, target: (B, T, V, 3).
            mask: (B, T) bool of valid frames, or None for all.
        """
        raise NotImplementedError


#: Functions that fill a tensor with random values: the initialisers of ``nn.init`` (which
#: modules' ``reset_parameters`` call) and the tensors' own in-place random fills.
_RANDOM_FILLS = frozenset(
    {
        nn.init.uniform_,
        nn.init.normal_,
        nn.init.trunc_normal_,
        nn.init.kaiming_uniform_,
        nn.init.kaiming_normal_,
        nn.init.xavier_uniform_,
        nn.init.xavier_normal_,
        nn.init.orthogonal_,
        nn.init.sparse_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
        torch.Tensor.random_,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
        torch.Tensor.geometric_,
        torch.Tensor.log_normal_,
        torch.Tensor.cauchy_,
    }
)


class _SkipParameterInit(TorchFunctionMode):
    """Returns a parameter unchanged instead of filling it with random values."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _RANDOM_FILLS:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, nn.Parameter):
                return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def skip_parameter_init() -> Iterator[None]:
    """Build modules without drawing their parameters' random initial values, for a caller that
    loads every parameter right after (a strict ``load_state_dict``): the parameters keep the
    uninitialised memory they were allocated with.

    Random initialisation is most of the time of building a model whose weights are then read
    from a file (the shipped model: two 3V x D matrices). Deterministic fills (zeros, ones,
    constants) and anything that is not a parameter (buffers, tensors made with random
    factories) are computed as usual. The global random state is left as it was, draws and all.

    Unlike building on the meta device (``torch.device("meta")`` and ``load_state_dict(...,
    assign=True)``), every tensor is real, so tensors a module keeps outside its state dict
    (non-persistent buffers) are right; and no random fill runs on a meta tensor, whose first
    ``normal_`` imports ``torch._dynamo`` (seconds).
    """
    with _SkipParameterInit():
        yield
