"""Branch radii measured to the lumen's interpolated edge instead of voxel centres.

The centreline graph measures each radius as the distance to the nearest *background
voxel centre* (:class:`.radius.BoundaryDistance`): exact for the voxels, but the wall lies
between the last lumen centre and the first background centre, so that radius runs long
(0.20 mm on VMTK's CE-MRA, where VMTK's ``MaximumInscribedSphereRadius`` is measured to a
sub-voxel surface). This post-pass replaces it, point by point, with the radius of the
largest circle centred on the centreline inside the lumen's edge in the plane across the
vessel (:mod:`.lumen_edge`: the mask's 0.5 level, or the image's half maximum).

Why a fitted contour and not the nearest edge crossing: the interpolated edge of a voxel
mask is a staircase, and the smallest of 72 ray distances lands on its inward corners
(0.37 mm short on the CE-MRA). The lumen's outline is smooth at voxel scale, so the ray
distances are fitted, weighted by how precisely the grid places each edge, with an offset
ellipse r(a) = c0 + c1 cos a + s1 sin a + c2 cos 2a + s2 sin 2a (the outline of an
elliptical lumen seen from a point off its centre, to first order), and the radius is that
curve's minimum. Nothing in it is tuned to a data set: the model order is the lowest that
holds an ellipse seen off-centre, and the same fit was chosen on synthetic tubes before it
was run on the CE-MRA (see docs/vessel.md).

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
from .lumen_edge import LumenField, edge_distances, ray_directions

#: Rays per cross-section (5 degrees apart).
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
                            [slice(start[i], start[i + 1]) for i in range(len(branches))])
    new = [replace(b, radii_mm=radii[start[i]:start[i + 1]]) for i, b in enumerate(branches)]
    report(1.0, "Measuring sub-voxel radii")
    return replace(graph, branches=tuple(new))


def inscribed_radii(field: LumenField, points_lps: np.ndarray, voxel_radii: np.ndarray,
                    branches: list[slice]) -> np.ndarray:
    """Radius of the largest circle inside the fitted lumen outline at each point.

    ``voxel_radii`` (the voxel-centre radii) set how far rays look and are kept where the
    outline cannot be trusted; ``branches`` say which points form one polyline (tangents
    are taken along each)."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    voxel_radii = np.asarray(voxel_radii, float)
    u = np.zeros_like(points)
    v = np.zeros_like(points)
    for rows in branches:
        scale = float(np.median(voxel_radii[rows])) if rows.stop > rows.start else 1.0
        _, u[rows], v[rows] = section_planes(points[rows], scale)
    directions, angles = ray_directions(u, v, RAYS)
    reach = 3.0 * voxel_radii + 2.0 * max(field.spacing)
    distances = edge_distances(field, points, directions, reach, field.surely_inside(points))
    uncertainty = field.edge_uncertainty(directions)
    fitted = fitted_minimum(distances, angles, uncertainty)
    even = uncertainty.max(axis=1) <= EVEN_SAMPLING * uncertainty.min(axis=1)
    return np.where(even & np.isfinite(fitted), fitted, voxel_radii)


def fitted_minimum(distances: np.ndarray, angles: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
    """Minimum over the angle of the weighted least-squares offset-ellipse fit to each row of
    ray distances; NaN where fewer than ``CLOSED_SHARE`` of the rays meet a wall.

    Rays running more than 1.5 times the row's median are left out of the fit: they leave
    through a side branch or a junction, not through this vessel's wall."""
    basis = np.stack([np.ones_like(angles), np.cos(angles), np.sin(angles),
                      np.cos(2 * angles), np.sin(2 * angles)], axis=1)
    finite = np.isfinite(distances)
    ordered = np.sort(np.where(finite, distances, np.inf), axis=1)
    middle = np.maximum((finite.sum(axis=1) - 1) // 2, 0)
    median = ordered[np.arange(len(distances)), middle][:, None]
    use = finite & (distances <= 1.5 * median)
    weight = np.where(use, 1.0 / np.maximum(uncertainty, 1e-6) ** 2, 0.0)
    values = np.where(use, distances, 0.0)
    normal = np.einsum("na,ap,aq->npq", weight, basis, basis)
    target = np.einsum("na,ap,na->np", weight, basis, values)
    closed = use.sum(axis=1) >= CLOSED_SHARE * len(angles)
    result = np.full(len(distances), np.nan)
    if closed.any():
        coefficients = np.linalg.solve(normal[closed], target[closed][..., None])[..., 0]
        curve = coefficients @ basis.T
        result[closed] = curve.min(axis=1)
    return np.where(result > 0, result, np.nan)
