"""Centerlines from a source to each target as minimal paths through the segment's voxels.

Why: with a source and targets the user asks for a few lines, not for the segment's whole
tree, and the whole tree (a thinning of every voxel, spur pruning, assembly) was 60 % of
the time from a segment to measured centerlines on the TotalSegmentator aorta. VMTK answers
the same question with a minimal path on its Voronoi diagram, whose cost is ``1 / radius``;
here the path runs through the segment's voxels themselves, each step costing its length
over the square of the distance to the wall, so the cheapest path keeps to the middle of the
lumen (where a loop gives two ways, the wider one wins) and never leaves the segment. The
line is then moved onto the lumen's centre and measured on the full grid as the thick path
does (:func:`.thick.centre_on_full_grid`: ellipses fitted to each section's interpolated
outline), which takes it from the voxel staircase to sub-voxel places.

The points: each is snapped to the segment's nearest voxel (refused, with the point named,
off the image, farther than ``snap_mm``, or on another piece of the segment than the
source, judged on the segment's own 26-connected pieces: :mod:`.endpoints` words every
refusal), climbs the distance map to the lumen's middle (no farther from where it was
snapped than the lumen's radius there), and the line's end is then carried back along the axis towards the point placed,
up to the lumen's end: a target placed at the end of a vessel (an open cut, a rounded tip)
ends the line there; one placed mid-vessel, beside the wall, ends it level with the point.

Masks of :data:`.thick.MIN_VOXELS` voxels or more take the whole-tree path instead (their
voxel graph would be large; the coarse grid there is already fast).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from ..distance import distance_mm
from ..image import Image, foreground_box, set_voxels
from ..progress import ProgressCallback, sub_progress
from .endpoints import (EndpointParameters, check_apart, components, nearest_segment_voxel, paths_tree,
                        refuse_coincident, unreachable)
from .graph import CenterlineGraph, GraphParameters, axes_meet, smooth_staircase
from .lumen_edge import LEVEL, LumenField, lumen_field
from .radius import affine, kji_to_lps, lps_to_kji
from .coarse import factors_for, typical_radius_mm
from .thick import CoarseGrid, centre_on_full_grid

#: The 13 neighbour offsets (kji) that, with their opposites, make 26-connectivity.
_STEPS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                   if (a, b, c) > (0, 0, 0)])
#: The longest climb from a snapped voxel to the lumen's middle, in voxels.
_CLIMB_LIMIT = 200
#: Blocks per typical radius of the coarse grid the paths are found on (see _coarse_grid).
BLOCKS_PER_TYPICAL_RADIUS = 3


class _Voxels:
    """The segment's voxels in its box: index, LPS position and distance to the wall (mm)."""

    def __init__(self, mask: Image) -> None:
        array = np.asarray(mask.array) != 0
        box = foreground_box(array, 1)
        self.low = np.array([s.start for s in box])
        inside = array[box]
        self.index = np.full(inside.shape, -1, np.int64)
        self.kji = set_voxels(inside)
        self.index[tuple(self.kji.T)] = np.arange(len(self.kji))
        self.spacing = np.asarray(mask.spacing[::-1], float)
        self.distance = distance_mm(inside, self.spacing)
        self.radii = self.distance[tuple(self.kji.T)].astype(float)
        self.points = kji_to_lps(mask, (self.kji + self.low).astype(float))

    def graph(self, spacing_kji: np.ndarray) -> csr_matrix:
        """Each pair of 26-neighbours joined both ways, costing the step's length over the
        square of the mean distance to the wall. Built row by row straight into CSR (a
        neighbour's index read through the padded index box: 26 gathers of the segment's
        voxels, not 13 slices of its whole box)."""
        padded = np.pad(self.index, 1, constant_values=-1)
        flat = np.ravel_multi_index(tuple((self.kji + 1).T), padded.shape)
        strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1])
        offsets = np.concatenate([_STEPS, -_STEPS])
        neighbours = padded.ravel()[flat[:, None] + offsets @ strides]  # (voxels, 26)
        lengths = np.linalg.norm(offsets * spacing_kji, axis=1)
        weight = 1.0 / np.maximum(self.radii, 1e-3) ** 2
        present = neighbours >= 0
        columns = neighbours[present]
        counts = np.count_nonzero(present, axis=1)
        # rows repeated and lengths tiled (contiguous), not masks of broadcast views: 15 % less
        rows = np.repeat(np.arange(len(flat)), counts)
        costs = np.tile(lengths, len(flat))[present.ravel()] * 0.5 * (weight[rows] + weight[columns])
        starts = np.concatenate([[0], np.cumsum(counts)])
        return csr_matrix((costs, columns, starts), shape=(len(flat), len(flat)))

    def climb(self, voxel_kji: np.ndarray) -> int:
        """From a voxel of the segment (full-image kji) up the distance map to a local maximum:
        the middle of the lumen level with it."""
        return int(self.index[tuple(climb(self.distance, np.asarray(voxel_kji) - self.low, self.spacing))])


