"""Binary morphology in millimetres, and the patient axes of a voxel grid.

Every size here is a physical length: a ball of radius r mm is the set of voxels whose
centre lies within r mm, measured with the voxel spacing (an exact Euclidean distance
transform, not an iterated 3x3x3 neighbourhood). A ball does not change under rotation, so
the same anatomy gets the same result on a 0.6 x 0.6 x 5 mm grid, a 3 mm isotropic one or
an oblique one. Arrays are indexed ``[k, j, i]``; spacings passed here are in that order.

Work is done on the mask's bounding box (grown by the radius), which keeps the distance
transforms cheap for small structures in large volumes; the transforms are the project's
one (:mod:`segforge.distance`, with its tolerance for distances equal to a radius).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ..distance import TIE_MM, distance_mm, within_mm
from ..image import Image, foreground_box

#: 6-connectivity (faces): used where thin walls must keep regions apart (air spaces).
FACE = ndimage.generate_binary_structure(3, 1)
#: 26-connectivity (faces, edges, corners).
FULL = np.ones((3, 3, 3), dtype=bool)


def spacing_kji(image: Image) -> np.ndarray:
    """Voxel size along the array axes ``(k, j, i)``."""
    return np.asarray(image.spacing[::-1], dtype=np.float64)


def axial_axis(image: Image) -> int:
    """The array axis closest to the patient's head-feet (S) direction: the one to slice along."""
    superior_part = np.abs(np.asarray(image.direction_lps)[2, :])  # columns are i, j, k
    return 2 - int(np.argmax(superior_part))


def superior_mm(image: Image, axis: int) -> np.ndarray:
    """Height (LPS z, mm) of each slice's centre along ``axis``: larger is more superior."""
    column = 2 - axis
    step = float(np.asarray(image.direction_lps)[2, column]) * image.spacing[column]
    centre = image.ijk_to_lps() @ np.r_[(np.asarray(image.shape_ijk) - 1) / 2.0, 1.0]
    count = image.array.shape[axis]
    return centre[2] + (np.arange(count) - (count - 1) / 2.0) * step


def _pad_voxels(radius_mm: float, spacing: np.ndarray) -> list[int]:
    return [int(np.ceil(radius_mm / s)) + 1 for s in spacing]


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Every voxel within ``radius_mm`` of the mask."""
    spacing = np.asarray(spacing, dtype=np.float64)
    box = foreground_box(mask, _pad_voxels(radius_mm, spacing))
    if box is None or radius_mm <= 0:
        return mask.copy()
    result = np.zeros_like(mask, dtype=bool)
    result[box] = within_mm(mask[box], radius_mm, spacing)
    return result


def erode_mm(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """The voxels deeper than ``radius_mm`` inside the mask.

    The image border does not count as outside: a body cut by the field of view is not
    eaten away from its cut faces.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    box = foreground_box(mask, 1)
    if box is None or radius_mm <= 0:
        return mask.copy()
    inside = mask[box]
    if inside.all():
        return mask.copy()
    result = np.zeros_like(mask, dtype=bool)
    result[box] = distance_mm(inside, spacing) > radius_mm + TIE_MM
    return result


