"""A mask seen on a coarser grid: how thick it is, its blocks, and distance bounds from them.

Why: a thick segment (an aorta at 0.5 mm, a blob of a few million voxels) costs what its
voxel count costs - thinning it voxel by voxel, and an exact distance to its wall from
points deep inside it (a k-d tree near the axis of a round tube finds the whole ring of
wall voxels almost equally near: 0.5 ms a query for a tube 40 voxels in radius). Neither
needs that resolution to find *where* the axis runs: a grid whose voxel is a fraction of
the radius keeps the shape, and the voxels there are counted in thousands. What needs the
full resolution (the axis to a fraction of a voxel, the radius to the lumen's edge) is then
measured on the full-resolution mask along a few rays (:mod:`.thick`, :mod:`.lumen_edge`).

Everything here is exact about what it claims: block reductions are exact, and the distance
bounds hold for every point (they come from which blocks are entirely inside).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .radius import BoundaryDistance


def typical_radius_mm(inside: np.ndarray, spacing_kji) -> float:
    """A mask's typical radius: twice its volume over its surface (mm).

    The surface is counted as voxel faces between object and background, which overstates a
    smooth surface (by 4/pi on a tube along an axis, 3/2 on a sphere), so this reads 0.8 of a
    tube's radius and 0.44 of a sphere's: an underestimate, on the safe side for choosing a
    coarser grid. 0 for an empty mask."""
    inside = np.asarray(inside, bool)
    spacing = np.asarray(spacing_kji, float)
    volume = float(np.count_nonzero(inside)) * float(np.prod(spacing))
    if volume == 0:
        return 0.0
    area = 0.0
    for axis in range(3):
        moved = np.moveaxis(inside, axis, 0)
        faces = np.count_nonzero(moved[1:] != moved[:-1]) + np.count_nonzero(moved[0]) + np.count_nonzero(moved[-1])
        area += faces * float(np.prod(np.delete(spacing, axis)))
    return 2.0 * volume / max(area, 1e-12)


def factors_for(size_mm: float, spacing_kji) -> np.ndarray:
    """Whole numbers of voxels per axis (kji) making a block about ``size_mm`` wide, at least 1."""
    return np.maximum(np.floor(size_mm / np.asarray(spacing_kji, float)), 1).astype(int)


def block_reduce(volume: np.ndarray, factors, fill, reduce: Callable[..., np.ndarray],
                 dtype=None) -> np.ndarray:
    """``reduce`` (np.min, np.max, np.sum, np.mean) over blocks of ``factors`` voxels (kji);
    the volume is padded with ``fill`` up to whole blocks. Block (c) covers voxels
    ``c * factors`` to ``c * factors + factors - 1``."""
    factors = np.asarray(factors, int)
    shape = np.asarray(volume.shape)
    blocks = -(-shape // factors)
    padded = np.full(blocks * factors, fill, dtype=volume.dtype)
    padded[:shape[0], :shape[1], :shape[2]] = volume
    # one axis at a time (each of these reductions is associative): three times faster than
    # one reduction over three strided axes
    out = padded
    for axis in range(3):
        n = out.shape
        out = reduce(out.reshape(n[:axis] + (blocks[axis], factors[axis]) + n[axis + 1:]), axis=axis + 1,
                     **({} if dtype is None else {"dtype": dtype}))
    return out


def block_centre(factors) -> np.ndarray:
    """Where block 0's centre lies in voxel indices (kji): block c's centre is ``c * factors`` plus this."""
    return (np.asarray(factors, float) - 1) / 2


class CoarseDistance:
    """Bounds on the distance (mm) from points to the nearest voxel centre *outside* a set,
    read from blocks of ``factors`` voxels instead of the voxels.

    Every voxel outside the set lies in a block that is not entirely inside, within half the
    block's diagonal (``slack``) of that block's centre, and every such block holds one: so
    the exact distance is within ``slack`` of the distance to the nearest such block centre.
    That holds for a point whose own block is entirely inside (then the nearest block not
    entirely inside touches the inside ones, which is what :class:`BoundaryDistance` finds);
    elsewhere the lower bound is 0. Voxels beyond the volume's faces do not count, as in
    :class:`BoundaryDistance`."""

    def __init__(self, inside: np.ndarray, spacing_kji, factors) -> None:
        self.factors = np.asarray(factors, int)
        spacing = np.asarray(spacing_kji, float)
        self.full = block_reduce(np.asarray(inside, bool), self.factors, True, np.min)
        self.slack = 0.5 * float(np.linalg.norm((self.factors - 1) * spacing))
        self._distance: Optional[BoundaryDistance] = (
            BoundaryDistance(self.full, spacing * self.factors) if self.full.any() else None)

    def __call__(self, points_kji: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds (mm) for (n, 3) points given in voxel indices (kji)."""
        points = np.asarray(points_kji, float).reshape(-1, 3)
        if self._distance is None:
            return np.zeros(len(points)), np.full(len(points), np.inf)
        coarse = (points - block_centre(self.factors)) / self.factors
        distance = self._distance(coarse)
        cell = np.round(coarse).astype(int)
        within = np.all((cell >= 0) & (cell < np.asarray(self.full.shape)), axis=1)
        own_full = np.zeros(len(points), bool)
        own_full[within] = self.full[tuple(cell[within].T)]
        low = np.where(own_full, np.maximum(distance - self.slack, 0.0), 0.0)
        return low, distance + self.slack
