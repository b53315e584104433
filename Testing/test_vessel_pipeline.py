"""The whole vessel workflow in-process: every stage can be cancelled, bad input is refused."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBLIQUE
from segforge.errors import Cancelled, InputError
from segforge.image import Image
from segforge.vessel.pipeline import (SEGMENT_MODEL, VesselOutputs, VesselPipelineParameters, preset,
                                      run_vessel_pipeline)
from segforge.vessel.parameters import VesselMaskParameters
from segforge.vessel.synthetic import make_grid, y_bifurcation


def y_volume():
    tree = y_bifurcation(make_grid((40, 40, 60), (0.8, 0.8, 1.2), OBLIQUE, center_lps=(5, -3, 20)),
                         center_lps=(5, -3, 20))
    noise = np.random.default_rng(0).normal(0, 20, tree.mask.array.shape)
    return tree.mask.with_array((tree.mask.array.astype(np.float32) * 500 + 100 + noise).astype(np.int16)), tree


PARAMETERS = VesselPipelineParameters(mask=preset("mra"))


def test_every_stage_runs_and_is_timed():
    image, truth = y_volume()
    result = run_vessel_pipeline(image, PARAMETERS)
    assert set(result.seconds) == {"mask", "topology", "centerlines", "radii", "sections", "straighten", "stenoses",
                                   "surface"}
    assert len(result.graph.branches) == len(truth.branches)
    assert result.surface.GetNumberOfCells() > 0 and result.stenoses.findings == ()


@pytest.mark.parametrize("stage_word", ["Vesselness", "Vessel mask", "Closing small holes", "Thinning", "sub-voxel",
                                        "sections along", "Straightening", "cross-sections", "Surface"])
def test_cancel_in_the_middle_of_each_stage(stage_word):
    image, _ = y_volume()
    seen = []

    def cancel_at_stage(fraction, message):
        seen.append(message)
        if stage_word in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        run_vessel_pipeline(image, PARAMETERS, cancel_at_stage)
    assert any(stage_word in m for m in seen)


def test_a_label_map_as_input_is_refused():
    _, truth = y_volume()
    with pytest.raises(InputError, match="label map"):
        run_vessel_pipeline(truth.mask, PARAMETERS)


def test_a_tiny_volume_is_described_by_all_its_values():
    """A small volume is not sampled: its one bright voxel is named, not left out of the message."""
    array = np.full((3, 3, 3), -1000, np.int16)
    array[1, 1, 1] = 400
    with pytest.raises(InputError) as caught:
        run_vessel_pipeline(Image(array, spacing=(1.0, 1.0, 1.0)), PARAMETERS)
    assert "2 distinct values (-1000, 400)" in caught.value.why


def test_a_vessel_cut_by_the_image_border_runs_to_the_border_with_its_radius():
    """The field of view cuts the vessel at both ends: the centerline reaches both faces and
    the radius stays the vessel's own up to them (background beyond the image does not count)."""
    from segforge.vessel.radius import lps_to_kji
    from segforge.vessel.synthetic import BranchSpec, build_tree

    grid = make_grid((30, 30, 36), (0.7, 0.7, 1.1), OBLIQUE, center_lps=(2, 1, -4))
    axis = OBLIQUE @ np.array([0.0, 0.0, 1.0])  # the grid's own k axis, in LPS
    start, end = (np.array([2.0, 1.0, -4.0]) + s * 40 * axis for s in (-1, 1))
    tree = build_tree([BranchSpec(tuple(start), tuple((start + end) / 2), tuple(end), 3.0, 3.0)], grid)
    noise = np.random.default_rng(1).normal(0, 15, grid.array.shape)
    image = grid.with_array((tree.mask.array * 500.0 + 100 + noise).astype(np.int16))
    result = run_vessel_pipeline(image, PARAMETERS)
    assert len(result.graph.branches) == 1
    branch = result.graph.branches[0]
    ends_k = lps_to_kji(image, branch.points_lps[[0, -1]])[:, 0]
    assert sorted(np.round(ends_k).astype(int).tolist()) == [0, image.array.shape[0] - 1]
    assert abs(branch.length_mm - (image.array.shape[0] - 1) * 1.1) < 1.5
    assert abs(float(np.median(branch.radii_mm)) - 3.0) < 0.5
    assert result.stenoses.findings == ()


def test_pure_noise_through_the_whole_workflow_says_no_vessels_were_found():
    noise = np.random.default_rng(2).normal(100, 20, (40, 48, 48)).astype(np.float32)
    from segforge.image import Image

    with pytest.raises(InputError, match="No vessels were found"):
        run_vessel_pipeline(Image(noise, (0.8, 0.8, 1.0), direction_lps=OBLIQUE), PARAMETERS)


