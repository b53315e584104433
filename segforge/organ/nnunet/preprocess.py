"""nnU-Net's preprocessing of one case: transpose, crop to non-zero, normalise, resample.

Follows nnunetv2 2.8.1's ``DefaultPreprocessor.run_case_npy`` in the same order and with
the same numerics (float32 normalisation, float64 spline resampling through
``scipy.ndimage.zoom`` exactly as ``skimage.transform.resize`` calls it, separate z for
anisotropic spacings), so the network sees the same numbers nnU-Net would give it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ...image import foreground_box
from .plans import NnUNetModel, Resampling

#: nnU-Net's ANISO_THRESHOLD: resample the low-resolution axis separately above this ratio.
ANISOTROPY_THRESHOLD = 3.0


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """The network's input and what is needed to put its output back."""

    data: np.ndarray                              # float32 (c, d0, d1, d2) at the model spacing
    shape_before_cropping: tuple[int, int, int]   # transposed axis order
    bbox: tuple[tuple[int, int], ...]             # half-open crop box, transposed axis order
    shape_after_cropping: tuple[int, int, int]
    original_spacing: tuple[float, float, float]  # transposed axis order


def preprocess(array: np.ndarray, spacing_zyx: Sequence[float], model: NnUNetModel) -> Preprocessed:
    """``array`` is (c, z, y, x) as SimpleITK gives it; ``spacing_zyx`` is in the same order."""
    tf = model.transpose_forward
    data = np.asarray(array).astype(np.float32).transpose([0, *(t + 1 for t in tf)])
    original_spacing = tuple(float(spacing_zyx[t]) for t in tf)
    shape_before = tuple(int(s) for s in data.shape[1:])

    nonzero = np.any(data != 0, axis=0)
    box = foreground_box(nonzero) or tuple(slice(0, n) for n in nonzero.shape)
    bbox = tuple((s.start, s.stop) for s in box)
    data = np.ascontiguousarray(data[(slice(None), *box)])
    shape_after = tuple(int(s) for s in data.shape[1:])
    if any(model.use_mask_for_norm):
        # nnU-Net's mask: the non-zero voxels with holes filled (hole filling never moves the box).
        mask = ndimage.binary_fill_holes(nonzero)[box]
    else:
        mask = None

    new_shape = compute_new_shape(shape_after, original_spacing, model.spacing)
    for c in range(data.shape[0]):
        data[c] = normalize(data[c], model, c, mask)
    data = resample(data, new_shape, original_spacing, model.spacing, model.data_resampling)
    return Preprocessed(data, shape_before, bbox, shape_after, original_spacing)  # type: ignore[arg-type]


def compute_new_shape(shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]) -> list[int]:
    """nnU-Net's ``compute_new_shape`` (Python's round: half to even)."""
    return [int(round(s / t * n)) for s, t, n in zip(spacing, new_spacing, shape)]


def normalize(channel: np.ndarray, model: NnUNetModel, c: int, mask: Optional[np.ndarray]) -> np.ndarray:
    """Normalise one float32 channel in place as nnU-Net's scheme for channel ``c`` does."""
    scheme = model.normalization_schemes[c]
    eps = 1e-8
    if scheme == "CTNormalization":
        props = model.intensity_properties[c]
        assert props is not None
        np.clip(channel, props.percentile_00_5, props.percentile_99_5, out=channel)
        channel -= props.mean
        channel /= max(props.std, eps)
    elif scheme == "ZScoreNormalization":
        if model.use_mask_for_norm[c] and mask is not None:
            values = channel[mask]
            mean, std = values.mean(), values.std()
            channel[mask] = (values - mean) / max(std, eps)
        else:
            mean, std = channel.mean(), channel.std()
            channel -= mean
            channel /= max(std, eps)
    return channel


def separate_z_axis(resampling: Resampling, current_spacing: Sequence[float],
                    new_spacing: Sequence[float]) -> Optional[int]:
    """The axis to resample separately (nearest-style, ``order_z``), or None (nnU-Net's
    ``determine_do_sep_z_and_axis``)."""
    def lowres_axes(spacing: Sequence[float]) -> list[int]:
        return [i for i, s in enumerate(spacing) if s == max(spacing)]

    if resampling.force_separate_z is not None:
        axes = lowres_axes(current_spacing) if resampling.force_separate_z else []
    elif max(current_spacing) / min(current_spacing) > ANISOTROPY_THRESHOLD:
        axes = lowres_axes(current_spacing)
    elif max(new_spacing) / min(new_spacing) > ANISOTROPY_THRESHOLD:
        axes = lowres_axes(new_spacing)
    else:
        axes = []
    return axes[0] if len(axes) == 1 else None


def resample(data: np.ndarray, new_shape: Sequence[int], current_spacing: Sequence[float],
             new_spacing: Sequence[float], resampling: Resampling) -> np.ndarray:
    """nnU-Net's ``resample_data_or_seg_to_shape`` for images (not segmentations): the
    input is returned as is when the shape already matches; otherwise the result has
    ``data``'s dtype, computed in float64."""
    shape = tuple(data.shape[1:])
    new_shape = tuple(int(s) for s in new_shape)
    if shape == new_shape:
        return data
    axis = separate_z_axis(resampling, current_spacing, new_spacing)
    out = np.zeros((data.shape[0], *new_shape), dtype=data.dtype)
    for c in range(data.shape[0]):
        channel = data[c].astype(np.float64)
        if axis is None:
            out[c] = resize(channel, new_shape, resampling.order)
            continue
        moved = np.moveaxis(channel, axis, 0)
        plane_shape = tuple(s for i, s in enumerate(new_shape) if i != axis)
        planes = np.stack([resize(plane, plane_shape, resampling.order) for plane in moved])
        if planes.shape[0] != new_shape[axis]:
            planes = resample_along_axis0(planes, new_shape[axis], resampling.order_z)
        out[c] = np.moveaxis(planes, 0, axis)
    return out


def resize(image: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """``skimage.transform.resize(image, shape, order, mode='edge', anti_aliasing=False)``
    on a float64 array, via the ``scipy.ndimage.zoom`` call it makes, clipped alike."""
    factors = np.divide(image.shape, shape)
    result = ndimage.zoom(image, [1 / f for f in factors], order=order, mode="nearest", grid_mode=True)
    if order > 0:
        np.clip(result, image.min(), image.max(), out=result)
    return result


def resample_along_axis0(planes: np.ndarray, size: int, order: int) -> np.ndarray:
    """nnU-Net's separate-z step: ``map_coordinates`` along axis 0 only, centres aligned."""
    scale = planes.shape[0] / size
    if order == 0:
        return planes[axis0_nearest_sources(planes.shape[0], size)]
    coords = np.meshgrid(scale * (np.arange(size) + 0.5) - 0.5,
                         *[np.arange(n, dtype=np.float64) for n in planes.shape[1:]], indexing="ij")
    return ndimage.map_coordinates(planes, np.array(coords), order=order, mode="nearest")


def axis0_nearest_sources(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output slice for order-0 ``map_coordinates`` with centres aligned."""
    coords = (n_in / n_out) * (np.arange(n_out) + 0.5) - 0.5
    return np.clip(np.floor(coords + 0.5), 0, n_in - 1).astype(np.intp)
