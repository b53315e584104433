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
from scipy.spatial import cKDTree

from ..errors import InputError
from ..image import Image, foreground_box, set_voxels
from ..progress import ProgressCallback, no_progress
from .coarse import CoarseDistance, factors_for, typical_radius_mm
from .radius import affine
from .sampling import trilinear, trilinear_on_rays

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
        kji = affine(np.asarray(points_lps, float).reshape(-1, 3), self.lps_to_kji)
        return trilinear(self.volume, kji[:, 0], kji[:, 1], kji[:, 2])

    @cached_property
    def _walls(self) -> tuple[cKDTree, np.ndarray]:
        """A k-d tree (mm, kji order) of the voxel centres below the level that touch the
        lumen by a face (the nearest outside centre to any inside point is one of them, see
        :mod:`.radius`), and those centres (kji). Centres beyond the box's faces do not
        count (the box ends at the image's faces or in background), unless the lumen fills
        the whole box: then the layer beyond its faces is the wall."""
        inside = self.volume >= LEVEL
        touching = np.zeros_like(inside)
        for axis in range(3):
            a, b = np.moveaxis(touching, axis, 0), np.moveaxis(inside, axis, 0)
            a[1:] |= b[:-1]
            a[:-1] |= b[1:]
        walls = set_voxels(touching & ~inside)
        if len(walls) == 0:
            shape = np.array(inside.shape)
            layers = [np.argwhere(np.ones(np.delete(shape, axis), bool)) for axis in range(3)]
            walls = np.concatenate([np.insert(layer, axis, end, axis=1) for axis, layer in enumerate(layers)
                                    for end in (-1, shape[axis])])
        spacing = np.asarray(self.spacing[::-1], float)
        # leaves of 64: queries from deep inside the lumen (all walls nearly equally far) visit
        # far fewer nodes (CTA aorta sections: 6 -> 3.5 ms), and an unbalanced build is quicker
        return cKDTree(walls * spacing, leafsize=64, balanced_tree=False), walls

    def nearest_wall(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance (mm) from each point to the nearest voxel centre outside the lumen, and
        that centre (LPS); distance 0 (and the point itself) for a point outside the box.
        Exact, so a query from deep inside a thick lumen costs (a ring of nearly equally
        near walls): callers that need only bounds use :meth:`centre_bounds`."""
        points = np.asarray(points_lps, float).reshape(-1, 3)
        kji = affine(points, self.lps_to_kji)
        inside_box = np.all((kji >= 0) & (kji <= np.asarray(self.volume.shape) - 1), axis=1)
        tree, walls = self._walls
        spacing = np.asarray(self.spacing[::-1], float)
        distance, index = tree.query(kji * spacing, workers=-1 if len(points) > 20000 else 1)
        nearest = affine(walls[index].astype(float), np.linalg.inv(self.lps_to_kji))
        return np.where(inside_box, distance, 0.0), np.where(inside_box[:, None], nearest, points)

    @cached_property
    def _coarse(self) -> Optional[CoarseDistance]:
        """Bounds on that distance from blocks a quarter of the lumen's typical radius wide,
        for a thick lumen (blocks of ``COARSE_BLOCK_VOXELS`` or more along every axis); None
        for a thinner one, which keeps the exact distance."""
        inside = self.volume >= LEVEL
        spacing = np.asarray(self.spacing[::-1], float)
        factors = factors_for(typical_radius_mm(inside, spacing) / 4, spacing)
        return CoarseDistance(inside, spacing, factors) if factors.min() >= COARSE_BLOCK_VOXELS else None

    def centre_bounds(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds of :meth:`centre_distance`: the exact distance twice for a
        thin lumen, bounds within a quarter of its radius from blocks (``_coarse``) for a
        thick one (enough to say where rays may start and how far they must look)."""
        if self._coarse is None:
            exact = self.nearest_wall(points_lps)[0]
            return exact, exact
        kji = affine(np.asarray(points_lps, float).reshape(-1, 3), self.lps_to_kji)
        inside_box = np.all((kji >= 0) & (kji <= np.asarray(self.volume.shape) - 1), axis=1)
        low, high = self._coarse(kji)
        return np.where(inside_box, low, 0.0), np.where(inside_box, high, 0.0)

    def surely_inside(self, points_lps: np.ndarray, lower_bound: Optional[np.ndarray] = None) -> np.ndarray:
        """How far (mm) from each point the field is surely at or above the level: trilinear
        interpolation falls below it only within a voxel diagonal of a voxel centre below it
        (a lower bound of the distance to the nearest such centre, :meth:`centre_bounds`, on
        the field itself, so an image that moved the edge is accounted for; or the caller's
        ``lower_bound``), and never beyond the box's faces. Rays start there
        (:func:`edge_distances`), which saves sampling the lumen's core."""
        distance = self.centre_bounds(points_lps)[0] if lower_bound is None else lower_bound
        # beyond the box the field is unknown, though no wall is counted there when the box ends
        # at the image's face (a vessel cut by the field of view): never start past that face
        kji = affine(np.asarray(points_lps, float).reshape(-1, 3), self.lps_to_kji)
        faces = np.minimum(kji, np.asarray(self.volume.shape) - 1 - kji) * np.asarray(self.spacing[::-1])
        return np.clip(np.minimum(distance - float(np.linalg.norm(self.spacing)), faces.min(axis=1)), 0.0, None)

    def centre_distance(self, points_lps: np.ndarray) -> np.ndarray:
        """Distance (mm) from each point to the nearest voxel centre outside the lumen (the
        graph's voxel-centre radius, here on the field); 0 for a point outside the box. On a
        thick lumen an upper bound instead, within a quarter of its radius (``_coarse``):
        enough to say how far rays must look."""
        return self.centre_bounds(points_lps)[1]

    def edge_uncertainty(self, directions_lps: np.ndarray) -> np.ndarray:
        """Half the voxel's extent along each direction (mm): how well the grid places an
        edge crossed that way (0.2 mm along a 0.4 mm axis, 1 mm across 2 mm slices)."""
        grid = np.asarray(directions_lps, float) @ self.direction_lps  # components along i, j, k
        grid *= np.asarray(self.spacing)
        grid *= grid
        # the three terms added in sum's order, as whole arrays: sum(axis=-1) loops over every
        # direction's three (0.85 against 0.35 ms for the CTA aorta's 35,000 section rays)
        total = grid[..., 0] + grid[..., 1]
        total += grid[..., 2]
        return 0.5 * np.sqrt(total)


def lumen_field(segment: Image, image: Optional[Image] = None, margin_mm: float = 0.0) -> LumenField:
    """The lumen field of a binary ``segment`` (nonzero = vessel), sharpened by ``image``.

    Only a box around the segment is kept. A mask alone is 0 beyond its bounding box, which
    a ray leaving the box reads too (interpolation beyond the box takes 0), so two voxels of
    background around it are enough; with an image, the box is grown by ``margin_mm`` (and a
    few voxels), over which the image's local lumen and wall levels are taken. Raises
    :class:`InputError` for an empty segment or an image on another grid.
    """
    mask = np.asarray(segment.array) != 0
    grow_mm = margin_mm if image is not None else 0.0
    pad = [int(np.ceil(grow_mm / s)) + IMAGE_REACH_VOXELS + 2 for s in segment.spacing[::-1]]
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
    reach (the section opens into a junction, the ray leaves the image, or it starts outside
    the lumen).
    Samples every half of the finest voxel, then refines the crossing (:func:`_refined`).

    Each ray marches on only until it meets its wall: a stretch of ``STRETCH_STEPS``
    samples for every ray, then further stretches for the rays still inside (most walls lie
    within the first: a ray starts a voxel diagonal before the nearest outside voxel
    centre), so a wide or elongated lumen costs samples only along its long rays.
    ``budget`` bounds the samples held at once.
    """
    centres = np.asarray(centres_lps, float).reshape(-1, 3)
    directions = np.asarray(directions_lps, float)
    count, rays = directions.shape[:2]
    if count == 0 or rays == 0:
        return np.full((count, rays), np.nan)
    reach = np.broadcast_to(np.asarray(reach_mm, float), (count,))
    start = np.zeros(count) if start_mm is None else np.clip(np.broadcast_to(start_mm, (count,)), 0.0, reach)
    step = 0.5 * float(min(field.spacing))
    report = progress or no_progress
    # one row per ray, in voxel indices: the centre moved once, each ray a fixed step per sample
    owner = np.repeat(np.arange(count), rays)
    origin = affine(centres, field.lps_to_kji)[owner].astype(np.float32)
    heading = (directions.reshape(-1, 3) @ field.lps_to_kji[:3, :3].T * step).astype(np.float32)
    ray_reach = reach[owner]
    position = start[owner] / step  # in steps from the centre: each ray's last sample so far
    low = np.full(len(owner), np.nan)
    low_value = np.zeros(len(owner), np.float32)
    high_value = np.zeros(len(owner), np.float32)

    def march(rays_now: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Sample ``rays_now`` at ``offsets`` steps from their last sample; note the crossings
        met; return the rays that go on."""
        s = position[rays_now, None] + offsets[None]
        values = _sample_rays(field.volume, origin[rays_now], heading[rays_now], s)
        # a ray ends at its first sample below the level (a wall) or beyond the box (NaN: the
        # box ends at the image's face there, and what lies beyond is unknown, no wall)
        ends = ~(values >= LEVEL)
        first = np.argmax(ends, axis=1)
        every = np.arange(len(rays_now))
        # whether a ray has an event: its first end is one (argmax gives 0 where there is none);
        # a gather, where ends.any(axis=1) loops over each row's few samples (0.7 against 0.1 ms
        # for the CTA aorta's 35,000 section rays)
        event = ends[every, first]
        hit = values[every, first]
        before = position[rays_now] + offsets[first] - 1  # the sample before the event
        # a wall is met from a sample within reach, and not at the start itself (a ray that
        # starts outside the lumen, at a centre outside it, finds no wall)
        met = event & (hit < LEVEL) & (before * step <= ray_reach[rays_now]) & (offsets[first] > 0)
        rows = rays_now[met]
        low[rows] = before[met]
        high_value[rows] = hit[met]
        low_value[rows] = np.where(first[met] > 0, values[met, np.maximum(first[met] - 1, 0)], np.inf)
        going = rays_now[~event]
        position[going] += offsets[-1]
        return going[position[going] * step <= ray_reach[going]]

    # the first stretch takes each ray's start sample too, then stretches of new samples only
    chunk = max(budget // (STRETCH_STEPS + 1), 1)
    going_on = []
    for first_ray in range(0, len(owner), chunk):
        report(0.5 * first_ray / len(owner), message)
        going_on.append(march(np.arange(first_ray, min(first_ray + chunk, len(owner))),
                              np.arange(STRETCH_STEPS + 1, dtype=np.float32)))
    active = np.concatenate(going_on)
    total = max(len(active), 1)
    onward = np.arange(1, STRETCH_STEPS + 1, dtype=np.float32)
    while len(active):
        report(0.5 + 0.5 * (1.0 - len(active) / total), message)
        active = np.concatenate([march(active[:chunk], onward), active[chunk:]])
    found = np.flatnonzero(np.isfinite(low))
    # a crossing at the first new sample of a stretch: the sample before it is the last of
    # the stretch before (or the start), inside by construction; its value is needed
    unknown = found[~np.isfinite(low_value[found])]
    if len(unknown):
        low_value[unknown] = _sample_rays(field.volume, origin[unknown], heading[unknown],
                                          low[unknown, None])[:, 0]
    out = np.full(len(owner), np.nan)
    if len(found):
        distance = _refined(field.volume, origin[found], heading[found], low[found], low_value[found],
                            high_value[found]) * step
        out[found] = np.where(distance <= ray_reach[found], distance, np.nan)
    report(1.0, message)
    return out.reshape(count, rays)


#: Samples (half a voxel each) a ray takes per stretch of its march. The same crossings
#: whatever its value; 8 ends most rays of the CTA aorta's sections in their first stretch
#: (they start a voxel diagonal and a few millimetres before their wall): 144 against 150 ms
#: for the case's whole segment-to-sections run with 6.
STRETCH_STEPS = 8
#: Steps of false position that refine each crossing inside its halved bracket.
REFINE_STEPS = 1
#: Halvings of each bracket before the false position.
BISECT_STEPS = 3


def _refined(volume: np.ndarray, origin: np.ndarray, heading: np.ndarray, low: np.ndarray,
             low_value: np.ndarray, high_value: np.ndarray) -> np.ndarray:
    """The crossing (in steps from the centre) inside each bracket [low, low + 1], whose
    ends' values straddle the level.

    ``BISECT_STEPS`` halvings first (a bracket may straddle a cell's face, where the
    trilinear field along the ray has a kink), then ``REFINE_STEPS`` of false position
    (Illinois variant: an end kept twice has its distance to the level halved) on what is
    then a smooth piece, and the crossing interpolated in what is left. Against bisecting
    to a billionth of a step (Testing/test_vessel_thick.py, an oblique anisotropic grid): 3 + 1
    samples err by at most 0.002 mm (99 % within 0.00003 mm); four halvings and the
    interpolation, as before, erred by 0.0034 mm (0.00013); two false-position steps alone by
    0.039 mm (0.003)."""
    a, b = low.astype(float), low.astype(float) + 1.0
    fa = low_value.astype(float) - LEVEL
    fb = high_value.astype(float) - LEVEL
    for _ in range(BISECT_STEPS):
        middle = 0.5 * (a + b)
        fm = _sample_rays(volume, origin, heading, middle[:, None])[:, 0].astype(float) - LEVEL
        in_lumen = fm >= 0
        a, fa = np.where(in_lumen, middle, a), np.where(in_lumen, fm, fa)
        b, fb = np.where(in_lumen, b, middle), np.where(in_lumen, fb, fm)
    side = np.zeros(len(a), np.int8)
    for _ in range(REFINE_STEPS):
        t = np.clip(fa / np.maximum(fa - fb, 1e-9), 0.05, 0.95)  # never onto an end
        middle = a + t * (b - a)
        fm = _sample_rays(volume, origin, heading, middle[:, None])[:, 0].astype(float) - LEVEL
        in_lumen = fm >= 0
        a, fa_new = np.where(in_lumen, middle, a), np.where(in_lumen, fm, fa)
        b, fb_new = np.where(in_lumen, b, middle), np.where(in_lumen, fb, fm)
        # Illinois: halve the value at the end that stayed for the second time running
        fb_new = np.where(in_lumen & (side == 1), 0.5 * fb_new, fb_new)
        fa_new = np.where(~in_lumen & (side == -1), 0.5 * fa_new, fa_new)
        side = np.where(in_lumen, 1, -1).astype(np.int8)
        fa, fb = fa_new, fb_new
    return a + np.clip(fa / np.maximum(fa - fb, 1e-9), 0.0, 1.0) * (b - a)


def _sample_rays(volume: np.ndarray, origin: np.ndarray, heading: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The field at origin + s * heading (voxel indices; ``s`` (n, m) in steps): (n, m)
    float32, NaN beyond the box."""
    return trilinear_on_rays(volume, origin, heading, s, cval=np.nan)


def ray_directions(u: np.ndarray, v: np.ndarray, rays: int) -> tuple[np.ndarray, np.ndarray]:
    """``rays`` evenly spaced unit directions in each plane spanned by (u, v): (n, rays, 3),
    and their angles (rays,), measured from u towards v."""
    angles = np.linspace(0.0, 2 * np.pi, rays, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    u, v = np.asarray(u, float), np.asarray(v, float)
    directions = np.empty((len(u), rays, 3))
    # one component at a time, over (n, rays) arrays: broadcast into (n, rays, 3) at once, every
    # operation looped over each ray's three components (0.88 against 0.2 ms for 735 x 48 rays)
    for axis in range(3):
        part = cos[None] * u[:, axis, None]
        part += sin[None] * v[:, axis, None]
        directions[:, :, axis] = part
    return directions, angles
