"""The centerline graph of a thick mask: found on a coarser grid, measured on the full one.

Why: thinning costs what the mask's voxel count costs, and a thick segment (a 2-million-
voxel aorta or blob at 0.5 mm) took 20 s of it; VMTK takes a few seconds there. The
*shape* of such a mask - where its branches run, where they meet, which loops it has - is
already there on a grid whose voxel is a fraction of its radius, with a few thousand
voxels; only the axis to a fraction of a fine voxel and the radius to the lumen's edge need
the full resolution, and those are measured on the full-resolution mask along rays in the
plane across each centreline point, which costs what the centreline's length costs.

How:

1. **Coarse grid.** Blocks of whole voxels about a quarter of the mask's typical radius
   wide (:func:`.coarse.typical_radius_mm`, which underestimates: a tube gets a fifth);
   a block is inside when at least half its voxels are.
2. **Is it faithful?** The coarse mask is used only when it has the fine mask's topology
   (pieces, loops and cavities: Betti numbers), loses no part of it (every fine voxel lies
   in or next to a coarse voxel) and every branch found on it is at least
   ``MIN_BLOCKS_PER_RADIUS`` blocks in radius. Else the blocks are halved and tried again,
   down to the voxels themselves: then :func:`.graph.centerline_graph`'s voxel path runs as
   before. So thin vessels keep the full resolution, and a mask with a thin branch as well
   as a thick one is not coarsened below what that branch allows.
3. **Graph on the coarse grid**: the same thinning, tracing, spur pruning and geometry as
   the voxel path (:mod:`.graph`), the coarse mask's block fractions standing in for the
   mask where the ends are placed.
4. **Refined on the full grid**: each branch, resampled every finest spacing, is moved
   (twice) to the centre of the ellipse fitted to its lumen's outline in the plane across
   it (:func:`.subvoxel.fitted_ellipse` on the mask's interpolated edge,
   :mod:`.lumen_edge`), and its radius becomes that ellipse's smaller semi-axis: the largest
   circle inside the outline, measured to the interpolated edge (sub-voxel), as
   :mod:`.subvoxel` measures it. Where a section is open (a junction, a side branch's
   mouth) the point keeps its coarse place and radius; the ends stay where step 3 put them.

Masks under ``MIN_VOXELS`` voxels always take the voxel path: it takes about a second there.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
from scipy import ndimage

from ..image import Image, foreground_box
from ..progress import ProgressCallback, sub_progress
from .coarse import block_centre, block_reduce, factors_for, typical_radius_mm
from .frames import section_planes
from .graph import CenterlineGraph, GraphParameters, _assemble, _prune, _Ticker, resample
from .lumen_edge import LumenField, edge_distances, lumen_field, ray_directions
from .radius import BoundaryDistance, affine
from .skeleton import skeletonize, trace
from .subvoxel import RAYS, fitted_ellipse
from .topology import betti_numbers

#: Below this many voxels the voxel path runs (about a second or less there).
MIN_VOXELS = 250_000
#: Blocks per typical radius when choosing the coarse grid (the typical radius reads a tube's
#: radius short, so a tube gets about five blocks per radius).
BLOCKS_PER_TYPICAL_RADIUS = 4
#: The thinnest branch found on the coarse grid must be this many blocks in radius (median
#: along it), else the grid is refined: thinning a tube narrower than that in voxels puts its
#: centreline and junctions a good part of its radius off.
MIN_BLOCKS_PER_RADIUS = 3
#: Rounds of moving the points to their sections' centres.
CENTRING_PASSES = 2

_FULL = np.ones((3, 3, 3), bool)


def thick_centerline_graph(mask: Image, parameters: GraphParameters = GraphParameters(),
                           progress: Optional[ProgressCallback] = None) -> Optional[CenterlineGraph]:
    """The centerline graph of a thick mask from a coarser grid, or None when the mask is too
    thin or too small for one (the caller then runs the voxel path)."""
    array = np.asarray(mask.array) != 0
    if np.count_nonzero(array) < MIN_VOXELS:
        return None
    spacing = np.asarray(mask.spacing[::-1], float)
    box = foreground_box(array, 0)
    if box is None:
        return None
    factors = factors_for(typical_radius_mm(array[box], spacing) / BLOCKS_PER_TYPICAL_RADIUS, spacing)
    fine_betti: Optional[tuple[int, int, int]] = None
    while factors.max() >= 2:
        grid = _CoarseGrid(mask, array, box, factors)
        if grid.loses_nothing():
            if fine_betti is None:
                fine_betti = betti_numbers(array[box])
            if betti_numbers(grid.inside) == fine_betti:
                graph = _coarse_graph(grid, parameters, progress)
                if graph is not None:
                    return _refine(graph, lumen_field(mask), mask, parameters, sub_progress(progress, 0.85, 1.0))
        factors = np.maximum(factors // 2, 1)
    return None


class _CoarseGrid:
    """The mask on blocks of ``factors`` voxels (kji) covering its box grown by one block."""

    def __init__(self, mask: Image, array: np.ndarray, box: tuple[slice, ...], factors: np.ndarray) -> None:
        shape = np.asarray(array.shape)
        low = np.maximum(np.array([s.start for s in box]) - factors, 0)
        high = np.minimum(np.array([s.stop for s in box]) + factors, shape)
        region = array[tuple(slice(a, b) for a, b in zip(low, high))]
        self.factors = factors
        #: fine voxels set in each block, and the share of the block's voxels (inside the image) they make
        self.counts = block_reduce(region, factors, False, np.sum, dtype=np.int32)
        sizes = [np.minimum(factors[a], region.shape[a] - factors[a] * np.arange(self.counts.shape[a]))
                 for a in range(3)]
        self.fraction = (self.counts / np.einsum("i,j,k->ijk", *sizes)).astype(np.float32)
        self.inside = self.fraction >= 0.5
        centre_ijk = (low + block_centre(factors))[::-1]
        self.image = Image(self.inside.astype(np.uint8), tuple((np.asarray(mask.spacing[::-1]) * factors)[::-1]),
                           tuple(affine(centre_ijk[None], mask.ijk_to_lps())[0]), mask.direction_lps)

    def loses_nothing(self) -> bool:
        """Does every fine voxel of the mask lie in a coarse inside block or next to one? A
        vessel thinner than a block vanishes from the coarse mask and fails this."""
        near = ndimage.binary_dilation(self.inside, _FULL)
        return not bool(np.any((self.counts > 0) & ~near))


def _coarse_graph(grid: _CoarseGrid, parameters: GraphParameters,
                  progress: Optional[ProgressCallback]) -> Optional[CenterlineGraph]:
    """The graph of the coarse mask (points every block), or None when one of its branches is
    thinner than ``MIN_BLOCKS_PER_RADIUS`` blocks."""
    spacing = np.asarray(grid.image.spacing[::-1], float)
    if not grid.inside.any():
        return None
    distance = BoundaryDistance(grid.inside, spacing)
    skeleton = skeletonize(grid.image, sub_progress(progress, 0.0, 0.6), distance)
    nodes, edges = trace(skeleton, _Ticker(progress, 0.6, 0.65, "Tracing branches"))
    _prune(nodes, edges, spacing, parameters, _Ticker(progress, 0.65, 0.7, "Pruning spurs"), distance)
    thinnest = MIN_BLOCKS_PER_RADIUS * float(spacing.max())
    live = [e for e in edges if e.alive]
    radii = [float(np.median(distance(e.path))) for e in live] or \
        [n.radius for n in nodes if n.alive]
    if min(radii, default=0.0) < thinnest:
        return None
    sub_progress(progress, 0.7, 0.85)(0.0, "Smoothing centerlines and measuring radii")
    return _assemble(nodes, edges, grid.image, grid.fraction, distance, parameters)


def _refine(graph: CenterlineGraph, field: LumenField, mask: Image, parameters: GraphParameters,
            progress: ProgressCallback) -> CenterlineGraph:
    """Each branch resampled every finest spacing, its inner points moved to their sections'
    centres on the full-resolution lumen and its radii measured there (see the module's
    docstring); the ends stay."""
    progress(0.0, "Centring the centerlines on the full grid")
    step = float(min(mask.spacing))
    paths, radii = [], []
    for branch in graph.branches:
        points, r = resample(branch.points_lps, branch.radii_mm, step, 0.0)
        paths.append(points.copy())
        radii.append(np.asarray(r, float).copy())
    sizes = np.cumsum([0] + [len(p) for p in paths])
    rows = [slice(sizes[n], sizes[n + 1]) for n in range(len(paths))]
    points = np.concatenate(paths) if paths else np.zeros((0, 3))
    radius = np.concatenate(radii) if radii else np.zeros(0)
    inner = np.ones(len(points), bool)
    inner[sizes[:-1]] = False
    inner[np.maximum(sizes[1:] - 1, 0)] = False
    voxel = float(max(mask.spacing))
    for _ in range(CENTRING_PASSES):
        u, v = np.zeros_like(points), np.zeros_like(points)
        for part in rows:
            if part.stop - part.start >= 2:
                _, u[part], v[part] = section_planes(points[part], float(np.median(radius[part])))
        directions, angles = ray_directions(u, v, RAYS)
        distances = edge_distances(field, points, directions, 3.0 * radius + 2.0 * voxel,
                                   field.surely_inside(points))
        _, centre, semi = fitted_ellipse(distances, angles, field.edge_uncertainty(directions))
        shift = centre[:, :1] * u + centre[:, 1:] * v
        move = inner & np.isfinite(semi) & (np.linalg.norm(np.nan_to_num(shift, nan=np.inf), axis=1) < 0.5 * radius)
        points[move] += shift[move]
        radius[move] = semi[move]
    sigma = parameters.smoothing_voxels * voxel
    branches = []
    for branch, part in zip(graph.branches, rows):
        smoothed, r = resample(points[part], radius[part], step, sigma)
        branches.append(replace(branch, points_lps=_within(mask, smoothed), radii_mm=r))
    progress(1.0, "Centring the centerlines on the full grid")
    return replace(graph, branches=tuple(branches))


def _within(mask: Image, points_lps: np.ndarray) -> np.ndarray:
    """Points clipped to the image's extent (a coarse block at its border reaches past it)."""
    to_kji = np.linalg.inv(mask.ijk_to_lps())
    ijk = affine(points_lps, to_kji)
    clipped = np.clip(ijk, 0, np.asarray(mask.array.shape[::-1], float) - 1)
    if np.array_equal(clipped, ijk):
        return points_lps
    return affine(clipped, mask.ijk_to_lps())
