"""MeshTalk (Richard et al., ICCV 2021) as the registered baseline ``meshtalk``, reduced.

MeshTalk learns a categorical latent space of facial motion that separates what the audio
explains (the mouth) from what it does not (blinks, brows), then animates from audio alone with
an autoregressive prior over that latent space.

- **Expression encoder**: each target frame's offsets from the template (3V) -> two linear
  layers -> an LSTM -> a d-dimensional code per frame.
- **Audio encoder**: the project's speech features at the mesh frame rate (any encoder: log-mel,
  HuBERT, ...) projected to d, then residual dilated temporal convolutions (about one second of
  context, as the paper's) -> a d-dimensional code per frame.
- **Fusion**: an MLP over both codes -> H heads x C categories of logits per frame; a
  straight-through Gumbel-softmax draws an exact one-hot code per head (:func:`quantize`).
- **Decoder**: the one-hot latent (H * C) and the template's embedding -> a linear fusion ->
  an LSTM -> an MLP -> zero-initialised linear 3V offsets (scaled by ``offset_scale``), added
  to the template. As in the paper, audio reaches the decoder only through the latent.
- **Cross-modality loss**: the reconstruction is made twice more with one input swapped.
  (a) This clip's audio with another clip's expression must still reproduce the lower face;
  (b) this clip's expression with another clip's audio must still reproduce the upper face.
  So the latent must take the mouth from the audio and the rest from the expression.
- **Autoregressive prior**: a causal dilated convolution net over the previous frames' one-hot
  codes, conditioned on the audio code, predicts each frame's categories (cross-entropy against
  the encoder's argmax codes). At inference (no target) it generates the codes frame by frame,
  by argmax (default) or by sampling, and the decoder turns them into vertices.

Reductions from the paper, each deliberate:

1. Sizes: H = 16 heads x C = 64 categories and d = 128 by default (paper: 64 x 128, d = 128);
   the audio encoder takes the project's features instead of its own mel front end.
2. The "other clip" of (a) is the ``reference`` motion (same speaker, another sentence),
   repeated or cut to T frames; its offsets are taken from the same template. The paper (and
   its code) draws another sequence of the batch.
3. The "other audio" of (b) is the audio code of another clip of the batch (the batch rolled by
   a random shift, as the paper's code does); with a batch of one, this clip's audio code shifted
   circularly in time by a random offset (zeros when T = 1).
4. Upper and lower face are not hand-painted masks but per-vertex weights from the template's
   height (:func:`face_region_weights`): the vertical axis is the template's principal axis of
   largest extent, its sign makes the narrower end (the chin) the bottom, and the lower
   ``lower_face_fraction`` of the height (about the nose base down) is the lower face, with a
   smooth edge. ``up_axis`` fixes the axis when the guess is wrong for a topology.
5. The prior is trained jointly with the autoencoder on detached inputs (the encoder's argmax
   codes and audio codes), so it never shapes the encoder; the paper trains it in a second
   stage on the frozen encoder. Its own parameters see only its cross-entropy, so under Adam
   ``prior_weight`` mostly sets its share of the global gradient-norm clip (kept small).
6. The prior is autoregressive over frames only: all heads of a frame are predicted together
   from the previous frames (the paper's also orders the heads within a frame).
7. The decoder is a plain template embedding plus offsets (no U-Net skips over the template);
   offsets are in metres, normalised by a fixed ``offset_scale`` instead of dataset statistics.
8. No separate eye-lid loss; the vertex losses use the project's :func:`reconstruction_loss`
   units (squared millimetres, :data:`~mmface4d.animate.model.LOSS_UNIT`; mean over vertices
   and frames), the prior's cross-entropy is in nats per head and frame.

Extra loss terms are computed in the training forward (the only place that sees both the audio
and the reference) and kept on the module until the following :meth:`MeshTalk.loss` call, which
adds them and clears them: call ``loss`` after each forward with a target, as the training loop
does.

Shapes: B batch, T frames, V vertices, C_a audio channels, d latent channels, H heads, C
categories per head, T_s reference frames.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmface4d.animate.interface import AnimationModel, ModelLoss
from mmface4d.animate.model import LOSS_UNIT, reconstruction_loss
from mmface4d.animate.model_configs import MeshTalkConfig
from mmface4d.errors import InputError

#: Accepted ``up_axis`` values: ``auto`` or a signed coordinate axis.
UP_AXES = ("auto", "+x", "-x", "+y", "-y", "+z", "-z")
_TEMPLATE_UNIT = 0.1  # metres: the centred template is embedded in decimetres (entries ~1)
_SLOPE = 0.2  # leaky ReLU slope, as in the paper's networks


def validate_config(config: MeshTalkConfig) -> None:
    """Raise :class:`InputError` naming the first out-of-range field of ``config``."""
    positive_ints = (
        "audio_dim",
        "latent_dim",
        "heads",
        "audio_layers",
        "decoder_lstm_layers",
        "prior_channels",
        "prior_layers",
    )
    for name in positive_ints:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"model.{name}: expected a positive integer, found {value!r}")
    if config.categories < 2:
        raise InputError(f"model.categories: expected at least 2, found {config.categories}")
    for name in ("gumbel_temperature", "offset_scale"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"model.{name}: expected a positive number, found {value}")
    if not 0 < config.lower_face_fraction < 1:
        raise InputError(
            f"model.lower_face_fraction: expected a value in (0, 1), found "
            f"{config.lower_face_fraction}"
        )
    if config.up_axis not in UP_AXES:
        raise InputError(f"model.up_axis: expected one of {UP_AXES}, found {config.up_axis!r}")
    for name in ("mask_softness", "cross_modality_weight", "prior_weight"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"model.{name}: expected a number >= 0, found {value}")
    if not 0 <= config.dropout < 1:
        raise InputError(f"model.dropout: expected a value in [0, 1), found {config.dropout}")


def quantize(
    logits: torch.Tensor, temperature: float = 1.0, noise: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through Gumbel-softmax: exact one-hot codes with the relaxation's gradient.

    The forward value is the one-hot of ``argmax(logits + g)`` (g Gumbel noise, or none); the
    gradient is that of ``softmax((logits + g) / temperature)``. The one-hot is exact because it
    is ``hard + (soft - soft.detach())``, whose second term is exactly zero.

    Args:
        logits: (..., C) unnormalised log-probabilities (e.g. (B, T, H, C)).
        temperature: tau > 0.
        noise: draw Gumbel noise (training); False quantises to the argmax.

    Returns:
        (..., C) one-hot codes and (...) int64 category labels.
    """
    if noise:
        gumbel = -torch.empty_like(logits).exponential_().log()
        logits = logits + gumbel
    soft = torch.softmax(logits / temperature, dim=-1)
    labels = logits.argmax(dim=-1)
    hard = F.one_hot(labels, logits.shape[-1]).to(soft.dtype)
    return hard + (soft - soft.detach()), labels


