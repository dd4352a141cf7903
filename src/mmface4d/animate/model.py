"""The paper's audio-to-face network (MMFace4D section VI): composite, regional, fast.

Inputs: a speaker's template face (V, 3), speech features at the mesh frame rate (T, C_a) and a
reference motion sequence of the same speaker (T_s, V, 3) that carries the speaking style.

- **Encoding matrix** ``W_e`` (3V -> D): embeds a face (or a frame of offsets) as a D vector.
- **Style path** (composite nature): the reference is normalised by its mean face (eq. 5),
  embedded with ``W_e``, encoded by a ResNet1D with 4x temporal downsampling, and summarised by
  its mean and standard deviation over time; linear maps turn that into per-layer scales and
  shifts that modulate the decoder AdaIN-style (eq. 6).
- **Decoder**: audio features (projected to D) concatenated with the template embedding, a
  ResNet1D with no downsampling (kernel 3, stride 1).
- **Decoding matrix** ``W_d`` (D -> 3V): vertex offsets (in millimetres) added to the
  template. Its sparsity regulariser (eq. 7, regional nature) pushes different rows to drive
  different vertices.

The registered model ``ours`` is :class:`OursAnimator`, the adapter of the network to the
registry's interface, with eq. 8 (:func:`paper_loss`) as its loss.

Shapes: B batch, T frames, V vertices, C_a audio channels, D latent channels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from mmface4d.animate.interface import AnimationModel, ModelLoss
from mmface4d.animate.model_configs import OursConfig
from mmface4d.errors import InputError

#: Length unit of the training losses, in metres: vertices are stored in metres, the losses are
#: computed in millimetres. The paper gives eq. 7's weight (1e-6) without units; in m^2 the
#: reconstruction term (~1e-5 after training) would be dwarfed by the weighted regulariser
#: (~4e-2 at D=256), in mm^2 (~1-10) the regulariser is a mild prior, consistent with the paper's
#: small 'w/o regional' difference. Every registered model uses this one loss. The decoding
#: matrix W_d also outputs offsets in this unit: Adam moves every weight by about the learning
#: rate per step whatever its gradient's size, so a W_d in metres would jitter each vertex by
#: millimetres per step (a bumpy skin), one in millimetres by micrometres.
LOSS_UNIT = 1e-3


class ResBlock1d(nn.Module):
    """Residual block: conv(k3) -> norm -> PReLU -> conv(k3) -> norm, plus a (strided) skip."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(1, c_out) if norm else nn.Identity()
        self.norm2 = nn.GroupNorm(1, c_out) if norm else nn.Identity()
        self.act = nn.PReLU(c_out)
        self.skip = (
            nn.Conv1d(c_in, c_out, 1, stride=stride) if (c_in != c_out or stride != 1) else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T) -> (B, C_out, ceil(T / stride))."""
        h = self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))
        return self.act(h + (x if self.skip is None else self.skip(x)))


def normalise_reference(reference: torch.Tensor) -> torch.Tensor:
    """Eq. 5: subtract the reference sequence's mean face.

    Args:
        reference: (B, T_s, V, 3).

    Returns:
        (B, T_s, V, 3) motion around the mean face.
    """
    return reference - reference.mean(dim=1, keepdim=True)


def style_statistics(encoded: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over time of the encoded style sequence.

    Args:
        encoded: (B, C, T') style-encoder output.

    Returns:
        (B, 2C) concatenated [mean, std].
    """
    std = (
        encoded.std(dim=2, unbiased=False)
        if encoded.shape[2] > 1
        else torch.zeros_like(encoded[..., 0])
    )
    return torch.cat([encoded.mean(dim=2), std], dim=1)


