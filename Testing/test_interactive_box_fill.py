"""Later prompts on top of a box (issue 17): a negative click after a box alone takes out what
lies around it, and keeps the box's object."""
from __future__ import annotations

import numpy as np

from segforge.image import Image
from segforge.interactive.evaluation import box_prompt, random_walker_factory
from segforge.interactive.prompts import PointPrompt
from segforge.interactive.random_walker import RandomWalkerParameters
from segforge.interactive.simulation import dice, voxel_center_lps

SPACING = (4.0, 4.0, 3.3)  # x, y, z mm: the sarcoma's PET (no thick slices)
SHAPE = (36, 40, 40)
CENTRE = tuple((n - 1) // 2 for n in SHAPE)


def _cored_lesion() -> tuple[Image, np.ndarray, np.ndarray, np.ndarray]:
    """A 30 mm lesion whose 18 mm core is cold (0.8, the tissue around it 1.2), ringed by uptake
    (5.0), the core opening to the outside through an 8 mm channel across the ring: the image,
    the lesion (core included, as a GTV), its core and its cold part (the core and the channel)."""
    k, j, i = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]].astype(float)
    z, y, x = ((k - CENTRE[0]) * SPACING[2], (j - CENTRE[1]) * SPACING[1], (i - CENTRE[2]) * SPACING[0])
    radius = np.sqrt(z ** 2 + y ** 2 + x ** 2)
    lesion, core = radius <= 30.0, radius <= 18.0
    cold = core | ((np.hypot(z, y) <= 8.0) & (x > 0) & lesion)
    array = np.where(cold, 0.8, np.where(lesion, 5.0, 1.2)) + np.random.default_rng(3).normal(0.0, 0.3, SHAPE)
    return Image(array.astype(np.float32), SPACING), lesion, core, cold


def _negative_click(image: Image, kji: tuple[int, int, int]) -> PointPrompt:
    return PointPrompt(tuple(voxel_center_lps(image, kji)), positive=False)  # type: ignore[arg-type]


def test_a_negative_click_after_a_box_alone_keeps_the_box_object():
    """A negative click after a box alone (no click yet) removes what lies around it and keeps
    the rest: the box's object is a positive prompt's evidence as a click's seeds are (it used
    to count for nothing, and the whole mask went: Dice 0.862 -> 0.000 here)."""
    image, lesion, _, _ = _cored_lesion()
    session = random_walker_factory(RandomWalkerParameters())(image)
    session.interact(box_prompt(image, lesion))
    before = dice(session.mask, lesion)
    # a voxel of the ring just inside the lesion's edge, on the side away from the channel
    session.interact(_negative_click(image, (CENTRE[0], CENTRE[1], CENTRE[2] - 7)))
    after = dice(session.mask, lesion)
    print(f"\nnegative click on a box's ring: Dice {before:.3f} -> {after:.3f}")
    assert after >= before - 0.05
