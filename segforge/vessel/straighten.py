"""Straightened view (curved planar reformat) of a vessel's main path.

Why: a tortuous vessel crosses many slices; a radiologist reads a stenosis or an aneurysm's
neck along the vessel. The view samples the volume in planes across the smoothed main path
(root or source to the farthest end or the first target), one plane every ``step_mm``,
each spanned by rotation-minimising frames (:mod:`.frames`) so the lumen does not twist
along the view. The result is an :class:`Image` on its own grid whose k axis runs along
the path, i and j across it, centred on the centreline.

Geometry: voxel (i, j, k) holds the volume at ``centers_lps[k] + (i - c) s normals[k] +
(j - c) s binormals[k]`` (c the middle index, s the step): :meth:`Straightened.sampled_lps`
gives that point exactly. The image's own affine (origin, spacing, direction) runs k along
the path's chord from its first point, i and j along the middle plane's frame: right for a
straight path (to within the centreline's sub-voxel wobble), which is as much as one affine
can say of a curved one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Image
from ..progress import ProgressCallback, no_progress
from .frames import arc_length, rotation_minimising_frames, smoothed_tangents
from .graph import CenterlineGraph, resample
from .radius import across, affine

#: Scale (in the volume's largest voxel spacings) of the smoothing of the path before frames.
PATH_SMOOTHING_VOXELS = 2.0


@dataclass(frozen=True)
class StraightenParameters:
    """Whether to make the view, how far it reaches across the path, and its voxel size."""

    enabled: bool = True
    half_width_mm: float = 20.0
    step_mm: float = 0.5


@dataclass(frozen=True)
class Straightened:
    """The straightened volume and the frames it was sampled in (all LPS)."""

    image: Image
    #: the smoothed path, one point per k
    centers_lps: np.ndarray
    normals: np.ndarray  # along i
    binormals: np.ndarray  # along j
    #: arc length (mm) of each k along the path
    arc_mm: np.ndarray
    #: branch ids the path runs through, root side first
    branches: tuple[int, ...]

    def sampled_lps(self, ijk: np.ndarray) -> np.ndarray:
        """The LPS points voxels (i, j, k) (n, 3; fractional i, j allowed, k integral) hold."""
        ijk = np.asarray(ijk, float).reshape(-1, 3)
        k = np.clip(np.round(ijk[:, 2]).astype(int), 0, len(self.centers_lps) - 1)
        step = self.image.spacing[0]
        middle = (self.image.shape_ijk[0] - 1) / 2
        return (self.centers_lps[k] + ((ijk[:, 0] - middle) * step)[:, None] * self.normals[k]
                + ((ijk[:, 1] - middle) * step)[:, None] * self.binormals[k])


def check_straighten_parameters(parameters: StraightenParameters) -> None:
    for name in ("half_width_mm", "step_mm"):
        value = getattr(parameters, name)
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"The straightened view's {name.replace('_mm', '').replace('_', ' ')} is invalid",
                             f"it is {value} mm", "give a positive distance in millimetres")
    if parameters.half_width_mm / parameters.step_mm > 1000:
        raise InputError("The straightened view would be too large",
                         f"{2 * parameters.half_width_mm:g} mm wide at {parameters.step_mm:g} mm steps",
                         "use a larger step or a smaller width")


def main_path(graph: CenterlineGraph,
              target_lps: Optional[Sequence[float]] = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Points (LPS) and branch ids of the path from the root of the largest component to its
    farthest free end (along the centrelines), or to the end nearest ``target_lps``."""
    if not graph.branches:
        raise InputError("There is no centerline to straighten", "the vessel graph has no branch",
                         "check the vessel segment")
    by_id = {b.id: b for b in graph.branches}
    main = min(b.component for b in graph.branches)
    leaves = [b for b in graph.branches if b.component == main and not graph.children(b.id) and not b.is_loop] \
        or [b for b in graph.branches if b.component == main]

    def chain(branch) -> list:
        route, seen = [branch], {branch.id}
        while route[-1].parent is not None and route[-1].parent not in seen:
            route.append(by_id[route[-1].parent])
            seen.add(route[-1].id)
        return route[::-1]

    if target_lps is not None:
        target = np.asarray(target_lps, float)
        leaf = min(leaves, key=lambda b: float(np.linalg.norm(b.points_lps[-1] - target)))
    else:
        leaf = max(leaves, key=lambda b: sum(x.length_mm for x in chain(b)))
    route = chain(leaf)
    points = np.concatenate([route[0].points_lps] + [b.points_lps[1:] for b in route[1:]])
    return points, tuple(b.id for b in route)


