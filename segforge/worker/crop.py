"""Send masks as their bounding box: a small lesion in a big CT travels as a few KiB.

The cropped image keeps exact geometry (its origin moves to the box's first voxel), and
the receiver pastes it back into the full grid from the offset it carries.
"""
from __future__ import annotations

import numpy as np

from ..image import Image, foreground_box


def crop_to_foreground(mask: Image) -> tuple[Image, tuple[int, int, int]]:
    """The mask cut to its non-zero box and the box's first voxel as (k, j, i).

    An empty mask becomes a single zero voxel at the grid's origin.
    """
    box = foreground_box(mask.array) or (slice(0, 1),) * 3
    offset_kji = tuple(int(s.start) for s in box)
    start_lps = mask.ijk_to_lps() @ np.array([offset_kji[2], offset_kji[1], offset_kji[0], 1.0])
    cropped = Image(np.ascontiguousarray(mask.array[box]), mask.spacing, tuple(start_lps[:3]),
                    mask.direction_lps)
    return cropped, offset_kji  # type: ignore[return-value]


def paste_into_grid(cropped: np.ndarray, offset_kji: tuple[int, int, int],
                    shape_kji: tuple[int, int, int]) -> np.ndarray:
    """The full-grid array holding ``cropped`` at ``offset_kji`` and zeros elsewhere."""
    full = np.zeros(shape_kji, dtype=cropped.dtype)
    box = tuple(slice(o, o + n) for o, n in zip(offset_kji, cropped.shape))
    full[box] = cropped
    return full
