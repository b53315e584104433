"""Centerlines between a source and targets as minimal paths through the segment's voxels
(:mod:`segforge.vessel.minimal_path`): against the true axis and radius of synthetic vessels on
isotropic, oblique and thick-slice grids, no worse than the whole-tree path on the same
endpoints; ends where the points were placed; refusals that name the point; the pipeline
takes this path when targets are given."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import OBLIQUE
from segforge.errors import InputError
from segforge.vessel.endpoints import EndpointParameters, centerlines_between
from segforge.vessel.graph import BIFURCATION, centerline_graph
from segforge.vessel.lumen_edge import lumen_field
from segforge.vessel.minimal_path import minimal_path_centerlines
from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline
from segforge.vessel.radius import lps_to_kji
from segforge.vessel.subvoxel import subvoxel_radii
from segforge.vessel.synthetic import arc_vessel, make_grid, y_bifurcation
from test_vessel_endpoints import _two_pieces
from test_vessel_vmtk_accuracy import densify

CENTER = (5.0, -3.0, 20.0)
GRIDS = {
    "iso 0.6": dict(spacing=(0.6, 0.6, 0.6)),
    "oblique 0.8x0.8x1.2": dict(spacing=(0.8, 0.8, 1.2), direction_lps=OBLIQUE),
    "oblique 0.5x0.5x1.5": dict(spacing=(0.5, 0.5, 1.5), direction_lps=OBLIQUE),
}


def _shape(kind: str, grid: str):
    if kind == "Y":
        return y_bifurcation(make_grid((60, 60, 80), center_lps=CENTER, **GRIDS[grid]), center_lps=CENTER)
    return arc_vessel(make_grid((60, 60, 40), center_lps=CENTER, **GRIDS[grid]), center_lps=CENTER)


def _endpoints(tree) -> EndpointParameters:
    """The first branch's start as the source, every other branch's end (or the first's) as targets."""
    ends = [b.points_lps[-1] for b in tree.branches[1:]] or [tree.branches[0].points_lps[-1]]
    return EndpointParameters(tuple(tree.branches[0].points_lps[0]), tuple(map(tuple, ends)))


def _errors(graph, tree) -> tuple[float, float]:
    """Mean distance to the true axis and median absolute radius error (sub-voxel radii), mm."""
    truth, true_radii = densify([(b.points_lps, b.radii_mm) for b in tree.branches])
    measured = subvoxel_radii(graph, lumen_field(tree.mask))
    ours, radii = densify([(b.points_lps, b.radii_mm) for b in measured.branches])
    distance, nearest = cKDTree(truth).query(ours)
    return float(distance.mean()), float(np.median(np.abs(radii - true_radii[nearest])))


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("kind", ["Y", "arc"])
def test_on_the_true_axis_with_the_true_radius_and_no_worse_than_the_whole_tree(kind, grid):
    tree = _shape(kind, grid)
    endpoints = _endpoints(tree)
    graph = minimal_path_centerlines(tree.mask, endpoints)
    assert len(graph.branches) == (3 if kind == "Y" else 1)
    assert len(graph.bifurcations) == (1 if kind == "Y" else 0)
    axis, radius = _errors(graph, tree)
    whole_axis, whole_radius = _errors(centerlines_between(centerline_graph(tree.mask), tree.mask, endpoints), tree)
    # measured 2026-12-07: axis 0.034-0.079 mm, radius 0.042-0.145 mm; the whole tree 0.030-0.097 / 0.050-0.188
    assert axis <= 0.10 and radius <= 0.16
    assert axis <= whole_axis + 0.03 and radius <= whole_radius + 0.01
    assert np.all(graph.radii_mm() > 0)
    points = graph.points_lps()
    kji = np.round(lps_to_kji(tree.mask, points)).astype(int)
    assert np.asarray(tree.mask.array)[tuple(kji.T)].mean() > 0.99  # inside the segment


def test_the_y_splits_where_its_branches_axes_meet():
    tree = _shape("Y", "oblique 0.8x0.8x1.2")
    graph = minimal_path_centerlines(tree.mask, _endpoints(tree))
    (junction,) = [n for n in graph.nodes if n.kind == BIFURCATION]
    true_junction = tree.branches[1].points_lps[0]
    assert np.linalg.norm(junction.position_lps - true_junction) < 2.0  # trunk radius 4 mm
    trunk, first, second = graph.branches
    assert trunk.parent is None and first.parent == second.parent == 0
    assert np.allclose(trunk.points_lps[-1], junction.position_lps)
    assert np.allclose(first.points_lps[0], junction.position_lps)


def test_each_line_ends_where_its_point_was_placed():
    """A target beside the wall mid-vessel ends the line level with it (not at the vessel's end);
    targets at a vessel's rounded ends end it there."""
    tree = _shape("arc", "oblique 0.8x0.8x1.2")
    axis = tree.branches[0].points_lps
    middle = len(axis) // 2
    tangent = axis[middle + 1] - axis[middle - 1]
    beside = axis[middle] + 1.2 * np.cross(tangent, [0.0, 0.0, 1.0]) / np.linalg.norm(np.cross(tangent, [0, 0, 1]))
    (line,) = minimal_path_centerlines(tree.mask, EndpointParameters(tuple(axis[0]), (tuple(beside),))).branches
    assert np.linalg.norm(line.points_lps[-1] - axis[middle]) < 1.0
    assert abs(line.length_mm - tree.branches[0].length_mm / 2) < 1.5
    (whole,) = minimal_path_centerlines(tree.mask, EndpointParameters(tuple(axis[0]), (tuple(axis[-1]),))).branches
    assert np.linalg.norm(whole.points_lps[0] - axis[0]) < 1.2  # within a voxel (0.8 x 0.8 x 1.2 mm)
    assert np.linalg.norm(whole.points_lps[-1] - axis[-1]) < 1.2


def test_a_point_placed_beyond_the_vessels_end_ends_the_line_on_the_lumen():
    tree = _shape("arc", "iso 0.6")
    axis = tree.branches[0].points_lps
    out = axis[-1] + 1.5 * (axis[-1] - axis[-5]) / np.linalg.norm(axis[-1] - axis[-5])  # in the cap, 1.5 mm on
    (line,) = minimal_path_centerlines(tree.mask, EndpointParameters(tuple(axis[0]), (tuple(out),))).branches
    end = line.points_lps[-1]
    assert np.linalg.norm(end - axis[-1]) <= 2.0 + 0.3  # no farther than the cap (radius 2 mm)
    assert lumen_field(tree.mask).sample(end[None])[0] >= 0.5


def test_refusals_name_the_point():
    tree, _, axis, far = _two_pieces()
    source = np.asarray(CENTER) - 12 * axis
    end = np.asarray(CENTER) + 12 * axis
    for targets, words in (([end, far], r"Target 2 at LPS \(.*\) mm cannot be reached"),
                           ([source + 0.1], r"Target 1 at LPS .* is where the source is"),
                           ([end, end + 0.05], r"Target 2 at LPS .* is where target 1 is"),
                           ([np.asarray(CENTER) + 500.0], r"Target 1 point at LPS .* lies outside the image"),
                           ([(far + np.asarray(CENTER)) / 2 + 5 * axis], r"Target 1 point at LPS .* is not on the "
                                                                         r"segment")):
        with pytest.raises(InputError, match=words):
            minimal_path_centerlines(tree.mask, EndpointParameters(tuple(source), tuple(map(tuple, targets))))


def test_the_pipeline_takes_minimal_paths_when_targets_are_given():
    tree = _shape("Y", "iso 0.6")
    endpoints = _endpoints(tree)
    parameters = VesselPipelineParameters(endpoints=endpoints, outputs=VesselOutputs(stenoses=False, surface=False))
    graph = run_vessel_pipeline(None, parameters, segment=tree.mask).graph
    direct = minimal_path_centerlines(tree.mask, endpoints)
    assert [len(b.points_lps) for b in graph.branches] == [len(b.points_lps) for b in direct.branches]
    assert np.allclose(graph.points_lps(), direct.points_lps())


@pytest.mark.parametrize("kind", ["Y", "arc"])
def test_thick_vessels_take_paths_on_blocks_and_lose_little(kind, monkeypatch):
    """Vessels 6-8 mm in radius on a 0.6 mm grid: the paths are found on blocks of 2 voxels
    (a few times fewer voxels), then centred on the full grid. Measured 2026-12-07: axis 0.165 /
    0.024 mm from the truth (the voxels' paths: 0.071 / 0.024), radius 0.050 / 0.023 mm."""
    grid = make_grid((110, 110, 130) if kind == "Y" else (110, 110, 50), spacing=(0.6, 0.6, 0.6), center_lps=CENTER)
    tree = (y_bifurcation(grid, center_lps=CENTER, trunk_radius_mm=8.0, daughter_radius_mm=6.0) if kind == "Y"
            else arc_vessel(grid, center_lps=CENTER, radius_mm=6.0, bend_radius_mm=30.0))
    from segforge.vessel import minimal_path

    blocks = minimal_path._coarse_grid(tree.mask, np.asarray(tree.mask.array), np.asarray(tree.mask.spacing[::-1]))
    assert blocks is not None and blocks.factors.min() >= 2
    coarse = minimal_path_centerlines(tree.mask, _endpoints(tree))
    monkeypatch.setattr(minimal_path, "_coarse_grid", lambda *args: None)
    fine = minimal_path_centerlines(tree.mask, _endpoints(tree))
    assert len(coarse.branches) == len(fine.branches) == (3 if kind == "Y" else 1)
    axis, radius = _errors(coarse, tree)
    fine_axis, fine_radius = _errors(fine, tree)
    assert axis <= 0.2 and radius <= 0.06
    assert axis <= fine_axis + 0.1 and radius <= fine_radius + 0.01


def test_a_target_in_a_tapering_vessel_ends_the_line_level_with_it():
    """The climb from the snapped voxel to the lumen's middle stays within the lumen's radius:
    on a vessel narrowing from 5 to 1.5 mm its ridge rises towards the wide end all along."""
    from segforge.vessel.synthetic import BranchSpec, build_tree

    grid = make_grid((40, 40, 90), (0.6, 0.6, 0.6), center_lps=CENTER)
    start, end = np.asarray(CENTER) + (0, 0, -38.0), np.asarray(CENTER) + (0, 0, 38.0)
    tree = build_tree([BranchSpec(tuple(start), tuple((start + end) / 2 + (4.0, 0, 0)), tuple(end), 5.0, 1.5)], grid)
    axis = tree.branches[0].points_lps
    for fraction in (0.5, 0.8):
        level = axis[int(fraction * (len(axis) - 1))]
        beside = level + (0.0, 0.8 * float(tree.branches[0].radii_mm[int(fraction * (len(axis) - 1))]), 0.0)
        (line,) = minimal_path_centerlines(tree.mask, EndpointParameters(tuple(axis[0]), (tuple(beside),))).branches
        assert np.linalg.norm(line.points_lps[-1] - level) < 1.5, fraction


@pytest.mark.parametrize("gap", [1, 3])
def test_a_gap_narrower_than_a_block_is_never_a_shortcut(gap):
    """Two limbs of a U one voxel apart: on blocks of two voxels the half-full blocks bridge the
    gap; the line must go round the bend on the segment's voxels, as it does for a wider gap."""
    from segforge.image import Image
    from segforge.vessel.minimal_path import _coarse_grid
    from segforge.vessel.radius import kji_to_lps

    array = np.zeros((100, 40 + gap, 24), np.uint8)
    array[5:86, 2:18, 4:20] = 1
    array[5:86, 18 + gap:34 + gap, 4:20] = 1
    array[70:86, 2:34 + gap, 4:20] = 1
    mask = Image(array, (1.0, 1.0, 1.0))
    assert list(_coarse_grid(mask, array, np.ones(3)).factors) == [2, 2, 2]  # the case is on blocks
    source, target = kji_to_lps(mask, np.array([[8, 9.5, 11.5], [8, 25.5 + gap, 11.5]]))
    graph = minimal_path_centerlines(mask, EndpointParameters(tuple(source), (tuple(target),)))
    line = np.vstack([b.points_lps for b in graph.branches])
    assert np.linalg.norm(np.diff(line, axis=0), axis=1).sum() > 130  # down, round the bend (k 70-85), up
    assert np.round(lps_to_kji(mask, line)).astype(int)[:, 0].max() >= 70
    samples = np.vstack([a + (b - a) * t for a, b in zip(line[:-1], line[1:]) for t in np.linspace(0, 1, 5)[:, None]])
    assert np.all(array[tuple(np.round(lps_to_kji(mask, samples)).astype(int).T)])


@pytest.mark.parametrize("apart_mm", [3.0, 4.0])
def test_two_points_a_few_mm_apart_keep_the_stretch_between_them(apart_mm):
    """Both ends are judged on the path as found: cutting one back never leaves the other too
    short to be carried (the line was about 1 mm long for points 3-4 mm apart)."""
    from segforge.image import Image

    array = np.zeros((60, 30, 30), np.uint8)
    k, j, i = np.indices(array.shape)
    array[((j - 14.5) ** 2 + (i - 14.5) ** 2 < 25.0) & (k > 3) & (k < 56)] = 1
    mask = Image(array, (1.0, 1.0, 1.0))
    source, target = (18.0, 14.5, 30.0), (11.0, 14.5, 30.0 + apart_mm)  # beside the wall, either side
    graph = minimal_path_centerlines(mask, EndpointParameters(source, (target,)))
    line = np.vstack([b.points_lps for b in graph.branches])
    assert abs(np.ptp(line[:, 2]) - apart_mm) <= 1.0
    assert min(line[:, 2]) <= 30.0 + 1.0 and max(line[:, 2]) >= 30.0 + apart_mm - 1.0


def test_points_a_few_mm_apart_across_thick_slices_are_not_one_point():
    """On 0.7 x 0.7 x 5 mm slices two points 3 mm apart along a vessel lying in the slices are
    distinct voxels: a line, not "where the source is" (the check compared with the 5 mm)."""
    from segforge.image import Image

    array = np.zeros((8, 30, 80), np.uint8)
    k, j, i = np.indices(array.shape)
    array[((j - 14.5) * 0.7) ** 2 + ((k - 3.5) * 5.0) ** 2 < 16.0] = 1  # radius 4 mm along i
    mask = Image(array, (0.7, 0.7, 5.0))
    source, target = (20.0, 14.5 * 0.7, 3.5 * 5.0), (23.0, 14.5 * 0.7, 3.5 * 5.0)
    graph = minimal_path_centerlines(mask, EndpointParameters(source, (target,)))
    line = np.vstack([b.points_lps for b in graph.branches])
    assert np.ptp(line[:, 0]) == pytest.approx(3.0, abs=1.0)


@pytest.mark.parametrize("branch_radius_mm", [0.8, 1.2])
def test_a_target_just_inside_a_side_branch_thinner_than_the_blocks_ends_the_line_there(branch_radius_mm):
    """A 16 mm trunk is followed on blocks of three voxels (1.8 mm); a target 1-2 mm inside a
    side branch 1.6-2.4 mm wide must end its line there, not in the trunk level with it (the
    branch's blocks are under half full, or so few that the climb on blocks ran into the trunk:
    the line ended 8-10 mm from the point)."""
    from segforge.vessel import minimal_path
    from segforge.vessel.synthetic import BranchSpec, build_tree

    centre = np.asarray(CENTER)
    grid = make_grid((80, 80, 110), spacing=(0.6, 0.6, 0.6), center_lps=CENTER)
    trunk = 8.0
    tree = build_tree([BranchSpec((0, 0, 30), (0, 0, 0), (0, 0, -30), trunk, trunk),
                       BranchSpec((trunk - 0.5, 0, 0), (trunk + 6, 0, 0), (trunk + 14, 0, 0),
                                  branch_radius_mm, branch_radius_mm, 0)], grid, center_lps=CENTER)
    array = np.asarray(tree.mask.array)
    assert list(minimal_path._coarse_grid(tree.mask, array, np.full(3, 0.6)).factors) == [3, 3, 3]
    for depth in (1.0, 2.0):
        target = centre + (trunk + depth, 0.0, 0.0)
        graph = minimal_path_centerlines(tree.mask, EndpointParameters(tuple(centre + (0, 0, 28.0)), (tuple(target),)))
        line = np.vstack([b.points_lps for b in graph.branches])
        assert np.linalg.norm(line - target, axis=1).min() < 1.0, depth
        assert (line - centre)[:, 0].max() > trunk, depth  # into the branch
