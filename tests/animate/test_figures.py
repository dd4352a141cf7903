"""Figures of the paper's model: speaking styles (Fig. 7) and the regions of W_d (Fig. 8)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmface4d.animate.animator import Animator
from mmface4d.animate.checkpoint import build_pipeline, final_state, save_checkpoint
from mmface4d.animate.config import TrainConfig
from mmface4d.animate.figures import (
    MASS_SHARE,
    contrasting_frames,
    decoding_matrix_of,
    decoding_regions_figure,
    decoding_sparsity_summary,
    mass_fraction,
    style_figure,
)
from mmface4d.animate.model import Ours, OursConfig
from mmface4d.animate.registry import default_model_config
from mmface4d.errors import InputError

SMALL = OursConfig(latent_dim=8, decoder_blocks=1, style_channels=(4, 4, 4, 4))


def speech(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(16_000 * seconds)) * 0.1).astype(np.float32)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def ours_with_rows(rows: torch.Tensor) -> Ours:
    """An Ours network whose W_d is ``rows`` (D, 3V)."""
    D, coordinates = rows.shape
    net = Ours(coordinates // 3, dataclasses.replace(SMALL, latent_dim=D))
    with torch.no_grad():
        net.decoding.weight.copy_(rows.T)
    return net


def naive_mass_fraction(activation: np.ndarray, share: float) -> float:
    """Add vertices from the largest activation down until the share is reached."""
    total, held, count = activation.sum(), 0.0, 0
    for value in sorted(activation.tolist(), reverse=True):
        if held >= share * total * (1 - 1e-12):
            break
        held += value
        count += 1
    return count / len(activation)


# ---------------------------------------------------------------------------- frame choice


def test_contrasting_frames_pick_open_and_closed_spread_in_time() -> None:
    T = 90
    opening = np.sin(np.linspace(0, 6 * np.pi, T)) ** 2 + 0.01 * np.arange(T) / T
    frames = contrasting_frames(opening, 4)
    assert frames.tolist() == sorted(frames.tolist()) and len(set(frames.tolist())) == 4
    assert int(np.argmax(opening)) in frames and int(np.argmin(opening)) in frames
    assert np.diff(frames).min() >= T // 8
    assert opening[frames].max() > 0.9 and opening[frames].min() < 0.1
    assert contrasting_frames(opening, T).tolist() == list(range(T))
    assert contrasting_frames(np.zeros(10), 2, flat=1e-4).tolist() == [2, 7]  # still mouth
    with pytest.raises(InputError, match="count"):
        contrasting_frames(opening, T + 1)


# ---------------------------------------------------------------------------- Fig. 7


def test_style_figure_grid_and_errors(animator: Animator, tmp_path: Path) -> None:
    styles = list(animator.styles)[:2]
    styles = styles if len(styles) == 2 else styles * 2
    audio = speech(1.0)
    big = style_figure(animator, audio, styles, tmp_path / "styles.png", num_frames=3, size=64)
    small = style_figure(animator, audio, styles[:1], tmp_path / "one.png", num_frames=2, size=64)
    (W, H), (w, h) = png_size(big), png_size(small)
    assert (W - w, H - h) == (64, 64)  # one more column and row of 64-pixel panels
    assert W - 3 * 64 == w - 2 * 64 < 160 and H - 2 * 64 == h - 64 < 80  # label margins only
    image = np.asarray(Image.open(big).convert("RGB"), dtype=np.float64)
    assert image[H - 64 :, W - 70 :].std() > 5  # a rendered face, not a blank cell
    with pytest.raises(InputError, match="unknown"):
        style_figure(animator, audio, ["S999-nope"], tmp_path / "x.png", num_frames=2, size=64)
    with pytest.raises(InputError, match="num_frames"):
        style_figure(animator, speech(0.1), styles, tmp_path / "x.png", num_frames=6, size=64)
    with pytest.raises(InputError, match=".png"):
        style_figure(animator, audio, styles, tmp_path / "x.jpg", num_frames=2, size=64)
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------- sparsity


def test_mass_fraction_known_values_and_reference() -> None:
    uniform = np.ones((1, 10))
    assert mass_fraction(uniform, 0.9).tolist() == [0.9]
    one_hot = np.zeros((1, 10))
    one_hot[0, 3] = 2.0
    assert mass_fraction(one_hot, 0.9).tolist() == [0.1]
    assert np.isnan(mass_fraction(np.zeros((1, 4)))).all()
    rows = np.random.default_rng(1).gamma(0.5, size=(5, 37))
    expected = [naive_mass_fraction(r, MASS_SHARE) for r in rows]
    np.testing.assert_allclose(mass_fraction(rows, MASS_SHARE), expected)


def test_disjoint_rows_are_more_regional_than_dense_ones() -> None:
    D, V = 8, 40
    disjoint = torch.zeros(D, V, 3)
    for d in range(D):
        disjoint[d, 5 * d : 5 * d + 5] = torch.randn(5, 3)
    dense = torch.randn(D, V, 3)
    regional = decoding_sparsity_summary(decoding_matrix_of(ours_with_rows(disjoint.view(D, -1))))
    spread = decoding_sparsity_summary(decoding_matrix_of(ours_with_rows(dense.view(D, -1))))
    for summary in (regional, spread):
        assert 0 <= summary.mass_fraction <= 1 and 0 <= summary.eq7_per_pair <= 1
        assert summary.rows == D and summary.num_vertices == V and len(summary.top_rows) == D
    assert regional.mass_fraction <= 5 / V < spread.mass_fraction
    assert regional.eq7 == pytest.approx(0.0, abs=1e-9) and spread.eq7 > 0
    assert spread.eq7_per_pair > 0.5  # |N(0, 1)| rows overlap a lot


# ---------------------------------------------------------------------------- Fig. 8


def test_decoding_regions_figure(animator: Animator, tiny_run: Path, tmp_path: Path) -> None:
    face_model = animator.face_model
    torch.manual_seed(0)
    untrained = Ours(face_model.num_vertices, SMALL)
    out = decoding_regions_figure(
        {"ours": tiny_run, "untrained": untrained},
        face_model,
        tmp_path / "regions.png",
        rows=3,
        size=64,
    )
    W, H = png_size(out)
    one = decoding_regions_figure(
        {"ours": tiny_run}, face_model, tmp_path / "one.png", rows=2, size=64
    )
    w, h = png_size(one)
    assert W - w == 64 and H - h > 64  # one more panel per row, one more row (with captions)
    assert W - 3 * 64 < 200 and H - 2 * 64 < 160
    report = json.loads((tmp_path / "regions.json").read_text())
    assert list(report["models"]) == ["ours", "untrained"]
    for summary in report["models"].values():
        assert 0 <= summary["mass_fraction"] <= 1 and summary["eq7"] >= 0
        assert len(summary["top_rows"]) == 3
    expected = decoding_sparsity_summary(decoding_matrix_of(untrained), top=3)
    assert report["models"]["untrained"]["mass_fraction"] == pytest.approx(expected.mass_fraction)


def test_decoding_regions_rejects_models_without_w_d(animator: Animator, tmp_path: Path) -> None:
    config = TrainConfig(model_name="faceformer", model=default_model_config("faceformer"))
    pipeline = build_pipeline(config, animator.num_vertices)
    save_checkpoint(tmp_path / "faceformer" / "final.pt", final_state(pipeline, config, 0))
    with pytest.raises(InputError, match="no decoding matrix"):
        decoding_regions_figure(
            {"faceformer": tmp_path / "faceformer"},
            animator.face_model,
            tmp_path / "x.png",
            rows=2,
            size=64,
        )
    with pytest.raises(InputError, match="no such run folder"):
        decoding_matrix_of(tmp_path / "missing")
    with pytest.raises(InputError, match="vertices"):
        decoding_regions_figure(
            {"small": Ours(10, SMALL)}, animator.face_model, tmp_path / "x.png", rows=2, size=64
        )
    assert not (tmp_path / "x.png").exists()
