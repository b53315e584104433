"""The voxel axes closest to R, A and S: how networks trained on canonical arrays see an image.

Many models (MONAI's, TotalSegmentator's) were trained on arrays reoriented to the
closest RAS+ orientation (nibabel's ``as_closest_canonical``). Giving them an image in
another voxel order (a sagittal acquisition, a flipped z) shows them a rotated patient.
Reorienting is exact: a permutation and flips of the array, never a resampling, so the
result maps back voxel for voxel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .image import Image

_LPS_TO_RAS_3 = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class NetworkAxes:
    """How the image's ``array[k, j, i]`` becomes the network's ``(x, y, z)`` and back."""

    #: The array axis that feeds network axis x, y and z.
    array_axes: tuple[int, int, int]
    #: Network axes reversed so that they point to R, A, S rather than L, P, I.
    flipped: tuple[bool, bool, bool]

    def spacing(self, image: Image) -> tuple[float, float, float]:
        """The image's spacing along the network's x, y, z."""
        spacing_kji = tuple(reversed(image.spacing))
        return tuple(spacing_kji[axis] for axis in self.array_axes)  # type: ignore[return-value]


def network_axes(direction_lps: np.ndarray) -> NetworkAxes:
    """The voxel axes closest to R, A and S (largest cosines first, as MONAI and nibabel
    pick them), and which of them point the opposite way. Exact: no resampling."""
    ras = _LPS_TO_RAS_3 @ np.asarray(direction_lps, dtype=np.float64)  # columns: i, j, k in RAS
    voxel_for_world: dict[int, int] = {}
    worlds, voxels = [0, 1, 2], [0, 1, 2]
    while worlds:
        world, voxel = max(((w, v) for w in worlds for v in voxels), key=lambda wv: abs(ras[wv[0], wv[1]]))
        voxel_for_world[world] = voxel
        worlds.remove(world)
        voxels.remove(voxel)
    array_axes = tuple(2 - voxel_for_world[world] for world in range(3))  # voxel axis i is array axis 2
    flipped = tuple(bool(ras[world, voxel_for_world[world]] < 0) for world in range(3))
    return NetworkAxes(array_axes, flipped)  # type: ignore[arg-type]


def _permute(volume: Any, order: Sequence[int]) -> Any:
    """numpy arrays and torch tensors alike (a view either way)."""
    return volume.permute(*order) if hasattr(volume, "permute") else np.transpose(volume, order)


def _flip(volume: Any, axes: Sequence[int]) -> Any:
    if not axes:
        return volume
    return volume.flip(list(axes)) if hasattr(volume, "permute") else np.flip(volume, tuple(axes))


def to_network_axes(volume: Any, axes: NetworkAxes) -> Any:
    """A ``[k, j, i]`` array or tensor in the network's ``(x, y, z)`` order."""
    return _flip(_permute(volume, axes.array_axes), [n for n in range(3) if axes.flipped[n]])


def from_network_axes(volume: Any, axes: NetworkAxes) -> Any:
    """The inverse of :func:`to_network_axes`: back to ``[k, j, i]``."""
    unflipped = _flip(volume, [n for n in range(3) if axes.flipped[n]])
    return _permute(unflipped, [axes.array_axes.index(axis) for axis in range(3)])


def reorient_to_ras(image: Image) -> tuple[Image, NetworkAxes]:
    """The same voxels on the closest RAS+ grid (i to Right, j to Anterior, k to Superior),
    as an Image whose geometry puts every voxel where it was; and the axes to go back."""
    axes = network_axes(image.direction_lps)
    array = np.ascontiguousarray(_permute(to_network_axes(image.array, axes), (2, 1, 0)))
    size_kji = image.array.shape
    start_ijk = [0, 0, 0]
    directions, spacing = [], []
    for n in range(3):
        voxel_axis = 2 - axes.array_axes[n]
        sign = -1.0 if axes.flipped[n] else 1.0
        directions.append(sign * image.direction_lps[:, voxel_axis])
        spacing.append(image.spacing[voxel_axis])
        if axes.flipped[n]:
            start_ijk[voxel_axis] = size_kji[2 - voxel_axis] - 1
    origin = image.ijk_to_lps() @ np.array([*start_ijk, 1.0])
    return Image(array, tuple(spacing), tuple(origin[:3]), np.stack(directions, axis=1)), axes


def from_ras_array(array_ras: np.ndarray, axes: NetworkAxes) -> np.ndarray:
    """An array on :func:`reorient_to_ras`'s grid back in the original ``[k, j, i]`` order."""
    return np.ascontiguousarray(from_network_axes(_permute(array_ras, (2, 1, 0)), axes))
