"""FaceFormer (Fan et al., CVPR 2022) behind the common model interface: the paper's baseline.

A transformer decoder that predicts a face sequence autoregressively, written from the
FaceFormer paper's description:

- **Audio feature projection**: the project's speech features (any encoder, already at the mesh
  frame rate) through a linear map C -> d.
- **Motion encoder**: a linear map 3V -> d of a previous frame's displacement from the template,
  plus the speaker's style embedding. The start token is the style embedding alone.
- **Periodic positional encoding (PPE)**: sinusoids of ``t mod p`` (period p frames).
- **Transformer decoder** (post-norm, ReLU feed-forward): the *biased causal multi-head
  self-attention* adds an ALiBi-style temporal bias ``-m_h * floor((i - j) / p)`` for keys
  ``j <= i`` (per-head slopes ``m_h`` as in ALiBi) and ``-inf`` for the future; the *biased
  cross-modal attention* uses the alignment mask, which lets frame i attend to its own audio
  frame only (the diagonal, since the features are at the mesh frame rate).
- **Motion decoder**: a linear map d -> 3V initialised to zero, plus the template. Both motion
  maps work in millimetres (:data:`~mmface4d.animate.model.LOSS_UNIT`), as ours does: with Adam a
  3V-wide output layer in metres jitters every vertex by millimetres per step.
- **Training**: the reconstruction loss (:func:`~mmface4d.animate.model.reconstruction_loss`).
  With ``teacher_forcing=False`` (the default) the decoder reads its own past predictions, one
  frame at a time, as the paper and the official code train; with ``teacher_forcing=True`` it
  reads the ground truth shifted right by one frame, all frames in parallel.
- **Inference** (``target=None``): the autoregressive loop, frame by frame, each step decoding
  the whole prefix again (O(T^2) frame evaluations, as the original); the last step's pass over
  all T tokens gives every frame's output (the same as each step's, the attention being causal),
  and in autoregressive training the loss reads that pass, as in the official code.

Documented differences from the paper:

- *Audio encoder*: FaceFormer fine-tunes wav2vec 2.0 (with its TCN) and interpolates its output
  to the mesh rate; here the audio features come from the project's encoder (``encoder.spec``,
  trainable or not), already at the mesh frame rate. The audio feature projection is kept.
- *Style*: FaceFormer conditions on a one-hot of the *training* speaker (a learned style vector
  per training subject) and, for unseen test speakers, has to use the training styles anyway.
  The common interface carries no speaker identity, only a reference motion of the same
  speaker, which FaceFormer has no means to use (``reference`` is ignored). So the model holds
  ``num_styles`` learned style vectors; the default, one, is conditioning on the training set's
  average style. More styles need explicit indices (``style=`` of :meth:`forward`), which the
  training loop does not pass.
- *Alignment*: features at the mesh rate make the alignment mask the diagonal (FaceFormer's
  VOCASET case; on BIWI its audio frames were twice the mesh rate).
- *Start token*: the style embedding alone, in training and at inference (the official
  teacher-forcing branch starts from the encoded zero displacement plus the style, which differs
  from its inference start token by the motion encoder's bias).
- *Length*: the bias and the PPE are computed for each length up to ``max_frames`` instead of a
  precomputed table (the official 600-frame table limits it to 20 s at 30 fps).
- *Loss scale*: the project's :func:`~mmface4d.animate.model.reconstruction_loss` (squared
  vertex distances averaged over vertices, in its unit), like the other models'
  ``reconstruction`` term; the official MSE over coordinates has the same minimiser.

Shapes: B batch, T frames, V vertices, C audio channels, d model width, H heads.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from mmface4d.animate.interface import AnimationModel, ModelLoss
from mmface4d.animate.model import LOSS_UNIT, reconstruction_loss
from mmface4d.animate.model_configs import FaceFormerConfig
from mmface4d.errors import InputError


def alibi_slopes(heads: int) -> torch.Tensor:
    """The per-head slopes of ALiBi (Press et al.): a geometric sequence from 2^(-8/H).

    For H not a power of two: the slopes of the nearest lower power of two, then every other
    slope of the next power of two.

    Args:
        heads: H.

    Returns:
        (H,) float32 slopes, e.g. 1/4, 1/16, 1/64, 1/256 for four heads.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (k + 1) for k in range(n)]

    if heads & (heads - 1) == 0:
        slopes = power_of_two(heads)
    else:
        closest = 2 ** math.floor(math.log2(heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def biased_causal_mask(
    num_frames: int, heads: int, period: int, device: torch.device | None = None
) -> torch.Tensor:
    """The temporal bias of FaceFormer's biased causal self-attention.

    Query i and key j: ``-m_h * floor((i - j) / p)`` for ``j <= i``, ``-inf`` for ``j > i``.

    Args:
        num_frames: T.
        heads: H (slopes ``m_h`` from :func:`alibi_slopes`).
        period: p, frames.
        device: where to build it.

    Returns:
        (H, T, T) additive attention bias (float32).
    """
    frames = torch.arange(num_frames, device=device)
    distance = frames[:, None] - frames[None, :]
    steps = torch.div(distance.clamp_min(0), period, rounding_mode="floor").float()
    bias = -alibi_slopes(heads).to(device)[:, None, None] * steps
    return bias.masked_fill(distance < 0, float("-inf"))


def alignment_mask(num_frames: int, device: torch.device | None = None) -> torch.Tensor:
    """The cross-modal alignment bias: frame i sees audio frame i only.

    Args:
        num_frames: T (motion frames and audio frames, both at the mesh rate).
        device: where to build it.

    Returns:
        (T, T) additive bias: 0 on the diagonal, ``-inf`` elsewhere.
    """
    mask = torch.full((num_frames, num_frames), float("-inf"), device=device)
    return mask.fill_diagonal_(0.0)


def periodic_positional_encoding(
    num_frames: int, width: int, period: int, device: torch.device | None = None
) -> torch.Tensor:
    """PPE: the sinusoidal encoding of the position within the period, ``t mod p``.

    ``PPE(t, 2i) = sin((t mod p) / 10000^(2i/d))`` and ``PPE(t, 2i+1) = cos(...)``.

    Args:
        num_frames: T.
        width: d (even).
        period: p, frames.
        device: where to build it.

    Returns:
        (T, d) float32 encoding, periodic in t with period p.
    """
    phase = (torch.arange(num_frames, device=device) % period).float()[:, None]
    frequency = 10000.0 ** (-torch.arange(0, width, 2, device=device).float() / width)
    encoding = torch.empty(num_frames, width, device=device)
    encoding[:, 0::2] = torch.sin(phase * frequency)
    encoding[:, 1::2] = torch.cos(phase * frequency)
    return encoding


class BiasedAttention(nn.Module):
    """Multi-head attention with an additive bias (per head or shared).

    Args:
        width: d.
        heads: H.
        dropout: dropout on the attention weights (training only).
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Attend from ``x`` to ``memory``.

        Args:
            x: (B, T, d) queries.
            memory: (B, S, d) keys and values.
            bias: (H, T, S) or (T, S) additive bias (``-inf``: not attended).

        Returns:
            (B, T, d).
        """
        B, T, d = x.shape
        S = memory.shape[1]

        def split(h: torch.Tensor, n: int) -> torch.Tensor:
            return h.view(B, n, self.heads, d // self.heads).transpose(1, 2)  # (B, H, n, d/H)

        q = split(self.query(x), T)
        k = split(self.key(memory), S)
        v = split(self.value(memory), S)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(B, T, d))


class FaceFormerDecoderLayer(nn.Module):
    """A post-norm transformer decoder layer with the biased self- and cross-attention.

    Args:
        width: d.
        heads: H.
        feedforward: hidden width of the feed-forward block.
        dropout: dropout rate.
    """

    def __init__(self, width: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = BiasedAttention(width, heads, dropout)
        self.cross_attention = BiasedAttention(width, heads, dropout)
        self.feedforward = nn.Sequential(
            nn.Linear(width, feedforward),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(feedforward, width),
        )
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.norm3 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        audio: torch.Tensor,
        self_bias: torch.Tensor,
        cross_bias: torch.Tensor,
    ) -> torch.Tensor:
        """x: (B, T, d) tokens, audio: (B, T, d), biases (H, T, T) and (T, T) -> (B, T, d)."""
        x = self.norm1(x + self.dropout(self.self_attention(x, x, self_bias)))
        x = self.norm2(x + self.dropout(self.cross_attention(x, audio, cross_bias)))
        return self.norm3(x + self.dropout(self.feedforward(x)))


def _check_config(config: FaceFormerConfig) -> None:
    positive = {
        "width": config.width,
        "heads": config.heads,
        "layers": config.layers,
        "period": config.period,
        "num_styles": config.num_styles,
        "max_frames": config.max_frames,
        "feedforward": 1 if config.feedforward is None else config.feedforward,
    }
    for key, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"model.{key}: expected a positive integer, found {value!r}")
    if config.width % 2 or config.width % config.heads:
        raise InputError(
            f"model.width: expected an even multiple of model.heads={config.heads}, "
            f"found {config.width}"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise InputError(f"model.dropout: expected a value in [0, 1), found {config.dropout}")


class FaceFormer(AnimationModel):
    """FaceFormer: an autoregressive transformer decoder of face motion from speech features.

    Args:
        num_vertices: V.
        config: its hyper-parameters (``audio_dim`` must already be the encoder's).
    """

    def __init__(self, num_vertices: int, config: FaceFormerConfig) -> None:
        super().__init__()
        _check_config(config)
        self.num_vertices = num_vertices
        self.audio_dim = config.audio_dim
        self.config = config
        d = config.width
        feedforward = 2 * d if config.feedforward is None else config.feedforward
        self.audio_projection = nn.Linear(config.audio_dim, d)
        self.motion_encoder = nn.Linear(3 * num_vertices, d)
        self.styles = nn.Embedding(config.num_styles, d)
        self.input_dropout = nn.Dropout(config.dropout)
        self.decoder = nn.ModuleList(
            [
                FaceFormerDecoderLayer(d, config.heads, feedforward, config.dropout)
                for _ in range(config.layers)
            ]
        )
        self.motion_decoder = nn.Linear(d, 3 * num_vertices)
        nn.init.zeros_(self.motion_decoder.weight)
        nn.init.zeros_(self.motion_decoder.bias)

    def _check_inputs(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        target: torch.Tensor | None,
    ) -> tuple[int, int]:
        if audio_features.dim() != 3 or audio_features.shape[2] != self.audio_dim:
            raise InputError(
                f"audio features must be (B, T, {self.audio_dim}), "
                f"got {tuple(audio_features.shape)}"
            )
        B, T = audio_features.shape[:2]
        if not 1 <= T <= self.config.max_frames:
            raise InputError(
                f"FaceFormer takes 1 to model.max_frames={self.config.max_frames} frames, got {T}"
            )
        V = self.num_vertices
        if template.shape != (B, V, 3):
            raise InputError(f"template must be ({B}, {V}, 3), got {tuple(template.shape)}")
        if target is not None and target.shape != (B, T, V, 3):
            raise InputError(f"target must be ({B}, {T}, {V}, 3), got {tuple(target.shape)}")
        return B, T

    def style_embedding(self, style: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The style vectors of a batch.

        Args:
            style: (B,) integer indices into the ``num_styles`` vectors, or None (allowed only
                with one style).
            batch: B.

        Returns:
            (B, d).
        """
        count = self.config.num_styles
        weight = self.styles.weight
        if style is None:
            if count != 1:
                raise InputError(
                    f"model.num_styles={count} needs style indices (B,), which the training "
                    "loop does not carry; use model.num_styles=1"
                )
            return weight[0].expand(batch, -1)
        if style.shape != (batch,) or style.dtype.is_floating_point or style.dtype == torch.bool:
            raise InputError(f"style must be ({batch},) integers, got {style.dtype} {style.shape}")
        if bool(((style < 0) | (style >= count)).any()):
            raise InputError(f"style indices must lie in [0, {count}), got {style.tolist()}")
        return self.styles(style.to(weight.device))

    def decode(
        self,
        tokens: torch.Tensor,
        audio: torch.Tensor,
        self_bias: torch.Tensor,
        cross_bias: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """Run the decoder on a prefix of t motion tokens.

        Args:
            tokens: (B, t, d) start token and encoded past frames (style included).
            audio: (B, T, d) projected audio, T >= t.
            self_bias: (H, T, T); cross_bias: (T, T); positions: (T, d) PPE.

        Returns:
            (B, t, d) decoder states; state i predicts frame i.
        """
        t = tokens.shape[1]
        x = self.input_dropout(tokens + positions[:t])
        for layer in self.decoder:
            x = layer(x, audio[:, :t], self_bias[:, :t, :t], cross_bias[:t, :t])
        return x

    def forward(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        reference: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Synthesise vertices.

        Args:
            audio_features: (B, T, C) at the mesh frame rate, 1 <= T <= ``max_frames``.
            template: (B, V, 3) neutral faces.
            reference: (B, T_s, V, 3) style reference; not used (see the module notes).
            target: (B, T, V, 3) ground truth: with ``teacher_forcing`` the decoder reads it
                shifted right by one frame; otherwise (or when None) the model reads its own
                past predictions, frame by frame.
            style: (B,) indices of the learned styles; None with ``num_styles=1``.

        Returns:
            (B, T, V, 3) predicted vertices.
        """
        B, T = self._check_inputs(audio_features, template, target)
        V, d, device = self.num_vertices, self.config.width, audio_features.device
        start = self.style_embedding(style, B)[:, None]  # (B, 1, d)
        audio = self.audio_projection(audio_features)  # (B, T, d)
        self_bias = biased_causal_mask(T, self.config.heads, self.config.period, device)
        cross_bias = alignment_mask(T, device)
        positions = periodic_positional_encoding(T, d, self.config.period, device)
        if target is not None and self.config.teacher_forcing:
            displacement = (target[:, :-1] - template[:, None]).reshape(B, T - 1, 3 * V)
            displacement = displacement / LOSS_UNIT  # the motion maps work in millimetres
            tokens = torch.cat([start, self.motion_encoder(displacement) + start], dim=1)
        else:
            tokens = start
            for _ in range(T - 1):
                state = self.decode(tokens, audio, self_bias, cross_bias, positions)[:, -1]
                encoded = self.motion_encoder(self.motion_decoder(state))[:, None] + start
                tokens = torch.cat([tokens, encoded], dim=1)
        # one pass over all T tokens gives every frame (causal: frame t sees tokens <= t only);
        # in the loop, as in the official code, it is the last step's pass
        offsets = self.motion_decoder(self.decode(tokens, audio, self_bias, cross_bias, positions))
        return template[:, None] + offsets.view(B, T, V, 3) * LOSS_UNIT

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> ModelLoss:
        """Mean squared vertex error (:func:`~mmface4d.animate.model.reconstruction_loss`).

        Args:
            prediction, target: (B, T, V, 3).
            mask: (B, T) bool of valid frames, or None for all.
        """
        reconstruction = reconstruction_loss(prediction, target, mask)
        return ModelLoss(total=reconstruction, terms={"reconstruction": reconstruction.detach()})


def build_faceformer(num_vertices: int, audio_dim: int, config: FaceFormerConfig) -> FaceFormer:
    """Registry builder: the encoder's channel count replaces ``config.audio_dim``."""
    return FaceFormer(num_vertices, dataclasses.replace(config, audio_dim=audio_dim))
