"""The closest-RAS view of an image: exact both ways, and every voxel stays where it is."""
import numpy as np
import pytest
import torch

from conftest import OBLIQUE, rotation
from segforge.image import Image
from segforge.orientation import from_network_axes, from_ras_array, network_axes, reorient_to_ras, to_network_axes

DIRECTIONS = [np.eye(3), OBLIQUE, rotation(90, 0, 90), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
IDS = ["LPS", "oblique", "sagittal", "flipped", "RAS"]


def _world_ras(image: Image) -> list[np.ndarray]:
    k, j, i = np.indices(image.array.shape)
    lps = (image.ijk_to_lps() @ np.stack([i, j, k, np.ones_like(i)]).reshape(4, -1))[:3].reshape(3, *k.shape)
    return [-lps[0], -lps[1], lps[2]]


@pytest.mark.parametrize("direction", DIRECTIONS, ids=IDS)
def test_network_sees_axes_closest_to_ras_and_the_way_back_is_exact(direction):
    image = Image(np.zeros((5, 6, 7), np.float32), (0.7, 1.3, 2.9), (1, 2, 3), direction)
    axes = network_axes(direction)
    for world, values in enumerate(_world_ras(image)):
        for volume in (values, torch.from_numpy(values.copy())):  # numpy arrays and torch tensors alike
            seen = np.asarray(to_network_axes(volume, axes))
            assert np.all(np.diff(seen, axis=world) > 0), f"{'RAS'[world]} does not grow along network axis {world}"
            back = from_network_axes(to_network_axes(volume, axes), axes)
            np.testing.assert_array_equal(np.asarray(back), values)


@pytest.mark.parametrize("direction", DIRECTIONS, ids=IDS)
def test_reoriented_image_keeps_every_voxel_in_place(direction):
    rng = np.random.default_rng(0)
    image = Image(rng.integers(0, 1000, (5, 6, 7)).astype(np.int16), (0.7, 1.3, 2.9), (1, 2, 3), direction)
    ras_image, axes = reorient_to_ras(image)
    # i grows to the Right, j to Anterior, k to Superior (within the closest axis)
    ras_direction = np.diag([-1.0, -1.0, 1.0]) @ ras_image.direction_lps
    assert np.all(np.diag(ras_direction) > 0.5)
    # the same voxel value sits at the same point in space
    before = {tuple(np.round(p, 6)): v for p, v in zip(np.stack(_world_ras(image), -1).reshape(-1, 3),
                                                       image.array.ravel())}
    after = {tuple(np.round(p, 6)): v for p, v in zip(np.stack(_world_ras(ras_image), -1).reshape(-1, 3),
                                                      ras_image.array.ravel())}
    assert before == after
    np.testing.assert_array_equal(from_ras_array(ras_image.array, axes), image.array)
