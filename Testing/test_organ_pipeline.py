"""The organ workflow engine: model choice, structure subsets, composite parts, orientation,
statistics, devices and bad input, on real nnU-Net folders built by the tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import OBLIQUE, rotation
from http_fixture import write_catalog
from segforge.catalog import CATALOG_ENV, load_catalog
from segforge.errors import Cancelled, InputError, ModelError
from segforge.image import Image
from segforge.organ.models import organ_models, resolve_organ_model
from segforge.organ.parameters import OrganParameters
from segforge.organ.pipeline import segment_organs
from segforge.organ.statistics import structure_statistics
from segforge.organ.tissues import ct_tissues
from segforge.orientation import from_ras_array, reorient_to_ras
from test_organ_nnunet import ct_like, write_model
from test_organ_tissues import chest_phantom

torch = pytest.importorskip("torch")

MODEL_PATH = "Dataset999_Tiny/nnUNetTrainer__nnUNetPlans__3d_fullres"
SECOND_PATH = "Dataset998_Other/nnUNetTrainer__nnUNetPlans__3d_fullres"
TINY_LABELS = {"1": "liver", "2": "spleen", "3": "kidney"}


def nnunet_record(model_id: str, path: str, labels: dict, **overrides) -> dict:
    record = {"id": model_id, "workflow": "organ", "framework": "nnunetv2",
              "url": f"https://example.invalid/{model_id}.zip", "size_bytes": None, "sha256": None,
              "licence": "CC-BY-4.0", "labels": labels,
              "input": {"modality": ["CT"], "spacing_mm": [1.5, 1.5, 1.5], "orientation": "RAS"},
              "min_gpu_memory_gb": 2, "description": "A test-built nnU-Net model.",
              "nnunet": {"path": path, "folds": [0, 1], "configuration": "3d_fullres"}}
    record.update(overrides)
    return record


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A TotalSegmentator-style weights folder holding two test-built nnU-Net models."""
    root = tmp_path_factory.mktemp("totalseg_weights")
    write_model(root / MODEL_PATH)
    second = write_model(root / SECOND_PATH)
    dataset = json.loads((second / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "aorta": 1, "heart": 2, "kidney": 3}
    (second / "dataset.json").write_text(json.dumps(dataset))
    return root


@pytest.fixture
def catalog(tmp_path, weights, monkeypatch):
    """The shipped catalog plus test models found through TOTALSEG_WEIGHTS_PATH."""
    records = [nnunet_record("test-organs", MODEL_PATH, TINY_LABELS, fast_variant="test-organs-fast"),
               nnunet_record("test-organs-fast", MODEL_PATH, TINY_LABELS),
               nnunet_record("test-part-b", SECOND_PATH, {"1": "aorta", "2": "heart", "3": "kidney_b"}),
               {**nnunet_record("test-composite", MODEL_PATH, {"1": "liver", "2": "spleen", "3": "kidney",
                                                                "4": "aorta", "5": "heart", "6": "kidney_b"}),
                "framework": "composite", "url": None, "sha256": None, "size_bytes": 0,
                "parts": ["test-organs", "test-part-b"]}]
    del records[3]["nnunet"]
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(weights))
    monkeypatch.setenv("SEGFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CATALOG_ENV, str(write_catalog(tmp_path / "catalog.json", records)))
    return load_catalog()


def ct_image(direction=np.eye(3), shape_zyx=(40, 36, 44)) -> Image:
    return Image(ct_like(shape_zyx, seed=3), (1.2, 1.4, 2.0), (-20.0, 15.0, 40.0), direction)


# --- ct-tissues, the default -------------------------------------------------------------

def test_default_is_ct_tissues_and_equals_the_direct_call():
    image, _ = chest_phantom(spacing=(4.0, 4.0, 5.0))
    result = segment_organs(image)
    direct = ct_tissues(image)
    assert result.model == "ct-tissues" and dict(result.names) == dict(direct.names)
    np.testing.assert_array_equal(result.labels.array, direct.labels.array)
    assert result.labels.same_grid(image)


def test_subset_only_names_what_was_asked():
    image, _ = chest_phantom(spacing=(4.0, 4.0, 5.0))
    result = segment_organs(image, OrganParameters(structures=("lungs",)))
    assert dict(result.names) == {2: "lungs"}
    assert set(np.unique(result.labels.array)) == {0, 2}


def test_unknown_structure_names_the_close_ones():
    with pytest.raises(InputError) as caught:
        segment_organs(ct_image(), OrganParameters(structures=("lung",)))
    assert "lungs" in caught.value.why


def test_ct_tissues_refuses_mr_and_every_model_refuses_nan_and_constant():
    mr = Image(np.random.default_rng(0).uniform(0, 800, (20, 20, 20)).astype(np.float32))
    with pytest.raises(InputError, match="does not look like a CT"):
        segment_organs(mr)
    nan = mr.array.copy()
    nan[3, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        segment_organs(mr.with_array(nan))
    with pytest.raises(InputError, match="constant"):
        segment_organs(mr.with_array(np.zeros_like(nan)))


def test_four_d_and_two_d_images_are_refused(tmp_path):
    import SimpleITK as sitk

    from segforge.image_io import read_volume

    with pytest.raises(InputError):
        segment_organs(Image(np.zeros((1, 30, 30), np.int16)))
    with pytest.raises(InputError):
        Image(np.zeros((2, 8, 30, 30), np.int16))
    four_d = tmp_path / "cine.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 20, 20), np.int16)), str(four_d))
    with pytest.raises(InputError):
        read_volume(four_d)


# --- statistics ------------------------------------------------------------------------

def test_statistics_match_numpy_and_absent_structures_are_empty():
    rng = np.random.default_rng(1)
    image = Image(rng.normal(40, 20, (30, 20, 25)).astype(np.float32), (0.5, 0.8, 2.5))
    labels = rng.integers(0, 3, image.array.shape).astype(np.uint8)
    rows = {s.structure: s for s in structure_statistics(image, labels, {1: "a", 2: "b", 7: "absent"})}
    voxel_ml = 0.5 * 0.8 * 2.5 / 1000
    for name, value in (("a", 1), ("b", 2)):
        inside = image.array[labels == value].astype(np.float64)
        assert rows[name].voxels == inside.size
        assert rows[name].volume_ml == pytest.approx(inside.size * voxel_ml)
        assert rows[name].mean == pytest.approx(inside.mean(), abs=1e-9)
        assert rows[name].sd == pytest.approx(inside.std(), rel=1e-9)
    assert rows["absent"].voxels == 0 and np.isnan(rows["absent"].mean)


# --- nnU-Net models from the catalog -----------------------------------------------------

def test_catalog_nnunet_model_runs_in_the_orientation_it_was_trained_on(catalog, weights):
    from segforge.organ.nnunet import predict_labels

    image = ct_image(direction=rotation(90, 0, 90))  # a sagittal-like voxel order
    result = segment_organs(image, OrganParameters(model="test-organs", device="cpu"), catalog=catalog)
    oriented, axes = reorient_to_ras(image)
    expected = from_ras_array(predict_labels(oriented, weights / MODEL_PATH, (0, 1)).array, axes)
    np.testing.assert_array_equal(result.labels.array, expected)
    assert result.labels.same_grid(image) and dict(result.names) == {1: "liver", 2: "spleen", 3: "kidney"}
    assert result.device == "cpu" and any("unverified" in w for w in result.warnings)


@pytest.mark.parametrize("direction", [OBLIQUE, np.diag([1.0, -1.0, -1.0]), rotation(0, 90, 0)],
                         ids=["oblique", "flipped", "coronal"])
def test_the_same_anatomy_in_any_voxel_order_gets_the_same_labels(catalog, direction):
    """One patient stored with another voxel order: the labels land on the same anatomy."""
    image = ct_image(direction=direction, shape_zyx=(30, 40, 36))
    canonical, _ = reorient_to_ras(image)  # the same voxels at the same places (test_orientation)
    parameters = OrganParameters(model="test-organs", device="cpu")
    reference = segment_organs(canonical, parameters, catalog=catalog).labels.array
    labels = segment_organs(image, parameters, catalog=catalog).labels
    assert len(np.unique(reference)) == 4, "the test model should label all three structures"
    np.testing.assert_array_equal(reorient_to_ras(labels)[0].array, reference)


def test_fast_option_runs_the_fast_variant_and_says_when_there_is_none(catalog):
    entry, warning = resolve_organ_model("test-organs", fast=True, catalog=catalog)
    assert entry.id == "test-organs-fast" and warning is None
    entry, warning = resolve_organ_model("test-part-b", fast=True, catalog=catalog)
    assert entry.id == "test-part-b" and "no fast variant" in warning
    listed = {choice.id: choice for choice in organ_models(catalog)}
    # fast variants run through their full model's Fast option, parts through their composite
    assert not {"test-organs-fast", "test-organs", "test-part-b"} & set(listed)
    assert listed["test-composite"].installed and "unverified" in listed["test-composite"].warning
    assert listed["test-composite"].structures == ("liver", "spleen", "kidney", "aorta", "heart", "kidney_b")
    assert list(listed)[0] == "ct-tissues"


def test_composite_runs_only_the_parts_holding_the_structures(catalog):
    image = ct_image(shape_zyx=(24, 30, 28))
    parameters = OrganParameters(model="test-composite", structures=("heart", "aorta"), device="cpu")
    result = segment_organs(image, parameters, catalog=catalog)
    assert set(result.seconds) == {"test-part-b"}, "the part without heart or aorta must not run"
    part = segment_organs(image, OrganParameters(model="test-part-b", device="cpu"), catalog=catalog)
    expected = np.select([part.labels.array == 1, part.labels.array == 2], [4, 5], 0)
    np.testing.assert_array_equal(result.labels.array, expected)
    assert dict(result.names) == {4: "aorta", 5: "heart"}


def test_composite_merges_all_parts_later_parts_win(catalog):
    image = ct_image(shape_zyx=(24, 30, 28))
    cpu = OrganParameters(model="test-composite", device="cpu")
    merged = segment_organs(image, cpu, catalog=catalog).labels.array
    first = segment_organs(image, OrganParameters(model="test-organs", device="cpu"), catalog=catalog).labels.array
    second = segment_organs(image, OrganParameters(model="test-part-b", device="cpu"), catalog=catalog).labels.array
    expected = np.where(second > 0, second + 3, first)
    np.testing.assert_array_equal(merged, expected)


def test_smaller_than_one_patch_and_non_ct_warns(catalog):
    small = Image(np.random.default_rng(0).uniform(0, 500, (6, 9, 7)).astype(np.float32), (1.5, 1.5, 1.5))
    result = segment_organs(small, OrganParameters(model="test-organs", device="cpu"), catalog=catalog)
    assert result.labels.same_grid(small)
    assert any("does not look like a CT" in w for w in result.warnings)


def test_missing_weights_label_mismatch_and_corrupt_folder_are_model_errors(catalog, weights, tmp_path, monkeypatch):
    image = ct_image(shape_zyx=(20, 20, 20))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="not installed") as caught:
        segment_organs(image, OrganParameters(model="test-organs", device="cpu"), catalog=catalog)
    assert "segforge models download test-organs" in caught.value.todo

    copy = tmp_path / "copy"
    shutil.copytree(weights, copy)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(copy))
    dataset = copy / MODEL_PATH / "dataset.json"
    data = json.loads(dataset.read_text())
    data["labels"]["extra"] = 4
    dataset.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="label map"):
        segment_organs(image, OrganParameters(model="test-organs", device="cpu"), catalog=catalog)
    dataset.write_text("{ not json")
    with pytest.raises(ModelError):
        segment_organs(image, OrganParameters(model="test-organs", device="cpu"), catalog=catalog)
    (copy / MODEL_PATH / "dataset.json").write_text(json.dumps({**data, "labels": {"background": 0, **{
        n: int(v) for v, n in TINY_LABELS.items()}}}))
    (copy / MODEL_PATH / "fold_1" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        segment_organs(image, OrganParameters(model="test-organs", device="cpu"), catalog=catalog)


@pytest.mark.parametrize("stage", ["Loading", "Preparing", "tile", "Segmentation done"])
def test_cancel_at_every_stage(catalog, stage):
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if stage.lower() in message.lower():
            raise Cancelled("Cancelled", "the user asked", "")

    with pytest.raises(Cancelled):
        segment_organs(ct_image(shape_zyx=(30, 30, 30)), OrganParameters(model="test-organs", device="cpu"),
                       progress, catalog=catalog)
    assert any(stage.lower() in m.lower() for m in seen), seen


def test_non_organ_and_unknown_models_are_refused(catalog):
    with pytest.raises(InputError, match="not an organ model"):
        segment_organs(ct_image(), OrganParameters(model="vesselness-frangi"), catalog=catalog)
    with pytest.raises(ModelError, match="no model"):
        segment_organs(ct_image(), OrganParameters(model="no-such-model"), catalog=catalog)


# --- devices (the choice itself: Testing/test_runtime_device.py) ---------------------------

def test_parameters_refuse_an_unknown_device():
    with pytest.raises(ValueError):
        OrganParameters(device="tpu")
