"""The Save panel in a real browser: each kind of node written in Slicer's format, read back,
loaded again, downloaded byte for byte, and bad input answered with what to do.

The app starts with the sample CT plus a segmentation, a markups curve, a model and a table
(made here with segforge.mrml in a headless scene, the model from the sample data); every
saved file is read back in this process with segforge.mrml and compared with its source.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from app_browser import (REPO, SAMPLE_NAME, artefacts_on_failure, choose, close_error, error_text, load_server_path,
                         open_app, save_node, wait_client_idle, wait_for_input)
from conftest import SAMPLE_DATA

CT = SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz"
MODEL = SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta-centerline.vtp"
SEGMENTS = ("Liver", "Spleen")
TABLE_ROWS = [{"branch": "Aorta", "length_mm": 55.25, "points": 12},
              {"branch": "Left iliac", "length_mm": 31.5, "points": 7},
              {"branch": "Right iliac", "length_mm": 29.75, "points": 6}]
CURVE_POINTS = 12


@pytest.fixture(scope="module")
def reader():
    """A headless scene in this process, to make the inputs and read the saved files back."""
    from segforge.mrml import create_headless_slicer

    slicer_app = create_headless_slicer(install=True)
    yield slicer_app
    slicer_app.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, reader) -> dict:
    """Organs.seg.nrrd (two box segments on the CT's grid), Centerline.mrk.json, Metrics.csv."""
    from segforge.mrml import (SegmentSpec, curve_from_polyline, image_from_volume_node, load_volume,
                               new_segmentation_node, save_node as write, table_from_rows, write_label_segments)

    folder = tmp_path_factory.mktemp("save_inputs")
    volume = load_volume(CT)
    image = image_from_volume_node(volume)
    labels = np.zeros(image.array.shape, np.uint8)
    k, j, i = image.array.shape
    labels[k // 4: k // 2, j // 4: j // 2, i // 4: i // 2] = 1
    labels[k // 2: 3 * k // 4, j // 2: 3 * j // 4, i // 2: 3 * i // 4] = 2
    segmentation = new_segmentation_node(volume, "Organs")
    write_label_segments(segmentation, image.with_array(labels), [SegmentSpec(1, SEGMENTS[0], (0.8, 0.3, 0.2)),
                                                SegmentSpec(2, SEGMENTS[1], (0.2, 0.3, 0.8))])
    corners = np.array([image.ijk_to_lps() @ [i * f, j * f, k / 2, 1] for f in (0.2, 0.8)])[:, :3]
    points = np.linspace(corners[0], corners[1], CURVE_POINTS)
    curve = curve_from_polyline(points_lps=points, radius_mm=np.linspace(5, 3, CURVE_POINTS), name="Centerline")
    table = table_from_rows(TABLE_ROWS, "Metrics")
    paths = {"segmentation": write(segmentation, folder / "Organs.seg.nrrd"),
             "markups": write(curve, folder / "Centerline.mrk.json"),
             "table": write(table, folder / "Metrics.csv"), "model": MODEL}
    return {"paths": paths, "labels": labels, "points_lps": points, "image": image}


@pytest.fixture(scope="module")
def session(browser, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved")
    paths = inputs["paths"]
    with open_app(browser, "--data", str(CT), *(str(paths[kind]) for kind in ("segmentation", "markups", "model",
                                                                                 "table")), name="save") as opened:
        page = opened["page"]
        with artefacts_on_failure(page, "save_start", opened["app"]):
            nodes = page.get_by_test_id("scene-nodes")
            for name in (SAMPLE_NAME, "Organs", "Centerline", "aorta-centerline", "Metrics"):
                nodes.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.get_by_test_id("panel-save").locator("button").first.click()
            page.get_by_test_id("save-node").wait_for(state="visible", timeout=10_000)
        yield {**opened, "out": out}




def test_bad_input_says_what_to_do(session):
    """Runs first: nothing is chosen yet in the shared app."""
    page, out = session["page"], session["out"]
    with artefacts_on_failure(page, "save_bad_input", session["app"]):
        page.get_by_test_id("save-button").click()
        text = error_text(page)
        assert "Nothing chosen to save" in text and "choose a node" in text, text
        close_error(page)  # the next message must not be read as this one

        choose(page, "save-node", "Organs")
        # The default: the app's working directory (the checkout, where the test starts it).
        field = page.get_by_test_id("save-path").locator("input")
        wait_for_input(page, "save-path", "^" + re.escape(str(REPO / "Organs.seg.nrrd")) + "$")
        field.fill(str(out / "Organs.vtp"))
        wait_client_idle(page)  # the server reads the path when Save is clicked
        page.get_by_test_id("save-button").click()
        text = error_text(page)
        assert "Cannot save a segmentation as Organs.vtp" in text and "end the file name with .seg.nrrd" in text, text
        assert not (out / "Organs.vtp").exists()
        close_error(page)

        field.fill(str(out / "no_such_folder" / "Organs.seg.nrrd"))
        wait_client_idle(page)  # the server reads the path when Save is clicked
        page.get_by_test_id("save-button").click()
        text = error_text(page)
        assert f"No folder {out / 'no_such_folder'}" in text and "create the folder first" in text, text
        assert not (out / "no_such_folder").exists()
        close_error(page)

        # An existing file: asked first; "Keep it" leaves it alone; "Overwrite" replaces it.
        existing = out / "existing.seg.nrrd"
        existing.write_bytes(b"not a segmentation")
        field.fill(str(existing))
        wait_client_idle(page)  # the server reads the path when Save is clicked
        page.get_by_test_id("save-button").click()
        question = page.get_by_test_id("save-overwrite-question")
        question.wait_for(timeout=20_000)
        assert f"{existing} already exists" in question.inner_text()
        page.get_by_test_id("save-keep").click()
        page.get_by_test_id("save-message").get_by_text("Not saved").wait_for(timeout=20_000)
        assert existing.read_bytes() == b"not a segmentation"
        assert page.get_by_test_id("app-error").count() == 0
        page.get_by_test_id("save-button").click()
        question.wait_for(timeout=20_000)
        page.get_by_test_id("save-overwrite").click()
        page.get_by_test_id("save-message").get_by_text(f"Saved Organs to {existing}").wait_for(timeout=60_000)
        assert existing.read_bytes().startswith(b"NRRD"), "the file was not replaced by the segmentation"


def test_each_kind_is_saved_read_back_and_loaded_again(session, inputs, reader):
    from segforge.mrml import (control_points_lps, labels_from_segments, load_markups, load_model,
                               load_scene_bundle, load_segmentation, load_table, rows_from_table)

    page, out = session["page"], session["out"]
    with artefacts_on_failure(page, "save_each_kind", session["app"]):
        saved = {}
        for node, file_name in (("Organs", "Organs_saved.seg.nrrd"), ("Centerline", "Centerline_saved.mrk.json"),
                                ("aorta-centerline", "aorta_saved.vtp"), ("Metrics", "Metrics_saved.csv"),
                                ("Whole scene (.mrb)", "study_saved.mrb")):
            started = time.perf_counter()
            save_node(page, node, out / file_name)
            print(f"\nsaved {node} as {file_name} in {time.perf_counter() - started:.2f} s "
                  f"({(out / file_name).stat().st_size} bytes)")
            saved[node] = out / file_name
        # The default path keeps the folder last typed.
        choose(page, "save-node", "Centerline")
        wait_for_input(page, "save-path", "^" + re.escape(str(out / "Centerline.mrk.json")) + "$")

        segmentation = load_segmentation(saved["Organs"])
        back, specs = labels_from_segments(segmentation, inputs["image"])
        assert [spec.name for spec in specs] == list(SEGMENTS)
        assert np.array_equal(back.array, inputs["labels"]), "the saved segments differ from the loaded ones"

        curve = load_markups(saved["Centerline"])
        assert curve.IsA("vtkMRMLMarkupsCurveNode") and curve.GetNumberOfControlPoints() == CURVE_POINTS
        np.testing.assert_allclose(control_points_lps(curve), inputs["points_lps"], atol=1e-4)

        model = load_model(saved["aorta-centerline"])
        source = load_model(MODEL)
        assert model.GetPolyData().GetNumberOfPoints() == source.GetPolyData().GetNumberOfPoints() > 0
        assert model.GetPolyData().GetNumberOfCells() == source.GetPolyData().GetNumberOfCells()

        assert rows_from_table(load_table(saved["Metrics"])) == TABLE_ROWS

        scene = reader.scene
        before = {scene.GetNthNode(i).GetName() for i in range(scene.GetNumberOfNodes())}
        scene.Clear(0)
        load_scene_bundle(saved["Whole scene (.mrb)"], scene)
        names = {scene.GetNthNode(i).GetName() for i in range(scene.GetNumberOfNodes())}
        assert {SAMPLE_NAME, "Organs", "Centerline", "aorta-centerline", "Metrics"} <= names, (names, before)

        # Each file loads back through the Data panel.
        for path, node_name in ((saved["Organs"], "Organs_saved"), (saved["Centerline"], "Centerline_saved"),
                                (saved["aorta-centerline"], "aorta_saved"), (saved["Metrics"], "Metrics_saved")):
            load_server_path(page, path, node_name)
        nodes = page.get_by_test_id("scene-nodes")
        count = nodes.get_by_text("Organs", exact=True).count()
        load_server_path(page, saved["Whole scene (.mrb)"], "Organs")
        page.wait_for_function(
            "(n) => [...document.querySelectorAll('[data-testid=\"scene-nodes\"] .v-list-item-title')]"
            ".filter(e => e.textContent.trim() === 'Organs').length > n", arg=count, timeout=60_000)
        assert page.get_by_test_id("app-error").count() == 0


@pytest.mark.parametrize("node, file_name", [("Metrics_saved", "download.csv"), ("Whole scene (.mrb)", "download.mrb")])
def test_download_sends_the_saved_file(session, node, file_name):
    page, out = session["page"], session["out"]
    with artefacts_on_failure(page, f"save_download_{Path(file_name).suffix[1:]}", session["app"]):
        save_node(page, node, out / file_name)
        with page.expect_download(timeout=60_000) as download_info:
            page.get_by_test_id("save-download").click()
        download = download_info.value
        assert download.suggested_filename == file_name
        assert Path(download.path()).read_bytes() == (out / file_name).read_bytes()
        print(f"\ndownloaded {file_name}: {(out / file_name).stat().st_size} bytes")
