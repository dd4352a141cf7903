"""Lip-sync training terms: zero when the prediction is right, larger where lips should shut."""

from __future__ import annotations

import pytest
import torch

from mmface4d.animate.losses import LossConfig, lip_gaps, lip_sync_loss
from mmface4d.errors import InputError

UPPER, LOWER = torch.tensor([0, 1]), torch.tensor([2, 3])


def _faces(gap_mm: list[float]) -> torch.Tensor:
    """(1, T, 4, 3): two upper-lip vertices at y = gap, two lower ones at 0, metres."""
    frames = torch.zeros(1, len(gap_mm), 4, 3)
    frames[0, :, :2, 1] = torch.tensor(gap_mm)[:, None] * 1e-3
    return frames


def test_gap_term_measures_the_inner_lip_gap_in_mm() -> None:
    torch.testing.assert_close(
        lip_gaps(_faces([0.0, 5.0]), UPPER, LOWER)[0, :, 0], torch.tensor([0.0, 5.0])
    )
    config = LossConfig(gap_weight=2.0)
    truth = _faces([0.0, 5.0, 5.0])
    assert lip_sync_loss(config, truth, truth, UPPER, LOWER)["lip_gap"] == 0
    open_mouth = _faces([3.0, 5.0, 5.0])
    loss = lip_sync_loss(config, open_mouth, truth, UPPER, LOWER)["lip_gap"]
    torch.testing.assert_close(loss, torch.tensor(2.0 * 9.0 / 3))


def test_closure_boost_weighs_frames_where_the_truth_is_shut() -> None:
    truth, wrong = _faces([0.0, 5.0]), _faces([3.0, 8.0])  # same 3 mm error on both frames
    plain = lip_sync_loss(LossConfig(gap_weight=1.0), wrong, truth, UPPER, LOWER)["lip_gap"]
    boosted = lip_sync_loss(
        LossConfig(gap_weight=1.0, closure_boost=4.0), wrong, truth, UPPER, LOWER
    )["lip_gap"]
    torch.testing.assert_close(boosted, plain * (5 + 1) / 2)


def test_velocity_term_ignores_offsets_and_sees_motion() -> None:
    config = LossConfig(velocity_weight=1.0)
    truth = _faces([0.0, 2.0, 4.0])
    shifted = truth + 1e-3  # same motion, 1 mm away
    assert lip_sync_loss(config, shifted, truth, UPPER, LOWER)["velocity"] < 1e-8
    still = _faces([2.0, 2.0, 2.0])
    assert lip_sync_loss(config, still, truth, UPPER, LOWER)["velocity"] > 0.5
    assert lip_sync_loss(LossConfig(), still, truth, UPPER, LOWER) == {}


def test_negative_weights_are_refused() -> None:
    with pytest.raises(InputError, match="loss.gap_weight"):
        LossConfig(gap_weight=-1).validate()
    with pytest.raises(InputError, match="loss.closed_mm"):
        LossConfig(closed_mm=0).validate()
