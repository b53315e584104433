"""Synthetic vessel trees with known centerlines, radii and planted stenoses.

Why: centerline, radius and stenosis code can only be trusted against answers known
exactly. A tree is described once in millimetres (quadratic Bezier branches with a radius
along each) and rasterised onto *any* grid - isotropic, anisotropic, oblique - so a test
can check that the same physical tree gives the same answer in mm on every grid.

A voxel is inside when its centre lies within the tube: within ``r(t)`` of the nearest
point ``c(t)`` of a branch's densely sampled centreline (a chain of truncated cones with
spherical caps), which is how a level-set or a thresholded CTA lumen rasterises a vessel.
Planted stenoses are smooth cosine narrowings of the radius, so their true % diameter
reduction is exactly the planted fraction; planted dilatations are the same bump widening
it (a fusiform aneurysm), so their true ratio to the healthy diameter is exact too.

Junctions are, by default, the plain union of the tubes (a sharp crease where they meet).
Real bifurcations are rounded: the lumen flares into the junction and the carina is
blunt. ``fillet_mm`` rounds every crease by a smooth union of the tubes' signed distances
(polynomial smooth minimum), which is what makes a junction look like a dilatation or a
stenosis to a measurement that does not know it is there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..image import Image
from .radius import affine

#: Dense sampling step of the true centrelines, as a fraction of the smallest voxel spacing.
_SAMPLE_FRACTION = 0.25


@dataclass(frozen=True)
class BranchSpec:
    """One branch in millimetres: a quadratic Bezier curve and a linearly tapering radius."""

    start: tuple[float, float, float]
    control: tuple[float, float, float]
    end: tuple[float, float, float]
    radius_start_mm: float
    radius_end_mm: float
    parent: Optional[int] = None


@dataclass(frozen=True)
class StenosisSpec:
    """A smooth narrowing planted on a branch (``severity`` = diameter reduction 0..1); a
    negative severity widens it instead (a dilatation of ``1 - severity`` times the diameter)."""

    branch: int
    at_fraction: float
    severity: float
    length_mm: float

    @classmethod
    def dilatation(cls, branch: int, at_fraction: float, ratio: float, length_mm: float) -> "StenosisSpec":
        """A fusiform dilatation to ``ratio`` times the healthy diameter at its widest."""
        return cls(branch, at_fraction, 1.0 - ratio, length_mm)


@dataclass(frozen=True)
class TrueBranch:
    """A branch's true centreline (dense, in LPS mm) and its true radius at each point."""

    id: int
    parent: Optional[int]
    points_lps: np.ndarray
    radii_mm: np.ndarray

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.diff(self.points_lps, axis=0), axis=1).sum())


@dataclass(frozen=True)
class PlantedStenosis:
    """Where a stenosis (or, with a negative severity, a dilatation) was planted and how severe it truly is."""

    branch: int
    position_lps: np.ndarray
    severity: float
    reference_diameter_mm: float
    length_mm: float

    @property
    def kind(self) -> str:
        return "dilatation" if self.severity < 0 else "stenosis"

    @property
    def ratio(self) -> float:
        """The lesion's diameter at its worst point over the healthy diameter there."""
        return 1.0 - self.severity


@dataclass(frozen=True)
class SyntheticTree:
    """A rasterised tree and its ground truth (all geometry in LPS millimetres)."""

    mask: Image
    branches: tuple[TrueBranch, ...]
    stenoses: tuple[PlantedStenosis, ...] = ()
    bifurcations_lps: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    endpoints_lps: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def make_grid(extent_mm: Sequence[float], spacing: Sequence[float] = (1.0, 1.0, 1.0),
              direction_lps: Optional[np.ndarray] = None,
              center_lps: Sequence[float] = (0.0, 0.0, 0.0)) -> Image:
    """An empty uint8 image covering ``extent_mm`` (along its own i, j, k axes) around a centre."""
    direction = np.eye(3) if direction_lps is None else np.asarray(direction_lps, float)
    spacing = np.asarray(spacing, float)
    size_ijk = np.maximum(np.ceil(np.asarray(extent_mm, float) / spacing).astype(int), 1)
    half = (size_ijk - 1) * spacing / 2.0
    origin = np.asarray(center_lps, float) - direction @ half
    return Image(np.zeros(tuple(size_ijk[::-1]), np.uint8), tuple(spacing), tuple(origin), direction)


