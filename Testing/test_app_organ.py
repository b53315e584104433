"""The SegOrgan panel in a real browser: ``segforge app`` with the default sample CT and the
default model (ct-tissues), run by the desktop module's Logic in the worker, the result
checked in the page.

One app for the module. Checked: the segments listed with their colours, the statistics
rows, the 3D view's pixels changed by the surfaces, the Replace answer on a second run,
Cancel ending with nothing written, a model that is not installed saying what to do, the
result saved and loaded back (no volume: test_app_browser.py). Timings are printed
(``-s``), never asserted.
"""
from __future__ import annotations

import time

import pytest

from app_browser import (SAMPLE_NAME, artefacts_on_failure, choose, close_error, error_text, keep_screenshot,
                         load_server_path, open_app, open_panel, save_node, wait_client_idle)
from test_app_vessel import (CTA, CTA_NAME, listed_segmentations, results_shown, segment_names, table_rows,
                             three_d_picture, wait_results, wait_three_d_changed)

RESULT_SEGMENTATION = f"{SAMPLE_NAME} organs"
STATISTICS_TABLE = f"{SAMPLE_NAME} organ statistics"


@pytest.fixture(scope="module")
def session(browser):
    with open_app(browser, name="segorgan") as opened:
        page = opened["page"]
        with artefacts_on_failure(page, "segorgan_open", opened["app"]):
            page.get_by_test_id("scene-nodes").get_by_text(SAMPLE_NAME, exact=True).wait_for(timeout=60_000)
            open_panel(page, "segorgan", "segorgan-run")
            assert SAMPLE_NAME in page.get_by_test_id("segorgan-volume").inner_text()
            assert "ct-tissues" in page.get_by_test_id("segorgan-model").inner_text()
        yield opened


