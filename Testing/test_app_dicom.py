"""The DICOM panel in a real browser: a CT series loaded from its folder, SegOrgan run on it, the
result exported as DICOM SEG + SR into a folder and sent to a real Orthanc (DICOMweb,
authentication on), both through the module's own Logic.

Checked: the SEG read back by highdicom holds the engine's structures voxel for voxel, the SR
holds a volume per structure, the PACS then holds the study's SEG and SR (the very objects
exported: same SOP Instance UIDs), a second Send stores nothing, and a volume that did not
come from DICOM is refused in one line that names the derived-series option.
"""
from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from app_browser import artefacts_on_failure, choose, close_error, error_text, open_app, open_panel, wait_client_idle
from dicom_helpers import DCIODVFY, dciodvfy_errors, write_series
from orthanc_fixture import PASSWORD, USER, orthanc  # noqa: F401 (the fixture)
from segforge.dicom.pacs import Pacs, PacsConfig
from segforge.image_io import read_volume
from segforge.organ.pipeline import segment_organs
from test_app_vessel import wait_results
from test_dicom_cli import oblique_chest
from test_dicom_panels_logic import seg_masks

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

SERIES_NAME = "chest_ct"
JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(oblique_chest(), tmp_path_factory.mktemp("app_dicom") / SERIES_NAME)


@pytest.fixture(scope="module")
def session(browser, orthanc, series, tmp_path_factory):  # noqa: F811
    for path in sorted(series.glob("*.dcm")):
        assert orthanc.upload(path)["status"] == 200
    env = {"SEGFORGE_PACS_URL": orthanc.dicomweb, "SEGFORGE_PACS_USER": USER, "SEGFORGE_PACS_PASSWORD": PASSWORD}
    with open_app(browser, "--data", str(series), name="dicom", env=env) as opened:
        page = opened["page"]
        with artefacts_on_failure(page, "dicom_open", opened["app"]):
            page.get_by_test_id("scene-nodes").get_by_text(SERIES_NAME, exact=True).wait_for(timeout=60_000)
            open_panel(page, "segorgan", "segorgan-run")
            assert SERIES_NAME in page.get_by_test_id("segorgan-volume").inner_text()
            page.get_by_test_id("segorgan-run").click()
            wait_results(page, "segorgan", 1)
            open_panel(page, "dicom", "dicom-export")
        yield {**opened, "out": tmp_path_factory.mktemp("app_dicom_out")}


def _done(page, count: int) -> str:
    """Wait until the panel has finished ``count`` exports and sends (or an error shows); its message."""
    message = page.get_by_test_id("dicom-message")
    page.locator(f'[data-testid="dicom-message"][data-done="{count}"]').or_(
        page.get_by_test_id("app-error")).first.wait_for(timeout=JOB_TIMEOUT_MS)
    if page.get_by_test_id("app-error").count():
        raise AssertionError(f"the DICOM job failed: {page.get_by_test_id('app-error').inner_text()}")
    return message.inner_text()


def test_export_writes_a_seg_and_sr_of_the_organ_result(session, series):
    page, app, out = session["page"], session["app"], session["out"] / "export"
    with artefacts_on_failure(page, "dicom_export", app):
        assert "SegOrgan: " in page.get_by_test_id("dicom-result").inner_text()
        page.get_by_test_id("dicom-folder").locator("input").fill(str(out))
        wait_client_idle(page)
        page.get_by_test_id("dicom-export").click()
        message = _done(page, 1)
    assert f"to {out}" in message and "seg.dcm" in message and "sr.dcm" in message, message
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    expected = segment_organs(read_volume(series))
    masks = seg_masks(out / "seg.dcm", series)
    present = {name: value for value, name in expected.names.items() if (expected.labels.array == value).any()}
    assert set(masks) == set(present) and len(masks) >= 3
    for name, value in present.items():
        np.testing.assert_array_equal(masks[name], expected.labels.array == value)
    groups = {str(g.tracking_identifier): g for g in
              hd.sr.srread(out / "sr.dcm").content.get_volumetric_roi_measurement_groups()}
    spacing = float(np.prod(expected.labels.spacing))
    for name, value in present.items():
        volume_mm3 = float(groups[name].get_measurements(name=codes.SCT.Volume)[0].value)
        assert volume_mm3 == pytest.approx(np.count_nonzero(expected.labels.array == value) * spacing)


def test_send_to_pacs_stores_the_exported_objects_once(session, series, orthanc):  # noqa: F811
    page, app = session["page"], session["app"]
    seg = pydicom.dcmread(session["out"] / "export" / "seg.dcm")  # the export test ran first
    with artefacts_on_failure(page, "dicom_send", app):
        send = page.get_by_test_id("dicom-send")
        assert send.is_enabled() and not page.get_by_test_id("dicom-no-pacs").count()
        send.click()
        message = _done(page, 2)
    assert "seg.dcm stored" in message and "sr.dcm stored" in message, message
    pacs = Pacs(PacsConfig(orthanc.dicomweb, USER, PASSWORD, 20))
    study = str(seg.StudyInstanceUID)
    stored = {s["Modality"]: s["SeriesInstanceUID"] for s in pacs.find_series(study)}
    assert set(stored) == {"CT", "SEG", "SR"} and stored["SEG"] == str(seg.SeriesInstanceUID)
    instances = len(orthanc.rest("/instances"))
    with artefacts_on_failure(page, "dicom_send_again", app):
        page.get_by_test_id("dicom-send").click()
        message = _done(page, 3)
    assert "seg.dcm already stored" in message and "sr.dcm already stored" in message, message
    assert len(orthanc.rest("/instances")) == instances


def test_a_volume_not_from_dicom_is_refused_in_one_line(session, tmp_path):
    page, app = session["page"], session["app"]
    from app_browser import load_server_path
    from conftest import SAMPLE_DATA

    ct = SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz"
    with artefacts_on_failure(page, "dicom_refused", app):
        load_server_path(page, ct, "example_ct_sm")
        open_panel(page, "segorgan", "segorgan-run")
        choose(page, "segorgan-volume", "example_ct_sm")
        page.get_by_test_id("segorgan-run").click()
        page.get_by_test_id("segorgan-existing-dialog").wait_for(timeout=30_000)  # the output holds those names
        page.get_by_test_id("segorgan-keep-both").click()
        wait_results(page, "segorgan", 2)
        open_panel(page, "dicom", "dicom-export")
        assert "example_ct_sm" in page.get_by_test_id("dicom-result").inner_text()
        page.get_by_test_id("dicom-folder").locator("input").fill(str(tmp_path / "refused"))
        wait_client_idle(page)
        close_error(page)
        page.get_by_test_id("dicom-export").click()
        text = error_text(page)
    assert "not loaded from a DICOM series" in text and "New derived series" in text, text
    assert "Traceback" not in text and not (tmp_path / "refused").exists()
