"""Checks that a training label is worth training on: vessels, not a blob; enough of it to
validate. Torch-free, so they run (and fail) before anything heavy loads.

Why these rules: a label that is an organ or a lesion teaches a vessel network the wrong
thing without any error, and a Dice measured on a handful of voxels says nothing; both are
the user's mistake to hear about in one line before minutes of training.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import InputError

#: A label whose volume is below this many balls of its largest inscribed radius is a blob, not
#: vessels: a ball is 1, a cube 1.9, a tube 0.75 x its length / radius (a tube 4 radii long is 3).
MIN_TUBULARITY = 3.0
#: Validation on fewer vessel voxels than this measures nothing (one or two tiny pieces).
MIN_VALIDATION_VOXELS = 20


def tubularity(mask: np.ndarray, spacing_kji: Sequence[float]) -> tuple[float, float]:
    """(volume / volume of the ball of the largest inscribed radius, that radius in mm) of a mask.

    Why this measure: vessels are long and thin, so their volume is many times that of their
    thickest ball; an organ, a lesion or a box drawn by mistake is about one ball. It needs no
    skeleton, and it holds on any grid because both volumes are in cubic millimetres.
    """
    from ..distance import distance_mm

    padded = np.pad(mask, 1)  # the array's edge counts as outside
    radius = float(distance_mm(padded, spacing_kji).max())
    volume = float(np.count_nonzero(mask)) * float(np.prod(spacing_kji))
    return volume / (4.0 / 3.0 * math.pi * radius ** 3), radius


def refuse_blob(mask: np.ndarray, spacing_kji: Sequence[float], name: str) -> None:
    """InputError when a label looks like a blob rather than vessels (see :func:`tubularity`)."""
    ratio, radius = tubularity(mask, spacing_kji)
    if ratio < MIN_TUBULARITY:
        raise InputError(f"The label of {name} does not look like vessels",
                         f"it is a blob: its volume is {ratio:.1f} times that of its thickest ball ({radius:.1f} mm "
                         f"radius), a vessel tree is long and thin (at least {MIN_TUBULARITY:g} times)",
                         "give the vessel segment (not an organ or a lesion), or leave the pair out")
