"""A box, then corrective clicks (the SAM-style workflow; issue 17). The box's answer is the
object found; a click after it corrects that answer where the click is evidence, and nowhere
else. Two defects this holds:

- a positive click on a dim part of the lesion took a threshold piece of the tissue *darker*
  than the box's inside (the click's level lay below the box's median, so its contrast was
  read the wrong way round) that never "leaked", because the box bounds every piece and the
  leak test looked only at the window's faces: the walker then filled the box's background
  (ms07_flair 0.892 -> 0.451 after one click);
- a negative click after a box removed little or nothing: the box's object held the walker to
  the box's answer, and the ordinary hole fill closed the cut (the sarcoma: Dice unchanged by
  five clicks).

Masks are still a function of the prompts alone: undo, redo and a replay give the same ones."""
from __future__ import annotations

import numpy as np

from segforge.image import Image
from segforge.interactive.evaluation import (CaseResult, box_prompt, box_then_clicks_table,
                                             random_walker_factory)
from segforge.interactive.prompts import PointPrompt
from segforge.interactive.random_walker import RandomWalkerParameters
from segforge.interactive.simulation import dice, next_click, voxel_center_lps

SHAPE = (36, 36, 36)
ONE_MM = (1.0, 1.0, 1.0)


def _cube_with_a_dim_side(side: int = 20, thick: int = 4) -> tuple[Image, np.ndarray, np.ndarray]:
    """A bright cube (135; background 85, noise 8) whose side slab ``thick`` voxels deep is dim
    (92, a noise deviation above the background): the image, the lesion, the dim slab. The cube
    fills most of its box, so the box's median is the bright part's."""
    lo = (SHAPE[0] - side) // 2
    lesion = np.zeros(SHAPE, bool)
    lesion[lo:lo + side, lo:lo + side, lo:lo + side] = True
    dim = np.zeros(SHAPE, bool)
    dim[lo:lo + side, lo:lo + side, lo:lo + thick] = True
    array = np.where(dim, 92.0, np.where(lesion, 135.0, 85.0)) + np.random.default_rng(1).normal(0, 8, SHAPE)
    return Image(array.astype(np.float32), ONE_MM), lesion, dim


def _sphere_with_a_neighbour() -> tuple[Image, np.ndarray, np.ndarray]:
    """A bright sphere (radius 9 voxels) touched by a bright neighbour (radius 5) of the same
    intensity, inside the box drawn around the sphere: the image, the lesion, the neighbour."""
    k, j, i = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]].astype(float)
    lesion = np.sqrt((k - 17.5) ** 2 + (j - 17.5) ** 2 + (i - 17.5) ** 2) <= 9.0
    neighbour = (np.sqrt((k - 17.5) ** 2 + (j - 23.8) ** 2 + (i - 23.8) ** 2) <= 5.0) & ~lesion
    array = np.where(lesion | neighbour, 135.0, 85.0) + np.random.default_rng(1).normal(0, 8, SHAPE)
    return Image(array.astype(np.float32), ONE_MM), lesion, neighbour


def _click(image: Image, reference: np.ndarray, mask: np.ndarray) -> PointPrompt:
    """The simulation's next click (deepest voxel of the largest error region)."""
    kji, positive = next_click(reference, mask, np.asarray(image.spacing[::-1], float))
    return PointPrompt(tuple(voxel_center_lps(image, kji)), positive)  # type: ignore[arg-type]


def test_a_dim_click_after_a_box_does_not_fill_the_box():
    """The box misses the dim slab; the next click lands in it. It used to take the tissue
    darker than the box's median, the box's background, as its piece (false positives 39 ->
    1,716 voxels); now it adds the tissue like it between it and the mask."""
    image, lesion, dim = _cube_with_a_dim_side()
    session = random_walker_factory(RandomWalkerParameters())(image)
    session.interact(box_prompt(image, lesion))
    boxed = session.mask.astype(bool)
    click = _click(image, lesion, boxed)
    assert click.positive
    session.interact(click)
    clicked = session.mask.astype(bool)
    added = int(np.count_nonzero(clicked & ~lesion)) - int(np.count_nonzero(boxed & ~lesion))
    print(f"\nbox {dice(boxed, lesion):.3f}, then a dim click {dice(clicked, lesion):.3f}: "
          f"{added} false-positive voxels added")
    assert added <= 100  # measured 19; before 1,677
    assert dice(clicked, lesion) >= dice(boxed, lesion) - 0.05
    assert np.count_nonzero(clicked & dim) >= np.count_nonzero(boxed & dim)


