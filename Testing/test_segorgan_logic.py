"""SegOrganLogic end to end: a real MRML scene, a real worker subprocess, ct-tissues and an
nnU-Net model found through TotalSegmentator's weights folder."""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from conftest import OBLIQUE, REPO
from segforge.errors import Cancelled, InputError, ModelError
from segforge.image import Image
from segforge.mrml.segments import (SegmentSpec, mask_from_segment, new_segmentation_node, segment_ids_by_name,
                                    write_label_segments)
from segforge.mrml.tables import rows_from_table
from segforge.mrml.volumes import volume_node_from_image
from segforge.organ.parameters import OrganParameters
from segforge.organ.pipeline import segment_organs
from segforge.worker import WorkerClient
from test_organ_tissues import chest_phantom
from worker_helpers import wait_until_running

sys.path.insert(0, str(REPO / "SegOrgan"))
from SegOrganLib import SegOrganLogic


@pytest.fixture
def logic(worker):
    return SegOrganLogic(worker)


@pytest.fixture(scope="module")
def chest():
    image, _ = chest_phantom(spacing=(3.0, 3.0, 4.0))
    return image


def segment_masks(segmentation, reference) -> dict:
    return {segment_id: mask_from_segment(segmentation, segment_id, reference).array
            for segment_id in segmentation.GetSegmentation().GetSegmentIDs()}


def test_segments_terminology_and_statistics(mrml_scene, logic, chest):
    volume = volume_node_from_image(chest, "Chest")
    fractions = []
    nodes = logic.segment_organs(volume, progress=lambda f, m: fractions.append(f))
    expected = segment_organs(chest)
    names = segment_ids_by_name(nodes.segmentation)
    present = [n for v, n in expected.names.items() if (expected.labels.array == v).any()]
    assert sorted(names) == sorted(present) and len(nodes.segment_ids) == len(present)
    for value, name in expected.names.items():
        if name in names:
            mask = mask_from_segment(nodes.segmentation, names[name][0], volume).array > 0
            np.testing.assert_array_equal(mask, expected.labels.array == value)
    lungs = nodes.segmentation.GetSegmentation().GetSegment(names["lungs"][0])
    from segforge.organ.terminology import slicer_terminology_string, term_for

    assert lungs.GetTerminology() == slicer_terminology_string(term_for("lungs"))
    assert np.allclose(lungs.GetColor(), term_for("lungs").color_rgb)
    rows = {row["Segment"]: row for row in rows_from_table(nodes.statistics_table)}
    assert set(rows) == set(present)
    lung_values = chest.array[expected.labels.array == expected.value("lungs")]
    assert rows["lungs"]["Voxel count"] == lung_values.size
    assert rows["lungs"]["Volume [mL]"] == pytest.approx(lung_values.size * 3 * 3 * 4 / 1000)
    assert rows["lungs"]["Mean"] == pytest.approx(lung_values.mean(), abs=1e-6)
    assert fractions and fractions == sorted(fractions)


def test_subset_surfaces_and_an_oblique_volume(mrml_scene, logic, chest):
    oblique = Image(chest.array, chest.spacing, chest.origin_lps, OBLIQUE)
    volume = volume_node_from_image(oblique, "Oblique chest")
    nodes = logic.segment_organs(volume, OrganParameters(structures=("lungs", "bones")), surfaces=True)
    assert set(segment_ids_by_name(nodes.segmentation)) == {"lungs", "bones"}
    expected = segment_organs(oblique, OrganParameters(structures=("lungs", "bones")))
    lungs_id = segment_ids_by_name(nodes.segmentation)["lungs"][0]
    np.testing.assert_array_equal(mask_from_segment(nodes.segmentation, lungs_id, volume).array > 0,
                                  expected.mask("lungs"))
    from segforge.mrml.segments import closed_surface

    assert closed_surface(nodes.segmentation, lungs_id).GetNumberOfPoints() > 100


