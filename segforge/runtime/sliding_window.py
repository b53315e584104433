"""A network run over a whole volume tile by tile (MONAI's sliding-window inference, Gaussian
blending), with progress before every tile: where Cancel lands.

(nnU-Net models have their own tiling, with nnU-Net's numerics: :mod:`segforge.organ.nnunet.sliding_window`.)
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..progress import ProgressCallback

if TYPE_CHECKING:
    import torch


def tile_count(shape: Sequence[int], roi: Sequence[int], overlap: float) -> int:
    """How many tiles MONAI's sliding window visits (for progress as "tile n of N")."""
    count = 1
    for size, tile in zip(shape, roi):
        step = max(int(tile * (1 - overlap)), 1)
        count *= 1 if size <= tile else math.ceil((size - tile) / step) + 1
    return count


def sliding_window_logits(model: Callable[[Any], Any], tensor: "torch.Tensor", roi: Sequence[int],
                          overlap: float, progress: ProgressCallback, label: str = "Tile") -> "torch.Tensor":
    """The network's output over the whole (1, C, ...) ``tensor``, tile by tile with Gaussian
    blending; ``progress`` is called before every tile, so a Cancel raised there lands
    within one tile."""
    import torch
    from monai.inferers import sliding_window_inference

    total = tile_count(tensor.shape[2:], roi, overlap)
    done = [0]

    def predict(tiles: "torch.Tensor") -> "torch.Tensor":
        progress(min(done[0] / total, 1.0), f"{label} {min(done[0] + 1, total)} of {total}")
        out = model(tiles)
        done[0] += tiles.shape[0]
        return out

    with torch.inference_mode():
        return sliding_window_inference(tensor, list(roi), 1, predict, overlap=overlap, mode="gaussian")
