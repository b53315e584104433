"""nnU-Net's sliding-window inference: tiles at half-patch steps, a Gaussian importance
map, optional mirroring, several folds averaged.

The numerics are nnunetv2 2.8.1's on purpose: logits and weights are accumulated in
float16 buffers (each tile's float32 result rounded on every add), then divided, and the
folds' float16 results are summed and divided in float16. Accumulating in float32 instead
changes about 0.2 % of the labels of a many-class model, so it is not done.
"""
from __future__ import annotations

import itertools
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ...errors import ModelError
from ...progress import ProgressCallback, no_progress
from .network import Fold, forward, load_weights

#: nnU-Net's default tile step, as a fraction of the patch size.
TILE_STEP = 0.5


def tile_starts(size: int, patch: int, step: float = TILE_STEP) -> list[int]:
    """Start positions of the tiles along one axis (nnU-Net's compute_steps_for_sliding_window)."""
    count = int(np.ceil((size - patch) / (patch * step))) + 1
    if count == 1:
        return [0]
    stride = (size - patch) / (count - 1)
    return [int(np.round(stride * i)) for i in range(count)]


def gaussian_importance(patch: Sequence[int]):
    """The float16 importance map: a Gaussian with sigma patch/8, peak 10, no zeros."""
    import torch
    delta = np.zeros(patch)
    delta[tuple(p // 2 for p in patch)] = 1
    weights = ndimage.gaussian_filter(delta, [p / 8 for p in patch], 0, mode="constant", cval=0)
    weights = torch.from_numpy(weights / (np.max(weights) / 10)).half()
    weights[weights == 0] = torch.min(weights[weights != 0])
    return weights


def mirror_combinations(axes: Optional[Sequence[int]]) -> list[tuple[int, ...]]:
    """Flip-axis sets of nnU-Net's test-time mirroring, on (batch, channel, d0, d1, d2) tensors."""
    if not axes:
        return []
    dims = [a + 2 for a in axes]
    return [c for n in range(1, len(dims) + 1) for c in itertools.combinations(dims, n)]


def predict_logits(data: np.ndarray, network, folds: Sequence[Fold], patch: Sequence[int], num_outputs: int,
                   mirroring: bool = False, device: str = "cpu", progress: Optional[ProgressCallback] = None,
                   tile_step: float = TILE_STEP):
    """float16 logits (num_outputs, *data.shape[1:]) averaged over ``folds``.

    ``progress`` hears of every tile of every fold; it may raise Cancelled to stop.
    """
    import torch
    report = progress or no_progress
    image = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    shape = tuple(image.shape[1:])
    padding = [max(p - s, 0) for p, s in zip(patch, shape)]
    if any(padding):  # nnU-Net pads a small image with zeros: half below, the rest above
        image = torch.nn.functional.pad(image, [v for d in reversed(padding) for v in (d // 2, d - d // 2)])
    padded = tuple(image.shape[1:])
    starts = [tile_starts(s, p, tile_step) for s, p in zip(padded, patch)]
    tiles = list(itertools.product(*starts))
    gaussian = gaussian_importance(patch)
    unpad = (slice(None), *(slice(d // 2, d // 2 + s) for d, s in zip(padding, shape)))
    total = len(tiles) * len(folds)

    summed = None
    with torch.inference_mode():
        for f, fold in enumerate(folds):
            if fold.weights is not None:  # None: already loaded into the network
                load_weights(network, fold)
            flips = mirror_combinations(fold.mirror_axes) if mirroring else []
            logits = torch.zeros((num_outputs, *padded), dtype=torch.half)
            weight = torch.zeros(padded, dtype=torch.half)
            for t, start in enumerate(tiles):
                report((f * len(tiles) + t) / total,
                       f"Segmenting: tile {t + 1} of {len(tiles)}" + (f", fold {f + 1} of {len(folds)}"
                                                                     if len(folds) > 1 else ""))
                box = tuple(slice(s, s + p) for s, p in zip(start, patch))
                tile = image[(slice(None), *box)][None].contiguous().to(device)
                prediction = forward(network, tile)
                for axes in flips:
                    prediction += torch.flip(forward(network, torch.flip(tile, axes)), axes)
                if flips:
                    prediction /= len(flips) + 1
                prediction = prediction[0].to("cpu")
                prediction *= gaussian
                _accumulate(logits, prediction, box)
                del prediction
                weight[box] += gaussian
            _divide_in_slabs(logits, weight)
            logits = logits[unpad]
            if summed is None:
                summed = logits
            else:
                summed += logits
            del weight
        if len(folds) > 1:
            summed /= len(folds)
    report(1.0, "Segmenting: network done")
    return summed


def _accumulate(logits, prediction, box, chunk_bytes: int = 64 * 2**20) -> None:
    """``logits[:, box] += prediction`` with nnU-Net's rounding (float16 += float32: the sum
    is formed in float32, then rounded), a few classes at a time so that the float32 copy
    of the region stays small (a 118-class tile's would be 0.75 GB)."""
    per_class = prediction[0].numel() * 4
    step = max(1, chunk_bytes // max(per_class, 1))
    for c in range(0, prediction.shape[0], step):
        region = (slice(c, c + step), *box)
        logits[region] = logits[region].float().add_(prediction[c:c + step])


def _divide_in_slabs(logits, weight, slab: int = 8) -> None:
    """``torch.div(logits, weight, out=logits)`` a few slices at a time, refusing infinities."""
    import torch
    for z in range(0, logits.shape[1], slab):
        part = logits[:, z:z + slab]
        torch.div(part, weight[z:z + slab], out=part)
        if torch.isinf(part).any():
            raise ModelError("The nnU-Net network's logits overflowed",
                             "they exceed the float16 range nnU-Net accumulates them in",
                             "check the model's weights; a healthy nnU-Net model never does this")