def test_user_segments_are_kept_and_never_overwritten_without_asking(mrml_scene, logic, chest):
    volume = volume_node_from_image(chest, "Chest")
    segmentation = new_segmentation_node(volume, "Mine")
    user = np.zeros(chest.array.shape, np.uint8)
    user[10:20, 20:40, 30:60] = 1
    write_label_segments(segmentation, chest.with_array(user), [SegmentSpec(1, "MyLesion")])
    write_label_segments(segmentation, chest.with_array(user), [SegmentSpec(1, "lungs")])
    before = segment_masks(segmentation, volume)
    nodes_before = mrml_scene.GetNumberOfNodes()
    parameters = OrganParameters(structures=("lungs", "body"))
    assert logic.existing_structures(segmentation, parameters) == ["lungs"]
    with pytest.raises(InputError, match="already exist"):
        logic.start_organ_segmentation(volume, parameters, segmentation)
    assert mrml_scene.GetNumberOfNodes() == nodes_before
    after = segment_masks(segmentation, volume)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)

    logic.segment_organs(volume, parameters, segmentation, on_existing="replace")
    names = segment_ids_by_name(segmentation)
    assert set(names) == {"MyLesion", "lungs", "body"} and len(names["lungs"]) == 1
    np.testing.assert_array_equal(mask_from_segment(segmentation, names["MyLesion"][0], volume).array > 0, user > 0)
    assert not np.array_equal(mask_from_segment(segmentation, names["lungs"][0], volume).array > 0, user > 0)
    logic.segment_organs(volume, parameters, segmentation, on_existing="rename")
    assert {"lungs 2", "body 2"} <= set(segment_ids_by_name(segmentation))


def test_bad_requests_are_refused_before_any_work(mrml_scene, logic, chest):
    volume = volume_node_from_image(chest, "Chest")
    nodes_before = mrml_scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="no structure"):
        logic.start_organ_segmentation(volume, OrganParameters(structures=("liverr",)))
    with pytest.raises(ModelError):
        logic.start_organ_segmentation(volume, OrganParameters(model="no-such-model"))
    with pytest.raises(InputError, match="No input volume"):
        logic.start_organ_segmentation(None)
    assert mrml_scene.GetNumberOfNodes() == nodes_before
    mr = volume_node_from_image(chest.with_array((chest.array + 1024).astype(np.int16)), "Not CT")
    nodes_before = mrml_scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="does not look like a CT"):
        logic.segment_organs(mr)
    assert mrml_scene.GetNumberOfNodes() == nodes_before


def test_cancel_leaves_the_scene_untouched(mrml_scene, logic):
    big, _ = chest_phantom(spacing=(0.8, 0.8, 1.0))
    volume = volume_node_from_image(big, "Big chest")
    nodes_before = mrml_scene.GetNumberOfNodes()
    job = logic.start_organ_segmentation(volume)
    wait_until_running(job)
    job.cancel()
    deadline = time.monotonic() + 15.0
    while not (status := job.poll()).finished:
        assert time.monotonic() < deadline, "cancel never took effect"
        time.sleep(0.02)
    assert status.state == "cancelled"
    with pytest.raises(Cancelled):
        job.finish()
    assert mrml_scene.GetNumberOfNodes() == nodes_before


def test_nnunet_model_through_the_worker(mrml_scene, tmp_path, monkeypatch):
    """A catalog nnU-Net model installed only in TotalSegmentator's weights folder runs in a
    worker started with that environment, and its segments land on the volume's grid."""
    from segforge.catalog import CATALOG_ENV
    from http_fixture import write_catalog
    from test_organ_nnunet import ct_like, write_model
    from test_organ_pipeline import MODEL_PATH, TINY_LABELS, nnunet_record

    write_model(tmp_path / "weights" / MODEL_PATH)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "weights"))
    monkeypatch.setenv("SEGFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CATALOG_ENV, str(write_catalog(tmp_path / "catalog.json",
                                                      [nnunet_record("test-organs", MODEL_PATH, TINY_LABELS)])))
    volume = volume_node_from_image(Image(ct_like((20, 26, 24), seed=2), (1.6, 1.4, 2.2), (4.0, -8.0, 30.0), OBLIQUE),
                                    "CT")
    parameters = OrganParameters(model="test-organs", device="cpu")
    with WorkerClient() as worker:
        assert os.environ["TOTALSEG_WEIGHTS_PATH"]
        nodes = SegOrganLogic(worker).segment_organs(volume, parameters)
    from segforge.mrml.volumes import image_from_volume_node

    expected = segment_organs(image_from_volume_node(volume), parameters)
    names = segment_ids_by_name(nodes.segmentation)
    for value, name in expected.names.items():
        if (expected.labels.array == value).any():
            np.testing.assert_array_equal(
                mask_from_segment(nodes.segmentation, names[name][0], volume).array > 0, expected.labels.array == value)
    assert any("unverified" in w for w in nodes.warnings)
