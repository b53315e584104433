"""Thick masks: the centerline graph found on a coarser grid and measured on the full one
(:mod:`segforge.vessel.thick`), and what it leans on - distance bounds from blocks
(:mod:`segforge.vessel.coarse`), rays that stop once they cross (:mod:`.lumen_edge`) and
the topology clean-up's shortcut for masks without loops (:mod:`.topology`).

The shapes are drawn analytically in LPS millimetres, so the true axis and radius are known
on any grid. Figures when written (2-core machine, loaded): the 513,000-voxel bent tube of
the first test, coarse path 0.8 s, voxel path 3-5 s; mean distance to the true axis 0.013
mm (voxel path 0.011), graph radius median error 0.014 mm (voxel-centre radius on the voxel
path 0.005), ends 0.1-0.2 mm from the true axis ends (voxel path 0.25-0.35).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from conftest import OBLIQUE
from segforge.image import Image
from segforge.vessel import lumen_edge, thick, topology
from segforge.vessel.coarse import CoarseDistance, block_reduce, typical_radius_mm
from segforge.vessel.endpoints import EndpointParameters
from segforge.vessel.graph import centerline_graph
from segforge.vessel.lumen_edge import LEVEL, edge_distances, lumen_field, ray_directions
from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline
from segforge.vessel.radius import BoundaryDistance
from segforge.vessel.straighten import StraightenParameters
from segforge.vessel.synthetic import make_grid, y_bifurcation
from segforge.vessel.topology import TopologyParameters, clean_topology, loop_count

CENTER = np.array([12.0, -30.0, 45.0])


def _lps(grid: Image) -> np.ndarray:
    """Every voxel centre's LPS position, (k, j, i, 3) float32 (separable: cheap on big grids)."""
    matrix = grid.ijk_to_lps()
    k, j, i = (np.arange(n, dtype=np.float32) for n in grid.array.shape)
    return (matrix[:3, 3].astype(np.float32) + k[:, None, None, None] * matrix[:3, 2].astype(np.float32)
            + j[None, :, None, None] * matrix[:3, 1].astype(np.float32)
            + i[None, None, :, None] * matrix[:3, 0].astype(np.float32))


def bent_tube(spacing, direction=None, radius: float = 12.0, bend: float = 40.0,
              angle_deg: float = 180.0) -> tuple[Image, np.ndarray, float]:
    """A tube of ``radius`` bent along a circular arc, round ends: the mask, its axis (LPS), its radius."""
    half = np.radians(angle_deg) / 2
    t = np.linspace(-half, half, 4000)
    middle = np.array([0.0, (bend + bend * np.cos(half)) / 2, 0.0])
    local_axis = np.column_stack([bend * np.sin(t), bend * np.cos(t), 0 * t])
    box = np.array([2 * (bend + radius) + 6, bend * (1 - np.cos(half)) + 2 * radius + 6, 2 * radius + 6])
    turn = np.eye(3) if direction is None else np.asarray(direction)
    grid = make_grid(tuple(np.abs(turn.T) @ box), spacing, direction, center_lps=tuple(CENTER))
    rel = _lps(grid) - (CENTER - middle).astype(np.float32)
    theta = np.arctan2(rel[..., 0], rel[..., 1])
    distance = np.where(np.abs(theta) <= half, np.hypot(np.hypot(rel[..., 0], rel[..., 1]) - bend, rel[..., 2]),
                        np.inf)
    for end in local_axis[[0, -1]]:
        distance = np.minimum(distance, np.linalg.norm(rel - end.astype(np.float32), axis=-1))
    return grid.with_array((distance <= radius).astype(np.uint8)), local_axis + CENTER - middle, radius


