"""From a vesselness response to a vessel mask: ROI, hysteresis, components, holes.

Pure numpy / scipy on whole arrays, one step per function, so each is testable alone.
Connectivity is 26 (face, edge or corner): a thin oblique vessel is a chain of voxels
that touch only at edges or corners, and must stay one component.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Image, foreground_box
from ..progress import ProgressCallback

if TYPE_CHECKING:
    from .parameters import VesselMaskParameters

_FULL = np.ones((3, 3, 3), dtype=bool)


def relative_reference(response: np.ndarray, where: Optional[np.ndarray] = None) -> float:
    """The 99th percentile of the positive responses (inside ``where``): what relative
    thresholds are relative to. Raises InputError when nothing responds."""
    values = response[where] if where is not None else response
    positive = values[values > 0]
    if positive.size == 0:
        raise InputError("No vessel-like structure was found",
                         "the vesselness filter gave no response anywhere in the volume",
                         "check that the volume is a CTA or MRA and that the radius range and "
                         "'bright vessels' setting match the vessels")
    return float(np.percentile(positive, 99.0))


def hysteresis(response: np.ndarray, high: float, low: float, allowed: Optional[np.ndarray] = None) -> np.ndarray:
    """Voxels with ``response >= low`` connected to one with ``response >= high`` (and > 0).

    ``allowed`` (a boolean array) excludes voxels from both, e.g. outside an intensity window.
    """
    candidates = (response >= low) & (response > 0)
    if allowed is not None:
        candidates &= allowed
    if low >= high:
        return candidates
    labels, count = ndimage.label(candidates, structure=_FULL)
    if count == 0:
        return candidates
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(labels[candidates & (response >= high)])] = True
    keep[0] = False
    return keep[labels]


def seed_indices(image: Image, seeds_lps: Sequence[Sequence[float]]) -> np.ndarray:
    """Continuous voxel coordinates ``(k, j, i)`` of LPS seed points; InputError when a
    seed lies outside the image."""
    seeds = np.asarray(seeds_lps, dtype=np.float64).reshape(-1, 3)
    homogeneous = np.c_[seeds, np.ones(len(seeds))]
    ijk = (np.linalg.inv(image.ijk_to_lps()) @ homogeneous.T).T[:, :3]
    kji = ijk[:, ::-1]
    shape = np.asarray(image.array.shape)
    outside = np.any((kji < -0.5) | (kji > shape - 0.5), axis=1)
    if outside.any():
        n = int(np.flatnonzero(outside)[0])
        raise InputError(f"Seed point {n + 1} lies outside the image",
                         f"it is at LPS {tuple(round(float(c), 1) for c in seeds[n])} mm",
                         "place the seeds inside the volume")
    return kji


def keep_components(mask: np.ndarray, spacing_kji: Sequence[float], seeds_kji: Optional[np.ndarray] = None,
                    search_mm: float = 0.0, largest: bool = False) -> np.ndarray:
    """The components of ``mask`` that touch a seed, or the largest one, or all.

    A seed touches a component when one of its voxels lies within ``search_mm`` of it
    (a click near a vessel's wall, or in a lumen the threshold left hollow, still counts).
    Raises InputError naming a seed that touches none.
    """
    if seeds_kji is None and not largest:
        return mask
    labels, count = ndimage.label(mask, structure=_FULL)
    if count == 0:
        return mask
    keep = np.zeros(count + 1, dtype=bool)
    if seeds_kji is not None and len(seeds_kji):
        for n, seed in enumerate(np.asarray(seeds_kji, dtype=np.float64).reshape(-1, 3)):
            label = _label_near(labels, seed, np.asarray(spacing_kji, dtype=np.float64), search_mm)
            if label == 0:
                raise InputError(f"No vessel was found at seed point {n + 1}",
                                 f"no mask voxel lies within {search_mm:.1f} mm of it",
                                 "place the seed inside a vessel, lower the threshold or widen the "
                                 "radius or intensity range")
            keep[label] = True
    else:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sizes[0] = 0
        keep[int(np.argmax(sizes))] = True
    return keep[labels]


def _label_near(labels: np.ndarray, seed_kji: np.ndarray, spacing_kji: np.ndarray, search_mm: float) -> int:
    """Label of the mask voxel nearest to the seed within ``search_mm`` (0: none)."""
    reach = np.maximum(np.ceil(search_mm / spacing_kji), 0).astype(int) + 1
    centre = np.rint(seed_kji).astype(int)
    low = np.maximum(centre - reach, 0)
    high = np.minimum(centre + reach + 1, labels.shape)
    window = labels[tuple(slice(a, b) for a, b in zip(low, high))]
    found = np.argwhere(window > 0)
    if found.size == 0:
        return 0
    distance = np.linalg.norm((found + low - seed_kji) * spacing_kji, axis=1)
    nearest = int(np.argmin(distance))
    # the voxel containing the seed always counts, however small the search distance
    if distance[nearest] > max(search_mm, 0.5 * math.sqrt(float(np.sum(spacing_kji ** 2)))):
        return 0
    return int(window[tuple(found[nearest])])


def seed_search_mm(spacing_kji: Sequence[float], parameters: "VesselMaskParameters") -> float:
    """How far from a seed a vessel still counts as touched: the smallest radius looked for,
    at least a voxel (a click near a wall, or in a lumen left hollow)."""
    return max(parameters.min_radius_mm, max(spacing_kji))


def segment_at_seeds(segment: Image, parameters: "VesselMaskParameters") -> Image:
    """A given vessel segment within the region of interest, and of it the components the
    seeds touch, by the same rules a mask model's mask is kept by (:func:`finish_mask`), so a
    box and seeds mean the same with a segment as with an image (the box was ignored with a
    segment: the whole segment was analysed); the segment as it is without either.
    InputError for a box holding none of the segment, a seed outside the volume, or one
    touching no component."""
    if parameters.roi_lps is None and not parameters.seeds_lps:
        return segment
    kept = np.asarray(segment.array) != 0
    if parameters.roi_lps is not None:
        kept = kept & roi_voxels(segment, parameters.roi_lps)
        if not kept.any():
            raise InputError("The region of interest holds none of the segment",
                             f"the box {tuple(round(float(c), 1) for c in parameters.roi_lps)} (LPS mm) "
                             "lies beside the segment's voxels", "move or grow the box onto the vessel, or remove it")
    if parameters.seeds_lps:
        spacing_kji = tuple(reversed(segment.spacing))
        seeds = seed_indices(segment, parameters.seeds_lps)
        kept = keep_components(kept, spacing_kji, seeds, seed_search_mm(spacing_kji, parameters))
    return segment.with_array(kept.astype(np.uint8))


def finish_mask(candidate: np.ndarray, spacing_kji: Sequence[float], in_roi: Optional[np.ndarray],
                seeds_kji: Optional[np.ndarray], parameters: "VesselMaskParameters", stage: ProgressCallback,
                refine: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> np.ndarray:
    """The steps every mask model's raw mask goes through, in order: the ROI, the
    components at the seeds (or the largest), an optional edge refinement (components
    chosen again after it), holes filled. ``stage`` names each step for the progress bar.
    """
    search = seed_search_mm(spacing_kji, parameters)

    def select(mask: np.ndarray) -> np.ndarray:
        if seeds_kji is not None:
            stage(0.93, "Vessel mask: components at the seeds")
            return keep_components(mask, spacing_kji, seeds_kji, search)
        if parameters.largest_component:
            stage(0.93, "Vessel mask: largest component")
            return keep_components(mask, spacing_kji, largest=True)
        return mask

    mask = select(candidate if in_roi is None else candidate & in_roi)
    if refine is not None:
        stage(0.94, "Vessel mask: lumen edge")
        mask = select(refine(mask))
    if parameters.fill_holes:
        stage(0.96, "Vessel mask: filling holes")
        mask = fill_holes(mask)
        if in_roi is not None:
            mask &= in_roi
    return mask


def roi_in_region(region: Image, inner: tuple[slice, slice, slice],
                  roi_lps: Optional[Sequence[float]]) -> Optional[np.ndarray]:
    """Boolean array over ``region``: the voxels inside the LPS box (None: no ROI, all count)."""
    if roi_lps is None:
        return None
    in_roi = np.zeros(region.array.shape, dtype=bool)
    in_roi[inner] = roi_voxels(region.crop(inner), roi_lps)
    return in_roi


def refine_to_lumen(intensity: np.ndarray, core: np.ndarray, spacing_kji: Sequence[float],
                    fraction: float = 0.5, sigma_mm: float = 4.0, reach_voxels: int = 2) -> np.ndarray:
    """Move the mask's edge onto the lumen edge seen in the intensities.

    Vesselness blurs: its mask is wider than the lumen. Here a voxel near the mask is lumen
    when its intensity passes ``fraction`` of the way (half maximum by default) from the
    local background (a shell around the mask) to the local lumen (the mask's eroded
    core), both Gaussian-weighted over ``sigma_mm`` so a bright aorta and a faint iliac
    each get their own edge. Bright lumen assumed (negate the intensities for dark
    vessels). Works on the mask's box only.
    """
    box = foreground_box(core, reach_voxels + 4)
    if box is None:
        return core
    values = intensity[box].astype(np.float32)
    mask = core[box]
    inner = ndimage.binary_erosion(mask)
    if not inner.any():
        return core
    shell = ndimage.binary_dilation(mask, iterations=3) & ~mask
    sigma = [sigma_mm / s for s in spacing_kji]
    weight_in = ndimage.gaussian_filter(inner.astype(np.float32), sigma)
    lumen = ndimage.gaussian_filter(values * inner, sigma) / np.maximum(weight_in, 1e-6)
    weight_out = ndimage.gaussian_filter(shell.astype(np.float32), sigma)
    background = ndimage.gaussian_filter(values * shell, sigma) / np.maximum(weight_out, 1e-6)
    edge = background + fraction * (lumen - background)
    near = ndimage.binary_dilation(mask, iterations=reach_voxels)
    refined = near & (values > edge) & (weight_in > 1e-3)
    result = np.zeros_like(core)
    result[box] = refined
    return result


#: How far (in noise standard deviations) a vessel's lumen must stand out from its
#: surroundings.
MIN_VESSEL_CNR = 4.0
#: The mask's level is its brightest quarter's edge (75th percentile): a mask wider than the
#: lumen (vesselness blurs; a 256^3 tree's mask was 2.4 times its lumen) still has its
#: lumen there. Pure noise then reaches 1.4-1.9, the bundled CTA 15, the CE-MRA 60.
INSIDE_PERCENTILE = 75.0


def contrast_to_noise(intensity: np.ndarray, mask: np.ndarray, within: Optional[np.ndarray] = None) -> float:
    """How many noise standard deviations the mask's bright part stands above a shell
    1-3 voxels out from it: relative thresholds always find *something*, even in pure
    noise, so this absolute test tells a vessel from chance. ``within`` (e.g. the ROI)
    bounds the shell and the noise estimate, so a vessel cut by it is not compared with
    its own continuation.

    The noise is the robust spread (median absolute deviation) of differences between
    neighbouring voxels, which edges and slow shading barely touch. A noise-free image
    gives +inf (or -inf when the mask is not brighter).
    """
    box = foreground_box(mask, 4)
    if box is None:
        return float("-inf")
    inside, values = mask[box], intensity[box].astype(np.float32)
    shell = ndimage.binary_dilation(inside, iterations=3) & ~ndimage.binary_dilation(inside)
    if within is not None:
        shell &= within[box]
    if not shell.any():
        return float("inf")
    contrast = float(np.percentile(values[inside], INSIDE_PERCENTILE) - np.median(values[shell]))
    noise = _noise_sd(intensity, within)
    if noise == 0.0:
        return math.copysign(float("inf"), contrast) if contrast else float("-inf")
    return contrast / noise


def _noise_sd(intensity: np.ndarray, within: Optional[np.ndarray]) -> float:
    """Robust noise SD from differences of neighbours along i (a sample of slices)."""
    step = max(1, intensity.shape[0] // 32)
    values = intensity[::step].astype(np.float32)
    differences = values[..., 1:] - values[..., :-1]
    if within is not None:
        pairs = within[::step]
        differences = differences[pairs[..., 1:] & pairs[..., :-1]]
    if differences.size == 0:
        return 0.0
    deviation = np.median(np.abs(differences - np.median(differences)))
    return 1.4826 * float(deviation) / math.sqrt(2.0)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the cavities the mask encloses completely (in 3D), working on its bounding box.

    A cavity is a face-connected piece of background that does not reach the box's
    border. Found by labelling the background once (several times faster than
    ``ndimage.binary_fill_holes``'s iterated dilations on 256^3).
    """
    box = foreground_box(mask)
    if box is None:
        return mask
    background = ~mask[box]
    labels, count = ndimage.label(background)
    if count == 0:
        return mask
    outside = np.zeros(count + 1, dtype=bool)
    for axis in range(3):
        for end in (0, -1):
            outside[np.unique(np.take(labels, end, axis=axis))] = True
    hole = ~outside
    hole[0] = False
    result = mask.copy()
    result[box] |= hole[labels]
    return result


def roi_crop(image: Image, roi_lps: Sequence[float], margin_voxels_kji: Sequence[int]
             ) -> tuple[tuple[slice, slice, slice], tuple[slice, slice, slice]]:
    """Where to compute for an LPS box: ``(crop, inner)`` slices.

    ``crop`` is the box's voxel bounding box grown by the filter's reach (clipped to the
    image), so the response inside the box sees the same neighbourhood as on the whole
    volume; ``inner`` is the box's bounding box within the crop. InputError when the box
    misses the image.
    """
    low, high = np.asarray(roi_lps[:3], float), np.asarray(roi_lps[3:], float)
    corners = np.array([[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1])
                        for z in (low[2], high[2])])
    kji = (np.linalg.inv(image.ijk_to_lps()) @ corners.T).T[:, 2::-1]
    shape = np.asarray(image.array.shape)
    first = np.maximum(np.ceil(kji.min(axis=0) - 1e-6).astype(int), 0)
    last = np.minimum(np.floor(kji.max(axis=0) + 1e-6).astype(int), shape - 1)
    if np.any(first > last):
        raise InputError("The region of interest misses the image",
                         f"the box {tuple(round(float(c), 1) for c in roi_lps)} (LPS mm) holds no voxel centre",
                         "move or grow the region of interest onto the volume")
    margin = np.asarray(margin_voxels_kji, dtype=int)
    start = np.maximum(first - margin, 0)
    stop = np.minimum(last + 1 + margin, shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
    inner = tuple(slice(int(a - s), int(b + 1 - s)) for a, b, s in zip(first, last, start))
    return crop, inner  # type: ignore[return-value]


def roi_voxels(image: Image, roi_lps: Sequence[float]) -> np.ndarray:
    """Boolean array: the voxels of ``image`` whose centres lie inside the LPS box."""
    shape = image.array.shape
    matrix = image.ijk_to_lps()
    low, high = np.asarray(roi_lps[:3], float), np.asarray(roi_lps[3:], float)
    inside = np.ones(shape, dtype=bool)
    k, j, i = (np.arange(n, dtype=np.float64) for n in shape)
    for axis in range(3):  # LPS coordinate = row . (i, j, k, 1), evaluated by broadcasting
        row = matrix[axis]
        coordinate = (row[0] * i[None, None, :] + row[1] * j[None, :, None]
                      + row[2] * k[:, None, None] + row[3])
        inside &= (coordinate >= low[axis] - 1e-6) & (coordinate <= high[axis] + 1e-6)
    return inside
