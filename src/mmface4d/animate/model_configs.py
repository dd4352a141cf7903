"""The built-in models' hyper-parameters and registry entries, without torch.

Each model's config dataclass (the ``model.*`` section of the training configuration, with a
doc per field that ``train --help`` lists) and its registration: ablations, summary and builder,
named by path so that the network's module (and torch) is imported only when the model is
built. The networks, their losses and their adapters to
:class:`~mmface4d.animate.interface.AnimationModel` live in :mod:`~mmface4d.animate.model` (the
paper's, ``ours``), :mod:`~mmface4d.animate.faceformer` and :mod:`~mmface4d.animate.meshtalk`,
which take their configs from here. The registry imports this module on its first lookup
(:data:`~mmface4d.animate.registry.BUILTIN_MODELS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmface4d.animate.registry import register_model


@dataclass
class OursConfig:
    """Hyper-parameters of the paper's model (defaults from the paper where it gives them)."""

    audio_dim: int = 80
    """C_a: channels of the audio features (1024 for HuBERT-large, 80 for log-mel)."""
    latent_dim: int = 256
    """D: width of the embeddings, the decoder and the rows of W_d."""
    decoder_blocks: int = 6
    """Residual blocks of the decoder (kernel 3, stride 1, no downsampling)."""
    style_channels: tuple[int, ...] = (64, 128, 256, 512)
    """Channels of the ResNet18-style 1D style encoder's four stages (stages 2-3 stride 2: x4)."""
    composite: bool = True
    """Modulate the decoder with the reference style (False: the 'w/o composite' ablation)."""
    regional: bool = True
    """Use the sparsity regulariser on W_d (False: the 'w/o regional' ablation)."""
    sparsity_weight: float = 1e-6
    """Weight of eq. 7 in the loss."""
    official_variant: bool = False
    """The official MM2023 code's variant: W_d tied to W_e (transposed) and a plain L1 on it."""
    dropout: float = 0.1
    """Dropout on the projected audio features."""


@dataclass
class FaceFormerConfig:
    """Hyper-parameters of FaceFormer (defaults: the paper's VOCASET setting)."""

    audio_dim: int = 80
    """C: channels of the audio features (set from the encoder when the model is built)."""
    width: int = 64
    """d: width of the transformer (the paper: 64 on VOCASET, 128 on BIWI); even."""
    heads: int = 4
    """H: attention heads (d must be a multiple of H)."""
    layers: int = 1
    """Transformer decoder layers."""
    feedforward: int | None = None
    """Hidden width of the decoder's feed-forward block; None: 2d, as the paper."""
    period: int = 30
    """p: PPE and temporal-bias period, frames (official: 30 at VOCASET's 30 fps, 25 at 25 fps)."""
    dropout: float = 0.1
    """Dropout after the PPE, on attention weights and in the decoder layers."""
    num_styles: int = 1
    """Learned style vectors; 1: the training set's average style (see the module notes)."""
    teacher_forcing: bool = False
    """Train on the shifted ground truth (parallel); False: on own predictions (the paper's)."""
    max_frames: int = 6000
    """Longest sequence accepted (T), in frames."""


@dataclass
class MeshTalkConfig:
    """Hyper-parameters of the reduced MeshTalk (paper values in brackets)."""

    audio_dim: int = 80
    """C_a: channels of the audio features (set from the encoder by the builder)."""
    latent_dim: int = 128
    """d: width of the audio and expression codes, the decoder and its LSTM [128]."""
    heads: int = 16
    """H: categorical heads of the latent space per frame [64]."""
    categories: int = 64
    """C: categories per head [128]."""
    gumbel_temperature: float = 1.0
    """tau of the Gumbel-softmax (the soft relaxation behind the straight-through gradient)."""
    audio_layers: int = 4
    """Residual dilated temporal conv layers of the audio encoder (kernel 5, dilation 1, 2, 4)."""
    decoder_lstm_layers: int = 2
    """LSTM layers of the decoder [2]."""
    prior_channels: int = 128
    """Width of the autoregressive prior."""
    prior_layers: int = 4
    """Causal conv layers of the prior (kernel 2, dilation 1, 2, 4, ...: 2**layers frames)."""
    sample_prior: bool = False
    """At inference, sample each frame's categories from the prior instead of taking argmax."""
    offset_scale: float = 0.01
    """Metres per unit of the encoder's input and the decoder's output offsets."""
    lower_face_fraction: float = 0.4
    """Share of the template's height, from the chin up, that counts as the lower face."""
    up_axis: str = "auto"
    """The template's up direction: ``auto`` (principal axis, chin at the narrow end), ``-y``..."""
    mask_softness: float = 0.02
    """Width of the lower/upper face transition, as a share of the height (0: a hard split)."""
    cross_modality_weight: float = 1.0
    """Weight of the two cross-modality terms (0: plain autoencoder, the ablation)."""
    prior_weight: float = 0.1
    """Weight of the prior's cross-entropy (nats; the vertex terms are in mm^2) in the total."""
    dropout: float = 0.1
    """Dropout in the audio encoder."""


register_model(
    "ours",
    "mmface4d.animate.model:build_ours",
    OursConfig,
    ablations={"composite": {"composite": False}, "regional": {"regional": False}},
    summary="the paper's composite-and-regional non-autoregressive network "
    "(model.official_variant=true: the official code's variant)",
)
register_model(
    "faceformer",
    "mmface4d.animate.faceformer:build_faceformer",
    FaceFormerConfig,
    summary="FaceFormer (Fan et al. 2022): autoregressive transformer with periodic positional "
    "encoding and biased attention (model.teacher_forcing=true: parallel training)",
)
register_model(
    "meshtalk",
    "mmface4d.animate.meshtalk:build_meshtalk",
    MeshTalkConfig,
    ablations={"cross_modality": {"cross_modality_weight": 0.0}},
    summary="MeshTalk (Richard et al. 2021), reduced: categorical latent (Gumbel), "
    "cross-modality loss, autoregressive audio-conditioned prior",
)