def test_organs_are_listed_with_statistics_and_shown_in_3d(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segorgan_result", app):
        structures = page.get_by_test_id("segorgan-structures").inner_text()
        assert "6 of 6 chosen" in structures, structures
        before_3d = three_d_picture(page)
        started = time.perf_counter()
        page.get_by_test_id("segorgan-run").click()
        wait_results(page, "segorgan", 1)
        print(f"\nSegOrgan: ct-tissues on the sample CT shown {time.perf_counter() - started:.1f} s after the click "
              "(the first job also starts the worker)")
        names = segment_names(page, "segorgan")
        assert {"body", "lungs", "bones"} <= set(names), names
        swatches = page.get_by_test_id("segorgan-segments").locator(".segment-name").evaluate_all(
            "(spans) => spans.map(s => getComputedStyle(s.previousElementSibling).backgroundColor)")
        assert len(set(swatches)) == len(names), f"segments should have their own colours: {swatches}"
        summary = page.get_by_test_id("segorgan-summary").inner_text()
        assert f"{len(names)} structures in {RESULT_SEGMENTATION}" in summary and STATISTICS_TABLE in summary
        rows = table_rows(page, "segorgan-statistics")
        assert rows, "the statistics table shows no row"
        total = page.get_by_test_id("segorgan-statistics").locator("xpath=..").inner_text()
        assert f"Statistics ({len(names)} rows" in total, total
        header = page.get_by_test_id("segorgan-statistics").locator("thead").inner_text()
        assert "Volume [mL]" in header and "Segment" in header
        assert any(row.startswith("body") for row in rows), rows
        listed = page.get_by_test_id("scene-nodes").inner_text()
        assert RESULT_SEGMENTATION in listed and STATISTICS_TABLE in listed
        changed = wait_three_d_changed(page, before_3d)
        print(f"SegOrgan: {changed:.1%} of the 3D view's pixels changed with the surfaces")
        page.get_by_test_id("segorgan-statistics").scroll_into_view_if_needed()
        keep_screenshot(page, "segorgan")


def test_running_again_asks_and_replace_keeps_one_set(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segorgan_again", app):
        before = segment_names(page, "segorgan")
        assert RESULT_SEGMENTATION in page.get_by_test_id("segorgan-output").inner_text()
        page.get_by_test_id("segorgan-run").click()
        dialog = page.get_by_test_id("segorgan-existing-dialog")
        dialog.wait_for(timeout=30_000)
        for name in before:
            assert f'"{name}"' in dialog.inner_text()
        page.get_by_test_id("segorgan-replace").click()
        wait_results(page, "segorgan", 2)
        assert segment_names(page, "segorgan") == before, "Replace should leave one segment per structure"
        assert listed_segmentations(page).count(RESULT_SEGMENTATION) == 1


def test_not_installed_model_says_what_to_do(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segorgan_not_installed", app):
        page.get_by_test_id("segorgan-model").click()
        listbox = page.locator(".v-overlay--active").get_by_role("listbox")
        listbox.get_by_role("option").first.wait_for(timeout=10_000)  # the menu opens (and fills) after the click
        missing = [text for text in listbox.get_by_role("option").all_inner_texts() if "(not installed)" in text]
        page.keyboard.press("Escape")
        listbox.wait_for(state="detached", timeout=10_000)
        assert missing, "this test needs a model that is not installed (the catalog's TotalSegmentator)"
        model_id = missing[0].replace("(not installed)", "").strip()
        choose(page, "segorgan-model", missing[0])
        warning = page.get_by_test_id("segorgan-model-warning")
        warning.wait_for(timeout=10_000)
        assert f"segforge models download {model_id}" in warning.inner_text()
        page.get_by_test_id("segorgan-run").click()
        text = error_text(page)
        assert "is not installed" in text and "segforge models download" in text, text
        assert page.get_by_test_id("segorgan-progress").count() == 0
        close_error(page)
        choose(page, "segorgan-model", "ct-tissues")
        warning.wait_for(state="detached", timeout=10_000)


def test_cancel_writes_nothing(session):
    """The worker runs one job at a time: an organ job queued behind a vessel job on the CTA
    (seconds of work) is surely still running when Cancel is clicked; ct-tissues alone takes
    a fraction of a second on the sample CT."""
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segorgan_cancel", app):
        choose(page, "segorgan-output", "New segmentation")
        load_server_path(page, CTA, CTA_NAME)
        before = listed_segmentations(page)
        open_panel(page, "segvessel", "segvessel-run")
        choose(page, "segvessel-volume", CTA_NAME)
        page.get_by_test_id("segvessel-run").click()
        page.get_by_test_id("segvessel-progress").wait_for(timeout=60_000)
        assert SAMPLE_NAME in page.get_by_test_id("segorgan-volume").inner_text()
        page.get_by_test_id("segorgan-run").click()
        page.get_by_test_id("segorgan-progress").wait_for(timeout=60_000)
        page.get_by_test_id("segorgan-cancel").click()
        job = page.get_by_test_id("segorgan-job")
        job.get_by_text("Cancelled", exact=True).wait_for(timeout=60_000)
        page.get_by_test_id("segvessel-cancel").click()
        page.get_by_test_id("segvessel-job").get_by_text("Cancelled", exact=True).wait_for(timeout=60_000)
        wait_client_idle(page)  # both jobs have said Cancelled and the page has nothing in flight
        time.sleep(1.0)  # not a wait for something: a result written after the cancel would be listed by now
        assert listed_segmentations(page) == before, "a cancelled job left a segmentation"
        assert results_shown(page, "segorgan") == 2
        assert page.get_by_test_id("app-error").count() == 0


def test_the_result_is_saved_and_loaded_back(session, tmp_path):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segorgan_save", app):
        segmentation_file = tmp_path / "organs.seg.nrrd"
        table_file = tmp_path / "organ_statistics.csv"
        save_node(page, RESULT_SEGMENTATION, segmentation_file)
        save_node(page, STATISTICS_TABLE, table_file)
        lines = table_file.read_text().strip().splitlines()
        assert "Volume [mL]" in lines[0] and len(lines) > 1
        assert any(line.split(",")[0].strip('"') == "body" for line in lines[1:]), lines
        load_server_path(page, segmentation_file, "organs")
        load_server_path(page, table_file, "organ_statistics")
        assert "organs" in listed_segmentations(page)
