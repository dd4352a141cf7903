import json
import math

import pytest
import torch
from torch import nn

import mmface4d.animate.faceformer  # noqa: F401  (registers "faceformer")
from mmface4d import cli
from mmface4d.animate.faceformer import (
    FaceFormer,
    FaceFormerConfig,
    FaceFormerDecoderLayer,
    alibi_slopes,
    alignment_mask,
    biased_causal_mask,
    periodic_positional_encoding,
)
from mmface4d.animate.model import reconstruction_loss
from mmface4d.animate.registry import build_model, default_model_config, model_names
from mmface4d.errors import InputError

V, C = 20, 6
INF = float("inf")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny ops, many of them (the autoregressive loop): one thread avoids oversubscribing a busy
    machine's cores, which slows them down by an order of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(seed=0, **changes) -> FaceFormer:
    """A small FaceFormer in eval mode with a random (not zero) motion decoder, so that the
    outputs depend on the inputs."""
    torch.manual_seed(seed)
    config = FaceFormerConfig(audio_dim=C, width=16, heads=4, period=3, **changes)
    model = FaceFormer(V, config)
    nn.init.normal_(model.motion_decoder.weight, std=50.0)  # millimetres: 5 cm scale outputs
    nn.init.normal_(model.motion_decoder.bias, std=10.0)
    return model.eval()


