"""Topology clean-up before skeletonising: shapes of known topology on isotropic, thick-slice
and oblique grids, and the real TotalSegmentator aorta of the dissection case.

Each shape is drawn in patient millimetres (LPS) and rasterised on the grid, so the same
physical hole must be closed (or kept) whatever the spacing and direction.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from conftest import OBLIQUE, SAMPLE_DATA
from segforge.errors import InputError
from segforge.image import Image
from segforge.image_io import read_image
from segforge.vessel.graph import centerline_graph
from segforge.vessel.radius import lps_to_kji
from segforge.vessel import topology
from segforge.vessel.synthetic import make_grid, y_bifurcation
from segforge.components import label
from segforge.vessel.topology import (TopologyParameters, _closing_additions, clean_topology,
                                      euler_characteristic, euler_gains)

CENTER = np.array([12.0, -30.0, 45.0])
GRIDS = {
    "iso 0.4 mm": dict(spacing=(0.4, 0.4, 0.4)),
    "0.4x0.4x2 mm": dict(spacing=(0.4, 0.4, 2.0)),
    "oblique 0.5x0.6x1.2 mm": dict(spacing=(0.5, 0.6, 1.2), direction_lps=OBLIQUE),
}
TS_AORTA = SAMPLE_DATA / "ts_thoracic_cta_aorta" / "pred_aorta.nii.gz"


def _grid(name: str, extent=(44.0, 30.0, 16.0)) -> Image:
    return make_grid(extent, center_lps=tuple(CENTER), **GRIDS[name])


def _frame(grid: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every voxel's LPS position, and the grid's own i, j, k directions in LPS."""
    k, j, i = np.indices(grid.array.shape)
    ijk = np.stack([i, j, k], axis=-1) * np.asarray(grid.spacing)
    lps = ijk @ np.asarray(grid.direction_lps).T + np.asarray(grid.origin_lps)
    u, v, w = np.asarray(grid.direction_lps).T
    return lps, u, v, w


def _tube(lps: np.ndarray, centre: np.ndarray, axis: np.ndarray, radius: float, half_length: float) -> np.ndarray:
    d = lps - centre
    along = d @ axis
    across = np.linalg.norm(d - along[..., None] * axis, axis=-1)
    return (across <= radius) & (np.abs(along) <= half_length)


def _torus(lps: np.ndarray, centre: np.ndarray, u: np.ndarray, v: np.ndarray, major: float,
           minor: float) -> np.ndarray:
    d = lps - centre
    a, b = d @ u, d @ v
    normal = np.cross(u, v)
    return np.hypot(np.hypot(a, b) - major, d @ normal) <= minor


def _image(grid: Image, mask: np.ndarray) -> Image:
    return grid.with_array(mask.astype(np.uint8))


def _voxel_centre(grid: Image, point: np.ndarray) -> np.ndarray:
    """The LPS centre of the voxel holding ``point`` (a hole drawn there is never lost between slices)."""
    kji = np.round(lps_to_kji(grid, point)[0])
    ijk = kji[::-1] * np.asarray(grid.spacing)
    return np.asarray(grid.direction_lps) @ ijk + np.asarray(grid.origin_lps)


def _loops(mask: np.ndarray) -> int:
    """Independent loops (first Betti number) of a 26-connected mask with no cavity."""
    components = ndimage.label(mask, np.ones((3, 3, 3)))[1]
    return components - euler_characteristic(mask)


# --- the Euler characteristic and the closing it judges --------------------------------------


def test_euler_characteristic_of_known_shapes():
    assert euler_characteristic(np.ones((1, 1, 1))) == 1
    assert euler_characteristic(np.ones((3, 4, 5))) == 1
    two = np.zeros((3, 3, 5), bool)
    two[1, 1, [0, 4]] = True
    assert euler_characteristic(two) == 2
    shell = np.ones((5, 5, 5), bool)
    shell[2, 2, 2] = False
    assert euler_characteristic(shell) == 2  # one component, one cavity
    k, j, i = np.mgrid[:16, :40, :40]
    assert euler_characteristic(np.hypot(np.hypot(j - 20, i - 20) - 12, k - 8) <= 3.5) == 0  # a ring
    corners = np.zeros((2, 2, 2), bool)
    corners[0, 0, 0] = corners[1, 1, 1] = True
    assert euler_characteristic(corners) == 1  # touching at a corner: one 26-connected piece