def build_tree(specs: Sequence[BranchSpec], grid: Image,
               stenoses: Sequence[StenosisSpec] = (), rotation: Optional[np.ndarray] = None,
               center_lps: Sequence[float] = (0.0, 0.0, 0.0), fillet_mm: float = 0.0) -> SyntheticTree:
    """Rasterise branches (object mm, turned by ``rotation`` and moved to ``center_lps``) onto
    ``grid``; ``fillet_mm`` rounds the creases where tubes meet (see the module's docstring)."""
    turn = np.eye(3) if rotation is None else np.asarray(rotation, float)
    shift = np.asarray(center_lps, float)
    step = _SAMPLE_FRACTION * min(grid.spacing)
    branches: list[TrueBranch] = []
    for index, spec in enumerate(specs):
        control = np.array([spec.start, spec.control, spec.end], float) @ turn.T + shift
        points = _bezier(control, step)
        arc = _arc_length(points)
        radii = spec.radius_start_mm + (spec.radius_end_mm - spec.radius_start_mm) * arc / max(arc[-1], 1e-9)
        branches.append(TrueBranch(index, spec.parent, points, radii))
    planted = []
    for stenosis in stenoses:
        branch = branches[stenosis.branch]
        arc = _arc_length(branch.points_lps)
        s0 = stenosis.at_fraction * arc[-1]
        at = int(np.argmin(np.abs(arc - s0)))
        base = float(branch.radii_mm[at])
        bump = np.abs(arc - s0) < stenosis.length_mm / 2
        narrowing = np.where(bump, 0.5 * (1 + np.cos(2 * np.pi * (arc - s0) / stenosis.length_mm)), 0.0)
        radii = branch.radii_mm * (1 - stenosis.severity * narrowing)
        branches[stenosis.branch] = TrueBranch(branch.id, branch.parent, branch.points_lps, radii)
        planted.append(PlantedStenosis(stenosis.branch, branch.points_lps[at].copy(), stenosis.severity,
                                       2 * base, stenosis.length_mm))
    return from_centerlines(branches, grid, planted, fillet_mm)


def from_centerlines(branches: Sequence[TrueBranch], grid: Image,
                     stenoses: Sequence[PlantedStenosis] = (), fillet_mm: float = 0.0) -> SyntheticTree:
    """Rasterise branches given as dense centrelines (LPS mm) with radii onto ``grid``."""
    branches = list(branches)
    if fillet_mm > 0:
        mask = _smooth_union(grid, branches, fillet_mm)
    else:
        mask = np.zeros(grid.array.shape, np.uint8)
        for branch in branches:
            _rasterise(mask, grid, branch.points_lps, branch.radii_mm)
    children = {b.parent for b in branches if b.parent is not None}
    bifurcations = np.array([branches[p].points_lps[-1] for p in sorted(children)]).reshape(-1, 3)
    ends = [b.points_lps[-1] for b in branches if b.id not in children]
    ends += [b.points_lps[0] for b in branches if b.parent is None]
    return SyntheticTree(grid.with_array(mask), tuple(branches), tuple(stenoses), bifurcations,
                         np.array(ends).reshape(-1, 3))


def y_bifurcation(grid: Image, *, trunk_radius_mm: float = 4.0, daughter_radius_mm: float = 3.0,
                  length_mm: float = 40.0, rotation: Optional[np.ndarray] = None,
                  center_lps: Sequence[float] = (0.0, 0.0, 0.0)) -> SyntheticTree:
    """A trunk splitting into two curved daughters (like the aorto-iliac bifurcation): 3 branches."""
    L, R, r = length_mm, trunk_radius_mm, daughter_radius_mm
    specs = [
        BranchSpec((0, 0, L * 0.6), (0.08 * L, 0, L * 0.3), (0, 0, 0), R, R * 0.9),
        BranchSpec((0, 0, 0), (0.2 * L, 0.05 * L, -0.25 * L), (0.45 * L, 0.1 * L, -0.55 * L), r, r * 0.8, 0),
        BranchSpec((0, 0, 0), (-0.2 * L, -0.05 * L, -0.3 * L), (-0.4 * L, 0.05 * L, -0.6 * L), r, r * 0.8, 0),
    ]
    return build_tree(specs, grid, rotation=rotation, center_lps=center_lps)


