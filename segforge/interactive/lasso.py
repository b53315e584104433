"""Lassos: a closed contour drawn in one slice; what it encloses is the object in that slice.

A lasso is the only prompt that is both evidence and a rule. As evidence it is handed to
every backend as the prompts they already know (:func:`backend_prompts`): its inside as a
positive scribble, and the rest of its slice around it (the contour's bounding box grown by
BAND_MM) as a negative one, so the backend learns the object's look and where its edge lies,
notches included, without any backend knowing lassos. As a rule, the session stamps the
lassos onto the mask after the backend has answered (:func:`stamp_lassos`), in the order they
were drawn: within a positive lasso's bounding box its slice holds exactly what the positive
lassos of that slice enclose, and a negative lasso's inside is erased, whatever the backend
made of them. Beyond a lasso's box the backend's answer stands, so the object may go on in
that slice where the user did not draw.

The contour comes in patient millimetres like every prompt and is taken to the image's voxel
grid here, in the worker, so an oblique or anisotropic volume fills the voxels the user drew
around: the contour must lie in one slice of the volume (within half a voxel of one voxel
plane), and a voxel is inside when its centre is (non-zero winding, so a freehand contour
that crosses itself near its start still holds what it loops around).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..image import Image
from .prompts import LassoPrompt, VoxelLasso, VoxelPrompt, VoxelScribble, _continuous_kji, _outside_error

#: A positive lasso's slice is taught to the backend as background this far beyond the contour's
#: bounding box (and at least two voxels), so the backend's edge in that slice is the contour's.
BAND_MM = 3.0
#: How far (in voxels) a contour's corners may lie from the voxel plane it is taken to be in.
PLANE_TOLERANCE = 0.5 + 1e-3

_AXES = "kji"


def lasso_prompt(points_lps: np.ndarray, positive: bool = True, closed: bool = True) -> LassoPrompt:
    """A lasso from its contour's corners (LPS mm, N x 3), checked: closed, at least three
    distinct corners, finite. A last corner repeating the first is dropped (the contour closes
    by itself)."""
    points = np.asarray(points_lps, dtype=np.float64)
    if points.ndim != 2 or points.shape[1:] != (3,):
        raise InputError("A lasso's points are not a list of positions", f"their shape is {points.shape}",
                         "give the contour as [[x, y, z], ...] in millimetres")
    if not closed:
        raise InputError("The lasso is not closed", "an open curve does not enclose a region",
                         "draw a closed curve around the object (or use a scribble for an open stroke)")
    if not np.all(np.isfinite(points)):
        raise InputError("A lasso point is not a finite number", f"the contour has {len(points)} points",
                         "draw the lasso again on the volume")
    if len(points) > 1 and np.allclose(points[0], points[-1]):
        points = points[:-1]
    distinct = np.unique(np.round(points, 6), axis=0)
    if len(distinct) < 3:
        raise InputError("The lasso has fewer than 3 points", f"it has {len(distinct)} distinct points, and a "
                         "contour needs at least 3 to enclose anything",
                         "draw a closed contour around the object in one slice")
    return LassoPrompt(points, bool(positive))


def lasso_to_voxels(prompt: LassoPrompt, image: Image) -> VoxelLasso:
    """The voxels of the slice the contour lies in whose centres it encloses, and the band just
    outside them; InputError for a contour across several slices, off the image, or enclosing
    no voxel centre."""
    points = lasso_prompt(prompt.points_lps, prompt.positive).points_lps
    shape = image.array.shape
    kji = _continuous_kji(image, points)
    axis = int(np.argmin(np.ptp(kji, axis=0)))
    index = int(np.rint(np.median(kji[:, axis])))
    if np.max(np.abs(kji[:, axis] - index)) > PLANE_TOLERANCE:
        low, high = (int(v) for v in np.rint([kji[:, axis].min(), kji[:, axis].max()]))
        raise InputError(f"The lasso spans several slices ({_AXES[axis]} = {low} to {high})",
                         "a lasso says what the object is in one slice of the volume, and this contour was "
                         "drawn on a plane that cuts through several of them",
                         "draw it in a slice view that shows the volume's own slices (in Slicer: the slice "
                         "view's 'Rotate to volume plane')")
    if not 0 <= index < shape[axis]:
        raise _outside_error("lasso", points.mean(axis=0), image)
    plane = [a for a in range(3) if a != axis]
    inside_2d, origin = _fill(kji[:, plane], (shape[plane[0]], shape[plane[1]]))
    if not inside_2d.any():
        if np.any(_no_overlap(kji[:, plane], (shape[plane[0]], shape[plane[1]]))):
            raise _outside_error("lasso", points.mean(axis=0), image)
        raise InputError("The lasso encloses no voxel", "the contour is smaller than a voxel of the volume, or "
                         "has no area", "draw a larger contour around the object")
    inside = np.argwhere(inside_2d) + origin
    spacing = np.asarray(image.spacing[::-1], dtype=float)[plane]
    pad = np.maximum(np.ceil(BAND_MM / spacing), 2).astype(int)
    low = np.maximum(inside.min(axis=0) - pad, 0)
    high = np.minimum(inside.max(axis=0) + pad + 1, (shape[plane[0]], shape[plane[1]]))
    around = np.ones(tuple(high - low), bool)
    around[tuple((inside - low).T)] = False
    return VoxelLasso(_to_kji(inside, axis, index), _to_kji(np.argwhere(around) + low, axis, index), axis, index,
                      prompt.positive)


def backend_prompts(prompts: Sequence[VoxelPrompt], shape: Sequence[int]) -> list[VoxelPrompt]:
    """The prompts as a backend takes them: each lasso as scribbles (a positive lasso: its band
    as a negative scribble, then its inside as a positive one; a negative lasso: its inside as a
    negative scribble). A band never covers another positive lasso's inside."""
    insides = [np.ravel_multi_index(tuple(p.inside.T), shape) for p in prompts
               if isinstance(p, VoxelLasso) and p.positive]
    drawn = np.unique(np.concatenate(insides)) if insides else np.zeros(0, np.int64)
    out: list[VoxelPrompt] = []
    for prompt in prompts:
        if not isinstance(prompt, VoxelLasso):
            out.append(prompt)
        elif prompt.positive:
            band = prompt.band[~np.isin(np.ravel_multi_index(tuple(prompt.band.T), shape), drawn)]
            if len(band):
                out.append(VoxelScribble(band, False))
            out.append(VoxelScribble(prompt.inside, True))
        else:
            out.append(VoxelScribble(prompt.inside, False))
    return out