def test_each_pieces_euler_gain_equals_adding_it_alone():
    """The gains judged for all pieces at once equal the change each piece alone makes to
    the whole volume's Euler characteristic (random masks and pieces, one voxel inside the
    faces, on a box of unequal sides so that no axis can stand in for another)."""
    rng = np.random.default_rng(7)
    inner = (slice(1, -1),) * 3
    for _ in range(60):
        volume = np.zeros((9, 11, 13), bool)
        volume[inner] = rng.random((7, 9, 11)) < rng.uniform(0.2, 0.7)
        candidates = np.zeros_like(volume)
        candidates[inner] = rng.random((7, 9, 11)) < 0.3
        candidates &= ~volume
        pieces, count = label(candidates)
        gains = euler_gains(volume, pieces, np.flatnonzero(candidates), count)
        alone = [euler_characteristic(volume | (pieces == n)) - euler_characteristic(volume)
                 for n in range(1, count + 1)]
        assert count > 1 and gains[1:].tolist() == alone


@pytest.mark.parametrize("few_offsets", [0, 10**6], ids=["k-d tree", "shifts"])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.4, 0.7)])
def test_sparse_closing_equals_the_distance_transform_closing(spacing, few_offsets, monkeypatch):
    """Both ways of closing (k-d tree on the shell, shifted boxes) must add exactly what two
    exact distance transforms add."""
    monkeypatch.setattr(topology, "FEW_OFFSETS", few_offsets)
    rng = np.random.default_rng(4)
    volume = ndimage.binary_opening(rng.random((30, 40, 36)) > 0.55)
    for radius in (1.0, 2.0, 3.0):
        pad = np.ceil(radius / np.asarray(spacing)).astype(int) + 2
        work = np.pad(volume, [(p, p) for p in pad])
        near = ndimage.distance_transform_edt(~work, sampling=spacing) <= radius
        expected = (ndimage.distance_transform_edt(near, sampling=spacing) > radius) & ~work
        got = _closing_additions(work, np.asarray(spacing, float), radius)
        assert expected.sum() > 0 and np.array_equal(got, expected)


# --- shapes of known topology on every grid --------------------------------------------------


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_a_small_tunnel_through_a_tube_is_closed_and_the_centerline_stays_on_the_axis(grid_name):
    grid = _grid(grid_name)
    lps, u, v, w = _frame(grid)
    centre = _voxel_centre(grid, CENTER)
    tube = _tube(lps, CENTER, u, 4.0, 18.0)
    holed = tube & ~_tube(lps, centre, w, 1.0, 10.0)  # a 2 mm hole drilled across the tube
    assert _loops(holed) == 1
    cleaned, report = clean_topology(_image(grid, holed))
    assert report.tunnels_closed == 1 and report.cavities_filled == 0
    assert 0 < report.voxels_added <= (holed != tube).sum()
    assert _loops(cleaned.array != 0) == 0
    assert not np.any(cleaned.array.astype(bool) & ~tube)  # only the hole was filled
    graph = centerline_graph(cleaned)
    (branch,) = graph.branches
    d = branch.points_lps - CENTER
    off_axis = np.linalg.norm(d - np.outer(d @ u, u), axis=1)
    assert off_axis[np.abs(d @ u) < 6].max() < 0.5 * max(grid.spacing)


@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_a_small_cavity_in_a_tube_is_filled(grid_name):
    grid = _grid(grid_name)
    lps, u, _, _ = _frame(grid)
    tube = _tube(lps, CENTER, u, 4.0, 18.0)
    bubble = np.linalg.norm(lps - _voxel_centre(grid, CENTER + 6 * u), axis=-1) <= 1.2
    cleaned, report = clean_topology(_image(grid, tube & ~bubble))
    assert report.cavities_filled == 1 and report.tunnels_closed == 0
    assert report.voxels_added == bubble.sum() > 0
    assert np.array_equal(cleaned.array != 0, tube)
    assert len(centerline_graph(cleaned).branches) == 1


def test_a_cavity_wider_than_the_size_stays():
    grid = _grid("iso 0.4 mm", (30.0, 30.0, 30.0))
    lps, _, _, _ = _frame(grid)
    ball = np.linalg.norm(lps - CENTER, axis=-1)
    hollow = (ball <= 12.0) & (ball > 3.0)  # a 6 mm cavity
    cleaned, report = clean_topology(_image(grid, hollow), TopologyParameters(4.0))
    assert report.cavities_filled == 0 and np.array_equal(cleaned.array != 0, hollow)
    _, report = clean_topology(_image(grid, hollow), TopologyParameters(7.0))
    assert report.cavities_filled == 1