def two_level_tree(grid: Image, *, rotation: Optional[np.ndarray] = None,
                   center_lps: Sequence[float] = (0.0, 0.0, 0.0), scale: float = 1.0) -> SyntheticTree:
    """A trunk, two daughters and four granddaughters (7 branches), about 65 x 35 x 70 mm."""
    def p(x: float, y: float, z: float) -> tuple[float, float, float]:
        return (x * scale, y * scale, z * scale)
    R = 4.0 * scale
    specs = [
        BranchSpec(p(0, 0, 35), p(2, 1, 18), p(0, 0, 0), R, R * 0.95),
        BranchSpec(p(0, 0, 0), p(-8, 0, -8), p(-18, 0, -18), R * 0.75, R * 0.7, 0),
        BranchSpec(p(0, 0, 0), p(8, 2, -8), p(18, 3, -18), R * 0.75, R * 0.7, 0),
        BranchSpec(p(-18, 0, -18), p(-22, 6, -24), p(-26, 14, -32), R * 0.6, R * 0.55, 1),
        BranchSpec(p(-18, 0, -18), p(-24, -6, -22), p(-32, -12, -28), R * 0.6, R * 0.55, 1),
        BranchSpec(p(18, 3, -18), p(22, 9, -24), p(26, 16, -32), R * 0.6, R * 0.55, 2),
        BranchSpec(p(18, 3, -18), p(24, -3, -22), p(32, -10, -28), R * 0.6, R * 0.55, 2),
    ]
    return build_tree(specs, grid, rotation=rotation, center_lps=center_lps)


def stenosed_vessel(grid: Image, severities: Sequence[float] = (0.3, 0.5, 0.7), *,
                    radius_mm: float = 3.0, length_mm: float = 100.0, lesion_diameters: float = 2.5,
                    rotation: Optional[np.ndarray] = None,
                    center_lps: Sequence[float] = (0.0, 0.0, 0.0)) -> SyntheticTree:
    """One gently curved, slightly tapering vessel with lesions planted evenly along it
    (a negative severity plants a dilatation: -0.5 is 1.5x, -1.0 is 2x)."""
    L = length_mm
    specs = [BranchSpec((-L / 2, 0, 0), (0, 0.12 * L, 0.04 * L), (L / 2, 0, 0), radius_mm, radius_mm * 0.85)]
    count = len(severities)
    stenoses = [StenosisSpec(0, (n + 1) / (count + 1), severity, lesion_diameters * 2 * radius_mm)
                for n, severity in enumerate(severities)]
    return build_tree(specs, grid, stenoses, rotation=rotation, center_lps=center_lps)


def arc_vessel(grid: Image, *, bend_radius_mm: float = 20.0, angle_deg: float = 180.0,
               radius_mm: float = 2.0, rotation: Optional[np.ndarray] = None,
               center_lps: Sequence[float] = (0.0, 0.0, 0.0)) -> SyntheticTree:
    """One vessel bent along a circular arc: known length, chord, tortuosity and curvature."""
    turn = np.eye(3) if rotation is None else np.asarray(rotation, float)
    angle = np.radians(angle_deg)
    count = int(np.ceil(bend_radius_mm * angle / (_SAMPLE_FRACTION * min(grid.spacing)))) + 1
    theta = np.linspace(-angle / 2, angle / 2, count)
    local = np.column_stack([bend_radius_mm * np.sin(theta), bend_radius_mm * (np.cos(theta) - 1),
                             np.zeros(count)])
    points = local @ turn.T + np.asarray(center_lps, float)
    return from_centerlines([TrueBranch(0, None, points, np.full(count, radius_mm))], grid)


