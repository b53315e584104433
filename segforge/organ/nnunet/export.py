"""Turn the network-grid logits into labels on the input's grid, slab by slab.

nnU-Net resamples all logits at once to the cropped shape at the original spacing
(order 1, or order 1 in-plane and nearest along a separate z), casts them to float16 and
takes the argmax (ties to the lowest label). Here each slab of output slices is
interpolated from the two (or one) source slices it needs, in float64, cast to float16 and
argmaxed, so a classes x full-resolution array never exists. The float16 cast is kept on
purpose: without it about 0.1 % of the labels differ from nnU-Net's.

Slabs are kept classes-last (channels_last) from the in-plane interpolation on, so the
argmax runs over contiguous memory: 4-7x faster than over a strided class axis, with
the same first-of-equals tie rule.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...progress import ProgressCallback, no_progress
from .plans import NnUNetModel
from .preprocess import Preprocessed, axis0_nearest_sources, resample, separate_z_axis

#: Upper bound of one slab's float64 logits, in bytes.
SLAB_BYTES = 64 * 2**20


def logits_to_labels(logits, model: NnUNetModel, pre: Preprocessed,
                     progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Labels (model.label_dtype) in the original (z, y, x) order and shape."""
    import torch
    report = progress or no_progress
    target = pre.shape_after_cropping
    if tuple(logits.shape[1:]) == tuple(target):
        cropped = _argmax_in_slabs(logits, report)
    elif model.logits_resampling.order == 1 and model.logits_resampling.order_z == 0:
        axis = separate_z_axis(model.logits_resampling, model.spacing, pre.original_spacing)
        cropped = _resample_argmax(logits, target, axis, report)
    else:  # an unusual resampling: nnU-Net's own (slow, whole-array) path
        resampled = resample(logits.numpy(), target, model.spacing, pre.original_spacing, model.logits_resampling)
        cropped = torch.from_numpy(resampled.astype(np.float16)).float().argmax(0).numpy()

    labels = np.zeros(pre.shape_before_cropping, dtype=model.label_dtype)
    labels[tuple(slice(a, b) for a, b in pre.bbox)] = cropped
    return labels.transpose(model.transpose_backward)


def _argmax_in_slabs(logits, report: ProgressCallback) -> np.ndarray:
    out = np.empty(tuple(logits.shape[1:]), dtype=np.int64)
    step = _slab_size(logits.shape, np.dtype(np.float32).itemsize)
    for z in range(0, out.shape[0], step):
        report(z / out.shape[0], "Writing labels")
        out[z:z + step] = _classes_last_argmax(logits[:, z:z + step].permute(1, 2, 3, 0))
    return out


def _classes_last_argmax(slab) -> np.ndarray:
    """Argmax over the last axis of the float16-rounded values, ties to the lowest class
    (nnU-Net's float16 argmax): the values are exact in float32, numpy's argmax runs on
    contiguous rows."""
    rounded = slab.half().float().contiguous().numpy()
    return rounded.argmax(-1)


def _resample_argmax(logits, target, axis: Optional[int], report: ProgressCallback) -> np.ndarray:
    """Order-1 resampling (nearest along ``axis`` when given), float16 cast, argmax."""
    import torch
    import torch.nn.functional as F
    # Work with the slab axis first: the separate axis if any, else axis 0.
    first = 0 if axis is None else axis
    order = [first] + [a for a in range(3) if a != first]
    source = logits.permute(0, *(a + 1 for a in order))
    out_shape = tuple(target[a] for a in order)
    n_in, n_out = source.shape[1], out_shape[0]
    if axis is None:
        coords = np.clip((n_in / n_out) * (np.arange(n_out) + 0.5) - 0.5, 0, n_in - 1)
        below = np.floor(coords).astype(np.intp)
        above = np.minimum(below + 1, n_in - 1)
        fraction = coords - below
    else:
        below = above = axis0_nearest_sources(n_in, n_out)
        fraction = np.zeros(n_out)
    out = np.empty(out_shape, dtype=np.int64)
    step = _slab_size((source.shape[0], *out_shape), 8)
    for z0 in range(0, n_out, step):
        report(z0 / n_out, "Writing labels")
        z1 = min(n_out, z0 + step)
        a = source[:, below[z0:z1]].double()
        b = source[:, above[z0:z1]].double()
        w = torch.from_numpy(fraction[z0:z1])[None, :, None, None]
        # (slices, classes, rows, columns), stored classes-last; interpolate keeps that layout
        slab = (a + (b - a) * w).permute(1, 0, 2, 3).contiguous(memory_format=torch.channels_last)
        if tuple(slab.shape[2:]) != out_shape[1:]:
            slab = F.interpolate(slab, size=out_shape[1:], mode="bilinear", align_corners=False)
        out[z0:z1] = _classes_last_argmax(slab.permute(0, 2, 3, 1))
    return np.transpose(out, np.argsort(order))


def _slab_size(shape, itemsize: int) -> int:
    per_slice = int(np.prod(shape[0:1])) * int(np.prod(shape[2:])) * itemsize
    return max(1, min(int(shape[1]), SLAB_BYTES // max(per_slice, 1)))
