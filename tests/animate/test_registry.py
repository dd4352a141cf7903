from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mmface4d.animate import interface, registry
from mmface4d.animate.interface import AnimationModel, ModelLoss, skip_parameter_init
from mmface4d.animate.model import OursAnimator, OursConfig, paper_loss
from mmface4d.animate.registry import (
    build_model,
    default_model_config,
    get_model,
    model_names,
    register_model,
)
from mmface4d.errors import InputError

V = 30
TINY = OursConfig(latent_dim=16, decoder_blocks=2, style_channels=(8, 8, 8, 8))


@dataclass
class LinearConfig:
    """A toy model's hyper-parameters."""

    scale: float = 1.0
    """Output scale."""


class LinearAnimator(AnimationModel):
    """Per-frame linear map from audio features to offsets (a stand-in for a baseline)."""

    def __init__(self, num_vertices: int, audio_dim: int, config: LinearConfig) -> None:
        super().__init__()
        self.num_vertices, self.audio_dim, self.config = num_vertices, audio_dim, config
        self.proj = nn.Linear(audio_dim, 3 * num_vertices)
        nn.init.zeros_(self.proj.weight)

    def forward(self, audio_features, template, reference, target=None):
        B, T, _ = audio_features.shape
        offsets = self.config.scale * self.proj(audio_features).view(B, T, -1, 3)
        return template[:, None] + offsets

    def loss(self, prediction, target, mask=None):
        total = ((prediction - target) ** 2).mean()
        return ModelLoss(total, {"mse": total.detach()})


@pytest.fixture
def clean_registry(monkeypatch):
    """Register test models in a copy of the registry, dropped after the test."""
    registry.model_names()  # the built-in models register on the first lookup, in the original
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


def test_ours_is_registered_with_its_ablations():
    assert "ours" in model_names()
    entry = get_model("ours")
    assert entry.config_type is OursConfig
    assert default_model_config("ours") == OursConfig()
    assert default_model_config("ours", "composite").composite is False
    assert default_model_config("ours", "regional").regional is False
    assert default_model_config("ours", "regional").composite is True


def test_unknown_names_list_the_choices():
    with pytest.raises(InputError, match="unknown name 'nope'.*ours"):
        get_model("nope")
    with pytest.raises(InputError, match="unknown ablation 'both'.*composite"):
        default_model_config("ours", "both")


def test_ours_forward_and_loss_match_the_paper_model():
    model = build_model("ours", V, 12, TINY)
    assert model.audio_dim == 12 and model.config.audio_dim == 12  # the encoder's C wins
    g = torch.Generator().manual_seed(0)
    audio, template = torch.randn(2, 7, 12, generator=g), torch.randn(2, V, 3, generator=g)
    reference = torch.randn(2, 5, V, 3, generator=g)
    target = torch.randn(2, 7, V, 3, generator=g)
    model.eval()
    prediction = model(audio, template, reference)
    assert prediction.shape == (2, 7, V, 3)
    torch.testing.assert_close(model(audio, template, reference, target), prediction)
    losses = model.loss(prediction, target)
    torch.testing.assert_close(losses.total, paper_loss(model.net, prediction, target).total)
    assert set(losses.terms) == {"reconstruction", "regional"}
    losses.total.backward()
    assert model.net.decoding.weight.grad is not None


def test_regional_ablation_drops_the_regulariser_term():
    model = build_model("ours", V, 12, default_model_config("ours", "regional"))
    prediction = torch.zeros(1, 3, V, 3)
    losses = model.loss(prediction, prediction + 0.01)
    assert set(losses.terms) == {"reconstruction"}
    torch.testing.assert_close(losses.total, torch.tensor(300.0))  # 3 coordinates x (10 mm)^2


def test_official_variant_ties_the_decoding_matrix():
    model = build_model("ours", V, 12, OursConfig(latent_dim=8, official_variant=True))
    assert model.net.decoding_matrix() is model.net.encoding.weight