def straighten(volume: Image, graph: CenterlineGraph, parameters: StraightenParameters = StraightenParameters(),
               target_lps: Optional[Sequence[float]] = None, label: bool = False,
               progress: Optional[ProgressCallback] = None) -> Straightened:
    """The curved planar reformat of ``volume`` along the main path of ``graph``.

    ``label``: the volume is a mask; it is interpolated linearly and cut at 0.5 (uint8),
    so the lumen's edge is where the segment's interpolated edge is. Otherwise intensities
    are interpolated linearly (float32) and points outside the volume get its minimum.
    Raises :class:`InputError` for a path shorter than one step.
    """
    check_straighten_parameters(parameters)
    points, branches = main_path(graph, target_lps)
    step = float(parameters.step_mm)
    voxel = float(max(volume.spacing))
    smooth, _ = resample(points, np.zeros(len(points)), min(step, voxel) / 2, PATH_SMOOTHING_VOXELS * voxel)
    along = arc_length(smooth)
    if len(smooth) < 2 or along[-1] < step:
        raise InputError("The main centerline is too short to straighten",
                         f"it is {along[-1]:.1f} mm long", f"use a step below {max(along[-1], 0.01):.2f} mm")
    where = np.arange(0.0, along[-1] + 1e-9, step)  # exactly one step apart, so k * step is the arc length
    centers = np.column_stack([np.interp(where, along, smooth[:, d]) for d in range(3)])
    tangents = smoothed_tangents(centers, PATH_SMOOTHING_VOXELS * voxel)
    normals, binormals = rotation_minimising_frames(centers, tangents)
    half = int(round(parameters.half_width_mm / step))
    offsets = (np.arange(2 * half + 1) - half) * step
    # samples[k, j, i] = centre_k + offset_i * normal_k + offset_j * binormal_k
    lps_to_ijk = np.linalg.inv(volume.ijk_to_lps())
    array = np.asarray(volume.array)
    data = array.view(np.uint8) if array.dtype == bool else array  # interpolated as it is: no copy
    background = 0.0 if label else float(np.min(array))
    # everything in the volume's voxel indices (k, j, i), then one broadcast per axis
    c_kji = affine(centers, lps_to_ijk)[:, ::-1]
    n_kji = (normals @ lps_to_ijk[:3, :3].T)[:, ::-1]
    b_kji = (binormals @ lps_to_ijk[:3, :3].T)[:, ::-1]
    out = np.empty((len(centers), 2 * half + 1, 2 * half + 1), np.float32)
    rows = max(1, 500_000 // out[0].size)  # planes per chunk: ~0.05 s each, so Cancel lands quickly
    report = progress or no_progress
    for first in range(0, len(centers), rows):
        report(first / len(centers), "Straightening the main centerline")
        k = slice(first, first + rows)
        coordinates = np.empty((3,) + out[k].shape)
        for axis in range(3):
            coordinates[axis] = (c_kji[k, axis, None, None] + offsets[None, None, :] * n_kji[k, axis, None, None]
                                 + offsets[None, :, None] * b_kji[k, axis, None, None])
        out[k] = ndimage.map_coordinates(data, coordinates.reshape(3, -1), order=1, mode="constant",
                                         cval=background, output=np.float32).reshape(out[k].shape)
    result = (out >= 0.5).astype(np.uint8) if label else out
    # the affine: k along the chord (exact for a straight path, whose ends may tilt a little),
    # i and j as the middle plane's frame turned onto the chord
    chord = centers[-1] - centers[0]
    axis = chord / np.linalg.norm(chord) if np.linalg.norm(chord) > 1e-6 else tangents[len(centers) // 2]
    normal = normals[len(centers) // 2] - (normals[len(centers) // 2] @ axis) * axis
    normal = normal / np.linalg.norm(normal) if np.linalg.norm(normal) > 1e-6 else across(axis[None])[0][0]
    binormal = np.cross(axis, normal)
    direction = np.column_stack([normal, binormal, axis])
    origin = centers[0] - half * step * (normal + binormal)
    image = Image(result, (step, step, step), tuple(origin), direction)
    return Straightened(image, centers, normals, binormals, where, branches)
