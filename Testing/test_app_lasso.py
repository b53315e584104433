"""Lasso and scribble in the web app, in a real browser: drags in the axial view become prompts.

``segforge app`` on the sample abdominal CT, Debian's Chromium under Playwright (as the
other app tests). A session is started; in Lasso mode a loop is dragged around part of the
liver in the axial (Red) view: the status must count one prompt and voxels, and the view
must show the mask filling the loop; in Scribble mode a stroke dragged over the liver
elsewhere must change the voxel count and the mask drawn; a negative lasso must take
voxels away; Undo must go back to the count before it. A lasso dragged as a short line
(no loop) is refused with the Logic's message.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from app_browser import (artefacts_on_failure, close_error, error_text, keep_screenshot, open_app, view_image,
                         wait_client_idle)
from test_app_interactive import (STATUS, counts, interactive_app, red_pixels, wait_frame_after_status, wait_prompts,
                                  watch_status_frames, yellow)

#: The loop dragged around part of the liver (centre and radii, fractions of the axial view).
LOOP = ((0.28, 0.52), (0.07, 0.08))
#: A stroke over the liver below the loop (fractions of the view).
STROKE = ((0.24, 0.66), (0.32, 0.68))


@pytest.fixture(scope="module")
def app(browser):
    with interactive_app(browser, "seginteractive_lasso") as session:
        yield session


def loop_points(n: int = 24) -> list[tuple[float, float]]:
    (cx, cy), (rx, ry) = LOOP
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


def drag_red(page, fractions: list[tuple[float, float]]) -> None:
    """Press at the first position, move through the others (several moves between two), release."""
    box = view_image(page, "Red").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in fractions]
    page.mouse.move(xy[0][0] - 3, xy[0][1] - 3)
    page.mouse.move(*xy[0])
    time.sleep(0.3)
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=3)
        time.sleep(0.02)
    page.mouse.up()


def loop_mask(shape: tuple[int, ...], shrink_px: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """The view's pixels inside the loop (an ellipse) scaled by ``scale``, ``shrink_px`` in from its outline."""
    (cx, cy), (rx, ry) = LOOP
    h, w = shape[:2]
    y, x = np.mgrid[:h, :w]
    return (((x - cx * w) / (scale * rx * w - shrink_px)) ** 2
            + ((y - cy * h) / (scale * ry * h - shrink_px)) ** 2 <= 1.0)


def wait_yellow(page, text: str, done, timeout_s: float = 20.0) -> np.ndarray:
    """The Red view's pixels once a frame sent after ``text`` shows a mask for which ``done(yellow)`` holds."""
    wait_frame_after_status(page, text)
    deadline = time.perf_counter() + timeout_s
    while True:
        rgb = red_pixels(page)
        if done(yellow(rgb)):
            return rgb
        assert time.perf_counter() < deadline, "the axial view never showed the mask expected"
        time.sleep(0.2)



def set_draw_negative(page, negative: bool) -> None:
    """Turn the panel's "erase" toggle on or off (a button whose aria-pressed says which)."""
    button = page.get_by_test_id("seginteractive-draw-negative")
    wanted = "true" if negative else "false"
    if button.get_attribute("aria-pressed") != wanted:
        button.click()
    page.wait_for_function(
        "([id, wanted]) => document.querySelector(`[data-testid='${id}']`)?.getAttribute('aria-pressed') === wanted",
        arg=["seginteractive-draw-negative", wanted], timeout=10_000)

def test_lasso_and_scribble_dragged_in_the_axial_view_change_the_mask(app):
    page = app["page"]
    with artefacts_on_failure(page, "seginteractive_lasso", app["app"]):
        page.get_by_test_id("seginteractive-start").click()
        assert counts(wait_prompts(page, 0)) == (0, 0)
        rgb = red_pixels(page)
        inside = loop_mask(rgb.shape, shrink_px=8)  # clear of the loop's (green) line
        grey = rgb.mean(axis=2)[inside]
        assert 90 < np.median(grey) < 230, f"the loop is not on soft tissue (grey {np.median(grey):.0f})"
        assert not yellow(rgb).any()

        # A lasso: a loop dragged around part of the liver fills that loop in this slice.
        page.get_by_test_id("seginteractive-lasso").click()
        wait_client_idle(page)
        drag_red(page, loop_points())
        text = wait_prompts(page, 1)
        lassoed = counts(text)[0]
        assert "lasso applied" in text and lassoed > 0, text
        rgb = wait_yellow(page, text, lambda drawn: drawn[inside].mean() > 0.9)
        drawn = yellow(rgb)
        print(f"\nlasso: {lassoed} voxels; the loop's inside is {drawn[inside].mean():.0%} masked in the axial view")

        # A scribble: a stroke dragged over the liver below the loop adds to the lesion.
        page.get_by_test_id("seginteractive-scribble").click()
        wait_client_idle(page)
        before = int(drawn.sum())
        drag_red(page, [STROKE[0], ((STROKE[0][0] + STROKE[1][0]) / 2, (STROKE[0][1] + STROKE[1][1]) / 2), STROKE[1]])
        text = wait_prompts(page, 2)
        scribbled = counts(text)[0]
        assert "scribble applied" in text and scribbled != lassoed, text
        wait_yellow(page, text, lambda now: abs(int(now.sum()) - before) > 50)
        print(f"scribble: {scribbled} voxels (after the lasso {lassoed})")

        # A negative lasso inside the mask takes voxels away; Undo brings them back.
        set_draw_negative(page, True)
        page.get_by_test_id("seginteractive-lasso").click()
        wait_client_idle(page)
        (cx, cy), (rx, ry) = LOOP
        small = [(cx + 0.4 * rx * np.cos(a), cy + 0.4 * ry * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 16, False)]
        drag_red(page, small)
        text = wait_prompts(page, 3)
        erased = counts(text)[0]
        assert "negative lasso applied" in text.lower() and erased < scribbled, (text, scribbled)
        hole = loop_mask(rgb.shape, shrink_px=6, scale=0.4)  # inside the negative loop, clear of its (red) line
        wait_yellow(page, text, lambda now: not now[hole].any())
        keep_screenshot(page, "seginteractive_lasso")
        page.get_by_test_id("seginteractive-undo").click()
        assert counts(wait_prompts(page, 2))[0] == scribbled


