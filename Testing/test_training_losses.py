"""Topology-aware losses (segforge.training.losses) on tubes: 0 for a perfect prediction, a
broken tube penalised more than a whole one, finite non-zero gradients, clear bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segforge.errors import InputError
from segforge.training.losses import cldice_loss, dice_ce_loss, mip_loss, skeleton_recall_loss, soft_dice_loss
from segforge.training.skeleton import label_skeleton

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no CUDA device on this machine"))]


def _tube(gap: int = 0, shape=(40, 20, 20), radius=4.0) -> torch.Tensor:
    """A tube along D, optionally cut by a gap of ``gap`` slices in its middle; (1, 1, D, H, W) float."""
    z, y, x = np.indices(shape)
    tube = (np.hypot(y - 9.5, x - 9.5) <= radius) & (z >= 3) & (z < shape[0] - 3)
    if gap:
        middle = shape[0] // 2
        tube[middle:middle + gap] = False
    return torch.from_numpy(tube).float()[None, None]


def _soft(mask: torch.Tensor) -> torch.Tensor:
    """A confident but not saturated prediction of ``mask`` that autograd tracks."""
    return (0.05 + 0.9 * mask).requires_grad_(True)


LOSSES = {
    "clDice topological": lambda p, label: cldice_loss(p, label),
    "clDice soft": lambda p, label: cldice_loss(p, label, skeleton="soft"),
    "skeleton recall": lambda p, label: skeleton_recall_loss(p, label_skeleton(label)),
}


@pytest.mark.parametrize("name", LOSSES)
def test_a_broken_tube_costs_more_than_a_whole_one_although_dice_barely_moves(name):
    label = _tube()
    whole, broken = LOSSES[name](_tube(), label), LOSSES[name](_tube(gap=2), label)
    assert float(whole) < 0.02
    assert float(broken) > float(whole) + 0.01
    dice_gap = float(soft_dice_loss(_tube(gap=2), label)) - float(soft_dice_loss(_tube(), label))
    assert float(broken) - float(whole) > 0.5 * dice_gap


@pytest.mark.parametrize("device", DEVICES)
def test_the_perfect_prediction_costs_nothing(device):
    label = _tube().to(device)
    assert float(cldice_loss(label, label)) == pytest.approx(0, abs=1e-5)
    assert float(cldice_loss(label, label, skeleton="soft")) == pytest.approx(0, abs=1e-5)
    assert float(skeleton_recall_loss(label, label_skeleton(label))) == pytest.approx(0, abs=1e-6)
    assert float(mip_loss(label, label)) == pytest.approx(0, abs=1e-6)
    assert float(dice_ce_loss(40 * label - 20, label)) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_every_loss_has_finite_non_zero_gradients(device):
    label = _tube().to(device)
    prediction = (0.05 + 0.9 * _tube(gap=2)).to(device)
    losses = {**LOSSES, "MIP along D": lambda p, t: mip_loss(p, t, axes=(-3,)),
              "MIP along H and W": lambda p, t: mip_loss(p, t, axes=(-2, -1))}
    for name, loss in losses.items():
        probabilities = prediction.clone().requires_grad_(True)
        loss(probabilities, label).backward()
        grad = probabilities.grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    logits = (8 * prediction - 4).requires_grad_(True)
    dice_ce_loss(logits, label).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_skeleton_recall_pulls_the_gap_up():
    """Its gradient says: raise the probability where the label's skeleton crosses the gap."""
    label = _tube()
    probabilities = _soft(_tube(gap=2))
    skeleton_recall_loss(probabilities, label_skeleton(label)).backward()
    in_gap = probabilities.grad[0, 0, 20:22]
    assert (in_gap < 0).any() and float(in_gap.min()) == float(probabilities.grad.min())


def test_a_gap_across_the_projection_shows_in_the_mip_along_another_axis():
    label = _tube()
    broken = _tube(gap=2)
    assert float(mip_loss(broken, label, axes=(-3,))) == pytest.approx(0, abs=1e-6)  # seen end-on: hidden
    assert float(mip_loss(broken, label, axes=(-1,))) > 0.02  # seen from the side: the gap shows


def test_float16_probabilities_work():
    label = _tube()
    assert float(cldice_loss(label.half(), label.half())) == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("call, words", [
    (lambda: cldice_loss(torch.rand(1, 1, 8, 8, 8), torch.ones(1, 1, 8, 8, 9)), "different shapes"),
    (lambda: cldice_loss(torch.rand(1, 1, 8, 8, 8) * 4 - 2, torch.ones(1, 1, 8, 8, 8)), "outside [0, 1]"),
    (lambda: cldice_loss(torch.rand(1, 1, 8, 8, 8), torch.ones(1, 1, 8, 8, 8), skeleton="x"), "unknown"),
    (lambda: skeleton_recall_loss(torch.rand(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 8)), "skeleton is empty"),
    (lambda: mip_loss(torch.rand(1, 1, 8, 8, 8), torch.ones(1, 1, 8, 8, 8), axes=(0,)), "axes"),
    (lambda: dice_ce_loss(torch.ones(1, 1, 4, 4, 4, dtype=torch.long), torch.ones(1, 1, 4, 4, 4)), "logits"),
])
def test_bad_input_is_a_one_line_message(call, words):
    with pytest.raises(InputError) as raised:
        call()
    assert words in str(raised.value) and "\n" not in str(raised.value)