def test_register_validates(clean_registry):
    register_model("linear", LinearAnimator, LinearConfig, ablations={"quiet": {"scale": 0.0}})
    assert "linear" in model_names()
    assert default_model_config("linear", "quiet").scale == 0.0
    with pytest.raises(InputError, match="already registered"):
        register_model("linear", LinearAnimator, LinearConfig)
    with pytest.raises(InputError, match="dataclass"):
        register_model("other", LinearAnimator, dict)
    with pytest.raises(InputError, match="unknown fields"):
        register_model("other", LinearAnimator, LinearConfig, ablations={"x": {"nope": 1}})
    with pytest.raises(InputError, match="config must be LinearConfig"):
        build_model("linear", V, 4, OursConfig())
    with pytest.raises(InputError, match="num_vertices"):
        build_model("linear", 0, 4)


def test_a_builder_given_by_path_is_imported_when_first_built(clean_registry):
    register_model("ours-by-path", "mmface4d.animate.model:build_ours", OursConfig)
    assert get_model("ours-by-path").build == "mmface4d.animate.model:build_ours"
    model = build_model("ours-by-path", V, 12, TINY)
    assert isinstance(model, OursAnimator) and model.audio_dim == 12
    for bad in ("no_colon", ":build_ours", "mmface4d.animate.model:", "m:not a name"):
        with pytest.raises(InputError, match="module:function"):
            register_model("other", bad, OursConfig)
    with pytest.raises(InputError, match="callable"):
        register_model("other", 42, OursConfig)


def test_the_model_interface_is_still_importable_from_the_registry():
    assert registry.AnimationModel is interface.AnimationModel
    assert registry.ModelLoss is interface.ModelLoss
    with pytest.raises(AttributeError):
        registry.NoSuchName  # noqa: B018


def test_builder_must_return_an_animation_model(clean_registry):
    register_model("bare", lambda v, c, cfg: nn.Linear(1, 1), LinearConfig)
    with pytest.raises(TypeError, match="not AnimationModel"):
        build_model("bare", V, 4)


def test_a_registered_model_trains_and_evaluates_unchanged(clean_registry, tiny_store, tmp_path):
    """The next issue's baselines plug in through the registry alone."""
    from mmface4d.animate.evaluate import evaluate
    from mmface4d.animate.train import train

    register_model("linear", LinearAnimator, LinearConfig, ablations={"quiet": {"scale": 0.0}})
    overrides = ["data.window=16", "data.batch_size=2", "optim.steps=2", "train.progress=false"]
    result = train(tiny_store, tmp_path / "run", model="linear", overrides=overrides)
    assert result.steps == 2 and result.model == "linear"
    report = evaluate([tmp_path / "run"], tiny_store, tmp_path / "report.json")
    assert report.runs[0].model == "linear"
    assert all(v == v for v in report.runs[0].report.overall.values())  # finite, not NaN


@pytest.mark.parametrize("name", ["ours", "faceformer", "meshtalk"])
def test_every_model_animates_a_prepared_speaker_as_its_forward(name):
    torch.manual_seed(0)
    model = build_model(name, V, 12, TINY if name == "ours" else None).eval()
    g = torch.Generator().manual_seed(1)
    audio, template = torch.randn(1, 6, 12, generator=g), torch.randn(1, V, 3, generator=g)
    reference = torch.randn(1, 5, V, 3, generator=g)
    with torch.no_grad():
        whole = model(audio, template, reference)
        speaker = model.prepare_speaker(template, reference)
        torch.testing.assert_close(model.synthesise_prepared(audio, speaker), whole)


class _WithFixedParts(nn.Module):
    """Random parameters beside a deterministic buffer and a deterministically filled parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.embedding = nn.Embedding(5, 2)
        self.scale = nn.Parameter(torch.empty(3))
        nn.init.ones_(self.scale)
        self.register_buffer("steps", torch.arange(4.0), persistent=False)


def test_skip_parameter_init_leaves_out_only_random_parameter_values():
    torch.manual_seed(0)
    reference = _WithFixedParts()
    expected = torch.get_rng_state()
    with skip_parameter_init():
        built = _WithFixedParts()
    assert torch.equal(torch.get_rng_state(), expected)  # no draws
    assert torch.equal(built.scale, torch.ones(3)) and torch.equal(built.steps, torch.arange(4.0))
    built.load_state_dict(reference.state_dict())
    assert _same_parameters(built, reference)
    torch.manual_seed(0)
    assert _same_parameters(
        _WithFixedParts(), reference
    )  # outside it, modules initialise as before


def _same_parameters(one: nn.Module, other: nn.Module) -> bool:
    pairs = zip(one.parameters(), other.parameters(), strict=True)
    return all(torch.equal(a, b) for a, b in pairs)