def _away_from_ends(axis: np.ndarray, radius: float, points: np.ndarray) -> np.ndarray:
    """Points whose nearest axis point is more than one radius from the axis' ends (the caps)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(axis, axis=0), axis=1))])
    nearest = cKDTree(axis).query(points)[1]
    return (arc[nearest] > radius) & (arc[nearest] < arc[-1] - radius)


@pytest.fixture(scope="module")
def iso_tube() -> tuple[Image, np.ndarray, float]:
    return bent_tube((0.5, 0.5, 0.5))


def test_a_thick_bent_tube_takes_the_coarse_path_and_lands_on_its_axis(iso_tube):
    mask, axis, radius = iso_tube
    assert np.count_nonzero(mask.array) >= thick.MIN_VOXELS  # a realistic size, no threshold lowered
    graph = thick.thick_centerline_graph(mask)
    assert graph is not None, "the coarse path was not taken"
    assert len(graph.branches) == 1 and len(graph.endpoints) == 2
    points, radii = graph.points_lps(), graph.radii_mm()
    away = _away_from_ends(axis, radius, points)
    off = cKDTree(axis).query(points)[0]
    # the coarse graph alone (blocks 2 mm wide here) is 0.05 mm off on average, 0.16 at most
    assert off[away].mean() <= 0.03 and off[away].max() <= 0.08, (off[away].mean(), off[away].max())
    # radii measured to the interpolated edge on the full grid, not on the blocks
    assert np.median(np.abs(radii[away] - radius)) <= 0.05
    # round ends: at their caps' centres, the axis' ends
    ends = np.array([n.position_lps for n in graph.endpoints])
    assert np.linalg.norm(ends[:, None] - axis[[0, -1]][None], axis=2).min(axis=1).max() <= 0.5
    # the whole axis is covered, end to end
    assert cKDTree(points).query(axis)[0].max() <= 0.6
    # and centerline_graph itself takes that path
    assert np.array_equal(centerline_graph(mask).points_lps(), points)


def test_the_pipeline_between_endpoints_on_the_thick_tube(iso_tube):
    mask, axis, radius = iso_tube
    parameters = VesselPipelineParameters(
        endpoints=EndpointParameters(source_lps=tuple(axis[0]), targets_lps=(tuple(axis[-1]),)),
        outputs=VesselOutputs(centerlines=True, stenoses=False, surface=False),
        straighten=StraightenParameters(enabled=False))
    result = run_vessel_pipeline(None, parameters, segment=mask)
    assert len(result.graph.branches) == 1
    points = result.graph.points_lps()
    away = _away_from_ends(axis, radius, points)
    assert cKDTree(axis).query(points)[0][away].mean() <= 0.05
    assert np.median(np.abs(result.graph.radii_mm()[away] - radius)) <= 0.1
    sections = result.sections[0]
    assert sections.closed.mean() >= 0.9
    assert np.nanmedian(np.abs(sections.equivalent_diameter_mm[sections.closed] - 2 * radius)) <= 0.15


def test_an_oblique_anisotropic_thick_tube(monkeypatch):
    """The same on an oblique 0.6 x 0.7 x 0.8 mm grid (blocks of unequal voxel counts per axis);
    a smaller tube with the size threshold lowered, to keep the test quick."""
    monkeypatch.setattr(thick, "MIN_VOXELS", 0)
    mask, axis, radius = bent_tube((0.6, 0.7, 0.8), OBLIQUE, radius=9.0, bend=30.0)
    graph = thick.thick_centerline_graph(mask)
    assert graph is not None and len(graph.branches) == 1
    points = graph.points_lps()
    away = _away_from_ends(axis, radius, points)
    off = cKDTree(axis).query(points)[0]
    # measured 0.023 / 0.047 mm and radius 0.032 mm; the coarse graph alone 0.065 / 0.16 and 0.105
    assert off[away].mean() <= 0.045 and off[away].max() <= 0.1, (off[away].mean(), off[away].max())
    assert np.median(np.abs(graph.radii_mm()[away] - radius)) <= 0.07
    ends = np.array([n.position_lps for n in graph.endpoints])
    assert np.linalg.norm(ends[:, None] - axis[[0, -1]][None], axis=2).min(axis=1).max() <= 0.8


def test_a_thick_ring_keeps_its_loop(monkeypatch):
    monkeypatch.setattr(thick, "MIN_VOXELS", 0)
    grid = make_grid((84, 84, 24), (0.5, 0.5, 0.5), center_lps=tuple(CENTER))
    rel = _lps(grid) - CENTER.astype(np.float32)
    mask = grid.with_array(((np.hypot(rel[..., 0], rel[..., 1]) - 30) ** 2 + rel[..., 2] ** 2 <= 81).astype(np.uint8))
    graph = thick.thick_centerline_graph(mask)
    assert graph is not None
    assert len(graph.branches) == 1 and graph.branches[0].is_loop
    points = graph.points_lps() - CENTER
    assert np.abs(np.hypot(points[:, 0], points[:, 1]) - 30).mean() <= 0.1
    assert np.abs(points[:, 2]).mean() <= 0.1


def test_a_thin_side_branch_keeps_the_voxel_path(monkeypatch):
    """A 1 mm side branch on a 6 mm tube vanishes on blocks: the coarse grid is refused and the
    voxel path finds the side branch."""
    monkeypatch.setattr(thick, "MIN_VOXELS", 0)
    grid = make_grid((50, 40, 70), (0.5, 0.5, 0.5))
    rel = _lps(grid)
    trunk = np.hypot(rel[..., 0], rel[..., 1]) <= 6.0
    side = (np.hypot(rel[..., 1], rel[..., 2] - 5) <= 1.0) & (rel[..., 0] >= 0) & (rel[..., 0] <= 22)
    mask = grid.with_array((trunk | side).astype(np.uint8))
    assert thick.thick_centerline_graph(mask) is None
    assert len(centerline_graph(mask).branches) == 3


def test_two_thick_tubes_closer_than_a_block_stay_two(monkeypatch):
    """Blocks wider than the gap would join them (another topology): refused, then finer."""
    monkeypatch.setattr(thick, "MIN_VOXELS", 0)
    grid = make_grid((50, 30, 40), (0.5, 0.5, 0.5))
    rel = _lps(grid)
    first = np.hypot(rel[..., 0] + 8.5, rel[..., 1]) <= 8.0
    second = np.hypot(rel[..., 0] - 8.5, rel[..., 1]) <= 8.0
    mask = grid.with_array((first | second).astype(np.uint8))
    assert ndimage.label(mask.array, structure=np.ones((3, 3, 3)))[1] == 2
    graph = centerline_graph(mask)
    assert graph.component_count == 2 and len(graph.branches) == 2
    for branch in graph.branches:
        x = branch.points_lps[:, 0]
        assert np.abs(np.abs(x) - 8.5).max() <= 0.3


def test_coarse_distance_bounds_hold_for_every_point():
    grid = make_grid((40, 40, 30), (0.5, 0.6, 0.7), OBLIQUE)
    rel = _lps(grid)
    inside = np.hypot(rel[..., 0], rel[..., 1]) <= 11.0
    spacing = np.asarray(grid.spacing[::-1], float)
    exact = BoundaryDistance(inside, spacing)
    bounds = CoarseDistance(inside, spacing, (4, 5, 6))
    rng = np.random.default_rng(3)
    points = rng.uniform(0, np.asarray(inside.shape) - 1, size=(4000, 3))
    low, high = bounds(points)
    truth = exact(points)
    assert np.all(low <= truth + 1e-9) and np.all(truth <= high + 1e-9)
    deep = low > 0
    assert deep.mean() > 0.2 and np.all(high[deep] - low[deep] <= 2 * bounds.slack + 1e-9)
    # an underestimate (a short tube's cut ends count as surface too), never an overestimate
    assert 0.4 * 11.0 <= typical_radius_mm(inside, spacing) <= 11.0


def _crossings_sampling_every_ray_to_the_end(field, centres, directions, reach, start):
    """Every ray sampled out to its reach at once (scipy's interpolation; beyond the field's
    box a ray ends with no wall), its first crossing bisected to a billionth of a step."""
    centres_kji = lumen_edge.affine(centres, field.lps_to_kji)
    directions_kji = directions @ field.lps_to_kji[:3, :3].T
    step = 0.5 * float(min(field.spacing))

    def along(s):  # s (n, rays, m) mm from the centre
        where = centres_kji[:, None, None, :] + s[..., None] * directions_kji[:, :, None, :]
        return ndimage.map_coordinates(field.volume, where.reshape(-1, 3).T, order=1, mode="constant",
                                       cval=np.nan, output=np.float64).reshape(s.shape)

    samples = int(np.ceil((reach - start).max() / step)) + 2
    s = np.broadcast_to(start[:, None, None] + np.arange(samples)[None, None] * step,
                        (len(centres), directions.shape[1], samples))
    values = along(s)
    ends = ~(values >= LEVEL)  # below the level, or beyond the box
    first = np.argmax(ends, axis=2)
    hit = np.take_along_axis(values, first[..., None], 2)[..., 0]
    low = start[:, None] + (first - 1) * step
    found = ends.any(axis=2) & (first > 0) & (hit < LEVEL) & (low <= reach[:, None])
    high = low + step
    for _ in range(30):
        middle = 0.5 * (low + high)
        inside = along(middle[..., None])[..., 0] >= LEVEL
        low, high = np.where(inside, middle, low), np.where(inside, high, middle)
    distance = 0.5 * (low + high)
    return np.where(found & (distance <= reach[:, None]), distance, np.nan)


def test_rays_that_stop_at_their_crossing_give_the_same_distances():
    """The march (stretches, each ray stopping at its crossing, the crossing refined by false
    position) against sampling every ray to its reach and bisecting: the same walls found and
    missed, at the same distances (0.002 mm here; four halvings, as before, erred by 0.0034)."""
    grid = make_grid((30, 30, 30), (0.5, 0.6, 0.7), OBLIQUE)
    rel = _lps(grid)
    mask = grid.with_array(((rel[..., 0] / 9) ** 2 + (rel[..., 1] / 5) ** 2 <= 1).astype(np.uint8))
    field = lumen_field(mask)
    rng = np.random.default_rng(5)
    centres = rng.uniform(-4, 4, size=(60, 3))
    u = rng.normal(size=(60, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(u, rng.normal(size=(60, 3)))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    directions, _ = ray_directions(u, v, 72)
    reach = rng.uniform(3, 25, size=60)
    start = rng.uniform(0, 2, size=60)
    expected = _crossings_sampling_every_ray_to_the_end(field, centres, directions, reach, start)
    marched = edge_distances(field, centres, directions, reach, start)
    assert np.isfinite(marched).mean() > 0.5
    assert np.array_equal(np.isnan(marched), np.isnan(expected))
    assert np.abs(marched[np.isfinite(marched)] - expected[np.isfinite(expected)]).max() < 3e-3


def test_loop_count_of_known_shapes():
    ball = np.indices((21, 21, 21)) - 10
    radius = np.sqrt((ball ** 2).sum(axis=0))
    assert loop_count(radius <= 8) == 0
    assert loop_count((radius <= 8) & (radius >= 5)) == 0  # a hollow ball: a cavity, no loop
    ring = (np.hypot(np.hypot(ball[1], ball[2]) - 6, ball[0]) <= 2)
    assert loop_count(ring) == 1
    two = np.concatenate([ring, ring], axis=2)
    assert loop_count(two) == 2


def test_a_mask_without_loops_skips_the_closing_and_gets_the_same_answer(monkeypatch):
    """A Y bifurcation on an oblique thick-slice grid (crotch, staircase dents, no tunnel):
    the shortcut's mask equals the closing's (forced by pretending there is a loop)."""
    grid = make_grid((40, 24, 50), (0.4, 0.5, 1.2), OBLIQUE, center_lps=tuple(CENTER))
    mask = y_bifurcation(grid, length_mm=40.0, center_lps=tuple(CENTER)).mask
    parameters = TopologyParameters(close_holes_mm=4.0)
    quick, quick_report = clean_topology(mask, parameters)
    monkeypatch.setattr(topology, "loop_count", lambda volume, background=None: 1)
    slow, slow_report = clean_topology(mask, parameters)
    assert np.array_equal(quick.array, slow.array)
    assert quick_report == slow_report


def test_block_reduce_equals_reducing_each_block():
    """Blocks of unequal factors, the last ones partial (padded with the fill), for the
    reductions the coarse grid uses."""
    rng = np.random.default_rng(11)
    volume = rng.random((11, 7, 9)) > 0.4
    factors = np.array([3, 2, 4])
    for reduce, fill, dtype in ((np.sum, False, np.int32), (np.min, True, None), (np.max, False, None)):
        got = block_reduce(volume, factors, fill, reduce, dtype)
        assert got.shape == (4, 4, 3)
        for block in np.ndindex(*got.shape):
            part = volume[tuple(slice(b * f, b * f + f) for b, f in zip(block, factors))]
            padded = np.full(factors, fill, volume.dtype)
            padded[tuple(slice(0, n) for n in part.shape)] = part
            assert got[block] == reduce(padded)