def face_region_weights(
    template: torch.Tensor,
    lower_face_fraction: float = 0.4,
    up_axis: str = "auto",
    softness: float = 0.02,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-vertex lower-face and upper-face weights from a template's height.

    The up direction is ``up_axis``, or with ``auto`` the template's principal axis of largest
    extent (faces are taller than wide or deep), signed so that the end whose cross-section is
    narrower (the chin, against the forehead) is the bottom. This holds in the model frame
    (y up) and in the OpenCV camera frame (y down) alike, head pose included. Along that axis,
    heights below ``lower_face_fraction`` of the extent from the bottom are the lower face.

    Args:
        template: (B, V, 3) neutral faces.
        lower_face_fraction: share of the height, from the bottom, in the lower face.
        up_axis: ``auto`` or one of ``+x``, ``-x``, ``+y``, ``-y``, ``+z``, ``-z``.
        softness: width of the sigmoid edge as a share of the height (0: hard 0/1 weights).

    Returns:
        (B, V) lower-face weights in [0, 1] and (B, V) upper-face weights (their complement).
    """
    if template.dim() != 3 or template.shape[-1] != 3 or template.shape[1] < 2:
        raise InputError(f"template must be (B, V >= 2, 3), got {tuple(template.shape)}")
    if up_axis not in UP_AXES:
        raise InputError(f"up_axis: expected one of {UP_AXES}, found {up_axis!r}")
    with torch.no_grad():
        points = template.detach().float()
        centred = points - points.mean(dim=1, keepdim=True)
        if up_axis == "auto":
            up = _principal_up(centred)
        else:
            up = torch.zeros(3, device=points.device)
            up["xyz".index(up_axis[1])] = 1.0 if up_axis[0] == "+" else -1.0
            up = up.expand(len(points), 3)
        height = torch.einsum("bvk,bk->bv", centred, up)
        low = height.min(dim=1, keepdim=True).values
        extent = (height.max(dim=1, keepdim=True).values - low).clamp_min(1e-12)
        threshold = low + lower_face_fraction * extent
        if softness > 0:
            lower = torch.sigmoid((threshold - height) / (softness * extent))
        else:
            lower = (height <= threshold).float()
    lower = lower.to(template.dtype)
    return lower, 1.0 - lower


def _principal_up(centred: torch.Tensor, end_share: float = 0.2) -> torch.Tensor:
    """(B, V, 3) centred points -> (B, 3) unit axis of largest extent, pointing away from the
    narrower end (the mean distance of its last ``end_share`` from the axis)."""
    covariance = centred.transpose(1, 2) @ centred / centred.shape[1]
    axis = torch.linalg.eigh(covariance.double()).eigenvectors[..., -1].to(centred.dtype)
    height = torch.einsum("bvk,bk->bv", centred, axis)
    across = (centred - height.unsqueeze(-1) * axis.unsqueeze(1)).norm(dim=-1)  # (B, V)
    low = height.min(dim=1, keepdim=True).values
    high = height.max(dim=1, keepdim=True).values
    band = end_share * (high - low)
    bottom, top = height <= low + band, height >= high - band
    width_bottom = (across * bottom).sum(1) / bottom.sum(1).clamp_min(1)
    width_top = (across * top).sum(1) / top.sum(1).clamp_min(1)
    sign = torch.where(width_top >= width_bottom, 1.0, -1.0).to(axis.dtype)
    return axis * sign.unsqueeze(1)


def weighted_vertex_error(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared vertex error averaged with per-vertex weights, then over valid frames.

    Args:
        prediction, target: (B, T, V, 3) metres.
        weights: (B, V) non-negative vertex weights.
        mask: (B, T) bool of valid frames, or None.

    Returns:
        () the weighted mean squared distance in squared :data:`LOSS_UNIT` (mm^2), the units
        of :func:`reconstruction_loss`.
    """
    error = (((prediction - target) / LOSS_UNIT) ** 2).sum(-1)  # (B, T, V)
    per_frame = (error * weights.unsqueeze(1)).sum(-1) / weights.sum(-1, keepdim=True).clamp_min(
        1e-12
    )
    if mask is None:
        return per_frame.mean()
    return (per_frame * mask).sum() / mask.sum().clamp_min(1)


class ExpressionEncoder(nn.Module):
    """Offsets from the template -> per-frame expression codes (linear, linear, LSTM, linear)."""

    def __init__(self, num_vertices: int, latent_dim: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Linear(3 * num_vertices, latent_dim),
            nn.LeakyReLU(_SLOPE),
            nn.Linear(latent_dim, latent_dim),
            nn.LeakyReLU(_SLOPE),
        )
        self.temporal = nn.LSTM(latent_dim, latent_dim, batch_first=True)
        self.code = nn.Linear(latent_dim, latent_dim)

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        """offsets: (B, T, V, 3) in units of ``offset_scale`` -> (B, T, d)."""
        h = self.embed(offsets.flatten(2))
        return self.code(self.temporal(h)[0])


class AudioEncoder(nn.Module):
    """Speech features -> per-frame audio codes (projection, residual dilated convs, linear)."""

    def __init__(self, audio_dim: int, latent_dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.project = nn.Linear(audio_dim, latent_dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(latent_dim, latent_dim, 5, dilation=2 ** (i % 3), padding=2 * 2 ** (i % 3))
            for i in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.code = nn.Linear(latent_dim, latent_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, T, C_a) -> (B, T, d)."""
        h = F.leaky_relu(self.project(features), _SLOPE).transpose(1, 2)
        for conv in self.convs:
            h = h + self.dropout(F.leaky_relu(conv(h), _SLOPE))
        return self.code(h.transpose(1, 2))


class Fusion(nn.Module):
    """Expression and audio codes -> categorical logits (MLP, as the paper's fusion)."""

    def __init__(self, latent_dim: int, heads: int, categories: int) -> None:
        super().__init__()
        self.heads, self.categories = heads, categories
        hidden = 2 * latent_dim
        self.mlp = nn.Sequential(
            nn.Linear(2 * latent_dim, hidden),
            nn.LeakyReLU(_SLOPE),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(_SLOPE),
            nn.Linear(hidden, heads * categories),
        )

    def forward(self, expression: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, d), (B, T, d) -> (B, T, H, C) log-probabilities per head."""
        logits = self.mlp(torch.cat([expression, audio], dim=-1))
        logits = logits.unflatten(-1, (self.heads, self.categories))
        return torch.log_softmax(logits.float(), dim=-1)


class Decoder(nn.Module):
    """One-hot latent and template embedding -> vertex offsets (zero-initialised output)."""

    def __init__(
        self, num_vertices: int, latent_dim: int, heads: int, categories: int, lstm_layers: int
    ) -> None:
        super().__init__()
        self.template_embedding = nn.Linear(3 * num_vertices, latent_dim)
        self.fuse = nn.Linear(heads * categories + latent_dim, latent_dim)
        self.temporal = nn.LSTM(latent_dim, latent_dim, num_layers=lstm_layers, batch_first=True)
        self.hidden = nn.Linear(latent_dim, latent_dim)
        self.offsets = nn.Linear(latent_dim, 3 * num_vertices)
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.offsets.bias)

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        """template: (B, V, 3) metres -> (B, d) (centred, in decimetres)."""
        centred = template - template.mean(dim=1, keepdim=True)
        return F.leaky_relu(self.template_embedding(centred.flatten(1) / _TEMPLATE_UNIT), _SLOPE)

    def forward(self, codes: torch.Tensor, template_embedding: torch.Tensor) -> torch.Tensor:
        """codes: (B, T, H, C) one-hot, template_embedding: (B, d) -> (B, T, V, 3) offsets in
        units of ``offset_scale``."""
        T = codes.shape[1]
        face = template_embedding.unsqueeze(1).expand(-1, T, -1)
        h = F.leaky_relu(self.fuse(torch.cat([codes.flatten(2), face], dim=-1)), _SLOPE)
        h = self.temporal(h)[0]
        h = F.leaky_relu(self.hidden(h), _SLOPE)
        return self.offsets(h).unflatten(-1, (-1, 3))


class LatentPrior(nn.Module):
    """Autoregressive prior over the categorical codes, conditioned on the audio codes.

    Frame t's logits depend on the codes of frames ``t - R .. t - 1`` (R = ``receptive_field``)
    and on the audio codes of frames ``t - R + 1 .. t``: the codes are shifted one frame right,
    then embedded and passed through residual causal dilated convolutions (kernel 2, dilations
    1, 2, 4, ...), each adding a 1x1 projection of the audio code.
    """

    def __init__(
        self, heads: int, categories: int, audio_dim: int, channels: int, layers: int
    ) -> None:
        super().__init__()
        self.heads, self.categories = heads, categories
        self.embed = nn.Conv1d(heads * categories, channels, 1)
        self.causal = nn.ModuleList(
            nn.Conv1d(channels, channels, 2, dilation=2**i) for i in range(layers)
        )
        self.audio = nn.ModuleList(nn.Conv1d(audio_dim, channels, 1) for _ in range(layers))
        self.logits = nn.Conv1d(channels, heads * categories, 1)

    @property
    def receptive_field(self) -> int:
        """Frames of shifted input that one output frame sees (its own included)."""
        return 1 + sum(conv.dilation[0] for conv in self.causal)

    def step_logits(self, inputs: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Logits from already-shifted inputs.

        Args:
            inputs: (B, T, H * C) frame t holds the one-hot codes of frame t - 1 (zeros at 0).
            audio: (B, T, d) audio codes.

        Returns:
            (B, T, H, C) log-probabilities.
        """
        x = self.embed(inputs.transpose(1, 2))
        a = audio.transpose(1, 2)
        for conv, project in zip(self.causal, self.audio, strict=True):
            padded = F.pad(x, (conv.dilation[0], 0))  # left only: causal
            x = x + F.leaky_relu(conv(padded) + project(a), _SLOPE)
        logits = self.logits(x).transpose(1, 2).unflatten(-1, (self.heads, self.categories))
        return torch.log_softmax(logits.float(), dim=-1)

    def forward(self, codes: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits of every frame.

        Args:
            codes: (B, T, H, C) one-hot codes.
            audio: (B, T, d) audio codes.

        Returns:
            (B, T, H, C) log-probabilities of frame t's codes given the codes before t.
        """
        flat = codes.flatten(2)
        inputs = torch.cat([torch.zeros_like(flat[:, :1]), flat[:, :-1]], dim=1)
        return self.step_logits(inputs, audio)

    @torch.no_grad()
    def generate(self, audio: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Codes frame by frame, each from the prior given the codes generated before it.

        Only the last ``receptive_field`` frames are recomputed per step, which gives the same
        logits as the teacher-forced :meth:`forward` on the generated codes.

        Args:
            audio: (B, T, d) audio codes.
            sample: draw each frame's categories (Gumbel-max) instead of taking the argmax.

        Returns:
            (B, T, H, C) one-hot codes.
        """
        B, T = audio.shape[:2]
        H, C = self.heads, self.categories
        inputs = audio.new_zeros(B, T + 1, H * C)
        codes = audio.new_zeros(B, T, H, C)
        R = self.receptive_field
        for t in range(T):
            start = max(0, t - R + 1)
            logits = self.step_logits(inputs[:, start : t + 1], audio[:, start : t + 1])[:, -1]
            one_hot, _ = quantize(logits, noise=sample)
            codes[:, t] = one_hot.to(codes.dtype)
            inputs[:, t + 1] = codes[:, t].flatten(1)
        return codes


@dataclass
class _TrainingTerms:
    """What the training forward leaves for :meth:`MeshTalk.loss` (shapes as in forward)."""

    lower_weights: torch.Tensor  # (B, V)
    upper_weights: torch.Tensor  # (B, V)
    audio_with_other_expression: torch.Tensor | None  # (B, T, V, 3): judged on the lower face
    expression_with_other_audio: torch.Tensor | None  # (B, T, V, 3): judged on the upper face
    prior_log_probs: torch.Tensor  # (B, T, H, C)
    code_labels: torch.Tensor  # (B, T, H)


class MeshTalk(AnimationModel):
    """Reduced MeshTalk behind the common interface (see the module docstring).

    Args:
        num_vertices: V.
        config: its hyper-parameters (``audio_dim`` must already be the encoder's).
    """

    def __init__(self, num_vertices: int, config: MeshTalkConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MeshTalkConfig()
        validate_config(config)
        self.num_vertices = num_vertices
        self.audio_dim = config.audio_dim
        d, H, C = config.latent_dim, config.heads, config.categories
        self.expression_encoder = ExpressionEncoder(num_vertices, d)
        self.audio_encoder = AudioEncoder(config.audio_dim, d, config.audio_layers, config.dropout)
        self.fusion = Fusion(d, H, C)
        self.decoder = Decoder(num_vertices, d, H, C, config.decoder_lstm_layers)
        self.prior = LatentPrior(H, C, d, config.prior_channels, config.prior_layers)
        self._last_terms: _TrainingTerms | None = None

    def _check_inputs(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        reference: torch.Tensor,
        target: torch.Tensor | None,
    ) -> None:
        V = self.num_vertices
        if audio_features.dim() != 3 or audio_features.shape[1] < 1:
            raise InputError(
                f"audio features must be (B, T >= 1, C_a), got {tuple(audio_features.shape)}"
            )
        B, T, C = audio_features.shape
        if C != self.audio_dim:
            raise InputError(
                f"audio features have {C} channels, the model expects {self.audio_dim}"
            )
        if template.shape != (B, V, 3):
            raise InputError(f"template must be ({B}, {V}, 3), got {tuple(template.shape)}")
        if target is not None:
            if (
                reference is None
                or reference.dim() != 4
                or reference.shape[0] != B
                or reference.shape[1] < 1
                or reference.shape[2:] != (V, 3)
            ):
                got = None if reference is None else tuple(reference.shape)
                raise InputError(f"style reference must be ({B}, T_s >= 1, {V}, 3), got {got}")
            if target.shape != (B, T, V, 3):
                raise InputError(f"target must be ({B}, {T}, {V}, 3), got {tuple(target.shape)}")

    def _offsets(self, vertices: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """(B, T, V, 3) metres -> (B, T, V, 3) offsets from the template in ``offset_scale``."""
        return (vertices - template.unsqueeze(1)) / self.config.offset_scale

    def _decode(
        self, codes: torch.Tensor, template_embedding: torch.Tensor, template: torch.Tensor
    ) -> torch.Tensor:
        offsets = self.decoder(codes, template_embedding) * self.config.offset_scale
        return template.unsqueeze(1) + offsets

    def generate_codes(self, audio_features: torch.Tensor) -> torch.Tensor:
        """The prior's codes for a sequence: (B, T, C_a) -> (B, T, H, C) one-hot."""
        audio = self.audio_encoder(audio_features)
        return self.prior.generate(audio.detach(), sample=self.config.sample_prior)

    def forward(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        reference: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reconstruct (target given) or animate from audio alone (target None).

        Args:
            audio_features: (B, T, C_a) at the mesh frame rate.
            template: (B, V, 3) neutral faces.
            reference: (B, T_s, V, 3) another clip of the same speakers: the cross-modality
                loss's other expression (training only; unused at inference).
            target: (B, T, V, 3) ground truth: encoded with the audio (Gumbel noise in training
                mode, argmax in eval mode), and the loss terms are prepared; or None: codes
                from the prior.

        Returns:
            (B, T, V, 3) vertices.
        """
        self._check_inputs(audio_features, template, reference, target)
        self._last_terms = None
        face = self.decoder.embed_template(template)
        if target is None:
            return self._decode(self.generate_codes(audio_features), face, template)
        cfg = self.config
        tau, noise = cfg.gumbel_temperature, self.training
        audio = self.audio_encoder(audio_features)
        expression = self.expression_encoder(self._offsets(target, template))
        log_probs = self.fusion(expression, audio)
        codes, _ = quantize(log_probs, tau, noise)
        prediction = self._decode(codes, face, template)

        crossed_a = crossed_b = None
        if cfg.cross_modality_weight > 0:
            T = audio.shape[1]
            other = reference[:, torch.arange(T, device=reference.device) % reference.shape[1]]
            other_expression = self.expression_encoder(self._offsets(other, template))
            codes_a, _ = quantize(self.fusion(other_expression, audio), tau, noise)
            crossed_a = self._decode(codes_a, face, template)
            codes_b, _ = quantize(self.fusion(expression, _other_audio(audio)), tau, noise)
            crossed_b = self._decode(codes_b, face, template)

        # the prior learns the encoder's argmax codes, as in the paper's second stage
        labels = log_probs.detach().argmax(-1)
        targets = F.one_hot(labels, cfg.categories).to(audio.dtype)
        lower, upper = face_region_weights(
            template, cfg.lower_face_fraction, cfg.up_axis, cfg.mask_softness
        )
        self._last_terms = _TrainingTerms(
            lower_weights=lower,
            upper_weights=upper,
            audio_with_other_expression=crossed_a,
            expression_with_other_audio=crossed_b,
            prior_log_probs=self.prior(targets, audio.detach()),
            code_labels=labels,
        )
        return prediction

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> ModelLoss:
        """Reconstruction, plus (after a forward with a target) the two cross-modality terms
        and the prior's cross-entropy, all named in ``terms``.

        Args:
            prediction, target: (B, T, V, 3).
            mask: (B, T) bool of valid frames, or None for all.
        """
        reconstruction = reconstruction_loss(prediction, target, mask)
        terms = {"reconstruction": reconstruction.detach()}
        total = reconstruction
        stash, self._last_terms = self._last_terms, None
        if stash is None:
            return ModelLoss(total=total, terms=terms)
        if stash.code_labels.shape[:2] != target.shape[:2]:
            raise InputError(
                f"loss: target has {tuple(target.shape[:2])} (B, T), the last forward "
                f"{tuple(stash.code_labels.shape[:2])}"
            )
        cfg = self.config
        if stash.audio_with_other_expression is not None:
            lower = weighted_vertex_error(
                stash.audio_with_other_expression, target, stash.lower_weights, mask
            )
            upper = weighted_vertex_error(
                stash.expression_with_other_audio, target, stash.upper_weights, mask
            )
            terms["cross_modal_lower"] = lower.detach()
            terms["cross_modal_upper"] = upper.detach()
            total = total + cfg.cross_modality_weight * (lower + upper)
        nll = -stash.prior_log_probs.gather(-1, stash.code_labels.unsqueeze(-1))[..., 0]
        per_frame = nll.mean(-1)  # (B, T), mean over heads
        prior = (
            per_frame.mean() if mask is None else (per_frame * mask).sum() / mask.sum().clamp_min(1)
        )
        terms["prior_cross_entropy"] = prior.detach()
        return ModelLoss(total=total + cfg.prior_weight * prior, terms=terms)


def _other_audio(audio: torch.Tensor) -> torch.Tensor:
    """Audio codes of another clip: (B, T, d) rolled over the batch by a random shift in
    [1, B - 1]; with B = 1 rolled in time by a random shift in [1, T - 1] (zeros if T = 1)."""
    B, T = audio.shape[:2]
    if B > 1:
        return audio.roll(int(torch.randint(1, B, ())), dims=0)
    if T > 1:
        return audio.roll(int(torch.randint(1, T, ())), dims=1)
    return torch.zeros_like(audio)


def build_meshtalk(num_vertices: int, audio_dim: int, config: MeshTalkConfig) -> MeshTalk:
    """Registry builder: the encoder's channel count replaces ``config.audio_dim``."""
    return MeshTalk(num_vertices, dataclasses.replace(config, audio_dim=audio_dim))
