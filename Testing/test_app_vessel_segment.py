"""The SegVessel panel from a segment the user already has, in a real browser: ``segforge app``
with VMTK's CE-MRA and its level-set mask as a segmentation, a source and a target clicked on
the segment in the axial view, the vessel tree run by the desktop module's Logic in the
worker, and the diameter plot, the cross-section table and the landmark-free summary checked
in the page. Timings are printed (``-s``), never asserted.
"""
from __future__ import annotations

import base64
import io
import re
import time

import numpy as np
import pytest

from app_browser import (artefacts_on_failure, choose, click_view, keep_screenshot, open_app, open_panel, view_pixels,
                         wait_client_idle)
from conftest import SAMPLE_DATA
from test_app_vessel import segment_names, table_rows, wait_results

CEMRA = SAMPLE_DATA / "vmtk_aorta_cemra"
LEVEL_SET = CEMRA / "aorta_mask_DERIVED_levelset_lt0.nii.gz"
#: The segment's colour in the file: pure green, told apart from the grey MRA in the views.
GREEN = (0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def session(browser, tmp_path_factory):
    from segforge.image_io import read_image
    from segforge.segmentation_file import SegmentInfo, write_seg_nrrd

    mask = read_image(LEVEL_SET)
    segmentation = write_seg_nrrd(mask.with_array((mask.array > 0).astype(np.uint8)), [SegmentInfo(1, "Aorta", GREEN)],
                                  tmp_path_factory.mktemp("segment") / "cemra.seg.nrrd")
    with open_app(browser, "--data", str(CEMRA / "aorta.mha"), str(segmentation), name="segvessel_segment") as opened:
        page = opened["page"]
        with artefacts_on_failure(page, "segvessel_segment_open", opened["app"]):
            page.get_by_test_id("scene-nodes").get_by_text("cemra", exact=True).wait_for(timeout=60_000)
            open_panel(page, "segvessel", "segvessel-run")
        yield opened


def segment_ends(rgb: np.ndarray, inset_px: int = 5) -> tuple[tuple[float, float], tuple[float, float]]:
    """The top and bottom ends of the green segment drawn in a view, moved ``inset_px`` inwards
    (fractions of the view's width and height)."""
    red, green, blue = (rgb[..., c].astype(int) for c in range(3))
    ys, xs = np.nonzero((green > 120) & (green - red > 40) & (green - blue > 40))
    assert len(xs) > 50, "the segment is not drawn in the axial view"
    h, w = rgb.shape[:2]
    top = np.median(xs[ys <= ys.min() + 2]), ys.min() + inset_px
    bottom = np.median(xs[ys >= ys.max() - 2]), ys.max() - inset_px
    return (top[0] / w, top[1] / h), (bottom[0] / w, bottom[1] / h)


def test_from_an_existing_segment_between_two_endpoints_to_the_plot(session):
    from PIL import Image as PILImage

    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "segvessel_segment", app):
        choose(page, "segvessel-input-kind", "A vessel segment")
        choose(page, "segvessel-input-segmentation", "cemra")
        page.get_by_test_id("segvessel-segment").filter(has_text="Aorta").wait_for(timeout=30_000)
        assert page.get_by_test_id("segvessel-preset").count() == 0, "the vessel filter's fields are for volumes"

        source, target = segment_ends(view_pixels(page, "Red"))
        inputs = page.get_by_test_id("segvessel-inputs")
        page.get_by_test_id("segvessel-source").click()
        wait_client_idle(page)
        click_view(page, "Red", *source)
        inputs.filter(has_text="1 source").wait_for(timeout=30_000)
        page.get_by_test_id("segvessel-targets").click()
        wait_client_idle(page)
        click_view(page, "Red", *target)
        inputs.filter(has_text="1 target").wait_for(timeout=30_000)
        page.get_by_test_id("segvessel-targets").click()  # stop placing
        page.get_by_test_id("segvessel-surface").locator("input").set_checked(False)  # quicker
        wait_client_idle(page)

        started = time.perf_counter()
        page.get_by_test_id("segvessel-run").click()
        wait_results(page, "segvessel", 1)
        print(f"\nSegVessel: tree of the CE-MRA segment shown {time.perf_counter() - started:.1f} s after the click")
        assert segment_names(page, "segvessel") == ["Vessels"]
        summary = page.get_by_test_id("segvessel-summary").inner_text()
        match = re.search(r"(\d+) branches", summary)
        # From the source to one target: the aorta, and the iliac the target is on (split where the other leaves).
        assert match and 1 <= int(match.group(1)) <= 3, summary
        assert "Aorta vessels" in summary

        plot = page.get_by_test_id("segvessel-plot")
        plot.wait_for(timeout=30_000)
        source_url = plot.get_attribute("src")
        assert source_url.startswith("data:image/png;base64,")
        picture = np.asarray(PILImage.open(io.BytesIO(base64.b64decode(source_url.split(",", 1)[1]))).convert("RGB"))
        assert picture.shape[1] >= 600 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 20
        # The equivalent-diameter curve (dark red) is drawn.
        assert ((picture[..., 0] > 150) & (picture[..., 1] < 80) & (picture[..., 2] < 80)).sum() > 200
        assert page.evaluate("el => el.naturalWidth", plot.element_handle()) == picture.shape[1]
        sections = table_rows(page, "segvessel-sections")
        assert sections, "the cross-section table shows no row"
        header = page.get_by_test_id("segvessel-sections").locator("thead").inner_text()
        assert "equivalent_diameter_mm" in header and "circularity" in header
        plot.scroll_into_view_if_needed()
        keep_screenshot(page, "segvessel_segment")
