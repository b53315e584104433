"""Stenosis along each branch: diameter profile, healthy reference, % diameter stenosis, findings.

Why cross-sectional area: the inscribed-sphere radius sees only the narrowest direction of
a lumen, while a stenosis grade compares lumen sizes; the area of the lumen in the plane
across the centreline, as an equivalent diameter ``2 sqrt(A / pi)``, is what quantitative
angiography and CTA reading report. It is measured on the mask interpolated trilinearly
(its 0.5 level lies half-way between inside and outside voxel centres, on any spacing) and
restricted to the region around the centreline, so a neighbouring vessel is not counted.
Where the plane cannot give a lumen (it runs into a bifurcation, leaves the sampled window,
or is far wider than the inscribed sphere says) the profile falls back to ``2 x radius``
and the point is not used for grading.

Why the reference comes from the flanks: vessels taper, so a single "normal" diameter for
a branch misgrades lesions. Each narrowing is graded against the straight line joining the
mean healthy diameter just before it and just after it (what QCA calls an interpolated
reference); the healthy points are found by a robust fit that ignores narrowed points.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Image
from ..progress import ProgressCallback, no_progress
from .graph import BIFURCATION, ENDPOINT, CenterlineGraph
from .radius import affine, across

#: Samples across each cross-section (odd, so one sits on the centreline).
_GRID = 41


@dataclass(frozen=True)
class StenosisParameters:
    """What counts as a finding and how the healthy reference is found."""

    #: report narrowings of at least this % diameter stenosis
    threshold_percent: float = 50.0
    #: a run of points narrower than the healthy fit by this % is examined as a lesion
    lesion_percent: float = 15.0
    #: length of each healthy flank, in reference diameters
    flank_diameters: float = 1.5


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
    #: True where the diameter is trustworthy (a closed lumen, away from bifurcations and ends)
    reliable: np.ndarray
    reference_mm: np.ndarray
    stenosis_percent: np.ndarray


@dataclass(frozen=True)
class StenosisFinding:
    """One narrowing at or above the threshold, at its minimal lumen diameter."""

    branch: int
    position_lps: np.ndarray
    arc_mm: float
    stenosis_percent: float
    minimal_diameter_mm: float
    reference_diameter_mm: float
    #: extent of the narrowing along the branch (where it is narrower than the reference
    #: by more than ``lesion_percent``)
    start_arc_mm: float
    end_arc_mm: float

    @property
    def length_mm(self) -> float:
        return self.end_arc_mm - self.start_arc_mm


@dataclass(frozen=True)
class StenosisReport:
    profiles: tuple[DiameterProfile, ...]
    findings: tuple[StenosisFinding, ...]


def analyse_stenoses(mask: Image, graph: CenterlineGraph, parameters: StenosisParameters = StenosisParameters(),
                     progress: Optional[ProgressCallback] = None) -> StenosisReport:
    """Diameter profiles of every branch of ``graph`` on ``mask``, and the findings above threshold."""
    if not 0 < parameters.threshold_percent < 100:
        raise InputError("The stenosis threshold is invalid", f"it is {parameters.threshold_percent} %",
                         "give a percentage between 0 and 100 (50 is usual)")
    profiles = diameter_profiles(mask, graph, parameters, progress)
    findings = [f for profile in profiles for f in _findings(profile, parameters)]
    findings.sort(key=lambda f: -f.stenosis_percent)
    return StenosisReport(profiles, tuple(findings))


def diameter_profiles(mask: Image, graph: CenterlineGraph, parameters: StenosisParameters = StenosisParameters(),
                      progress: Optional[ProgressCallback] = None) -> tuple[DiameterProfile, ...]:
    """Per branch: diameters along it, the healthy reference and the % stenosis at each point."""
    sections = _cross_sections(mask, graph, progress)
    profiles, start = [], 0
    for branch in graph.branches:
        rows = slice(start, start + len(branch.points_lps))
        start += len(branch.points_lps)
        points = branch.points_lps
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        ok = sections.measurable[rows]
        area = sections.area[rows]
        method = np.where(ok, "area", "radius")
        diameter = np.where(ok, 2 * np.sqrt(np.nan_to_num(area) / np.pi), 2 * branch.radii_mm)
        reliable = ok & _away_from_nodes(graph, branch.start_node, branch.end_node, arc,
                                         branch.radii_mm, max(mask.spacing))
        reference = _reference(arc, diameter, reliable, parameters)
        stenosis = np.clip(100 * (1 - diameter / np.maximum(reference, 1e-9)), 0, 100)
        profiles.append(DiameterProfile(branch.id, arc, points, diameter, area, method,
                                        reliable, reference, stenosis))
    return tuple(profiles)


def _away_from_nodes(graph: CenterlineGraph, start: int, end: int, arc: np.ndarray,
                     radii: np.ndarray, voxel: float) -> np.ndarray:
    """False where the lumen is not a tube: within a bifurcation's inscribed sphere (plus a
    half), where lumens merge, and within about a radius of a free end, where the lumen
    closes over its cap (a vessel's end is not a stenosis)."""
    keep = np.ones(len(arc), bool)
    typical = float(np.median(radii))
    for node, distance in ((graph.nodes[start], arc), (graph.nodes[end], arc[-1] - arc)):
        if node.kind == BIFURCATION:
            keep &= distance > 1.5 * node.radius_mm
        elif node.kind == ENDPOINT:
            keep &= distance > 1.2 * typical + voxel
    return keep


def _frames(graph: CenterlineGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All branch points (branch after branch), the plane across each (u, v), and its radius.

    The tangent is a Gaussian derivative over about a radius, so the plane follows the
    vessel and not the last fraction of a voxel of its centreline."""
    points, us, vs, radii = [], [], [], []
    for branch in graph.branches:
        p, r = branch.points_lps, branch.radii_mm
        if len(p) >= 2:
            arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
            step = max(arc[-1] / (len(p) - 1), 1e-6)
            width = max(float(np.median(r)) / step, 1.0)
            tangent = ndimage.gaussian_filter1d(p, width, axis=0, order=1, mode="nearest")
        else:
            tangent = np.zeros_like(p)
        u, v = across(tangent)
        points.append(p), us.append(u), vs.append(v), radii.append(r)
    if not points:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(points), np.concatenate(us), np.concatenate(vs), np.concatenate(radii)


@dataclass(frozen=True)
class _Sections:
    area: np.ndarray        # mm^2, NaN where not measurable
    measurable: np.ndarray  # the lumen around the point is closed and tube-like


def _cross_sections(mask: Image, graph: CenterlineGraph, progress: Optional[ProgressCallback],
                    chunk: int = 256) -> _Sections:
    """Lumen cross-section at every point of every branch (branch after branch).

    Limit of any binary mask: where the plane across the vessel runs along thick slices (a
    vessel lying within 2 mm slices of a 0.4 mm grid), the lumen's extent across the slices
    is known only to about half a slice, so the area varies with where the axis sits
    between slices (about +-10 % in diameter for a 6 mm vessel on 2 mm slices).
    """
    report = progress or no_progress
    volume = (np.asarray(mask.array) != 0).astype(np.uint8)
    points, u, v, radii = _frames(graph)
    count = len(points)
    # the window follows the local radius, so a tight stenosis is sampled as finely as the vessel
    # (a lumen wider than 1.5 radii is not measurable anyway); the margin keeps a round lumen
    # off the window's edge
    half = 1.7 * radii + 0.5 * min(mask.spacing)
    grid = np.linspace(-1.0, 1.0, _GRID)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    lps_to_ijk = np.linalg.inv(mask.ijk_to_lps())
    out = _Sections(np.full(count, np.nan), np.zeros(count, bool))
    centre = _GRID // 2
    for first in range(0, count, chunk):
        report(first / max(count, 1), "Measuring lumen cross-sections")
        rows = slice(first, min(first + chunk, count))
        h = half[rows, None, None, None]
        samples = points[rows, None, None] + h * (a[None, ..., None] * u[rows, None, None]
                                                  + b[None, ..., None] * v[rows, None, None])
        values = _sample(volume, affine(samples, lps_to_ijk)).reshape(-1, _GRID, _GRID)
        labels, _ = ndimage.label(values >= 0.5, structure)
        own = labels[:, centre, centre]
        region = (labels == own[:, None, None]) & (own[:, None, None] > 0)
        area = region.sum(axis=(1, 2)) * (2 * half[rows] / (_GRID - 1)) ** 2
        edge = region[:, 0].any(axis=1) | region[:, -1].any(axis=1) | region[:, :, 0].any(axis=1) \
            | region[:, :, -1].any(axis=1)
        ok = (own > 0) & ~edge & (np.sqrt(area / np.pi) <= 1.5 * np.maximum(radii[rows], min(mask.spacing)))
        out.measurable[rows] = ok
        out.area[rows] = np.where(ok, area, np.nan)
    report(1.0, "Measuring lumen cross-sections")
    return out


def _sample(volume: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """The mask, trilinearly interpolated at (n, 3) continuous (i, j, k) indices."""
    return ndimage.map_coordinates(volume, np.ascontiguousarray(ijk[:, ::-1].T), order=1,
                                   mode="constant", cval=0.0, output=np.float32)


def _reference(arc: np.ndarray, diameter: np.ndarray, reliable: np.ndarray,
               parameters: StenosisParameters) -> np.ndarray:
    """Healthy diameter at each point: a robust trend, replaced across each lesion by the
    line joining the mean diameters of its healthy flanks."""
    fit = _robust_trend(arc, diameter, reliable)
    reference = np.maximum(fit, diameter)
    narrowed = reliable & (diameter < fit * (1 - _lesion_level(parameters) / 100))
    runs = _runs(narrowed)
    in_lesion = np.zeros(len(arc), bool)
    spans = []
    for start, stop in runs:  # widen each run to where the lumen is back to ~normal
        while start > 0 and diameter[start - 1] < 0.95 * fit[start - 1]:
            start -= 1
        while stop < len(arc) and diameter[stop] < 0.95 * fit[stop]:
            stop += 1
        spans.append((start, stop))
        in_lesion[start:stop] = True
    healthy = reliable & ~in_lesion
    for start, stop in spans:
        width = parameters.flank_diameters * float(np.median(fit[start:stop]))
        before = healthy & (arc < arc[start]) & (arc >= arc[start] - width)
        after = healthy & (arc >= arc[stop - 1]) & (arc <= arc[stop - 1] + width)
        sides = [(arc[m].mean(), diameter[m].mean()) for m in (before, after) if m.sum() >= 2]
        if not sides:
            continue
        if len(sides) == 1:
            line = np.full(stop - start, sides[0][1])
        else:
            (s0, d0), (s1, d1) = sides
            line = d0 + (d1 - d0) * (arc[start:stop] - s0) / max(s1 - s0, 1e-9)
        reference[start:stop] = np.maximum(line, diameter[start:stop])
    return reference


def _robust_trend(arc: np.ndarray, diameter: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """A low-order polynomial through the healthy diameters, narrowed points iteratively left out."""
    use = reliable.copy()
    if use.sum() < 3:
        use = np.ones(len(arc), bool)
    typical = float(np.median(diameter[use]))
    span = arc[-1] - arc[0]
    degree = 0 if span < 4 * typical else (1 if span < 12 * typical else 2)
    degree = min(degree, max(int(use.sum()) - 1, 0))
    fit = np.full(len(arc), typical)
    for _ in range(8):
        coefficients = np.polyfit(arc[use], diameter[use], degree)
        fit = np.polyval(coefficients, arc)
        keep = reliable & (diameter >= 0.9 * fit)
        if keep.sum() < degree + 2 or np.array_equal(keep, use):
            break
        use = keep
    return np.maximum(fit, 1e-6)


def _lesion_level(parameters: StenosisParameters) -> float:
    """% narrowing from which points belong to a lesion (never above the reporting threshold)."""
    return min(parameters.lesion_percent, parameters.threshold_percent)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _findings(profile: DiameterProfile, parameters: StenosisParameters) -> list[StenosisFinding]:
    graded = profile.reliable & (profile.stenosis_percent >= _lesion_level(parameters))
    findings = []
    for start, stop in _runs(graded):
        window = np.arange(start, stop)
        worst = window[np.argmax(profile.stenosis_percent[window])]
        percent = float(profile.stenosis_percent[worst])
        if percent < parameters.threshold_percent:
            continue
        findings.append(StenosisFinding(
            branch=profile.branch, position_lps=profile.points_lps[worst].copy(),
            arc_mm=float(profile.arc_mm[worst]), stenosis_percent=percent,
            minimal_diameter_mm=float(profile.diameter_mm[worst]),
            reference_diameter_mm=float(profile.reference_mm[worst]),
            start_arc_mm=float(profile.arc_mm[start]), end_arc_mm=float(profile.arc_mm[stop - 1])))
    return findings
