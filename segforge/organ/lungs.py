"""Lungs and airway in a CT, from air spaces and their connectivity.

* Air is anything below -400 HU, halfway between lung parenchyma (about -850) and soft
  tissue (about +40): where a partial-volume voxel is more air than tissue.
* Air spaces are 6-connected components of air, so a one-voxel wall (diaphragm, bowel
  wall, skin) keeps them apart.
* Lung parenchyma is air mixed with tissue; bowel gas and outside air are pure air. A
  space where more than 40 % of the voxels are below -950 HU is gas, not lung.
* A lung-like space counts when it lies inside the body, or (a field of view that cuts the
  chest wall) when it is thick (a point 10 mm from its boundary). Pieces smaller than 10 %
  of the largest lung piece (or 5 ml) are dropped: small gas pockets look lung-like
  through partial volume.
* The airway starts at the trachea: a compact pure-air (< -900 HU) cross-section of
  1 to 9 cm2 near the body's midline, in the top 80 mm of the lungs' air space. It grows
  into pure air at increasingly permissive thresholds until the volume jumps (a leak
  into the lungs) or exceeds 300 ml, and must be at least 20 mm tall.
  Without a trachea in the field of view (an abdominal CT) there is no airway.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..progress import ProgressCallback, no_progress
from .morphology import FACE, FULL, component_sizes, depth_mm, dilate_mm, keep_large_components, slice_holes

AIR_HU = -400.0
PURE_AIR_HU = -950.0
#: Share of pure-air voxels above which an air space is gas, not lung.
GAS_FRACTION = 0.4
LUNG_MIN_ML = 5.0
LUNG_MIN_FRACTION = 0.1
#: A lung-like space outside the body mask (a cut chest wall) must be at least this deep.
LUNG_MIN_DEPTH_MM = 10.0
#: Holes in a lung slice up to this area are vessels and bronchial walls, filled in.
LUNG_HOLE_MM2 = 500.0

TRACHEA_HU = -900.0
TRACHEA_AREA_MM2 = (100.0, 900.0)
TRACHEA_SEARCH_MM = 80.0
#: The trachea's centre lies within this share of the body's equivalent diameter from its centre.
TRACHEA_MIDLINE_FRACTION = 0.25
AIRWAY_THRESHOLDS_HU = (-975.0, -960.0, -945.0, -930.0, -915.0, -900.0)
AIRWAY_MAX_ML = 300.0
AIRWAY_LEAK_FACTOR = 2.0
AIRWAY_MIN_HEIGHT_MM = 20.0
#: The partial-volume rim of the airway lumen (mm) that belongs to the airway, not the lungs.
AIRWAY_RIM_MM = 1.5


@dataclass(frozen=True)
class AirSpaces:
    """Boolean ``[k, j, i]`` masks; ``air`` is every voxel below :data:`AIR_HU` anywhere."""

    lungs: np.ndarray
    airway: np.ndarray
    air: np.ndarray


def air_spaces(hu: np.ndarray, body: np.ndarray, spacing: Sequence[float], axis: int,
               heights_mm: np.ndarray, progress: Optional[ProgressCallback] = None) -> AirSpaces:
    """Lungs and airway; ``heights_mm`` is each slice's height along ``axis`` (larger = superior)."""
    report = progress or no_progress
    spacing = np.asarray(spacing, dtype=np.float64)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    air = hu < AIR_HU
    lung_air = lung_like_spaces(hu, air, body, spacing)
    report(0.3, "Finding lungs and airway: the trachea")
    airway = np.zeros_like(air)
    seed = trachea_seed(hu, lung_air, body, spacing, axis, heights_mm)
    if seed is not None:
        airway = grow_airway(hu, lung_air, seed, voxel_ml, axis, heights_mm)
    if airway.any():
        airway = lung_air & (dilate_mm(airway, AIRWAY_RIM_MM, spacing)
                             | ndimage.binary_dilation(airway, structure=FULL))
    report(0.7, "Finding lungs and airway: the lungs")
    lungs = lung_air & ~airway
    lungs = keep_large_components(lungs, LUNG_MIN_FRACTION, int(np.ceil(LUNG_MIN_ML / voxel_ml)))
    lungs = fill_small_slice_holes(lungs, axis, LUNG_HOLE_MM2, spacing) & ~airway
    return AirSpaces(lungs=lungs, airway=airway, air=air)


