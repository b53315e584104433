"""A quick-look PNG of a volume and a mask, for reports and the demo.

Needs no 3D renderer and no screen, only numpy and SimpleITK. The views are coronal
(along the voxel axis closest to anterior-posterior), shown radiologically (the patient's
right on the picture's left, superior on top) with the voxel spacing respected.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .image import Image
from .image_io import to_sitk

OVERLAY_RGB = np.array([230, 40, 40], np.float32)


def _grey(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    grey = (np.clip(values, low, high) - low) / (high - low) * 255.0
    return np.repeat(grey[..., None], 3, axis=-1)


def _overlay(rgb: np.ndarray, hit: np.ndarray) -> np.ndarray:
    rgb = rgb.copy()
    rgb[hit] = 0.45 * rgb[hit] + 0.55 * OVERLAY_RGB
    return rgb


def _lps_ordered(image: Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The voxels reordered so that i, j, k run closest to L, P, S; and their spacing."""
    oriented = sitk.DICOMOrient(to_sitk(image), "LPS")
    return sitk.GetArrayFromImage(oriented), oriented.GetSpacing()


def _stretch(view: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    scale = row_mm / col_mm
    rows = max(1, int(round(view.shape[0] * scale)))
    index = np.minimum((np.arange(rows) / scale).astype(int), view.shape[0] - 1)
    return view[index]


def write_snapshot(image: Image, mask: Image, path: str | Path,
                   window: tuple[float, float] = (-200.0, 800.0)) -> Path:
    """Write three coronal views side by side: the volume's MIP, the MIP of the voxels
    inside the mask only, and the slice through the mask's centre with the mask in red."""
    volume, (l_mm, _, s_mm) = _lps_ordered(image)  # array axes: S, P, L
    labels, _ = _lps_ordered(mask)
    volume, inside = volume.astype(np.float32), labels > 0
    low = np.float32(window[0])
    middle = int(np.round(np.mean(np.nonzero(inside)[1]))) if inside.any() else volume.shape[1] // 2
    views = [_grey(volume.max(axis=1), window),
             _grey(np.where(inside, volume, low).max(axis=1), window),
             _overlay(_grey(volume[:, middle], window), inside[:, middle])]
    views = [_stretch(view[::-1], s_mm, l_mm) for view in views]  # superior row on top
    gap = np.zeros((views[0].shape[0], 4, 3), np.float32)
    picture = np.concatenate([views[0], gap, views[1], gap, views[2]], axis=1).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(picture, isVector=True), str(path))
    return path
