"""Cross-sections against tubes whose lumen is known exactly: circles and ellipses of known
area and diameters, on an isotropic grid, a 0.4 x 0.4 x 2 mm grid and an oblique grid; a
neighbouring vessel in the same plane; open sections at a junction; landmarks; the grey
image's edge; bad parameters.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBLIQUE, rotation
from segforge.errors import InputError
from segforge.image import Image
from segforge.vessel.cross_sections import (SectionParameters, branch_sections, measure_landmarks,
                                            measure_sections, nearest_centerline_point)
from segforge.vessel.graph import centerline_graph
from segforge.vessel.lumen_edge import lumen_field
from segforge.vessel.radius import kji_to_lps
from segforge.vessel.synthetic import make_grid, y_bifurcation

CENTER = np.array([12.0, -7.0, 30.0])
#: Grids and tube directions. The tubes never sit on the lattice's symmetries (an axis-aligned
#: circle centred between voxels has its edge on voxel centres all round, which no real vessel
#: does): each is turned a little and its axis moved off the grid's centre by a fraction of a voxel.
GRIDS = {
    "iso 0.5 mm": dict(spacing=(0.5, 0.5, 0.5), direction=None, turn=rotation(4, -3, 23)),
    "0.4x0.4x2 mm, across the slices": dict(spacing=(0.4, 0.4, 2.0), direction=None, turn=rotation(3, -4, 17)),
    "oblique 0.4x0.4x2 mm": dict(spacing=(0.4, 0.4, 2.0), direction=OBLIQUE, turn=rotation(10, 35, -20)),
}
OFF_LATTICE = np.array([0.137, 0.071, 0.043])


def ellipse_tube(spacing, direction, turn: np.ndarray, a: float, b: float, length: float = 40.0,
                 extent=(36, 36, 50), center=CENTER, shift=(0.0, 0.0)) -> tuple[Image, np.ndarray]:
    """A straight tube with an elliptical lumen (semi-axes a along the frame's first axis,
    b along its second, both mm), axis along the frame's third axis through ``center``
    (moved by ``shift`` across it). Voxels whose centre lies inside are set. Returns the mask
    and the frame (columns: major axis, minor axis, tube axis; LPS)."""
    grid = make_grid(extent, spacing, direction, center_lps=CENTER)
    frame = np.asarray(turn, float)
    k, j, i = np.indices(grid.array.shape)
    lps = kji_to_lps(grid, np.column_stack([k.ravel(), j.ravel(), i.ravel()]))
    local = (lps - center) @ frame
    x, y = local[:, 0] - shift[0], local[:, 1] - shift[1]
    inside = ((x / a) ** 2 + (y / b) ** 2 <= 1) & (np.abs(local[:, 2]) <= length / 2)
    return grid.with_array(inside.reshape(grid.array.shape).astype(np.uint8)), frame


def _along_axis(frame: np.ndarray, count: int = 15, half: float = 8.0, center=CENTER) -> np.ndarray:
    return center + np.linspace(-half, half, count)[:, None] * frame[:, 2]


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("a,b", [(4.0, 4.0), (5.0, 3.0), (2.0, 1.5)])
def test_area_and_diameters_of_known_lumens(grid, a, b):
    """Sections in the true plane: area within 2.5 %, diameters within 0.25 mm (finest voxel
    0.4-0.5 mm). On the oblique thick-slice grid the plane cuts the 2 mm slices at a slant:
    there the edge across the slices is known to half a slice, and diameters to 1 mm."""
    center = CENTER + OFF_LATTICE
    mask, frame = ellipse_tube(GRIDS[grid]["spacing"], GRIDS[grid]["direction"], GRIDS[grid]["turn"], a, b,
                               center=center)
    points = _along_axis(frame, center=center)
    measured = measure_sections(lumen_field(mask), points, np.tile(frame[:, 2], (len(points), 1)))
    assert measured.closed.all()
    assert abs(np.median(measured.area_mm2) / (np.pi * a * b) - 1) < 0.025
    assert abs(np.median(measured.equivalent_diameter_mm) - 2 * np.sqrt(a * b)) < 0.1
    tolerance = 1.0 if grid.startswith("oblique") else 0.25
    assert abs(np.median(measured.max_diameter_mm) - 2 * a) < tolerance
    assert abs(np.median(measured.min_diameter_mm) - 2 * b) < tolerance
    assert abs(np.median(measured.perpendicular_diameter_mm) - 2 * b) < tolerance
    assert abs(np.median(measured.circularity) - b / a) < (0.15 if grid.startswith("oblique") else 0.05)
    assert np.all(measured.min_diameter_mm <= measured.perpendicular_diameter_mm + 1e-6)
    assert np.all(measured.perpendicular_diameter_mm <= measured.max_diameter_mm + 1e-6)


def test_the_section_is_the_same_from_any_point_inside_the_lumen():
    """The outline is that of the region holding the point: an off-centre origin (a landmark
    that is not on the axis) sees the same lumen."""
    mask, frame = ellipse_tube((0.5, 0.5, 0.5), OBLIQUE, rotation(0, 20, 40), 5.0, 3.5)
    field = lumen_field(mask)
    centre = CENTER[None]
    off = centre + 2.0 * frame[:, 0] + 1.0 * frame[:, 1]
    tangent = frame[:, 2][None]
    a = measure_sections(field, centre, tangent)
    b = measure_sections(field, off, tangent, reach_mm=[30.0])
    assert abs(a.area_mm2[0] - b.area_mm2[0]) < 0.01 * a.area_mm2[0]
    assert abs(a.max_diameter_mm[0] - b.max_diameter_mm[0]) < 0.2


def test_a_lumen_cut_by_the_image_face_is_open_there_not_closed_by_it():
    """A tube (radius 5 mm) whose lumen runs out of the image: the image ends 4.5 mm from its
    axis. What lies beyond the face is unknown, so the rays that reach it find no wall and
    the section is open: the face is not the vessel's wall (it was taken for one, giving a
    closed, flattened outline). The same sections on the whole tube are closed and right."""
    mask, frame = ellipse_tube((0.5, 0.5, 0.5), None, rotation(3, -2, 11), 5.0, 5.0)
    points = _along_axis(frame, 9, 4.0)
    tangents = np.tile(frame[:, 2], (len(points), 1))
    whole = measure_sections(lumen_field(mask), points, tangents)
    assert whole.closed.all() and np.all(np.abs(whole.area_mm2 / (np.pi * 25.0) - 1) < 0.03)
    centre_i = np.linalg.solve(mask.ijk_to_lps()[:3, :3], CENTER - mask.ijk_to_lps()[:3, 3])[0]
    last = int(np.floor(centre_i + 4.5 / 0.5))  # the last column of voxels: 4.5 mm from the axis
    cut = Image(mask.array[:, :, :last + 1].copy(), mask.spacing, mask.origin_lps, mask.direction_lps)
    assert cut.array[:, :, -1].any()  # the lumen does reach the face
    measured = measure_sections(lumen_field(cut), points, tangents)
    assert not measured.closed.any()


def test_a_neighbouring_vessel_cut_by_the_same_plane_is_not_counted():
    """Two parallel tubes (radius 3 mm) with 1 mm of background between them, and a third
    crossing the plane at a right angle close by: each section measures its own vessel."""
    spacing = (0.5, 0.5, 0.5)
    first, frame = ellipse_tube(spacing, OBLIQUE, rotation(0, 0, 0), 3.0, 3.0, shift=(-3.5, 0.0))
    second, _ = ellipse_tube(spacing, OBLIQUE, rotation(0, 0, 0), 3.0, 3.0, shift=(3.5, 0.0))
    crossing, _ = ellipse_tube(spacing, OBLIQUE, rotation(90, 0, 0), 2.0, 2.0, length=30.0, shift=(0.0, 9.0))
    mask = first.with_array(first.array | second.array | crossing.array)
    field = lumen_field(mask)
    points = CENTER + np.array([[-3.5, 0.0, z] for z in np.linspace(-6, 6, 7)]) @ frame.T
    measured = measure_sections(field, points, np.tile(frame[:, 2], (len(points), 1)), reach_mm=np.full(7, 25.0))
    assert measured.closed.all()
    assert np.all(np.abs(measured.area_mm2 / (np.pi * 9.0) - 1) < 0.03)
    assert np.all(np.abs(measured.max_diameter_mm - 6.0) < 0.4)


def test_sections_along_a_graph_branch_every_step():
    # cut by the image's faces (a flat-ended elliptical tube grows corner spurs: the graph's business)
    mask, frame = ellipse_tube((0.5, 0.5, 0.5), OBLIQUE, rotation(15, -25, 30), 4.5, 3.0, length=200.0,
                               extent=(40, 40, 50))
    graph = centerline_graph(mask)
    assert len(graph.branches) == 1
    sections = branch_sections(lumen_field(mask), graph, SectionParameters(step_mm=0.5))
    assert len(sections) == 1
    s = sections[0]
    assert s.branch == graph.branches[0].id
    n = len(s.arc_mm)
    assert all(len(x) == n for x in (s.points_lps, s.area_mm2, s.equivalent_diameter_mm, s.min_diameter_mm,
                                     s.max_diameter_mm, s.circularity, s.perpendicular_diameter_mm, s.closed))
    assert np.allclose(np.diff(s.arc_mm)[:-1], 0.5)
    assert abs(s.arc_mm[-1] - graph.branches[0].length_mm) < 1e-6
    middle = np.abs(s.arc_mm - s.arc_mm[-1] / 2) < 15  # away from the cut ends
    assert s.closed[middle].all()
    assert abs(np.median(s.area_mm2[middle]) / (np.pi * 4.5 * 3.0) - 1) < 0.02
    assert abs(np.median(s.max_diameter_mm[middle]) - 9.0) < 0.3
    assert abs(np.median(s.min_diameter_mm[middle]) - 6.0) < 0.3
    assert np.all(np.isnan(s.area_mm2[~s.closed]))


def test_sections_at_a_junction_are_open_not_wrong():
    """Where the plane runs into the bifurcation, rays run on into the other daughter: such
    sections are reported open (NaN), never as a lumen twice the size."""
    tree = y_bifurcation(make_grid((50, 40, 60), (0.5, 0.5, 0.5), OBLIQUE))
    graph = centerline_graph(tree.mask)
    sections = branch_sections(lumen_field(tree.mask), graph)
    closed = np.concatenate([s.closed for s in sections])
    assert 0.5 < closed.mean() < 1.0
    widest = max(t.radii_mm.max() for t in tree.branches)
    for s in sections:
        assert np.all(np.isnan(s.max_diameter_mm[~s.closed]) & np.isnan(s.area_mm2[~s.closed]))
        # a closed section at the junction may hold both daughters' mouths (the lumen there is
        # that wide), but never more than the two together
        radius = s.equivalent_diameter_mm[s.closed] / 2
        assert np.all(radius < np.sqrt(2) * widest)
        # away from the junction and the ends the sections are the tube's own
        away = (s.arc_mm > 2.5 * widest) & (s.arc_mm < s.arc_mm[-1] - 2.5 * widest)
        if away.any():
            assert s.closed[away].all()
            truth = np.array([t.radii_mm.mean() for t in tree.branches])
            assert np.min(np.abs(np.median(radius[away[s.closed]]) - truth)) < 0.2


def test_landmarks_are_measured_at_the_nearest_centerline_point():
    mask, frame = ellipse_tube((0.5, 0.5, 0.5), OBLIQUE, rotation(0, 30, 0), 5.0, 3.0, length=200.0,
                               extent=(40, 40, 50))
    graph = centerline_graph(mask)
    assert len(graph.branches) == 1
    field = lumen_field(mask)
    # inside the lumen, 2.5 mm off the axis; a second one 10 mm further along, on the axis
    landmarks = [CENTER + 2.0 * frame[:, 2] + 2.5 * frame[:, 0], CENTER + 12.0 * frame[:, 2]]
    first, second = measure_landmarks(field, graph, [tuple(p) for p in landmarks], mask)
    assert np.allclose(first.point_lps, landmarks[0])
    # an elliptical lumen's medial axis is a ribbon along its major axis: the centreline may sit
    # up to a millimetre or so off the middle, towards the landmark
    assert 1.5 < first.distance_mm <= 2.5 + 0.1 and second.distance_mm < 1.0
    assert np.linalg.norm(first.centerline_point_lps - (CENTER + 2.0 * frame[:, 2])) < 1.0
    assert abs(abs(second.arc_mm - first.arc_mm) - 10.0) < 0.5
    branch, arc, point = nearest_centerline_point(graph, landmarks[0])
    assert branch == first.branch == graph.branches[0].id and arc == first.arc_mm
    assert np.allclose(point, first.centerline_point_lps)
    for found in (first, second):
        assert found.closed
        assert abs(found.max_diameter_mm - 10.0) < 0.3 and abs(found.min_diameter_mm - 6.0) < 0.3
        assert abs(found.area_mm2 / (np.pi * 15.0) - 1) < 0.02
    assert measure_landmarks(field, graph, [], mask) == ()


def test_a_landmark_off_the_vessels_with_centerlines_is_refused_naming_it():
    """A landmark is placed as a source or a target is: off the image, off the segment, on a piece
    without a centerline or outside the lumen of the nearest one, it is refused (it used to take
    the diameters of whatever centerline was nearest, another vessel's among them)."""
    from segforge.vessel.endpoints import EndpointParameters
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline

    grid = make_grid((30, 60, 60), (0.6, 0.6, 0.6), OBLIQUE, center_lps=CENTER)
    k, j, i = np.indices(grid.array.shape)
    local = (kji_to_lps(grid, np.column_stack([k.ravel(), j.ravel(), i.ravel()])) - CENTER) @ OBLIQUE
    left = np.hypot(local[:, 0] + 8.0, local[:, 1]) <= 3.0
    right = np.hypot(local[:, 0] - 8.0, local[:, 1]) <= 3.0
    mask = grid.with_array((left | right).reshape(grid.array.shape).astype(np.uint8))

    def axis(x: float, z: float) -> tuple:
        return tuple(CENTER + OBLIQUE @ np.array([x, 0.0, z]))

    def run(*landmarks):
        parameters = VesselPipelineParameters(
            endpoints=EndpointParameters(axis(-8, -14), (axis(-8, 14),)),
            sections=SectionParameters(landmarks_lps=tuple(landmarks)),
            outputs=VesselOutputs(centerlines=True, stenoses=False, surface=False))
        return run_vessel_pipeline(None, parameters, segment=mask)

    (found,) = run(axis(-8, 2)).landmarks
    assert found.distance_mm < 0.5 and abs(found.max_diameter_mm - 6.0) < 0.4
    for point, message in ((axis(8, 2), r"Landmark 1 at LPS .* lies on a piece of the segment without a centerline"),
                           (tuple(np.asarray(CENTER) + 500.0), r"Landmark 1 at LPS .* lies outside the image"),
                           (axis(0, 2), r"Landmark 1 at LPS .* is not on the segment")):
        with pytest.raises(InputError, match=message):
            run(point)
    with pytest.raises(InputError, match=r"Landmark 2 at LPS .* lies 1\d.\d mm from the nearest centerline"):
        run(axis(-8, 2), axis(-8, 30))  # on the segment beyond the target: the line ends 16 mm before it


def test_the_grey_image_puts_the_edge_back_where_a_too_wide_segment_missed_it():
    """A segment drawn one voxel too wide (dilated) reads too large; given the image, the edge
    goes to the image's half maximum and the diameter to the truth."""
    from scipy import ndimage

    spacing = (0.6, 0.6, 0.6)
    grid = make_grid((36, 36, 40), spacing, OBLIQUE, center_lps=CENTER)
    k, j, i = np.indices(grid.array.shape)
    lps = kji_to_lps(grid, np.column_stack([k.ravel(), j.ravel(), i.ravel()]))
    radial = np.linalg.norm(((lps - CENTER) @ OBLIQUE)[:, :2], axis=1).reshape(grid.array.shape)
    # partial volume: the lumen fraction of each voxel, a linear ramp one voxel wide around r = 4 mm
    fraction = np.clip((4.0 - radial) / 0.6 + 0.5, 0, 1)
    noise = np.random.default_rng(3).normal(0, 10, grid.array.shape)
    image = grid.with_array((100 + 400 * fraction + noise).astype(np.int16))
    segment = grid.with_array(ndimage.binary_dilation(fraction >= 0.5).astype(np.uint8))
    points = CENTER + np.linspace(-6, 6, 9)[:, None] * OBLIQUE[:, 2]
    tangent = np.tile(OBLIQUE[:, 2], (len(points), 1))
    too_wide = measure_sections(lumen_field(segment), points, tangent)
    sharpened = measure_sections(lumen_field(segment, image), points, tangent)
    assert np.median(too_wide.equivalent_diameter_mm) > 8.0 + 0.6  # the dilation's voxel shows
    assert abs(np.median(sharpened.equivalent_diameter_mm) - 8.0) < 0.25


def test_bad_parameters_and_grids_are_refused():
    mask, _ = ellipse_tube((0.5, 0.5, 0.5), None, rotation(0, 0, 0), 3.0, 3.0, extent=(20, 20, 30), length=20)
    graph = centerline_graph(mask)
    field = lumen_field(mask)
    for step in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="step"):
            branch_sections(field, graph, SectionParameters(step_mm=step))
    with pytest.raises(InputError, match="landmark"):
        measure_landmarks(field, graph, [(1.0, float("nan"), 2.0)], mask)
    other = make_grid((20, 20, 30), (0.6, 0.6, 0.6))
    with pytest.raises(InputError, match="different grids"):
        lumen_field(mask, other.with_array(other.array.astype(np.int16)))
    with pytest.raises(InputError, match="empty"):
        lumen_field(mask.with_array(np.zeros_like(mask.array)))
