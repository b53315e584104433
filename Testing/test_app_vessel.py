"""The SegVessel panel in a real browser: ``segforge app`` with the bundled thoracic CTA, the
vessel tree run by the desktop module's Logic in the worker, the result checked in the page.

One app for the module (the first job also starts the worker). Checked: the vessel segment
listed, the branch and stenosis tables' rows, the 3D view's pixels changed by the result,
Cancel ending with nothing written, the Replace / Keep both question on a second run, the
result saved and loaded back (no volume: test_app_browser.py). Timings are printed
(``-s``), never asserted. Some helpers here are shared with test_app_organ.py.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from app_browser import (artefacts_on_failure, keep_screenshot, load_server_path, open_app, open_panel, save_node,
                         view_frame_src, view_image, wait_client_idle)
from conftest import SAMPLE_DATA

CTA = SAMPLE_DATA / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz"
CTA_NAME = "cta_thorax_1p5mm"
RESULT_SEGMENTATION = f"{CTA_NAME} vessels"
JOB_TIMEOUT_MS = 180_000


# -- helpers (also used by test_app_organ.py) ---------------------------------------------------------



def results_shown(page, key: str) -> int:
    """How many results the panel ``key`` has shown (its results block's data-results)."""
    return int(page.get_by_test_id(f"{key}-results").get_attribute("data-results") or 0)


def wait_results(page, key: str, count: int, timeout_ms: int = JOB_TIMEOUT_MS) -> None:
    """Until the panel has shown ``count`` results; fails early with the drawer's error if one appears."""
    deadline = time.monotonic() + timeout_ms / 1000
    while results_shown(page, key) < count:
        error = page.get_by_test_id("app-error")
        assert error.count() == 0, f"the {key} job failed: {error.inner_text()}"
        assert time.monotonic() < deadline, f"no result {count} of {key} within {timeout_ms / 1000:.0f} s"
        time.sleep(0.25)


def segment_names(page, key: str) -> list[str]:
    return page.get_by_test_id(f"{key}-segments").locator(".segment-name").all_inner_texts()


def listed_segmentations(page) -> list[str]:
    """Names of the segmentation nodes the Data panel lists."""
    items = page.get_by_test_id("scene-nodes").locator(".v-list-item")
    names = []
    for index in range(items.count()):
        item = items.nth(index)
        if item.locator(".v-list-item-subtitle").inner_text().strip() == "segmentation":
            names.append(item.locator(".v-list-item-title").inner_text().strip())
    return names


def table_rows(page, test_id: str) -> list[str]:
    """Texts of the data rows a panel's table shows (its current page)."""
    rows = page.get_by_test_id(test_id).locator("tbody tr")
    texts = rows.all_inner_texts()
    return [text for text in texts if "No data available" not in text]


def three_d_picture(page) -> np.ndarray:
    """The 3D view's current frame as grey levels (waits until it shows a server frame)."""
    import io

    from PIL import Image as PILImage

    deadline = time.monotonic() + 30
    while not view_frame_src(page, "ThreeD").startswith("blob:"):
        assert time.monotonic() < deadline, "the 3D view shows no frame"
        time.sleep(0.1)
    png = view_image(page, "ThreeD").screenshot()
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("L"), dtype=np.float32)


