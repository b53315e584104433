"""Centerlines between chosen endpoints: from a source point to each target, as VMTK does.

Why: the whole tree of a segment holds every side branch and every vessel the segment
touches; a user who asks for "the aorta from its root to the cut" or "the aorta and both
iliacs" places a source and targets, as in VMTK's Extract Centerline. The answer here is
the same kind: the paths from the source to each target, split into branches where the
paths part, so a source at the top of the aorta and targets at the ends of both iliacs
give three branches.

How: the centerline graph of the segment (:mod:`.graph`, after the topology clean-up) is
already the segment's medial axis with a radius at every point, so the paths are taken on
it, not recomputed: each point is snapped to the nearest centerline point of the piece of
the segment it lies in, and the path from the source to each target minimises the
integral of ``1 / radius`` along the centerline (VMTK's cost: where a loop gives two ways,
the wider lumen wins; on a tree it is the only path). The paths share their start and form
a tree rooted at the source; a new branch starts wherever they part and at every target.

Refused, with the point named in LPS mm (never a silent zero-length line): a point outside
the image, a point farther than ``snap_mm`` from the segment, a target in another piece of
the segment than the source (not reachable inside it), a target that snaps onto the
source or onto another target, and targets without a source.

The pipeline takes this module's paths for a source alone and for segments of
:data:`.thick.MIN_VOXELS` voxels or more; with targets on a smaller segment it finds them
as minimal paths through the voxels instead (:mod:`.minimal_path`: no whole tree needed),
with the same refusals (:func:`nearest_segment_voxel`, :func:`unreachable`, :func:`check_apart`).

A source alone: the paths from it to every free end of its piece of the segment (VMTK's
"open profiles" as targets), which is that piece's tree rooted at the source; ends closer
to the source than twice its radius are the end it was placed in, not a vessel. No
endpoints: the graph as it is, rooted at the widest end of each component.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from ..components import label
from ..errors import InputError
from ..image import Image, foreground_box
from .graph import BIFURCATION, ENDPOINT, Branch, CenterlineGraph, Node
from .radius import lps_to_kji

Point = tuple[float, float, float]
#: How far outside the segment a placed point (source, target, landmark) may lie and still be
#: taken: a click on the vessel's wall, or just past its cut end.
SNAP_MM = 3.0


@dataclass(frozen=True)
class EndpointParameters:
    """Optional source and target points (LPS mm) of the centerlines.

    ``snap_mm``: how far outside the segment a point may lie and still be taken (a click on
    the vessel's wall, or just past the cut end); farther, it is refused.
    """

    source_lps: Optional[Point] = None
    targets_lps: tuple[Point, ...] = ()
    snap_mm: float = SNAP_MM

    def __post_init__(self) -> None:
        if self.source_lps is not None:
            object.__setattr__(self, "source_lps", _point(self.source_lps, "source"))
        try:
            targets = tuple(self.targets_lps)
        except TypeError:
            targets = (self.targets_lps,)
        object.__setattr__(self, "targets_lps",
                           tuple(_point(p, f"target {n + 1}") for n, p in enumerate(targets)))
        if self.targets_lps and self.source_lps is None:
            raise InputError("Target points were given without a source point",
                             "the centerlines run from the source to each target",
                             "place a source point too (the start of the vessel, e.g. the top of the aorta)")
        snap = self.snap_mm
        if isinstance(snap, bool) or not isinstance(snap, (int, float)) or not math.isfinite(snap) or snap < 0:
            raise InputError("The snapping distance is invalid", f"it is {snap!r}", "give 0 mm or more")

    @property
    def given(self) -> bool:
        return self.source_lps is not None


def _point(point, name: str) -> Point:
    try:
        values = tuple(float(c) for c in point)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(c) for c in values):
        raise InputError(f"The {name} point is invalid", f"it is {point!r}",
                         "give three LPS coordinates in millimetres")
    return values  # type: ignore[return-value]


def point_name(point: Point) -> str:
    return "LPS (" + ", ".join(f"{c:.1f}" for c in point) + ") mm"


class Vertices(Protocol):
    """Vertices a path runs through: their LPS positions (n, 3) and radii (mm)."""

    points: np.ndarray
    radii: np.ndarray


class _PointGraph:
    """Every centerline point of the graph as a vertex (a node is one vertex shared by the
    branches that meet there); consecutive points joined, each edge costing its length
    over its mean radius."""

    def __init__(self, graph: CenterlineGraph) -> None:
        points: list[np.ndarray] = []
        radii: list[float] = []
        owner: list[int] = []
        rows: list[int] = []
        cols: list[int] = []
        self.node_vertex: dict[int, int] = {}

        def vertex(point: np.ndarray, radius: float, branch: int) -> int:
            points.append(point)
            radii.append(radius)
            owner.append(branch)
            return len(points) - 1

        for branch in graph.branches:
            n = len(branch.points_lps)
            ids = []
            for k in range(n):
                node = branch.start_node if k == 0 else (branch.end_node if k == n - 1 else None)
                if node is not None and node in self.node_vertex:
                    ids.append(self.node_vertex[node])
                    continue
                ids.append(vertex(branch.points_lps[k], float(branch.radii_mm[k]), branch.id))
                if node is not None:
                    self.node_vertex[node] = ids[-1]
            rows += ids[:-1]
            cols += ids[1:]
        self.points = np.array(points, float).reshape(-1, 3)
        self.radii = np.array(radii, float)
        self.branch = np.array(owner, int)
        a, b = np.array(rows, int), np.array(cols, int)
        length = np.linalg.norm(self.points[a] - self.points[b], axis=1)
        cost = length / np.maximum(0.5 * (self.radii[a] + self.radii[b]), 1e-3)
        cost = np.maximum(cost, 1e-9)  # a zero weight would read as no edge
        # two branches joining the same two points: the cheaper one (a sparse matrix would add them)
        order = np.lexsort((cost, np.maximum(a, b), np.minimum(a, b)))
        a, b, cost = np.minimum(a, b)[order], np.maximum(a, b)[order], cost[order]
        first = np.ones(len(a), bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        a, b, cost = a[first], b[first], cost[first]
        count = len(points)
        self.matrix = coo_matrix((cost, (a, b)), shape=(count, count)).tocsr()


def centerlines_between(graph: CenterlineGraph, mask: Image,
                        parameters: EndpointParameters = EndpointParameters()) -> CenterlineGraph:
    """The centerlines from the source to each target (or to every free end), as a graph
    rooted at the source; ``graph`` unchanged when no source is given."""
    if not parameters.given or not graph.branches:
        return graph
    refuse_coincident(mask, parameters)
    points = _PointGraph(graph)
    labels = components(mask)
    branch_piece = branch_pieces(graph, mask, labels)
    vertex_piece = branch_piece[points.branch]
    source = _snap(parameters.source_lps, "The source point", mask, labels, points, vertex_piece,
                   parameters.snap_mm)
    cost, previous = dijkstra(points.matrix, directed=False, indices=source, return_predecessors=True)
    voxel = float(max(mask.spacing))
    if parameters.targets_lps:
        targets: list[int] = []
        for n, target in enumerate(parameters.targets_lps):
            label = f"Target {n + 1}"
            vertex = _snap(target, f"{label} point", mask, labels, points, vertex_piece, parameters.snap_mm)
            if not np.isfinite(cost[vertex]):
                raise unreachable(label, target)
            check_apart(label, target, np.linalg.norm(points.points[[source, *targets]] - points.points[vertex],
                                                      axis=1), voxel)
            targets.append(vertex)
    else:
        targets = _free_ends(graph, points, source, vertex_piece, cost, previous)
        if not targets:
            raise InputError(f"The source point at {point_name(parameters.source_lps)} has no vessel to follow",
                             "the piece of the segment it lies in has no end farther than its width from it",
                             "place the source at one end of the vessel")
    return paths_tree(points, source, targets, previous)


def components(mask: Image) -> np.ndarray:
    """The pieces (26-connected components) of the segment, labelled in its bounding box
    only (labelling the whole image cost most of this stage on a 2.5-million-voxel CTA);
    0 elsewhere."""
    array = np.asarray(mask.array) != 0
    labels = np.zeros(array.shape, np.int32)
    box = foreground_box(array)
    if box is not None:
        labels[box] = label(array[box])[0]
    return labels


def branch_pieces(graph: CenterlineGraph, mask: Image, labels: np.ndarray) -> np.ndarray:
    """The piece of the segment (component label) each branch runs in: the most common
    label under its points."""
    shape = np.asarray(labels.shape)
    pieces = np.zeros(max(b.id for b in graph.branches) + 1, int)
    for branch in graph.branches:
        kji = np.clip(np.round(lps_to_kji(mask, branch.points_lps)).astype(int), 0, shape - 1)
        under = labels[tuple(kji.T)]
        under = under[under > 0]
        pieces[branch.id] = int(np.bincount(under).argmax()) if len(under) else 0
    return pieces


def _snap(point: Point, name: str, mask: Image, labels: np.ndarray, points: _PointGraph,
          vertex_piece: np.ndarray, snap_mm: float) -> int:
    """The centerline vertex nearest to ``point`` in the piece of the segment it lies in."""
    _, piece = nearest_segment_voxel(point, name, mask, labels, snap_mm)
    candidates = np.flatnonzero(vertex_piece == piece)
    if len(candidates) == 0:
        raise InputError(f"{name} at {point_name(point)} lies on a piece of the segment without a centerline",
                         "that piece is too small to hold a vessel", "place it on the vessel")
    gaps = np.linalg.norm(points.points[candidates] - np.asarray(point), axis=1)
    return int(candidates[int(np.argmin(gaps))])


def nearest_segment_voxel(point: Point, name: str, mask: Image, labels: np.ndarray,
                          snap_mm: float) -> tuple[np.ndarray, int]:
    """The segment's voxel (kji) nearest to ``point`` and the piece (label) it is in; refused,
    with the point named, off the image or farther than ``snap_mm`` from the segment."""
    kji = lps_to_kji(mask, np.asarray(point, float))[0]
    shape = np.asarray(labels.shape)
    if np.any((kji < -0.5) | (kji > shape - 0.5)):
        raise InputError(f"{name} at {point_name(point)} lies outside the image",
                         f"the image spans {tuple(int(s) for s in labels.shape[::-1])} voxels",
                         "place the point on the vessel")
    spacing = np.asarray(mask.spacing[::-1], float)
    reach = np.ceil(snap_mm / spacing).astype(int) + 1
    centre = np.round(kji).astype(int)
    low = np.maximum(centre - reach, 0)
    high = np.minimum(centre + reach + 1, shape)
    window = labels[tuple(slice(a, b) for a, b in zip(low, high))]
    found = np.argwhere(window > 0)
    distance = np.linalg.norm((found + low - kji) * spacing, axis=1) if len(found) else np.zeros(0)
    if len(found) == 0 or distance.min() > snap_mm:
        nearest = f"{distance.min():.1f} mm" if len(found) else f"more than {snap_mm:g} mm"
        raise InputError(f"{name} at {point_name(point)} is not on the segment",
                         f"the nearest voxel of the segment is {nearest} away",
                         f"place it inside the vessel (within {snap_mm:g} mm of the segment)")
    voxel = found[int(np.argmin(distance))]
    return voxel + low, int(window[tuple(voxel)])


def unreachable(label: str, target: Point) -> InputError:
    return InputError(f"{label} at {point_name(target)} cannot be reached from the source inside the segment",
                      "it lies in another piece of the segment than the source",
                      "place it on the vessel that holds the source, or join the pieces")


def refuse_coincident(mask: Image, parameters: EndpointParameters) -> None:
    """Refuse a target placed within a voxel (under one voxel along every axis) of the source or
    of an earlier target. Judged on the points as placed, before either route (minimal paths
    or the whole tree) snaps them, so both refuse the same pairs whatever the segment's size:
    a line between them would be a voxel long at most."""
    if parameters.source_lps is None or not parameters.targets_lps:
        return
    kji = lps_to_kji(mask, np.array([parameters.source_lps, *parameters.targets_lps], float))
    for n in range(1, len(kji)):
        near = np.all(np.abs(kji[:n] - kji[n]) < 1.0, axis=1)
        if near.any():
            raise _coincident(f"Target {n}", parameters.targets_lps[n - 1], int(np.argmax(near)))


def check_apart(label: str, target: Point, gaps: np.ndarray, voxel: float) -> None:
    """Refuse a target within ``voxel`` mm of the source (``gaps[0]``) or of an earlier target."""
    if np.any(gaps < voxel):
        raise _coincident(label, target, int(np.argmax(gaps < voxel)))


def _coincident(label: str, target: Point, other: int) -> InputError:
    """``other``: 0 the source, n target n."""
    if other == 0:
        return InputError(f"{label} at {point_name(target)} is where the source is",
                          "it snaps onto the same centerline point (within a voxel), which would give "
                          "a line of no length", "place the target farther along the vessel")
    return InputError(f"{label} at {point_name(target)} is where target {other} is",
                      "both snap onto the same centerline point (within a voxel)",
                      "remove one of them or place it farther along the vessel")


def _free_ends(graph: CenterlineGraph, points: _PointGraph, source: int, vertex_piece: np.ndarray,
               cost: np.ndarray, previous: np.ndarray) -> list[int]:
    """Every free end of the source's piece, except the end the source sits in."""
    width = 2 * float(points.radii[source])
    ends = []
    for node in graph.nodes:
        vertex = points.node_vertex.get(node.id)
        if node.kind != ENDPOINT or vertex is None or vertex_piece[vertex] != vertex_piece[source]:
            continue
        if not np.isfinite(cost[vertex]) or _path_length(points, previous, vertex) < width:
            continue
        ends.append(vertex)
    return ends


def _path(previous: np.ndarray, vertex: int) -> list[int]:
    path = [vertex]
    while previous[path[-1]] >= 0:
        path.append(int(previous[path[-1]]))
    return path[::-1]


def _path_length(points: _PointGraph, previous: np.ndarray, vertex: int) -> float:
    path = _path(previous, vertex)
    return float(np.linalg.norm(np.diff(points.points[path], axis=0), axis=1).sum())


def paths_tree(points: Vertices, source: int, targets: list[int], previous: np.ndarray) -> CenterlineGraph:
    """The union of the paths (``previous``: each vertex's predecessor towards the source),
    cut into branches at the source, the targets and wherever the paths part."""
    children: dict[int, list[int]] = {}
    for target in targets:
        path = _path(previous, target)
        for a, b in zip(path[:-1], path[1:]):
            if b not in children.setdefault(a, []):
                children[a].append(b)
    stops = {source, *targets} | {v for v, kids in children.items() if len(kids) >= 2}

    def chain(start: int, first: int) -> list[int]:
        run = [start, first]
        while run[-1] not in stops:
            (step,) = children[run[-1]]
            run.append(step)
        return run

    node_of: dict[int, int] = {source: 0}
    order = [source]
    runs: list[tuple[list[int], Optional[int]]] = []
    queue: deque[tuple[int, Optional[int]]] = deque([(source, None)])
    while queue:
        start, parent = queue.popleft()
        for run in sorted((chain(start, first) for first in children.get(start, [])),
                          key=lambda run: -float(np.mean(points.radii[run]))):
            runs.append((run, parent))
            if run[-1] not in node_of:
                node_of[run[-1]] = len(order)
                order.append(run[-1])
            queue.append((run[-1], len(runs) - 1))
    branches = []
    touching: dict[int, list[int]] = {v: [] for v in order}
    for number, (run, parent) in enumerate(runs):
        # the joins between two copies of one graph node have no length: one point each
        kept = [run[0]]
        for vertex in run[1:]:
            if np.linalg.norm(points.points[vertex] - points.points[kept[-1]]) > 1e-9:
                kept.append(vertex)
        branches.append(Branch(number, points.points[kept].copy(), points.radii[kept].copy(),
                               node_of[run[0]], node_of[run[-1]], parent, 0))
        touching[run[0]].append(number)
        touching[run[-1]].append(number)
    nodes = []
    for vertex in order:
        ends = vertex == source or vertex in targets
        kind = ENDPOINT if ends or len(touching[vertex]) < 3 else BIFURCATION
        nodes.append(Node(node_of[vertex], kind, points.points[vertex].copy(), float(points.radii[vertex]),
                          tuple(sorted(touching[vertex])), 0))
    return CenterlineGraph(tuple(nodes), tuple(branches))
