"""The patient's body in a CT: tissue that is thick enough, with the air it encloses.

Rules (all sizes in mm, see :mod:`segforge.organ.morphology`):

* tissue is anything above -500 HU (between air at -1000 and fat at -100);
* the table shell, blankets, cables and ECG leads are thin: they vanish when the tissue is
  eroded by 6 mm, while the trunk, head and limbs keep a thick core;
* cores smaller than 5 % of the largest are dropped (a table's thick base, a phantom); the
  kept cores grow back by 6 mm, but only into tissue, which restores the skin surface
  (the opening runs on blocks of about 2 mm: a 6 mm decision needs no finer grid);
* air enclosed in an axial slice (lungs, airway, bowel gas) is filled in.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from ..progress import ProgressCallback, no_progress
from .morphology import (block_expand, block_reduce, coarse_factors, components_touching, dilate_mm, erode_mm,
                         fill_slice_holes, keep_large_components)

#: Above this a voxel is tissue (or denser); below it, air or lung.
BODY_HU = -500.0
#: Parts thinner than twice this (mm) are not the patient.
BODY_OPENING_MM = 6.0
#: Thick parts smaller than this share of the largest one are not the patient either.
BODY_MIN_FRACTION = 0.05
#: The opening works on blocks of about this size (mm): a 6 mm decision needs no finer grid.
BODY_GRID_MM = 2.0


def body_mask(hu: np.ndarray, spacing: Sequence[float], axis: int,
              progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of the body, enclosed air included; ``hu`` lightly smoothed."""
    report = progress or no_progress
    tissue = hu > BODY_HU
    factors = coarse_factors(spacing, BODY_GRID_MM)
    coarse_spacing = np.asarray(spacing, dtype=np.float64) * factors
    coarse = block_reduce(tissue, factors, "all")
    core = erode_mm(coarse, BODY_OPENING_MM, coarse_spacing)
    if not core.any():  # a tiny or very thin image: nothing is thick, keep the largest piece
        core = coarse
    core = keep_large_components(core, BODY_MIN_FRACTION)
    report(0.4, "Finding the body: restoring the skin")
    grown = tissue & block_expand(dilate_mm(core, BODY_OPENING_MM, coarse_spacing), factors, tissue.shape)
    body = components_touching(grown, tissue & block_expand(core, factors, tissue.shape))
    if not body.any():  # nothing but partial blocks: fall back to the tissue itself
        body = keep_large_components(tissue, 1.0)
    report(0.8, "Finding the body: filling enclosed air")
    return fill_slice_holes(body, axis)

