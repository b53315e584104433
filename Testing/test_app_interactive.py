"""The SegInteractive panel in a real browser: clicks in the axial view become a mask, click by click.

``segforge app`` on the sample abdominal CT, Chromium under Playwright: a session is started,
positive and negative clicks are placed in the axial (Red) slice view, each one must change
the segment's voxel count in the status line and the yellow mask drawn in that view; undo,
redo, a box from two corners, Accept, then save (.seg.nrrd) and load back. The bad inputs
(no session, a click outside the image, a second session; no volume: test_app_browser.py)
must say what to do.

Printed, not asserted (``-s``): the click-to-mask time, median over the clicks, measured in
the page (click -> status with the new count) and on the server (point defined -> segment
written).
"""
from __future__ import annotations

import contextlib

import re
import statistics
import time

import numpy as np
import pytest
from conftest import REPO

from app_browser import (ARTEFACTS, SAMPLE_NAME, artefacts_on_failure, click_view, close_error, error_text,
                         keep_screenshot, load_server_path, open_app, save_node, view_frame_src,
                         view_pixels, wait_client_idle, wait_frame_change, wait_frame_stable, wait_shows_an_image)

STATUS = "seginteractive-status"
#: The thoracic CTA: a box over all of it keeps the worker busy for seconds (time to press Cancel).
CTA = REPO / "Resources" / "SampleData" / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz"
#: Where the liver lies in the axial view of the sample CT (fractions of the view, fit to the volume).
LIVER = ((0.25, 0.45), (0.30, 0.60))
#: A box around the lower part of the liver, as two opposite corners (fractions of the view).
BOX = ((0.17, 0.42), (0.42, 0.75))


@contextlib.contextmanager
def interactive_app(browser, name: str):
    """An app on the sample CT with the SegInteractive panel open (its status frames watched)."""
    with open_app(browser, name=name) as session:
        page = session["page"]
        with artefacts_on_failure(page, f"{name}_start", session["app"]):
            page.get_by_test_id("scene-nodes").get_by_text(SAMPLE_NAME, exact=True).wait_for(timeout=30_000)
            wait_shows_an_image(page, "Red")
            page.get_by_test_id("panel-seginteractive").locator("button").first.click()
            page.get_by_test_id("seginteractive-start").wait_for(state="visible", timeout=10_000)
            watch_status_frames(page)
        yield session


@pytest.fixture(scope="module")
def app(browser):
    """One app on the sample CT with the SegInteractive panel open."""
    with interactive_app(browser, "seginteractive") as session:
        session["server_ms"], session["page_ms"] = [], []
        yield session


@pytest.fixture(autouse=True)
def no_session_left_open(request):
    """Before each test on the shared app: no message shown, no session open. A failed test leaves them,
    and every test after it would fail on them instead of on what it checks."""
    if "app" not in request.fixturenames:
        return
    page = request.getfixturevalue("app")["page"]
    close_error(page)
    discard = page.get_by_test_id("seginteractive-discard")
    if discard.is_enabled():
        discard.click()
        page.get_by_test_id(STATUS).filter(has_text="Discarded").wait_for(timeout=30_000)
        wait_frame_stable(page, "Red")  # the frames without the discarded mask have come


# -- helpers ---------------------------------------------------------------------------------------

def status(page) -> str:
    return page.get_by_test_id(STATUS).inner_text()


def counts(text: str) -> tuple[int, int]:
    """(voxels, prompts) from the status line."""
    voxels = re.search(r"(\d+) voxels", text)
    prompts = re.search(r"(\d+) prompts", text)
    assert voxels and prompts, f"the status shows no voxel or prompt count: {text!r}"
    return int(voxels.group(1)), int(prompts.group(1))


def wait_prompts(page, prompts: int, timeout_s: float = 90.0) -> str:
    """Wait until the status reports ``prompts`` prompts (a click or undo is done); fail on an error."""
    deadline = time.perf_counter() + timeout_s
    while True:
        text = status(page)
        if re.search(rf"\b{prompts} prompts", text) and "voxels" in text:
            return text
        error = page.get_by_test_id("app-error")
        assert not error.count(), f"an error instead of the result: {error.inner_text()}"
        assert time.perf_counter() < deadline, f"no result with {prompts} prompts within {timeout_s} s: {text!r}"
        time.sleep(0.02)