def wait_three_d_changed(page, before: np.ndarray, min_fraction: float = 0.02, timeout_s: float = 90) -> float:
    """Until at least ``min_fraction`` of the 3D view's pixels differ clearly from ``before``; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        after = three_d_picture(page)
        changed = float((np.abs(after - before) > 30).mean()) if after.shape == before.shape else 1.0
        if changed >= min_fraction:
            return changed
        assert time.monotonic() < deadline, f"the 3D view barely changed ({changed:.2%} of its pixels)"
        time.sleep(0.5)






# -- the tests -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def session(browser):
    with open_app(browser, "--data", str(CTA), name="segvessel") as opened:
        page = opened["page"]
        with artefacts_on_failure(page, "segvessel_open", opened["app"]):
            page.get_by_test_id("scene-nodes").get_by_text(CTA_NAME, exact=True).wait_for(timeout=60_000)
            open_panel(page, "segvessel", "segvessel-run")
            assert page.get_by_test_id("segvessel-volume").inner_text().find(CTA_NAME) >= 0, \
                "the loaded CTA should be the default input volume"
        yield opened


def test_cancel_stops_the_job_and_writes_nothing(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segvessel_cancel", app):
        before = listed_segmentations(page)
        started = time.perf_counter()
        page.get_by_test_id("segvessel-run").click()
        progress = page.get_by_test_id("segvessel-progress")
        progress.wait_for(timeout=60_000)
        job = page.get_by_test_id("segvessel-job")
        # Cancel once the worker is at work (the first job also starts the worker).
        deadline = time.monotonic() + 60
        while "Starting" in job.inner_text():
            assert time.monotonic() < deadline, "the job never started in the worker"
            time.sleep(0.2)
        page.get_by_test_id("segvessel-cancel").click()
        job.get_by_text("Cancelled", exact=True).wait_for(timeout=60_000)
        print(f"\nSegVessel: cancelled {time.perf_counter() - started:.1f} s after the click on Vessel tree")
        assert progress.count() == 0
        wait_client_idle(page)  # the job said Cancelled and the page has nothing in flight
        time.sleep(1.0)  # not a wait for something: a result written after the cancel would be listed by now
        assert listed_segmentations(page) == before, "a cancelled job left a segmentation"
        assert results_shown(page, "segvessel") == 0
        assert page.get_by_test_id("app-error").count() == 0


def test_the_vessel_tree_is_shown_in_the_views_and_the_panel(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segvessel_result", app):
        before_3d = three_d_picture(page)
        started = time.perf_counter()
        page.get_by_test_id("segvessel-run").click()
        wait_results(page, "segvessel", 1)
        print(f"\nSegVessel: vessel tree of the 1.5 mm CTA shown {time.perf_counter() - started:.1f} s after the click")
        assert segment_names(page, "segvessel") == ["Vessels"]
        summary = page.get_by_test_id("segvessel-summary").inner_text()
        match = re.search(r"(\d+) branches; (\d+) stenoses found", summary)
        assert match and int(match.group(1)) > 0, summary
        assert RESULT_SEGMENTATION in summary
        listed = page.get_by_test_id("scene-nodes").inner_text()
        for name in (RESULT_SEGMENTATION, f"{CTA_NAME} centerlines", f"{CTA_NAME} vessel surface",
                     f"{CTA_NAME} branches"):
            assert name in listed, f"{name} is not listed in the Data panel"
        assert re.search(rf"{CTA_NAME} branch \d+", listed), "no centerline curve is listed"
        branches = table_rows(page, "segvessel-branches")
        assert branches, "the branch table shows no row"
        header = page.get_by_test_id("segvessel-branches").locator("thead").inner_text()
        assert "length_mm" in header and "mean_radius_mm" in header
        if int(match.group(2)):
            assert table_rows(page, "segvessel-stenoses"), "stenoses were found but their table shows no row"
        changed = wait_three_d_changed(page, before_3d)
        print(f"SegVessel: {changed:.1%} of the 3D view's pixels changed with the result")
        page.get_by_test_id("segvessel-branches").scroll_into_view_if_needed()
        keep_screenshot(page, "segvessel")


def test_running_again_asks_before_touching_the_segment(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segvessel_again", app):
        # The output is now the result's segmentation, which has a "Vessels" segment.
        assert RESULT_SEGMENTATION in page.get_by_test_id("segvessel-output").inner_text()
        dialog = page.get_by_test_id("segvessel-existing-dialog")
        page.get_by_test_id("segvessel-run").click()
        dialog.wait_for(timeout=30_000)
        assert '"Vessels"' in dialog.inner_text() and RESULT_SEGMENTATION in dialog.inner_text()
        page.get_by_test_id("segvessel-existing-cancel").click()
        dialog.wait_for(state="detached", timeout=10_000)
        wait_client_idle(page)  # the answer is handled: a job it started would show its progress now
        time.sleep(1.0)  # not a wait for something: a job started late would show its progress by now
        assert page.get_by_test_id("segvessel-progress").count() == 0, "Cancel in the question started a job"
        assert results_shown(page, "segvessel") == 1

        # This time the mask and its surface only (no centerlines: quicker, and the other outputs' path).
        page.get_by_test_id("segvessel-centerlines").locator("input").uncheck()
        wait_client_idle(page)  # the server reads the checkbox when Run is clicked
        page.get_by_test_id("segvessel-run").click()
        dialog.wait_for(timeout=30_000)
        started = time.perf_counter()
        page.get_by_test_id("segvessel-keep-both").click()
        wait_results(page, "segvessel", 2)
        print(f"\nSegVessel: second run (keep both, no centerlines) shown {time.perf_counter() - started:.1f} s "
              "after the answer")
        assert segment_names(page, "segvessel") == ["Vessels", "Vessels 2"]
        summary = page.get_by_test_id("segvessel-summary").inner_text()
        assert "surface model" in summary and "branches" not in summary, summary
        assert listed_segmentations(page).count(RESULT_SEGMENTATION) == 1, "keep both should write into the same node"


def test_the_result_is_saved_and_loaded_back(session, tmp_path):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segvessel_save", app):
        segmentation_file = tmp_path / "vessels.seg.nrrd"
        table_file = tmp_path / "branches.csv"
        save_node(page, RESULT_SEGMENTATION, segmentation_file)
        save_node(page, f"{CTA_NAME} branches", table_file)
        assert segmentation_file.stat().st_size > 0
        rows = table_file.read_text().strip().splitlines()
        assert rows[0].split(",")[0].strip('"') == "id" and len(rows) > 2
        load_server_path(page, segmentation_file, "vessels")
        load_server_path(page, table_file, "branches")
        assert "vessels" in listed_segmentations(page)