def test_a_one_slice_volume_is_refused_with_what_to_do():
    from segforge.image import Image

    with pytest.raises(InputError, match="(?i)slice|3D|thick"):
        run_vessel_pipeline(Image(np.zeros((1, 64, 64), np.float32), (0.8, 0.8, 1.0)), PARAMETERS)


# --- a segment as input ------------------------------------------------------------------------

SEGMENT_ONLY = VesselPipelineParameters(outputs=VesselOutputs(surface=False))


def test_a_segment_alone_is_the_mask_and_the_mask_stage_is_skipped():
    _, truth = y_volume()
    labels = truth.mask.with_array((truth.mask.array * 7).astype(np.int16))  # any nonzero label is vessel
    seen = []
    result = run_vessel_pipeline(None, SEGMENT_ONLY, lambda f, m: seen.append(m), segment=labels)
    assert "mask" not in result.seconds and {"topology", "centerlines", "stenoses"} <= set(result.seconds)
    assert not any("Vesselness" in m or "Vessel mask" in m for m in seen)
    assert result.mask_model == SEGMENT_MODEL and result.mask.same_grid(truth.mask)
    assert np.array_equal(result.mask.array != 0, truth.mask.array != 0)
    assert len(result.graph.branches) == len(truth.branches) and result.stenoses.findings == ()
    assert result.topology is not None and result.topology.voxels_added == 0


def test_a_segment_with_its_image_on_the_same_grid():
    image, truth = y_volume()
    result = run_vessel_pipeline(image, SEGMENT_ONLY, segment=truth.mask)
    assert "mask" not in result.seconds and len(result.graph.branches) == len(truth.branches)
    # a float32 header rounding of the origin (far below a hundredth of a voxel) is the same grid
    shifted = Image(truth.mask.array, truth.mask.spacing, tuple(np.asarray(truth.mask.origin_lps) + 2e-4),
                    truth.mask.direction_lps)
    assert len(run_vessel_pipeline(image, SEGMENT_ONLY, segment=shifted).graph.branches) == len(truth.branches)


def test_a_segment_on_another_grid_than_its_image_is_refused():
    image, truth = y_volume()
    moved = Image(truth.mask.array, truth.mask.spacing, tuple(np.asarray(truth.mask.origin_lps) + 0.4),
                  truth.mask.direction_lps)
    with pytest.raises(InputError, match="not on the same grid") as error:
        run_vessel_pipeline(image, SEGMENT_ONLY, segment=moved)
    assert "resample" in error.value.todo
    cropped = Image(truth.mask.array[:-1], truth.mask.spacing, truth.mask.origin_lps, truth.mask.direction_lps)
    with pytest.raises(InputError, match="not on the same grid"):
        run_vessel_pipeline(image, SEGMENT_ONLY, segment=cropped)


def test_empty_flat_or_missing_segments_are_refused():
    _, truth = y_volume()
    with pytest.raises(InputError, match="segment is empty"):
        run_vessel_pipeline(None, SEGMENT_ONLY, segment=truth.mask.with_array(np.zeros_like(truth.mask.array)))
    with pytest.raises(InputError, match="2D"):
        run_vessel_pipeline(None, SEGMENT_ONLY, segment=Image(np.ones((1, 20, 20), np.uint8)))
    with pytest.raises(InputError, match="no input"):
        run_vessel_pipeline(None, SEGMENT_ONLY)
    with pytest.raises(InputError, match="not an image"):
        run_vessel_pipeline(None, SEGMENT_ONLY, segment=truth.mask.array)


def test_the_worker_task_takes_a_segment_and_endpoints_as_json():
    from segforge.vessel.tree import from_wire
    from segforge.worker.jobs import Job
    from segforge.worker.tasks import vessel_tree_task

    _, truth = y_volume()
    trunk_end = truth.branches[0].points_lps[0]
    # (the daughters run out of this image: targets 70 % along them)
    left, right = (b.points_lps[int(0.7 * len(b.points_lps))] for b in truth.branches[1:])
    params = {"endpoints": {"source_lps": trunk_end.tolist(), "targets_lps": [left.tolist(), right.tolist()]},
              "topology": {"close_holes_mm": 3.0}, "outputs": {"surface": False}}
    inputs = {"segment": truth.mask}
    arrays, meta = vessel_tree_task(inputs, params, Job("vessel.tree", vessel_tree_task, inputs, params))
    tree = from_wire(arrays, meta)
    assert len(tree.branches) == 3 and tree.summary["mask_model"] == SEGMENT_MODEL
    assert tree.summary["topology"]["close_holes_mm"] == 3.0
    with pytest.raises(InputError, match="image called 'image'"):
        vessel_tree_task({}, {}, Job("vessel.tree", vessel_tree_task, {}, {}))


# --- the graph on the cleaned mask, every measure on the segment as given ----------------------