def watch_status_frames(page) -> None:
    """Record in the page, at each change of the status line, the Red view's frame at that moment.

    The app sends a prompt's (or an undo's) status before the frames showing its result: a frame
    other than the one recorded with that status shows the result (see wait_frame_after_status).
    """
    page.evaluate("""() => { if (window.segforgeStatusFrame) return;
        const record = window.segforgeStatusFrame = {text: null, src: null};
        const red = () => { const m = document.querySelector("span[data-view='Red']");
                            const img = m && m.parentElement.querySelector('img'); return img ? img.src : ''; };
        new MutationObserver(() => {
            const line = document.querySelector('[data-testid="seginteractive-status"]');
            const text = line ? line.textContent.trim() : null;
            if (text !== record.text) { record.text = text; record.src = red(); }
        }).observe(document.body, {subtree: true, childList: true, characterData: true}); }""")


def wait_frame_after_status(page, text: str, timeout_ms: int = 30_000) -> None:
    """Wait until the Red view shows a frame sent after the status line became ``text``."""
    try:
        page.wait_for_function(
            "(text) => { const record = window.segforgeStatusFrame;"
            " const m = document.querySelector(`span[data-view='Red']`);"
            " const img = m && m.parentElement.querySelector('img');"
            " return !!record && record.text === text && !!img && img.src !== record.src; }",
            arg=text.strip(), timeout=timeout_ms)
    except Exception as error:  # Playwright's timeout: say what was waited for
        record = page.evaluate("() => window.segforgeStatusFrame")
        raise AssertionError(f"no Red frame after the status {text!r} within {timeout_ms / 1000:.0f} s "
                             f"(recorded: {record}, frame now {view_frame_src(page, 'Red')!r})") from error


def red_pixels(page) -> np.ndarray:
    return view_pixels(page, "Red")


def yellow(rgb: np.ndarray) -> np.ndarray:
    """Where the (yellow, semi-transparent) segment is drawn: never grey CT, green or red points."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - b > 50) & (g - b > 40) & (np.abs(r - g) < 60)


def wait_mask_drawn(page, before: int, status_text: str, timeout_s: float = 20.0) -> np.ndarray:
    """The Red view's pixels once a frame sent after the click's result (``status_text``) is shown and two
    readings agree on a mask area other than ``before`` pixels: the click's point marker, drawn before
    the result, is not taken for the mask, nor is a frame still being swapped in."""
    wait_frame_after_status(page, status_text)
    deadline = time.perf_counter() + timeout_s
    previous = None
    while True:
        rgb = red_pixels(page)
        area = int(yellow(rgb).sum())
        if area != before and area == previous:
            return rgb
        assert time.perf_counter() < deadline, f"the axial view's mask covers {area} pixels, {before} before the click"
        previous = area
        time.sleep(0.2)


def settled(measure, done=None, timeout_s: float = 10.0) -> int:
    """``measure()`` once ``done(value)`` holds (polled until ``timeout_s``, then the last value: the caller
    asserts), or without ``done`` once two readings 0.3 s apart agree (the frames have arrived)."""
    deadline = time.perf_counter() + timeout_s
    value = measure()
    while time.perf_counter() < deadline:
        if done is not None and done(value):
            break
        time.sleep(0.3)
        value, previous = measure(), value
        if done is None and value == previous:
            break
    return value


def volume_box(rgb: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Corners (fractions of the view) just inside where the axial view shows the volume, clear of the
    slice slider drawn over the view's bottom."""
    shown = rgb.mean(axis=2) > 30
    rows, cols = np.nonzero(shown.mean(axis=1) > 0.2)[0], np.nonzero(shown.mean(axis=0) > 0.2)[0]
    h, w = shown.shape
    return ((max(cols[0] + 4, 0.05 * w) / w, max(rows[0] + 4, 0.08 * h) / h),
            (min(cols[-1] - 4, 0.95 * w) / w, min(rows[-1] - 4, 0.85 * h) / h))


def click_red(page, fx: float, fy: float) -> float:
    return click_view(page, "Red", fx, fy)


