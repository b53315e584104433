"""Cross-section analysis: the lumen in the plane across the centreline, every few tenths of
a millimetre along every branch, and at landmarks the user places.

Why these measures: reports of aortic and peripheral disease give the lumen's area, its
area-equivalent diameter, and its maximum and minimum diameter in the plane perpendicular
to the centreline (guidelines measure an aneurysm's maximum diameter there, never on axial
slices, which cut a tortuous vessel obliquely). Circularity is reported as minimum /
maximum diameter (1 for a circle, 0.5 for a 2:1 ellipse): unlike 4 pi A / P^2 it does not
drop because the edge of a voxel mask is a staircase.

How: each plane's lumen outline comes from rays cast from the centreline point
(:mod:`.lumen_edge`): the mask's 0.5 level, or the image's half-maximum edge when an image
is given. Stopping at the first wall crossing keeps the lumen around the point and never a
neighbouring vessel cut by the same plane. A section whose rays do not all meet a wall
(the plane runs into a junction or a side branch's mouth) is *open*: its values are NaN
and ``closed`` is False. Minimum and maximum diameters are the outline's calipers (Feret
diameters) over 1 degree steps; the perpendicular diameter is the caliper across the
maximum one (what TotalSegmentator's aorta report gives beside the maximum).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..image import Image
from ..progress import ProgressCallback, no_progress
from .endpoints import SNAP_MM, branch_pieces, components, nearest_segment_voxel, point_name
from .frames import arc_length, section_planes
from .graph import CenterlineGraph
from .lumen_edge import LumenField, edge_distances, ray_directions
from .radius import across

#: Rays per section (7.5 degrees apart).
RAYS = 48
#: Coarse caliper directions over half a turn (3 degrees apart; each extreme is then refined).
CALIPERS = 60
#: Scale of the tangent that orients each section plane, in the largest voxel spacings.
TANGENT_VOXELS = 2.0


@dataclass(frozen=True)
class SectionParameters:
    """Where sections are measured: every ``step_mm`` along each branch, and at landmarks."""

    step_mm: float = 0.5
    landmarks_lps: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        # JSON brings lists: keep the value hashable and comparable whatever the caller sent
        try:
            landmarks = tuple(tuple(float(c) for c in point) for point in self.landmarks_lps)
        except (TypeError, ValueError) as error:
            raise InputError("A landmark is not a point", str(error), "give x, y, z in LPS millimetres") from error
        object.__setattr__(self, "landmarks_lps", landmarks)


@dataclass(frozen=True)
class Section:
    """Measures of a batch of sections (arrays, one value per section; NaN where open)."""

    area_mm2: np.ndarray
    equivalent_diameter_mm: np.ndarray
    min_diameter_mm: np.ndarray
    max_diameter_mm: np.ndarray
    #: the caliper across the maximum diameter
    perpendicular_diameter_mm: np.ndarray
    #: minimum / maximum diameter
    circularity: np.ndarray
    closed: np.ndarray


@dataclass(frozen=True)
class BranchSections:
    """Cross-sections along one branch, from its start (the root side) to its end."""

    branch: int
    arc_mm: np.ndarray
    points_lps: np.ndarray
    area_mm2: np.ndarray
    equivalent_diameter_mm: np.ndarray
    min_diameter_mm: np.ndarray
    max_diameter_mm: np.ndarray
    circularity: np.ndarray
    perpendicular_diameter_mm: np.ndarray
    #: the outline closed around the point (False: values are NaN)
    closed: np.ndarray


@dataclass(frozen=True)
class LandmarkMeasurement:
    """The lumen in the plane across the centreline at the centreline point nearest a landmark."""

    point_lps: np.ndarray
    centerline_point_lps: np.ndarray
    #: distance from the landmark to that centreline point
    distance_mm: float
    branch: int
    arc_mm: float
    max_diameter_mm: float
    min_diameter_mm: float
    perpendicular_diameter_mm: float
    area_mm2: float
    closed: bool


def tangent_scale(field: LumenField) -> float:
    """Scale (mm) of the Gaussian derivative giving the section planes' normals: two of the
    largest voxels, enough to ignore the centreline's sub-voxel jitter. A larger scale
    gains nothing in a branch's middle (a symmetric window does not tilt the tangent on a
    bend) but tilts it at a curved end, where the window becomes one-sided."""
    return TANGENT_VOXELS * float(max(field.spacing))


def check_section_parameters(parameters: SectionParameters) -> None:
    """InputError for a step that is not a positive length or a landmark that is not a point."""
    if not (np.isfinite(parameters.step_mm) and parameters.step_mm > 0):
        raise InputError("The cross-section step is invalid", f"it is {parameters.step_mm} mm",
                         "give a positive distance in millimetres (0.5 to 1 is usual)")
    for point in parameters.landmarks_lps:
        if len(point) != 3 or not np.all(np.isfinite(np.asarray(point, float))):
            raise InputError("A landmark is not a point", f"it is {point!r}", "give x, y, z in LPS millimetres")


def measure_sections(field: LumenField, points_lps: np.ndarray, tangents_lps: Optional[np.ndarray] = None,
                     u: Optional[np.ndarray] = None, v: Optional[np.ndarray] = None,
                     reach_mm: Optional[np.ndarray] = None, progress: Optional[ProgressCallback] = None) -> Section:
    """The lumen in the plane through each point, spanned by (u, v) (or across each tangent).

    The function stenosis grading and any other caller can use for points of their own.
    ``reach_mm``: how far rays look (default three times the point's distance to the
    nearest voxel centre outside the lumen, plus two voxels: enough for a point on the
    centreline; give more for points that may lie off it)."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    if u is None or v is None:
        u, v = across(np.asarray(tangents_lps, float).reshape(-1, 3))
    directions, angles = ray_directions(u, v, RAYS)
    voxel = max(field.spacing)
    low, high = field.centre_bounds(points)  # the distance to the nearest outside voxel centre (or bounds)
    reach = 3.0 * high + 2.0 * voxel if reach_mm is None else np.broadcast_to(np.asarray(reach_mm, float),
                                                                               (len(points),))
    # each ray marches only until it meets the wall (:func:`.lumen_edge.edge_distances`)
    distances = edge_distances(field, points, directions, reach, field.surely_inside(points, low),
                               progress=progress, message="Measuring sections along the branches")
    finest = 2 * field.edge_uncertainty(directions).min(axis=1)  # the finest voxel size in each plane
    return outline_measures(distances, angles, smooth_outline(distances, angles, finest))