def _holey_tube(spacing=(0.5, 0.55, 0.6), direction=OBLIQUE):
    """A straight tube (radius 5 mm, 50 mm long, along the object's z) on an oblique,
    anisotropic grid, with a tunnel (a hole of radius 0.9 mm through it along x, 2.6 mm off
    the axis, at z = -8) and a cavity (a bubble of radius 1.2 mm on the axis at z = +8).
    Returns the segment, the object -> LPS rotation and centre, and the exact inscribed
    radius of the segment at any object point."""
    grid = make_grid((60, 60, 60), spacing, direction, center_lps=(4.0, -6.0, 10.0))
    centre, turn = np.array([4.0, -6.0, 10.0]), np.asarray(direction, float)
    k, j, i = np.indices(grid.array.shape)
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    lps = ijk @ grid.ijk_to_lps()[:3, :3].T + grid.ijk_to_lps()[:3, 3]
    x, y, z = ((lps - centre) @ turn).T  # object coordinates

    def inscribed(x, y, z):
        tube = np.minimum(5.0 - np.hypot(x, y), 25.0 - np.abs(z))
        tunnel = np.hypot(y - 2.6, z + 8.0) - 0.9
        cavity = np.sqrt(x ** 2 + y ** 2 + (z - 8.0) ** 2) - 1.2
        return np.minimum.reduce([tube, tunnel, cavity])

    segment = grid.with_array((inscribed(x, y, z) > 0).reshape(grid.array.shape).astype(np.uint8))
    return segment, turn, centre, inscribed


def test_the_graph_follows_the_cleaned_mask_and_radii_are_the_segments_own():
    """The clean-up closes the tunnel and the cavity, so the centerline is one straight line
    down the axis; but the radius there is the segment's as given: near the tunnel the
    radius of the largest ball inside the segment: near the tunnel the distance to the
    tunnel's wall (1.7 mm at its middle), not the tube's 5 mm; inside the cavity 0 (no
    lumen), where its cross-section is open. The result's mask is the segment
    itself, the cleaned one only ``traced_mask``. (Measured on the cleaned mask, the radius
    read 5 mm at the tunnel and the cavity.)"""
    segment, turn, centre, inscribed = _holey_tube()
    result = run_vessel_pipeline(None, VesselPipelineParameters(outputs=VesselOutputs(surface=False)),
                                 segment=segment)
    assert result.topology.tunnels_closed >= 1 and result.topology.cavities_filled >= 1
    assert np.array_equal(result.mask.array, segment.array)
    assert int(result.traced_mask.array.sum()) == int(segment.array.sum()) + result.topology.voxels_added > \
        int(segment.array.sum())
    assert len(result.graph.branches) == 1
    branch = result.graph.branches[0]
    x, y, z = ((branch.points_lps - centre) @ turn).T
    assert np.hypot(x, y).max() < 0.75  # on the axis (within a voxel): the holes did not bend the line
    truth = np.maximum(inscribed(x, y, z), 0.0)  # the largest ball inside the segment
    ours = branch.radii_mm
    body = np.abs(z) < 19.0  # off the end caps (where the line's tip leaves the axis)
    # within a voxel (0.6 mm) everywhere: a wall closer than the smooth outline by less than a
    # voxel is not told from the voxels' staircase
    assert np.abs(ours[body] - truth[body]).max() < 0.65
    assert np.median(np.abs(ours[body] - truth[body])) < 0.1
    assert np.abs(ours[body & (truth > 4.9)] - 5.0).max() < 0.1
    assert ours[np.argmin(np.abs(z + 8.0))] < 2.4  # the tunnel's wall 1.7-2 mm away, not the tube's 5 mm
    in_cavity = body & (truth == 0.0)
    assert in_cavity.any() and np.all(ours[in_cavity] == 0.0)
    # the cross-sections: at the tunnel the lumen around the axis ends at the tunnel's wall
    sections = result.sections[0]
    sx, sy, sz = ((sections.points_lps - centre) @ turn).T
    at = np.argmin(np.abs(sz + 8.0))
    cut = 1.7  # the region of the disc of radius 5 below y = 1.7
    segment_area = 25.0 * np.arccos(-cut / 5.0) + cut * np.sqrt(25.0 - cut ** 2)
    assert sections.closed[at] and abs(sections.area_mm2[at] - segment_area) < 0.08 * segment_area
    assert not sections.closed[np.abs(sz - 8.0) < 0.8].any()
    assert np.all(sections.closed[(np.abs(sz + 8.0) > 4.0) & (np.abs(sz - 8.0) > 4.0) & (np.abs(sz) < 17.0)])


