"""Centerlines between a source and targets (as VMTK's Extract Centerline): synthetic trees on
isotropic and oblique anisotropic grids, refusals that name the point, and real data (VMTK's
CE-MRA with its own centerline's ends as endpoints; the TotalSegmentator aorta from root to cut).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import OBLIQUE, SAMPLE_DATA
from segforge.errors import InputError
from segforge.image_io import read_image
from segforge.vessel.endpoints import EndpointParameters, centerlines_between
from segforge.vessel.graph import BIFURCATION, ENDPOINT, CenterlineGraph, centerline_graph
from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline
from segforge.vessel.radius import lps_to_kji
from segforge.vessel.synthetic import BranchSpec, build_tree, make_grid, two_level_tree, y_bifurcation
from test_vessel_vmtk_accuracy import CENTERLINE, MASK, _reference, densify

CENTER = (5.0, -3.0, 20.0)
GRIDS = {
    "iso 0.6 mm": dict(spacing=(0.6, 0.6, 0.6)),
    "oblique 0.8x0.8x1.2 mm": dict(spacing=(0.8, 0.8, 1.2), direction_lps=OBLIQUE),
}


def _y(grid_name: str):
    tree = y_bifurcation(make_grid((60, 60, 80), center_lps=CENTER, **GRIDS[grid_name]), center_lps=CENTER)
    return tree, centerline_graph(tree.mask)


def _ends(tree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trunk's free end and the two daughters' ends (true centreline, LPS mm)."""
    return tree.branches[0].points_lps[0], tree.branches[1].points_lps[-1], tree.branches[2].points_lps[-1]


def _on(graph: CenterlineGraph, whole: CenterlineGraph) -> float:
    """How far the endpoint graph's points lie from the whole graph's (0: taken from it)."""
    return float(cKDTree(whole.points_lps()).query(graph.points_lps())[0].max())


@pytest.mark.parametrize("grid", list(GRIDS))
def test_a_source_and_two_targets_give_three_branches_split_where_the_paths_part(grid):
    tree, whole = _y(grid)
    trunk_end, left, right = _ends(tree)
    graph = centerlines_between(whole, tree.mask, EndpointParameters(tuple(trunk_end), (tuple(left), tuple(right))))
    assert len(graph.branches) == 3 and len(graph.bifurcations) == 1
    trunk, first, second = graph.branches
    assert trunk.parent is None and first.parent == second.parent == 0
    assert np.linalg.norm(trunk.points_lps[0] - trunk_end) < 2.0
    assert {n.kind for n in graph.nodes} == {ENDPOINT, BIFURCATION}
    assert graph.nodes[trunk.end_node].kind == BIFURCATION
    # each target ends one branch, near where it was placed
    ends = np.array([first.points_lps[-1], second.points_lps[-1]])
    assert sorted(np.argmin(np.linalg.norm(ends[:, None] - np.array([left, right])[None], axis=2), axis=1)) == [0, 1]
    assert np.linalg.norm(ends[:, None] - np.array([left, right])[None], axis=2).min(axis=1).max() < 2.0
    # the paths are the segment's centerlines: on the whole graph, with its radii
    assert _on(graph, whole) < 1e-9
    assert abs(graph.total_length_mm - whole.total_length_mm) < 0.05 * whole.total_length_mm
    assert np.all(graph.radii_mm() > 0)


def test_one_target_gives_one_centerline_through_the_bifurcation():
    tree, whole = _y("oblique 0.8x0.8x1.2 mm")
    _, left, right = _ends(tree)
    graph = centerlines_between(whole, tree.mask, EndpointParameters(tuple(left), (tuple(right),)))
    (line,) = graph.branches
    daughters = tree.branches[1].length_mm + tree.branches[2].length_mm
    assert abs(line.length_mm - daughters) < 0.1 * daughters
    bifurcation = tree.branches[1].points_lps[0]
    assert cKDTree(line.points_lps).query(bifurcation)[0] < 4.0  # within the trunk's radius
    assert [n.kind for n in graph.nodes] == [ENDPOINT, ENDPOINT]


def test_a_point_just_outside_the_wall_is_snapped_and_the_order_of_targets_does_not_matter():
    tree, whole = _y("iso 0.6 mm")
    trunk_end, left, right = _ends(tree)
    outward = np.cross(tree.branches[0].points_lps[-1] - trunk_end, [1.0, 0.0, 0.0])
    outside = trunk_end + (4.0 + 2.0) * outward / np.linalg.norm(outward)  # 2 mm beyond a 4 mm lumen
    one = centerlines_between(whole, tree.mask, EndpointParameters(tuple(outside), (tuple(left), tuple(right))))
    two = centerlines_between(whole, tree.mask, EndpointParameters(tuple(outside), (tuple(right), tuple(left))))
    assert len(one.branches) == len(two.branches) == 3
    assert abs(one.total_length_mm - two.total_length_mm) < 1e-6


