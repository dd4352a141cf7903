import pytest
import torch

from mmface4d.animate.model import (
    Ours,
    OursConfig,
    adain,
    decoding_sparsity,
    normalise_reference,
    paper_loss,
    style_statistics,
)
from mmface4d.errors import InputError

V = 40


def small(**kw) -> Ours:
    torch.manual_seed(0)
    cfg = OursConfig(
        audio_dim=12, latent_dim=16, decoder_blocks=2, style_channels=(8, 8, 16, 16), **kw
    )
    return Ours(V, cfg)


def inputs(B=2, T=9, Ts=13):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(B, T, 12, generator=g),
        torch.randn(B, V, 3, generator=g),
        torch.randn(B, Ts, V, 3, generator=g),
    )


@pytest.mark.parametrize("T, Ts", [(9, 13), (1, 1), (50, 4)])
def test_shapes_and_variable_length(T, Ts):
    audio, template, ref = inputs(T=T, Ts=Ts)
    out = small()(audio, template, ref)
    assert out.vertices.shape == (2, T, V, 3)
    torch.testing.assert_close(
        out.vertices - out.offsets, template.unsqueeze(1).expand(-1, T, -1, -1)
    )


def test_style_changes_output_only_when_composite():
    audio, template, ref = inputs()
    model = small().eval()
    with torch.no_grad():
        for p in model.to_scale.parameters():
            p.normal_(0, 0.5)
        a = model(audio, template, ref).offsets
        b = model(audio, template, ref * 3.0 + 1.0).offsets
    assert (a - b).abs().max() > 1e-2 * a.abs().max()
    plain = small(composite=False).eval()
    assert not hasattr(plain, "style_encoder")
    with torch.no_grad():
        torch.testing.assert_close(
            plain(audio, template, ref).vertices, plain(audio, template, None).vertices
        )


def test_adain_statistics():
    h = torch.randn(2, 5, 30, dtype=torch.float64)
    scale = torch.rand(2, 5, dtype=torch.float64) + 0.5
    shift = torch.randn(2, 5, dtype=torch.float64)
    out = adain(h, scale, shift)
    torch.testing.assert_close(out.mean(2), shift)
    torch.testing.assert_close(out.std(2, unbiased=False), scale, rtol=1e-4, atol=1e-4)
    inputs_ = (h.requires_grad_(), scale.requires_grad_(), shift.requires_grad_())
    assert torch.autograd.gradcheck(adain, inputs_)


def test_reference_normalisation_and_statistics():
    ref = torch.randn(2, 7, V, 3)
    torch.testing.assert_close(
        normalise_reference(ref).mean(1), torch.zeros(2, V, 3), atol=1e-6, rtol=0
    )
    stats = style_statistics(torch.ones(3, 4, 5))
    torch.testing.assert_close(stats, torch.cat([torch.ones(3, 4), torch.zeros(3, 4)], 1))


def test_sparsity_matches_double_loop_and_is_zero_for_disjoint_rows():
    w = torch.randn(6, 20, dtype=torch.float64)
    total = 0.0
    n = w.abs() / w.abs().norm(dim=1, keepdim=True)
    for i in range(6):
        for j in range(6):
            if i != j:
                total += float((n[i] * n[j]).sum())
    assert decoding_sparsity(w).item() == pytest.approx(total)
    disjoint = torch.zeros(4, 8)
    for i in range(4):
        disjoint[i, 2 * i : 2 * i + 2] = torch.randn(2)
    assert decoding_sparsity(disjoint).item() == pytest.approx(0.0, abs=1e-7)


def test_loss_and_training_step_reduce_error():
    audio, template, ref = inputs()
    target = template.unsqueeze(1) + 0.05 * audio[..., :1].unsqueeze(-1)  # offsets driven by audio
    model = small()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = paper_loss(model, model(audio, template, ref).vertices, target).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first


def test_official_variant_ties_decoding_to_encoding():
    model = small(official_variant=True)
    assert model.decoding_matrix() is model.encoding.weight
    audio, template, ref = inputs()
    assert model(audio, template, ref).vertices.shape == (2, 9, V, 3)
    assert model.regulariser().item() == pytest.approx(model.encoding.weight.abs().sum().item())


def test_bad_inputs():
    audio, template, ref = inputs()
    model = small()
    with pytest.raises(InputError, match="channels"):
        model(audio[..., :5], template, ref)
    with pytest.raises(InputError, match="template"):
        model(audio, template[:, :10], ref)
    with pytest.raises(InputError, match="reference"):
        model(audio, template, ref[:, :, :10])
    with pytest.raises(InputError, match="reference"):
        model(audio, template, None)