def prompt_click(app, fx: float, fy: float, prompts: int) -> tuple[str, np.ndarray]:
    """Click, wait for the result (``prompts`` prompts now), record both timings; (status, Red pixels)."""
    page = app["page"]
    before = int(yellow(red_pixels(page)).sum())
    clicked = click_red(page, fx, fy)
    text = wait_prompts(page, prompts)
    app["page_ms"].append((time.perf_counter() - clicked) * 1000)
    server = re.search(r"click to mask (\d+) ms", text)
    assert server, f"the status does not say how long the click took: {text!r}"
    app["server_ms"].append(int(server.group(1)))
    return text, wait_mask_drawn(page, before, text)


# -- tests -----------------------------------------------------------------------------------------

def test_prompts_without_a_session_say_to_start_one(app):
    page = app["page"]
    with artefacts_on_failure(page, "seginteractive_no_session", app["app"]):
        page.get_by_test_id("seginteractive-positive").click()
        text = error_text(page)
        assert "No interactive session is open" in text and "Start session" in text, text
        close_error(page)


def test_clicks_undo_redo_box_accept_save(app, tmp_path):
    page = app["page"]
    with artefacts_on_failure(page, "seginteractive_clicks", app["app"]):
        start_pixels = red_pixels(page)
        for fx, fy in LIVER:  # the clicks land on soft tissue of the CT, not air or bone
            x, y = int(fx * start_pixels.shape[1]), int(fy * start_pixels.shape[0])
            grey = start_pixels[y - 3:y + 4, x - 3:x + 4].mean()
            assert 90 < grey < 230, f"({fx}, {fy}) of the axial view is no organ (grey {grey:.0f})"
        assert yellow(start_pixels).sum() == 0, "a mask is drawn before any click"

        page.get_by_test_id("seginteractive-start").click()
        started = wait_prompts(page, 0)
        assert counts(started) == (0, 0) and f"'{SAMPLE_NAME}'" in started, started
        assert page.get_by_test_id("scene-nodes").get_by_text(f"{SAMPLE_NAME} segmentation", exact=True).count()

        # A second session while this one is open is refused by the Logic, saying what to do.
        page.get_by_test_id("seginteractive-start").click()
        assert "already open" in error_text(page)
        close_error(page)

        # Three clicks: positive on the liver, another positive, then negative on part of the mask.
        history = []
        text, rgb = prompt_click(app, *LIVER[0], prompts=1)
        history.append(counts(text)[0])
        assert history[0] > 0, text
        drawn = yellow(rgb)
        x, y = int(LIVER[0][0] * rgb.shape[1]), int(LIVER[0][1] * rgb.shape[0])
        assert drawn[y - 25:y + 26, x - 25:x + 26].any(), "no mask drawn around the positive click"
        text, rgb = prompt_click(app, *LIVER[1], prompts=2)
        history.append(counts(text)[0])
        assert history[1] != history[0], f"the second click changed nothing: {text}"
        # The negative click: inside the drawn mask (a few pixels in from its outline, which may lie
        # just outside the mask's voxels), as far as possible from both positive clicks. A negative
        # click changes only the region around it (issue 17), so one beside the mask may change nothing.
        from scipy import ndimage

        inner = ndimage.binary_erosion(yellow(rgb), iterations=4)
        ys, xs = np.nonzero(inner if inner.any() else yellow(rgb))
        assert len(xs), "the axial view shows no mask after two positive clicks"
        clicks = np.array([(fx * rgb.shape[1], fy * rgb.shape[0]) for fx, fy in LIVER])
        far = np.argmax(np.min(np.hypot(xs[:, None] - clicks[:, 0], ys[:, None] - clicks[:, 1]), axis=1))
        page.get_by_test_id("seginteractive-negative").click()
        wait_client_idle(page)  # the mode is set before the click in the view
        text, rgb = prompt_click(app, xs[far] / rgb.shape[1], ys[far] / rgb.shape[0], prompts=3)
        history.append(counts(text)[0])
        assert history[2] != history[1], f"the negative click changed nothing: {text}"
        print(f"\nSegInteractive voxel counts after the clicks: {history}")

        # Undo: back to the count of two clicks; Redo: the negative click again.
        page.get_by_test_id("seginteractive-undo").click()
        assert counts(wait_prompts(page, 2))[0] == history[1]
        page.get_by_test_id("seginteractive-redo").click()
        assert counts(wait_prompts(page, 3))[0] == history[2]

        # A box: two opposite corners in the axial view.
        page.get_by_test_id("seginteractive-box").click()
        wait_client_idle(page)
        rgb = red_pixels(page)
        (x0, y0), (x1, y1) = ((int(fx * rgb.shape[1]), int(fy * rgb.shape[0])) for fx, fy in BOX)
        inside = (slice(y0 + 6, y1 - 6), slice(x0 + 6, x1 - 6))  # not the box's (yellow) outline
        before = int(yellow(rgb)[inside].sum())
        click_red(page, *BOX[0])
        page.get_by_test_id(STATUS).filter(has_text="Now click the opposite corner").wait_for(timeout=30_000)
        click_red(page, *BOX[1])
        text = wait_prompts(page, 4)
        boxed = counts(text)[0]
        assert boxed != history[2], f"the box changed nothing: {status(page)}"
        wait_frame_after_status(page, text)
        deadline = time.perf_counter() + 20
        while int(yellow(red_pixels(page))[inside].sum()) in (before, 0):
            assert time.perf_counter() < deadline, f"the mask inside the box still covers {before} pixels"
            time.sleep(0.2)
        keep_screenshot(page, "seginteractive")

        # Undo hides the box's (yellow) outline with its mask, Redo shows both again.
        band = np.zeros(rgb.shape[:2], bool)
        band[y0 - 3:y1 + 4, x0 - 3:x1 + 4] = True
        band[y0 + 4:y1 - 3, x0 + 4:x1 - 3] = False
        pre_box = yellow(rgb)
        outline = lambda: int((yellow(red_pixels(page)) & band & ~pre_box).sum())  # noqa: E731
        drawn_box = settled(outline)
        assert drawn_box > 150, f"no box outline drawn in the axial view ({drawn_box} pixels)"
        page.get_by_test_id("seginteractive-undo").click()
        text = wait_prompts(page, 3)
        assert counts(text)[0] == history[2]
        wait_frame_after_status(page, text)  # a frame showing the undo, not one from before it
        undone_box = settled(outline, lambda n: n < drawn_box / 4)
        assert undone_box < drawn_box / 4, f"the box is still drawn after Undo: {undone_box} of {drawn_box} pixels"
        page.get_by_test_id("seginteractive-redo").click()
        text = wait_prompts(page, 4)
        assert counts(text)[0] == boxed
        wait_frame_after_status(page, text)
        redone_box = settled(outline, lambda n: n > drawn_box / 2)
        assert redone_box > drawn_box / 2, f"the box is not drawn after Redo: {redone_box} of {drawn_box} pixels"
        print(f"SegInteractive box outline pixels in the axial view: drawn {drawn_box}, after undo {undone_box}, "
              f"after redo {redone_box}")

        shown = view_frame_src(page, "Red")
        page.get_by_test_id("seginteractive-accept").click()
        kept = page.get_by_test_id("seginteractive-kept")
        kept.get_by_text("lesion", exact=True).wait_for(timeout=30_000)
        assert f"{boxed} voxels" in kept.inner_text(), kept.inner_text()
        assert "Kept segment 'lesion'" in status(page)
        wait_frame_change(page, "Red", shown)  # the prompts' markers taken away: the view is drawn again
        wait_frame_stable(page, "Red")
        assert yellow(red_pixels(page)).any(), "the accepted segment is no longer drawn"

        ms_page, ms_server = app["page_ms"], app["server_ms"]
        print(f"SegInteractive click -> mask: median {statistics.median(ms_page):.0f} ms in the page "
              f"(click -> status with the new count; all {[round(t) for t in ms_page]} ms), "
              f"median {statistics.median(ms_server):.0f} ms on the server (point defined -> segment written; "
              f"all {ms_server} ms)")

        # Save the segmentation as .seg.nrrd through the Save panel, and load it back.
        path = ARTEFACTS / "seginteractive_lesion.seg.nrrd"
        path.unlink(missing_ok=True)
        save_node(page, f"{SAMPLE_NAME} segmentation", path)
        header = path.read_bytes()[:4096].decode("latin-1")
        assert re.search(r"Segment\d+_Name:=lesion\n", header), "the saved file has no segment 'lesion'"
        load_server_path(page, path, "seginteractive_lesion")