def test_a_source_alone_gives_the_tree_rooted_there():
    grid = make_grid((95, 95, 95), (0.8, 0.8, 1.1), OBLIQUE, center_lps=CENTER)
    tree = two_level_tree(grid, center_lps=CENTER)
    whole = centerline_graph(tree.mask)
    assert len(whole.branches) == 7
    leaf = tree.branches[-1].points_lps[-1]
    graph = centerlines_between(whole, tree.mask, EndpointParameters(tuple(leaf)))
    assert len(graph.branches) == 7 and len(graph.bifurcations) == 3
    root = graph.branches[0]
    assert root.parent is None and np.linalg.norm(root.points_lps[0] - leaf) < 2.5
    assert sum(b.parent is None for b in graph.branches) == 1
    # every other free end of the tree ends a branch of the new one
    ours = np.array([n.position_lps for n in graph.endpoints])
    theirs = np.array([n.position_lps for n in whole.endpoints])
    assert cKDTree(ours).query(theirs)[0].max() < 2.5
    assert _on(graph, whole) < 1e-9

    # from the middle of the trunk: the paths run both ways, two branches leave the source
    middle = tree.branches[0].points_lps[len(tree.branches[0].points_lps) // 2]
    graph = centerlines_between(whole, tree.mask, EndpointParameters(tuple(middle)))
    assert len(graph.branches) == 8
    assert graph.nodes[0].kind == ENDPOINT and len(graph.nodes[0].branches) == 2


def test_on_a_ring_the_path_takes_one_side():
    k, j, i = np.mgrid[:12, :50, :50]
    ring = np.hypot(np.hypot(j - 25, i - 25) - 15, k - 6) <= 3
    mask = make_grid((50, 50, 12)).with_array(ring.astype(np.uint8))
    whole = centerline_graph(mask)
    assert len(whole.branches) == 1 and whole.branches[0].is_loop
    origin = np.asarray(mask.origin_lps)
    source, target = origin + (40.0, 25.0, 6.0), origin + (10.0, 25.0, 6.0)
    (line,) = centerlines_between(whole, mask, EndpointParameters(tuple(source), (tuple(target),))).branches
    assert abs(line.length_mm - np.pi * 15) < 0.08 * np.pi * 15


def test_no_endpoints_leave_the_graph_as_it_is():
    tree, whole = _y("iso 0.6 mm")
    assert centerlines_between(whole, tree.mask, EndpointParameters()) is whole


# --- refusals name the point -----------------------------------------------------------------


def _two_pieces():
    grid = make_grid((44, 44, 80), (0.8, 0.8, 1.2), OBLIQUE, center_lps=CENTER)
    axis = OBLIQUE @ np.array([0.0, 1.0, 0.0])
    far = np.asarray(CENTER) + 16 * (OBLIQUE @ np.array([1.0, 0.0, 0.0]))
    tree = build_tree([
        BranchSpec(tuple(np.asarray(CENTER) - 15 * axis), tuple(CENTER), tuple(np.asarray(CENTER) + 15 * axis), 3, 3),
        BranchSpec(tuple(far - 15 * axis), tuple(far), tuple(far + 15 * axis), 3, 3)], grid)
    return tree, centerline_graph(tree.mask), axis, far


def test_a_target_in_another_piece_of_the_segment_is_refused_by_name():
    tree, whole, axis, far = _two_pieces()
    assert whole.component_count == 2
    source = np.asarray(CENTER) - 12 * axis
    with pytest.raises(InputError, match=r"Target 2 at LPS \(.*\) mm cannot be reached") as error:
        centerlines_between(whole, tree.mask, EndpointParameters(
            tuple(source), (tuple(np.asarray(CENTER) + 12 * axis), tuple(far))))
    assert ", ".join(f"{c:.1f}" for c in far) in str(error.value)


@pytest.mark.parametrize("case, words", [
    ("far from the segment", r"Target 1 point at LPS .* is not on the segment"),
    ("outside the image", r"Target 1 point at LPS .* lies outside the image"),
    ("at the source", r"Target 1 at LPS .* is where the source is"),
    ("twice", r"Target 2 at LPS .* is where target 1 is"),
])
def test_points_that_cannot_end_a_centerline_are_refused_by_name(case, words):
    tree, whole, axis, far = _two_pieces()
    source = np.asarray(CENTER) - 12 * axis
    end = np.asarray(CENTER) + 12 * axis
    targets = {"far from the segment": [(far + np.asarray(CENTER)) / 2 + 5 * axis],
               "outside the image": [np.asarray(CENTER) + 500.0],
               "at the source": [source + 0.1],
               "twice": [end, end + 0.05]}[case]
    with pytest.raises(InputError, match=words):
        centerlines_between(whole, tree.mask, EndpointParameters(tuple(source), tuple(map(tuple, targets))))


def test_endpoint_parameters_are_checked():
    with pytest.raises(InputError, match="without a source"):
        EndpointParameters(None, ((1.0, 2.0, 3.0),))
    for bad in ((1.0, 2.0), (1.0, float("nan"), 3.0), "abc"):
        with pytest.raises(InputError, match="source point is invalid"):
            EndpointParameters(bad)
    with pytest.raises(InputError, match="target 2 point is invalid"):
        EndpointParameters((0, 0, 0), ((1, 2, 3), (1, 2)))
    with pytest.raises(InputError, match="snapping"):
        EndpointParameters((0, 0, 0), snap_mm=-1.0)
    made = EndpointParameters([1, 2, 3], [[4, 5, 6]])  # JSON lists become tuples
    assert made.source_lps == (1.0, 2.0, 3.0) and made.targets_lps == ((4.0, 5.0, 6.0),)


# --- real data --------------------------------------------------------------------------------


def test_vmtk_cemra_between_vmtks_own_endpoints():
    """Source and targets at the ends of VMTK's reference centerlines (its seeds): three
    branches, as VMTK gives, on its centerline and with nothing past its ends."""
    mask = read_image(MASK)
    reference, reference_radii = _reference(CENTERLINE)
    source, targets = reference[-1], (reference[0], reference[211])  # aorta end; both iliac ends
    parameters = VesselPipelineParameters(endpoints=EndpointParameters(tuple(source), tuple(map(tuple, targets))),
                                          outputs=VesselOutputs(stenoses=False, surface=False))
    result = run_vessel_pipeline(None, parameters, segment=mask)
    graph = result.graph
    assert len(graph.branches) == 3 and len(graph.bifurcations) == 1
    assert len(result.metrics) == 3
    ours, radii = densify([(b.points_lps, b.radii_mm) for b in graph.branches])
    distance, nearest = cKDTree(ours).query(reference)
    assert distance.mean() <= 0.35
    back = cKDTree(reference).query(ours)[0]
    assert back.max() < 2.5  # nothing beyond VMTK's ends
    assert np.median(np.abs(radii[nearest] - reference_radii)) <= 0.25
    ends = np.array([b.points_lps[-1] for b in graph.branches[1:]])
    assert np.linalg.norm(ends[:, None] - np.array(targets)[None], axis=2).min(axis=1).max() < 2.5


def test_totalsegmentator_aorta_from_the_root_to_the_cut():
    mask = read_image(SAMPLE_DATA / "ts_thoracic_cta_aorta" / "pred_aorta.nii.gz")
    annulus = (13.8, -182.8, 661.1)  # aorta_report_reference.json, landmark 1 (RAS -> LPS)
    lowest = np.argwhere(np.asarray(mask.array)[0] != 0).mean(axis=0)
    ijk_to_lps = mask.ijk_to_lps()
    cut = ijk_to_lps[:3, :3] @ np.array([lowest[1], lowest[0], 0.0]) + ijk_to_lps[:3, 3]
    parameters = VesselPipelineParameters(endpoints=EndpointParameters(annulus, (tuple(cut),)),
                                          outputs=VesselOutputs(stenoses=False, surface=False))
    for close in (4.0, 0.0):  # with or without the clean-up, the path goes round the holes
        parameters = VesselPipelineParameters(endpoints=parameters.endpoints, outputs=parameters.outputs,
                                              topology=type(parameters.topology)(close))
        (aorta,) = run_vessel_pipeline(None, parameters, segment=mask).graph.branches
        assert np.linalg.norm(aorta.points_lps[0] - annulus) < 15.0
        assert lps_to_kji(mask, aorta.points_lps[-1:])[0, 0] < 0.5
        assert aorta.length_mm > 300


def test_targets_under_a_voxel_apart_are_refused_on_either_route():
    """The same rule on the minimal paths (small segments) and the whole tree (large ones): two
    targets 0.4 mm apart on a 0.5 mm grid were refused on the tree but gave a 0.6 mm branch on the
    minimal paths (only the very same climbed voxel counted as one point there)."""
    from segforge.vessel.minimal_path import minimal_path_centerlines

    tree = build_tree([BranchSpec((0, 0, -15), (0, 0, 0), (0, 0, 15), 2.0, 2.0)],
                      make_grid((30, 30, 70), (0.5, 0.5, 0.5), OBLIQUE, center_lps=CENTER), center_lps=CENTER)
    source, end = np.asarray(CENTER) - (0, 0, 12.0), np.asarray(CENTER) + (0, 0, 12.0)  # on the axis
    parameters = EndpointParameters(tuple(source), (tuple(end), tuple(end + (0, 0, 0.4))))
    for route in (lambda: minimal_path_centerlines(tree.mask, parameters),
                  lambda: centerlines_between(centerline_graph(tree.mask), tree.mask, parameters)):
        with pytest.raises(InputError, match=r"Target 2 at LPS .* is where target 1 is"):
            route()
    # a voxel and more apart along an axis: two targets
    apart = EndpointParameters(tuple(source), (tuple(end), tuple(end - (0, 0, 1.5))))
    assert len(minimal_path_centerlines(tree.mask, apart).branches) >= 2