@pytest.mark.parametrize("grid_name", list(GRIDS))
@pytest.mark.parametrize("diameter_mm", [10.0, 14.0])
def test_a_true_ring_stays_a_ring(grid_name, diameter_mm):
    """A ring of vessels (10 mm and more across, like the Circle of Willis) is not a hole."""
    grid = _grid(grid_name, (24.0, 24.0, 12.0))
    lps, u, v, _ = _frame(grid)
    ring = _torus(lps, CENTER, u, v, diameter_mm / 2, 1.6)
    cleaned, report = clean_topology(_image(grid, ring))
    assert report.tunnels_closed == 0 and report.voxels_added == 0
    assert _loops(cleaned.array != 0) == 1
    (branch,) = centerline_graph(cleaned).branches
    assert branch.is_loop and abs(branch.length_mm - np.pi * diameter_mm) < 0.1 * np.pi * diameter_mm


@pytest.mark.parametrize("grid_name", ["iso 0.4 mm", "oblique 0.5x0.6x1.2 mm"])
def test_a_small_handle_on_a_tube_is_closed(grid_name):
    """A handle (a small ring standing on the vessel's wall, its hole 2.2 mm across, outside
    the wall) becomes a bump of the wall: no loop in the centerlines.

    Not on 2 mm slices: a ring 1.4 mm thick lies in one slice there, and the background
    voxels right above and below its hole are one ball radius (2 mm) away, so the closing
    passes through it (a limit of a ball no wider than two slices)."""
    grid = _grid(grid_name)
    lps, u, v, w = _frame(grid)
    centre = _voxel_centre(grid, CENTER)
    tube = _tube(lps, centre, u, 3.0, 18.0)
    handle = _torus(lps, centre + 4.2 * v, u, v, 1.8, 0.7)
    assert _loops(tube | handle) == 1
    cleaned, report = clean_topology(_image(grid, tube | handle))
    assert report.tunnels_closed == 1 and _loops(cleaned.array != 0) == 0
    assert report.voxels_added < handle.sum()
    graph = centerline_graph(cleaned)
    assert not any(b.is_loop for b in graph.branches) and len(graph.bifurcations) <= 2


def test_a_bifurcation_crotch_two_close_vessels_and_a_hairpin_are_left_alone():
    """The closing fills a crotch, bridges two vessels 1.5 mm apart and the limbs of a hairpin:
    none of that removes a loop, so none of it is added."""
    grid = make_grid((40, 40, 60), (0.5, 0.5, 0.5), OBLIQUE, center_lps=tuple(CENTER))
    tree = y_bifurcation(grid, center_lps=tuple(CENTER))
    cleaned, report = clean_topology(tree.mask)
    assert report.voxels_added == 0 and np.array_equal(cleaned.array != 0, tree.mask.array != 0)

    grid = _grid("oblique 0.5x0.6x1.2 mm")
    lps, u, v, _ = _frame(grid)
    pair = _tube(lps, CENTER - 2.75 * v, u, 2.0, 15.0) | _tube(lps, CENTER + 2.75 * v, u, 2.0, 15.0)
    cleaned, report = clean_topology(_image(grid, pair))
    assert report.voxels_added == 0
    assert ndimage.label(cleaned.array, np.ones((3, 3, 3)))[1] == 2

    hairpin = pair | _tube(lps, CENTER + 14.0 * u, v, 2.0, 4.75)
    cleaned, report = clean_topology(_image(grid, hairpin))
    assert report.voxels_added == 0 and _loops(cleaned.array != 0) == 0


def test_zero_turns_it_off_and_bad_sizes_are_refused():
    grid = _grid("iso 0.4 mm")
    lps, u, _, w = _frame(grid)
    holed = _tube(lps, CENTER, u, 4.0, 18.0) & ~_tube(lps, CENTER, w, 1.0, 10.0)
    cleaned, report = clean_topology(_image(grid, holed), TopologyParameters(0.0))
    assert report.voxels_added == 0 and np.array_equal(cleaned.array != 0, holed)
    assert cleaned.same_grid(grid)
    for bad in (-1.0, float("nan"), float("inf"), True, "4"):
        with pytest.raises(InputError, match="hole size"):
            TopologyParameters(bad)
    with pytest.raises(InputError, match="empty"):
        clean_topology(grid)


def test_nothing_is_added_outside_the_image():
    """A tube cut by the image's border: the closing may reach past the border; the mask
    keeps the image's grid and nothing of the border face changes."""
    grid = _grid("iso 0.4 mm")
    lps, u, _, w = _frame(grid)
    tube = _tube(lps, CENTER, u, 4.0, 40.0)  # longer than the image: cut at both ends
    holed = tube & ~_tube(lps, CENTER + 21.0 * u, w, 1.0, 10.0)  # a hole at the border
    cleaned, report = clean_topology(_image(grid, holed))
    assert cleaned.array.shape == holed.shape and cleaned.same_grid(grid)
    assert not np.any(cleaned.array.astype(bool) & ~tube)


