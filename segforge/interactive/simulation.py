"""The click simulation of interactive-segmentation papers, to measure a backend on a reference mask.

The first click goes to the centre of the lesion (the voxel farthest from its boundary);
each next click goes to the voxel farthest inside the largest error region, positive when
the region is missed lesion, negative when it is a false alarm. Distances are in
millimetres, so anisotropic voxels do not bend the choice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from ..image import Image, foreground_box, grow_box
from .prompts import PointPrompt, Prompt
from .session import InteractiveSession


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two masks (1.0 when both are empty)."""
    a, b = a != 0, b != 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def _deepest_voxel(region: np.ndarray, spacing_kji: np.ndarray) -> tuple[int, int, int]:
    """The voxel of ``region`` farthest (in mm) from its boundary, the image border counting as boundary."""
    distance = ndimage.distance_transform_edt(np.pad(region, 1), sampling=spacing_kji)[1:-1, 1:-1, 1:-1]
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(distance)), distance.shape))  # type: ignore[return-value]


def next_click(reference: np.ndarray, prediction: np.ndarray,
               spacing_kji: np.ndarray) -> Optional[tuple[tuple[int, int, int], bool]]:
    """The next simulated click (voxel, positive) or None when the prediction is exact."""
    reference, prediction = reference != 0, prediction != 0
    box = foreground_box(reference | prediction, pad=1)
    if box is None:
        return None
    best: Optional[tuple[int, tuple[int, int, int], bool]] = None
    for error, positive in ((reference[box] & ~prediction[box], True), (prediction[box] & ~reference[box], False)):
        labels, count = ndimage.label(error)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        largest = int(np.argmax(sizes))
        if best is None or sizes[largest] > best[0]:
            voxel = _deepest_voxel(labels == largest + 1, spacing_kji)
            best = (int(sizes[largest]), tuple(v + s.start for v, s in zip(voxel, box)), positive)  # type: ignore[assignment]
    return None if best is None else (best[1], best[2])


def voxel_center_lps(image: Image, kji: tuple[int, int, int]) -> tuple[float, float, float]:
    """The LPS position of a voxel's centre (where a user's click on it lands)."""
    point = image.ijk_to_lps() @ np.array([kji[2], kji[1], kji[0], 1.0])
    return tuple(float(v) for v in point[:3])  # type: ignore[return-value]


@dataclass
class SimulationResult:
    """Dice after each click and the seconds each interaction took."""

    dice: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def clicks_to(self, target: float) -> Optional[int]:
        """Clicks needed to reach Dice ``target`` (None if never reached)."""
        return next((n + 1 for n, d in enumerate(self.dice) if d >= target), None)

    def dice_after(self, clicks: int) -> float:
        """Dice after ``clicks`` clicks (the last one if the simulation stopped early: it was exact)."""
        return self.dice[min(clicks, len(self.dice)) - 1]


def simulate_clicks(image: Image, reference: np.ndarray, clicks: int = 10, backend: str = "random-walker",
                    session_factory: Optional[Callable[[Image], InteractiveSession]] = None,
                    first: Optional[Prompt] = None) -> SimulationResult:
    """Run the click simulation for ``clicks`` clicks on one lesion. With ``first`` (a box, as
    SAM-style tools are used: box, then corrective clicks), that prompt comes first and its
    Dice is the result's first entry; the clicks follow by the same rule."""
    session = (session_factory or (lambda im: InteractiveSession(im, backend)))(image)
    spacing_kji = np.asarray(image.spacing[::-1], dtype=float)
    result = SimulationResult()
    if first is not None:
        start = time.perf_counter()
        session.interact(first)
        result.seconds.append(time.perf_counter() - start)
        result.dice.append(dice(session.mask, reference))
    for _ in range(clicks):
        click = next_click(reference, session.mask, spacing_kji)
        if click is None:
            break
        kji, positive = click
        start = time.perf_counter()
        session.interact(PointPrompt(voxel_center_lps(image, kji), positive))
        result.seconds.append(time.perf_counter() - start)
        result.dice.append(dice(session.mask, reference))
    return result


def crop_around(image: Image, reference: np.ndarray, margin_mm: float) -> tuple[Image, np.ndarray]:
    """The image and reference cropped to the lesion plus ``margin_mm`` (for small test data)."""
    box = foreground_box(reference)
    if box is None:
        raise ValueError("the reference mask is empty")
    pad = [int(np.ceil(margin_mm / s)) for s in image.spacing[::-1]]
    box = grow_box(box, pad, reference.shape)
    return image.crop(box), reference[box]
