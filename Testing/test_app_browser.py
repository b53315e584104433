"""The web app as a user meets it: ``segforge app`` in a real subprocess, Debian's Chromium
driven by Playwright, nothing reaching beyond loopback.

Chromium is the system one (``/usr/bin/chromium``; ``make test`` installs it as root):
Playwright's own browser download cannot work here. Without it these tests fail, saying
how to install it; they never skip. A failing browser test saves a screenshot and the app's
log under ``out/browser-tests/`` and prints the screenshot into the test output (base64
JPEG between markers), so CI keeps it in its log.

Measured here and printed (``-s`` shows them; docs/app.md records them): the time from
starting the process to the page showing the sample volume (the issue asks for 10 s), and
the time from a click on a slice view's slider to its new frame (0.5 s).
"""
from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import REPO, SAMPLE_DATA

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
ARTEFACTS = REPO / "out" / "browser-tests"
SAMPLE_NAME = "example_ct_sm"  # the default sample volume's node name (segforge_app.sample_data)
READY_LINE = re.compile(r"SegForge app ready: (http://\S+)")

try:
    from playwright.sync_api import sync_playwright
except ImportError as error:  # the app extra is part of dev: missing is a failure, not a skip
    sync_playwright = None
    _PLAYWRIGHT_ERROR = error


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow")
    env.pop("SEGFORGE_APP_TOKEN", None)
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(proxy, None)  # loopback only, never through a proxy
    return {**env, **extra}


def segforge_app_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "segforge.cli.main", "app", *args]


