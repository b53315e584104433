"""Centerline graph of a vessel mask: endpoints, bifurcations and branches in LPS millimetres.

Why this shape: every later step (radius tables, markups curves per branch, stenosis
profiles, metrics) needs branches as *ordered* point lists with a radius per point and a
parent, in patient millimetres, whatever the grid. Built as:

1. a topology-preserving skeleton (:mod:`.skeleton`), medial in mm;
2. its voxel graph: voxels with two skeleton neighbours are branch interiors, every other
   voxel belongs to a node (touching node voxels form one node, so a thick crossing or a
   staircase corner is one bifurcation, not several);
3. spur pruning scaled by the local radius: a terminal branch shorter than
   ``prune_scale`` times the radius where it leaves its parent is a bump of the surface,
   not a vessel, and so is one whose tip never gets its own radius clear of its parent's
   wall (a lobe of the parent's lumen, such as a dissection's true lumen crescent; pruned
   shortest first, re-checked after every merge, so a junction is never left without the
   branches that make it a junction);
4. geometry in mm, independent of the grid: points moved onto the ridge of the exact
   distance map (sub-voxel), bifurcations where the branches' axes meet, free ends at the
   end of the lumen (a rounded end at its cap's centre, a cut end on the cut), light
   smoothing along each branch, and a radius at every point;
5. orientation away from the root (the widest end of each connected component, usually the
   inflow), which gives every branch its parent.

Several components, loops (a ring becomes a branch from a ``loop`` node back to itself),
one-voxel vessels and single isolated voxels all give a graph; an empty mask raises
:class:`InputError`. Every loop is bounded by the number of skeleton voxels: no hang.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..image import Image
from ..progress import ProgressCallback, sub_progress
from .radius import BoundaryDistance, across, kji_to_lps, recenter
from .skeleton import SkeletonChain, SkeletonNode, skeletonize, trace

ENDPOINT, BIFURCATION, LOOP = "endpoint", "bifurcation", "loop"


@dataclass(frozen=True)
class Node:
    """A branch end: ``endpoint`` (one branch), ``bifurcation`` (three or more) or ``loop``."""

    id: int
    kind: str
    position_lps: np.ndarray
    radius_mm: float
    branches: tuple[int, ...]
    component: int


@dataclass(frozen=True)
class Branch:
    """A vessel segment between two nodes: ordered points (LPS mm) and radius (mm) at each.

    Points run from ``start_node`` (the side nearer the root) to ``end_node``; ``parent`` is
    the branch that leads into ``start_node`` (None for branches leaving the root).
    """

    id: int
    points_lps: np.ndarray
    radii_mm: np.ndarray
    start_node: int
    end_node: int
    parent: Optional[int]
    component: int

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.diff(self.points_lps, axis=0), axis=1).sum())

    @property
    def is_loop(self) -> bool:
        return self.start_node == self.end_node


@dataclass(frozen=True)
class CenterlineGraph:
    """Nodes and branches of a vessel tree (or forest), in LPS millimetres."""

    nodes: tuple[Node, ...]
    branches: tuple[Branch, ...]
    #: Pieces of the mask too small to hold a branch (an isolated voxel or blob whose skeleton
    #: is one point: no length, no direction), left out of ``branches`` and counted here, so a
    #: summary can say what was dropped while its branch count matches the curves made.
    dropped_pieces: int = 0

    @property
    def endpoints(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind == ENDPOINT)

    @property
    def bifurcations(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind == BIFURCATION)

    @property
    def component_count(self) -> int:
        return len({n.component for n in self.nodes})

    @property
    def total_length_mm(self) -> float:
        return float(sum(b.length_mm for b in self.branches))

    def children(self, branch_id: int) -> tuple[Branch, ...]:
        return tuple(b for b in self.branches if b.parent == branch_id)

    def points_lps(self) -> np.ndarray:
        """All centreline points, (n, 3)."""
        return np.concatenate([b.points_lps for b in self.branches]) if self.branches else np.zeros((0, 3))

    def radii_mm(self) -> np.ndarray:
        return np.concatenate([b.radii_mm for b in self.branches]) if self.branches else np.zeros(0)


@dataclass(frozen=True)
class GraphParameters:
    """How spurs are told from vessels and how much the voxel staircase is smoothed.

    A terminal branch is a spur when its length (from the bifurcation to its tip) is below
    ``prune_scale`` times the vessel radius at the bifurcation (the parent's: the widest of
    the bifurcation's inscribed sphere and the other branches next to it) plus one voxel (the largest
    spacing: a one-slice bump on a thick-slice grid is never a vessel), or below
    ``min_length_mm``, or when its *reach* is too short: a vessel leaves its parent, so
    its centerline gets farther from the other branches at the bifurcation than the
    bifurcation's radius plus ``reach_scale`` times its own radius; the centerline of a
    bump or of a lobe of the parent's lumen (a dissection's true lumen beside the false
    one) stays inside the parent however long and curved it is. Measured (reach beyond the
    parent's radius, in the branch's own radii): the true-lumen lobe of the dissected
    TotalSegmentator aorta 0.0; real vessels 2.8 or more (the demo's side vessel on the
    left iliac 3.9, the CE-MRA iliacs 3.9-4.2, synthetic trees 5.4 or more). 1.0 is not
    tuned to them: it is the geometric boundary (the tip one own radius outside the wall).
    """

    prune_scale: float = 1.6
    min_length_mm: float = 0.0
    reach_scale: float = 1.0
    #: 1-2-1 passes over the voxel staircase before the points are moved onto the ridge
    smoothing_passes: int = 3
    #: Gaussian smoothing along the branch after that, in voxels (largest spacing): the
    #: ridge of a voxelised distance map jitters by a fraction of a voxel, which would add
    #: length and curvature that are not there
    smoothing_voxels: float = 0.5


def centerline_graph(mask: Image, parameters: GraphParameters = GraphParameters(),
                     progress: Optional[ProgressCallback] = None) -> CenterlineGraph:
    """The centerline graph of a binary vessel mask (nonzero = vessel), radii included."""
    from .thick import thick_centerline_graph  # here, not at the top: it builds on this module

    thick = thick_centerline_graph(mask, parameters, progress)
    if thick is not None:  # a thick mask, found on a coarser grid and measured on this one
        return thick
    array = np.asarray(mask.array) != 0
    spacing_kji = np.asarray(mask.spacing[::-1], float)
    report = sub_progress(progress, 0.0, 1.0)
    report(0.0, "Measuring distances in the vessel mask")
    distance = BoundaryDistance(array, spacing_kji)
    skeleton = skeletonize(mask, sub_progress(progress, 0.02, 0.8), distance)
    nodes, edges = trace(skeleton, _Ticker(progress, 0.8, 0.85, "Tracing branches"))
    _prune(nodes, edges, spacing_kji, parameters, _Ticker(progress, 0.85, 0.9, "Pruning spurs"), distance)
    report(0.9, "Smoothing centerlines and measuring radii")
    graph = _assemble(nodes, edges, mask, array.view(np.uint8), distance, parameters)
    report(1.0, "Centerline graph done")
    return graph


class _Ticker:
    """Reports progress at most every quarter second, so loops can call it every step.

    Each report is also where Cancel reaches the loop (the callback raises ``Cancelled``).
    """

    def __init__(self, progress: Optional[ProgressCallback], start: float, stop: float, message: str) -> None:
        self._report = sub_progress(progress, start, stop)
        self._message = message
        self._last = 0.0
        self(0.0)

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last >= 0.25:
            self._last = now
            self._report(fraction, self._message)


# --- pruning and merging -------------------------------------------------------------------


def _length(edge: SkeletonChain, spacing_kji: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(edge.path, axis=0) * spacing_kji, axis=1).sum())


def _reach(edges: list[SkeletonChain], index: int, junction: int, others: set[int],
           spacing_kji: np.ndarray, distance: BoundaryDistance, junction_radius: float) -> tuple[float, float]:
    """How far a terminal branch's centerline gets from the other branches at its junction
    (mm), and its own radius (median beyond the junction's sphere)."""
    edge = edges[index]
    path = (edge.path if edge.a == junction else edge.path[::-1]) * spacing_kji
    around = np.concatenate([edges[o].path for o in others]) * spacing_kji
    reach = float(cKDTree(around).query(path)[0].max())
    away = np.linalg.norm(path - path[0], axis=1) > junction_radius
    radii = distance(path[away] / spacing_kji) if away.any() else distance(path[-1:] / spacing_kji)
    return reach, float(np.median(radii))


def _parent_radius(edges: list[SkeletonChain], junction: int, others: set[int], node: SkeletonNode,
                   spacing_kji: np.ndarray, distance: BoundaryDistance, cache: dict[tuple[int, int], float]) -> float:
    """The radius of the vessel a terminal branch leaves: the junction's own (its widest
    voxel), or the widest of the other branches just beyond the junction's sphere when that
    is wider (the junction's voxels can sit off the parent's axis, pulled towards the
    side branch, where the inscribed sphere is smaller than the parent's lumen)."""
    width = node.radius
    centre = node.center * spacing_kji
    for other in others:
        if (other, junction) not in cache:
            path = edges[other].path * spacing_kji
            away = np.linalg.norm(path - centre, axis=1)
            near = (away >= node.radius) & (away <= 3 * node.radius)
            cache[(other, junction)] = float(np.median(distance(path[near] / spacing_kji))) if near.any() else 0.0
        width = max(width, cache[(other, junction)])
    return width


def _prune(nodes: list[SkeletonNode], edges: list[SkeletonChain], spacing_kji: np.ndarray,
           parameters: GraphParameters, tick: _Ticker, distance: BoundaryDistance) -> None:
    """Remove spurs (shortest relative to the local radius first) and merge pass-through nodes."""
    incident: list[set[int]] = [set() for _ in nodes]
    ends_at = [0] * len(nodes)  # branch ends at each node (a self-loop counts twice)
    lengths: list[float] = []

    def register(index: int) -> None:
        lengths.append(_length(edges[index], spacing_kji))
        for node in (edges[index].a, edges[index].b):
            incident[node].add(index)
            ends_at[node] += 1

    def add(edge: SkeletonChain) -> None:
        edges.append(edge)
        register(len(edges) - 1)

    def degree(node: int) -> int:
        return ends_at[node]

    def remove(index: int) -> None:
        edges[index].alive = False
        for node in (edges[index].a, edges[index].b):
            incident[node].discard(index)
            ends_at[node] -= 1

    for index in range(len(edges)):
        register(index)

    def merge(node: int) -> None:
        """Join the two branches through a node that no longer splits anything."""
        pair = sorted(incident[node])
        if len(pair) != 2:
            return  # a self-loop alone: the node becomes a loop node
        first, second = edges[pair[0]], edges[pair[1]]
        p = first.path if first.b == node else first.path[::-1]
        q = second.path if second.a == node else second.path[::-1]
        start = first.a if first.b == node else first.b
        end = second.b if second.a == node else second.a
        remove(pair[0])
        remove(pair[1])
        add(SkeletonChain(np.vstack([p, q[1:]]), start, end))
        nodes[node].alive = False

    # tiny self-loops (a ring inside one node's sphere) are voxel noise, not vessels
    for index, edge in enumerate(list(edges)):
        if edge.a == edge.b and degree(edge.a) > 2 and \
                lengths[index] < 2 * parameters.prune_scale * nodes[edge.a].radius:
            remove(index)
    voxel = float(np.max(spacing_kji))
    reaches: dict[tuple[int, int, frozenset], tuple[float, float]] = {}
    widths: dict[tuple[int, int], float] = {}
    for passes in range(len(edges) + 1):
        tick(1 - 1 / (passes + 1))
        for node in range(len(nodes)):
            if nodes[node].alive and degree(node) == 2:
                merge(node)
        detours = _detours(nodes, edges, lengths, parameters.prune_scale, voxel)
        for index in detours:
            remove(index)
        spurs = []
        for index, edge in enumerate(edges):
            if not edge.alive or edge.a == edge.b:
                continue
            ends = (degree(edge.a), degree(edge.b))
            if 1 in ends and max(ends) >= 3:
                junction = edge.a if ends[0] >= 3 else edge.b
                others = incident[junction] - {index}
                width = _parent_radius(edges, junction, others, nodes[junction], spacing_kji, distance, widths)
                length = lengths[index]
                limit = max(parameters.prune_scale * width + voxel, parameters.min_length_mm)
                if length < limit:
                    spurs.append((length / max(limit, 1e-9), index, junction))
                    continue
                key = (index, junction, frozenset(others))
                if key not in reaches:
                    reaches[key] = _reach(edges, index, junction, others, spacing_kji, distance,
                                          nodes[junction].radius)
                reach, own = reaches[key]
                if reach < width + parameters.reach_scale * own:
                    spurs.append((reach / (width + parameters.reach_scale * own), index, junction))
        if not spurs and not detours:
            break
        touched: set[int] = set()
        for _, index, junction in sorted(spurs):
            if junction in touched or degree(junction) < 3:
                continue
            tip = edges[index].b if edges[index].a == junction else edges[index].a
            remove(index)
            nodes[tip].alive = False
            touched.add(junction)


def _detours(nodes: list[SkeletonNode], edges: list[SkeletonChain], lengths: list[float],
             prune_scale: float, voxel: float) -> list[int]:
    """Branches that run beside a shorter one between the same two nodes, inside the same
    vessel: a tunnel through the mask (thick slices cutting an oblique vessel make them),
    not a second vessel. A real loop (a ring of vessels) is far longer than the vessel is
    wide; a detour is shorter than ``2 prune_scale`` radii plus a voxel. The shortest of
    the parallel branches stays."""
    between: dict[tuple[int, int], list[int]] = {}
    for index, edge in enumerate(edges):
        if edge.alive and edge.a != edge.b:
            between.setdefault((min(edge.a, edge.b), max(edge.a, edge.b)), []).append(index)
    found = []
    for (a, b), parallel in between.items():
        if len(parallel) < 2:
            continue
        limit = 2 * prune_scale * max(nodes[a].radius, nodes[b].radius) + voxel
        found += [index for index in sorted(parallel, key=lambda n: lengths[n])[1:] if lengths[index] < limit]
    return found


# --- millimetres, radii, orientation -------------------------------------------------------


def smooth_staircase(points: np.ndarray, passes: int, closed: bool) -> np.ndarray:
    """Moving-average smoothing of the voxel staircase; the two ends stay where they are."""
    points = points.copy()
    if len(points) < 3:
        return points
    for _ in range(passes):
        inner = (points[:-2] + 2 * points[1:-1] + points[2:]) / 4
        points[1:-1] = inner
        if closed and len(points) > 3:
            points[0] = points[-1] = (points[-2] + 2 * points[0] + points[1]) / 4
    return points


def resample(points: np.ndarray, radii: np.ndarray, step: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` mm along a polyline, Gaussian-smoothed (``sigma`` mm), ends kept.

    Beyond each end the curve is continued by point reflection (p(-s) = 2 p(0) - p(s)), so
    the ends stay put and straight ends stay straight.
    """
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if len(points) < 3 or arc[-1] <= step:
        return points.copy(), radii.copy()
    count = max(int(round(arc[-1] / step)), 2)
    where = np.linspace(0.0, arc[-1], count + 1)
    uniform = np.column_stack([np.interp(where, arc, points[:, d]) for d in range(3)])
    r = np.interp(where, arc, radii)
    width = sigma / (arc[-1] / count)
    if width > 0.3 and count >= 4:
        pad = min(int(np.ceil(4 * width)) + 1, count)
        head = 2 * uniform[0] - uniform[pad:0:-1]
        tail = 2 * uniform[-1] - uniform[-2:-pad - 2:-1]
        padded = np.vstack([head, uniform, tail])
        ends = uniform[[0, -1]]
        uniform = ndimage.gaussian_filter1d(padded, width, axis=0, mode="nearest")[pad:pad + count + 1]
        uniform[[0, -1]] = ends  # exactly on their nodes, shared with the neighbouring branches
    return uniform, r


def _place_junctions(nodes: list[SkeletonNode], edges: list[SkeletonChain], paths: list[np.ndarray],
                     incident: dict[int, list[int]], spacing_kji: np.ndarray) -> None:
    """Put each bifurcation where its branches' axes meet (in place: nodes and path ends).

    A skeleton's junction voxels are where thinning happened to stop, which on a 2 mm-slice
    grid can be a slice off. The branches' axes a little away from the junction are well
    placed (they were moved onto the ridge), so the point closest to all of them, by least
    squares, is the bifurcation; it is taken only when the axes are not parallel and it lies
    within the junction's radius of the skeleton's guess.
    """
    for node, members in incident.items():
        if len(members) < 3:
            continue
        centre = nodes[node].center * spacing_kji
        radius = max(nodes[node].radius, float(spacing_kji.max()))
        away = [(paths[e] if edges[e].a == node else paths[e][::-1]) * spacing_kji
                for e in members if edges[e].a != edges[e].b]
        meet = axes_meet(centre, radius, away)
        if meet is not None:
            nodes[node].center = meet / spacing_kji
            for e in members:
                if edges[e].a == node:
                    paths[e][0] = nodes[node].center
                if edges[e].b == node:
                    paths[e][-1] = nodes[node].center


def axes_meet(centre: np.ndarray, radius: float, paths: list[np.ndarray]) -> Optional[np.ndarray]:
    """The point closest to the axes of the branches leaving a junction (least squares), each
    axis fitted to its path (mm, starting at the junction) between one and 2.5 ``radius``
    from ``centre``; None when fewer than two axes are found, they are parallel, or the point
    lies farther than ``radius`` from ``centre``."""
    normal = np.zeros((3, 3))
    target = np.zeros(3)
    lines = 0
    for path in paths:
        away = np.linalg.norm(path - centre, axis=1)
        part = path[(away >= radius) & (away <= 2.5 * radius)]
        if len(part) < 3:
            continue
        middle = part.mean(axis=0)
        direction = np.linalg.svd(part - middle, full_matrices=False)[2][0]
        projector = np.eye(3) - np.outer(direction, direction)
        normal += projector
        target += projector @ middle
        lines += 1
    if lines < 2 or np.linalg.cond(normal) > 1e3:
        return None
    meet = np.linalg.solve(normal, target)
    return meet if np.linalg.norm(meet - centre) <= radius else None


def _place_ends(nodes: list[SkeletonNode], edges: list[SkeletonChain], paths: list[np.ndarray],
                incident: dict[int, list[int]], distance: BoundaryDistance, volume: np.ndarray) -> None:
    """Put each free end where the vessel ends (in place: nodes and paths).

    Where thinning stops inside an end depends on the grid (up to a slice on thick slices).
    The lumen's end does not: follow the branch's direction out of its tip to the lumen's
    edge (the mask interpolated, level 0.5). A rounded end (a vessel that tapers shut) ends
    one radius before that edge, at the centre of its cap's inscribed sphere; a vessel cut
    flat (by a region of interest, as VMTK's reference centerlines are) ends on the cut, and
    one cut by the image's border ends on the border.
    """
    spacing = distance.spacing_kji
    shape = np.asarray(volume.shape) - 1
    for node, members in incident.items():
        if len(members) != 1 or edges[members[0]].a == edges[members[0]].b:
            continue
        e = members[0]
        forward = edges[e].b == node  # the node is the path's last point
        path = (paths[e] if forward else paths[e][::-1]) * spacing
        if len(path) < 3:
            continue
        from_tip = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path[::-1], axis=0), axis=1))])[::-1]
        radii = distance(path / spacing)
        typical = float(np.median(radii))
        near = (from_tip >= typical) & (from_tip <= 3 * typical)
        radius = float(np.median(radii[near])) if near.sum() >= 2 else typical
        back = path[np.argmin(np.abs(from_tip - 2 * radius))]
        direction = path[-1] - back
        if np.linalg.norm(direction) < 1e-6:
            continue
        direction /= np.linalg.norm(direction)
        step = 0.25 * float(spacing.min())
        ray = path[-1] + np.arange(0.0, 3 * radius + 2 * spacing.max(), step)[:, None] * direction
        index = ray / spacing
        inside_image = np.all((index >= 0) & (index <= shape), axis=1)
        values = ndimage.map_coordinates(volume, index.T, order=1, mode="nearest", output=np.float32)
        out = np.flatnonzero((values < 0.5) | ~inside_image)
        if len(out) == 0 or out[0] == 0:
            continue
        first = out[0]
        if not inside_image[first]:
            end = ray[first - 1]
        else:
            fraction = (values[first - 1] - 0.5) / max(values[first - 1] - values[first], 1e-6)
            face = ray[first - 1] + fraction * step * direction
            end = face if _flat(volume, spacing, face, direction, radius) else face - radius * direction
        # drop the tip's points beyond the new end, then finish exactly on it; only near the tip
        # (where the ray looked): farther back, a curved vessel (the aorta from its root round
        # the arch and down to a cut) has points beyond that plane that are not past this end
        near_tip = from_tip <= 3 * radius + 2 * spacing.max() + np.linalg.norm(end - path[-1])
        keep = ((path - end) @ direction < 0) | ~near_tip
        keep[0] = True
        new_path = np.vstack([path[keep], end]) / spacing
        nodes[node].center = new_path[-1]
        paths[e] = new_path if forward else new_path[::-1]


def _end_width(node: int, edges: list[SkeletonChain], radii: list[np.ndarray],
               incident: dict[int, list[int]]) -> tuple[float, float, int]:
    """How wide the vessel is at a free end: its branch's median radius, then the mean radius
    of the quarter of the branch next to the end (the inflow is the widest end)."""
    e = incident[node][0]
    r = radii[e] if edges[e].a == node else radii[e][::-1]
    quarter = max(len(r) // 4, 1)
    return float(np.median(r)), float(np.mean(r[:quarter])), -node


def _flat(volume: np.ndarray, spacing: np.ndarray, face: np.ndarray, direction: np.ndarray,
          radius: float) -> bool:
    """Is the lumen cut flat at ``face``? Just inside it (0.3 radius deep) a rounded cap is
    only 0.71 radius wide; a flat cut still has the full width: probe at 0.8 radius."""
    u, v = across(direction[None])
    angles = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
    ring = face - 0.3 * radius * direction + 0.8 * radius * (np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v)
    values = ndimage.map_coordinates(volume, (ring / spacing).T, order=1, mode="constant", output=np.float32)
    return bool(np.mean(values >= 0.5) >= 0.5)


def _assemble(nodes: list[SkeletonNode], edges: list[SkeletonChain], mask: Image, volume: np.ndarray,
              distance: BoundaryDistance, parameters: GraphParameters) -> CenterlineGraph:
    """The typed graph: refined geometry, radii, components, roots, parents and ids."""
    live_edges = [e for e in edges if e.alive]
    used = sorted({e.a for e in live_edges} | {e.b for e in live_edges})
    # a lone node (isolated voxel or blob: a stray island of a segment) is too short to have a
    # length or a direction; reported as a one-point "branch" it made zero-length rows and a
    # branch count above the curves made, so it is counted as a dropped piece instead
    dropped = sum(1 for i, n in enumerate(nodes) if n.alive and i not in set(used))
    if not live_edges:
        return CenterlineGraph((), (), dropped)
    incident: dict[int, list[int]] = {i: [] for i in used}
    for index, edge in enumerate(live_edges):
        incident[edge.a].append(index)
        if edge.b != edge.a or len(edge.path) > 1:
            incident[edge.b].append(index)

    paths = recenter(distance, [smooth_staircase(e.path, parameters.smoothing_passes, e.a == e.b and len(e.path) > 1)
                                for e in live_edges])
    _place_junctions(nodes, live_edges, paths, incident, distance.spacing_kji)
    _place_ends(nodes, live_edges, paths, incident, distance, volume)
    sizes = np.cumsum([0] + [len(p) for p in paths])
    all_radii = distance(np.concatenate(paths))
    radii = [all_radii[sizes[k]:sizes[k + 1]] for k in range(len(paths))]
    centers = distance(np.array([nodes[i].center for i in used]).reshape(-1, 3))
    node_radius = {i: float(r) for i, r in zip(used, centers)}
    step, sigma = float(min(mask.spacing)), parameters.smoothing_voxels * float(max(mask.spacing))

    # components and roots: the widest endpoint (else the widest node) of each component
    index_of = {node: k for k, node in enumerate(used)}
    rows = [index_of[e.a] for e in live_edges]
    cols = [index_of[e.b] for e in live_edges]
    adjacency = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(used), len(used)))
    _, component_of = connected_components(adjacency, directed=False)
    lengths = np.array([_length(e, np.asarray(mask.spacing[::-1])) for e in live_edges])
    component_length = np.bincount(component_of[rows], weights=lengths, minlength=component_of.max() + 1)
    rank = {c: r for r, c in enumerate(np.argsort(-component_length, kind="stable").tolist())}

    new_branch: dict[int, int] = {}
    orientation: dict[int, bool] = {}
    parent_of: dict[int, Optional[int]] = {}
    node_order: list[int] = []
    for component in sorted(rank, key=rank.get):
        members = [n for n in used if rank[component_of[index_of[n]]] == rank[component]]
        ends = [n for n in members if len(incident[n]) == 1]
        root = max(ends, key=lambda n: _end_width(n, live_edges, radii, incident)) if ends else \
            max(members, key=lambda n: (node_radius[n], -n))
        queue: deque[tuple[int, Optional[int]]] = deque([(root, None)])
        seen = {root}
        node_order.append(root)
        while queue:
            node, arrived_by = queue.popleft()
            for e in sorted(incident[node], key=lambda e: -float(np.mean(radii[e]))):
                if e in new_branch:
                    continue
                edge = live_edges[e]
                new_branch[e] = len(new_branch)
                orientation[e] = edge.a == node
                parent_of[e] = arrived_by
                other = edge.b if edge.a == node else edge.a
                if other not in seen:
                    seen.add(other)
                    node_order.append(other)
                    queue.append((other, new_branch[e]))

    node_id = {n: i for i, n in enumerate(node_order)}
    branches: list[Optional[Branch]] = [None] * len(new_branch)
    for e, b in new_branch.items():
        edge, forward = live_edges[e], orientation[e]
        points_kji, r = (paths[e], radii[e]) if forward else (paths[e][::-1], radii[e][::-1])
        start, end = (edge.a, edge.b) if forward else (edge.b, edge.a)
        points, r = resample(kji_to_lps(mask, points_kji), np.asarray(r, float), step, sigma)
        branches[b] = Branch(b, points, r, node_id[start], node_id[end], parent_of[e],
                             rank[component_of[index_of[edge.a]]])
    node_branches: dict[int, list[int]] = {n: [] for n in node_order}
    for branch in branches:
        node_branches[node_order[branch.start_node]].append(branch.id)
        if branch.end_node != branch.start_node or len(branch.points_lps) > 1:
            node_branches[node_order[branch.end_node]].append(branch.id)
    result_nodes = []
    for n in node_order:
        count = len(node_branches[n])
        loop_only = count == 2 and len(set(node_branches[n])) == 1
        kind = LOOP if loop_only else (BIFURCATION if count >= 3 else ENDPOINT)
        result_nodes.append(Node(node_id[n], kind, kji_to_lps(mask, nodes[n].center[None])[0],
                                 node_radius[n], tuple(sorted(set(node_branches[n]))),
                                 rank[component_of[index_of[n]]]))
    return CenterlineGraph(tuple(result_nodes), tuple(branches), dropped)
