"""Bones in a CT: dense seeds, grown into trabecular bone, with marrow cavities filled.

* Seeds are voxels above 250 HU (cortical bone, even at 3 mm partial volume) in pieces of
  0.1 ml or more; bone grows from them into voxels above 130 HU (trabecular bone of the
  spine and pelvis is 100-300 HU), inside the body only (so never into the table).
* A 4.5 mm closing bridges thin, blurred cortex; holes of each slice (along each of the
  three grid axes: a vertebral body whose thin cortex is open in its axial slice is closed
  in its sagittal one) are then filled when they look like marrow: red marrow (mean above
  60 HU) or fatty marrow (below -20 HU). Water-like holes (-20..60 HU) stay open: the
  spinal canal (cord and CSF) is not bone.
* Pieces smaller than 0.5 ml are dropped (vascular calcifications, noise).

Contrast medium makes blood (heart, aorta, large veins) and organs (kidneys, spleen) as
dense as bone. They are told apart by their inside: an enhanced region (> 150 HU) thick
enough to have a core 6 mm from its edge is a blood pool when nothing around the core is
much denser than the core (less than 100 HU above it at the 90th percentile), while a bone's
marrow core is wrapped in denser cortex. Blood pools are kept out of bone, and when they
hold 20 ml or more (a contrast scan), seeds must also be 150 HU denser than the blood, so
that smaller enhanced vessels do not seed bone. Thin dense vessels that touch no blood pool
(a dense bolus in a vein) can still come out as bone.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..image import grow_box
from ..progress import ProgressCallback, no_progress
from .morphology import (FACE, FULL, block_expand, block_reduce, close_mm, coarse_factors,
                         component_sizes, components_touching, dilate_mm, erode_mm, keep_large_components,
                         slice_holes)

BONE_SEED_HU = 250.0
BONE_LOW_HU = 130.0
BONE_CLOSING_MM = 4.5
#: Holes whose mean lies in this range hold water-like tissue (spinal canal), not marrow.
WATER_HOLE_HU = (-20.0, 60.0)
BONE_MIN_ML = 0.5
#: Dense specks smaller than this (a calcified plaque, noise in a bright vessel) seed nothing.
BONE_MIN_SEED_ML = 0.05

ENHANCED_HU = 150.0
BLOOD_CORE_MM = 6.0
BLOOD_MIN_CORE_ML = 1.0
#: A core whose surroundings are at most this much denser (90th percentile) is blood, not marrow.
CORTEX_CONTRAST_HU = 100.0
#: Blood pools at least this large mean a contrast scan: seeds must then be denser than blood.
CONTRAST_SCAN_ML = 20.0
BLOOD_SEED_MARGIN_HU = 150.0
#: Blood pools are found on blocks of about this size (mm).
BLOOD_GRID_MM = 2.0


def bone_mask(hu: np.ndarray, body: np.ndarray, spacing: Sequence[float],
              progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of bone (cortex and marrow); ``hu`` lightly smoothed."""
    report = progress or no_progress
    spacing = np.asarray(spacing, dtype=np.float64)
    blood, blood_hu = blood_pools(hu, body, spacing)
    allowed = body & ~blood
    seed_hu = BONE_SEED_HU if blood_hu is None else max(BONE_SEED_HU, blood_hu + BLOOD_SEED_MARGIN_HU)
    report(0.15, "Finding bones: growing from dense seeds")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    seeds = keep_large_components((hu > seed_hu) & allowed, 0.0, int(np.ceil(BONE_MIN_SEED_ML / voxel_ml)),
                                  structure=FULL)
    bone = components_touching((hu > BONE_LOW_HU) & allowed, seeds)
    report(0.3, "Finding bones: closing the cortex")
    bone = close_mm(bone, BONE_CLOSING_MM, spacing) & allowed
    report(0.8, "Finding bones: filling the marrow")
    bone = (fill_marrow(bone, hu, 0) | fill_marrow(bone, hu, 1) | fill_marrow(bone, hu, 2)) & allowed
    return keep_large_components(bone, 0.0, int(np.ceil(BONE_MIN_ML / voxel_ml)), structure=FULL)


def blood_pools(hu: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, Optional[float]]:
    """Contrast-enhanced blood and organs: ``(mask, median HU)`` when the pools are large
    enough to make this a contrast scan, else ``(mask, None)``; the mask is empty when no
    enhanced region has a blood-like core (a scan without contrast)."""
    factors = coarse_factors(spacing, BLOOD_GRID_MM)
    coarse_spacing = spacing * factors
    enhanced = (hu > ENHANCED_HU) & body
    coarse_enhanced = block_reduce(enhanced, factors, "all")
    coarse_hu = block_reduce(hu, factors, "mean")
    cores = erode_mm(coarse_enhanced, BLOOD_CORE_MM, coarse_spacing)
    labels, count = ndimage.label(cores, structure=FACE)
    min_voxels = BLOOD_MIN_CORE_ML * 1000.0 / float(np.prod(coarse_spacing))
    sizes = component_sizes(labels, count)
    reach = BLOOD_CORE_MM + 3.0
    pad = [int(np.ceil(reach / s)) + 1 for s in coarse_spacing]
    blood = np.zeros(count + 1, dtype=bool)
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or sizes[number] < min_voxels:
            continue
        box = grow_box(box, pad, labels.shape)
        core = labels[box] == number
        shell = dilate_mm(core, reach, coarse_spacing) & ~core & coarse_enhanced[box]
        values = coarse_hu[box]
        if not shell.any():
            continue
        blood[number] = np.percentile(values[shell], 90) - np.median(values[core]) < CORTEX_CONTRAST_HU
    pools = blood[labels]
    if not pools.any():
        return np.zeros_like(enhanced), None
    level = float(np.median(coarse_hu[pools]))
    region = dilate_mm(pools, BLOOD_CORE_MM + 2.0, coarse_spacing)
    mask = block_expand(region, factors, hu.shape) & enhanced
    pool_ml = float(pools.sum() * np.prod(coarse_spacing)) / 1000.0
    return mask, (level if pool_ml >= CONTRAST_SCAN_ML else None)


def fill_marrow(bone: np.ndarray, hu: np.ndarray, axis: int) -> np.ndarray:
    """Fill the holes of each slice across ``axis`` whose mean intensity is marrow-like, not water-like."""
    labels, count = slice_holes(bone, axis)
    if count == 0:
        return bone
    sums = np.bincount(labels.ravel(), weights=hu.ravel().astype(np.float64), minlength=count + 1)
    means = sums / np.maximum(component_sizes(labels, count), 1)
    fill = (means < WATER_HOLE_HU[0]) | (means > WATER_HOLE_HU[1])
    fill[0] = False
    return bone | fill[labels]