def close_mm(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Bridge gaps narrower than about twice ``radius_mm``; never removes a voxel."""
    return mask | erode_mm(dilate_mm(mask, radius_mm, spacing), radius_mm, spacing)


def depth_mm(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) from each mask voxel to the nearest background voxel; 0 outside."""
    box = foreground_box(mask, 1)
    result = np.zeros(mask.shape, dtype=np.float64)
    if box is None:
        return result
    inside = mask[box]
    if inside.all():
        result[box] = np.inf
        return result
    result[box] = distance_mm(inside, spacing)
    return result


def planar_structure(axis: int, full: bool = False) -> np.ndarray:
    """Connectivity inside the slices across ``axis`` only (4- or 8-neighbours in the plane)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    index: list = [slice(None)] * 3
    index[axis] = 1
    structure[tuple(index)] = True if full else ndimage.generate_binary_structure(2, 1)
    return structure


def slice_holes(mask: np.ndarray, axis: int) -> tuple[np.ndarray, int]:
    """Label the holes of each slice across ``axis``: background the mask encloses in that slice.

    Returns ``(labels, count)``; each hole is one label (it never spans two slices). Done in
    one pass by labelling the background with in-plane connectivity, so no loop over slices.
    """
    labels, count = ndimage.label(~mask, structure=planar_structure(axis))
    if count == 0:
        return labels, 0
    touches_edge = np.zeros(count + 1, dtype=bool)
    for edge_axis in (a for a in range(3) if a != axis):
        for end in (0, -1):
            touches_edge[np.take(labels, end, axis=edge_axis)] = True
    touches_edge[0] = True
    relabel = np.cumsum(~touches_edge) * ~touches_edge
    return relabel[labels].astype(np.int32), int((~touches_edge).sum())


def fill_slice_holes(mask: np.ndarray, axis: int) -> np.ndarray:
    """The mask with every hole of every slice across ``axis`` filled."""
    labels, _ = slice_holes(mask, axis)
    return mask | (labels > 0)


def component_sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxel count of each label 0..count (index = label)."""
    return np.bincount(labels.ravel(), minlength=count + 1)


def keep_large_components(mask: np.ndarray, min_fraction_of_largest: float, min_voxels: int = 1,
                          structure: np.ndarray = FACE) -> np.ndarray:
    """Components at least ``min_fraction_of_largest`` of the largest one (and ``min_voxels``)."""
    labels, count = ndimage.label(mask, structure=structure)
    if count == 0:
        return mask.copy()
    sizes = component_sizes(labels, count)
    sizes[0] = 0
    keep = sizes >= max(min_voxels, min_fraction_of_largest * sizes.max())
    keep[0] = False
    return keep[labels]


def components_touching(mask: np.ndarray, seeds: np.ndarray, structure: np.ndarray = FULL) -> np.ndarray:
    """The components of ``mask`` that hold a seed voxel, with the seeds themselves."""
    grown = mask | seeds
    labels, count = ndimage.label(grown, structure=structure)
    keep = np.zeros(count + 1, dtype=bool)
    keep[labels[seeds]] = True
    keep[0] = False
    return keep[labels]


def smooth_mm(values: np.ndarray, sigma_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Gaussian smoothing with a physical width: the same noise reduction on every grid."""
    sigma = [sigma_mm / s for s in spacing]
    return ndimage.gaussian_filter(np.asarray(values, dtype=np.float32), sigma, mode="nearest", truncate=3.0)


def coarse_factors(spacing: Sequence[float], target_mm: float) -> tuple[int, ...]:
    """Integer block size per axis that brings voxels up to about ``target_mm`` (1 where
    they are already that large): decisions made at a scale of several mm need no finer grid."""
    return tuple(max(1, int(target_mm // float(s))) for s in spacing)


def block_reduce(values: np.ndarray, factors: Sequence[int], how: str = "all") -> np.ndarray:
    """Blocks of ``factors`` voxels reduced to one: ``all``/``any`` (masks) or ``mean``.
    Edge blocks are padded by repeating the last voxels."""
    if all(f == 1 for f in factors):
        return values.copy()
    pad = [(0, (-n) % f) for n, f in zip(values.shape, factors)]
    padded = np.pad(values, pad, mode="edge")
    shape = []
    for n, f in zip(padded.shape, factors):
        shape += [n // f, f]
    blocks = padded.reshape(shape)
    reduce = {"all": np.all, "any": np.any, "mean": np.mean}[how]
    return reduce(blocks, axis=(1, 3, 5))


def block_expand(coarse: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Undo :func:`block_reduce`: repeat each coarse voxel over its block, cropped to ``shape``."""
    fine = coarse
    for axis, f in enumerate(factors):
        if f > 1:
            fine = np.repeat(fine, f, axis=axis)
    return fine[tuple(slice(0, n) for n in shape)]