def smooth_outline(distances: np.ndarray, angles: np.ndarray, sigma_mm: np.ndarray) -> np.ndarray:
    """Each closed outline r(angle) smoothed (Gaussian) over ``sigma_mm`` of its perimeter.

    The interpolated edge of a voxel mask is a staircase; calipers over it pick its outward
    corners (a 12 mm circle read 12.3 mm on a 0.5 mm grid). A lumen is smooth at the scale
    of a voxel, so smoothing over the plane's finest voxel removes the stairs (12.15 mm)
    and leaves shapes larger than a voxel as they were. Not over a coarser voxel: that
    would round off an ellipse's tips (a 10 x 6 mm ellipse on an oblique 0.4 x 0.4 x 2 mm
    grid lost 0.8 mm of its length); across thick slices the edge stays known only to
    about half a slice. Open outlines (NaN rays) are left alone."""
    out = np.array(distances, float, copy=True)
    closed = np.all(np.isfinite(out), axis=1)
    if not closed.any() or len(angles) < 3:
        return out
    step = float(angles[1] - angles[0])
    rows = np.flatnonzero(closed)
    width = np.asarray(sigma_mm, float)[rows] / np.maximum(np.median(out[rows], axis=1) * step, 1e-9)
    # a wrapped Gaussian kernel per row (widths differ), applied as a circular convolution
    offsets = np.arange(len(angles))
    offsets = np.minimum(offsets, len(angles) - offsets).astype(float)
    kernel = np.exp(-0.5 * (offsets[None] / np.maximum(width[:, None], 1e-6)) ** 2)
    kernel /= kernel.sum(axis=1, keepdims=True)
    out[rows] = np.real(np.fft.ifft(np.fft.fft(out[rows], axis=1) * np.fft.fft(kernel, axis=1), axis=1))
    return out


def outline_measures(distances: np.ndarray, angles: np.ndarray, smoothed: Optional[np.ndarray] = None) -> Section:
    """Area, diameters and circularity of star-shaped outlines given as ray distances (n, rays).

    The area is the polar integral 1/2 of r(angle)^2 over the turn, by the trapezoid rule on
    the evenly spaced rays (spectrally accurate for a smooth closed outline, where the
    polygon through the edge points would cut every arc short), on the outline as
    measured: the interpolated edge is unbiased on average, so its area is too. The
    calipers come from ``smoothed`` when given (:func:`smooth_outline`: a maximum over
    directions would pick the staircase's corners)."""
    closed = np.all(np.isfinite(distances), axis=1) & (len(angles) >= 3)
    r = np.where(closed[:, None], distances, 0.0)
    area = 0.5 * (2 * np.pi / max(len(angles), 1)) * (r ** 2).sum(axis=1)
    if smoothed is not None:
        r = np.where(closed[:, None], smoothed, 0.0)
    largest, smallest, across_widest = calipers(r * np.cos(angles), r * np.sin(angles))

    def kept(values: np.ndarray) -> np.ndarray:
        return np.where(closed, values, np.nan)

    return Section(kept(area), kept(2 * np.sqrt(area / np.pi)), kept(smallest), kept(largest), kept(across_widest),
                   kept(smallest / np.maximum(largest, 1e-12)), closed)