def random_tree(grid: Image, *, generations: int = 4, root_radius_mm: float = 8.0,
                root_length_mm: float = 70.0, shrink: float = 0.72, seed: int = 0,
                center_lps: Optional[Sequence[float]] = None, asymmetry: float = 0.0,
                fillet_mm: float = 0.0) -> SyntheticTree:
    """A binary tree of up to ``2**generations - 1`` branches filling the grid, for benchmarks
    and as healthy trees (no lesion: any finding on one is false).

    Daughters leave in pairs at 25-50 degrees in random planes. A pair whose tubes would come
    close to each other, to a branch they do not touch or to the grid's border is re-drawn
    (up to 40 times, else its parent stays a terminal branch), so every bifurcation is real
    and ``branches`` is exactly the tree's topology. ``asymmetry`` (0..1) makes the daughter
    leaving at the smaller angle wider (radius x (1 + asymmetry)) and the other narrower
    (x (1 - asymmetry)), as a trunk continues past a side branch; ``fillet_mm`` rounds the
    junctions (see :func:`build_tree`). Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    extent = np.asarray(grid.shape_ijk) * np.asarray(grid.spacing)
    center = (grid.ijk_to_lps() @ np.append((np.asarray(grid.shape_ijk) - 1) / 2, 1))[:3] \
        if center_lps is None else np.asarray(center_lps, float)
    axis = grid.direction_lps[:, 2]
    start = center - axis * extent[2] * 0.42
    specs: list[BranchSpec] = []
    samples: list[np.ndarray] = []

    def clear_of_others(points: np.ndarray, radius: float, parent: Optional[int]) -> bool:
        # inside the grid with a margin, and away from all branches but the parent and its daughters
        local = (points - (grid.ijk_to_lps()[:3, 3])) @ grid.direction_lps
        margin = radius + 2 * max(grid.spacing)
        if np.any(local < margin) or np.any(local > extent - margin):
            return False
        for other, (spec, dense) in enumerate(zip(specs, samples)):
            if other == parent or spec.parent == parent:
                continue
            gap = np.min(np.linalg.norm(points[::4, None] - dense[None, ::4], axis=2))
            if gap < radius + max(spec.radius_start_mm, spec.radius_end_mm) + 3 * max(grid.spacing):
                return False
        return True

    def shape(origin: np.ndarray, direction: np.ndarray, length: float) -> tuple[np.ndarray, ...]:
        bend = _perpendicular(direction, rng) * length * rng.uniform(0.05, 0.2)
        end = origin + direction * length + bend * 0.5
        control = origin + direction * length * 0.5 + bend
        return control, end, _bezier(np.array([origin, control, end]), 1.0)

    def add(origin: np.ndarray, control: np.ndarray, end: np.ndarray, points: np.ndarray,
            radius: float, parent: Optional[int]) -> int:
        specs.append(BranchSpec(tuple(origin), tuple(control), tuple(end), radius, radius * 0.9, parent))
        samples.append(points)
        return len(specs) - 1

    def split(parent: int, radius: float, length: float, depth: int) -> None:
        """Two daughters at the parent's end, both or none (so every bifurcation is real)."""
        if depth >= generations:
            return
        spec = specs[parent]
        origin = np.asarray(spec.end)
        tangent = origin - np.asarray(spec.control)
        tangent /= np.linalg.norm(tangent)
        for _attempt in range(40):
            plane = _perpendicular(tangent, rng)
            pair, angles = [], []
            for sign in (1.0, -1.0):
                angle = np.radians(rng.uniform(25, 50))
                angles.append(angle)
                child = tangent * np.cos(angle) + sign * plane * np.sin(angle)
                pair.append(shape(origin, child / np.linalg.norm(child), length))
            apart = np.min(np.linalg.norm(pair[0][2][len(pair[0][2]) // 3:, None]
                                          - pair[1][2][None, len(pair[1][2]) // 3:], axis=2))
            if apart > 2 * radius + 3 * max(grid.spacing) and \
                    all(clear_of_others(p[2][len(p[2]) // 4:], radius, parent) for p in pair):
                break
        else:
            return
        wider = int(np.argmin(angles))
        radii = [radius * (1 + asymmetry if n == wider else 1 - asymmetry) for n in range(2)]
        daughters = [add(origin, control, end, points, r, parent) for (control, end, points), r in zip(pair, radii)]
        for daughter, r in zip(daughters, radii):
            split(daughter, r * shrink, length * shrink, depth + 1)

    control, end, points = shape(start, axis, root_length_mm)
    root = add(start, control, end, points, root_radius_mm, None)
    split(root, root_radius_mm * shrink, root_length_mm * shrink, 1)
    return build_tree(specs, grid, fillet_mm=fillet_mm)


# ---------------------------------------------------------------------------------------------


def _bezier(control: np.ndarray, step_mm: float) -> np.ndarray:
    """Points along a quadratic Bezier curve, about ``step_mm`` apart."""
    rough = np.linalg.norm(np.diff(control, axis=0), axis=1).sum()
    t = np.linspace(0.0, 1.0, max(int(np.ceil(rough / step_mm)) + 1, 2))[:, None]
    return (1 - t) ** 2 * control[0] + 2 * (1 - t) * t * control[1] + t ** 2 * control[2]


def _arc_length(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _perpendicular(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    vector -= vector @ direction * direction
    return vector / np.linalg.norm(vector)


def _smooth_union(grid: Image, branches: Sequence[TrueBranch], fillet_mm: float) -> np.ndarray:
    """The mask of the branches' smooth union: the signed distances (mm, negative inside)
    combined by a polynomial smooth minimum of width ``fillet_mm``, which fills each crease
    where two tubes meet with a fillet and leaves the tubes elsewhere as they are."""
    field = np.full(grid.array.shape, np.inf, np.float32)
    for branch in branches:
        own = np.full(grid.array.shape, np.inf, np.float32)
        _rasterise(own, grid, branch.points_lps, branch.radii_mm, reach_mm=fillet_mm)
        a, b = field, own
        near = np.isfinite(b) & np.isfinite(a)
        h = np.clip(0.5 + 0.5 * (b[near] - a[near]) / fillet_mm, 0.0, 1.0)
        blended = b[near] * (1 - h) + a[near] * h - fillet_mm * h * (1 - h)
        field = np.minimum(a, b)
        field[near] = blended
    return (field <= 0).astype(np.uint8)


def _rasterise(mask: np.ndarray, grid: Image, points_lps: np.ndarray, radii: np.ndarray,
               chunk: int = 12, reach_mm: Optional[float] = None) -> None:
    """Set every voxel whose centre lies within the tube around ``points_lps`` (in place).

    With ``reach_mm``, ``mask`` is a float array instead: the tube's signed distance (mm,
    negative inside) is written, as a minimum, wherever it is below ``reach_mm``."""
    spacing = np.asarray(grid.spacing)
    lps_to_ijk = np.linalg.inv(grid.ijk_to_lps())
    ijk = affine(points_lps, lps_to_ijk)
    shape_ijk = np.asarray(mask.shape[::-1])
    for first in range(0, len(points_lps) - 1, chunk):
        a, b = ijk[first:first + chunk], ijk[first + 1:first + chunk + 1]
        ra, rb = radii[first:first + chunk], radii[first + 1:first + chunk + 1]
        a, ra = a[:len(b)], ra[:len(b)]
        reach = (max(ra.max(), rb.max()) + (reach_mm or 0.0)) / spacing + 1
        low = np.maximum(np.floor(np.minimum(a.min(0), b.min(0)) - reach), 0).astype(int)
        high = np.minimum(np.ceil(np.maximum(a.max(0), b.max(0)) + reach), shape_ijk - 1).astype(int)
        if np.any(high < low):
            continue
        axes = [np.arange(low[d], high[d] + 1) for d in range(3)]
        voxels = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).astype(float)
        # distances in mm, measured in the grid's own axes (the direction is a rotation)
        pa = (voxels[:, None, :] - a[None]) * spacing
        ab = (b - a) * spacing
        t = np.clip((pa * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None], 0.0, 1.0)
        distance = np.linalg.norm(pa - t[..., None] * ab[None], axis=-1)
        if reach_mm is not None:
            signed = (distance - (ra[None] + t * (rb - ra)[None])).min(axis=1)
            close = signed < reach_mm
            hit = voxels[close].astype(int)
            index = (hit[:, 2], hit[:, 1], hit[:, 0])
            mask[index] = np.minimum(mask[index], signed[close])
            continue
        inside = np.any(distance <= ra[None] + t * (rb - ra)[None], axis=1)
        hit = voxels[inside].astype(int)
        mask[hit[:, 2], hit[:, 1], hit[:, 0]] = 1