def inputs(B=2, T=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(B, T, C, generator=g)
    template = 0.1 * torch.randn(B, V, 3, generator=g)
    reference = torch.randn(B, 5, V, 3, generator=g)
    target = template[:, None] + 0.01 * torch.randn(B, T, V, 3, generator=g)
    return audio, template, reference, target


def test_alibi_slopes():
    assert alibi_slopes(4).tolist() == [2**-2, 2**-4, 2**-6, 2**-8]
    assert alibi_slopes(8).tolist() == [2.0**-k for k in range(1, 9)]
    assert alibi_slopes(1).tolist() == [2**-8]
    # not a power of two: the 2 slopes of H=2, then every other slope of H=4
    assert alibi_slopes(3).tolist() == [2**-4, 2**-8, 2**-2]
    assert alibi_slopes(6).tolist() == [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]


def test_biased_causal_mask_against_a_hand_written_one():
    steps = torch.tensor(  # -floor((i - j) / 2) for j <= i, period 2
        [
            [0, INF, INF, INF, INF],
            [0, 0, INF, INF, INF],
            [-1, 0, 0, INF, INF],
            [-1, -1, 0, 0, INF],
            [-2, -1, -1, 0, 0],
        ]
    )
    future = steps == INF
    bias = biased_causal_mask(5, heads=2, period=2)
    assert bias.shape == (2, 5, 5)
    for head, slope in enumerate([2**-4, 2**-8]):
        expected = torch.where(future, -INF, slope * steps)
        assert torch.equal(bias[head], expected), (head, bias[head])
    assert torch.equal(biased_causal_mask(5, 2, period=5)[:, ~future], torch.zeros(2, 15))


def test_alignment_mask_and_periodic_positional_encoding():
    mask = alignment_mask(4)
    assert torch.equal(mask.diagonal(), torch.zeros(4))
    assert torch.isneginf(mask[~torch.eye(4, dtype=torch.bool)]).all()
    pe = periodic_positional_encoding(10, 8, period=4)
    assert pe.shape == (10, 8)
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.equal(pe[4:8], pe[0:4]) and torch.equal(pe[8:], pe[0:2])
    expected = [math.sin(3 / 10000 ** (2 / 8)), math.cos(3 / 10000 ** (2 / 8))]
    assert pe[7, 2:4].tolist() == pytest.approx(expected)
    assert not torch.allclose(pe[1], pe[2])


def test_decoder_layer_matches_torch_when_the_bias_is_zero():
    """Slow reference: with p >= T the temporal bias is 0 on the past, so the layer must be
    PyTorch's post-norm decoder layer with a causal mask and the diagonal memory mask."""
    torch.manual_seed(0)
    d, heads, T = 16, 4, 7
    ours = FaceFormerDecoderLayer(d, heads, 32, dropout=0.0).eval()
    theirs = nn.TransformerDecoderLayer(d, heads, 32, dropout=0.0, batch_first=True).eval()
    for mine, torch_attention in (
        (ours.self_attention, theirs.self_attn),
        (ours.cross_attention, theirs.multihead_attn),
    ):
        parts = (mine.query, mine.key, mine.value)
        torch_attention.in_proj_weight.data = torch.cat([p.weight.data for p in parts])
        torch_attention.in_proj_bias.data = torch.cat([p.bias.data for p in parts])
        torch_attention.out_proj.load_state_dict(mine.out.state_dict())
    theirs.linear1.load_state_dict(ours.feedforward[0].state_dict())
    theirs.linear2.load_state_dict(ours.feedforward[3].state_dict())
    for k in (1, 2, 3):
        getattr(theirs, f"norm{k}").load_state_dict(getattr(ours, f"norm{k}").state_dict())
    x, audio = torch.randn(2, T, d), torch.randn(2, T, d)
    causal = torch.triu(torch.full((T, T), -INF), diagonal=1)
    expected = theirs(x, audio, tgt_mask=causal, memory_mask=alignment_mask(T))
    got = ours(x, audio, biased_causal_mask(T, heads, period=T), alignment_mask(T))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # a short period changes the result: the bias is really applied
    assert not torch.allclose(
        ours(x, audio, biased_causal_mask(T, heads, 1), alignment_mask(T)), got
    )


def test_shapes_and_the_zero_initialised_motion_decoder():
    audio, template, reference, target = inputs()
    fresh = FaceFormer(V, FaceFormerConfig(audio_dim=C, width=16)).eval()
    for teacher_forcing in (False, True):
        fresh.config.teacher_forcing = teacher_forcing
        assert torch.equal(
            fresh(audio, template, reference, target), target * 0 + template[:, None]
        )
    model = make_model()
    for T in (1, 2, 9):
        out = model(audio[:, :T], template, reference)
        assert out.shape == (2, T, V, 3) and torch.isfinite(out).all()
        model.config.teacher_forcing = True
        assert torch.allclose(model(audio[:, :T], template, reference, out), out, atol=1e-5)
        model.config.teacher_forcing = False
    assert model(audio, template, None, target).shape == (2, 9, V, 3)  # reference unused


def test_teacher_forced_outputs_are_causal():
    """Output t reads target frames < t and audio frames <= t (one layer: audio frame t only)."""
    audio, template, reference, target = inputs(T=10)
    model = make_model(layers=2, teacher_forcing=True)
    base = model(audio, template, reference, target)
    k = 5
    audio2, target2 = audio.clone(), target.clone()
    audio2[:, k:] += 1.0
    target2[:, k - 1 :] += 0.01
    changed = model(audio2, template, reference, target2)
    assert torch.equal(changed[:, :k], base[:, :k])
    assert (changed[:, k:] - base[:, k:]).abs().amax(dim=(0, 2, 3)).min() > 1e-4

    target3 = target.clone()
    target3[:, k - 1] += 0.01  # the last frame's target is never read
    changed = model(audio, template, reference, target3)
    assert torch.equal(changed[:, :k], base[:, :k]) and not torch.allclose(
        changed[:, k], base[:, k]
    )

    one_layer = make_model(layers=1, teacher_forcing=True)
    base = one_layer(audio, template, reference, target)
    audio4 = audio.clone()
    audio4[:, 3] += 1.0  # alignment bias: only frame 3 hears audio frame 3
    moved = (one_layer(audio4, template, reference, target) - base).abs().amax(dim=(0, 2, 3))
    assert moved[3] > 1e-4 and torch.equal(moved[torch.arange(10) != 3], torch.zeros(9))


def test_inference_equals_teacher_forcing_on_its_own_output():
    audio, template, reference, target = inputs(T=12)
    model = make_model(layers=2)
    with torch.no_grad():
        predicted = model(audio, template, reference)  # autoregressive loop
        assert torch.equal(model(audio, template, reference, target), predicted)  # ignored
        model.config.teacher_forcing = True
        replayed = model(audio, template, reference, predicted)
        teacher_forced = model(audio, template, reference, target)
    torch.testing.assert_close(replayed, predicted, atol=1e-5, rtol=0)
    assert (teacher_forced - predicted).abs().max() > 1e-3  # the check can fail


def test_training_gradients_reach_every_part():
    audio, template, reference, target = inputs(T=6)
    for teacher_forcing in (False, True):
        model = make_model(teacher_forcing=teacher_forcing).train()
        prediction = model(audio, template, reference, target)
        losses = model.loss(prediction, target)
        assert torch.equal(losses.total, reconstruction_loss(prediction, target))
        assert set(losses.terms) == {"reconstruction"}
        losses.total.backward()
        for name in ("audio_projection", "motion_encoder", "styles", "motion_decoder"):
            grad = getattr(model, name).weight.grad
            assert grad is not None and grad.abs().sum() > 0, (teacher_forcing, name)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    assert torch.isfinite(model.loss(prediction, target, mask).total)


def test_learned_styles():
    audio, template, reference, _ = inputs(T=4)
    model = make_model(num_styles=3)
    a = model(audio, template, reference, style=torch.tensor([0, 2]))
    b = model(audio, template, reference, style=torch.tensor([1, 2]))
    assert not torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(InputError, match="num_styles=3 needs style indices"):
        model(audio, template, reference)
    with pytest.raises(InputError, match=r"in \[0, 3\)"):
        model(audio, template, reference, style=torch.tensor([0, 3]))
    with pytest.raises(InputError, match="integers"):
        model(audio, template, reference, style=torch.tensor([0.0, 1.0]))


def test_input_errors():
    audio, template, reference, target = inputs(T=5)
    model = make_model(max_frames=4)
    with pytest.raises(InputError, match="max_frames=4 frames, got 5"):
        model(audio, template, reference)
    assert model(audio[:, :4], template, reference).shape == (2, 4, V, 3)
    with pytest.raises(InputError, match=rf"\(B, T, {C}\)"):
        model(audio[..., :3], template, reference)
    with pytest.raises(InputError, match="template"):
        model(audio[:, :4], template[:, :-1], reference)
    with pytest.raises(InputError, match="target"):
        model(audio[:, :4], template, reference, target)
    for change, message in (
        ({"width": 15, "heads": 3}, "even multiple"),
        ({"width": 18}, "even multiple of model.heads=4"),
        ({"heads": 0}, "model.heads"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"num_styles": 0}, "model.num_styles"),
        ({"feedforward": 0}, "model.feedforward"),
    ):
        config = FaceFormerConfig(**{"width": 16, **change})
        with pytest.raises(InputError, match=message):
            build_model("faceformer", V, C, config)


