"""Findings along each branch: stenoses and dilatations graded against a healthy reference.

A finding is either a **stenosis** (the lumen narrower than the healthy vessel there, graded
as % diameter reduction) or a **dilatation** (wider: its maximum diameter and the ratio to
the healthy diameter; an aneurysm is a dilatation of at least 1.5x, the usual definition of
the vascular surgery reporting standards: a permanent focal widening of 50 % or more over
the expected normal diameter).

Why cross-sectional area: the inscribed-sphere radius sees only the narrowest direction of
a lumen, while a stenosis grade compares lumen sizes; the area of the lumen in the plane
across the centreline, as an equivalent diameter ``2 sqrt(A / pi)``, is what quantitative
angiography and CTA reading report. All of it comes from :func:`lumen_diameters`, the one
place that measures the lumen (see there).

Why bifurcation zones are left out: where two lumens meet, the plane across one branch
also cuts the other, so the measured lumen widens (a false dilatation) and then, where the
carina splits it, narrows (a false stenosis). A point is in a zone when its plane, within
its own lumen, touches another branch's lumen (the union of that branch's inscribed
spheres): the zone is therefore long where branches part at a small angle and short where
a small side branch leaves a large trunk, scaled by the radii involved, and it then grows
along the branch by ``junction_margin`` local radii for the flare of the ostium. Free ends
(a vessel's rounded end is not a stenosis) are left out too.

Why the reference comes from the flanks: vessels taper, so a single "normal" diameter for
a branch misgrades lesions. A robust trend of the healthy diameters along the branch
(least median of squares, then refined on the points it explains: a diseased segment of
up to half the branch does not move it) finds where the lumen departs from normal; each
such lesion is then graded against the line joining the mean healthy diameters just
before and just after it (what QCA calls an interpolated reference), or the trend scaled
to the one healthy flank there is. A lesion with no healthy flank is not graded.

Why a resolution limit: a mask's edge is known to about half a voxel, so a vessel only a
few voxels across cannot be graded (a 3-voxel vessel reads 50 % narrower from a one-voxel
error). Findings need a reference of at least ``min_reference_voxels`` voxels across, the
voxel measured in the plane across the vessel (see :func:`_course_voxel`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import InputError
from ..image import Image
from ..progress import ProgressCallback, no_progress
from .graph import BIFURCATION, ENDPOINT, CenterlineGraph
from .radius import affine, across
from .sampling import trilinear

STENOSIS, DILATATION = "stenosis", "dilatation"
#: How a finding's reference diameter was found (see :func:`_reference`).
INTERPOLATED, CURVE_FITTED = "interpolated", "curve-fitted"

#: Samples across each cross-section (odd, so one sits on the centreline).
_GRID = 41


@dataclass(frozen=True)
class StenosisParameters:
    """What counts as a finding, where the vessel is not graded, and how the reference is found."""

    #: report narrowings of at least this % diameter stenosis
    threshold_percent: float = 50.0
    #: report widenings to at least this many times the reference diameter (1.5: aneurysm)
    dilatation_ratio: float = 1.5
    #: a run of points narrower or wider than the healthy trend by this % is examined as a lesion
    lesion_percent: float = 15.0
    #: length of each healthy flank, in reference diameters
    flank_diameters: float = 1.5
    #: a bifurcation zone reaches this many local radii beyond where the lumens touch
    junction_margin: float = 1.0
    #: the smallest reference diameter graded, in voxels of the plane across the vessel
    min_reference_voxels: float = 4.0


@dataclass(frozen=True)
class DiameterProfile:
    """Lumen size along one branch, point by point (arrays share the branch's points)."""

    branch: int
    arc_mm: np.ndarray
    points_lps: np.ndarray
    #: area-equivalent diameter where the cross-section was measurable, else 2 x radius
    diameter_mm: np.ndarray
    #: lumen cross-sectional area (NaN where not measurable)
    area_mm2: np.ndarray
    #: how each diameter was measured: "area" or "radius"
    method: np.ndarray
    #: True where the diameter is trustworthy (a closed lumen, outside bifurcation zones and end caps)
    reliable: np.ndarray
    #: the healthy diameter at each point (the trend, or across a lesion its flanks' line)
    reference_mm: np.ndarray
    #: % diameter reduction against the reference (0 where wider)
    stenosis_percent: np.ndarray
    #: diameter / reference (below 1: narrower, above: wider)
    ratio: np.ndarray
    #: True inside a bifurcation zone
    junction: np.ndarray
    #: True where the reference is wide enough (in voxels of the plane) to be graded
    gradable: np.ndarray


@dataclass(frozen=True)
class StenosisFinding:
    """One stenosis or dilatation at or beyond its threshold, at its worst point."""

    kind: str  # STENOSIS or DILATATION
    branch: int
    position_lps: np.ndarray
    arc_mm: float
    #: lumen diameter at the worst point / reference diameter there
    ratio: float
    reference_diameter_mm: float
    #: smallest and largest lumen diameter over the finding's extent
    minimal_diameter_mm: float
    maximal_diameter_mm: float
    #: extent along the branch (where the lumen departs from the reference by more than ``lesion_percent``)
    start_arc_mm: float
    end_arc_mm: float
    #: how the reference was found: INTERPOLATED (the line between both healthy flanks, QCA's
    #: interpolated reference) or CURVE_FITTED (the trend scaled to the one healthy flank)
    reference_method: str = INTERPOLATED

    @property
    def length_mm(self) -> float:
        return self.end_arc_mm - self.start_arc_mm

    @property
    def diameter_mm(self) -> float:
        """The finding's own diameter: the minimal lumen of a stenosis, the maximal of a dilatation."""
        return self.minimal_diameter_mm if self.kind == STENOSIS else self.maximal_diameter_mm

    @property
    def stenosis_percent(self) -> float:
        """% diameter reduction (0 for a dilatation)."""
        return max(0.0, 100.0 * (1.0 - self.ratio)) if self.kind == STENOSIS else 0.0


@dataclass(frozen=True)
class StenosisReport:
    profiles: tuple[DiameterProfile, ...]
    #: stenoses (worst first), then dilatations (largest first)
    findings: tuple[StenosisFinding, ...]

    @property
    def stenoses(self) -> tuple[StenosisFinding, ...]:
        return tuple(f for f in self.findings if f.kind == STENOSIS)

    @property
    def dilatations(self) -> tuple[StenosisFinding, ...]:
        return tuple(f for f in self.findings if f.kind == DILATATION)

    @property
    def graded_fraction(self) -> float:
        """Share of the centreline points where a finding could have been reported (reliable
        and gradable): "no finding" says nothing about the rest (on a whole-thorax CTA mask,
        mostly heart and lung, it is under 1 %)."""
        counts = [(int((p.reliable & p.gradable).sum()), len(p.reliable)) for p in self.profiles]
        total = sum(n for _, n in counts)
        return sum(g for g, _ in counts) / total if total else 0.0


def check_parameters(parameters: StenosisParameters) -> None:
    """Refuse thresholds that cannot grade anything (the module forms call this before a job is sent)."""
    if not 0 < parameters.threshold_percent < 100:
        raise InputError("The stenosis threshold is invalid", f"it is {parameters.threshold_percent} %",
                         "give a percentage between 0 and 100 (50 is usual)")
    if not 1 < parameters.dilatation_ratio <= 10:
        raise InputError("The dilatation threshold is invalid", f"it is {parameters.dilatation_ratio} x the reference",
                         "give a ratio above 1 (1.5, the definition of an aneurysm, is usual)")


def analyse_stenoses(mask: Image, graph: CenterlineGraph, parameters: StenosisParameters = StenosisParameters(),
                     progress: Optional[ProgressCallback] = None) -> StenosisReport:
    """Diameter profiles of every branch of ``graph`` on ``mask``, and the findings beyond threshold."""
    check_parameters(parameters)
    graded = _graded_profiles(mask, graph, parameters, progress)
    profiles = tuple(profile for profile, _ in graded)
    findings = [f for profile, lesions in graded for f in _findings(profile, lesions, parameters)]
    findings.sort(key=lambda f: (f.kind != STENOSIS, f.ratio if f.kind == STENOSIS else -f.ratio))
    return StenosisReport(profiles, tuple(findings))


def diameter_profiles(mask: Image, graph: CenterlineGraph, parameters: StenosisParameters = StenosisParameters(),
                      progress: Optional[ProgressCallback] = None) -> tuple[DiameterProfile, ...]:
    """Per branch: diameters along it, the healthy reference and the grade at each point."""
    check_parameters(parameters)
    return tuple(profile for profile, _ in _graded_profiles(mask, graph, parameters, progress))


def _graded_profiles(mask: Image, graph: CenterlineGraph, parameters: StenosisParameters,
                     progress: Optional[ProgressCallback]) -> list[tuple[DiameterProfile, list[_Lesion]]]:
    frames = _frames(graph)
    zones = _junction_zones(graph, parameters.junction_margin, max(mask.spacing), frames)
    measured = lumen_diameters(mask, graph, progress, graded=[~zone for zone in zones], frames=frames)
    profiles = []
    for branch, lumen, zone in zip(graph.branches, measured, zones):
        arc = _arc(branch.points_lps)
        diameter = np.where(lumen.measurable, lumen.diameter_mm, 2 * _sane(branch.radii_mm))
        method = np.where(lumen.measurable, "area", "radius")
        reliable = lumen.measurable & ~zone & _away_from_ends(graph, branch.start_node, branch.end_node, arc,
                                                              branch.radii_mm, max(mask.spacing))
        reference, lesions = _reference(arc, diameter, reliable, parameters)
        ratio = diameter / np.maximum(reference, 1e-9)
        stenosis = np.clip(100 * (1 - ratio), 0, 100)
        voxel = _course_voxel(mask, branch.points_lps, arc, reference)
        gradable = reference >= parameters.min_reference_voxels * voxel
        profiles.append((DiameterProfile(branch.id, arc, branch.points_lps, diameter, lumen.area_mm2, method,
                                         reliable, reference, stenosis, ratio, zone, gradable), lesions))
    return profiles


def _course_voxel(mask: Image, points: np.ndarray, arc: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """The grid's voxel size in the plane across the vessel's course: the root mean square
    of the voxel's two widths in that plane, sqrt(sum_k s_k^2 (1 - (t . a_k)^2) / 2) for
    spacings s_k along axes a_k and course t. It is the spacing on an isotropic grid
    whatever the course (where ``min_reference_voxels`` was measured), 0.4 mm for a vessel
    running through 0.4 x 0.4 x 5 mm slices and 3.6 mm for one lying within them. The course
    is the chord from ``reach`` mm before each point to ``reach`` after it, not the local
    tangent, which wobbles inside a wide lumen (an aneurysm)."""
    if len(points) < 2:
        return np.full(len(points), max(mask.spacing))
    ahead = np.array([np.interp(arc + reach, arc, points[:, d]) for d in range(3)]).T
    behind = np.array([np.interp(arc - reach, arc, points[:, d]) for d in range(3)]).T
    course = ahead - behind
    course /= np.maximum(np.linalg.norm(course, axis=1, keepdims=True), 1e-9)
    tilt = course @ np.asarray(mask.direction_lps, float)
    return np.sqrt((np.asarray(mask.spacing, float) ** 2 * np.clip(1 - tilt ** 2, 0, 1)).sum(axis=1) / 2)


def _arc(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


# --- where the lumen is a tube --------------------------------------------------------------


def _away_from_ends(graph: CenterlineGraph, start: int, end: int, arc: np.ndarray,
                    radii: np.ndarray, voxel: float) -> np.ndarray:
    """False within about a radius of a free end, where the lumen closes over its cap (a
    vessel's end is not a stenosis), and inside a bifurcation's inscribed sphere."""
    keep = np.ones(len(arc), bool)
    typical = float(np.median(radii))
    for node, distance in ((graph.nodes[start], arc), (graph.nodes[end], arc[-1] - arc)):
        if node.kind == BIFURCATION:
            keep &= distance > node.radius_mm
        elif node.kind == ENDPOINT:
            keep &= distance > 1.2 * typical + voxel
    return keep


def _junction_zones(graph: CenterlineGraph, margin: float, voxel: float,
                    frames: Optional[tuple[np.ndarray, ...]] = None) -> list[np.ndarray]:
    """Per branch, True where the plane across it touches another branch's lumen, grown
    along the branch by ``margin`` local radii.

    Each lumen is the union of its centreline's inscribed spheres. A sphere of radius rho
    whose centre lies h from a point's plane cuts that plane in a circle of radius
    sqrt(rho^2 - h^2); the point is in a zone when such a circle of another branch both
    reaches the point's own lumen (within half a voxel, where a mask merges two lumens) and
    reaches beyond it by a tenth of its radius (a sphere wholly inside the lumen - the
    same vessel continuing through a junction - changes nothing). Found for all branches
    at once with k-d trees, one per band of sphere radii, so a large trunk's spheres are
    searched only as far as they reach.
    """
    branches = graph.branches
    if not branches:
        return []
    points, u, v, radii = frames if frames is not None else _frames(graph)
    tangent = np.cross(u, v)
    owner = np.concatenate([np.full(len(b.points_lps), b.id) for b in branches])
    hit = np.zeros(len(points), bool)
    slack = 0.5 * voxel
    bands = np.concatenate([[0.0], 2.0 ** np.arange(0, 8), [np.inf]])
    for low, high in zip(bands[:-1], bands[1:]):
        members = np.flatnonzero((radii >= low) & (radii < high))
        if len(members) == 0:
            continue
        reach = 1.1 * radii + radii[members].max() + slack
        found = cKDTree(points[members]).query_ball_point(points, reach, return_sorted=False)
        counts = np.fromiter((len(f) for f in found), int, len(found))
        if counts.sum() == 0:
            continue
        rows = np.repeat(np.arange(len(points)), counts)
        cols = members[np.concatenate([np.asarray(f, int) for f in found])]
        other = owner[rows] != owner[cols]
        rows, cols = rows[other], cols[other]
        w = points[cols] - points[rows]
        h = np.einsum("ij,ij->i", w, tangent[rows])
        off_axis = np.linalg.norm(w - h[:, None] * tangent[rows], axis=1)
        circle = np.sqrt(np.maximum(radii[cols] ** 2 - h ** 2, 0.0))
        own = radii[rows]
        touching = (circle > 0) & (off_axis - circle < own + slack) & (off_axis + circle > 1.1 * own + slack)
        hit[rows[touching]] = True
    for node in graph.bifurcations:  # the junction's own sphere, whatever the radii say
        hit |= np.linalg.norm(points - node.position_lps, axis=1) < node.radius_mm
    zones, start = [], 0
    for branch in branches:
        count = len(branch.points_lps)
        zones.append(_grow(_arc(branch.points_lps), hit[start:start + count], margin * _sane(branch.radii_mm)))
        start += count
    return zones


def _grow(arc: np.ndarray, flags: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``flags`` widened along the arc by ``reach`` (per point) on both sides."""
    if not flags.any():
        return flags.copy()
    seeds = arc[flags]
    index = np.clip(np.searchsorted(seeds, arc), 1, max(len(seeds) - 1, 1))
    nearest = np.minimum(np.abs(arc - seeds[index - 1]), np.abs(arc - seeds[np.minimum(index, len(seeds) - 1)]))
    return flags | (nearest <= reach)


# --- measuring the lumen --------------------------------------------------------------------


@dataclass(frozen=True)
class LumenSections:
    """One branch's lumen at each of its points, as :func:`lumen_diameters` measures it."""

    #: area-equivalent diameter (NaN where not measurable)
    diameter_mm: np.ndarray
    area_mm2: np.ndarray
    #: the lumen around the point is closed and tube-like
    measurable: np.ndarray


def lumen_diameters(mask: Image, graph: CenterlineGraph, progress: Optional[ProgressCallback] = None,
                    graded: Optional[list[np.ndarray]] = None,
                    frames: Optional[tuple[np.ndarray, ...]] = None) -> tuple[LumenSections, ...]:
    """The lumen's cross-section at every point of every branch: the one measurement the
    grading uses (swap this function's body to grade on other cross-sections). ``graded``
    (per branch, default all points) marks the points worth a second, wider look where the
    first window was too narrow: the grading does not use the others.

    Measured on the mask interpolated trilinearly (its 0.5 level lies half-way between
    inside and outside voxel centres, on any spacing), in the plane across the centreline,
    restricted to the region connected to the centreline point, so a neighbouring vessel is
    not counted. Where the plane cannot give a lumen (it leaves the sampled window, or the
    lumen is far wider than the inscribed sphere says: it runs into something else) the
    point is not measurable.

    Limit of any binary mask: where the plane across the vessel runs along thick slices (a
    vessel lying within 2 mm slices of a 0.4 mm grid), the lumen's extent across the slices
    is known only to about half a slice, so the area varies with where the axis sits
    between slices (about +-10 % in diameter for a 6 mm vessel on 2 mm slices).
    """
    wanted = np.concatenate(graded) if graded else None
    area, measurable = _cross_sections(mask, graph, progress, wanted, frames)
    out, start = [], 0
    for branch in graph.branches:
        rows = slice(start, start + len(branch.points_lps))
        start += len(branch.points_lps)
        out.append(LumenSections(2 * np.sqrt(area[rows] / np.pi), area[rows], measurable[rows]))
    return tuple(out)


def _frames(graph: CenterlineGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All branch points (branch after branch), the plane across each (u, v), and its radius.

    The tangent is the chord from one local radius before the point to one after it, so
    the plane follows the vessel and not the last fraction of a voxel of its centreline,
    nor its wobble inside a wide lumen (an aneurysm twice the vessel's width)."""
    points, us, vs, radii = [], [], [], []
    for branch in graph.branches:
        p, r = branch.points_lps, _sane(branch.radii_mm)
        if len(p) >= 2:
            arc = _arc(p)
            step = max(arc[-1] / (len(p) - 1), 1e-6)
            reach = np.maximum(r, step)
            tangent = np.array([np.interp(arc + reach, arc, p[:, d]) - np.interp(arc - reach, arc, p[:, d])
                                for d in range(3)]).T
        else:
            tangent = np.zeros_like(p)
        u, v = across(tangent)
        points.append(p), us.append(u), vs.append(v), radii.append(r)
    if not points:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(points), np.concatenate(us), np.concatenate(vs), np.concatenate(radii)


def _sane(radii: np.ndarray) -> np.ndarray:
    """Radii with failed measurements capped: none above four times the branch's median (a
    2x aneurysm is well below; one sub-voxel radius on the bundled thoracic CTA came out
    at 3.8e7 mm, and a sphere that size would put every branch in a bifurcation zone)."""
    return np.minimum(radii, 4 * float(np.median(radii))) if len(radii) else radii


def _cross_sections(mask: Image, graph: CenterlineGraph, progress: Optional[ProgressCallback],
                    graded: Optional[np.ndarray] = None, frames: Optional[tuple[np.ndarray, ...]] = None,
                    chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Lumen area (mm^2, NaN where not measurable) and measurability at every point of every
    branch (branch after branch)."""
    report = progress or no_progress
    volume = (np.asarray(mask.array) != 0).astype(np.uint8)
    points, u, v, radii = frames if frames is not None else _frames(graph)
    count = len(points)
    # the window follows the local radius, so a tight stenosis is sampled as finely as the vessel;
    # the margin keeps a round lumen off the window's edge. The graph's radius can be too small
    # (a wide aneurysm on thick slices): where the lumen reaches the window's edge and the
    # largest circle around the point in the plane is clearly wider than that radius, the
    # section is measured again in a window twice as wide, as finely sampled.
    half = 1.7 * radii + 0.5 * min(mask.spacing)
    lps_to_ijk = np.linalg.inv(mask.ijk_to_lps())
    area = np.full(count, np.nan)
    measurable = np.zeros(count, bool)
    for first in range(0, count, chunk):
        report(first / max(count, 1), "Measuring lumen cross-sections")
        rows = np.arange(first, min(first + chunk, count))
        for widen in (1.0, 2.0):
            size, inscribed, closed = _section(volume, lps_to_ijk, points[rows], u[rows], v[rows],
                                               widen * half[rows], int(widen) * (_GRID - 1) + 1)
            wide_enough = np.maximum.reduce([radii[rows], inscribed, np.full(len(rows), min(mask.spacing))])
            ok = closed & (np.sqrt(size / np.pi) <= 1.5 * wide_enough)
            measurable[rows] = ok
            area[rows] = np.where(ok, size, np.nan)
            # open to the window's edge around a point whose own circle is wider than the graph's
            # radius: look wider (elsewhere the plane runs into something else: do not)
            rows = rows[~closed & (inscribed > 1.25 * radii[rows]) & (True if graded is None else graded[rows])]
            if len(rows) == 0:
                break
    report(1.0, "Measuring lumen cross-sections")
    return area, measurable


def _section(volume: np.ndarray, lps_to_ijk: np.ndarray, points: np.ndarray, u: np.ndarray, v: np.ndarray,
             half: np.ndarray, samples: int = _GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In the plane (u, v) through each point, a square window of half-width ``half`` sampled
    ``samples`` times along each side: the area (mm^2) of the lumen region holding the point,
    the radius of the largest circle around the point inside it, and whether the region is
    closed (off the window's edge)."""
    grid = np.linspace(-1.0, 1.0, samples)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    h = half[:, None, None, None]
    where = points[:, None, None] + h * (a[None, ..., None] * u[:, None, None]
                                         + b[None, ..., None] * v[:, None, None])
    values = _sample(volume, affine(where, lps_to_ijk)).reshape(-1, samples, samples)
    labels, _ = ndimage.label(values >= 0.5, structure)
    centre = samples // 2
    own = labels[:, centre, centre]
    region = (labels == own[:, None, None]) & (own[:, None, None] > 0)
    step = 2 * half / (samples - 1)
    size = region.sum(axis=(1, 2)) * step ** 2
    edge = region[:, 0].any(axis=1) | region[:, -1].any(axis=1) | region[:, :, 0].any(axis=1) \
        | region[:, :, -1].any(axis=1)
    reach = np.hypot(a, b)[None]  # in units of half
    inscribed = np.where(region, np.inf, reach).reshape(len(points), -1).min(axis=1)
    inscribed = np.where(np.isfinite(inscribed), inscribed, 1.0) * half
    return size, inscribed, (own > 0) & ~edge


def _sample(volume: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """The mask, trilinearly interpolated at (n, 3) continuous (i, j, k) indices."""
    return trilinear(volume, ijk[:, 2], ijk[:, 1], ijk[:, 0])


# --- the healthy reference ------------------------------------------------------------------


@dataclass(frozen=True)
class _Lesion:
    kind: str
    start: int
    stop: int  # exclusive
    flanks: int  # healthy flanks that gave it a reference (0: not graded)

    @property
    def graded(self) -> bool:
        return self.flanks > 0


def _reference(arc: np.ndarray, diameter: np.ndarray, reliable: np.ndarray,
               parameters: StenosisParameters) -> tuple[np.ndarray, list[_Lesion]]:
    """Healthy diameter at each point and the lesions.

    Lesions are runs departing from the robust trend by more than ``lesion_percent``,
    widened to where the lumen is measured back within 5 % of it (runs with no such point
    between them are one lesion); the trend is then fitted again without them (a long
    lesion's shoulders would bend it) and the lesions found again. Across a lesion the
    reference is the straight line joining the mean diameters of its healthy flanks (the
    interpolated reference of QCA); with one flank, the trend scaled to meet it."""
    fit = _robust_trend(arc, diameter, reliable)
    spans = _spans(diameter, fit, reliable, parameters)
    healthy = reliable & ~_covered(spans, len(arc))
    if healthy.sum() >= 3 and healthy.sum() < reliable.sum():
        fit = _robust_trend(arc, diameter, healthy)
        spans = _spans(diameter, fit, reliable, parameters)
        healthy = reliable & ~_covered(spans, len(arc))
    reference = fit.copy()
    lesions = []
    for kind, start, stop in spans:
        size = float(np.median(fit[start:stop]))
        width, guard = parameters.flank_diameters * size, 0.5 * size
        sides = []
        for side, edge in ((np.flatnonzero(healthy[:start])[::-1], start),
                           (np.flatnonzero(healthy[stop:]) + stop, stop - 1)):
            # the nearest healthy points past the lesion's tail (half a diameter: a lesion fades
            # into the vessel), if they are close to it (not across a long stretch the section
            # could not measure)
            side = side[np.abs(arc[side] - arc[edge]) >= guard]
            if len(side) < 2 or abs(arc[side[0]] - arc[edge]) > 2 * width + guard:
                continue
            near = side[np.abs(arc[side] - arc[side[0]]) <= width]
            if len(near) >= 2:
                sides.append((float(arc[near].mean()), float(diameter[near].mean()), float(fit[near].mean())))
        if len(sides) == 2:
            (s0, d0, _), (s1, d1, _) = sides
            reference[start:stop] = d0 + (d1 - d0) * (arc[start:stop] - s0) / max(s1 - s0, 1e-9)
        elif sides:
            reference[start:stop] = fit[start:stop] * sides[0][1] / sides[0][2]
        lesions.append(_Lesion(kind, start, stop, len(sides)))
    return reference, lesions


def _spans(diameter: np.ndarray, fit: np.ndarray, reliable: np.ndarray,
           parameters: StenosisParameters) -> list[tuple[str, int, int]]:
    """(kind, start, stop) of each run departing from ``fit`` (see :func:`_reference`)."""
    level = _lesion_level(parameters) / 100
    spans: list[tuple[str, int, int]] = []
    for kind, departs, back in ((STENOSIS, diameter < fit * (1 - level), diameter < 0.95 * fit),
                                (DILATATION, diameter > fit * (1 + level), diameter > 1.05 * fit)):
        normal = reliable & ~back
        for start, stop in _runs(reliable & departs):
            while start > 0 and reliable[start - 1] and back[start - 1]:
                start -= 1
            while stop < len(diameter) and reliable[stop] and back[stop]:
                stop += 1
            # one lesion, not two, where nothing measured between two runs is back to normal
            if spans and spans[-1][0] == kind and not normal[spans[-1][2]:start].any():
                start = spans.pop()[1]
            spans.append((kind, start, stop))
    return spans


def _covered(spans: list[tuple[str, int, int]], count: int) -> np.ndarray:
    inside = np.zeros(count, bool)
    for _, start, stop in spans:
        inside[start:stop] = True
    return inside


def _robust_trend(arc: np.ndarray, diameter: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """A low-order polynomial through the healthy diameters (in log, as grades are ratios).

    Started by least median of squares (the line, among those through pairs of points,
    whose median residual is smallest: narrowed or widened points up to half the branch
    cannot move it), then refined by least squares on the points within 10 % of it; the
    degree follows the length of the healthy stretch in diameters (constant, line, parabola)."""
    use = reliable.copy()
    if use.sum() < 3:
        use = np.ones(len(arc), bool)
    log = np.log(np.maximum(diameter, 1e-6))
    typical = float(np.median(diameter[use]))
    # the degree follows the stretch the healthy points cover, and beyond it the trend stays
    # flat: a line through a few millimetres of points says nothing about the rest
    low, high = float(arc[use].min()), float(arc[use].max())
    degree = 0 if high - low < 4 * typical else (1 if high - low < 12 * typical else 2)
    degree = min(degree, max(int(use.sum()) - 1, 0))
    where = np.clip(arc, low, high)
    fit = _least_median(arc[use], log[use], degree)
    trend = np.polyval(fit, where)
    for _ in range(8):
        keep = use & (np.abs(log - trend) <= np.log(1.1))
        if keep.sum() < degree + 2:
            break
        trend_new = np.polyval(np.polyfit(arc[keep], log[keep], degree), where)
        if np.allclose(trend_new, trend, atol=1e-6):
            break
        trend = trend_new
    return np.maximum(np.exp(trend), 1e-6)


def _least_median(x: np.ndarray, y: np.ndarray, degree: int, samples: int = 16) -> np.ndarray:
    """Polynomial coefficients (highest first) of a least-median-of-squares start: the
    median for degree 0, else the best line through pairs of up to ``samples`` evenly
    chosen points (degree 2 starts from that line)."""
    if degree == 0 or len(x) < 3:
        return np.array([float(np.median(y))])
    pick = np.unique(np.linspace(0, len(x) - 1, min(samples, len(x))).round().astype(int))
    i, j = np.triu_indices(len(pick), 1)
    xi, xj, yi, yj = x[pick][i], x[pick][j], y[pick][i], y[pick][j]
    good = np.abs(xj - xi) > 1e-9
    slope = (yj[good] - yi[good]) / (xj[good] - xi[good])
    offset = yi[good] - slope * xi[good]
    if len(slope) == 0:
        return np.array([float(np.median(y))])
    residual = np.median(np.abs(y[None, :] - (slope[:, None] * x[None, :] + offset[:, None])), axis=1)
    best = int(np.argmin(residual))
    if np.median(np.abs(y - np.median(y))) <= residual[best]:
        line = np.array([0.0, float(np.median(y))])
    else:
        line = np.array([slope[best], offset[best]])
    return np.concatenate([np.zeros(degree - 1), line])


def _lesion_level(parameters: StenosisParameters) -> float:
    """% departure from which points belong to a lesion (never beyond a reporting threshold)."""
    return min(parameters.lesion_percent, parameters.threshold_percent, 100 * (parameters.dilatation_ratio - 1))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


# --- findings -------------------------------------------------------------------------------


def _findings(profile: DiameterProfile, lesions: list[_Lesion],
              parameters: StenosisParameters) -> list[StenosisFinding]:
    """The graded lesions of one branch that reach their threshold, each at its worst point.

    Values are running medians of three neighbouring measured sections: one section can
    catch something else (or miss a voxel), and the extreme of a noisy profile would
    overstate every lesion."""
    level = _lesion_level(parameters) / 100
    findings = []
    for lesion in lesions:
        if not lesion.graded:
            continue
        window = np.arange(lesion.start, lesion.stop)
        window = window[profile.reliable[window]]
        if len(window) < 2:
            continue  # one section alone is not a lesion
        ratio = _median3(profile.ratio[window])
        diameter = _median3(profile.diameter_mm[window])
        stenosis = lesion.kind == STENOSIS
        at = int(np.argmin(ratio) if stenosis else np.argmax(ratio))
        worst, value = window[at], float(ratio[at])
        if stenosis and 100 * (1 - value) < parameters.threshold_percent:
            continue
        if not stenosis and value < parameters.dilatation_ratio:
            continue
        if not profile.gradable[worst]:
            continue
        beyond = (ratio < 1 - level) if stenosis else (ratio > 1 + level)
        if beyond.sum() < 2:
            continue
        extent = diameter[beyond]
        findings.append(StenosisFinding(
            kind=lesion.kind, branch=profile.branch, position_lps=profile.points_lps[worst].copy(),
            arc_mm=float(profile.arc_mm[worst]), ratio=value,
            reference_diameter_mm=float(profile.reference_mm[worst]),
            minimal_diameter_mm=float(extent.min()), maximal_diameter_mm=float(extent.max()),
            start_arc_mm=float(profile.arc_mm[window[beyond][0]]),
            end_arc_mm=float(profile.arc_mm[window[beyond][-1]]),
            reference_method=INTERPOLATED if lesion.flanks == 2 else CURVE_FITTED))
    return findings


def _median3(values: np.ndarray) -> np.ndarray:
    """Running median of three neighbours (each end repeated once)."""
    if len(values) < 3:
        return values.copy()
    padded = np.concatenate([values[:1], values, values[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
