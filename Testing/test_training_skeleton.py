"""The topology-preserving skeleton (segforge.training): simple points checked against an
independent definition, and skeletons of shapes of known topology (rings, shells, random
blobs) checked with the project's Betti numbers."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage

from segforge.errors import InputError
from segforge.training.simple_points import is_simple, pack
from segforge.training.skeleton import soft_skeleton, topological_skeleton
from segforge.training.thinning import thin
from segforge.vessel.topology import betti_numbers

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no CUDA device on this machine"))]


def _simple_by_labelling(cube: np.ndarray) -> bool:
    """Bertrand-Malandain's definition counted with scipy's labelling, not with bit tricks."""
    others = cube.copy()
    others[1, 1, 1] = False
    _, objects = ndimage.label(others, structure=np.ones((3, 3, 3), bool))
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    n18 = np.zeros((3, 3, 3), bool)
    for offset in offsets:
        if 1 <= np.count_nonzero(offset) <= 2:
            n18[tuple(offset + 1)] = True
    background = ~cube & n18
    labels, _ = ndimage.label(background)  # 6-connected, inside N18 only
    faces = [tuple(np.array(f) + 1) for f in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
    touching = {labels[f] for f in faces if labels[f]}
    return objects == 1 and len(touching) == 1


def test_simple_point_test_matches_the_definition_on_random_neighbourhoods():
    rng = np.random.default_rng(7)
    cubes = np.concatenate([rng.random((1500, 3, 3, 3)) < density for density in (0.15, 0.35, 0.6, 0.85)])
    cubes[:, 1, 1, 1] = True
    expected = np.array([_simple_by_labelling(c) for c in cubes])
    codes = pack(torch.from_numpy(cubes.reshape(len(cubes), 27)))
    got = is_simple(codes).numpy()
    assert 0.1 < expected.mean() < 0.9  # both answers occur often
    np.testing.assert_array_equal(got, expected)


def _torus(shape=(16, 44, 44), major=13.0, minor=3.2, tilt_deg=0.0) -> np.ndarray:
    """A ring of tube in the middle of ``shape``, tilted about the x axis out of the (y, x) plane."""
    z, y, x = np.indices(shape, dtype=float)
    cz, cy, cx = (np.array(shape) - 1) / 2
    c, s = np.cos(np.radians(tilt_deg)), np.sin(np.radians(tilt_deg))
    z, y = c * (z - cz) - s * (y - cy), s * (z - cz) + c * (y - cy)
    return np.hypot(np.hypot(y, x - cx) - major, z) <= minor


def test_a_batch_of_volumes_is_thinned_one_by_one():
    """Volumes of a batch share one flat array: none may leak into its neighbour."""
    rng = np.random.default_rng(5)
    blobs = np.stack([ndimage.gaussian_filter(rng.random((21, 23, 25)), 1.5) > 0.5 for _ in range(3)])
    together = thin(torch.from_numpy(blobs)).numpy()
    for blob, skeleton in zip(blobs, together):
        np.testing.assert_array_equal(skeleton, _thin(blob))


def _thin(mask: np.ndarray, device: str = "cpu") -> np.ndarray:
    return thin(torch.from_numpy(mask)[None].to(device))[0].cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_a_ring_stays_one_ring_one_voxel_thin(device):
    ring = _torus()
    assert betti_numbers(ring) == (1, 1, 0)
    skeleton = _thin(ring, device)
    assert betti_numbers(skeleton) == (1, 1, 0)
    neighbours = ndimage.convolve(skeleton.astype(int), np.ones((3, 3, 3), int), mode="constant") - 1
    assert skeleton.sum() < 0.2 * ring.sum()
    assert np.all(neighbours[skeleton] == 2)  # a closed curve: every voxel has exactly two neighbours


def test_shapes_of_known_topology_keep_their_betti_numbers():
    z, y, x = np.indices((30, 30, 30), dtype=float)
    r = np.sqrt((z - 14.5) ** 2 + (y - 14.5) ** 2 + (x - 14.5) ** 2)
    ball = r <= 10
    shell = (r <= 12) & (r >= 8)
    two_tubes = np.zeros((30, 30, 30), bool)
    two_tubes[5:25, 4:9, 4:9] = True
    two_tubes[5:25, 18:24, 18:24] = True
    for mask, expected in ((ball, (1, 0, 0)), (shell, (1, 0, 1)), (two_tubes, (2, 0, 0))):
        assert betti_numbers(mask) == expected
        assert betti_numbers(_thin(mask)) == expected
    assert _thin(ball).sum() <= 2  # a point, or two neighbours that are both end points


def test_random_blobs_keep_components_loops_and_cavities():
    rng = np.random.default_rng(3)
    for shape in ((28, 28, 28), (27, 29, 31), (25, 30, 23), (31, 26, 27)):  # odd sizes: parity of flat indices
        blob = ndimage.gaussian_filter(rng.random(shape), 1.6) > 0.5
        skeleton = _thin(blob)
        assert betti_numbers(skeleton) == betti_numbers(blob)
        assert skeleton.sum() < blob.sum()
        assert not (skeleton & ~blob).any()


def test_a_straight_tube_thins_to_its_axis():
    tube = np.zeros((40, 20, 20), bool)
    z, y, x = np.indices(tube.shape)
    tube[(np.hypot(y - 9.5, x - 9.5) <= 5) & (z >= 3) & (z <= 36)] = True
    skeleton = _thin(tube)
    zz, yy, xx = np.nonzero(skeleton)
    assert betti_numbers(skeleton) == (1, 0, 0)
    assert np.all(np.hypot(yy - 9.5, xx - 9.5) <= 1.5)  # on the axis
    assert zz.min() <= 9 and zz.max() >= 30  # as long as the tube, less about its radius at each end


def test_iterations_bound_the_layers_peeled():
    tube = np.zeros((30, 24, 24), bool)
    z, y, x = np.indices(tube.shape)
    tube[(np.hypot(y - 11.5, x - 11.5) <= 8) & (z >= 2) & (z <= 27)] = True
    once = _thin_n(tube, 1)
    assert once.sum() < tube.sum() and once.sum() > _thin(tube).sum()
    assert betti_numbers(once) == (1, 0, 0)


def _thin_n(mask: np.ndarray, n: int) -> np.ndarray:
    return thin(torch.from_numpy(mask)[None], iterations=n)[0].numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_the_topological_skeleton_passes_gradients_to_its_voxels(device):
    ring = torch.from_numpy(_torus()).float()[None, None].to(device)
    probabilities = (0.2 + 0.6 * ring).requires_grad_(True)  # 0.8 inside, 0.2 outside
    skeleton = topological_skeleton(probabilities)
    assert skeleton.shape == probabilities.shape and skeleton.dtype == probabilities.dtype
    assert betti_numbers(skeleton.detach().cpu().numpy()[0, 0] > 0.5) == (1, 1, 0)
    (skeleton * torch.arange(skeleton.numel(), device=device).reshape(skeleton.shape)).sum().backward()
    grad = probabilities.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert torch.equal(grad != 0, skeleton.detach() > 0)  # straight-through: on the skeleton only


def test_noise_makes_voxels_near_one_half_flip():
    probabilities = torch.full((1, 1, 8, 8, 8), 0.5)
    generator = torch.Generator().manual_seed(0)
    skeleton = topological_skeleton(probabilities.clone().requires_grad_(True), noise=0.33, generator=generator)
    assert 0 < skeleton.sum() < skeleton.numel()


def test_clDice_soft_skeleton_breaks_the_ring_where_ours_does_not():
    """Why the topological operator exists: the soft skeleton of a tilted ring falls apart."""
    ring = torch.from_numpy(_torus((36, 44, 44), minor=4.0, tilt_deg=45)).float()[None, None]
    soft = soft_skeleton(ring).numpy()[0, 0] > 0.5
    assert betti_numbers(soft)[0] > 4  # 16 pieces when this was written
    assert betti_numbers(topological_skeleton(ring).numpy()[0, 0] > 0.5) == (1, 1, 0)


@pytest.mark.parametrize("bad, words", [
    (torch.ones(4, 4, 4, dtype=torch.long), "floating-point"),
    (torch.ones(4, 4), "not a volume"),
    (torch.full((4, 4, 4), 3.0), "outside [0, 1]"),
])
def test_bad_input_is_a_one_line_message(bad, words):
    with pytest.raises(InputError) as raised:
        topological_skeleton(bad)
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_thinning_leaves_torch_thread_count_as_it_found_it():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        thin(torch.from_numpy(_torus())[None])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
