import json
import math

import numpy as np
import pytest
import torch

import mmface4d.animate.meshtalk  # noqa: F401  (registers "meshtalk")
from mmface4d import cli
from mmface4d.animate.meshtalk import (
    MeshTalk,
    MeshTalkConfig,
    face_region_weights,
    quantize,
    weighted_vertex_error,
)
from mmface4d.animate.model import LOSS_UNIT, reconstruction_loss
from mmface4d.animate.registry import build_model, default_model_config, model_names
from mmface4d.errors import InputError
from mmface4d.facemodel.sources import load_face_model

V, C_A = 30, 12
SMALL = dict(latent_dim=16, heads=4, categories=8, prior_channels=16, audio_dim=C_A)
TERMS = {"reconstruction", "cross_modal_lower", "cross_modal_upper", "prior_cross_entropy"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny ops: one thread avoids contention with whatever else runs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**kw) -> MeshTalk:
    torch.manual_seed(0)
    return MeshTalk(V, MeshTalkConfig(**{**SMALL, **kw}))


def inputs(B=2, T=9, Ts=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    template = torch.randn(B, V, 3, generator=g) * 0.05
    return (
        torch.randn(B, T, C_A, generator=g),
        template,
        template[:, None] + 0.003 * torch.randn(B, Ts, V, 3, generator=g),
        template[:, None] + 0.003 * torch.randn(B, T, V, 3, generator=g),
    )


def randomise_output_layer(model: MeshTalk) -> None:
    """The zero-initialised offsets layer blocks gradients to everything before it."""
    with torch.no_grad():
        model.decoder.offsets.weight.normal_(0, 0.1)


@pytest.mark.parametrize("B, T, Ts", [(2, 9, 11), (1, 1, 1), (3, 20, 4)])
def test_shapes_in_training_and_inference(B, T, Ts):
    audio, template, reference, target = inputs(B, T, Ts)
    model = small()
    out = model(audio, template, reference, target)
    assert out.shape == (B, T, V, 3)
    torch.testing.assert_close(out, template[:, None].expand_as(out))  # zero-initialised offsets
    losses = model.loss(out, target)
    assert set(losses.terms) == TERMS
    assert all(torch.isfinite(v) for v in losses.terms.values())
    assert losses.terms["prior_cross_entropy"] > 0
    model.eval()
    with torch.no_grad():
        assert model(audio, template, reference).shape == (B, T, V, 3)
        assert model(audio[:, : max(1, T // 2)], template, reference).shape[1] == max(1, T // 2)


def test_training_forward_sends_gradients_everywhere():
    audio, template, reference, target = inputs()
    model = small()
    randomise_output_layer(model)
    out = model(audio, template, reference, target)
    losses = model.loss(out, target)
    total = losses.terms["reconstruction"] + model.config.cross_modality_weight * (
        losses.terms["cross_modal_lower"] + losses.terms["cross_modal_upper"]
    )
    total = total + model.config.prior_weight * losses.terms["prior_cross_entropy"]
    torch.testing.assert_close(losses.total.detach(), total)
    losses.total.backward()
    for part in ("expression_encoder", "audio_encoder", "fusion", "decoder", "prior"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        assert all(g is not None for g in grads), part
        assert sum(float(g.abs().sum()) for g in grads) > 0, part


def test_loss_terms_match_a_direct_computation():
    audio, template, reference, target = inputs()
    model = small()
    randomise_output_layer(model)
    torch.manual_seed(3)
    model(audio, template, reference, target)
    stash = model._last_terms
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    losses = model.loss(target + 0.001, target, mask)
    assert model._last_terms is None  # consumed: a later loss call does not reuse it
    # slow reference: per frame, sum_v w_v |e_v|^2 / sum_v w_v, then mean over valid frames
    lower = stash.lower_weights
    e = ((stash.audio_with_other_expression - target).detach() ** 2).sum(-1) / LOSS_UNIT**2
    frames = [
        float((e[b, t] * lower[b]).sum() / lower[b].sum())
        for b in range(2)
        for t in range(9)
        if mask[b, t]
    ]
    assert float(losses.terms["cross_modal_lower"]) == pytest.approx(np.mean(frames), rel=1e-5)
    nll = [
        -float(stash.prior_log_probs.detach()[b, t, h, stash.code_labels[b, t, h]])
        for b in range(2)
        for t in range(9)
        if mask[b, t]
        for h in range(4)
    ]
    assert float(losses.terms["prior_cross_entropy"]) == pytest.approx(np.mean(nll), rel=1e-5)
    assert float(losses.terms["reconstruction"]) == pytest.approx(3.0, rel=1e-3)  # 1 mm per axis
    plain = model.loss(target + 0.001, target)  # no stash left: reconstruction only
    assert set(plain.terms) == {"reconstruction"}


def test_weighted_vertex_error_units_match_reconstruction():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, V, 3, generator=g), torch.randn(2, 5, V, 3, generator=g)
    torch.testing.assert_close(
        weighted_vertex_error(a, b, torch.ones(2, V)), reconstruction_loss(a, b)
    )
    only_first = torch.zeros(2, V)
    only_first[:, 0] = 2.0
    expected = ((a[:, :, 0] - b[:, :, 0]) ** 2).sum(-1).mean() / LOSS_UNIT**2
    torch.testing.assert_close(weighted_vertex_error(a, b, only_first), expected)


@pytest.mark.parametrize("noise", [True, False])
def test_gumbel_straight_through_is_exactly_one_hot_with_gradients(noise):
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 8, requires_grad=True)
    one_hot, labels = quantize(logits, temperature=0.7, noise=noise)
    assert set(one_hot.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(one_hot.detach().sum(-1), torch.ones(2, 5, 4))
    assert torch.equal(one_hot.detach().argmax(-1), labels)
    if not noise:
        assert torch.equal(labels, logits.argmax(-1))
    weights = torch.randn(8)
    (one_hot * weights).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    if not noise:  # straight-through: the gradient of the tempered softmax
        reference = logits.detach().requires_grad_()
        (torch.softmax(reference / 0.7, -1) * weights).sum().backward()
        torch.testing.assert_close(logits.grad, reference.grad)


def test_gumbel_noise_samples_by_probability():
    torch.manual_seed(0)
    log_probs = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(20000, 3)
    _, labels = quantize(log_probs, noise=True)
    frequencies = torch.bincount(labels, minlength=3) / 20000
    torch.testing.assert_close(frequencies, torch.tensor([0.7, 0.2, 0.1]), atol=0.015, rtol=0)


def random_codes(B, T, H, C, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.one_hot(torch.randint(0, C, (B, T, H), generator=g), C).float()


def test_prior_is_causal_in_the_codes():
    model = small()
    prior = model.prior
    audio = torch.randn(2, 24, 16)
    codes = random_codes(2, 24, 4, 8, seed=0)
    with torch.no_grad():
        before = prior(codes, audio)
        k = 10
        changed = codes.clone()
        changed[:, k:] = random_codes(2, 24 - k, 4, 8, seed=1)
        after = prior(changed, audio)
    assert torch.equal(before[:, : k + 1], after[:, : k + 1])  # frame k sees codes < k only
    assert (before[:, k + 1 :] - after[:, k + 1 :]).abs().max() > 1e-4  # later frames do see them


def test_inference_is_deterministic_and_consistent_with_the_prior():
    model = small().double().eval()
    randomise_output_layer(model)
    audio, template, reference, _ = (x.double() for x in inputs(T=40))  # T > receptive field
    assert model.prior.receptive_field == 16
    with torch.no_grad():
        a = model(audio, template, reference)
        b = model(audio, template, None)  # the reference is not used at inference
        codes = model.generate_codes(audio)
        teacher_forced = model.prior(codes, model.audio_encoder(audio))
    assert torch.equal(a, b)
    assert (a - template[:, None]).abs().max() > 0
    # the frame-by-frame windowed generation is the argmax of the parallel prior on its output
    assert torch.equal(teacher_forced.argmax(-1), codes.argmax(-1))
    assert len(codes.argmax(-1).unique()) > 1


def test_sampled_inference_varies_with_the_seed():
    model = small(sample_prior=True).eval()
    audio, template, reference, _ = inputs(T=20)
    with torch.no_grad():
        torch.manual_seed(0)
        first = model.generate_codes(audio)
        torch.manual_seed(0)
        again = model.generate_codes(audio)
        torch.manual_seed(1)
        other = model.generate_codes(audio)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_cross_modality_swaps_the_inputs():
    """(a) uses the reference's expression, (b) another clip's audio: each changes the latent."""
    model = small().eval()
    randomise_output_layer(model)
    audio, template, reference, target = inputs(B=3, T=12, Ts=12)
    with torch.no_grad():
        prediction = model(audio, template, reference, target)
        stash = model._last_terms
        assert not torch.equal(stash.audio_with_other_expression, prediction)
        assert not torch.equal(stash.expression_with_other_audio, prediction)
        # in eval mode (argmax codes), (a) equals a reconstruction from the reference expression
        same = model(audio, template, reference, reference[:, :12])
    torch.testing.assert_close(stash.audio_with_other_expression, same)


def synth_template() -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    model = load_face_model("synth")
    return torch.as_tensor(np.asarray(model.mean), dtype=torch.float32), model.regions


def rotation(degrees_x: float, degrees_z: float) -> torch.Tensor:
    a, c = math.radians(degrees_x), math.radians(degrees_z)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rx @ rz


def test_lower_face_holds_the_mouth_on_the_default_face():
    template, regions = synth_template()
    lower, upper = face_region_weights(template[None], 0.4)
    assert lower.shape == (1, len(template))
    torch.testing.assert_close(lower + upper, torch.ones_like(lower))
    lip, chin = lower[0, regions["lip"]], lower[0, regions["chin"]]
    assert lip.min() > 0.5 and lip.mean() > 0.95 and chin.mean() > 0.95
    for name in ("forehead", "eyes"):
        assert upper[0, regions[name]].min() > 0.99, name
    hard, _ = face_region_weights(template[None], 0.4, softness=0)
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    share = float(hard.mean())
    assert 0.3 < share < 0.6
    # the camera frame (y down, z forward), with head pose and a translation: the same split
    camera = template * torch.tensor([1.0, -1.0, -1.0]) @ rotation(15, -10).T
    camera = camera + torch.tensor([0.01, -0.02, 0.7])
    posed, _ = face_region_weights(camera[None], 0.4)
    torch.testing.assert_close(posed, lower, atol=1e-4, rtol=0)
    explicit, _ = face_region_weights(template[None], 0.4, "+y")
    flipped = template * torch.tensor([1.0, -1.0, -1.0])
    torch.testing.assert_close(face_region_weights(flipped[None], 0.4, "-y")[0], explicit)
    assert explicit[0, regions["lip"]].min() > 0.5
    wrong, _ = face_region_weights(template[None], 0.4, "-y")  # told upside down: obeyed
    assert wrong[0, regions["lip"]].mean() < 0.05
    with pytest.raises(InputError, match="up_axis"):
        face_region_weights(template[None], 0.4, "up")


def test_errors():
    model = small()
    audio, template, reference, target = inputs()
    with pytest.raises(InputError, match="channels"):
        model(audio[..., :5], template, reference, target)
    with pytest.raises(InputError, match="template"):
        model(audio, template[:, :5], reference, target)
    with pytest.raises(InputError, match="target"):
        model(audio, template, reference, target[:, :3])
    with pytest.raises(InputError, match="reference"):
        model(audio, template, reference[0], target)
    bad = {
        "heads": 0,
        "categories": 1,
        "gumbel_temperature": 0.0,
        "lower_face_fraction": 1.0,
        "up_axis": "w",
        "prior_weight": -1.0,
    }
    for field, value in bad.items():
        with pytest.raises(InputError, match=f"model.{field}"):
            build_model("meshtalk", V, C_A, MeshTalkConfig(**{field: value}))


def test_registered_with_an_ablation():
    assert "meshtalk" in model_names()
    model = build_model("meshtalk", V, C_A, MeshTalkConfig(**{**SMALL, "audio_dim": 80}))
    assert isinstance(model, MeshTalk) and model.audio_dim == C_A  # the encoder's width wins
    assert default_model_config("meshtalk", "cross_modality").cross_modality_weight == 0
    plain = small(cross_modality_weight=0.0)
    audio, template, reference, target = inputs()
    terms = plain.loss(plain(audio, template, reference, target), target).terms
    assert set(terms) == {"reconstruction", "prior_cross_entropy"}


def test_loss_decreases_on_a_fixed_batch():
    model = small(dropout=0.0)
    audio, template, reference, _ = inputs(T=12, Ts=12)
    g = torch.Generator().manual_seed(5)
    patterns = 0.003 * torch.randn(2, V, 3, generator=g)  # two motion modes, millimetres
    phase = torch.linspace(0, 3, 12)
    motion = (
        torch.sin(phase)[:, None, None] * patterns[0]
        + torch.cos(2 * phase)[:, None, None] * patterns[1]
    )
    target = template[:, None] + motion * torch.tensor([1.0, -0.5])[:, None, None, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(80):
        losses = model.loss(model(audio, template, reference, target), target)
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
        history.append({k: float(v) for k, v in losses.terms.items()})
    assert history[-1]["reconstruction"] < 0.5 * history[0]["reconstruction"], history[-1]
    assert history[-1]["prior_cross_entropy"] < history[0]["prior_cross_entropy"]
    model.eval()
    with torch.no_grad():  # from audio alone, through the prior: the memorised batch
        generated = reconstruction_loss(model(audio, template, reference), target)
    assert generated < 0.5 * history[0]["reconstruction"]


MESHTALK_TINY = [
    "data.window=16",
    "data.batch_size=2",
    "train.progress=false",
    "model.latent_dim=16",
    "model.heads=4",
    "model.categories=8",
    "model.prior_channels=16",
    "model.prior_layers=3",
]


def test_trains_through_the_command_line_and_evaluates(tiny_store, tmp_path):
    run = tmp_path / "meshtalk"
    argv = ["train", "--model", "meshtalk", "--data", str(tiny_store), "-o", str(run)]
    settings = [*MESHTALK_TINY, "optim.steps=4", "train.log_every=2"]
    assert cli.main([*argv, *(arg for item in settings for arg in ("--set", item))]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model_name"] == "meshtalk" and config["model"]["heads"] == 4
    assert config["model"]["audio_dim"] == 80  # the mel encoder's channels
    rows = (run / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert set(header) == {"step", "loss", "lr", "seconds"} | TERMS
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    for row in rows[1:]:
        assert all(math.isfinite(float(x)) for x in row.split(","))
    report = tmp_path / "report.json"
    assert cli.main(["evaluate", str(run), "--data", str(tiny_store), "-o", str(report)]) == 0
    result = json.loads(report.read_text())["runs"][0]
    assert result["model"] == "meshtalk" and result["step"] == 4
    assert all(math.isfinite(v) for v in result["overall"].values())
    assert 0 < result["overall"]["lip_mean"] < 0.1  # metres
