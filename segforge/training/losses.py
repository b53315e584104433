"""Losses for vessel segmentation: overlap (Dice + cross-entropy) and connectivity (clDice,
skeleton recall, maximum-intensity projections).

Why several: Dice and cross-entropy count voxels, so a one-voxel gap that cuts a vessel in
two costs almost nothing; the others weigh what a gap breaks.

- :func:`cldice_loss` (Shit et al. 2021) compares each mask with the other's skeleton;
  with ``skeleton="topological"`` the skeleton is the topology-preserving one
  (:func:`.skeleton.topological_skeleton`, after Menten et al. 2023), with ``"soft"``
  clDice's own min/max-pooling skeleton.
- :func:`skeleton_recall_loss` (Kirchhoff et al. 2024) is the fraction of the label's
  skeleton (computed once, without gradient) that the prediction misses: cheap enough for
  every step.
- :func:`mip_loss` (after SPOCKMIP) compares maximum-intensity projections along one or
  more axes: a gap in a vessel shows in the projection where the vessel runs across.

All take probabilities and labels shaped (B, C, D, H, W) (or any (..., D, H, W)), return a
scalar tensor, work on CPU and CUDA, and are 0 when the prediction equals the label.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from .skeleton import check_probabilities, label_skeleton, soft_skeleton, topological_skeleton

SMOOTH = 1e-6


def _check_pair(prediction: torch.Tensor, label: torch.Tensor, what: str = "prediction") -> None:
    if not torch.is_tensor(label):
        raise InputError("The label is not a tensor", f"it is {type(label).__name__}", "pass a torch tensor")
    if prediction.shape != label.shape:
        raise InputError(f"The {what} and the label have different shapes",
                         f"{tuple(prediction.shape)} and {tuple(label.shape)}",
                         "crop or resample both onto the same grid and pass them with the same channels")


def soft_dice_loss(probabilities: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over the whole batch (every voxel counts once)."""
    label = label.to(probabilities.dtype)
    overlap = (probabilities * label).sum()
    return 1 - (2 * overlap + SMOOTH) / (probabilities.sum() + label.sum() + SMOOTH)


def dice_ce_loss(logits: torch.Tensor, label: torch.Tensor, dice_weight: float = 1.0,
                 ce_weight: float = 1.0) -> torch.Tensor:
    """Soft Dice of ``sigmoid(logits)`` plus binary cross-entropy, for one-channel vessel masks.

    Takes logits (not probabilities) so the cross-entropy is computed stably.
    """
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise InputError("The logits are not a floating-point tensor", f"they are {type(logits).__name__}",
                         "pass the network's raw output")
    _check_pair(logits, label, "logits")
    target = label.to(logits.dtype)
    dice = soft_dice_loss(torch.sigmoid(logits), target)
    ce = F.binary_cross_entropy_with_logits(logits, target)
    return dice_weight * dice + ce_weight * ce


def cldice_loss(probabilities: torch.Tensor, label: torch.Tensor,
                skeleton: Literal["topological", "soft"] = "topological", iterations: Optional[int] = None,
                truth_skeleton: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1 - clDice: the harmonic mean of topology precision (the prediction's skeleton inside
    the label) and topology sensitivity (the label's skeleton inside the prediction).

    ``iterations``: thinning layers (topological; None = to the end) or soft erosions
    (soft; None = 10). ``truth_skeleton`` may be given when precomputed.
    """
    check_probabilities(probabilities)
    _check_pair(probabilities, label)
    target = label.to(probabilities.dtype)
    if skeleton == "topological":
        predicted = topological_skeleton(probabilities, iterations)
        truth = label_skeleton(target, iterations) if truth_skeleton is None else truth_skeleton
    elif skeleton == "soft":
        steps = 10 if iterations is None else iterations
        predicted = soft_skeleton(probabilities, steps)
        truth = soft_skeleton(target, steps) if truth_skeleton is None else truth_skeleton
    else:
        raise InputError("The skeleton kind is unknown", f"it is {skeleton!r}", "use 'topological' or 'soft'")
    truth = truth.to(probabilities.dtype)
    precision = ((predicted * target).sum() + SMOOTH) / (predicted.sum() + SMOOTH)
    sensitivity = ((truth * probabilities).sum() + SMOOTH) / (truth.sum() + SMOOTH)
    return 1 - 2 * precision * sensitivity / (precision + sensitivity)


def skeleton_recall_loss(probabilities: torch.Tensor, truth_skeleton: torch.Tensor) -> torch.Tensor:
    """1 - the fraction of the label's skeleton (see :func:`.skeleton.label_skeleton`) the prediction covers."""
    check_probabilities(probabilities)
    _check_pair(probabilities, truth_skeleton)
    truth = truth_skeleton.to(probabilities.dtype)
    if not bool(truth.any()):
        raise InputError("The label's skeleton is empty", "the label has no vessel voxel",
                         "leave out samples without vessels or use Dice alone for them")
    return 1 - (truth * probabilities).sum() / truth.sum()


def mip_loss(probabilities: torch.Tensor, label: torch.Tensor, axes: Sequence[int] = (-3, -2, -1)) -> torch.Tensor:
    """Mean soft Dice loss between the maximum-intensity projections of prediction and label
    along each of ``axes`` (spatial axes, negative: -3 = D, -2 = H, -1 = W)."""
    check_probabilities(probabilities)
    _check_pair(probabilities, label)
    if not axes or any(axis not in (-3, -2, -1) for axis in axes):
        raise InputError("The projection axes are invalid", f"they are {tuple(axes)}",
                         "give one or more of -3 (D), -2 (H), -1 (W)")
    target = label.to(probabilities.dtype)
    losses = [soft_dice_loss(probabilities.amax(dim=axis), target.amax(dim=axis)) for axis in axes]
    return torch.stack(losses).mean()