def test_findings_of_both_kinds_reach_the_rows_and_the_summary():
    """A 60 % stenosis and a 2x dilatation on a segment, through the whole workflow (sub-voxel
    radii included) to the worker's rows: ``kind`` and ``ratio`` beside the older keys."""
    from segforge.vessel.outputs import FINDING_COLUMNS
    from segforge.vessel.synthetic import stenosed_vessel
    from segforge.vessel.tree import to_wire

    center = (5.0, -3.0, 20.0)
    grid = make_grid((130, 40, 40), (0.6, 0.6, 0.9), OBLIQUE, center_lps=center)
    tree = stenosed_vessel(grid, (0.6, -1.0), radius_mm=3.0, length_mm=110, center_lps=center)
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False))
    result = run_vessel_pipeline(None, parameters, segment=tree.mask)
    stenosis, dilatation = result.stenoses.stenoses, result.stenoses.dilatations
    assert len(stenosis) == 1 and len(dilatation) == 1
    assert abs(stenosis[0].stenosis_percent - 60) <= 5 and abs(dilatation[0].ratio - 2.0) <= 0.1
    _, meta = to_wire(result)
    rows = meta["finding_rows"]
    assert [row["kind"] for row in rows] == ["stenosis", "dilatation"]
    assert all(set(FINDING_COLUMNS) <= set(row) for row in rows)
    # the grid cuts the vessel to about 61 mm, so each finding has healthy vessel on one side only:
    # graded against the trend scaled to that flank (what the SR names as its reference method)
    assert [row["reference_method"] for row in rows] == ["curve-fitted", "curve-fitted"]
    assert rows[0]["stenosis_percent"] == round(stenosis[0].stenosis_percent, 2) and rows[1]["stenosis_percent"] == 0
    assert rows[1]["ratio"] == round(dilatation[0].ratio, 3) and rows[1]["maximal_diameter_mm"] > 10
    assert meta["summary"]["stenoses"] == 1 and meta["summary"]["dilatations"] == 1
    assert 20 < meta["summary"]["graded_percent"] < 100  # not the caps at its two ends


def test_a_box_limits_a_segment_as_it_limits_an_image():
    """The region of interest was ignored with a segment (the whole segment was analysed while the
    panels showed the box): now the segment is cut to it, on an oblique grid, and a box beside
    the segment is refused."""
    _, truth = y_volume()
    mask = truth.mask
    lps = np.array([mask.ijk_to_lps() @ [i, j, k, 1.0] for k, j, i in np.argwhere(mask.array != 0)])[:, :3]
    low, high = lps.min(axis=0), lps.max(axis=0)
    middle = 0.5 * (low + high)
    box = (*low, middle[0], high[1], high[2])  # the half with the lower L coordinates
    mask_parameters = VesselMaskParameters(roi_lps=box)
    result = run_vessel_pipeline(None, VesselPipelineParameters(mask=mask_parameters, outputs=SEGMENT_ONLY.outputs),
                                 segment=mask)
    kept = np.array([mask.ijk_to_lps() @ [i, j, k, 1.0] for k, j, i in np.argwhere(result.mask.array != 0)])[:, :3]
    assert 0 < len(kept) < len(lps) and kept[:, 0].max() <= middle[0] + 1e-6
    points = np.concatenate([b.points_lps for b in result.graph.branches])
    assert points[:, 0].max() <= middle[0] + 1.0  # within a voxel of the box's face
    beside = (*(high + 5), *(high + 10))
    with pytest.raises(InputError, match="holds none of the segment"):
        run_vessel_pipeline(None, VesselPipelineParameters(mask=VesselMaskParameters(roi_lps=beside),
                                                           outputs=SEGMENT_ONLY.outputs), segment=mask)


@pytest.mark.parametrize("points, named", [
    ({"endpoints": {"source_lps": (1.0, 2.0, 3.0)}}, "a source"),
    ({"endpoints": {"source_lps": (1.0, 2.0, 3.0), "targets_lps": ((4.0, 5.0, 6.0),)}}, "a source, targets"),
    ({"sections": {"landmarks_lps": ((1.0, 2.0, 3.0),)}}, "landmarks"),
])
def test_points_with_the_centerlines_off_are_refused_by_the_engine(points, named):
    """From the console (``VesselOutputs(centerlines=False)`` with a source, targets or landmarks)
    the points were accepted and silently ignored; only the module form refused them. The rule
    is now the engine's, so every front end gets it."""
    from segforge.vessel.cross_sections import SectionParameters
    from segforge.vessel.endpoints import EndpointParameters

    given = {"endpoints": EndpointParameters(**points.get("endpoints", {})),
             "sections": SectionParameters(**points.get("sections", {}))}
    with pytest.raises(InputError) as caught:
        VesselPipelineParameters(outputs=VesselOutputs(centerlines=False, stenoses=False), **given)
    assert caught.value.what == f"The points ({named}) need the centerlines"
    assert "turn the centerlines on" in caught.value.todo
    VesselPipelineParameters(outputs=VesselOutputs(), **given)  # with the centerlines on they are taken
