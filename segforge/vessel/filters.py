"""Tubularity measures from Hessian eigenvalues: Frangi and Sato, bright or dark vessels.

Each measure takes the eigenvalues sorted by value (largest, middle, smallest), as
:func:`segforge.vessel.hessian.symmetric_eigenvalues` returns them. A dark vessel is a
bright vessel of the negated image, whose eigenvalues are the negated ones in reverse
order, so each measure is written once, for bright vessels.

Frangi follows ITK's ``ObjectnessMeasureImageFilter`` with object dimension 1 (the
peer our benchmark compares against): zero unless the two largest-magnitude eigenvalues
are negative; ``Ra = |l2|/|l3|``, ``Rb = |l1|/sqrt(|l2 l3|)``, ``S^2 = sum l^2``.
"""
from __future__ import annotations

import torch


def bright_order(largest: torch.Tensor, middle: torch.Tensor, smallest: torch.Tensor,
                 bright: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues (by value) of the image, or of the negated image for dark vessels."""
    if bright:
        return largest, middle, smallest
    return smallest.neg_(), middle.neg_(), largest.neg_()


def frangi(largest: torch.Tensor, middle: torch.Tensor, smallest: torch.Tensor, *, bright: bool = True,
           alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0, floor: float = 0.0) -> torch.Tensor:
    """Frangi's vesselness in 0..1. Inputs may be overwritten.

    ``floor``: Hessians whose norm is below it are rounding noise (a flat region), not
    structure, and get no response.
    """
    l1, l2, l3 = bright_order(largest, middle, smallest, bright)
    # Bright line: l2 < 0 (so l3 <= l2 < 0) and |l1| <= |l2|, i.e. l1 + l2 <= 0.
    invalid = (l2 >= 0).logical_or_(torch.add(l1, l2) > 0)
    l1_squared = l1.square()
    structure = l2.square().add_(l1_squared).addcmul_(l3, l3)  # S^2
    if floor > 0:
        invalid.logical_or_(structure < floor * floor)
    # -(1 - exp(-x)) = expm1(-x): the two negative factors multiply to the positive product
    plate = (l2 / l3).square_().mul_(-0.5 / alpha ** 2).expm1_()
    blob = l1_squared.div_(l2.mul_(l3)).mul_(-0.5 / beta ** 2).exp_()
    noise = structure.mul_(-0.5 / gamma ** 2).expm1_()
    return plate.mul_(noise).mul_(blob).masked_fill_(invalid, 0.0)


def sato(largest: torch.Tensor, middle: torch.Tensor, smallest: torch.Tensor, *, bright: bool = True,
         alpha1: float = 0.5, alpha2: float = 2.0, floor: float = 0.0) -> torch.Tensor:
    """Sato's line filter, in intensity units (scale-normalised). Inputs may be overwritten.

    ``lc = -l2`` must be positive; the response is ``lc exp(-l1^2 / (2 (a lc)^2))`` with
    ``a = alpha1`` where ``l1 <= 0`` and ``alpha2`` where ``l1 > 0``.
    """
    l1, l2, _ = bright_order(largest, middle, smallest, bright)
    lc = l2.neg_()
    valid = lc > floor
    spread = torch.where(l1 > 0, alpha2, alpha1) * lc
    response = (l1 / spread).square_().mul_(-0.5).exp_().mul_(lc)
    return response.masked_fill_(~valid, 0.0)


MEASURES = {"frangi": frangi, "sato": sato}
