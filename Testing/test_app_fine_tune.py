"""SegVessel's Fine-tune section in a real browser: ``segforge app`` with three synthetic
(volume, vessel segment) pairs loaded, the pairs chosen in the section, Train, the progress in
the page (step, loss), then the new model in SegVessel's model list and as a base model, with
its training curve shown. The worker the app starts trains it, in a SegForge home of the test's."""
from __future__ import annotations

import time

import pytest

from app_browser import artefacts_on_failure, choose, open_app, open_panel, wait_client_idle
from segforge.image_io import write_image
from segforge.segmentation_file import SegmentInfo, write_seg_nrrd
from segforge.training.synthetic_data import randomised_case

KEY = "segvessel_finetune"
JOB_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    paths = []
    for n in range(3):
        case = randomised_case(n, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
        paths.append(write_image(case.image, folder / f"image_{n}.nrrd"))
        paths.append(write_seg_nrrd(case.label, [SegmentInfo(1, "Vessels", (0.9, 0.1, 0.1))],
                                    folder / f"vessels_{n}.seg.nrrd"))
    return paths


@pytest.fixture(scope="module")
def session(browser, data, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the app and its worker inherit the environment
        patch.setenv("SEGFORGE_HOME", str(tmp_path_factory.mktemp("home")))
        patch.delenv("SEGFORGE_CATALOG", raising=False)
        with open_app(browser, "--data", *map(str, data), name="finetune") as opened:
            page = opened["page"]
            with artefacts_on_failure(page, "finetune_open", opened["app"]):
                page.get_by_test_id("scene-nodes").get_by_text("vessels_2", exact=True).wait_for(timeout=60_000)
                open_panel(page, "segvessel", "segvessel-run")
            yield opened


def model_options(page, test_id: str) -> list[str]:
    page.get_by_test_id(test_id).click()
    listbox = page.locator(".v-overlay--active").get_by_role("listbox")
    listbox.wait_for(timeout=10_000)
    options = listbox.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    listbox.wait_for(state="detached", timeout=10_000)
    return [option.strip() for option in options]


def test_pairs_train_with_progress_and_the_model_is_listed_at_once(session):
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "finetune_train", app):
        assert "web-vessels" not in model_options(page, "segvessel-model")
        page.get_by_test_id("segvessel-finetune-open").click()
        page.get_by_test_id("segvessel-finetune-add").wait_for(state="visible", timeout=10_000)
        for n in range(3):
            choose(page, "segvessel-finetune-volume", f"image_{n}")
            choose(page, "segvessel-finetune-segmentation", f"vessels_{n}")
            page.get_by_test_id("segvessel-finetune-segment").get_by_text("Vessels").wait_for(timeout=10_000)
            page.get_by_test_id("segvessel-finetune-add").click()
            page.get_by_test_id("segvessel-finetune-pairs").get_by_text(f"{n + 1}. image_{n} / Vessels").wait_for(
                timeout=10_000)
        for name, value in (("name", "web-vessels"), ("steps", "6"), ("patch-size", "16"), ("batch-size", "1")):
            page.get_by_test_id(f"segvessel-finetune-{name}").locator("input").fill(value)
        wait_client_idle(page)
        page.get_by_test_id("segvessel-finetune-run").click()
        page.get_by_test_id(f"{KEY}-progress").wait_for(timeout=60_000)
        job = page.get_by_test_id("segvessel-finetune-job")
        results = page.get_by_test_id("segvessel-finetune-results")
        seen_step = False
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while results.get_attribute("data-results") != "1":
            error = page.get_by_test_id("app-error")
            assert error.count() == 0, f"the fine-tune failed: {error.inner_text()}"
            assert time.monotonic() < deadline, f"no model within {JOB_TIMEOUT_S} s: {job.inner_text()}"
            seen_step = seen_step or ("step" in job.inner_text() and "loss" in job.inner_text())
            time.sleep(0.05)
        assert seen_step, "the page never showed the training's step and loss"
        assert "web-vessels" in page.get_by_test_id("segvessel-finetune-summary").inner_text()
        assert page.get_by_test_id("segvessel-finetune-curve").count() == 1
        assert "web-vessels" in model_options(page, "segvessel-model")  # selectable at once
        assert "web-vessels" in model_options(page, "segvessel-finetune-base")
        choose(page, "segvessel-model", "web-vessels")
        assert page.get_by_test_id("app-error").count() == 0


def test_cancel_stops_the_training_and_lists_no_model(session):
    """After the first test the three pairs are still chosen: a long run, cancelled once it trains."""
    page, app = session["page"], session["app"]
    with artefacts_on_failure(page, "finetune_cancel", app):
        for name, value in (("name", "web-cancelled"), ("steps", "100000")):
            page.get_by_test_id(f"segvessel-finetune-{name}").locator("input").fill(value)
        wait_client_idle(page)
        page.get_by_test_id("segvessel-finetune-run").click()
        job = page.get_by_test_id("segvessel-finetune-job")
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while "step" not in job.inner_text():
            assert page.get_by_test_id("app-error").count() == 0, page.get_by_test_id("app-error").inner_text()
            assert time.monotonic() < deadline, job.inner_text()
            time.sleep(0.05)
        page.get_by_test_id(f"{KEY}-cancel").click()
        job.get_by_text("Cancelled", exact=True).wait_for(timeout=30_000)
        assert page.get_by_test_id(f"{KEY}-progress").count() == 0
        assert page.get_by_test_id("segvessel-finetune-results").get_attribute("data-results") == "1"
        assert "web-cancelled" not in model_options(page, "segvessel-model")
        assert page.get_by_test_id("app-error").count() == 0