class AppProcess:
    """``segforge app`` in a subprocess; its output goes to a log file and is scanned for the URL."""

    def __init__(self, *args: str, log: Path) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(segforge_app_command(*args), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=app_env(), cwd=REPO)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with self.log.open("w") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                self.lines.append(line)
                match = READY_LINE.search(line)
                if match and self.url is None:
                    self.url = match.group(1)
                    self._ready.set()
        self._ready.set()

    def wait_url(self, timeout_s: float = 60.0) -> str:
        self._ready.wait(timeout_s)
        if self.url is None:
            raise AssertionError(f"segforge app printed no URL within {timeout_s} s "
                                 f"(exit code {self.process.poll()}):\n{''.join(self.lines[-40:])}")
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def only_loopback(page, blocked: list[str]) -> None:
    """Abort every request that is not to the app on loopback (and record it)."""
    def route(route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()
    page.route("**/*", route)


def view_image(page, view: str):
    """The <img> the server's frames of ``view`` (Red, Yellow, Green, ThreeD) are shown in."""
    return page.locator(f"div:has(> span[data-view='{view}']) img").first


def view_frame_src(page, view: str) -> str:
    return page.evaluate(
        "(view) => { const m = document.querySelector(`span[data-view='${view}']`);"
        " const img = m && m.parentElement.querySelector('img'); return img ? img.src : ''; }", view)


def image_stats(png: bytes) -> tuple[float, float]:
    """(standard deviation of grey levels, fraction of pixels brighter than 40) of a screenshot."""
    import numpy as np
    from PIL import Image as PILImage

    grey = np.asarray(PILImage.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    return float(grey.std()), float((grey > 40).mean())


def shows_an_image(page, view: str) -> bool:
    """True when ``view`` shows a real frame (not black, not a flat colour)."""
    if not view_frame_src(page, view).startswith("blob:"):
        return False
    spread, bright = image_stats(view_image(page, view).screenshot())
    return spread > 20 and bright > 0.1


@contextlib.contextmanager
def artefacts_on_failure(page, name: str, app: AppProcess | None = None):
    """On failure: keep a screenshot (and the app's log) and print where, plus the image itself."""
    try:
        yield
    except BaseException:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTEFACTS / f"{name}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
            from PIL import Image as PILImage

            small = io.BytesIO()
            picture = PILImage.open(shot).convert("RGB")
            picture.thumbnail((900, 900))
            picture.save(small, "JPEG", quality=60)
            print(f"\nbrowser test {name} failed: screenshot {shot}"
                  f"{f', app log {app.log}' if app else ''}\n"
                  f"----- BEGIN SCREENSHOT {name}.jpg (base64) -----\n"
                  f"{base64.b64encode(small.getvalue()).decode()}\n"
                  f"----- END SCREENSHOT {name}.jpg -----", file=sys.stderr)
        raise


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        pytest.fail(f"playwright is not installed ({_PLAYWRIGHT_ERROR}): pip install -e '.[dev]'")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: as root run `make browser` (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app_session(browser):
    """One app with the default sample data, opened in a page; the start-up is timed from Popen."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    blocked: list[str] = []
    only_loopback(page, blocked)
    app = AppProcess("--port", str(free_port()), log=ARTEFACTS / "app_default.log")
    try:
        with artefacts_on_failure(page, "start_up", app):
            url = app.wait_url()
            server_ready_s = time.perf_counter() - app.started
            page.goto(url)
            page.get_by_test_id("scene-nodes").get_by_text(SAMPLE_NAME).wait_for(timeout=30_000)
            deadline = time.perf_counter() + 30
            while not shows_an_image(page, "Red"):
                assert time.perf_counter() < deadline, "the axial view never showed the sample volume"
                time.sleep(0.05)
            page_ready_s = time.perf_counter() - app.started
        print(f"\nsegforge app: URL printed {server_ready_s:.2f} s after start, "
              f"page showing the sample {page_ready_s:.2f} s after start")
        yield {"app": app, "page": page, "url": url, "blocked": blocked, "page_ready_s": page_ready_s}
    finally:
        app.stop()
        page.close()


def test_page_shows_the_sample_volume(app_session):
    """(Its start-up time is printed; the 10 s target is a benchmark's, not a timed test's.)"""
    page, app = app_session["page"], app_session["app"]
    with artefacts_on_failure(page, "sample_volume", app):
        for view in ("Red", "Yellow", "Green"):
            assert shows_an_image(page, view), f"the {view} slice view shows no image of the volume"
        assert "secret=" not in page.url, "trame's client should drop the secret from the address bar"
        assert app_session["blocked"] == [], f"the page tried to reach beyond loopback: {app_session['blocked']}"


def test_a_click_on_the_slice_slider_rerenders_the_view(app_session):
    """(The re-render time is printed; the 0.5 s target is a benchmark's, not a timed test's.)"""
    page, app = app_session["page"], app_session["app"]
    with artefacts_on_failure(page, "rerender", app):
        marker = page.locator("span[data-view='Red']")
        slider = page.locator("div:has(> span[data-view='Red']) .slice-slider").first
        assert marker.count() == 1 and slider.count() == 1
        box = slider.bounding_box()
        before = view_image(page, "Red").screenshot()
        times = []
        for fraction in (0.2, 0.8, 0.35, 0.65, 0.5):
            src = view_frame_src(page, "Red")
            clicked = time.perf_counter()
            page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)
            page.wait_for_function(
                "([view, old]) => { const m = document.querySelector(`span[data-view='${view}']`);"
                " const img = m && m.parentElement.querySelector('img'); return img && img.src !== old; }",
                arg=["Red", src], timeout=5_000, polling="raf")
            times.append(time.perf_counter() - clicked)
            time.sleep(0.3)  # let the view settle (no interactive-quality frames in the next round)
        after = view_image(page, "Red").screenshot()
        print(f"\nslice view re-render after a click: median {statistics.median(times) * 1000:.0f} ms, "
              f"all {[round(t * 1000) for t in times]} ms")
        assert before != after, "the axial view shows the same picture after moving to another slice"


def test_server_side_paths_load_or_say_what_to_do(app_session):
    page, app = app_session["page"], app_session["app"]
    with artefacts_on_failure(page, "server_path", app):
        field = page.get_by_test_id("data-path").locator("input")
        field.fill("/no/such/file.nii.gz")
        page.get_by_test_id("data-load").click()
        error = page.get_by_test_id("app-error")
        error.wait_for(timeout=10_000)
        assert "Nothing at /no/such/file.nii.gz" in error.inner_text()
        assert "upload" in error.inner_text()
        # A DICOM series folder (20 JPEG 2000 slices), read through segforge.image_io.
        series = SAMPLE_DATA / "ts_ct_dicom_series" / "series"
        field.fill(str(series))
        page.get_by_test_id("data-load").click()
        page.get_by_test_id("scene-nodes").get_by_text("series", exact=True).wait_for(timeout=30_000)
        assert error.count() == 0, "the error from the previous load should be cleared"


def test_an_uploaded_file_is_loaded(app_session):
    page, app = app_session["page"], app_session["app"]
    with artefacts_on_failure(page, "upload", app):
        mask = SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta_mask_DERIVED_levelset_lt0.nii.gz"
        page.locator("input[type=file]:not([webkitdirectory])").first.set_input_files(str(mask))
        page.get_by_test_id("scene-nodes").get_by_text("aorta_mask_DERIVED_levelset_lt0", exact=True) \
            .wait_for(timeout=30_000)


def test_a_wrong_secret_gets_no_data(app_session, browser):
    page = browser.new_page()
    blocked: list[str] = []
    only_loopback(page, blocked)
    try:
        with artefacts_on_failure(page, "wrong_secret", app_session["app"]):
            page.goto(app_session["url"].split("secret=")[0] + "secret=not-the-secret")
            time.sleep(4)
            assert SAMPLE_NAME not in page.inner_text("body")
            assert page.locator("span[data-view]").count() == 0, "views were sent to an unauthenticated page"
    finally:
        page.close()


def test_listening_beyond_loopback_needs_a_token():
    port = free_port()
    started = time.perf_counter()
    run = subprocess.run(segforge_app_command("--host", "0.0.0.0", "--port", str(port)), capture_output=True,
                         text=True, env=app_env(), timeout=60, cwd=REPO)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Refusing to listen on 0.0.0.0 without authentication" in run.stderr
    assert "SEGFORGE_APP_TOKEN" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - started < 30  # refused before building anything
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "something listens although it refused"
    short = subprocess.run(segforge_app_command("--host", "0.0.0.0", "--port", str(port)), capture_output=True,
                           text=True, env=app_env(SEGFORGE_APP_TOKEN="short"), timeout=60, cwd=REPO)
    assert short.returncode == 1 and "too short" in short.stderr


def test_token_rules():
    from segforge.cli import app_cmd
    from segforge_app.auth import TOKEN_ENV, AuthError, is_loopback, resolve_token

    assert app_cmd.TOKEN_ENV == TOKEN_ENV
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    first, second = resolve_token("127.0.0.1", None), resolve_token("127.0.0.1", None)
    assert first != second and len(first) >= 24  # random per start, never wslink's default
    assert resolve_token("0.0.0.0", "x" * 24) == "x" * 24
    with pytest.raises(AuthError, match="without authentication"):
        resolve_token("10.1.2.3", None)


def test_the_cli_says_how_to_install_the_app_when_trame_is_missing(tmp_path):
    # A fake trame_slicer that cannot be imported stands for "the app extra is not installed".
    (tmp_path / "trame_slicer").mkdir()
    (tmp_path / "trame_slicer" / "__init__.py").write_text("raise ImportError('No module named trame_slicer', "
                                                           "name='trame_slicer')\n")
    env = app_env()
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{REPO}"
    run = subprocess.run(segforge_app_command("--port", str(free_port())), capture_output=True, text=True, env=env,
                         timeout=60, cwd=REPO)
    assert run.returncode == 1
    assert 'pip install "segforge[app]"' in run.stderr
