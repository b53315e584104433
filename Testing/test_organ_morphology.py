"""The organ workflow's morphology in millimetres runs on the project's distance transform
(:mod:`segforge.distance`): the same voxels as scipy's exact float64 transform, ties at the
radius included, on anisotropic grids; the image border never counts as outside for erosion."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segforge.organ.morphology import close_mm, depth_mm, dilate_mm, erode_mm

SPACINGS = [(1.0, 1.0, 1.0), (2.5, 0.7, 0.7), (0.8, 1.3, 2.9)]


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((30, 34, 38)), 2.5)
    return field > 0.05


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("radius", [1.0, 2.5, 3.0, 5.0])
def test_dilation_and_erosion_keep_scipys_voxels_ties_included(spacing, radius):
    mask = _blobs(int(radius * 10) + len(spacing))
    exact_out = ndimage.distance_transform_edt(~mask, sampling=spacing)
    assert np.array_equal(dilate_mm(mask, radius, spacing), exact_out <= radius + 1e-9)
    exact_in = ndimage.distance_transform_edt(np.pad(mask, 1, constant_values=True), sampling=spacing)[1:-1, 1:-1, 1:-1]
    # erosion is judged inside the mask's box, whose faces are not outside (a body cut by the image)
    assert np.array_equal(erode_mm(mask, radius, spacing), mask & (exact_in > radius + 1e-9))
    assert np.array_equal(close_mm(mask, radius, spacing) | mask, close_mm(mask, radius, spacing))


def test_ties_at_the_radius_count_as_inside_on_every_axis_order():
    mask = np.zeros((21, 21, 21), bool)
    mask[10, 10, 10] = True
    for spacing in [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5), (0.5, 2.0, 1.0)]:
        grown = dilate_mm(mask, 2.0, spacing)
        offsets = (np.argwhere(grown) - 10) * np.asarray(spacing)
        assert np.all(np.linalg.norm(offsets, axis=1) <= 2.0 + 1e-9)
        assert np.any(np.isclose(np.linalg.norm(offsets, axis=1), 2.0))  # the voxel exactly 2 mm away is in


def test_erosion_does_not_eat_a_body_cut_by_the_image():
    body = np.ones((12, 20, 20), bool)
    body[:, :2] = False  # one real edge; the other faces are the image's border
    eroded = erode_mm(body, 3.0, (1.0, 1.0, 1.0))
    assert eroded[:, 5:].all() and not eroded[:, :5].any()


def test_depth_is_the_distance_to_the_background():
    mask = np.zeros((9, 9, 9), bool)
    mask[1:8, 1:8, 1:8] = True
    depth = depth_mm(mask, (1.0, 2.0, 1.0))
    assert depth[4, 4, 4] == pytest.approx(4.0)  # four voxels to the background along k and i
    assert depth[1, 4, 4] == pytest.approx(1.0)
    assert depth[0, 0, 0] == 0.0