def adain(
    features: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Eq. 6: AdaIN modulation of decoder features by style-derived scale and shift.

    Args:
        features: (B, D, T) decoder features.
        scale: (B, D) sigma from the style.
        shift: (B, D) mu from the style.

    Returns:
        (B, D, T) ``scale * (features - mean_t) / std_t + shift``.
    """
    mean = features.mean(dim=2, keepdim=True)
    std = features.std(dim=2, keepdim=True, unbiased=False) + eps
    return scale.unsqueeze(2) * (features - mean) / std + shift.unsqueeze(2)


def decoding_sparsity(decoding_matrix: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 7: overlap between the vertex footprints of different rows of ``W_d``.

    Each row (one latent channel's offsets over all 3V coordinates) is taken in absolute value
    and L2-normalised; the regulariser sums the inner products of all pairs of different rows,
    computed as ``sum(G) - trace(G)`` with the Gram matrix ``G = N N^T``.

    Args:
        decoding_matrix: (D, 3V).

    Returns:
        () scalar, >= 0; 0 when rows touch disjoint coordinates.
    """
    rows = decoding_matrix.abs()
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(eps)
    gram = rows @ rows.T
    return gram.sum() - gram.diagonal().sum()


class StyleEncoder(nn.Module):
    """ResNet18-style 1D encoder of an embedded reference sequence (4x temporal downsampling)."""

    def __init__(self, latent_dim: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = latent_dim
        for stage, c_out in enumerate(channels):
            stride = 2 if stage in (1, 2) else 1
            layers += [ResBlock1d(c_in, c_out, stride), ResBlock1d(c_out, c_out)]
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """embedded: (B, D, T_s) -> (B, C, ceil(T_s / 4))."""
        return self.blocks(embedded)


@dataclass
class OursOutput:
    """Forward result.

    Attributes:
        vertices: (B, T, V, 3) predicted vertices.
        template: (B, V, 3) the neutral faces they move from.
    """

    vertices: torch.Tensor
    template: torch.Tensor

    @property
    def offsets(self) -> torch.Tensor:
        """(B, T, V, 3) predicted offsets from the template (computed on access)."""
        return self.vertices - self.template.unsqueeze(1)


@dataclass
class SpeakerConditioning:
    """What :class:`Ours` computes once per speaker: it depends on the template and the style
    reference, not on the speech, so a speaker's windows and sentences can share it.

    Attributes:
        template: (B, V, 3) neutral faces.
        face: (B, D) their encoding (W_e).
        scales, shifts: (B, n, D) AdaIN parameters of the n decoder blocks, or None without
            the composite module.
    """

    template: torch.Tensor
    face: torch.Tensor
    scales: torch.Tensor | None
    shifts: torch.Tensor | None


class Ours(nn.Module):
    """The paper's composite-and-regional non-autoregressive audio-to-face network."""

    def __init__(self, num_vertices: int, config: OursConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or OursConfig()
        self.num_vertices = num_vertices
        D = config.latent_dim
        self.encoding = nn.Linear(3 * num_vertices, D)  # W_e
        self.audio_proj = nn.Sequential(nn.Linear(config.audio_dim, D), nn.Dropout(config.dropout))
        self.decoder_in = nn.Conv1d(2 * D, D, 1)
        self.decoder = nn.ModuleList(
            [ResBlock1d(D, D, norm=False) for _ in range(config.decoder_blocks)]
        )
        if config.composite:
            self.style_encoder = StyleEncoder(D, config.style_channels)
            stats = 2 * self.style_encoder.out_channels
            self.to_scale = nn.Linear(stats, D * config.decoder_blocks)
            self.to_shift = nn.Linear(stats, D * config.decoder_blocks)
            nn.init.zeros_(self.to_scale.weight)
            nn.init.ones_(self.to_scale.bias)
            nn.init.zeros_(self.to_shift.weight)
            nn.init.zeros_(self.to_shift.bias)
        if not config.official_variant:
            self.decoding = nn.Linear(D, 3 * num_vertices)  # W_d
            nn.init.zeros_(self.decoding.bias)
            nn.init.normal_(self.decoding.weight, std=1e-3)

    def decoding_matrix(self) -> torch.Tensor:
        """W_d as (D, 3V): each row is one latent channel's offsets over all coordinates."""
        if self.config.official_variant:
            return self.encoding.weight  # (D, 3V): tied to W_e, as in the official code
        return self.decoding.weight.T

    def style(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-layer AdaIN scale and shift from a reference sequence (B, T_s, V, 3)."""
        B, Ts = reference.shape[:2]
        motion = normalise_reference(reference).reshape(B, Ts, -1)
        embedded = self.encoding(motion).transpose(1, 2)  # (B, D, T_s)
        stats = style_statistics(self.style_encoder(embedded))
        n, D = self.config.decoder_blocks, self.config.latent_dim
        return self.to_scale(stats).view(B, n, D), self.to_shift(stats).view(B, n, D)

    def condition(
        self, template: torch.Tensor, reference: torch.Tensor | None = None
    ) -> SpeakerConditioning:
        """The per-speaker part of the network.

        Args:
            template: (B, V, 3) neutral faces.
            reference: (B, T_s, V, 3) style reference of the same speakers (required when
                ``composite``; T_s at least 1).
        """
        V = self.num_vertices
        B = template.shape[0]
        if template.dim() != 3 or template.shape[1:] != (V, 3):
            raise InputError(f"template must be (B, {V}, 3), got {tuple(template.shape)}")
        scales = shifts = None
        if self.config.composite:
            if (
                reference is None
                or reference.dim() != 4
                or reference.shape[0] != B
                or reference.shape[2:] != (V, 3)
            ):
                got = None if reference is None else tuple(reference.shape)
                raise InputError(f"style reference must be ({B}, T_s, {V}, 3), got {got}")
            scales, shifts = self.style(reference)
        face = self.encoding(template.reshape(B, -1))  # (B, D)
        return SpeakerConditioning(template, face, scales, shifts)

    def decode(self, audio_features: torch.Tensor, speaker: SpeakerConditioning) -> OursOutput:
        """Synthesise from speech features and a speaker's :meth:`condition`.

        The last layer writes the vertices in one pass: ``template + unit * (h W_d + b)`` as
        one batched matrix product with the template and bias as its addend.

        Args:
            audio_features: (B, T, C_a) at the mesh frame rate.
            speaker: from :meth:`condition` (batch B).
        """
        B, T, _ = audio_features.shape
        V = self.num_vertices
        latent, weight, addend = self.linear_decoding(audio_features, speaker)
        weight = weight.unsqueeze(0).expand(B, -1, -1)  # (B, D, 3V)
        vertices = torch.baddbmm(addend.unsqueeze(1).expand(-1, T, -1), latent, weight)
        return OursOutput(vertices=vertices.view(B, T, V, 3), template=speaker.template)

    def linear_decoding(
        self, audio_features: torch.Tensor, speaker: SpeakerConditioning
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`decode` before its last product: (B, T, D) latent (in :data:`LOSS_UNIT`),
        (D, 3V) ``W_d`` and the (B, 3V) addend (template and bias), vertices being
        ``addend + latent @ W_d``."""
        B, T, C = audio_features.shape
        V = self.num_vertices
        if C != self.config.audio_dim:
            raise InputError(
                f"audio features have {C} channels, the model expects {self.config.audio_dim}"
            )
        if speaker.template.shape[0] != B:
            raise InputError(
                f"speaker conditioning of batch {speaker.template.shape[0]}, audio of batch {B}"
            )
        audio = self.audio_proj(audio_features)  # (B, T, D)
        face = speaker.face.unsqueeze(1).expand(-1, T, -1)
        h = self.decoder_in(torch.cat([audio, face], dim=2).transpose(1, 2))
        for k, block in enumerate(self.decoder):
            h = block(h)
            if speaker.scales is not None:
                h = adain(h, speaker.scales[:, k], speaker.shifts[:, k])
        latent = h.transpose(1, 2) * LOSS_UNIT  # (B, T, D); W_d works in millimetres
        addend = speaker.template.reshape(B, 3 * V)
        if not self.config.official_variant:
            addend = addend + LOSS_UNIT * self.decoding.bias
        return latent, self.decoding_matrix(), addend

    def forward(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        reference: torch.Tensor | None = None,
    ) -> OursOutput:
        """Synthesise a sequence: :meth:`decode` of :meth:`condition`.

        Args:
            audio_features: (B, T, C_a) at the mesh frame rate.
            template: (B, V, 3) neutral faces.
            reference: (B, T_s, V, 3) style reference of the same speakers (required when
                ``composite``; T_s may differ from T, at least 1).

        Returns:
            :class:`OursOutput` with (B, T, V, 3) vertices.
        """
        if template.shape[0] != audio_features.shape[0]:
            raise InputError(
                f"template must be ({audio_features.shape[0]}, {self.num_vertices}, 3), got "
                f"{tuple(template.shape)}"
            )
        return self.decode(audio_features, self.condition(template, reference))

    def regulariser(self) -> torch.Tensor:
        """The regional term of the loss (eq. 7, or the official plain L1), unweighted."""
        if self.config.official_variant:
            return self.encoding.weight.abs().sum()
        return decoding_sparsity(self.decoding_matrix())


def reconstruction_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared vertex error over valid frames, in squared :data:`LOSS_UNIT` (mm^2).

    Args:
        prediction, target: (B, T, V, 3) metres.
        mask: (B, T) bool of valid frames (padding excluded), or None.
    """
    err = (((prediction - target) / LOSS_UNIT) ** 2).sum(-1).mean(-1)  # (B, T)
    if mask is None:
        return err.mean()
    return (err * mask).sum() / mask.sum().clamp_min(1)


def paper_loss(
    model: Ours, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> ModelLoss:
    """Eq. 8: reconstruction plus the weighted regional regulariser (when ``regional``).

    Args:
        model: the network (its config says whether and how much of eq. 7 is added).
        prediction, target: (B, T, V, 3) metres.
        mask: (B, T) bool of valid frames, or None.

    Returns:
        The total and its two parts, unweighted and detached: ``reconstruction`` and, when
        ``regional``, ``regional``.
    """
    reconstruction = reconstruction_loss(prediction, target, mask)
    terms = {"reconstruction": reconstruction.detach()}
    total = reconstruction
    if model.config.regional:
        regional = model.regulariser()
        terms["regional"] = regional.detach()
        total = total + model.config.sparsity_weight * regional
    return ModelLoss(total=total, terms=terms)


class OursAnimator(AnimationModel):
    """The registry's adapter of :class:`Ours`: the vertices of its output, eq. 8 as its loss.

    The network is kept as ``net``, so its weights are ``net.*`` in every run folder and in the
    shipped model.

    Args:
        num_vertices: V.
        config: its hyper-parameters (``audio_dim`` must already be the encoder's).
    """

    def __init__(self, num_vertices: int, config: OursConfig) -> None:
        super().__init__()
        self.net = Ours(num_vertices, config)
        self.num_vertices = num_vertices
        self.audio_dim = config.audio_dim
        self.config = config

    def forward(
        self,
        audio_features: torch.Tensor,
        template: torch.Tensor,
        reference: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, C), (B, V, 3), (B, T_s, V, 3) -> (B, T, V, 3); ``target`` is not used."""
        return self.net(audio_features, template, reference).vertices

    def prepare_speaker(
        self, template: torch.Tensor, reference: torch.Tensor
    ) -> SpeakerConditioning:
        """Template encoding and the style path, once per speaker (:meth:`Ours.condition`)."""
        return self.net.condition(template, reference)

    def synthesise_prepared(
        self,
        audio_features: torch.Tensor,
        conditioning: SpeakerConditioning,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The speech-dependent part (:meth:`Ours.decode`); ``target`` is not used."""
        return self.net.decode(audio_features, conditioning).vertices

    def linear_decoding(
        self, audio_features: torch.Tensor, conditioning: SpeakerConditioning
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The latent, ``W_d`` and addend of :meth:`Ours.linear_decoding`."""
        return self.net.linear_decoding(audio_features, conditioning)

    def loss(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> ModelLoss:
        """Eq. 8 (:func:`paper_loss`)."""
        return paper_loss(self.net, prediction, target, mask)


def build_ours(num_vertices: int, audio_dim: int, config: OursConfig) -> OursAnimator:
    """Registry builder: the encoder's channel count replaces ``config.audio_dim``."""
    return OursAnimator(num_vertices, dataclasses.replace(config, audio_dim=audio_dim))
