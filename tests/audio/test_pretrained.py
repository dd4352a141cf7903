"""HuBERT / wav2vec 2.0 encoders, tested on tiny randomly initialised checkpoints saved locally."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="optional extra 'hubert' not installed")

from mmface4d.audio.encoders import build_encoder  # noqa: E402
from mmface4d.audio.pretrained import TransformerSpeechEncoder  # noqa: E402
from mmface4d.errors import InputError  # noqa: E402

RATE = 16_000
# 3 conv layers, total stride 5 * 8 * 8 = 320 (50 Hz like the real models), receptive field 325
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16, 16),
    conv_kernel=(10, 8, 8),
    conv_stride=(5, 8, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    vocab_size=12,
)


def save_tiny(directory: Path, kind: str, stable: bool = False, ctc: bool = False) -> Path:
    """Save a tiny random model like `hf download` leaves it; returns the folder."""
    config_class = transformers.HubertConfig if kind == "hubert" else transformers.Wav2Vec2Config
    norm = {"do_stable_layer_norm": stable, "feat_extract_norm": "layer" if stable else "group"}
    config = config_class(**TINY, **norm)
    torch.manual_seed(0)
    if kind == "hubert":
        model = transformers.HubertForCTC(config) if ctc else transformers.HubertModel(config)
    else:
        model = transformers.Wav2Vec2Model(config)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # stable layer norm like HuBERT-large, saved with a CTC head like hubert-large-ls960-ft
    return save_tiny(tmp_path_factory.mktemp("hubert"), "hubert", stable=True, ctc=True)


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("wav2vec2"), "wav2vec2")


def speech(batch: int = 2, seconds: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(batch, int(RATE * seconds), generator=generator) * 0.1


def reference_hidden_states(directory: Path, kind: str, audio: torch.Tensor, normalize: bool):
    """The full transformers model on the encoder's input: normalised, centre-padded."""
    model_class = transformers.HubertModel if kind == "hubert" else transformers.Wav2Vec2Model
    model = model_class.from_pretrained(directory, local_files_only=True).eval()
    if normalize:
        audio = (audio - audio.mean(1, keepdim=True)) / torch.sqrt(audio.var(1, False, True) + 1e-7)
    tail = -audio.shape[1] % 320
    padded = torch.nn.functional.pad(audio, (2, 3 + tail))  # (325 - 320) / 2 each side
    with torch.no_grad():
        return model(padded, output_hidden_states=True)


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_feature_rate_layers_and_reference(kind, hubert_dir, wav2vec2_dir):
    directory = hubert_dir if kind == "hubert" else wav2vec2_dir
    encoder = build_encoder(kind, path=directory)
    assert isinstance(encoder, TransformerSpeechEncoder)
    assert encoder.feature_rate == 50.0 and encoder.dim == 32 and encoder.layer == 2
    audio = speech()
    last = encoder(audio)
    assert last.shape == (2, 50, 32)
    assert encoder(speech(1, 0.5)[0, :7999]).shape == (1, 25, 32)  # ceil(N / 320)
    assert encoder.encode_to_frames(audio, fps=30).shape == (2, 30, 32)
    reference = reference_hidden_states(directory, kind, audio, encoder.normalize)
    torch.testing.assert_close(last, reference.last_hidden_state, atol=1e-5, rtol=1e-4)
    first = build_encoder(f"{kind}:path={directory},layer=1")(audio)
    assert len(build_encoder(kind, path=directory, layer=1).backbone.encoder.layers) == 1
    torch.testing.assert_close(first, reference.hidden_states[1], atol=1e-5, rtol=1e-4)
    assert (first - last).abs().max() > 1e-2
    zeroth = build_encoder(kind, path=directory, layer=-3)(audio)
    torch.testing.assert_close(zeroth, reference.hidden_states[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(InputError, match="layer: expected -3..2, found 3"):
        build_encoder(kind, path=directory, layer=3)


def test_frozen_by_default(hubert_dir):
    encoder = build_encoder("hubert", path=hubert_dir)
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    encoder.train()
    assert encoder.training and not encoder.backbone.training  # no dropout when frozen
    assert not encoder(speech()).requires_grad


def test_trainable(hubert_dir):
    encoder = build_encoder("hubert", path=hubert_dir, trainable=True).train()
    assert encoder.backbone.training
    front = [p.requires_grad for n, p in encoder.backbone.named_parameters() if "feature_ex" in n]
    rest = [
        p.requires_grad for n, p in encoder.backbone.named_parameters() if "feature_ex" not in n
    ]
    assert front and not any(front) and all(rest)
    encoder.encode_to_frames(speech(), fps=25).square().mean().backward()
    projection = encoder.backbone.feature_projection.projection.weight
    assert projection.grad is not None and projection.grad.abs().sum() > 0
    everything = build_encoder("hubert:trainable=true,train_feature_encoder=true", path=hubert_dir)
    assert all(parameter.requires_grad for parameter in everything.parameters())
    with pytest.raises(InputError, match="needs trainable"):
        build_encoder("hubert", path=hubert_dir, train_feature_encoder=True)


def test_normalisation_follows_the_checkpoint(tmp_path, hubert_dir, wav2vec2_dir):
    assert build_encoder("hubert", path=hubert_dir).normalize  # layer-norm front end
    assert not build_encoder("wav2vec2", path=wav2vec2_dir).normalize  # group-norm front end
    directory = save_tiny(tmp_path / "w2v", "wav2vec2")
    (directory / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": True, "sampling_rate": 16000})
    )
    encoder = build_encoder("wav2vec2", path=directory)
    assert encoder.normalize
    audio = speech()
    torch.testing.assert_close(encoder(audio * 10.0), encoder(audio), atol=1e-4, rtol=1e-4)
    assert not build_encoder("wav2vec2", path=directory, normalize=False).normalize
    (directory / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 8000}))
    with pytest.raises(InputError, match="sampling_rate 8000"):
        build_encoder("wav2vec2", path=directory)