def lasso_box(prompts: Sequence[VoxelPrompt]) -> Optional[tuple[slice, slice, slice]]:
    """The box (k, j, i slices) holding every lasso's inside; None without lassos."""
    insides = [p.inside for p in prompts if isinstance(p, VoxelLasso)]
    if not insides:
        return None
    voxels = np.concatenate(insides)
    return tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(voxels.min(axis=0), voxels.max(axis=0)))  # type: ignore[return-value]


def stamp_lassos(target: np.ndarray, offset_kji: Sequence[int], prompts: Sequence[VoxelPrompt]) -> None:
    """Apply the lassos to ``target``, the mask's box at ``offset_kji``, in the order drawn: a
    positive one clears its bounding box in its slice of all but the positive lassos' insides
    there, then fills its inside; a negative one erases its inside (so a later lasso over an
    earlier one wins). ``target`` must hold every lasso's inside (see :func:`lasso_box`)."""
    offset = np.asarray(offset_kji)
    drawn = np.zeros(target.shape, bool)  # the positive lassos' insides
    for prompt in prompts:
        if isinstance(prompt, VoxelLasso) and prompt.positive:
            drawn[tuple((prompt.inside - offset).T)] = True
    for prompt in prompts:
        if not isinstance(prompt, VoxelLasso):
            continue
        local = prompt.inside - offset
        if prompt.positive:
            box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(local.min(axis=0), local.max(axis=0)))
            target[box] &= drawn[box].astype(target.dtype)
        target[tuple(local.T)] = 1 if prompt.positive else 0


# -- geometry -----------------------------------------------------------------------------------

def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid points (integer rows, columns) of ``shape`` inside ``polygon`` (continuous rows and
    columns, N x 2) by the non-zero winding rule, on a scanline per row: the mask over the
    polygon's bounding box (clipped to the grid) and that box's first row and column."""
    low = np.maximum(np.ceil(polygon.min(axis=0) - 1e-9), 0).astype(int)
    high = np.minimum(np.floor(polygon.max(axis=0) + 1e-9), np.asarray(shape) - 1).astype(int)
    if np.any(high < low):
        return np.zeros((0, 0), bool), low
    mask = np.zeros(tuple(high - low + 1), bool)
    start, end = polygon, np.roll(polygon, -1, axis=0)
    rising = end[:, 0] > start[:, 0]
    for row in range(low[0], high[0] + 1):
        # an edge crosses the row when the row lies in [lower end, upper end): a corner on the row counts once
        crosses = np.where(rising, (start[:, 0] <= row) & (row < end[:, 0]), (end[:, 0] <= row) & (row < start[:, 0]))
        if not crosses.any():
            continue
        a, b = start[crosses], end[crosses]
        columns = a[:, 1] + (row - a[:, 0]) * (b[:, 1] - a[:, 1]) / (b[:, 0] - a[:, 0])
        order = np.argsort(columns, kind="stable")
        columns, winding = columns[order], np.cumsum(np.where(rising[crosses], 1, -1)[order])
        for n in np.flatnonzero(winding[:-1] != 0):  # between crossing n and n + 1 the winding is not zero
            first = max(int(np.ceil(columns[n] - 1e-9)), low[1])
            last = min(int(np.ceil(columns[n + 1] - 1e-9)) - 1, high[1])
            if last >= first:
                mask[row - low[0], first - low[1]:last - low[1] + 1] = True
    return mask, low


def _no_overlap(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per in-plane axis: whether the polygon lies wholly off the grid along it."""
    return (polygon.max(axis=0) < -0.5) | (polygon.min(axis=0) > np.asarray(shape) - 0.5)


def _to_kji(points_2d: np.ndarray, axis: int, index: int) -> np.ndarray:
    """In-plane (row, column) grid points of slice ``index`` along ``axis`` as (N, 3) k, j, i."""
    return np.insert(points_2d, axis, index, axis=1).astype(np.int64)
