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
    assert set(result.seconds) == {"mask", "centerlines", "stenoses", "surface"}
    assert len(result.graph.branches) == len(truth.branches)
    assert result.surface.GetNumberOfCells() > 0 and result.stenoses.findings == ()


@pytest.mark.parametrize("stage_word", ["Vesselness", "Vessel mask", "Thinning", "cross-sections", "Surface"])
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
