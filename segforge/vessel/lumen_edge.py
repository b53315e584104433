"""The lumen edge below voxel size: a continuous field whose 0.5 level is the vessel wall,
and where rays from a centreline point cross it.

Why a field: a voxel mask says only which voxel *centres* are lumen; the wall lies
somewhere between an inside and an outside centre. Interpolating the mask trilinearly puts
it half-way between them on any grid (its 0.5 level), which is the unbiased guess a mask
allows. A grey image says more: the wall is where the intensity passes half-way from the
local lumen level to the local wall level (half maximum, as in
:func:`.mask.refine_to_lumen`). With an image, the field is the intensity scaled so that
half maximum is 0.5, trusted only within ``reach`` voxels of the segment's edge: the
segment decides *which* structure is the vessel, the image only *where* its edge lies, so
a bright neighbour beyond that band never joins the lumen and a dark spot deep inside it
never ends a ray.

Why rays: cross-sections (:mod:`.cross_sections`) and sub-voxel radii (:mod:`.subvoxel`)
both need, for many centreline points at once, the distance to the wall along directions
in the plane across the vessel. Marching outward from the centreline point and stopping at
the first crossing keeps the region that holds the point (a neighbouring vessel cut by the
same plane lies beyond a stretch of wall and is never reached). All points and rays are
sampled in one vectorised pass, then each crossing is refined by bisection.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Image, foreground_box
from ..progress import ProgressCallback, no_progress
from .coarse import CoarseDistance, factors_for, typical_radius_mm
from .radius import BoundaryDistance, affine

#: The wall is where the field crosses this level.
LEVEL = 0.5
#: Voxels the grey image may move the edge away from the segment's edge.
IMAGE_REACH_VOXELS = 2
#: Scale (mm) over which the lumen and wall intensity levels are taken as local.
LEVEL_SIGMA_MM = 4.0
#: Blocks at least this many voxels wide make a lumen thick enough to bound distances on
#: blocks (:class:`.coarse.CoarseDistance`): its radius is then about 20 voxels or more, where
#: the exact distance's k-d tree slows (0.5 ms a query 40 voxels deep) and thinner lumens
#: keep it, as :meth:`.radius.BoundaryDistance.box_distances` splits them.
COARSE_BLOCK_VOXELS = 4


@dataclass(frozen=True)
class LumenField:
    """A field sampled on (a box of) the segment's grid: >= 0.5 inside the lumen."""

    volume: np.ndarray  # [k, j, i], uint8 (a mask) or float32 (scaled image)
    #: LPS millimetres -> continuous (k, j, i) indices of ``volume``
    lps_to_kji: np.ndarray
    spacing: tuple[float, float, float]  # (i, j, k) mm
    direction_lps: np.ndarray
    from_image: bool

    def sample(self, points_lps: np.ndarray) -> np.ndarray:
        """The field, trilinearly interpolated at (n, 3) LPS points (0 outside the box)."""
        points = np.asarray(points_lps, float).reshape(-1, 3)
        kji = affine(points, self.lps_to_kji)
        return ndimage.map_coordinates(self.volume, kji.T, order=1, mode="constant", cval=0.0,
                                       output=np.float32)

    @cached_property
    def _outside(self) -> BoundaryDistance:
        """Exact distance to the nearest voxel centre where the field is below the level."""
        return BoundaryDistance(self.volume >= LEVEL, np.asarray(self.spacing[::-1], float))

    @cached_property
    def _coarse(self) -> Optional[CoarseDistance]:
        """Bounds on that distance from blocks a quarter of the lumen's typical radius wide,
        for a thick lumen (blocks of ``COARSE_BLOCK_VOXELS`` or more along every axis); None
        for a thinner one, which keeps the exact distance."""
        inside = self.volume >= LEVEL
        spacing = np.asarray(self.spacing[::-1], float)
        factors = factors_for(typical_radius_mm(inside, spacing) / 4, spacing)
        return CoarseDistance(inside, spacing, factors) if factors.min() >= COARSE_BLOCK_VOXELS else None

    def surely_inside(self, points_lps: np.ndarray) -> np.ndarray:
        """How far (mm) from each point the field is surely at or above the level: trilinear
        interpolation falls below it only within a voxel diagonal of a voxel centre below it
        (:meth:`centre_distance` finds the nearest such centre, on the field itself, so an
        image that moved the edge is accounted for; on a thick lumen a lower bound of it).
        Rays start there (:func:`edge_distances`), which saves sampling the lumen's core."""
        distance = self._centre_bounds(points_lps)[0]
        return np.maximum(distance - float(np.linalg.norm(self.spacing)), 0.0)

    def centre_distance(self, points_lps: np.ndarray) -> np.ndarray:
        """Distance (mm) from each point to the nearest voxel centre outside the lumen (the
        graph's voxel-centre radius, here on the field); 0 for a point outside the box. On a
        thick lumen an upper bound instead, within a quarter of its radius (``_coarse``):
        enough to say how far rays must look."""
        return self._centre_bounds(points_lps)[1]

    def _centre_bounds(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds of :meth:`centre_distance`: equal where it is exact."""
        kji = affine(np.asarray(points_lps, float).reshape(-1, 3), self.lps_to_kji)
        inside_box = np.all((kji >= 0) & (kji <= np.asarray(self.volume.shape) - 1), axis=1)
        if self._coarse is not None:
            low, high = self._coarse(kji)
        else:
            low = high = self._outside(kji)
        return np.where(inside_box, low, 0.0), np.where(inside_box, high, 0.0)

    def edge_uncertainty(self, directions_lps: np.ndarray) -> np.ndarray:
        """Half the voxel's extent along each direction (mm): how well the grid places an
        edge crossed that way (0.2 mm along a 0.4 mm axis, 1 mm across 2 mm slices)."""
        grid = np.asarray(directions_lps, float) @ self.direction_lps  # components along i, j, k
        return 0.5 * np.sqrt(((grid * np.asarray(self.spacing)) ** 2).sum(axis=-1))


def lumen_field(segment: Image, image: Optional[Image] = None, margin_mm: float = 0.0) -> LumenField:
    """The lumen field of a binary ``segment`` (nonzero = vessel), sharpened by ``image``.

    Only the segment's bounding box grown by ``margin_mm`` (and a few voxels) is kept: rays
    never need to go further. Raises :class:`InputError` for an empty segment or an image on
    another grid.
    """
    mask = np.asarray(segment.array) != 0
    pad = [int(np.ceil(margin_mm / s)) + IMAGE_REACH_VOXELS + 2 for s in segment.spacing[::-1]]
    box = foreground_box(mask, pad)
    if box is None:
        raise InputError("The vessel segment is empty", "no voxel is set", "choose or draw a vessel segment")
    corner_ijk = np.array([box[2].start, box[1].start, box[0].start], float)
    shift = np.eye(4)
    shift[:3, 3] = -corner_ijk
    lps_to_kji = np.eye(4)[[2, 1, 0, 3]] @ shift @ np.linalg.inv(segment.ijk_to_lps())
    volume: np.ndarray = mask[box].astype(np.uint8)
    from_image = False
    if image is not None:
        if not image.same_grid(segment):
            raise InputError("The image and the vessel segment are on different grids",
                             "their size, spacing, origin or direction differ",
                             "give the segment made on this image (or resample it onto the image)")
        scaled = _half_maximum_field(np.asarray(image.array)[box], volume.astype(bool), segment.spacing[::-1])
        if scaled is not None:
            volume, from_image = scaled, True
    return LumenField(volume, lps_to_kji, tuple(segment.spacing), np.asarray(segment.direction_lps, float),
                      from_image)


def _half_maximum_field(values: np.ndarray, mask: np.ndarray, spacing_kji) -> Optional[np.ndarray]:
    """The image scaled so that 0 is the local wall level, 1 the local lumen level, inside
    a band of ``IMAGE_REACH_VOXELS`` around the segment's edge; 1 deeper inside, 0 further
    out. None when the segment is too thin to have a core or shows no contrast."""
    values = values.astype(np.float32)
    core = ndimage.binary_erosion(mask)
    shell = ndimage.binary_dilation(mask, iterations=3) & ~mask
    if not core.any() or not shell.any():
        return None
    if np.median(values[core]) < np.median(values[shell]):
        values = -values  # dark lumen (black-blood MR): the same edge, mirrored
    sigma = [LEVEL_SIGMA_MM / s for s in spacing_kji]
    weight_in = ndimage.gaussian_filter(core.astype(np.float32), sigma)
    lumen = ndimage.gaussian_filter(values * core, sigma) / np.maximum(weight_in, 1e-6)
    weight_out = ndimage.gaussian_filter(shell.astype(np.float32), sigma)
    wall = ndimage.gaussian_filter(values * shell, sigma) / np.maximum(weight_out, 1e-6)
    contrast = lumen - wall
    field = np.clip((values - wall) / np.where(contrast > 0, contrast, 1.0), 0.0, 1.0)
    band = ndimage.binary_dilation(mask, iterations=IMAGE_REACH_VOXELS)
    deep = ndimage.binary_erosion(mask, iterations=IMAGE_REACH_VOXELS)
    no_contrast = (contrast <= 0) | (weight_in < 1e-3) | (weight_out < 1e-3)
    field = np.where(no_contrast, mask.astype(np.float32), field)
    field = np.where(band, field, 0.0)
    return np.where(deep, 1.0, field).astype(np.float32)


def edge_distances(field: LumenField, centres_lps: np.ndarray, directions_lps: np.ndarray,
                   reach_mm: np.ndarray, start_mm: Optional[np.ndarray] = None,
                   budget: int = 1_000_000, progress: Optional[ProgressCallback] = None,
                   message: str = "Finding the lumen edge") -> np.ndarray:
    """Distance (mm) from each centre along each of its directions to the first wall crossing.

    ``directions_lps``: (n, rays, 3) unit vectors; ``reach_mm``: (n,) how far to look;
    ``start_mm``: (n,) where to start looking, for a caller that knows the field is inside
    up to there (:meth:`LumenField.surely_inside`). NaN where a ray finds no wall within
    reach (the section opens into a junction, or the centre itself is outside the lumen).
    Samples every half of the finest voxel, then bisects.
    """
    centres = np.asarray(centres_lps, float).reshape(-1, 3)
    directions = np.asarray(directions_lps, float)
    count, rays = directions.shape[:2]
    reach = np.broadcast_to(np.asarray(reach_mm, float), (count,))
    start = np.zeros(count) if start_mm is None else np.clip(np.broadcast_to(start_mm, (count,)), 0.0, reach)
    if count == 0:
        return np.full((count, rays), np.nan)
    step = 0.5 * float(min(field.spacing))
    # in voxel indices: the centre moved once, each ray a fixed step per sample
    centres_kji = affine(centres, field.lps_to_kji)
    directions_kji = directions @ field.lps_to_kji[:3, :3].T
    report = progress or no_progress
    # two stretches: every ray a few voxels past where the field is surely inside (most walls
    # are there), then only the rays that found none, on to their reach
    near = np.minimum(start + FIRST_STRETCH_STEPS * step, reach)
    out = _marched(field, centres_kji, directions_kji, start, near, step, budget, report, message, 0.0, 0.8)
    row, ray = np.nonzero(np.isnan(out) & (near < reach)[:, None])
    if len(row):
        out[row, ray] = _marched(field, centres_kji[row], directions_kji[row, ray][:, None], near[row], reach[row],
                                 step, budget, report, message, 0.8, 1.0)[:, 0]
    return out


#: Samples of the first stretch of every ray (half a voxel each).
FIRST_STRETCH_STEPS = 8


def _marched(field: LumenField, centres_kji: np.ndarray, directions_kji: np.ndarray, start: np.ndarray,
             reach: np.ndarray, step: float, budget: int, report: ProgressCallback, message: str,
             low: float, high: float) -> np.ndarray:
    """:func:`_crossings` in chunks of at most ``budget`` samples, reporting progress."""
    count, rays = directions_kji.shape[:2]
    out = np.full((count, rays), np.nan)
    order = np.argsort(reach - start)
    span = np.ceil((reach - start) / step).astype(int) + 2
    first = 0
    while first < count:
        report(low + (high - low) * first / count, message)
        # as many points as fit the sample budget, at the longest span among them
        rows = order[first:]
        fits = np.flatnonzero(np.maximum.accumulate(span[rows]) * rays * (np.arange(len(rows)) + 1) > budget)
        take = max(int(fits[0]) if len(fits) else len(rows), 1)
        rows = rows[:take]
        out[rows] = _crossings(field, centres_kji[rows], directions_kji[rows], start[rows], reach[rows], step)
        first += take
    return out


def _crossings(field: LumenField, centres: np.ndarray, directions: np.ndarray, start: np.ndarray,
               reach: np.ndarray, step: float) -> np.ndarray:
    """First crossings (mm) for centres and directions given in voxel indices (per mm).

    Samples are taken in rounds (8, 16, 32, ... samples a ray) and a ray that has crossed
    stops being sampled: most rays cross within a few samples of their start, and sampling
    every ray out to the longest reach cost 4-5 times more on a thick lumen. The samples a
    ray gets up to its crossing, and so the result, are the same as sampling it all at once."""
    samples = int(np.ceil((reach - start).max() / step)) + 2
    count, rays = directions.shape[:2]
    row = np.repeat(np.arange(count), rays)  # each ray's centre
    ray_directions_kji = directions.reshape(-1, 3)
    first = np.zeros(count * rays, int)  # index of the first sample outside (0: none found)
    low_value = np.zeros(count * rays, np.float32)  # the field at the sample before it, and at it
    high_value = np.zeros(count * rays, np.float32)
    last = np.zeros(count * rays, np.float32)  # each ray's latest sample
    active = np.arange(count * rays)
    begin, width = 0, 8
    while len(active) and begin < samples:
        index = np.arange(begin, min(begin + width, samples))
        at = row[active]
        s = start[at][:, None] + index[None] * step  # (rays left, samples) mm from the centre
        coordinates = centres[at][:, None, :] + s[..., None] * ray_directions_kji[active][:, None, :]
        values = ndimage.map_coordinates(field.volume, coordinates.reshape(-1, 3).T, order=1, mode="constant",
                                         cval=0.0, output=np.float32).reshape(s.shape)
        outside = (values < LEVEL) | (s > reach[at][:, None])
        hit = outside.any(axis=1)
        where = np.argmax(outside, axis=1)
        ray = np.flatnonzero(hit)
        before = np.where(where > 0, values[np.arange(len(active)), np.maximum(where - 1, 0)], last[active])
        first[active[ray]] = begin + where[ray]
        low_value[active[ray]] = before[ray]
        high_value[active[ray]] = values[ray, where[ray]]
        last[active] = values[:, -1]
        active = active[~hit]
        begin += len(index)
        width *= 2
    found = (first > 0).reshape(count, rays)
    first = np.maximum(first, 1).reshape(count, rays)
    low = start[:, None] + (first - 1) * step
    high = low + step
    low_value, high_value = low_value.reshape(count, rays), high_value.reshape(count, rays)
    for _ in range(4):  # bisect: the crossing to 1/32 of a voxel before the last interpolation
        middle = 0.5 * (low + high)
        value = _along(field, centres, directions, middle[..., None])[..., 0]
        inside = value >= LEVEL
        low, low_value = np.where(inside, middle, low), np.where(inside, value, low_value)
        high, high_value = np.where(inside, high, middle), np.where(inside, high_value, value)
    fraction = (low_value - LEVEL) / np.maximum(low_value - high_value, 1e-6)
    distance = low + np.clip(fraction, 0.0, 1.0) * (high - low)
    return np.where(found & (distance <= reach[:, None]), distance, np.nan)


def _along(field: LumenField, centres_kji: np.ndarray, directions_kji: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The field at centre + s * direction: centres (n, 3), directions (n, rays, 3) and
    distances s broadcastable to (n, rays, m); returns (n, rays, m)."""
    shape = np.broadcast_shapes(s.shape, (len(centres_kji), directions_kji.shape[1], 1))
    coordinates = np.empty((3,) + shape, np.float64)
    for axis in range(3):
        coordinates[axis] = centres_kji[:, None, None, axis] + s * directions_kji[:, :, None, axis]
    return ndimage.map_coordinates(field.volume, coordinates.reshape(3, -1), order=1, mode="constant",
                                   cval=0.0, output=np.float32).reshape(shape)


def ray_directions(u: np.ndarray, v: np.ndarray, rays: int) -> tuple[np.ndarray, np.ndarray]:
    """``rays`` evenly spaced unit directions in each plane spanned by (u, v): (n, rays, 3),
    and their angles (rays,), measured from u towards v."""
    angles = np.linspace(0.0, 2 * np.pi, rays, endpoint=False)
    directions = np.cos(angles)[None, :, None] * u[:, None] + np.sin(angles)[None, :, None] * v[:, None]
    return directions, angles
