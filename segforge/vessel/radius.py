"""Vessel radius in millimetres from an exact Euclidean distance transform.

The radius at a centreline point is its distance to the nearest background voxel centre
(the maximal inscribed sphere of the voxelised lumen), measured in mm with the image's own
spacing, so anisotropic and oblique grids give the same radius as isotropic ones.

Why a *sparse* distance transform: the workflow needs distances only at the object's
voxels and at centreline points, not over the whole volume. The nearest background voxel of
an object point always touches the object (from it, step one voxel towards the point along
an axis where the offset exceeds half a voxel: that voxel is closer, so it is object), so a
k-d tree of those touching background voxels answers every query exactly. On the 256^3
benchmark tree (73,847 voxels set), building it and querying every object voxel took 0.19 s
with scipy alone, identical to ``scipy.ndimage.distance_transform_edt`` (4.9 s) and faster
than the LGPL-3 ``edt`` package (0.47 s), which is therefore not a dependency.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import InputError
from ..image import Image, set_voxels

#: Offsets (dk, dj, di) of the six face neighbours.
FACE_OFFSETS = np.array([(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)])


def unique_int(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers (numpy's hash-based ``unique`` is slower on these arrays)."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def crop_padded(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask's bounding box as uint8 padded by one background voxel, and the box's corner (kji).

    Raises :class:`InputError` when the mask is empty: there is no vessel to measure.
    """
    mask = np.asarray(mask)
    present = [np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    if len(present[0]) == 0:
        raise InputError("The vessel mask is empty", "no voxel is set",
                         "segment the vessels first (or lower the vesselness threshold)")
    low = np.array([p[0] for p in present])
    high = np.array([p[-1] for p in present]) + 1
    box = mask[low[0]:high[0], low[1]:high[1], low[2]:high[2]] != 0
    return np.pad(box, 1).astype(np.uint8), low


class BoundaryDistance:
    """Exact Euclidean distance (mm) from any point to the nearest background voxel centre.

    Points are voxel indices (k, j, i), fractional allowed; the spacing makes the metric
    millimetres and the direction matrix (a rotation) does not change distances. Background
    outside the image does not count (a vessel cut by the field of view keeps its radius up
    to the border), unless the object fills the whole image: then the image's faces do.
    """

    def __init__(self, mask: np.ndarray, spacing_kji) -> None:
        self.spacing_kji = np.asarray(spacing_kji, float)
        volume, low = crop_padded(mask)
        #: the mask's padded bounding box and its corner (kji), kept for the skeleton
        self.box, self.box_corner = volume, low
        flat = volume.ravel()
        strides = np.array([volume.shape[1] * volume.shape[2], volume.shape[2], 1])
        around = unique_int((np.flatnonzero(flat)[:, None] + (FACE_OFFSETS @ strides)[None]).ravel())
        around = around[flat[around] == 0]
        border = np.column_stack(np.unravel_index(around, volume.shape)) - 1 + low
        inside_image = np.all((border >= 0) & (border < np.asarray(np.shape(mask))), axis=1)
        #: the pad layers that lie outside the image (their background does not count)
        self._outside = [(axis, end) for axis in range(3) for end, at in ((0, low[axis] == 0),
                         (-1, low[axis] + volume.shape[axis] - 2 == np.shape(mask)[axis])) if at]
        self._fills_image = not inside_image.any()
        #: background voxels touching the object per object voxel: about 2 / radius (in voxels) for a tube
        self._surface_ratio = len(around) / max(int(np.count_nonzero(flat)), 1)
        if inside_image.any():
            border = border[inside_image]
        self._tree = cKDTree(border * self.spacing_kji)

    def box_distances(self) -> np.ndarray:
        """The distance at every object voxel of :attr:`box`, in ``np.flatnonzero(box)`` order.

        A k-d tree query costs more the deeper a voxel lies (the tree searches a sphere as
        wide as the distance): on a thick mask (a 1.8-million-voxel ellipsoid, radius 70
        voxels) querying every voxel took 290 s. There an exact distance transform of the box,
        whose cost grows with the box only, answers the same (2.5 s). Masks thinner than about
        20 voxels in radius (vessels: fewer than 10 background neighbours per 100 voxels) keep
        the tree, whose distances the thinning's levels were tuned on (the two differ in the
        last bit, which moves a voxel exactly on a level's boundary)."""
        if self._fills_image or self._surface_ratio >= 0.1:
            return self(set_voxels(self.box) - 1 + self.box_corner)
        work = self.box != 0
        for axis, end in self._outside:  # background beyond the image's faces does not count
            np.moveaxis(work, axis, 0)[end] = True
        return ndimage.distance_transform_edt(work, sampling=self.spacing_kji)[self.box != 0]

    def __call__(self, points_kji: np.ndarray) -> np.ndarray:
        """Distance in mm from each point to the nearest background voxel centre."""
        points = np.asarray(points_kji, float).reshape(-1, 3) * self.spacing_kji
        return self._tree.query(points, k=1, workers=_workers(len(points)))[0]


def _workers(count: int) -> int:
    """Threads for a k-d tree query: starting them costs ~1 ms, worth it for big queries only."""
    return -1 if count > 20000 else 1


def affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine matrix to (n, 3) points.

    Written as three multiply-adds on purpose: ``points @ matrix.T`` goes through BLAS,
    which for an (n, 3) x (3, 3) product was 10-70x slower here (0.15 s for 430,000 points,
    worse while other processes load the cores).
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    out = points[:, :1] * matrix[:3, 0] + matrix[:3, 3]
    out += points[:, 1:2] * matrix[:3, 1]
    out += points[:, 2:3] * matrix[:3, 2]
    return out


def lps_to_kji(image: Image, points_lps: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (k, j, i) of LPS points on ``image``'s grid."""
    return affine(points_lps, np.linalg.inv(image.ijk_to_lps()))[:, ::-1]


def kji_to_lps(image: Image, points_kji: np.ndarray) -> np.ndarray:
    """LPS millimetres of continuous voxel indices (k, j, i)."""
    return affine(np.asarray(points_kji, float).reshape(-1, 3)[:, ::-1], image.ijk_to_lps())


def across(tangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane across each tangent (any plane where it is zero)."""
    length = np.linalg.norm(tangent, axis=1, keepdims=True)
    tangent = np.where(length > 1e-9, tangent / np.maximum(length, 1e-12), [[0.0, 0.0, 1.0]])
    helper = np.where(np.abs(tangent[:, [0]]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    u = np.cross(tangent, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u, np.cross(tangent, u)


def recenter(distance: BoundaryDistance, paths_kji: list[np.ndarray]) -> list[np.ndarray]:
    """Move the inner points of ordered centrelines onto the ridge of the distance map.

    Skeleton voxels sit up to half a voxel off the true axis, and the inscribed radius drops
    by that offset. A pattern search in the plane across the centreline (steps halving from
    half the largest spacing) moves each point to where the distance to the background is
    largest - the centre of the maximal inscribed sphere - never further than one voxel.
    The end points (nodes) stay. All paths are searched together (one query per step).
    """
    spacing = distance.spacing_kji
    pieces, inner_parts = [], []
    for path in paths_kji:
        path = np.asarray(path, float)
        if len(path) < 3:
            continue
        mm = path * spacing
        ahead = mm[np.minimum(np.arange(1, len(mm) - 1) + 2, len(mm) - 1)]
        behind = mm[np.maximum(np.arange(1, len(mm) - 1) - 2, 0)]
        tangent = ahead - behind
        pieces.append(mm[1:-1])
        inner_parts.append(tangent)
    if not pieces:
        return [np.asarray(p, float).copy() for p in paths_kji]
    current = np.concatenate(pieces)
    tangent = np.concatenate(inner_parts)
    u, v = across(tangent)
    moves = np.array([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)], float)
    directions = moves[None, :, [0]] * u[:, None] + moves[None, :, [1]] * v[:, None]
    directions /= np.linalg.norm(directions, axis=2, keepdims=True)
    # a step of h voxels along the direction's most finely sampled axis: h * spacing on isotropic
    # grids, and on anisotropic ones longer across thick slices, where the skeleton errs more
    directions /= np.abs(directions / spacing).max(axis=2, keepdims=True)
    rows = np.arange(len(current))
    best = distance(current / spacing)
    step = 0.5
    for _ in range(5):
        candidates = current[:, None] + step * directions
        values = distance((candidates / spacing).reshape(-1, 3)).reshape(len(current), len(moves))
        pick = values.argmax(axis=1)
        better = values[rows, pick] > best
        current = np.where(better[:, None], candidates[rows, pick], current)
        best = np.where(better, values[rows, pick], best)
        step /= 2
    result, start = [], 0
    for path in paths_kji:
        path = np.asarray(path, float).copy()
        if len(path) >= 3:
            path[1:-1] = current[start:start + len(path) - 2] / spacing
            start += len(path) - 2
        result.append(path)
    return result

