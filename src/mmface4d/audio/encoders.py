"""Speech encoders behind one interface: audio (B, N) at 16 kHz -> features (B, T, C).

Every encoder is an :class:`AudioEncoder` (a ``torch.nn.Module``) with ``sample_rate`` (16 kHz),
``feature_rate`` (Hz), ``dim`` (C) and :meth:`AudioEncoder.encode_to_frames`, which resamples the
features to a mesh frame rate with the project's one sync function
(:func:`mmface4d.audio.sync.resample_to_frames`). Build one by name or spec string::

    encoder = build_encoder("mel")                              # log-mel, 80 bands, 100 Hz
    encoder = build_encoder("hubert:path=/models/hubert-large-ls960-ft")
    encoder = build_encoder("hubert", path=weights_dir, layer=12, trainable=True)
    frames = encoder.encode_to_frames(audio, fps=30, num_frames=T)  # (B, T, C)

Names: ``mel`` (fixed log-mel features, no weights), ``phonetic`` (phoneme posteriorgram of the
recogniser shipped in the ``hama`` package: :mod:`mmface4d.audio.phonetic`), ``hubert`` and
``wav2vec2`` (transformers ``HubertModel`` / ``Wav2Vec2Model`` from LOCAL files, never
downloaded), ``random-hubert`` (a seeded, randomly initialised HuBERT of a size preset, to
benchmark the encoder's cost). The transformers-backed encoders live in
:mod:`mmface4d.audio.pretrained`.

Audio: mono float samples in [-1, 1] at 16 kHz, shape (B, N) or (N,) (treated as B = 1); other
rates must be resampled first, e.g. ``mmface4d.audio.io.load_audio(path, 16000)``. Batched
audio has one length N. Feature ``j`` is centred on ``(j + 0.5) / feature_rate`` seconds (the
sync convention): the audio is zero-padded at both ends by half the difference between the
encoder's window and its hop, and at the end up to a whole hop, so N samples give
``ceil(N / hop_length)`` features; audio shorter than one window is zero-padded to it.

Real HuBERT-large weights (the paper's encoder: HuBERT-large, last layer, 1024 channels)::

    pip install 'mmface4d[hubert]'
    # on a machine with internet (older huggingface_hub: huggingface-cli download ...)
    hf download facebook/hubert-large-ls960-ft --local-dir hubert-large-ls960-ft
    # copy the folder here, then
    mmface4d train ... --set encoder.spec=hubert:path=hubert-large-ls960-ft

or leave ``path`` out to use the local Hugging Face cache (``HF_HOME``) entry of ``model``
(default ``facebook/hubert-large-ls960-ft``). The checkpoint's ``preprocessor_config.json``
decides whether the waveform is normalised to zero mean and unit variance (``do_normalize``);
without that file, checkpoints with a layer-normalised convolutional front end
(``feat_extract_norm == "layer"``, HuBERT-large, wav2vec 2.0-large) are normalised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmface4d.audio.io import DEFAULT_SAMPLE_RATE
from mmface4d.audio.mel import centred_window, log_mel_spectrogram, mel_filterbank
from mmface4d.audio.sync import frames_to_samples, resample_to_frames
from mmface4d.errors import InputError
from mmface4d.settings import coerce, parse_options

DEFAULT_MODELS = {
    "hubert": "facebook/hubert-large-ls960-ft",
    "wav2vec2": "facebook/wav2vec2-base-960h",
}


def prepare_audio(
    audio: Any, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Validate speech samples and return them as a (B, N) float tensor.

    Args:
        audio: (B, N) or (N,) float tensor or numpy array, mono samples in [-1, 1].
        device: where to put the result; default where ``audio`` is.
        dtype: floating type of the result.
    """
    tensor = torch.as_tensor(audio)
    if not tensor.is_floating_point():
        raise InputError(
            f"audio: expected float samples in [-1, 1], found dtype {tensor.dtype} "
            "(divide 16-bit PCM by 32768)"
        )
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise InputError(
            f"audio: expected shape (B, N) or (N,) with N >= 1, found {tuple(audio.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise InputError("audio: expected finite samples, found NaN or inf")
    return tensor.to(device=device, dtype=dtype)


class AudioEncoder(nn.Module):
    """Base of the speech encoders: 16 kHz audio (B, N) -> features (B, T_feat, C).

    Attributes:
        sample_rate: audio rate the encoder expects, Hz (16,000).
        hop_length: audio samples per feature vector.
        dim: C, channels per feature vector.
    """

    def __init__(self, hop_length: int, dim: int, sample_rate: int = DEFAULT_SAMPLE_RATE):
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.dim = dim

    @property
    def feature_rate(self) -> float:
        """Feature vectors per second, Hz (100 for ``mel``, 50 for HuBERT and wav2vec 2.0)."""
        return self.sample_rate / self.hop_length

    def num_features(self, num_samples: int) -> int:
        """T_feat for N audio samples: ``ceil(N / hop_length)``, at least one."""
        return max(1, -(-num_samples // self.hop_length))

    def _prepare(self, audio: Any) -> torch.Tensor:
        """Validated (B, N) audio on the encoder's device, in its floating type."""
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        if tensor is None:
            return prepare_audio(audio)
        dtype = tensor.dtype if tensor.is_floating_point() else torch.float32
        return prepare_audio(audio, tensor.device, dtype)

    def forward(self, audio: Any) -> torch.Tensor:
        """Encode speech.

        Args:
            audio: (B, N) or (N,) float samples at ``sample_rate``.

        Returns:
            (B, T_feat, C) features, ``T_feat = ceil(N / hop_length)``.
        """
        return self.encode(self._prepare(audio))

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Encode validated (B, N) float audio into (B, T_feat, C); subclasses implement it."""
        raise NotImplementedError

    def encode_to_frames(
        self, audio: Any, fps: float, num_frames: int | None = None
    ) -> torch.Tensor:
        """Encode speech and resample the features to the mesh frame rate.

        Args:
            audio: (B, N) or (N,) float samples at ``sample_rate``.
            fps: mesh frame rate in Hz.
            num_frames: T; default the frames the audio spans, ``round(N * fps / sample_rate)``
                (at least one). Frames past the audio repeat its last feature.

        Returns:
            (B, T, C) features, linear interpolation at frame centres (audio.sync).
        """
        samples = self._prepare(audio)
        if num_frames is None:
            # sync's rounding with the two rates swapped: round(N * fps / sample_rate), half up
            num_frames = max(1, frames_to_samples(samples.shape[1], self.sample_rate, fps))
        return resample_to_frames(self.encode(samples), self.feature_rate, fps, num_frames)


class MelEncoder(AudioEncoder):
    """Fixed log-mel features (:mod:`mmface4d.audio.mel`): 25 ms window, 10 ms hop, 100 Hz.

    Args:
        n_mels: C, mel bands.
        f_min: lowest filter edge, Hz.
        f_max: highest filter edge, Hz (default Nyquist, 8 kHz).
        scale: ``"slaney"`` or ``"htk"`` mel scale.
        normalize: per utterance, subtract each band's mean over time and divide by its std.
    """

    def __init__(
        self,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        scale: str = "slaney",
        normalize: bool = False,
    ):
        rate = DEFAULT_SAMPLE_RATE
        super().__init__(hop_length=rate // 100, dim=n_mels, sample_rate=rate)
        self.win_length, self.normalize = rate * 25 // 1000, normalize
        n_fft = 1 << math.ceil(math.log2(self.win_length))
        fbank = mel_filterbank(n_mels, n_fft, rate, f_min, f_max, scale)  # type: ignore[arg-type]
        self.register_buffer("filterbank", fbank, persistent=False)
        self.register_buffer("window", centred_window(self.win_length, n_fft), persistent=False)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        features = log_mel_spectrogram(
            audio, self.filterbank, self.window, self.hop_length, self.win_length
        )
        if self.normalize:
            mean = features.mean(dim=1, keepdim=True)
            std = features.std(dim=1, keepdim=True, unbiased=False)
            features = (features - mean) / (std + 1e-5)
        return features


@dataclass(frozen=True)
class EncoderOption:
    """One option of an encoder: its type (int, float, bool or str), default and meaning."""

    kind: type
    default: Any
    help: str
    optional: bool = False  # None is a valid value


@dataclass(frozen=True)
class EncoderEntry:
    """A registered encoder: a builder taking the resolved options, and the option table."""

    build: Callable[[dict[str, Any]], AudioEncoder]
    options: dict[str, EncoderOption] = field(default_factory=dict)
    summary: str = ""


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed spec string ``name[:key=value,...]``; values stay strings until built."""

    name: str
    options: dict[str, str]


def parse_encoder_spec(spec: str) -> EncoderSpec:
    """Parse ``"hubert:path=/x,layer=12"`` into a name and string options.

    Values may contain ``=`` and ``:`` (split at the first of each) but not ``,``.
    """
    name, _, rest = spec.strip().partition(":")
    if not name:
        raise InputError(f"encoder spec {spec!r}: expected name[:key=value,...]")
    return EncoderSpec(name=name.strip(), options=parse_options(rest, f"encoder spec {spec!r}"))


def _coerce(name: str, key: str, value: Any, option: EncoderOption) -> Any:
    """An option's value (text from a spec, or a keyword's value) as its type: the settings'
    conversion (:func:`mmface4d.settings.coerce`), with the message naming the option."""
    try:
        return coerce(value, option.kind | None if option.optional else option.kind, key)
    except InputError:
        expected = "true/false" if option.kind is bool else option.kind.__name__
        raise InputError(f"{name}: option {key} expects {expected}, found {value!r}") from None


def _pretrained() -> Any:
    # imported on use: mmface4d.audio.pretrained builds on AudioEncoder defined above
    from mmface4d.audio import pretrained

    return pretrained


def _phonetic() -> Any:
    # imported on use, like the transformers encoders
    from mmface4d.audio import phonetic

    return phonetic


_TRANSFORMER_OPTIONS = {
    "layer": EncoderOption(int, -1, "hidden layer to return; -1 = last"),
    "trainable": EncoderOption(bool, False, "fine-tune the transformer (default frozen)"),
    "train_feature_encoder": EncoderOption(bool, False, "also fine-tune the conv front end"),
    "normalize": EncoderOption(
        bool, None, "zero-mean unit-variance input; default from the checkpoint", True
    ),
    "precision": EncoderOption(
        str, "float32", "float32, or int8 (linear layers quantised; inference, CPU)"
    ),
}


def _pretrained_options(kind: str) -> dict[str, EncoderOption]:
    return {
        "path": EncoderOption(str, None, "local checkpoint folder (config.json + weights)", True),
        "model": EncoderOption(str, DEFAULT_MODELS[kind], "Hub id looked up in the local cache"),
        **_TRANSFORMER_OPTIONS,
    }


ENCODERS: dict[str, EncoderEntry] = {
    "mel": EncoderEntry(
        lambda options: MelEncoder(**options),
        {
            "n_mels": EncoderOption(int, 80, "mel bands (C)"),
            "f_min": EncoderOption(float, 0.0, "lowest filter edge, Hz"),
            "f_max": EncoderOption(float, None, "highest filter edge, Hz; default 8000", True),
            "scale": EncoderOption(str, "slaney", "mel scale: slaney or htk"),
            "normalize": EncoderOption(bool, False, "per-utterance mean/std per band"),
        },
        "log-mel spectrogram, 100 Hz, no weights",
    ),
    "phonetic": EncoderEntry(
        lambda options: _phonetic().PhoneticEncoder(**options),
        {
            "level": EncoderOption(bool, True, "append the speech level channel"),
            "chunk_s": EncoderOption(float, 20.0, "longest audio recognised at once, s"),
            "overlap_s": EncoderOption(float, 0.5, "overlap of consecutive chunks, s"),
            "threads": EncoderOption(int, 2, "chunks or clips recognised at once"),
        },
        "phoneme posteriorgram of a recogniser trained on real speech (hama, shipped "
        "weights) + speech level, 50 Hz",
    ),
    "hubert": EncoderEntry(
        lambda options: _pretrained().build_pretrained("hubert", options),
        _pretrained_options("hubert"),
        "transformers HubertModel from local files (the paper's encoder: HuBERT-large)",
    ),
    "wav2vec2": EncoderEntry(
        lambda options: _pretrained().build_pretrained("wav2vec2", options),
        _pretrained_options("wav2vec2"),
        "transformers Wav2Vec2Model from local files",
    ),
    "random-hubert": EncoderEntry(
        lambda options: _pretrained().build_random_hubert(options),
        {
            "size": EncoderOption(str, "base", "preset: tiny, base (12x768) or large (24x1024)"),
            "seed": EncoderOption(int, 0, "initialisation seed"),
            **_TRANSFORMER_OPTIONS,
        },
        "randomly initialised HuBERT (benchmarks of the encoder's cost)",
    ),
}


def register_encoder(name: str, entry: EncoderEntry) -> None:
    """Add an encoder to the registry under ``name`` (refuses to replace an existing one)."""
    if name in ENCODERS:
        raise InputError(f"encoder {name!r} is already registered")
    ENCODERS[name] = entry


def build_encoder(name: str, **options: Any) -> AudioEncoder:
    """Build a registered encoder from a name or spec string plus keyword options.

    Args:
        name: ``mel``, ``hubert``, ``wav2vec2``, ``random-hubert``, or a spec string such as
            ``"hubert:path=/models/hubert,layer=12"`` (its options merge with ``options``).
        **options: the encoder's options (see ``ENCODERS[name].options``); strings are converted.

    Returns:
        The encoder, in eval mode.
    """
    spec = parse_encoder_spec(name)
    clash = sorted(set(spec.options) & set(options))
    if clash:
        raise InputError(
            f"encoder {name!r}: options {clash} given both in the spec and as keywords"
        )
    entry = ENCODERS.get(spec.name)
    if entry is None:
        raise InputError(f"encoder: unknown name {spec.name!r}; expected one of {sorted(ENCODERS)}")
    given = {**spec.options, **options}
    unknown = sorted(set(given) - set(entry.options))
    if unknown:
        raise InputError(
            f"encoder {spec.name!r}: unknown options {unknown}; expected {sorted(entry.options)}"
        )
    resolved = {
        key: _coerce(spec.name, key, given[key], option) if key in given else option.default
        for key, option in entry.options.items()
    }
    return entry.build(resolved).eval()