def test_a_lasso_without_a_loop_is_refused_saying_what_to_do(app):
    page = app["page"]
    with artefacts_on_failure(page, "seginteractive_lasso_line", app["app"]):
        close_error(page)
        if page.get_by_test_id("seginteractive-discard").is_enabled():
            page.get_by_test_id("seginteractive-discard").click()
            page.get_by_test_id(STATUS).filter(has_text="Discarded").wait_for(timeout=30_000)
        page.get_by_test_id("seginteractive-start").click()
        wait_prompts(page, 0)
        set_draw_negative(page, False)
        page.get_by_test_id("seginteractive-lasso").click()
        wait_client_idle(page)
        drag_red(page, [(0.28, 0.52), (0.2801, 0.5201)])  # a click, not a loop
        text = error_text(page)
        assert "fewer than 3 points" in text or "encloses no voxel" in text, text
        assert "draw a loop around the object" in text.lower(), text  # what to do
        assert page.get_by_test_id("seginteractive-undo").is_disabled(), "a refused lasso counts as a prompt"
        assert not page.get_by_test_id("scene-nodes").get_by_text("SegInteractive lasso").count(), \
            "the refused lasso's curve stayed in the scene"
        close_error(page)


def test_a_lasso_on_an_oblique_anisotropic_volume_fills_exactly_its_loop(browser, tmp_path):
    """The ball of the engine's lasso tests (oblique direction, 0.7 x 1.3 x 2.9 mm) in the app: the
    slice views show the volume's own slices (trame-slicer turns them to the volume's axes), and a
    diamond dragged over the ball is masked inside and not in the corners of its bounding box (the
    lasso's slice is exactly its loop there)."""
    from segforge.image_io import write_image
    from test_interactive_lasso import ball_image

    from app_browser import wait_frame_stable

    path = write_image(ball_image()[0], tmp_path / "oblique_ball.nrrd")
    with open_app(browser, "--data", str(path), name="seginteractive_lasso_oblique") as session:
        page = session["page"]
        with artefacts_on_failure(page, "seginteractive_lasso_oblique", session["app"]):
            page.get_by_test_id("scene-nodes").get_by_text("oblique_ball", exact=True).wait_for(timeout=60_000)
            page.get_by_test_id("panel-seginteractive").locator("button").first.click()
            watch_status_frames(page)
            page.get_by_test_id("seginteractive-start").click()
            assert counts(wait_prompts(page, 0)) == (0, 0)
            page.get_by_test_id("seginteractive-lasso").click()
            wait_client_idle(page)
            wait_frame_stable(page, "Red")
            rgb = red_pixels(page)
            grey = rgb.mean(axis=2)
            ball = grey > 0.5 * (np.percentile(grey, 99.5) + np.median(grey[grey > 10]))
            ys, xs = np.nonzero(ball)
            assert len(xs) > 500, f"the axial view shows no ball ({len(xs)} bright pixels)"
            h, w = grey.shape
            cx, cy, radius = xs.mean(), ys.mean(), np.sqrt(len(xs) / np.pi)
            half = 0.8 * radius  # the diamond's half diagonal, pixels
            corners = [(cx + half, cy), (cx, cy + half), (cx - half, cy), (cx, cy - half)]
            path_px = [tuple(a + (b - a) * t for a, b in zip(p, q))
                       for p, q in zip(corners, corners[1:] + corners[:1]) for t in np.linspace(0, 1, 6)[:-1]]
            drag_red(page, [(x / w, y / h) for x, y in path_px] + [(corners[0][0] / w, corners[0][1] / h)])
            text = wait_prompts(page, 1)
            assert "lasso applied" in text and counts(text)[0] > 0, text
            y, x = np.mgrid[:h, :w]
            taxicab = np.abs(x - cx) + np.abs(y - cy)
            margin = 0.15 * half
            inside = taxicab < half - 1.5 * margin
            in_box = (np.abs(x - cx) < half - margin) & (np.abs(y - cy) < half - margin)
            corner = (taxicab > half + 1.5 * margin) & in_box
            assert corner.sum() > 100 and inside.sum() > 1000
            rgb = wait_yellow(page, text, lambda drawn: drawn[inside].mean() > 0.9)
            drawn = yellow(rgb)
            print(f"\noblique lasso: inside {drawn[inside].mean():.0%} masked, bounding-box corners "
                  f"{drawn[corner].mean():.0%} masked, the ball {drawn[ball].mean():.0%} masked")
            assert drawn[corner].mean() < 0.02, "the lasso's slice is masked beyond its loop"
