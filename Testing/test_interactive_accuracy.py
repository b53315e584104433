"""Accuracy of the default interactive backend (random walker, no weights) under the standard
click simulation: two real lesions (crops in Testing/Data/lesions, from pyradiomics) reach
Dice 0.85 within 5 clicks without collapsing afterwards, and synthetic objects are segmented
exactly, do not leak into a brighter neighbour, and lose an attached tube to one negative click."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segforge.image import Image
from segforge.image_io import read_image
from segforge.interactive.prompts import PointPrompt
from segforge.interactive.session import InteractiveSession
from segforge.interactive.simulation import dice, simulate_clicks, voxel_center_lps

DATA = Path(__file__).parent / "Data" / "lesions"
RESULTS: dict[str, object] = {}


def _table_row(name, result) -> str:
    after = " ".join(f"{result.dice_after(n):.3f}" for n in (1, 3, 5, 10))
    return (f"{name:8s} Dice after 1/3/5/10: {after}  clicks to 85%: {result.clicks_to(0.85)}  "
            f"90%: {result.clicks_to(0.90)}  s/click max {max(result.seconds):.2f} "
            f"median {float(np.median(result.seconds)):.2f}")


@pytest.mark.parametrize("name, after_1, after_5, after_10", [
    # lung1 measured 0.794, 0.879, 0.902 (0.934 after 5 before issue 17: one negative click on the
    # rim then peeled the whole rim; now a negative click changes only the region around it, which
    # keeps a click from wrecking the mask, see test_interactive_protocol.py)
    ("lung1", 0.75, 0.85, 0.90),
    ("brain1", 0.65, 0.85, 0.88),  # measured 0.696, 0.857, 0.904
])
def test_real_lesions_reach_dice_085_within_5_clicks(name, after_1, after_5, after_10):
    image = read_image(DATA / f"{name}_image.nrrd")
    reference = read_image(DATA / f"{name}_label.nrrd").array > 0
    result = simulate_clicks(image, reference, clicks=10)
    print("\n" + _table_row(name, result))
    assert result.dice_after(1) >= after_1
    assert result.dice_after(5) >= after_5
    assert result.dice_after(10) >= after_10
    # robust: no click makes it collapse
    assert all(b >= a - 0.1 for a, b in zip(result.dice, result.dice[1:])), result.dice


SPACING = (0.7, 0.7, 2.5)  # x, y, z mm: thin in-plane, thick slices


def _grid(shape=(24, 64, 64)):
    k, j, i = np.mgrid[:shape[0], :shape[1], :shape[2]].astype(float)
    return k * SPACING[2], j * SPACING[1], i * SPACING[0]


def _click(session: InteractiveSession, mask: np.ndarray, positive: bool = True) -> None:
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(mask, sampling=SPACING[::-1])
    kji = tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), mask.shape))
    session.interact(PointPrompt(voxel_center_lps(session.image, kji), positive))


def test_a_sphere_in_noise_is_exact_after_one_click():
    z, y, x = _grid()
    sphere = (z - 30) ** 2 + (y - 22) ** 2 + (x - 22) ** 2 <= 9.0 ** 2
    rng = np.random.default_rng(1)
    image = Image((100 + 200 * sphere + rng.normal(0, 20, sphere.shape)).astype(np.float32), SPACING)
    session = InteractiveSession(image)
    _click(session, sphere)
    assert dice(session.mask, sphere) > 0.97


def test_a_blob_next_to_a_brighter_structure_does_not_leak_into_it():
    z, y, x = _grid()
    blob = (z - 30) ** 2 + (y - 22) ** 2 + ((x - 18) / 1.3) ** 2 <= 8.0 ** 2
    # a brighter slab 2 mm from the blob, touching it through partial volume only
    bright = (x >= 18 + 1.3 * 8 + 2.0) & (x <= 40) & (np.abs(y - 22) < 15)
    rng = np.random.default_rng(2)
    array = 100 + 150 * blob + 400 * bright + rng.normal(0, 20, blob.shape)
    image = Image(array.astype(np.float32), SPACING)
    session = InteractiveSession(image)
    _click(session, blob)
    mask = session.mask.astype(bool)
    assert dice(mask, blob) > 0.9
    assert np.count_nonzero(mask & bright) < 0.02 * bright.sum()


def test_a_negative_click_removes_an_attached_tube():
    z, y, x = _grid()
    blob = (z - 30) ** 2 + (y - 22) ** 2 + (x - 18) ** 2 <= 8.0 ** 2
    tube = ((z - 30) ** 2 + (y - 22) ** 2 <= 2.0 ** 2) & (x > 18) & (x < 42)
    rng = np.random.default_rng(3)
    array = 100 + 200 * (blob | tube) + rng.normal(0, 20, blob.shape)
    image = Image(array.astype(np.float32), SPACING)
    session = InteractiveSession(image)
    _click(session, blob)
    first = dice(session.mask, blob)
    if not np.any(session.mask.astype(bool) & tube & (x > 30)):
        assert first > 0.9  # the tube was not taken in the first place
        return
    far_tube = tube & (x > 30)
    _click(session, far_tube, positive=False)
    mask = session.mask.astype(bool)
    assert dice(mask, blob) > 0.85
    assert np.count_nonzero(mask & far_tube) == 0


def test_a_large_lesion_stays_whole_through_boundary_clicks():
    """Once a lesion is nearly exact, the simulation clicks on its boundary (here first a pole
    of one voxel on a thick slice, then voxels around it): such clicks must neither spill the
    mask over the rim nor make it collapse to the clicked voxels (Dice fell to 0.02)."""
    shape = (40, 100, 100)
    k, j, i = np.mgrid[:shape[0], :shape[1], :shape[2]].astype(float)
    # centred on a voxel, radius 8 slices: the poles are single voxels
    sphere = ((k - 20) * SPACING[2]) ** 2 + ((j - 50) * SPACING[1]) ** 2 + ((i - 50) * SPACING[0]) ** 2 <= 20.0 ** 2
    rng = np.random.default_rng(0)
    array = np.where(sphere, rng.normal(40, 30, shape), rng.normal(-800, 60, shape))
    image = Image(array.astype(np.float32), SPACING)
    result = simulate_clicks(image, sphere, clicks=5)
    assert len(result.dice) >= 2  # the boundary clicks really happened
    assert min(result.dice) > 0.95, result.dice


SAMPLE_CT = Path(__file__).parents[1] / "Resources" / "SampleData" / "ts_ct_abdomen_3mm"


@pytest.mark.parametrize("label, name, after_10", [
    (1, "spleen", 0.85),        # measured 0.897 (0.847 with threshold chunks; 0.006 seeds only)
    (5, "liver", 0.85),         # measured 0.871 (0.786 with threshold chunks)
    (2, "kidney_right", 0.85),  # measured 0.891 (0.635 with threshold chunks)
    (3, "kidney_left", 0.85),   # measured 0.940 (0.594 with threshold chunks)
])
def test_an_organ_among_like_tissue_grows_click_by_click(label, name, after_10):
    """An organ touching tissue of its own intensity leaks at every threshold: each click adds
    a chunk of like tissue around it instead of its seeds alone, the chunk's noisy voxels
    included, and the walker is not taught the like tissue beyond the chunk as background
    (issue 17: >= 0.85 within 10 clicks on spleen, liver and both kidneys, no click lowering
    Dice by more than 0.05)."""
    from segforge.interactive.simulation import crop_around

    image = read_image(SAMPLE_CT / "example_ct_sm.nii.gz")
    reference = read_image(SAMPLE_CT / "example_seg.nii.gz").array == label
    image, reference = crop_around(image, reference, 30.0)
    result = simulate_clicks(image, reference, clicks=10)
    print("\n" + _table_row(name, result))
    assert result.dice_after(10) >= after_10
    assert all(b >= a - 0.05 for a, b in zip(result.dice, result.dice[1:])), result.dice


def test_a_thin_organ_does_not_take_a_ball_of_like_tissue():
    """The pancreas, thin and wrapped in bowel and vessels of its own intensity: the second click
    lies 59 mm along it from the first click's piece, and a chunk as large as that distance (the
    rule for an isointense blob) took 17,496 voxels of like tissue for a 644-voxel organ (Dice
    0.193 -> 0.048). Tissue like the click fills only 75 % of the ball around it (a blob's bulk:
    92-100 %), so its chunk keeps the usual cap (issue 17: no click lowers Dice by more than
    0.05 on any object)."""
    from segforge.interactive.simulation import crop_around

    image = read_image(SAMPLE_CT / "example_ct_sm.nii.gz")
    reference = read_image(SAMPLE_CT / "example_seg.nii.gz").array == 7  # pancreas
    image, reference = crop_around(image, reference, 30.0)
    result = simulate_clicks(image, reference, clicks=10)
    print("\n" + _table_row("pancreas", result))
    # measured 0.498 after 10, largest drop 0.047 (0.163 and 0.145 with the chunk always that large)
    assert all(b >= a - 0.05 for a, b in zip(result.dice, result.dice[1:])), result.dice
    assert result.dice_after(10) >= 0.4
