"""Pretrained self-supervised speech models (HuBERT, wav2vec 2.0) through transformers.

Built by :func:`mmface4d.audio.encoders.build_encoder` (names ``hubert``, ``wav2vec2``,
``random-hubert``); weights come from LOCAL files only (see the note in
:mod:`mmface4d.audio.encoders`). transformers is an optional dependency (extra ``hubert``),
imported when an encoder is built.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmface4d._optional import require
from mmface4d.audio.encoders import DEFAULT_MODELS, AudioEncoder
from mmface4d.audio.io import DEFAULT_SAMPLE_RATE
from mmface4d.errors import InputError

EXTRA = "hubert"


#: Numeric formats of the transformer encoders (option ``precision``).
PRECISIONS = ("float32", "int8")


def _quantise_linear_layers(backbone: nn.Module) -> None:
    """Replace ``backbone``'s ``nn.Linear`` layers, in place, by dynamically quantised int8 ones.

    PyTorch 2.13 marks ``torch.ao.quantization`` and its quantised tensors deprecated in favour
    of torchao (a further dependency, not measured here); the project pins
    that release, and the warnings it prints on every call are silenced here.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*quantiz.*deprecated")
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        torch.ao.quantization.quantize_dynamic(backbone, {nn.Linear: qconfig}, inplace=True)


def _receptive_field(kernels: list[int], strides: list[int]) -> int:
    field_size, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field_size += (kernel - 1) * jump
        jump *= stride
    return field_size


