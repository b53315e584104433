"""Branch radii measured to the lumen's interpolated edge instead of voxel centres.

The centreline graph measures each radius as the distance to the nearest *background
voxel centre* (:class:`.radius.BoundaryDistance`): exact for the voxels, but the wall lies
between the last lumen centre and the first background centre, so that radius runs long
(0.20 mm on VMTK's CE-MRA, where VMTK's ``MaximumInscribedSphereRadius`` is measured to a
sub-voxel surface). This post-pass replaces it, point by point, with the radius of the
largest circle centred on the centreline inside the lumen's edge in the plane across the
vessel (:mod:`.lumen_edge`: the mask's 0.5 level, or the image's half maximum).

Why a fitted outline and not the nearest edge crossing: the interpolated edge of a voxel
mask is a staircase, and the smallest of 72 ray distances lands on its inward corners
(0.37 mm short on the CE-MRA). The lumen's outline is smooth at voxel scale: an ellipse is
fitted to the edge points (direct least squares, each point weighted by how precisely the
grid places an edge crossed that way), and the radius is the distance from the centreline
point to that ellipse. Nothing in it is tuned to a data set. (A first version fitted a
second-order Fourier series r(angle) instead; it gave 0.096 mm on the CE-MRA but read a
5 x 3 mm elliptical lumen's radius 0.19 mm short, where the ellipse reads 0.03 mm short.)

Where the plane samples the edge unevenly (the coarsest direction in it is more than
``EVEN_SAMPLING`` times the finest: a vessel lying within 2 mm slices of a 0.4 mm grid),
the edge across the slices is known only to half a slice, and a minimum over it is biased
by that half slice; there the voxel-centre radius, which takes its minimum along the finely
sampled directions, is kept. Where too few rays find a wall (the plane opens into a
junction) the voxel-centre radius is kept too.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from ..progress import ProgressCallback, no_progress
from .frames import section_planes
from .graph import CenterlineGraph
from .lumen_edge import LEVEL, LumenField, edge_distances, ray_directions

#: Rays per cross-section (5 degrees apart; 48 rays gave 0.097 mm on the CE-MRA instead of 0.092).
RAYS = 72
#: Largest ratio of edge uncertainty between two directions of one plane for which the
#: fitted contour is trusted (the CE-MRA's 0.88 x 1.5 mm grid: 1.7; 0.4 x 0.4 x 2 mm: 5).
EVEN_SAMPLING = 2.0
#: Share of rays that must meet a wall for a section to count as closed.
CLOSED_SHARE = 2 / 3


def subvoxel_radii(graph: CenterlineGraph, field: LumenField,
                   progress: Optional[ProgressCallback] = None) -> CenterlineGraph:
    """``graph`` with every branch's ``radii_mm`` measured to the lumen's interpolated edge."""
    report = progress or no_progress
    branches = list(graph.branches)
    if not branches:
        return graph
    report(0.0, "Measuring sub-voxel radii")
    points = np.concatenate([b.points_lps for b in branches])
    start = np.concatenate([[0], np.cumsum([len(b.points_lps) for b in branches])])
    radii = inscribed_radii(field, points, np.concatenate([b.radii_mm for b in branches]),
                            [slice(start[i], start[i + 1]) for i in range(len(branches))], report)
    new = [replace(b, radii_mm=radii[start[i]:start[i + 1]]) for i, b in enumerate(branches)]
    report(1.0, "Measuring sub-voxel radii")
    return replace(graph, branches=tuple(new))


def inscribed_radii(field: LumenField, points_lps: np.ndarray, voxel_radii: np.ndarray,
                    branches: list[slice], progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Radius of the largest circle inside the fitted lumen outline at each point.

    ``voxel_radii`` (the graph's radii, which may come from another mask: the topology
    clean-up's) set how far rays look and the scale of the tangents; ``branches`` say which
    points form one polyline (tangents are taken along each). Where the outline cannot be
    trusted the field's own voxel-centre radius is kept, so every radius is the measured
    lumen's: 0 at a point outside it (a centreline crossing a cavity or tunnel of the
    segment that the clean-up closed)."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    voxel_radii = np.asarray(voxel_radii, float)
    u = np.zeros_like(points)
    v = np.zeros_like(points)
    for rows in branches:
        scale = float(np.median(voxel_radii[rows])) if rows.stop > rows.start else 1.0
        _, u[rows], v[rows] = section_planes(points[rows], scale)
    directions, angles = ray_directions(u, v, RAYS)
    own, wall = field.nearest_wall(points)
    start = field.surely_inside(points, own)
    reach = 3.0 * np.maximum(voxel_radii, own) + 2.0 * max(field.spacing)
    distances = edge_distances(field, points, directions, reach, start, progress=progress,
                               message="Measuring sub-voxel radii")
    uncertainty = field.edge_uncertainty(directions)
    fitted = fitted_minimum(distances, angles, uncertainty)
    even = uncertainty.max(axis=1) <= EVEN_SAMPLING * uncertainty.min(axis=1)
    radii = np.where(even & np.isfinite(fitted), fitted, own)
    radii = np.minimum(radii, _notch(field, points, wall, own, start, radii))
    inside = field.sample(points) >= LEVEL
    # Outside the image's lumen edge but on a line traced in the segment (where the contrast fades
    # at a thin vessel's end): the segment's own voxel radius, not 0. Outside a mask-only field
    # the point lies outside the segment itself: 0.
    outside = np.asarray(voxel_radii, float) if field.from_image else 0.0
    return np.where(inside, radii, outside)


def _notch(field: LumenField, points: np.ndarray, wall: np.ndarray, own: np.ndarray, start: np.ndarray,
           radii: np.ndarray) -> np.ndarray:
    """The distance to the lumen's edge towards the nearest outside voxel centre (in any
    direction, not only in the plane), where that edge lies closer than ``radii`` by more
    than the voxel's extent that way; inf elsewhere.

    The fitted outline is smooth by design (it steps over a voxel mask's staircase), so it
    also steps over a real notch: a hole or a cavity of the segment beside the centreline,
    a flap, the carina of a bifurcation, the cap of an end. A wall point closer than the
    outline by more than a voxel cannot be the staircase; the largest sphere centred there
    inside the lumen reaches no further than it (VMTK's maximum inscribed sphere is bounded
    the same way)."""
    out = np.full(len(points), np.inf)
    towards = wall - points
    length = np.linalg.norm(towards, axis=1)
    rows = np.flatnonzero(length > 1e-9)
    if not len(rows):
        return out
    direction = towards[rows] / length[rows, None]
    step = 0.5 * min(field.spacing)
    edge = edge_distances(field, points[rows], direction[:, None], own[rows] + step, start[rows])[:, 0]
    deep = np.isfinite(edge) & (edge < radii[rows] - 2.0 * field.edge_uncertainty(direction))
    out[rows[deep]] = edge[deep]
    return out


def fitted_minimum(distances: np.ndarray, angles: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
    """Distance from the rays' common origin to the ellipse fitted to their end points, per
    row; NaN where fewer than ``CLOSED_SHARE`` of the rays meet a wall, where the fit is not
    an ellipse, or where the origin lies outside it (:func:`fitted_ellipse`)."""
    return fitted_ellipse(distances, angles, uncertainty)[0]


def fitted_ellipse(distances: np.ndarray, angles: np.ndarray,
                   uncertainty: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ellipse fitted to each row's ray end points: the distance from the rays' origin to
    it, its centre (n, 2: along the angles' 0 and 90 degree directions) and its smaller
    semi-axis (the radius of the largest circle inside it); NaN where fewer than
    ``CLOSED_SHARE`` of the rays meet a wall, where the fit is not an ellipse, or where the
    origin lies outside it.

    The fit is the direct least-squares ellipse of Fitzgibbon, Pilu and Fisher in Halir and
    Flusser's stable form (a 3 x 3 eigenproblem per row, all rows at once), each end point
    weighted by how precisely the grid places it (1 / uncertainty^2). Rays running more than
    1.5 times the row's median are left out: they leave through a side branch or a
    junction, not through this vessel's wall."""
    count = len(distances)
    result = np.full(count, np.nan)
    centre = np.full((count, 2), np.nan)
    semi_minor = np.full(count, np.nan)
    finite = np.isfinite(distances)
    ordered = np.sort(np.where(finite, distances, np.inf), axis=1)
    median = ordered[np.arange(count), np.maximum((finite.sum(axis=1) - 1) // 2, 0)][:, None]
    use = finite & (distances <= 1.5 * median)
    rows = np.flatnonzero(use.sum(axis=1) >= CLOSED_SHARE * len(angles))
    if not len(rows):
        return result, centre, semi_minor
    use = use[rows]
    weight = np.where(use, 1.0 / np.maximum(uncertainty[rows], 1e-6) ** 2, 0.0)
    r = np.where(use, distances[rows], 0.0)
    x, y = r * np.cos(angles), r * np.sin(angles)
    design = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], axis=-1)  # quadratic, then linear terms
    # the weighted scatter matrix, one (6 x 72) x (72 x 6) product per row (a three-operand
    # einsum per block took ten times as long)
    scatter = np.matmul(np.transpose(design * weight[..., None], (0, 2, 1)), design)
    s1, s2, s3 = scatter[:, :3, :3], scatter[:, :3, 3:], scatter[:, 3:, 3:]
    with np.errstate(all="ignore"):
        # pinv, not solve: a degenerate row (all edge points on one line, or at the origin)
        # must give no answer, not stop the whole batch
        to_linear = -np.linalg.pinv(s3) @ np.transpose(s2, (0, 2, 1))
        reduced = np.einsum("ij,njk->nik", _INVERSE_CONSTRAINT, s1 + s2 @ to_linear)
    usable = np.all(np.isfinite(reduced), axis=(1, 2))
    vectors = np.zeros_like(reduced)
    if usable.any():
        vectors[usable] = np.real(np.linalg.eig(reduced[usable])[1])
    ellipse = 4 * vectors[:, 0, :] * vectors[:, 2, :] - vectors[:, 1, :] ** 2 > 0
    found = usable & ellipse.any(axis=1) & np.all(np.isfinite(vectors), axis=(1, 2))
    pick = np.argmax(ellipse, axis=1)
    a, b, c = vectors[np.arange(len(rows)), :, pick].T
    d, e, f = np.einsum("nij,nj->ni", to_linear, vectors[np.arange(len(rows)), :, pick]).T
    with np.errstate(all="ignore"):
        # centre, then the conic about it: q(u) = u^T Q u + f' = 0, with Q's eigenvectors its axes
        determinant = b * b - 4 * a * c
        xc, yc = (2 * c * d - b * e) / determinant, (2 * a * e - b * d) / determinant
        shifted = a * xc ** 2 + b * xc * yc + c * yc ** 2 + d * xc + e * yc + f
        form = np.stack([np.stack([a, b / 2], -1), np.stack([b / 2, c], -1)], -2)
        values, axes = np.linalg.eigh(np.where(np.isfinite(form), form, 0.0))
        semi = np.sqrt(-shifted[:, None] / values)
        inside = f * shifted > 0  # the origin on the same side of the conic as its centre
        t = np.linspace(0.0, 2 * np.pi, 360, endpoint=False)
        px = xc[:, None] + semi[:, :1] * np.cos(t) * axes[:, 0, :1] + semi[:, 1:] * np.sin(t) * axes[:, 0, 1:]
        py = yc[:, None] + semi[:, :1] * np.cos(t) * axes[:, 1, :1] + semi[:, 1:] * np.sin(t) * axes[:, 1, 1:]
        nearest = np.sqrt(px ** 2 + py ** 2).min(axis=1)
    good = found & inside & np.isfinite(nearest) & (nearest > 0)
    result[rows[good]] = nearest[good]
    centre[rows[good]] = np.column_stack([xc, yc])[good]
    semi_minor[rows[good]] = semi.min(axis=1)[good]
    return result, centre, semi_minor


#: Inverse of the ellipse constraint 4ac - b^2 = 1 on (a, b, c).
_INVERSE_CONSTRAINT = np.array([[0.0, 0.0, 0.5], [0.0, -1.0, 0.0], [0.5, 0.0, 0.0]])