def calipers(x: np.ndarray, y: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest and smallest caliper (Feret) width of each outline (rows of x, y), and the
    width across the largest: widths over ``CALIPERS`` directions, then each extreme
    refined to a tenth of that step around the best coarse direction (batched matrix
    products, a few hundred outlines at a time: their projections, 3 MB for 256 outlines,
    stay in the cache; 2,048 at a time took 2.6 against 1.7 ms for the CTA aorta's coarse
    widths)."""
    out = np.zeros((3, len(x)))
    for first in range(0, len(x), chunk):
        rows = slice(first, first + chunk)
        out[:, rows] = _calipers(np.stack([x[rows], y[rows]], axis=-1).astype(np.float32))
    return out[0], out[1], out[2]


def _calipers(points: np.ndarray) -> np.ndarray:
    def widths(phi: np.ndarray) -> np.ndarray:  # phi: (m,) for all rows, or (n, m) per row
        unit = np.stack([np.cos(phi), np.sin(phi)], axis=-2).astype(np.float32)  # (2, m) or (n, 2, m)
        largest, smallest = _extremes(points @ unit)  # (n, rays, m) projections
        return largest - smallest

    rows = np.arange(len(points))
    step = np.pi / CALIPERS
    coarse = np.arange(CALIPERS) * step
    width = widths(coarse)
    fine = np.linspace(-step, step, 21)
    best = []
    for pick in (np.argmax, np.argmin):
        around = coarse[pick(width, axis=1)][:, None] + fine[None]
        refined = widths(around)
        k = pick(refined, axis=1)
        best.append((refined[rows, k], around[rows, k]))
    perpendicular = widths(best[0][1][:, None] + np.pi / 2)[:, 0]
    return np.stack([best[0][0], best[1][0], perpendicular]).astype(float)


def _extremes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum and minimum over axis 1 of (n, m, k) values, by halving that axis: each step
    one element-wise maximum (minimum) of two large halves, where ``max(axis=1)`` runs a
    short loop over k for every (n, m) pair (2.1 against 0.5 ms for the CTA aorta's refined
    calipers). Exact, as any order of maxima is."""
    largest, smallest = values, values
    while largest.shape[1] > 1:
        half = largest.shape[1] // 2
        top, low = np.maximum(largest[:, :half], largest[:, half:2 * half]), \
            np.minimum(smallest[:, :half], smallest[:, half:2 * half])
        if largest.shape[1] % 2:  # the odd one out joins the first
            np.maximum(top[:, 0], largest[:, -1], out=top[:, 0])
            np.minimum(low[:, 0], smallest[:, -1], out=low[:, 0])
        largest, smallest = top, low
    return largest[:, 0], smallest[:, 0]


def resample_branch(points_lps: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step_mm`` along a polyline from its start (the end point included when
    the length is not a multiple of the step), and their arc lengths."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    arc = arc_length(points)
    if len(points) < 2 or arc[-1] <= 0:
        return points[:1].copy(), np.zeros(min(len(points), 1))
    where = np.arange(0.0, arc[-1] + 1e-9, step_mm)
    if arc[-1] - where[-1] > 0.25 * step_mm:
        where = np.append(where, arc[-1])
    return np.column_stack([np.interp(where, arc, points[:, d]) for d in range(3)]), where


def branch_sections(field: LumenField, graph: CenterlineGraph, parameters: SectionParameters = SectionParameters(),
                    progress: Optional[ProgressCallback] = None) -> tuple[BranchSections, ...]:
    """Cross-sections every ``parameters.step_mm`` along every branch of ``graph``."""
    check_section_parameters(parameters)
    report = progress or no_progress
    pieces, arcs, us, vs = [], [], [], []
    for branch in graph.branches:
        points, arc = resample_branch(branch.points_lps, parameters.step_mm)
        _, u, v = section_planes(points, tangent_scale(field))
        pieces.append(points), arcs.append(arc), us.append(u), vs.append(v)
    if not pieces:
        return ()
    measured = measure_sections(field, np.concatenate(pieces), u=np.concatenate(us), v=np.concatenate(vs),
                                progress=progress)
    result, start = [], 0
    for branch, points, arc in zip(graph.branches, pieces, arcs):
        rows = slice(start, start + len(points))
        start += len(points)
        result.append(BranchSections(
            branch.id, arc, points, measured.area_mm2[rows], measured.equivalent_diameter_mm[rows],
            measured.min_diameter_mm[rows], measured.max_diameter_mm[rows], measured.circularity[rows],
            measured.perpendicular_diameter_mm[rows], measured.closed[rows]))
    report(1.0, "Measuring sections along the branches")
    return tuple(result)


def nearest_centerline_point(graph: CenterlineGraph, point_lps: Sequence[float],
                             branch_ids: Optional[Sequence[int]] = None) -> tuple[int, float, np.ndarray]:
    """Branch, arc length (mm) and position of the centreline point nearest ``point_lps``
    (on the polylines' segments, not only their vertices), among ``branch_ids`` when given."""
    point = np.asarray(point_lps, float)
    best = (np.inf, -1, 0.0, point)
    for branch in graph.branches:
        if branch_ids is not None and branch.id not in branch_ids:
            continue
        p = branch.points_lps
        arc = arc_length(p)
        if len(p) == 1:
            candidates, where = p, arc
        else:
            a, b = p[:-1], p[1:]
            segment = b - a
            t = np.clip(((point - a) * segment).sum(axis=1) / np.maximum((segment ** 2).sum(axis=1), 1e-18), 0, 1)
            candidates = a + t[:, None] * segment
            where = arc[:-1] + t * (arc[1:] - arc[:-1])
        gaps = np.linalg.norm(candidates - point, axis=1)
        k = int(np.argmin(gaps))
        if gaps[k] < best[0]:
            best = (float(gaps[k]), branch.id, float(where[k]), candidates[k].copy())
    if best[1] < 0:
        raise InputError("Landmarks cannot be measured", "there is no centerline", "check the vessel segment")
    return best[1], best[2], best[3]


def measure_landmarks(field: LumenField, graph: CenterlineGraph, landmarks_lps: Sequence[Sequence[float]],
                      mask: Image) -> tuple[LandmarkMeasurement, ...]:
    """Diameters and area at each landmark, in the plane across the centreline at the
    centreline point nearest to it on the same piece of ``mask`` (the segment).

    A landmark is placed as a source or target is: one off the image, farther than
    ``SNAP_MM`` from the segment, or on a piece without a centreline is refused, naming it
    (the nearest centreline anywhere would be another vessel's diameters under its name)."""
    if len(landmarks_lps) == 0:
        return ()
    check_section_parameters(SectionParameters(landmarks_lps=tuple(tuple(p) for p in landmarks_lps)))
    labels = components(mask)
    pieces = branch_pieces(graph, mask, labels)
    by_id = {branch.id: branch for branch in graph.branches}
    found = []
    for n, point in enumerate(landmarks_lps):
        name = f"Landmark {n + 1}"
        _, piece = nearest_segment_voxel(point, name, mask, labels, SNAP_MM)
        on_piece = [b.id for b in graph.branches if pieces[b.id] == piece]
        if not on_piece:
            raise InputError(f"{name} at {point_name(point)} lies on a piece of the segment without a "
                             "centerline", "no centerline was traced on that piece (no source "
                             "or target on it, or too small to hold a vessel)", "place it on a vessel with a "
                             "centerline")
        branch_id, arc, nearest = nearest_centerline_point(graph, point, on_piece)
        branch = by_id[branch_id]
        radius = float(np.interp(arc, arc_length(branch.points_lps), branch.radii_mm))
        gap = float(np.linalg.norm(nearest - np.asarray(point, float)))
        if gap > radius + SNAP_MM:
            raise InputError(f"{name} at {point_name(point)} lies {gap:.1f} mm from the nearest centerline",
                             f"that is outside the vessel there (radius {radius:.1f} mm): its diameters would not "
                             "be the landmark's", "place it on a vessel with a centerline (or add a target in "
                             "its vessel)")
        found.append((branch_id, arc, nearest))
    centres = np.array([f[2] for f in found])
    tangents, reach = [], []
    for branch_id, arc, _ in found:
        branch = by_id[branch_id]
        t, _, _ = section_planes(branch.points_lps, tangent_scale(field))
        along = arc_length(branch.points_lps)
        tangents.append([np.interp(arc, along, t[:, d]) for d in range(3)])
        # the nearest centreline point may sit off the lumen's centre (a user's point on a
        # loop or a spur): look as far as three times the branch's widest radius
        reach.append(3.0 * float(np.max(branch.radii_mm)) + 2.0 * max(field.spacing))
    measured = measure_sections(field, centres, np.array(tangents), reach_mm=np.array(reach))
    return tuple(
        LandmarkMeasurement(np.asarray(point, float), centres[i], float(np.linalg.norm(centres[i] - np.asarray(point))),
                            found[i][0], found[i][1], float(measured.max_diameter_mm[i]),
                            float(measured.min_diameter_mm[i]), float(measured.perpendicular_diameter_mm[i]),
                            float(measured.area_mm2[i]), bool(measured.closed[i]))
        for i, point in enumerate(landmarks_lps))
