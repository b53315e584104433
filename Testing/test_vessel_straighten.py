"""Straightened view (curved planar reformat): every voxel holds the volume at the LPS point
:meth:`Straightened.sampled_lps` names (checked on a linear ramp, where trilinear sampling is
exact, along a bent vessel on an oblique anisotropic grid); the lumen lies centred and round
along the view; the frames do not twist; the main path and the parameters.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBLIQUE, rotation
from segforge.errors import InputError
from segforge.vessel.frames import rotation_minimising_frames, smoothed_tangents
from segforge.vessel.graph import centerline_graph
from segforge.vessel.radius import kji_to_lps
from segforge.vessel.straighten import StraightenParameters, main_path, straighten
from segforge.vessel.synthetic import BranchSpec, arc_vessel, build_tree, make_grid, y_bifurcation

CENTER = (4.0, -9.0, 21.0)


@pytest.fixture(scope="module")
def bent():
    """A vessel (radius 2.5 mm) bent through 150 degrees on a 25 mm radius, on an oblique
    0.6 x 0.7 x 1.3 mm grid."""
    grid = make_grid((70, 60, 40), (0.6, 0.7, 1.3), OBLIQUE, center_lps=CENTER)
    tree = arc_vessel(grid, bend_radius_mm=22.0, angle_deg=150.0, radius_mm=2.5, rotation=rotation(10, 20, 5),
                      center_lps=CENTER)
    return tree, centerline_graph(tree.mask)


def test_every_voxel_holds_the_point_it_says_it_sampled(bent):
    """On a linear ramp I(p) = w . p + c trilinear sampling is exact, so each straightened
    voxel must equal the ramp at its :meth:`sampled_lps` point, whatever the path does."""
    tree, graph = bent
    grid = tree.mask
    k, j, i = np.indices(grid.array.shape)
    lps = kji_to_lps(grid, np.column_stack([k.ravel(), j.ravel(), i.ravel()]))
    w = np.array([0.7, -1.3, 2.1])
    ramp = grid.with_array((lps @ w + 500.0).reshape(grid.array.shape).astype(np.float64))
    view = straighten(ramp, graph, StraightenParameters(half_width_mm=6.0, step_mm=0.5))
    values = view.image.array  # [k, j, i]
    rng = np.random.default_rng(0)
    kk = rng.integers(0, values.shape[0], 400)
    jj = rng.integers(0, values.shape[1], 400)
    ii = rng.integers(0, values.shape[2], 400)
    sampled = view.sampled_lps(np.column_stack([ii, jj, kk]))
    kji = np.linalg.solve(grid.ijk_to_lps(), np.c_[sampled, np.ones(len(sampled))].T)[:3].T[:, ::-1]
    inside = np.all((kji >= 0) & (kji <= np.asarray(grid.array.shape) - 1), axis=1)
    assert inside.mean() > 0.9
    assert np.allclose(values[kk, jj, ii][inside], sampled[inside] @ w + 500.0, atol=2e-3)
    assert np.all(values[kk, jj, ii][~inside] <= ramp.array.min() + 1e-3)  # outside: the volume's minimum
    # the centre column is the smoothed centreline, one step apart along it
    middle = (values.shape[1] - 1) // 2
    centre = view.sampled_lps(np.column_stack([np.full(len(view.centers_lps), middle),
                                               np.full(len(view.centers_lps), middle),
                                               np.arange(len(view.centers_lps))]))
    assert np.allclose(centre, view.centers_lps)
    assert np.allclose(np.linalg.norm(np.diff(view.centers_lps, axis=0), axis=1), 0.5, atol=0.02)
    assert np.allclose(view.arc_mm, 0.5 * np.arange(len(view.arc_mm)))


def test_the_lumen_runs_straight_and_round_along_the_view(bent):
    tree, graph = bent
    view = straighten(tree.mask, graph, StraightenParameters(half_width_mm=6.0, step_mm=0.4), label=True)
    label = view.image.array
    assert label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1}
    assert view.image.spacing == (0.4, 0.4, 0.4)
    length = graph.branches[0].length_mm
    assert abs(view.arc_mm[-1] - length) < 0.04 * length  # smoothing takes out the centreline's jitter
    # away from the ends (the rounded caps, and the last few millimetres where, on this grid, the
    # centreline itself runs up to 0.8 mm off the true axis): each plane shows one centred disc
    inner = slice(int(10 / 0.4), len(label) - int(10 / 0.4))
    area = label[inner].sum(axis=(1, 2)) * 0.4 ** 2
    # the mask's 0.6-1.3 mm voxels, re-cut at 0.5 on 0.4 mm pixels: each plane within 15 %, all within 4 %
    assert np.all(np.abs(area / (np.pi * 2.5 ** 2) - 1) < 0.15)
    assert abs(np.median(area) / (np.pi * 2.5 ** 2) - 1) < 0.04
    j, i = np.indices(label.shape[1:]) * 0.4
    centre = (label.shape[1] - 1) * 0.4 / 2
    for plane in label[inner]:  # centred to within the finest voxel (0.6 mm)
        assert abs((plane * i).sum() / plane.sum() - centre) < 0.5
        assert abs((plane * j).sum() / plane.sum() - centre) < 0.5


def test_a_straight_path_has_the_exact_affine():
    """For a straight vessel the image's own geometry (origin, spacing, direction) maps each
    voxel onto the point sampled there, to within the centreline's own sub-voxel wobble, away
    from the rounded ends (where the end of the centreline bends a little): the view can be
    placed in a scene as it is."""
    grid = make_grid((40, 40, 60), (0.5, 0.6, 0.9), OBLIQUE, center_lps=CENTER)
    axis = rotation(20, -10, 30) @ np.array([0.0, 0.0, 1.0])
    start, end = (np.asarray(CENTER) + s * 18 * axis for s in (-1, 1))
    tree = build_tree([BranchSpec(tuple(start), tuple((start + end) / 2), tuple(end), 3.0, 3.0)], grid)
    graph = centerline_graph(tree.mask)
    view = straighten(tree.mask, graph, StraightenParameters(half_width_mm=5.0, step_mm=0.5), label=True)
    shape = view.image.shape_ijk
    ijk = np.array([[a, b, c] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1)
                    for c in range(shape[2] // 4, 3 * shape[2] // 4, 5)])
    by_affine = (np.c_[ijk, np.ones(len(ijk))] @ view.image.ijk_to_lps().T)[:, :3]
    assert np.abs(by_affine - view.sampled_lps(ijk)).max() < 0.3
    assert np.abs(by_affine[:, None] - view.sampled_lps(ijk)[:, None]).mean() < 0.1
    assert abs(abs(view.image.direction_lps[:, 2] @ axis) - 1) < 1e-3


def test_frames_turn_only_as_the_path_bends():
    """Rotation-minimising frames along a helix: orthonormal, and no spin about the tangent
    (the normal's change has no binormal part)."""
    s = np.linspace(0, 4 * np.pi, 800)
    helix = np.column_stack([10 * np.cos(s), 10 * np.sin(s), 3 * s])
    tangents = smoothed_tangents(helix, 1.0)
    normals, binormals = rotation_minimising_frames(helix, tangents)
    for a, b in ((normals, tangents), (binormals, tangents), (normals, binormals)):
        assert np.abs((a * b).sum(axis=1)).max() < 1e-6
    assert np.allclose(np.linalg.norm(normals, axis=1), 1) and np.allclose(np.linalg.norm(binormals, axis=1), 1)
    spin = (np.diff(normals, axis=0) * binormals[:-1]).sum(axis=1)
    assert np.abs(spin).max() < 1e-3


def test_the_main_path_runs_from_the_root_to_the_farthest_end_or_the_target():
    tree = y_bifurcation(make_grid((50, 40, 60), (0.5, 0.5, 0.5)))
    graph = centerline_graph(tree.mask)
    points, branches = main_path(graph)
    assert branches[0] == graph.branches[0].id and graph.branches[0].parent is None
    assert len(branches) == 2
    ends = [b for b in graph.branches if b.parent is not None]
    other = next(b for b in ends if b.id != branches[-1])
    points_to, branches_to = main_path(graph, target_lps=other.points_lps[-1] + 1.0)
    assert branches_to[-1] == other.id
    assert np.allclose(points_to[-1], other.points_lps[-1])
    assert np.allclose(points[0], graph.branches[0].points_lps[0])


def test_bad_parameters_are_refused():
    tree = y_bifurcation(make_grid((50, 40, 60), (0.5, 0.5, 0.5)))
    graph = centerline_graph(tree.mask)
    for parameters in (StraightenParameters(step_mm=0), StraightenParameters(half_width_mm=-1),
                       StraightenParameters(step_mm=float("nan")),
                       StraightenParameters(half_width_mm=50, step_mm=0.01)):
        with pytest.raises(InputError):
            straighten(tree.mask, graph, parameters, label=True)