def test_registered():
    assert "faceformer" in model_names()
    assert default_model_config("faceformer") == FaceFormerConfig()
    model = build_model("faceformer", V, 12, FaceFormerConfig(width=16))
    assert isinstance(model, FaceFormer) and model.audio_dim == model.config.audio_dim == 12
    # the published sizes: d = 64, 4 heads, 1 layer, feed-forward 2d
    default = build_model("faceformer", V, 80)
    layer = default.decoder[0]
    assert len(default.decoder) == 1 and layer.self_attention.heads == 4
    assert layer.feedforward[0].weight.shape == (128, 64)


def test_train_and_evaluate_through_the_cli(tiny_store, tmp_path):
    run, report = tmp_path / "run", tmp_path / "report.json"
    argv = ["train", "--model", "faceformer", "--data", str(tiny_store), "-o", str(run)]
    argv += ["--set", "model.width=32", "--set", "data.window=16", "--set", "data.batch_size=2"]
    argv += ["--set", "train.progress=false"]
    assert cli.main([*argv, "--set", "optim.steps=4", "--set", "train.log_every=2"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model_name"] == "faceformer" and config["model"]["width"] == 32
    assert config["model"]["audio_dim"] == 80 and config["model"]["period"] == 30
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].split(",")[-1] == "reconstruction" and len(log) == 3
    assert cli.main(["evaluate", str(run), "--data", str(tiny_store), "-o", str(report)]) == 0
    result = json.loads(report.read_text())["runs"][0]
    assert result["model"] == "faceformer" and result["step"] == 4
    assert 0 < result["overall"]["lip_mean"] <= result["overall"]["lip_max"] < 0.1