def climb(distance: np.ndarray, start: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """From a voxel (kji in ``distance``) up a distance map (mm) to a local maximum level
    with it: the middle of the lumen it lies in."""
    here = start
    shape = np.array(distance.shape)
    for _ in range(_CLIMB_LIMIT):
        low, high = np.maximum(here - 1, 0), np.minimum(here + 2, shape)
        window = distance[tuple(slice(a, b) for a, b in zip(low, high))]
        best = np.array(np.unravel_index(int(np.argmax(window)), window.shape)) + low
        if distance[tuple(best)] <= distance[tuple(here)]:
            break
        # the middle level with the start lies within its lumen's radius: farther, the climb
        # would be running up a tapering vessel's ridge towards its parent
        if np.linalg.norm((best - start) * spacing) > distance[tuple(best)] + spacing.max():
            break
        here = best
    return here


def minimal_path_centerlines(mask: Image, endpoints: EndpointParameters,
                             parameters: GraphParameters = GraphParameters(),
                             progress: Optional[ProgressCallback] = None,
                             field: Optional[LumenField] = None) -> CenterlineGraph:
    """The centerlines from ``endpoints``' source to each of its targets (at least one), as a
    graph rooted at the source, with a radius at every point. ``field``: the segment's lumen
    field when the caller has it. Raises InputError naming a point that cannot end a line."""
    report = sub_progress(progress, 0.0, 1.0)
    report(0.0, "Finding the paths between the endpoints")
    refuse_coincident(mask, endpoints)
    array = np.asarray(mask.array)
    labels = components(mask)
    names = ["The source point", *(f"Target {n + 1} point" for n in range(len(endpoints.targets_lps)))]
    points = [endpoints.source_lps, *endpoints.targets_lps]
    found_at = [nearest_segment_voxel(p, name, mask, labels, endpoints.snap_mm) for p, name in zip(points, names)]
    for n, (point, (_, piece)) in enumerate(zip(endpoints.targets_lps, found_at[1:])):
        if piece != found_at[0][1]:  # before any grid: blocks could bridge two pieces closer than a block
            raise unreachable(f"Target {n + 1}", point)
    snapped = [voxel for voxel, _ in found_at]
    spacing = np.asarray(mask.spacing[::-1], float)
    field = field if field is not None else lumen_field(mask)
    centring = sub_progress(progress, 0.5, 0.95)
    graph = None
    grid = _coarse_grid(mask, array, spacing)
    if grid is not None:
        starts = [_block_of(grid, voxel, array, spacing) for voxel in snapped]
        found = _paths(grid.image, starts, points, strict=False) if all(s is not None for s in starts) else None
        if found is not None:
            report(0.5, "Centring the centerlines")
            graph = _centred(found, field, mask, spacing * grid.factors, parameters, centring)
            if not _inside_all_along(graph, array, mask):
                graph = None
    if graph is None:  # fine voxels: small masks, a point in a vessel too thin for blocks, a lost link, a shortcut
        found = _paths(mask, snapped, points, strict=True)
        report(0.5, "Centring the centerlines")
        graph = _centred(found, field, mask, 2 * spacing, parameters, centring)
    # radii as the whole-tree graph gives them: to the nearest voxel centre outside the lumen
    graph = replace(graph, branches=tuple(replace(b, radii_mm=field.nearest_wall(b.points_lps)[0])
                                          for b in graph.branches))
    report(1.0, "Centerlines between the endpoints done")
    return graph


def _centred(found: tuple[CenterlineGraph, dict[int, np.ndarray]], field: LumenField, mask: Image,
             block: np.ndarray, parameters: GraphParameters, progress: ProgressCallback) -> CenterlineGraph:
    """The paths moved onto the lumen's centre, junctions where the axes meet, ends level
    with their points."""
    graph, placed = found
    graph = centre_on_full_grid(graph, field, mask, block, parameters, progress, place_ends=False)
    return _carry_ends(_meet_at_junctions(graph), field, mask, placed)


def _inside_all_along(graph: CenterlineGraph, array: np.ndarray, mask: Image) -> bool:
    """Whether lines found on blocks stay on the segment's voxels all along (sampled every half
    voxel): a block half full bridges a gap narrower than half a block between two parts of
    one segment, and the cheapest path takes that shortcut. Else the caller finds the lines
    on the voxels."""
    step = 0.5 * float(min(mask.spacing))
    shape = np.asarray(array.shape)
    for branch in graph.branches:
        line = np.asarray(branch.points_lps, float)
        counts = np.maximum(np.ceil(np.linalg.norm(np.diff(line, axis=0), axis=1) / step).astype(int), 1)
        samples = np.vstack([_along_segments(line, counts), line[-1:]])
        kji = np.round(lps_to_kji(mask, samples)).astype(int)
        if np.any(kji < 0) or np.any(kji >= shape) or not np.all(array[tuple(kji.T)]):
            return False
    return True


def _along_segments(line: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``counts[n]`` points evenly along each segment n of a polyline, from its start (not
    its end): all segments at once, not a loop over them."""
    segment = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    fraction = (np.arange(len(segment)) - first) / counts[segment]
    start, end = line[:-1][segment], line[1:][segment]
    return start + (end - start) * fraction[:, None]


def _paths(image: Image, starts: list[np.ndarray], points: list, strict: bool,
           passes: int = GraphParameters().smoothing_passes) -> Optional[tuple[CenterlineGraph, dict[int, np.ndarray]]]:
    """The tree of minimal paths on ``image``'s voxels from ``starts[0]`` to the other starts
    (voxels, kji, each climbed to its lumen's middle first), the staircase smoothed, and the
    point placed for each free end (by node). A target unreachable or where another point is:
    refused when ``strict``, else None (the caller tries the fine grid)."""
    voxels = _Voxels(image)
    vertices = [voxels.climb(start) for start in starts]
    source, targets = vertices[0], vertices[1:]
    cost, previous = dijkstra(voxels.graph(np.asarray(image.spacing[::-1], float)), directed=True, indices=source,
                              return_predecessors=True)
    voxel = float(min(image.spacing))  # distinct voxels are at least this far apart: the same one is nearer
    for n, (point, vertex) in enumerate(zip(points[1:], targets)):
        gaps = np.linalg.norm(voxels.points[[source, *targets[:n]]] - voxels.points[vertex], axis=1)
        if not strict and (not np.isfinite(cost[vertex]) or np.any(gaps < voxel)):
            return None
        if not np.isfinite(cost[vertex]):
            raise unreachable(f"Target {n + 1}", point)
        check_apart(f"Target {n + 1}", point, gaps, voxel)
    graph = paths_tree(voxels, source, targets, previous)
    graph = replace(graph, branches=tuple(replace(b, points_lps=smooth_staircase(b.points_lps, passes, False))
                                          for b in graph.branches))
    at = {tuple(voxels.points[v]): np.asarray(p, float) for v, p in zip(vertices, points)}
    return graph, {n.id: at[tuple(n.position_lps)] for n in graph.nodes if len(n.branches) == 1}


def _coarse_grid(mask: Image, array: np.ndarray, spacing: np.ndarray) -> Optional[CoarseGrid]:
    """Blocks about a third of the segment's typical radius wide (a tube gets about four
    blocks per radius: the cheapest path keeps to the middle of the lumen on them, and the
    centring on the full grid moves each point by under half a block), or None when the
    segment is too thin for blocks of two voxels or more."""
    inside = array != 0
    box = foreground_box(inside, 0)
    if box is None:
        return None
    factors = factors_for(typical_radius_mm(inside[box], spacing) / BLOCKS_PER_TYPICAL_RADIUS, spacing)
    return CoarseGrid(mask, inside, box, factors) if factors.max() >= 2 else None


def _block_of(grid: CoarseGrid, voxel_kji: np.ndarray, array: np.ndarray, spacing: np.ndarray) -> Optional[np.ndarray]:
    """The inside block holding a fine voxel, or the nearest inside block next to it; None
    when there is none or the voxel lies in a vessel too thin for the blocks
    (:func:`_thin_for_blocks`)."""
    if _thin_for_blocks(grid, array, np.asarray(voxel_kji), spacing):
        return None
    block = (np.asarray(voxel_kji) - grid.low) // grid.factors
    shape = np.array(grid.inside.shape)
    low, high = np.maximum(block - 1, 0), np.minimum(block + 2, shape)
    near = np.argwhere(grid.inside[tuple(slice(a, b) for a, b in zip(low, high))]) + low
    if not len(near):
        return None
    return near[int(np.argmin(np.linalg.norm(near - block, axis=1)))]


#: Radius (blocks) under which a vessel holding an endpoint is followed on the voxels. Blocks
#: are a third of the typical radius; a vessel under one and a half blocks in radius is half
#: under a block wide (its blocks under half full) or so few blocks wide that the climb to
#: the middle on blocks runs on into its parent.
THIN_BLOCKS = 1.5


def _thin_for_blocks(grid: CoarseGrid, array: np.ndarray, voxel_kji: np.ndarray, spacing: np.ndarray) -> bool:
    """Is the vessel a voxel lies in (its radius where the climb from it on the voxels stops)
    narrower than ``THIN_BLOCKS`` blocks? Without this a point a voxel or two inside a side
    branch thinner than the blocks took the parent's nearest block, and its line ended in the
    parent (9 mm from the point on a 1.6 mm branch off a 16 mm trunk). The distances are
    taken in a window a few radii wide (beyond it counts as lumen: a distance there can only
    read long, which keeps the blocks)."""
    limit = THIN_BLOCKS * float((spacing * grid.factors).max())
    reach = np.ceil(3 * limit / spacing).astype(int)
    low = np.maximum(voxel_kji - reach, 0)
    high = np.minimum(voxel_kji + reach + 1, array.shape)
    distance = distance_mm(array[tuple(slice(a, b) for a, b in zip(low, high))] != 0, spacing)
    return bool(distance[tuple(climb(distance, voxel_kji - low, spacing))] < limit)


def _meet_at_junctions(graph: CenterlineGraph) -> CenterlineGraph:
    """Each junction moved to where its branches' centred axes meet (:func:`.graph.axes_meet`),
    and each branch's points within the junction's radius of it dropped: there the paths
    still run where they parted on the voxels, beside the lumen's middle (a section through
    a junction is no single lumen, so centring leaves it)."""
    nodes = {n.id: n for n in graph.nodes}
    branches = {b.id: b for b in graph.branches}
    for node in graph.bifurcations:
        members = [branches[b] for b in node.branches]
        away = [b.points_lps if b.start_node == node.id else b.points_lps[::-1] for b in members]
        radius = max(node.radius_mm, float(np.median(np.concatenate([b.radii_mm for b in members]))))
        meet = axes_meet(np.asarray(node.position_lps, float), radius, away)
        if meet is None:
            continue
        nodes[node.id] = replace(node, position_lps=meet)
        for branch, path in zip(members, away):
            keep = np.linalg.norm(path - meet, axis=1) > radius
            keep[-1] = True
            radii = branch.radii_mm if branch.start_node == node.id else branch.radii_mm[::-1]
            path, radii = np.vstack([meet, path[keep]]), np.append(radii[0], radii[keep])
            forward = branch.start_node == node.id
            branches[branch.id] = replace(branch, points_lps=path if forward else path[::-1],
                                          radii_mm=radii if forward else radii[::-1])
    return replace(graph, nodes=tuple(nodes[n.id] for n in graph.nodes),
                   branches=tuple(branches[b.id] for b in graph.branches))


def _carry_ends(graph: CenterlineGraph, field: LumenField, mask: Image,
                placed: dict[int, np.ndarray]) -> CenterlineGraph:
    """Each free end brought level with the point placed for it: carried on along its
    branch's axis when the point lies beyond it (not past the lumen's end), cut back when
    the path ran past it (its climb to the lumen's middle can drift along the vessel). Both
    ends of a branch are judged on the path as found, so a short line between two points
    keeps the stretch between them (never less than its two points nearest to them)."""
    step = float(min(mask.spacing))
    branches = []
    nodes = {n.id: n for n in graph.nodes}
    for branch in graph.branches:
        points, radii = branch.points_lps, branch.radii_mm
        ends = [(node, at_start) for node, at_start in ((branch.start_node, True), (branch.end_node, False))
                if node in placed and len(points) >= 3]
        directions, low, high = {}, 0, len(points)
        for node, at_start in ends:
            path = points[::-1] if at_start else points
            direction = _end_direction(path, step, float((radii[::-1] if at_start else radii)[-1]))
            if direction is None:
                continue
            directions[node] = direction
            keep = len(path)
            while keep > 2 and float((placed[node] - path[keep - 1]) @ direction) < 0:
                keep -= 1
            low, high = (len(points) - keep, high) if at_start else (low, keep)
        if high - low < 2:  # the two points lie within one step of the path: the two nearest them
            low = min(max((low + high) // 2 - 1, 0), len(points) - 2)
            high = low + 2
        points, radii = points[low:high], radii[low:high]
        for node, at_start in ends:
            if node not in directions:
                continue
            path, path_radii = (points[::-1], radii[::-1]) if at_start else (points, radii)
            extra = _extension(path[-1], directions[node], placed[node], field, mask, step, float(path_radii[-1]))
            path = np.vstack([path, extra])
            path_radii = np.append(path_radii, np.full(len(extra), path_radii[-1]))
            points, radii = (path[::-1], path_radii[::-1]) if at_start else (path, path_radii)
            nodes[node] = replace(nodes[node], position_lps=path[-1].copy())
        branches.append(replace(branch, points_lps=points, radii_mm=radii))
    return replace(graph, nodes=tuple(nodes[n.id] for n in graph.nodes), branches=tuple(branches))


def _end_direction(path: np.ndarray, step: float, radius: float) -> Optional[np.ndarray]:
    """The path's direction at its last point, over its last radius (two steps at least)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    back = int(np.argmin(np.abs(arc - (arc[-1] - max(radius, 2 * step)))))
    direction = path[-1] - path[back]
    length = float(np.linalg.norm(direction))
    return direction / length if length > 1e-9 else None


def _extension(end: np.ndarray, direction: np.ndarray, point: np.ndarray, field: LumenField, mask: Image,
               step: float, radius: float) -> np.ndarray:
    """Points past ``end`` along ``direction``: up to the point's place along it, inside the
    lumen; on to the image's border when that lies within a radius beyond (a vessel cut by
    the image ends on the cut, as the whole-tree path ends it). None when the point is not
    beyond the end."""
    beyond = float((point - end) @ direction)
    if beyond <= 0:
        return np.zeros((0, 3))
    fine = 0.25 * step
    along = np.arange(fine, beyond + radius + fine, fine)
    ray = end + along[:, None] * direction
    ijk = affine(ray, np.linalg.inv(mask.ijk_to_lps()))
    in_image = np.all((ijk >= 0) & (ijk <= np.asarray(mask.array.shape[::-1]) - 1), axis=1)
    stops = np.flatnonzero((field.sample(ray) < LEVEL) | ~in_image)
    first = int(stops[0]) if len(stops) else len(ray)
    cut_by_image = first < len(ray) and not in_image[first]
    last = first if cut_by_image else min(first, int(np.searchsorted(along, beyond, "right")))
    if last == 0 or (not cut_by_image and along[last - 1] < 0.5 * step):
        return np.zeros((0, 3))  # nothing, or less than half a step: the end is where the point is
    kept = np.unique(np.append(np.arange(0, last, max(int(round(step / fine)), 1)), last - 1))
    return ray[kept]
