"""Skeleton operators for topology-aware losses: the topology-preserving one and clDice's soft one.

Both take probabilities shaped (..., D, H, W) (usually (B, C, D, H, W)) in [0, 1] and return
a skeleton of the same shape and dtype that autograd can go through.

:func:`topological_skeleton` (after Menten et al., ICCV 2023): the probabilities are
binarised (optionally with logistic noise, the reparameterisation trick, so that voxels
near 0.5 are sometimes in and sometimes out), thinned with simple-point deletion
(:mod:`.thinning`), and the result is ``binary * kept``. The gradient is the
straight-through one: d skeleton / d p = 1 on the skeleton's voxels, 0 elsewhere (the
deletion decisions are treated as constants; Menten et al. differentiate their Boolean
polynomial, whose derivative at binary inputs is what costs them memory). The skeleton
keeps the binarised prediction's components, loops and cavities exactly.

:func:`soft_skeleton` (Shit et al., clDice, CVPR 2021): iterated soft erosion and opening
with min/max pooling. Fast and smooth, but it does not keep topology (a ring's soft
skeleton is often broken): it is here as the clDice baseline.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import InputError
from .thinning import thin


def check_probabilities(values: torch.Tensor, name: str = "prediction") -> None:
    """InputError unless ``values`` is a floating tensor (..., D, H, W) within [0, 1]."""
    if not torch.is_tensor(values) or not values.is_floating_point():
        kind = str(values.dtype) if torch.is_tensor(values) else type(values).__name__
        raise InputError(f"The {name} is not a floating-point tensor", f"it is {kind}",
                         "pass probabilities (after a sigmoid or softmax) as float16/32/64")
    if values.dim() < 3 or min(values.shape[-3:]) < 1:
        raise InputError(f"The {name} is not a volume", f"its shape is {tuple(values.shape)}",
                         "pass a tensor shaped (B, C, D, H, W) or (D, H, W)")
    if values.numel() and (bool(values.min() < 0) or bool(values.max() > 1)):
        raise InputError(f"The {name} has values outside [0, 1]",
                         f"they range from {float(values.min()):g} to {float(values.max()):g}",
                         "apply a sigmoid (or softmax) to the network's logits first")


def binarise(probabilities: torch.Tensor, noise: float = 0.0,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """0/1 values with the straight-through gradient of ``probabilities``.

    ``noise`` > 0 adds logistic noise of that scale to the logits before thresholding
    (the reparameterisation trick): with 0 the threshold is plain ``p > 0.5``.
    """
    soft = probabilities
    if noise > 0:
        eps = torch.finfo(probabilities.dtype).eps
        p = probabilities.clamp(eps, 1 - eps)
        u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype).clamp(eps, 1 - eps)
        soft = torch.sigmoid(torch.logit(p) + noise * torch.logit(u))
    hard = (soft.detach() > 0.5).to(probabilities.dtype)
    return hard + soft - soft.detach()


def topological_skeleton(probabilities: torch.Tensor, iterations: Optional[int] = None, noise: float = 0.0,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The topology-preserving skeleton of ``probabilities`` (see module docstring).

    ``iterations`` bounds the layers peeled (None: until the skeleton is one voxel thin).
    """
    check_probabilities(probabilities)
    binary = binarise(probabilities, noise, generator)
    shape = binary.shape
    volumes = binary.detach().reshape(-1, *shape[-3:]) > 0.5
    kept = thin(volumes, iterations).reshape(shape)
    return binary * kept.to(binary.dtype)


def label_skeleton(label: torch.Tensor, iterations: Optional[int] = None) -> torch.Tensor:
    """The topology-preserving skeleton of a binary label (no gradient), as the label's dtype.

    Why a helper: skeleton recall and clDice need the label's skeleton once per sample;
    computing it once (in the data loader) is what makes skeleton recall cheap.
    """
    with torch.no_grad():
        binary = (label > 0.5)
        kept = thin(binary.reshape(-1, *label.shape[-3:]), iterations).reshape(label.shape)
    return kept.to(label.dtype if label.is_floating_point() else torch.float32)


def _soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Minimum over the 6-neighbourhood: the smallest of three 1-D minimum filters."""
    along = [-F.max_pool3d(-x, kernel, stride=1, padding=pad) for kernel, pad in
             (((3, 1, 1), (1, 0, 0)), ((1, 3, 1), (0, 1, 0)), ((1, 1, 3), (0, 0, 1)))]
    return torch.minimum(torch.minimum(along[0], along[1]), along[2])


def _soft_dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool3d(x, 3, stride=1, padding=1)


def soft_skeleton(probabilities: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """clDice's soft skeleton: what each soft erosion removes that its opening cannot restore, summed."""
    check_probabilities(probabilities)
    shape = probabilities.shape
    x = probabilities.reshape(-1, 1, *shape[-3:])
    skeleton = F.relu(x - _soft_dilate(_soft_erode(x)))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = F.relu(x - _soft_dilate(_soft_erode(x)))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton.reshape(shape)
