"""The whole vessel workflow in-process: every stage can be cancelled, bad input is refused."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBLIQUE
from segforge.errors import Cancelled, InputError
from segforge.image import Image
from segforge.vessel.pipeline import (SEGMENT_MODEL, VesselOutputs, VesselPipelineParameters, preset,
                                      run_vessel_pipeline)
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
