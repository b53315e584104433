"""The fast trilinear sampler gives what scipy's map_coordinates (order 1, constant mode) gives."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segforge.vessel.sampling import trilinear


@pytest.mark.parametrize("shape", [(5, 6, 7), (1, 6, 7), (4, 1, 3), (2, 2, 2), (3, 4, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, bool])
def test_same_as_map_coordinates_inside_at_the_faces_and_outside(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    volume = (rng.random(shape) * 300 - 100).astype(dtype) if dtype is not bool else rng.random(shape) > 0.5
    data = volume.view(np.uint8) if dtype is bool else volume
    points = rng.uniform(-1.5, np.array(shape)[:, None] + 0.5, (3, 4000))
    points[:, :40] = np.array(shape)[:, None] - 1  # exactly on the last voxel of every axis
    points[:, 40:80] = 0.0
    points[0, 80:120] = -1e-4  # just outside
    for cval in (0.0, -7.5):
        expected = ndimage.map_coordinates(data, points, order=1, mode="constant", cval=cval, output=np.float32)
        found = trilinear(data, *points, cval=cval)
        assert found.dtype == np.float32 and found.shape == (4000,)
        assert np.allclose(found, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_keeps_the_shape_of_the_indices():
    volume = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    k, j, i = np.meshgrid(np.linspace(0, 2, 3), np.linspace(0, 3, 4), np.linspace(0, 4, 5), indexing="ij")
    assert np.array_equal(trilinear(volume, k, j, i), volume)  # at the voxel centres: the voxels
    assert trilinear(volume, k[..., :2], j[..., :2], i[..., :2] + 0.5).shape == (3, 4, 2)


@pytest.mark.parametrize("steps_dtype", [np.float64, np.float32])
def test_on_rays_gives_trilinear_at_the_rays_points_bit_for_bit(steps_dtype):
    """``trilinear_on_rays`` makes the points a block of rays at a time; each value is the
    one ``trilinear`` gives at origin + steps * heading, rays leaving the box included (cval),
    across several blocks."""
    from segforge.vessel.sampling import BLOCK, trilinear_on_rays

    rng = np.random.default_rng(3)
    volume = (rng.random((9, 11, 13)) > 0.5).astype(np.uint8)
    count, samples = 2 * BLOCK // 7 + 5, 7
    origin = (rng.random((count, 3)) * np.array([8, 10, 12])).astype(np.float32)
    heading = (rng.normal(size=(count, 3)) * 0.6).astype(np.float32)
    steps = (rng.random((count, 1)) * 3 + np.arange(samples, dtype=np.float32)).astype(steps_dtype)
    expected = trilinear(volume, *(origin[:, a, None] + steps * heading[:, a, None] for a in range(3)), cval=np.nan)
    found = trilinear_on_rays(volume, origin, heading, steps, cval=np.nan)
    assert found.dtype == np.float32 and found.shape == (count, samples)
    assert np.isnan(found).any() and np.array_equal(found, expected, equal_nan=True)