# --- real data ------------------------------------------------------------------------------


def test_totalsegmentator_aorta_of_the_dissection_case_becomes_one_centerline():
    """The aorta mask of the dissection case has 5 cavities and tunnels (the flap): uncleaned
    it gives loops and branches around them; cleaned, one centerline from the aortic root
    to the cut at the bottom of the scan."""
    mask = read_image(TS_AORTA)
    raw = centerline_graph(mask)
    assert len(raw.branches) >= 5
    cleaned, report = clean_topology(mask)
    assert report.cavities_filled >= 3 and report.tunnels_closed >= 3
    assert report.voxels_added < 0.005 * np.count_nonzero(mask.array)
    graph = centerline_graph(cleaned)
    (aorta,) = graph.branches
    ends = aorta.points_lps[[0, -1]]
    annulus = np.array([13.8, -182.8, 661.1])  # aorta_report_reference.json, landmark 1 (RAS -> LPS)
    assert np.linalg.norm(ends - annulus, axis=1).min() < 15.0
    cut = float(lps_to_kji(mask, ends)[:, 0].min())
    assert cut < 0.5  # the other end on the lowest slice, where the scan cuts the aorta
    assert aorta.length_mm > 300


def test_the_demo_bifurcation_from_the_image_is_the_aorta_two_iliacs_and_one_side_vessel():
    """``make demo``'s image path (CE-MRA, ``mra`` preset, the box around the bifurcation):
    8 branches before this clean-up. The mask's one small loop (a side vessel lying on the
    left iliac, joined to it twice through a 1.5 mm slice) is closed; what stays is the
    aorta, the two iliacs (the left one in two pieces, where the side vessel leaves it) and
    that side vessel, a real one: bright and tubular for 12 slices past the box's top face,
    which cuts it (pictures of the slices checked)."""
    from dataclasses import replace

    from segforge.image_io import read_volume
    from segforge.vessel.parameters import BUILTIN_MODEL
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, preset, run_vessel_pipeline

    box = (-240.0, -182.0, 12.5, -204.5, -97.5, 35.5)  # scripts/demo.py's BIFURCATION_ROI_LPS
    image = read_volume(SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta.mha")
    parameters = VesselPipelineParameters(mask=replace(preset("mra"), roi_lps=box, model=BUILTIN_MODEL),
                                          outputs=VesselOutputs(stenoses=False, surface=False))
    result = run_vessel_pipeline(image, parameters)
    assert result.topology.tunnels_closed == 1 and result.topology.voxels_added < 20
    graph = result.graph
    assert len(graph.branches) == 5 and len(graph.bifurcations) == 2
    assert not any(b.is_loop for b in graph.branches)
    radii = sorted((float(np.median(b.radii_mm)), b.id) for b in graph.branches)
    assert radii[0][0] < 2.5 < 4.0 < radii[1][0]  # one thin vessel, four pieces of wide ones
    side = graph.branches[radii[0][1]]
    assert graph.branches[side.parent].parent == 0  # it leaves an iliac, not the aorta
    assert abs(side.points_lps[-1, 2] - box[5]) < 1.5  # and runs out of the box's top face
    assert side.length_mm > 10


@pytest.mark.parametrize("seed", range(4))
def test_cavity_windows_give_the_whole_surface_s_nearest_distances(seed):
    """The k-d tree of the object's surface near the cavities only (``_cavity_windows``)
    answers every cavity voxel as the tree of the whole surface does: speckle and large
    ellipsoidal cavities, anisotropic voxels."""
    rng = np.random.default_rng(seed)
    shape = (40, 50, 60)
    blob = ndimage.binary_closing(ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5, iterations=2)
    blob &= rng.random(shape) < 0.97  # speckle cavities
    z, y, x = np.indices(shape)
    for _ in range(3):
        centre, radii = rng.uniform(10, 30, 3), rng.uniform(2, 8, 3)
        blob &= ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + \
            ((x - centre[2]) / radii[2]) ** 2 > 1
    work = np.pad(blob, 2)
    spacing = rng.uniform(0.3, 2.5, 3)
    labels, count = label(~work, 6)
    voxels = np.argwhere(topology._enclosed_labels(labels, count)[labels])
    cavity = labels[tuple(voxels.T)]
    windows = topology._cavity_windows(work.shape, voxels, cavity, count, spacing)
    assert len(np.unique(cavity)) > 3 and not windows.all()
    assert np.array_equal(topology._Nearest(work, spacing, windows)(voxels), topology._Nearest(work, spacing)(voxels))
