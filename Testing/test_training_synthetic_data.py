"""Domain-randomised synthetic training pairs (segforge.training.synthetic_data): the label
stays on the image's grid (oblique and anisotropic included), the vessels are visible with
the drawn polarity, and the draws vary from seed to seed but not for one seed."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segforge.errors import InputError
from segforge.training.synthetic_data import randomised_case
from segforge.vessel.synthetic import make_grid, random_tree

SMALL = dict(extent_mm=(32.0, 32.0, 32.0), spacing_range_mm=(0.9, 1.2), generations=3)
SEEDS = range(16)


@pytest.fixture(scope="module")
def cases():
    return [randomised_case(seed, **SMALL) for seed in SEEDS]


def test_the_label_lies_on_the_image_grid(cases):
    for case in cases:
        assert case.image.same_grid(case.label, tol=1e-9)
        assert case.image.array.dtype == np.float32 and case.label.array.dtype == np.uint8
        assert case.label.array.any() and np.isfinite(case.image.array).all()
        assert set(np.unique(case.label.array)) == {0, 1}


def test_the_label_is_the_tree_drawn_on_the_same_grid():
    """Draw the case's tree again on a grid rebuilt from the image's geometry: it is the label."""
    case = randomised_case(3, **SMALL, oblique_probability=1.0)
    assert case.oblique and case.image.is_oblique
    grid = make_grid(SMALL["extent_mm"], spacing=case.image.spacing, direction_lps=case.image.direction_lps)
    assert grid.same_grid(case.image, tol=1e-9)
    tree = random_tree(grid, **case.tree_parameters)
    np.testing.assert_array_equal(case.label.array, (tree.mask.array > 0).astype(np.uint8))


def test_vessels_show_with_the_drawn_polarity(cases):
    for case in cases:
        label = case.label.array > 0
        shell = ndimage.binary_dilation(label, iterations=3) & ~ndimage.binary_dilation(label, iterations=1)
        core = ndimage.binary_erosion(label) if ndimage.binary_erosion(label).any() else label
        difference = case.image.array[core].mean() - case.image.array[shell].mean()
        assert (difference > 0) == case.bright_vessels, (case.bright_vessels, difference)


def test_the_draws_vary_between_seeds_and_repeat_for_one(cases):
    assert {c.bright_vessels for c in cases} == {True, False}
    assert {c.oblique for c in cases} == {True, False}
    assert any(c.spacing[2] > 1.2 * c.spacing[0] for c in cases)  # some thick-slice grids
    assert len({c.blobs for c in cases}) > 1
    again = randomised_case(0, **SMALL)
    np.testing.assert_array_equal(again.image.array, cases[0].image.array)
    np.testing.assert_array_equal(again.label.array, cases[0].label.array)


def test_bad_settings_are_a_one_line_message():
    with pytest.raises(InputError) as raised:
        randomised_case(0, spacing_range_mm=(1.0, 0.5))
    assert "synthetic data settings" in str(raised.value) and "\n" not in str(raised.value)
