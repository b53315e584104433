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
from scipy import ndimage

from app_browser import (artefacts_on_failure, click_view, keep_screenshot, load_server_path, open_app, open_panel,
                         save_node, view_frame_src, view_image, view_pixels, wait_client_idle)
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


@pytest.fixture(scope="module")
def reader():
    """A headless scene in this process, to read the saved files back."""
    from segforge.mrml import create_headless_slicer

    slicer_app = create_headless_slicer(install=True)
    yield slicer_app
    slicer_app.close()


def test_seed_points_and_a_box_limit_the_vessels(session, reader, tmp_path):
    """A box drawn with two clicks around a vessel of the first run, a seed clicked on that vessel:
    the new segment lies inside the box and touches the seed, and is smaller than the whole tree."""
    from segforge.mrml import (image_from_volume_node, load_markups, load_segmentation, load_volume,
                               mask_from_segment, segment_ids_by_name)

    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segvessel_seeds_box", app):
        inputs = page.get_by_test_id("segvessel-inputs")
        assert "no seed points; no box" in inputs.inner_text()
        rgb = view_pixels(page, "Red")  # the first run's vessels, drawn red over the CT
        h, w = rgb.shape[:2]
        ys, xs = np.nonzero((rgb[..., 0] > 150) & (rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60))
        assert len(xs), "no vessel is drawn in the axial view"
        nearest = np.argmin(np.hypot(xs - w / 2, ys - h / 2))
        fx, fy = xs[nearest] / w, ys[nearest] / h
        page.get_by_test_id("segvessel-roi").click()
        # the hint comes from the server once it places points: a click before that is no corner
        page.get_by_text("Click two opposite corners of the box in a slice view.").wait_for(timeout=30_000)
        wait_client_idle(page)
        click_view(page, "Red", max(fx - 0.15, 0.03), max(fy - 0.15, 0.03))
        click_view(page, "Red", min(fx + 0.15, 0.97), min(fy + 0.15, 0.85))
        inputs.filter(has_text="box").filter(has_text=" mm").wait_for(timeout=30_000)
        page.get_by_test_id("segvessel-seeds").click()
        page.get_by_text("Click on a vessel in a slice view to add a seed point", exact=False).wait_for(timeout=30_000)
        wait_client_idle(page)
        click_view(page, "Red", fx, fy)
        inputs.filter(has_text="1 seed point;").wait_for(timeout=30_000)
        page.get_by_test_id("segvessel-seeds").click()  # stop placing
        page.get_by_test_id("segvessel-segment-name").locator("input").fill("Vessels in box")
        page.get_by_test_id("segvessel-centerlines").locator("input").set_checked(False)
        wait_client_idle(page)
        shown = results_shown(page, "segvessel")
        started = time.perf_counter()
        page.get_by_test_id("segvessel-run").click()
        wait_results(page, "segvessel", shown + 1)
        print(f"\nSegVessel: box and seed run shown {time.perf_counter() - started:.1f} s after the click")
        assert "Vessels in box" in segment_names(page, "segvessel")

        files = {name: tmp_path / name for name in ("vessels.seg.nrrd", "box.mrk.json", "seeds.mrk.json")}
        for node, name in ((RESULT_SEGMENTATION, "vessels.seg.nrrd"), ("SegVessel ROI", "box.mrk.json"),
                           ("SegVessel seeds", "seeds.mrk.json")):
            save_node(page, node, files[name])
        cta = load_volume(CTA)
        grid = image_from_volume_node(cta)
        segmentation = load_segmentation(files["vessels.seg.nrrd"])
        ids = {name: found[0] for name, found in segment_ids_by_name(segmentation).items()}
        in_box = mask_from_segment(segmentation, ids["Vessels in box"], cta).array
        whole = mask_from_segment(segmentation, ids["Vessels"], cta).array
        assert 0 < in_box.sum() < whole.sum(), (in_box.sum(), whole.sum())
        kji = np.argwhere(in_box)
        ras = (grid.ijk_to_ras() @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T[:, :3]
        bounds = [0.0] * 6
        load_markups(files["box.mrk.json"]).GetRASBounds(bounds)
        slack = max(grid.spacing)
        low, high = np.array(bounds[0::2]) - slack, np.array(bounds[1::2]) + slack
        assert (ras >= low).all() and (ras <= high).all(), \
            f"vessel voxels outside the box: {ras.min(0).round(1)}..{ras.max(0).round(1)} vs {low}..{high}"
        seed = [0.0, 0.0, 0.0]
        load_markups(files["seeds.mrk.json"]).GetNthControlPointPositionWorld(0, seed)
        assert np.linalg.norm(ras - seed, axis=1).min() <= 2 * slack, "the segment does not touch the seed"
        pieces = ndimage.label(in_box, structure=np.ones((3, 3, 3)))[1]
        assert pieces == 1, f"{pieces} separate vessel pieces: the seed should keep only the one it touches"

        page.get_by_test_id("segvessel-seeds-clear").click()
        page.get_by_test_id("segvessel-roi-clear").click()
        inputs.filter(has_text="no seed points; no box").wait_for(timeout=30_000)


def test_one_panel_places_with_the_clicks_at_a_time(session):
    """SegInteractive's prompts and SegVessel's seeds both place with clicks in the views: the panel
    that starts placing takes the clicks, and the other one's buttons stop saying it places."""
    page, app = session["page"], session["app"]

    def wait_active(test_id: str, on: bool) -> None:
        """Until the mode button ``test_id`` shows (flat) or no longer shows (outlined) its mode is on."""
        page.wait_for_function(
            "([id, on]) => { const b = document.querySelector(`[data-testid=\"${id}\"]`);"
            " return !!b && b.classList.contains('v-btn--variant-flat') === on; }", arg=[test_id, on], timeout=30_000)

    with artefacts_on_failure(page, "segvessel_placing", app):
        open_panel(page, "seginteractive", "seginteractive-start")
        page.get_by_test_id("seginteractive-start").click()
        page.get_by_test_id("seginteractive-status").filter(has_text="0 prompts").wait_for(timeout=60_000)
        wait_active("seginteractive-positive", True)  # a session starts placing positive clicks
        open_panel(page, "segvessel", "segvessel-seeds")
        page.get_by_test_id("segvessel-seeds").click()
        wait_active("segvessel-seeds", True)
        wait_active("seginteractive-positive", False)
        open_panel(page, "seginteractive", "seginteractive-positive")
        page.get_by_test_id("seginteractive-status").filter(has_text="place for another panel").wait_for(timeout=30_000)
        page.get_by_test_id("seginteractive-positive").click()
        wait_active("seginteractive-positive", True)
        wait_active("segvessel-seeds", False)
        page.get_by_test_id("seginteractive-discard").click()
        page.get_by_test_id("seginteractive-status").filter(has_text="Discarded").wait_for(timeout=30_000)
