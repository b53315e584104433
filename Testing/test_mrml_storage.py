"""Whole scenes through .mrb, and clear errors from saving and loading."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import slicer
import slicer.util
import vtk

from segforge.errors import InputError
from segforge.mrml import (SegmentSpec, create_headless_slicer, curve_from_polyline, image_from_volume_node,
                           labels_from_segments, load_scene_bundle, load_volume, model_from_polydata,
                           new_segmentation_node, rows_from_table, save_node, save_scene_bundle,
                           table_from_rows, volume_node_from_image, write_label_segments)


def first_node(scene, class_name: str, name: str):
    count = scene.GetNumberOfNodesByClass(class_name)
    nodes = [n for n in (scene.GetNthNodeByClass(i, class_name) for i in range(count)) if n.GetName() == name]
    assert len(nodes) == 1, f"{len(nodes)} {class_name} named {name!r}"
    return nodes[0]


def test_mrb_scene_round_trip_into_a_fresh_scene(mrml_scene, image_factory, labels_factory, tmp_path):
    image = image_factory(dtype=np.int16)
    labels = labels_factory()
    volume = volume_node_from_image(image, "CTA")
    segmentation = new_segmentation_node(volume, "Vessels")
    specs = [SegmentSpec(1, "Aorta", (0.9, 0.1, 0.1)), SegmentSpec(2, "Vena cava", (0.1, 0.1, 0.9))]
    write_label_segments(segmentation, labels, specs)
    points_lps = np.c_[np.linspace(0, 30, 12), np.linspace(5, -5, 12), np.full(12, 42.0)]
    radius = np.linspace(4.0, 2.5, 12)
    curve_from_polyline(points_lps=points_lps, radius_mm=radius, name="Aorta centerline")
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    model_from_polydata(sphere.GetOutput(), space="RAS", name="Surface")
    table_from_rows([{"branch": "Aorta", "length_mm": 55.25, "points": 12}], "Metrics")

    path = save_scene_bundle(tmp_path / "study.mrb")
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
    assert any(n.endswith(".mrml") for n in names) and any(n.endswith(".seg.nrrd") for n in names)

    fresh = create_headless_slicer(install=True)
    try:
        load_scene_bundle(path)
        scene = fresh.scene
        loaded_volume = first_node(scene, "vtkMRMLScalarVolumeNode", "CTA")
        loaded_image = image_from_volume_node(loaded_volume)
        assert np.array_equal(loaded_image.array, image.array) and loaded_image.array.dtype == np.int16
        np.testing.assert_allclose(loaded_image.ijk_to_lps(), image.ijk_to_lps(), atol=1e-6)

        loaded_segmentation = first_node(scene, "vtkMRMLSegmentationNode", "Vessels")
        back, loaded_specs = labels_from_segments(loaded_segmentation, loaded_volume)
        assert np.array_equal(back.array, np.where(labels.array == 3, 0, labels.array))
        assert [s.name for s in loaded_specs] == ["Aorta", "Vena cava"]

        curve = first_node(scene, "vtkMRMLMarkupsCurveNode", "Aorta centerline")
        np.testing.assert_allclose(slicer.util.arrayFromMarkupsCurveData(curve, "Radius", world=True), radius)
        np.testing.assert_allclose(slicer.util.arrayFromMarkupsControlPoints(curve, world=True),
                                   points_lps * [-1, -1, 1], atol=1e-9)

        surface = first_node(scene, "vtkMRMLModelNode", "Surface")
        assert surface.GetPolyData().GetNumberOfPoints() == sphere.GetOutput().GetNumberOfPoints()
        metrics = first_node(scene, "vtkMRMLTableNode", "Metrics")
        assert rows_from_table(metrics) == [{"branch": "Aorta", "length_mm": 55.25, "points": 12}]
    finally:
        fresh.close()


def test_saving_in_a_format_the_node_has_not_is_refused(mrml_scene, labels_factory, tmp_path):
    segmentation = new_segmentation_node(labels_factory())
    with pytest.raises(InputError, match="cannot be written in that format") as error:
        save_node(segmentation, tmp_path / "segments.vtp")
    assert "seg.nrrd" in error.value.todo
    with pytest.raises(InputError, match="has no file format"):
        save_node(mrml_scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"), tmp_path / "x.json")


def test_unreadable_file_is_refused_and_leaves_no_nodes(mrml_scene, tmp_path):
    path = tmp_path / "notes.nrrd"
    path.write_text("this is not an image")
    before = mrml_scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="Could not read"):
        load_volume(path)
    assert mrml_scene.GetNumberOfNodes() == before


def test_scene_bundle_needs_the_mrb_suffix(mrml_scene, tmp_path):
    with pytest.raises(InputError, match=".mrb"):
        save_scene_bundle(tmp_path / "study.zip")
    with pytest.raises(InputError, match="No file"):
        load_scene_bundle(tmp_path / "absent.mrb")


def test_saved_volume_reloads_exactly(mrml_scene, image_factory, tmp_path):
    image = image_factory(dtype=np.uint16)
    node = volume_node_from_image(image, "MR")
    loaded = load_volume(save_node(node, tmp_path / "mr.nrrd"), "MR again")
    assert loaded.GetName() == "MR again" and loaded is not node
    back = image_from_volume_node(loaded)
    assert np.array_equal(back.array, image.array) and back.array.dtype == np.uint16
    np.testing.assert_allclose(back.ijk_to_lps(), image.ijk_to_lps(), atol=1e-9)


def test_a_failed_save_keeps_the_file_that_was_there(mrml_scene, image_factory, tmp_path, monkeypatch):
    """Saving goes through a hidden folder beside the file: a failure while moving the new file
    into place (here an injected full disk) leaves the old file as it was and nothing partial."""
    import errno

    from segforge.errors import SegForgeError
    from segforge.mrml import storage

    path = save_node(volume_node_from_image(image_factory(dtype=np.int16), "CT"), tmp_path / "ct.nrrd")
    before = path.read_bytes()

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", full_disk)
    other = volume_node_from_image(image_factory(dtype=np.int16, seed=5), "Other CT")
    with pytest.raises(SegForgeError) as caught:
        save_node(other, path)
    assert "No space left" in caught.value.message and "disk is not full" in caught.value.message
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ct.nrrd"]
    assert other.GetStorageNode().GetFileName() == str(path)  # not the hidden folder's


def test_a_table_and_its_schema_arrive_together_and_nothing_is_left_beside(mrml_scene, tmp_path):
    table = table_from_rows([{"branch": 1, "length_mm": 2.5}], "Branches", units={"length_mm": "mm"})
    save_node(table, tmp_path / "branches.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branches.csv", "branches.schema.csv"]
    save_scene_bundle(tmp_path / "scene.mrb", mrml_scene)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branches.csv", "branches.schema.csv", "scene.mrb"]