def lung_like_spaces(hu: np.ndarray, air: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Air spaces that are lung (or airway connected to lung), not gas or outside air."""
    labels, count = ndimage.label(air, structure=FACE)
    if count == 0:
        return np.zeros_like(air)
    sizes = component_sizes(labels, count).astype(np.float64)
    inside = np.bincount(labels[body], minlength=count + 1)
    pure = np.bincount(labels[air & (hu < PURE_AIR_HU)], minlength=count + 1)
    sizes[0] = np.inf
    lung_like = (pure / sizes) <= GAS_FRACTION
    inside_body = inside / sizes > 0.5
    candidate = lung_like & ~inside_body
    if candidate[1:].any():  # lung-like air outside the body mask: only thick spaces are lung
        outside = candidate[labels]
        depth = ndimage.maximum(depth_mm(outside, spacing), labels, np.arange(count + 1))
        candidate &= np.asarray(depth) >= LUNG_MIN_DEPTH_MM
    keep = lung_like & (inside_body | candidate)
    keep[0] = False
    return keep[labels]


def trachea_seed(hu: np.ndarray, lung_air: np.ndarray, body: np.ndarray, spacing: np.ndarray,
                 axis: int, heights_mm: np.ndarray) -> Optional[np.ndarray]:
    """The trachea's cross-section (a one-slice boolean mask) in the topmost slice that has one."""
    occupied = np.flatnonzero(np.any(lung_air, axis=tuple(a for a in range(3) if a != axis)))
    if occupied.size == 0:
        return None
    top = heights_mm[occupied].max()
    in_plane = [a for a in range(3) if a != axis]
    pixel_mm2 = float(spacing[in_plane[0]] * spacing[in_plane[1]])
    for index in sorted(occupied, key=lambda n: -heights_mm[n]):
        if top - heights_mm[index] > TRACHEA_SEARCH_MM:
            break
        section = _trachea_in_slice(np.take(hu, index, axis) < TRACHEA_HU,
                                    np.take(lung_air, index, axis), np.take(body, index, axis),
                                    spacing[in_plane], pixel_mm2)
        if section is not None:
            seed = np.zeros_like(lung_air)
            where: list = [slice(None)] * 3
            where[axis] = index
            seed[tuple(where)] = section
            return seed
    return None


def _trachea_in_slice(pure: np.ndarray, lung_air: np.ndarray, body: np.ndarray,
                      pixel: np.ndarray, pixel_mm2: float) -> Optional[np.ndarray]:
    """The compact, midline pure-air region of one slice with a trachea's area, if any."""
    if not body.any():
        return None
    labels, count = ndimage.label(pure & lung_air, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return None
    body_centre = np.array(ndimage.center_of_mass(body)) * pixel
    body_diameter = np.sqrt(4.0 * body.sum() * pixel_mm2 / np.pi)
    best, best_distance = 0, np.inf
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        region = labels[box] == number
        area = region.sum() * pixel_mm2
        if not TRACHEA_AREA_MM2[0] <= area <= TRACHEA_AREA_MM2[1]:
            continue
        extent = np.array([box[0].stop - box[0].start, box[1].stop - box[1].start]) * pixel
        if area < 0.5 * extent.prod() or extent.max() > 2.5 * extent.min():  # not round: a lung sliver
            continue
        centre = (np.array(ndimage.center_of_mass(region)) + [box[0].start, box[1].start]) * pixel
        distance = float(np.linalg.norm(centre - body_centre))
        if distance <= TRACHEA_MIDLINE_FRACTION * body_diameter and distance < best_distance:
            best, best_distance = number, distance
    return labels == best if best else None


def grow_airway(hu: np.ndarray, lung_air: np.ndarray, seed: np.ndarray, voxel_ml: float,
                axis: int, heights_mm: np.ndarray) -> np.ndarray:
    """Pure air connected to the trachea, at the most permissive threshold that does not leak."""
    chosen = np.zeros_like(seed)
    previous_ml = 0.0
    for threshold in AIRWAY_THRESHOLDS_HU:
        lumen = lung_air & (hu < threshold)
        labels, _ = ndimage.label(lumen, structure=FACE)
        ids = np.unique(labels[seed & lumen])
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        region = np.isin(labels, ids)
        volume_ml = region.sum() * voxel_ml
        if volume_ml > AIRWAY_MAX_ML or (previous_ml > 5.0 and volume_ml > AIRWAY_LEAK_FACTOR * previous_ml):
            break
        chosen, previous_ml = region, volume_ml
    if not chosen.any():
        return chosen
    rows = np.flatnonzero(np.any(chosen, axis=tuple(a for a in range(3) if a != axis)))
    if np.ptp(heights_mm[rows]) < AIRWAY_MIN_HEIGHT_MM:
        return np.zeros_like(chosen)
    return chosen


def fill_small_slice_holes(mask: np.ndarray, axis: int, max_area_mm2: float,
                           spacing: Sequence[float]) -> np.ndarray:
    """Fill holes of each slice that are at most ``max_area_mm2`` (vessels inside a lung),
    leaving large ones (the mediastinum between two lungs that touch) open."""
    labels, count = slice_holes(mask, axis)
    if count == 0:
        return mask
    in_plane = [s for a, s in enumerate(spacing) if a != axis]
    areas = component_sizes(labels, count) * float(in_plane[0] * in_plane[1])
    fill = areas <= max_area_mm2
    fill[0] = False
    return mask | fill[labels]

