"""Centerline graph on synthetic vessels with known answers: topology, positions, radii, metrics.

The same physical trees are rasterised on an isotropic grid, a 0.4 x 0.4 x 2 mm grid and an
oblique anisotropic grid; the graph must be right on each and agree across them in mm.
Robustness cases (empty, one voxel, thin lines, rings, noise, a full volume, one slice,
Cancel) must give a result or a clear error, quickly.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from conftest import OBLIQUE
from segforge.errors import Cancelled, InputError
from segforge.image import Image
from segforge.vessel.graph import BIFURCATION, ENDPOINT, LOOP, CenterlineGraph, centerline_graph
from segforge.vessel.metrics import branch_metrics
from segforge.vessel.radius import BoundaryDistance
from segforge.vessel.skeleton import deletable, skeletonize
from segforge.vessel.synthetic import (SyntheticTree, arc_vessel, make_grid, random_tree, two_level_tree,
                                       y_bifurcation)

CENTER = (10.0, -20.0, 30.0)
GRIDS = {
    "iso 0.5 mm": dict(extent_mm=(80, 45, 85), spacing=(0.5, 0.5, 0.5)),
    "0.4x0.4x2 mm": dict(extent_mm=(80, 45, 85), spacing=(0.4, 0.4, 2.0)),
    "oblique 0.4x0.4x2 mm": dict(extent_mm=(95, 95, 95), spacing=(0.4, 0.4, 2.0), direction_lps=OBLIQUE),
}


def _tree(grid: str) -> SyntheticTree:
    return two_level_tree(make_grid(center_lps=CENTER, **GRIDS[grid]), center_lps=CENTER)


@pytest.fixture(scope="module")
def trees() -> dict[str, tuple[SyntheticTree, CenterlineGraph]]:
    result = {}
    for name in GRIDS:
        tree = _tree(name)
        result[name] = (tree, centerline_graph(tree.mask))
    return result


def _truth(tree: SyntheticTree) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([b.points_lps for b in tree.branches]),
            np.concatenate([b.radii_mm for b in tree.branches]))


def _away_from_nodes(tree: SyntheticTree, points: np.ndarray) -> np.ndarray:
    """Points where the radius is a tube's: farther than 1.5 parent radii from each true
    bifurcation (where lumens merge) and 1.5 radii from each end (the rounded cap)."""
    keep = np.ones(len(points), bool)
    for branch in tree.branches:
        ends = [branch.points_lps[-1]] + ([branch.points_lps[0]] if branch.parent is None else [])
        radii = [branch.radii_mm[-1]] + ([branch.radii_mm[0]] if branch.parent is None else [])
        for end, radius in zip(ends, radii):
            keep &= np.linalg.norm(points - end, axis=1) > 1.5 * radius
    return keep


@pytest.mark.parametrize("grid", list(GRIDS))
def test_branch_count_topology_and_parents_are_exact(trees, grid):
    tree, graph = trees[grid]
    assert len(graph.branches) == len(tree.branches) == 7
    assert len(graph.bifurcations) == 3 and len(graph.endpoints) == 5
    assert graph.component_count == 1
    # the root is the widest end: the trunk's free end
    root = graph.branches[0]
    assert root.parent is None
    assert np.linalg.norm(root.points_lps[0] - tree.branches[0].points_lps[0]) < 3.0
    # trunk -> two daughters -> two granddaughters each, like the truth
    assert sorted(len(graph.children(b.id)) for b in graph.branches) == [0, 0, 0, 0, 2, 2, 2]
    for branch in graph.branches[1:]:
        parent = graph.branches[branch.parent]
        assert np.allclose(parent.points_lps[-1], branch.points_lps[0])  # they meet at a node
        assert graph.nodes[branch.start_node].kind == BIFURCATION
    kinds = {n.kind for n in graph.nodes}
    assert kinds == {ENDPOINT, BIFURCATION}


@pytest.mark.parametrize("grid", list(GRIDS))
def test_centerline_and_radius_match_the_truth_within_half_a_voxel(trees, grid):
    tree, graph = trees[grid]
    truth, truth_radii = _truth(tree)
    ours, radii = graph.points_lps(), graph.radii_mm()
    distance, nearest = cKDTree(truth).query(ours)
    inner = _away_from_nodes(tree, ours)
    assert inner.sum() > 0.5 * len(ours)
    finest = min(tree.mask.spacing)  # the strictest reading of "half a voxel"
    voxel = float(np.prod(tree.mask.spacing)) ** (1 / 3)  # a voxel's size, for positions
    assert distance[inner].max() < 0.5 * voxel
    assert distance[inner].mean() < 0.2 * voxel
    error = radii[inner] - truth_radii[nearest[inner]]
    assert np.abs(error).max() < 0.5 * finest
    assert abs(error.mean()) < 0.15 * finest
    # and every true centreline point has one of ours close by (nothing missing)
    assert np.percentile(cKDTree(ours).query(truth)[0], 95) < 1.0


def test_anisotropic_and_oblique_grids_give_the_same_graph_in_mm(trees):
    _, reference = trees["iso 0.5 mm"]
    ref_mid = np.array([b.points_lps[len(b.points_lps) // 2] for b in reference.branches])
    for name in ("0.4x0.4x2 mm", "oblique 0.4x0.4x2 mm"):
        _, graph = trees[name]
        assert len(graph.branches) == len(reference.branches)
        assert abs(graph.total_length_mm - reference.total_length_mm) < 0.03 * reference.total_length_mm
        mid = np.array([b.points_lps[len(b.points_lps) // 2] for b in graph.branches])
        match = cKDTree(ref_mid).query(mid)[1]
        assert sorted(match.tolist()) == list(range(len(reference.branches)))
        for branch, other in zip(graph.branches, match):
            twin = reference.branches[other]
            assert abs(branch.length_mm - twin.length_mm) < 2.5
            assert abs(np.median(branch.radii_mm) - np.median(twin.radii_mm)) < 0.2
            assert (branch.parent is None) == (twin.parent is None)


def test_skeleton_keeps_topology_of_a_tree():
    tree = y_bifurcation(make_grid((60, 50, 70), (0.5, 0.5, 0.5)))
    skeleton = skeletonize(tree.mask)
    volume = np.zeros(tree.mask.array.shape, bool)
    volume[tuple(skeleton.voxels_kji.T)] = True
    assert ndimage.label(volume, np.ones((3, 3, 3)))[1] == 1
    assert volume[tree.mask.array == 0].sum() == 0  # inside the mask
    assert len(skeleton.voxels_kji) < 0.02 * tree.mask.array.sum()  # thin


def test_simple_point_test_matches_a_brute_force_count():
    """The bitwise test against the definition: one 26-component of object around the voxel,
    one 6-component of background in its 18-neighbourhood touching it, and not a curve end."""
    rng = np.random.default_rng(3)
    cubes = rng.random((3000, 3, 3, 3)) < rng.uniform(0.2, 0.8, (3000, 1, 1, 1))
    cubes[:, 1, 1, 1] = True
    words = (cubes.reshape(len(cubes), 27).astype(np.uint32) << np.arange(27, dtype=np.uint32)).sum(1)
    expected = []
    offsets = np.abs(np.indices((3, 3, 3)) - 1).sum(axis=0)
    for cube in cubes:
        around = cube.copy()
        around[1, 1, 1] = False
        objects = ndimage.label(around, np.ones((3, 3, 3)))[1]
        background = ~cube & (offsets <= 2)
        labels, _ = ndimage.label(background)  # 6-connectivity
        touching = {labels[p] for p in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2))} - {0}
        expected.append(objects == 1 and len(touching) == 1 and around.sum() > 1)
    assert np.array_equal(deletable(words.astype(np.uint32)), np.array(expected))
    assert 0.05 < np.mean(expected) < 0.95  # both answers were exercised


def test_distance_transform_is_exact_in_mm_on_an_anisotropic_grid():
    mask = np.zeros((9, 11, 13), bool)
    mask[2:7, 3:8, 1:12] = True
    distance = BoundaryDistance(mask, spacing_kji=(2.0, 0.5, 0.3))
    exact = ndimage.distance_transform_edt(mask, sampling=(2.0, 0.5, 0.3))
    inside = np.argwhere(mask)
    assert np.allclose(distance(inside), exact[mask])


def test_metrics_of_a_circular_arc():
    bend, angle = 15.0, 180.0
    for spacing in ((0.5, 0.5, 0.5), (0.4, 0.4, 2.0)):
        grid = make_grid((42, 26, 12), spacing, center_lps=(0, -7.5, 0))
        tree = arc_vessel(grid, bend_radius_mm=bend, angle_deg=angle, radius_mm=2.5)
        graph = centerline_graph(tree.mask)
        (metrics,) = branch_metrics(graph)
        length = bend * np.radians(angle)
        assert metrics.parent is None
        assert abs(metrics.length_mm - length) < 0.04 * length
        assert abs(metrics.tortuosity - np.pi / 2) < 0.05
        assert abs(metrics.mean_curvature_per_mm - 1 / bend) < 0.1 / bend
        assert abs(metrics.mean_radius_mm - 2.5) < 0.2
        assert metrics.min_radius_mm <= metrics.mean_radius_mm <= metrics.max_radius_mm


def test_metrics_of_a_tree_name_each_parent(trees):
    _, graph = trees["iso 0.5 mm"]
    metrics = branch_metrics(graph)
    assert [m.parent for m in metrics] == [b.parent for b in graph.branches]
    assert all(m.tortuosity >= 1.0 for m in metrics)
    assert metrics[0].mean_radius_mm > metrics[-1].mean_radius_mm  # trunk wider than a twig


# --- robustness ---------------------------------------------------------------------------


def _graph(array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> CenterlineGraph:
    started = time.perf_counter()
    graph = centerline_graph(Image(array.astype(np.uint8), spacing))
    assert time.perf_counter() - started < 10
    return graph


def test_empty_mask_is_a_clear_input_error():
    with pytest.raises(InputError, match="empty"):
        centerline_graph(Image(np.zeros((5, 6, 7), np.uint8)))


def test_single_voxel_is_a_dropped_piece_not_a_branch():
    """A lone voxel has no length or direction: reported as a one-point "branch" it made a
    zero-length table row and a branch count above the curves made (a stray island of a
    TotalSegmentator mask); it is counted as a dropped piece instead."""
    array = np.zeros((5, 6, 7), bool)
    array[2, 3, 4] = True
    graph = _graph(array, (0.7, 1.3, 2.9))
    assert graph.branches == () and graph.nodes == () and graph.dropped_pieces == 1
    array[2, 3, 0:7] = True  # grown into a short vessel it is one again
    graph = _graph(array, (0.7, 1.3, 2.9))
    assert len(graph.branches) == 1 and graph.dropped_pieces == 0
    assert [node.kind for node in graph.nodes] == [ENDPOINT, ENDPOINT]


def test_one_voxel_thin_vessels_in_two_components():
    array = np.zeros((20, 20, 20), bool)
    array[5, 5, 2:18] = True
    array[2:18, 12, 12] = True
    graph = _graph(array)
    assert graph.component_count == 2 and len(graph.branches) == 2
    # 16 voxels in a row: 15 mm between the end voxels' centres, 16 mm end face to end face
    assert all(14 <= b.length_mm <= 16 for b in graph.branches)
    # nearest background voxel: one voxel away (a little more at the very ends)
    assert np.all((graph.radii_mm() >= 1.0) & (graph.radii_mm() < 1.2))
    assert {b.component for b in graph.branches} == {0, 1}


def test_ring_becomes_a_loop_branch():
    k, j, i = np.mgrid[:16, :40, :40]
    ring = np.sqrt((np.hypot(j - 20, i - 20) - 12) ** 2 + (k - 8) ** 2) <= 3.5
    graph = _graph(ring)
    (branch,) = graph.branches
    assert branch.is_loop and graph.nodes[0].kind == LOOP
    assert abs(branch.length_mm - 2 * np.pi * 12) < 2.0
    assert np.isnan(branch_metrics(graph)[0].tortuosity)


def test_full_volume_single_slice_and_noise_give_results():
    full = _graph(np.ones((12, 12, 12), bool))
    assert len(full.branches) >= 1
    flat = np.zeros((1, 40, 40), bool)
    flat[0, 20, 5:35] = True
    flat[0, 8:32, 20] = True
    cross = _graph(flat, (0.5, 0.5, 3.0))
    assert len(cross.branches) == 4 and len(cross.bifurcations) == 1
    noise = np.random.default_rng(0).random((40, 40, 40)) > 0.7
    graph = _graph(noise)
    assert graph.component_count >= 1 and len(graph.branches) > 10
    assert all(np.isfinite(b.points_lps).all() and np.isfinite(b.radii_mm).all() for b in graph.branches)


def test_progress_is_reported_and_cancel_stops_the_work():
    tree = y_bifurcation(make_grid((60, 50, 70), (0.5, 0.5, 0.5)))
    seen: list[float] = []
    centerline_graph(tree.mask, progress=lambda fraction, message: seen.append(fraction))
    assert seen[-1] == 1.0 and len(seen) >= 3 and seen == sorted(seen)

    def cancel(fraction: float, message: str) -> None:
        if fraction > 0.1:
            raise Cancelled()
    with pytest.raises(Cancelled):
        centerline_graph(tree.mask, progress=cancel)


def test_random_tree_branch_count_is_exact():
    tree = random_tree(make_grid((128, 128, 128), (1.0, 1.0, 1.0)), generations=4, seed=1,
                       root_radius_mm=5, root_length_mm=40)
    graph = centerline_graph(tree.mask)
    assert len(tree.branches) == 15
    assert len(graph.branches) == len(tree.branches)


def test_thick_masks_take_a_distance_transform_that_agrees_with_the_tree():
    """Deep voxels are slow for the k-d tree (a 1.8-million-voxel blob: 290 s): thick masks
    take an exact distance transform of their box, which must give the same distances,
    with the background beyond the image's faces still not counting."""
    k, j, i = np.indices((60, 72, 72))
    ball = (k - 20) ** 2 + (j - 36) ** 2 + (i - 36) ** 2 <= 33 ** 2  # cut by the k = 0 face
    distance = BoundaryDistance(ball, spacing_kji=(0.9, 0.7, 0.7))
    fast = distance.box_distances()
    voxels = np.argwhere(distance.box) - 1 + distance.box_corner
    some = np.random.default_rng(0).choice(len(voxels), 3000, replace=False)
    assert np.allclose(fast[some], distance(voxels[some]), rtol=0, atol=1e-9)
    assert fast.max() > 20 * 0.7  # deep voxels were there to be measured
    # on the cut face, the centre is as far from the wall as the disc there is wide
    # (sqrt(33^2 - 20^2) = 26.2 voxels of 0.7 mm), not one slice from the face
    face = voxels[:, 0] == 0
    assert abs(fast[face].max() - 26.2 * 0.7) < 0.7
