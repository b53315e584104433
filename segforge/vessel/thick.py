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
   to the centre of the ellipse fitted to its lumen's outline in the plane across
   it (:func:`.subvoxel.fitted_ellipse` on the mask's interpolated edge,
   :mod:`.lumen_edge`), and its radius becomes that ellipse's smaller semi-axis: the largest
   circle inside the outline, measured to the interpolated edge (sub-voxel), as
   :mod:`.subvoxel` measures it. Where a section is not one closed lumen (near a junction,
   a side branch's mouth) the point keeps its coarse place and radius. Free ends are then
   placed again on the full grid, as the voxel path places them (:func:`_place_end`).

Masks under ``MIN_VOXELS`` voxels always take the voxel path: it takes about a second there.

The block size is not tuned to a case: with 3, 4 or 6 blocks per typical radius the mean
distance to the true axis moved by under 0.006 mm on each of six synthetic shapes (bent
tubes of radius 9-20 mm on isotropic and oblique grids, a ring, a tube cut by the image, a
Y bifurcation; 0.013-0.064 mm with 4); with 6 the oblique tube no longer got blocks of two
voxels and took the voxel path. Against the voxel path on the same shapes: 0.013 / 0.011 mm
(bent tube), 0.041 / 0.035 (ring), 0.050 / 0.047 (cut tube), 0.06 / 0.04 (Y bifurcation,
up to 0.65 mm within a radius of the junction, where points keep their coarse place).
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
from .lumen_edge import LEVEL, LumenField, edge_distances, lumen_field, ray_directions
from .radius import BoundaryDistance, across, affine
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
#: Rounds of moving the points to their sections' centres: one is enough (the fitted
#: ellipse's centre lies on the axis even in a plane the coarse path tilts; a second round
#: changed the mean distance to the true axis by under 0.002 mm on the test tubes).
CENTRING_PASSES = 1

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
        grid = CoarseGrid(mask, array, box, factors)
        if grid.loses_nothing():
            if fine_betti is None:
                fine_betti = betti_numbers(array[box])
            if betti_numbers(grid.inside) == fine_betti:
                graph, thinnest = _coarse_graph(grid, parameters, progress)
                if graph is not None:
                    return centre_on_full_grid(graph, lumen_field(mask), mask, spacing * factors, parameters,
                                               sub_progress(progress, 0.85, 1.0))
                # a branch too thin for these blocks: straight to blocks it allows (its radius
                # read on the blocks runs long, so this never skips a grid that would do)
                factors = np.minimum(factors, factors_for(thinnest / MIN_BLOCKS_PER_RADIUS, spacing) * 2)
        factors = np.maximum(factors // 2, 1)
    return None


class CoarseGrid:
    """The mask on blocks of ``factors`` voxels (kji) covering its box grown by one block."""

    def __init__(self, mask: Image, array: np.ndarray, box: tuple[slice, ...], factors: np.ndarray) -> None:
        shape = np.asarray(array.shape)
        low = np.maximum(np.array([s.start for s in box]) - factors, 0)
        high = np.minimum(np.array([s.stop for s in box]) + factors, shape)
        region = array[tuple(slice(a, b) for a, b in zip(low, high))]
        self.factors = factors
        #: the fine voxel (kji) at block 0's first corner: fine voxel v lies in block (v - low) // factors
        self.low = low
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


def _coarse_graph(grid: CoarseGrid, parameters: GraphParameters,
                  progress: Optional[ProgressCallback]) -> tuple[Optional[CenterlineGraph], float]:
    """The graph of the coarse mask (points every block), or None when one of its branches is
    thinner than ``MIN_BLOCKS_PER_RADIUS`` blocks; and the thinnest branch's radius (mm)."""
    spacing = np.asarray(grid.image.spacing[::-1], float)
    if not grid.inside.any():
        return None, 0.0
    distance = BoundaryDistance(grid.inside, spacing)
    skeleton = skeletonize(grid.image, sub_progress(progress, 0.0, 0.6), distance)
    nodes, edges = trace(skeleton, _Ticker(progress, 0.6, 0.65, "Tracing branches"))
    _prune(nodes, edges, spacing, parameters, _Ticker(progress, 0.65, 0.7, "Pruning spurs"), distance)
    thinnest = MIN_BLOCKS_PER_RADIUS * float(spacing.max())
    live = [e for e in edges if e.alive]
    radii = [float(np.median(distance(e.path))) for e in live] or \
        [n.radius for n in nodes if n.alive]
    if min(radii, default=0.0) < thinnest:
        return None, min(radii, default=0.0)
    sub_progress(progress, 0.7, 0.85)(0.0, "Smoothing centerlines and measuring radii")
    return _assemble(nodes, edges, grid.image, grid.fraction, distance, parameters), min(radii)


def centre_on_full_grid(graph: CenterlineGraph, field: LumenField, mask: Image, block: np.ndarray,
                        parameters: GraphParameters, progress: ProgressCallback,
                        place_ends: bool = True) -> CenterlineGraph:
    """Each branch resampled every finest spacing, its inner points moved to their sections'
    centres on the full-resolution lumen, its radii measured there and (``place_ends``) its
    free ends placed again on it (see the module's docstring); junctions stay where the
    coarse graph put them. ``block``: the coarse grid's spacing (kji mm), which bounds how far
    a point may move."""
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
    uses = np.bincount([n for b in graph.branches for n in (b.start_node, b.end_node)], minlength=len(graph.nodes))
    # a junction stays; a free end too when it is placed again below (its section is the cap)
    inner = np.ones(len(points), bool)
    for branch, first, last in zip(graph.branches, sizes[:-1], sizes[1:] - 1):
        inner[first] = not place_ends and uses[branch.start_node] == 1 and branch.start_node != branch.end_node
        inner[last] = not place_ends and uses[branch.end_node] == 1 and branch.start_node != branch.end_node
    moved = np.zeros(len(points), bool)
    voxel = float(max(mask.spacing))
    reach = float(np.linalg.norm(block)) / 2  # how far a coarse point can be off the axis: half a block's diagonal
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
        move = inner & np.isfinite(semi) & _simple(distances) & \
            (np.linalg.norm(np.nan_to_num(shift, nan=np.inf), axis=1) <= reach)
        points[move] += shift[move]
        radius[move] = semi[move]
        moved |= move
    progress(0.8, "Placing the ends on the full grid")
    ends: dict[int, tuple[np.ndarray, float]] = {}
    sigma = parameters.smoothing_voxels * voxel
    branches = []
    for branch, part in zip(graph.branches, rows):
        path, r, done = points[part], radius[part], moved[part]
        for node, at_start in ((branch.end_node, False), (branch.start_node, True)):
            if not place_ends or branch.start_node == branch.end_node or uses[node] != 1:
                continue  # a junction, a loop's node or a lone point: it stays
            placed = _place_end(field, mask, path[::-1] if at_start else path, r[::-1] if at_start else r,
                                done[::-1] if at_start else done)
            if placed is None:
                continue
            path, r, done = (placed[0][::-1], placed[1][::-1], placed[2][::-1]) if at_start else placed[:3]
            ends[node] = (path[0] if at_start else path[-1], placed[3])
        smoothed, r = resample(path, r, step, sigma)
        branches.append(replace(branch, points_lps=_within(mask, smoothed), radii_mm=r))
    nodes = tuple(replace(n, position_lps=_within(mask, ends[n.id][0][None])[0], radius_mm=ends[n.id][1])
                  if n.id in ends else n for n in graph.nodes)
    progress(1.0, "Centring the centerlines on the full grid")
    return replace(graph, nodes=nodes, branches=tuple(branches))


def _simple(distances: np.ndarray) -> np.ndarray:
    """Is each section a single closed lumen: every ray meets a wall within 1.5 times the
    median ray? Near a junction the plane also cuts the other branches and some rays run
    on; the fitted ellipse's centre is pulled there, so those points keep their place."""
    finite = np.all(np.isfinite(distances), axis=1)
    median = np.median(np.where(finite[:, None], distances, 0.0), axis=1)
    return finite & np.all(np.where(finite[:, None], distances, 0.0) <= 1.5 * median[:, None], axis=1)


def _place_end(field: LumenField, mask: Image, path: np.ndarray, radii: np.ndarray,
               centred: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """The free end of a branch (its last point) placed where the lumen ends, on the full
    grid, as :func:`.graph._place_ends` does on the voxels: along the centred axis out of the
    tip to the lumen's edge (level 0.5); a rounded end one radius before it (its cap's
    centre), a flat cut on the cut, an end cut by the image's border on the border. Returns
    the path, radii and centred flags with the points beyond the end dropped and the end
    appended, and the end's radius; None where the branch is too short to tell."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    from_tip = arc[-1] - arc
    typical = float(np.median(radii))
    near = (from_tip >= typical) & (from_tip <= 3 * typical) & centred
    if near.sum() < 2:
        return None
    radius = float(np.median(radii[near]))
    # from a centred point near the tip (near the cap's centre: a ray from there out and one
    # radius back lands near it whatever small error its direction has), but not the last
    # few, whose section planes the uncentred tip still tilts, along the chord over half a
    # radius behind it (on a curved vessel a longer chord turns away from the tangent)
    clear = centred & (from_tip >= max(4 * max(mask.spacing), 0.1 * radius))
    last = int(np.flatnonzero(clear)[-1]) if clear.any() else int(np.flatnonzero(near)[-1])
    back = int(np.argmin(np.abs(arc - (arc[last] - max(0.5 * radius, 2 * max(mask.spacing))))))
    direction = path[last] - path[back]
    if back >= last or np.linalg.norm(direction) < 1e-6:
        return None
    direction /= np.linalg.norm(direction)
    sample = 0.25 * float(min(mask.spacing))
    ray = path[last] + np.arange(0.0, from_tip[last] + 3 * radius + 2 * max(mask.spacing), sample)[:, None] * direction
    ijk = affine(ray, np.linalg.inv(mask.ijk_to_lps()))
    inside_image = np.all((ijk >= 0) & (ijk <= np.asarray(mask.array.shape[::-1]) - 1), axis=1)
    values = field.sample(ray)
    out = np.flatnonzero((values < LEVEL) | ~inside_image)
    if len(out) == 0 or out[0] == 0:
        return None
    first = int(out[0])
    if not inside_image[first]:
        end = ray[first - 1]
    else:
        fraction = (values[first - 1] - LEVEL) / max(float(values[first - 1] - values[first]), 1e-6)
        face = ray[first - 1] + fraction * sample * direction
        end = face if _flat(field, face, direction, radius) else face - radius * direction
    # beyond the last centred point keep only centred points short of the end (not the old tip)
    keep = (np.arange(len(path)) <= last) | (centred & ((path - end) @ direction < 0))
    return (np.vstack([path[keep], end]), np.append(radii[keep], radius), np.append(centred[keep], True), radius)


def _flat(field: LumenField, face: np.ndarray, direction: np.ndarray, radius: float) -> bool:
    """Is the lumen cut flat at ``face``? Probed as :func:`.graph._flat` does: 0.3 radius
    inside, a rounded cap is only 0.71 radius wide, a flat cut still the full width."""
    u, v = across(direction[None])
    angles = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
    ring = face - 0.3 * radius * direction + 0.8 * radius * (np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v)
    return bool(np.mean(field.sample(ring) >= LEVEL) >= 0.5)


def _within(mask: Image, points_lps: np.ndarray) -> np.ndarray:
    """Points clipped to the image's extent (a coarse block at its border reaches past it)."""
    to_kji = np.linalg.inv(mask.ijk_to_lps())
    ijk = affine(points_lps, to_kji)
    clipped = np.clip(ijk, 0, np.asarray(mask.array.shape[::-1], float) - 1)
    if np.array_equal(clipped, ijk):
        return points_lps
    return affine(clipped, mask.ijk_to_lps())