def test_a_negative_click_after_a_box_removes_its_region():
    """The box's answer holds the lesion's bright neighbour; a negative click on it removes it
    (it used to keep 177 of its 312 voxels: the box's object held the walker to it), and
    most of the lesion stays."""
    image, lesion, neighbour = _sphere_with_a_neighbour()
    session = random_walker_factory(RandomWalkerParameters())(image)
    session.interact(box_prompt(image, lesion))
    boxed = session.mask.astype(bool)
    assert np.count_nonzero(boxed & neighbour) > 0.9 * np.count_nonzero(neighbour)
    click = _click(image, lesion, boxed)
    assert not click.positive
    session.interact(click)
    cut = session.mask.astype(bool)
    print(f"\nnegative click on the box's neighbour: neighbour {np.count_nonzero(boxed & neighbour)} -> "
          f"{np.count_nonzero(cut & neighbour)} voxels, Dice {dice(boxed, lesion):.3f} -> {dice(cut, lesion):.3f}")
    assert np.count_nonzero(cut & neighbour) <= 0.2 * np.count_nonzero(boxed & neighbour)  # measured 8 of 312
    # the neighbour is the lesion's intensity: the cut reaches into the lesion, no edge stops it
    # there (twice the click's depth, as any negative click's reach): 3,112 -> 2,915 voxels
    assert np.count_nonzero(cut & lesion) >= 0.9 * np.count_nonzero(boxed & lesion)
    assert dice(cut, lesion) > dice(boxed, lesion)  # measured 0.880 -> 0.895


def test_box_then_clicks_replays_and_undoes_to_the_same_masks():
    image, lesion, _ = _sphere_with_a_neighbour()
    session = random_walker_factory(RandomWalkerParameters())(image)
    prompts = [box_prompt(image, lesion)]
    session.interact(prompts[0])
    masks = [session.mask.copy()]
    for _ in range(3):
        prompts.append(_click(image, lesion, session.mask))
        session.interact(prompts[-1])
        masks.append(session.mask.copy())
    replayed = random_walker_factory(RandomWalkerParameters())(image)
    for prompt, mask in zip(prompts, masks):
        replayed.interact(prompt)
        assert np.array_equal(replayed.mask, mask)
    for mask in reversed(masks[:-1]):
        session.undo()
        assert np.array_equal(session.mask, mask)
    for mask in masks[1:]:
        session.redo()
        assert np.array_equal(session.mask, mask)


def test_the_box_then_clicks_table_reports_the_drop_and_the_last_against_the_box():
    result = CaseResult("x", box_clicks=[0.9, 0.5, 0.7, 0.8, 0.85, 0.88])
    assert abs(result.box_clicks_drop - 0.4) < 1e-9
    assert result.box_clicks_after(0) == 0.9 and result.box_clicks_after(5) == 0.88
    table = box_then_clicks_table([("x", result)])
    assert "| x | 0.900 | 0.500 | 0.800 | 0.880 | 0.400 | no |" in table


def test_a_scribble_on_a_dim_part_after_a_box_does_not_fill_the_box():
    """A scribble's answer is taken whole (no local bound as for a click), so its piece must
    itself stay clear of the box's background: a piece reaching the box's walls leaks, as one
    reaching the window's faces does (before, the box's walls hid the leak: false positives 39
    -> 1,743 voxels, Dice 0.897; now 75, Dice 0.929)."""
    from segforge.interactive.prompts import ScribblePrompt

    image, lesion, dim = _cube_with_a_dim_side()
    session = random_walker_factory(RandomWalkerParameters())(image)
    session.interact(box_prompt(image, lesion))
    boxed = session.mask.astype(bool)
    lo = (SHAPE[0] - 20) // 2
    session.interact(ScribblePrompt(np.array([voxel_center_lps(image, (18, j, lo + 1)) for j in range(14, 23)])))
    scribbled = session.mask.astype(bool)
    added = int(np.count_nonzero(scribbled & ~lesion)) - int(np.count_nonzero(boxed & ~lesion))
    print(f"\nbox {dice(boxed, lesion):.3f}, then a scribble on the dim side {dice(scribbled, lesion):.3f}: "
          f"{added} false-positive voxels added")
    assert added <= 200  # measured 36; before 1,704
    assert dice(scribbled, lesion) > dice(boxed, lesion)
