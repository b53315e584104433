"""The whole vessel workflow in-process: every stage can be cancelled, bad input is refused."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBLIQUE
from segforge.errors import Cancelled, InputError
from segforge.vessel.pipeline import VesselPipelineParameters, preset, run_vessel_pipeline
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
    assert set(result.seconds) == {"mask", "centerlines", "radii", "sections", "straighten", "stenoses", "surface"}
    assert len(result.graph.branches) == len(truth.branches)
    assert result.surface.GetNumberOfCells() > 0 and result.stenoses.findings == ()


@pytest.mark.parametrize("stage_word", ["Vesselness", "Vessel mask", "Thinning", "sub-voxel", "sections along",
                                        "Straightening", "cross-sections", "Surface"])
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