class TransformerSpeechEncoder(AudioEncoder):
    """A transformers ``HubertModel`` or ``Wav2Vec2Model`` giving one layer's hidden states.

    Layers after the selected one are removed (they cost time and memory and are never used).

    Args:
        backbone: the transformers model (its config gives the conv stride and receptive field).
        layer: 0 = transformer input (after the positional convolution), k = output of layer k,
            -1 = the last layer's ``last_hidden_state`` (for stable-layer-norm checkpoints such as
            HuBERT-large, after the encoder's final LayerNorm), negative counts from the end.
        trainable: fine-tune the transformer (else frozen: no gradients, always in eval mode). In
            training mode transformers then applies the checkpoint's SpecAugment time masking
            (``mask_time_prob``) and LayerDrop, as in its own fine-tuning.
        train_feature_encoder: also fine-tune the convolutional front end (only with trainable).
        normalize: zero-mean unit-variance waveform per utterance (the checkpoint's convention).
        precision: ``float32``, or ``int8``: every linear layer of the transformer (about 70% of
            HuBERT-large's time on a CPU) dynamically quantised (int8 weights per output channel,
            int8 activations scaled per call; PyTorch's fbgemm/x86 kernels). Inference only. Its
            speed and its features' agreement with float32 are measured by
            ``benchmarks/bench_encoders.py``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        layer: int = -1,
        trainable: bool = False,
        train_feature_encoder: bool = False,
        normalize: bool = False,
        precision: str = "float32",
    ):
        config = backbone.config  # type: ignore[attr-defined]
        if train_feature_encoder and not trainable:
            raise InputError("train_feature_encoder: needs trainable=True")
        if precision not in PRECISIONS:
            raise InputError(f"precision: expected one of {PRECISIONS}, found {precision!r}")
        if precision != "float32" and trainable:
            raise InputError(f"precision {precision}: inference only; fine-tuning needs float32")
        if getattr(config, "add_adapter", False):
            raise InputError("encoder: checkpoints with an output adapter are not supported")
        stride = math.prod(config.conv_stride)
        super().__init__(hop_length=stride, dim=config.hidden_size)
        window = _receptive_field(list(config.conv_kernel), list(config.conv_stride))
        if window < stride:
            raise InputError(f"encoder: receptive field {window} < hop {stride} is not supported")
        self.pad_left = (window - stride) // 2
        self.pad_right = window - stride - self.pad_left
        num_layers = len(backbone.encoder.layers)  # type: ignore[union-attr]
        if not -(num_layers + 1) <= layer <= num_layers:
            raise InputError(f"layer: expected -{num_layers + 1}..{num_layers}, found {layer}")
        self.layer = layer if layer >= 0 else num_layers + 1 + layer
        if self.layer < num_layers:
            encoder = backbone.encoder  # type: ignore[union-attr]
            encoder.layers = encoder.layers[: self.layer]
            if config.do_stable_layer_norm:  # its final norm applies after the LAST layer only
                encoder.layer_norm = nn.Identity()
            config.num_hidden_layers = self.layer
        self.backbone = backbone
        self.normalize, self.trainable = normalize, trainable
        for name, parameter in backbone.named_parameters():
            front_end = name.startswith("feature_extractor.")
            parameter.requires_grad_(trainable and (train_feature_encoder or not front_end))
        self.precision = precision
        if precision == "int8":
            _quantise_linear_layers(backbone)
        self.train(False)

    def train(self, mode: bool = True) -> TransformerSpeechEncoder:
        super().train(mode)
        self.backbone.train(mode and self.trainable)
        return self

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            mean = audio.mean(dim=1, keepdim=True)
            var = audio.var(dim=1, keepdim=True, unbiased=False)
            audio = (audio - mean) / torch.sqrt(var + 1e-7)
        tail = self.num_features(audio.shape[1]) * self.hop_length - audio.shape[1]
        audio = nn.functional.pad(audio, (self.pad_left, self.pad_right + tail))
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return self.backbone(audio).last_hidden_state


def _resolve_checkpoint(kind: str, path: str | None, model: str) -> Path:
    if path is not None:
        directory = Path(path).expanduser()
        if not (directory / "config.json").is_file():
            raise InputError(
                f"{kind}: {directory} is not a checkpoint folder (expected config.json and "
                f"weights, e.g. from `hf download {DEFAULT_MODELS[kind]} --local-dir DIR`)"
            )
        return directory
    huggingface_hub = require("huggingface_hub", EXTRA)
    try:
        return Path(huggingface_hub.snapshot_download(model, local_files_only=True))
    except OSError as exc:
        raise InputError(
            f"{kind}: weights of {model!r} are not in the local Hugging Face cache and are never "
            f"downloaded here; on a machine with internet run `hf download {model} --local-dir "
            f"DIR`, copy DIR here and pass --encoder {kind}:path=DIR"
        ) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the JSON settings ({exc})") from exc
    if not isinstance(settings, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(settings).__name__}")
    return settings


def _checkpoint_normalizes(directory: Path, config: Any) -> bool:
    preprocessor = directory / "preprocessor_config.json"
    if preprocessor.is_file():
        settings = _read_json(preprocessor)
        rate = settings.get("sampling_rate", DEFAULT_SAMPLE_RATE)
        if rate != DEFAULT_SAMPLE_RATE:
            raise InputError(f"{preprocessor}: sampling_rate {rate}, expected 16000")
        return bool(settings.get("do_normalize", True))
    return config.feat_extract_norm == "layer"


def build_pretrained(kind: str, options: dict[str, Any]) -> TransformerSpeechEncoder:
    """Load a ``hubert`` or ``wav2vec2`` checkpoint from local files.

    Args:
        kind: ``"hubert"`` or ``"wav2vec2"`` (the checkpoint's ``model_type`` must match).
        options: the registry's resolved options: ``path`` (a folder) or ``model`` (a Hub id in
            the local cache), then :class:`TransformerSpeechEncoder`'s keywords; ``normalize``
            None reads the checkpoint's convention.
    """
    transformers = require("transformers", EXTRA)
    directory = _resolve_checkpoint(kind, options.pop("path"), options.pop("model"))
    model_type = _read_json(directory / "config.json").get("model_type")
    if model_type != kind:
        raise InputError(f"{kind}: {directory} holds a {model_type!r} model, expected {kind!r}")
    model_class = transformers.HubertModel if kind == "hubert" else transformers.Wav2Vec2Model
    corrupt = (OSError, require("safetensors", EXTRA).SafetensorError)
    try:
        backbone = model_class.from_pretrained(
            str(directory), local_files_only=True, dtype=torch.float32
        )
    except corrupt as exc:
        raise InputError(f"{kind}: cannot load the checkpoint in {directory} ({exc})") from exc
    if options["normalize"] is None:
        options["normalize"] = _checkpoint_normalizes(directory, backbone.config)
    return TransformerSpeechEncoder(backbone, **options)


HUBERT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {  # for tests: 2 layers of 32 channels, still 50 Hz
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "conv_dim": (32, 32, 32), "conv_kernel": (10, 8, 8),
        "conv_stride": (5, 8, 8), "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
    "base": {},  # transformers' HubertConfig defaults: 12 layers, 768 channels
    "large": {
        "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
        "intermediate_size": 4096, "feat_extract_norm": "layer", "do_stable_layer_norm": True,
        "conv_bias": True,
    },
}  # fmt: skip


def build_random_hubert(options: dict[str, Any]) -> TransformerSpeechEncoder:
    """A randomly initialised HuBERT (``size`` preset, ``seed``), for cost benchmarks and tests.

    The global torch RNG is left untouched.
    """
    transformers = require("transformers", EXTRA)
    size, seed = options.pop("size"), options.pop("seed")
    if size not in HUBERT_PRESETS:
        raise InputError(f"size: expected one of {sorted(HUBERT_PRESETS)}, found {size!r}")
    config = transformers.HubertConfig(**HUBERT_PRESETS[size])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = transformers.HubertModel(config).eval()
    if options["normalize"] is None:
        options["normalize"] = config.feat_extract_norm == "layer"
    return TransformerSpeechEncoder(backbone, **options)
