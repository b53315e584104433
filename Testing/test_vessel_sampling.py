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