def test_reset_returns_to_the_segment_the_session_found(app):
    """After a click, Reset takes the segment back to how the session found it (a new segment: empty)."""
    page = app["page"]
    with artefacts_on_failure(page, "seginteractive_reset", app["app"]):
        page.get_by_test_id("seginteractive-start").click()
        assert counts(wait_prompts(page, 0)) == (0, 0)
        assert counts(prompt_click(app, *LIVER[0], prompts=1)[0])[0] > 0
        # The count is the segment's voxels as the scene holds them (not the engine's copy).
        page.get_by_test_id("seginteractive-reset").click()
        assert counts(wait_prompts(page, 0)) == (0, 0), status(page)
        assert page.get_by_test_id("seginteractive-redo").is_disabled()
        assert page.get_by_test_id("seginteractive-undo").is_disabled()
        page.get_by_test_id("seginteractive-discard").click()
        page.get_by_test_id(STATUS).filter(has_text="Discarded").wait_for(timeout=30_000)


def test_cancel_of_a_slow_box_keeps_the_segment(browser):
    """A box over the whole thoracic CTA (seconds of the worker's time; a click on the small sample CT is
    done before a Cancel can arrive) is cancelled: nothing is written, the prompt is not counted."""
    with open_app(browser, "--data", str(CTA), name="seginteractive_cancel") as session:
        page = session["page"]
        with artefacts_on_failure(page, "seginteractive_cancel", session["app"]):
            page.get_by_test_id("scene-nodes").get_by_text(CTA.name.split(".")[0], exact=True).wait_for(timeout=60_000)
            page.get_by_test_id("panel-seginteractive").locator("button").first.click()
            page.get_by_test_id("seginteractive-start").click()
            assert counts(wait_prompts(page, 0)) == (0, 0)
            page.get_by_test_id("seginteractive-box").click()
            wait_client_idle(page)  # the mode is set before the clicks in the view
            wait_shows_an_image(page, "Red")  # the corners are found in the view's pixels
            corner_a, corner_b = volume_box(red_pixels(page))
            click_red(page, *corner_a)
            page.get_by_test_id(STATUS).filter(has_text="Now click the opposite corner").wait_for(timeout=30_000)
            click_red(page, *corner_b)
            page.get_by_test_id(STATUS).filter(has_text="Segmenting the box").wait_for(timeout=30_000)
            # A click while the box runs (6 s here) is refused at once, saying what to do.
            page.get_by_test_id("seginteractive-positive").click()
            page.get_by_test_id(STATUS).filter(has_text="positive click").wait_for(timeout=30_000)
            click_red(page, 0.5, 0.5)
            text = error_text(page)
            assert "The click was not used" in text and "wait for it" in text, text
            close_error(page)
            page.get_by_test_id("seginteractive-cancel").click(timeout=30_000)
            page.get_by_test_id(STATUS).filter(has_text="was not used").wait_for(timeout=90_000)
            text = status(page)
            assert counts(text) == (0, 0), f"the cancelled box changed the segment: {text}"
            assert page.get_by_text("Cancelled", exact=True).count(), "the job does not say it was cancelled"


def test_a_click_outside_the_image_is_refused(app):
    page = app["page"]
    with artefacts_on_failure(page, "seginteractive_outside", app["app"]):
        page.get_by_test_id("seginteractive-start").click()
        wait_prompts(page, 0)
        click_red(page, 0.97, 0.5)  # black, right of the volume (on the axial plane)
        text = error_text(page)
        assert "outside the image" in text and "place it on the volume" in text, text
        assert counts(status(page)) == (0, 0)
        close_error(page)
        page.get_by_test_id("seginteractive-discard").click()
        page.get_by_test_id(STATUS).filter(has_text="Discarded").wait_for(timeout=30_000)