def test_offline_errors(tmp_path, hubert_dir):
    with pytest.raises(InputError, match=r"not a checkpoint folder.*hf download"):
        build_encoder("hubert", path=tmp_path / "missing")
    with pytest.raises(InputError, match=r"never downloaded.*--encoder hubert:path=DIR"):
        build_encoder("hubert", model="mmface4d-tests/not-a-cached-model")
    with pytest.raises(InputError, match="holds a 'hubert' model, expected 'wav2vec2'"):
        build_encoder("wav2vec2", path=hubert_dir)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the JSON"):
        build_encoder("hubert", path=tmp_path / "corrupt")
    (tmp_path / "corrupt" / "config.json").write_text((hubert_dir / "config.json").read_text())
    with pytest.raises(InputError, match="cannot load the checkpoint"):  # no weights
        build_encoder("hubert", path=tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="cannot load the checkpoint"):
        build_encoder("hubert", path=tmp_path / "corrupt")


def test_missing_transformers_names_the_extra(monkeypatch, hubert_dir):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"mmface4d\[hubert\]"):
        build_encoder("hubert", path=hubert_dir)


def test_random_hubert_is_seeded():
    state = torch.random.get_rng_state()
    first = build_encoder("random-hubert:size=tiny,seed=1")
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    audio = speech(1)
    torch.testing.assert_close(first(audio), build_encoder("random-hubert:size=tiny,seed=1")(audio))
    assert (first(audio) - build_encoder("random-hubert:size=tiny,seed=2")(audio)).abs().max() > 0
    assert first.feature_rate == 50.0 and first(audio).shape == (1, 50, 32)
    with pytest.raises(InputError, match="size: expected one of"):
        build_encoder("random-hubert:size=huge")


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_int8_precision_keeps_the_features_of_float32(kind, hubert_dir, wav2vec2_dir):
    directory = hubert_dir if kind == "hubert" else wav2vec2_dir
    exact = build_encoder(kind, path=directory)
    fast = build_encoder(kind, path=directory, precision="int8")
    linears = [m for m in fast.modules() if isinstance(m, torch.nn.Linear)]
    assert not linears and fast.precision == "int8"  # every linear layer quantised
    audio = speech(2)
    with torch.no_grad():
        a, b = exact(audio), fast(audio)
    assert a.shape == b.shape and not torch.equal(a, b)
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.99


def test_int8_precision_is_for_inference_only(hubert_dir):
    with pytest.raises(InputError, match="inference only"):
        build_encoder("hubert", path=hubert_dir, precision="int8", trainable=True)
    with pytest.raises(InputError, match="precision: expected one of"):
        build_encoder("hubert", path=hubert_dir, precision="bfloat8")
