"""SegVessel's Fine-tune section: the form's rules, and the Logic sending (volume, vessel segment)
pairs of a real MRML scene to a real worker, which trains, installs, and the panels' model list
shows the model at once; a fine-tune from that model; the scene untouched."""
from __future__ import annotations

import numpy as np
import pytest

from segforge.errors import InputError
from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
from segforge.mrml.volumes import volume_node_from_image
from segforge.training.synthetic_data import randomised_case
from segforge.worker import WorkerClient
from SegVesselLib import SegVesselLogic
from SegVesselLib.fine_tune import FROM_SCRATCH, FineTuneForm, ScenePair, base_model_choices
from SegVesselLib.form import model_choices

FAST = FineTuneForm(model_id="scene-vessels", steps=3, patch_size=16, batch_size=1)


@pytest.fixture(scope="module")
def worker(home):
    """A worker spawned inside this module's data folder (conftest's ``home``)."""
    with WorkerClient() as client:
        yield client


def scene_pair(seed: int, name: str, segment_grid_crop: bool = False) -> ScenePair:
    """A synthetic oblique volume as a volume node, and its tree as a "Vessels" segment (drawn on
    a cropped grid when asked: the Logic must bring it onto the volume's grid)."""
    case = randomised_case(seed, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2,
                           oblique_probability=1.0)
    volume = volume_node_from_image(case.image, name)
    label = case.label
    if segment_grid_crop:
        label = label.crop(tuple(slice(1, n - 1) for n in label.array.shape))
        assert label.array.sum() > 0 and not label.same_grid(case.image)
    segmentation = new_segmentation_node(label, f"{name} segmentation")
    (segment_id,) = write_label_segments(segmentation, label, [SegmentSpec(1, "Vessels", (0.9, 0.1, 0.1))])
    return ScenePair(volume, segmentation, segment_id)


def test_the_form_turns_fields_into_a_job_or_says_what_to_change():
    assert "needs a name" in FineTuneForm().problem(2)
    assert "Too little data" in FAST.problem(1)
    assert "takes one pair" in FineTuneForm(model_id="x", split=True).problem(2)
    assert FineTuneForm(model_id="x", split=True).problem(1) is None
    assert "patch size" in FineTuneForm(model_id="x", patch_size=20).problem(2)
    assert "minimum validation Dice" in FineTuneForm(model_id="x", min_dice=1.5).problem(2)
    assert "not a number" in str(pytest.raises(InputError, FineTuneForm.from_values, {"steps": "many"}).value)
    params = FineTuneForm.from_values({"model_id": "mine", "steps": "40", "patch_size": "32"}).params(2)
    assert params["model_id"] == "mine" and params["base_model"] is None and not params["split"]
    assert params["config"]["steps"] == 40 and tuple(params["config"]["patch_size"]) == (32, 32, 32)
    assert not params["resume"] and FineTuneForm.from_values({"model_id": "mine", "resume": "true"}).params(2)["resume"]


def test_the_logic_trains_on_scene_pairs_and_the_model_is_listed_at_once(mrml_scene, worker, home):
    pairs = [scene_pair(0, "CTA one"), scene_pair(1, "CTA two", segment_grid_crop=True), scene_pair(2, "CTA three")]
    nodes_before = mrml_scene.GetNumberOfNodes()
    logic = SegVesselLogic(worker)
    fractions = []
    result = logic.start_fine_tune(pairs, FAST).wait(lambda f, m: fractions.append(f))
    assert result.model_id == "scene-vessels" and result.steps == 3 and 0 <= result.validation_dice <= 1
    assert fractions == sorted(fractions) and fractions[-1] >= 0.9 and "in the model list" in result.summary
    assert "scene-vessels" in [value for value, _ in model_choices()]
    assert "scene-vessels" in [value for value, _ in base_model_choices()]
    assert mrml_scene.GetNumberOfNodes() == nodes_before  # training writes nothing into the scene
    tuned = logic.start_fine_tune(pairs[:1], FineTuneForm(model_id="scene-vessels-tuned", base_model="scene-vessels",
                                                          steps=2, patch_size=16, batch_size=1, split=True)).wait()
    assert tuned.model_id == "scene-vessels-tuned"
    import json

    record = json.loads((home / "training" / "scene-vessels-tuned" / "scene-vessels-tuned" / "training.json")
                        .read_text())["record"]
    assert "scene-vessels" in record["initial_weights"] and "sha256" in record["initial_weights"]


def test_a_segment_outside_its_volume_is_refused_before_anything_is_sent(mrml_scene, worker, home):
    good = scene_pair(0, "CTA")
    other = scene_pair(3, "Elsewhere")
    far = randomised_case(4, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
    moved = far.label.__class__(far.label.array, far.label.spacing, tuple(np.asarray(far.label.origin_lps) + 500.0),
                                far.label.direction_lps)
    away = new_segmentation_node(moved, "Far away")
    (segment_id,) = write_label_segments(away, moved, [SegmentSpec(1, "Vessels")])
    with pytest.raises(InputError, match="is empty"):
        SegVesselLogic(worker).start_fine_tune([good, ScenePair(other.volume, away, segment_id)],
                                               FineTuneForm(model_id="never", steps=2, patch_size=16))
    assert "never" not in [value for value, _ in model_choices()]
    assert base_model_choices()[0][0] == FROM_SCRATCH
