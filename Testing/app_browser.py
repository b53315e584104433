"""Shared pieces of the browser tests: ``segforge app`` in a subprocess, Debian's Chromium
under Playwright kept to loopback, frames of the views, artefacts kept on failure.

conftest.py loads this file as a pytest plugin, so the ``browser`` fixture is everywhere.
Chromium is the system one (``/usr/bin/chromium``; ``make test`` installs it as root):
Playwright's own browser download cannot work here. Without it the tests fail, saying how
to install it; they never skip. A failing browser test saves a screenshot and the app's log
under ``out/browser-tests/`` and prints the screenshot into the test output (base64 JPEG
between markers), so CI keeps it in its log. Screenshots of results meant for the README
are written by :func:`keep_screenshot` (``make screenshots`` puts them into docs/screenshots).
"""
from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import REPO

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

    def __init__(self, *args: str, log: Path, env: dict | None = None) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(segforge_app_command(*args), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=app_env(**(env or {})), cwd=REPO)
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


def wait_frame_change(page, view: str, old_src: str, timeout_ms: int = 30_000) -> str:
    """Wait until ``view`` shows a frame other than ``old_src`` (a frame sent after that one); returns its src."""
    page.wait_for_function(
        "([view, old]) => { const m = document.querySelector(`span[data-view='${view}']`);"
        " const img = m && m.parentElement.querySelector('img'); return !!img && img.src !== old; }",
        arg=[view, old_src], timeout=timeout_ms)
    return view_frame_src(page, view)


def wait_frame_stable(page, view: str, quiet_s: float = 1.0, timeout_s: float = 30.0) -> str:
    """Wait until ``view`` has shown the same frame for ``quiet_s`` (frames a previous step caused have come)."""
    deadline = time.perf_counter() + timeout_s
    src, since = view_frame_src(page, view), time.perf_counter()
    while time.perf_counter() - since < quiet_s:
        assert time.perf_counter() < deadline, f"the {view} view kept getting new frames for {timeout_s} s"
        time.sleep(0.1)
        if (now := view_frame_src(page, view)) != src:
            src, since = now, time.perf_counter()
    return src


def wait_client_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until trame's client has sent every state change and has no request in flight.

    The client holds a change (a typed path, a chosen option, a closed message) while a request
    is in flight, but sends a button's trigger at once: the server would act on the old value.
    """
    page.wait_for_function("() => { const t = window.trame;"
                           " return !!t && !t.client.isBusy() && t.state.dirtyKeys.size === 0; }", timeout=timeout_ms)


def view_pixels(page, view: str):
    """RGB pixels (int array) of ``view`` as the page shows it now."""
    import numpy as np
    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(view_image(page, view).screenshot())).convert("RGB")).astype(int)


def click_view(page, view: str, fx: float, fy: float) -> float:
    """A click in ``view`` at fractions of its width and height; returns when it was clicked."""
    box = view_image(page, view).bounding_box()
    x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(x - 3, y - 3)  # the view sees the pointer arrive first, as with a real mouse
    page.mouse.move(x, y)
    time.sleep(0.3)
    clicked = time.perf_counter()
    page.mouse.click(x, y)
    return clicked


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


def wait_shows_an_image(page, view: str, timeout_s: float = 30.0, poll_s: float = 0.1) -> None:
    """Wait until ``view`` shows a real frame (see :func:`shows_an_image`); fail after ``timeout_s``."""
    deadline = time.perf_counter() + timeout_s
    while not shows_an_image(page, view):
        assert time.perf_counter() < deadline, f"the {view} view shows no image of the volume after {timeout_s} s"
        time.sleep(poll_s)


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
        if app is not None:  # after the picture, so that a log's tail shows it
            print(f"----- last lines of {app.log.name} -----\n{''.join(app.lines[-25:])}"
                  f"----- end of {app.log.name} -----", file=sys.stderr)
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


#: Where :func:`keep_screenshot` writes (``make screenshots`` points it at docs/screenshots).
SCREENSHOTS = Path(os.environ.get("SEGFORGE_SCREENSHOTS", ARTEFACTS / "screenshots"))


def keep_screenshot(page, name: str) -> Path:
    """Save the whole page as ``<name>.png`` (a workflow's result, for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextlib.contextmanager
def open_app(browser, *args: str, name: str, timeout_s: float = 60.0, env: dict | None = None):
    """``segforge app *args`` on a free loopback port, opened in a new 1400x900 page kept to loopback;
    ``env``: variables added to the app's environment (a PACS's address, for example).

    Yields ``{"app", "page", "url", "blocked"}`` once the page's views exist; stops the app after.
    """
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    blocked: list[str] = []
    only_loopback(page, blocked)
    app = AppProcess("--port", str(free_port()), *args, log=ARTEFACTS / f"app_{name}.log", env=env)
    try:
        with artefacts_on_failure(page, f"{name}_start", app):
            url = app.wait_url(timeout_s)
            page.goto(url)
            page.locator("span[data-view='Red']").wait_for(state="attached", timeout=30_000)
        yield {"app": app, "page": page, "url": url, "blocked": blocked}
    finally:
        app.stop()
        page.close()


def load_server_path(page, path: Path | str, node_name: str, timeout_ms: int = 60_000) -> None:
    """Load ``path`` through the Data panel's server-path field; wait for ``node_name`` in its list."""
    page.get_by_test_id("data-path").locator("input").fill(str(path))
    wait_client_idle(page)  # the server reads the path when Load is clicked
    page.get_by_test_id("data-load").click()
    page.get_by_test_id("scene-nodes").get_by_text(node_name, exact=True).first.wait_for(timeout=timeout_ms)


def choose(page, test_id: str, option: str) -> None:
    """Pick ``option`` (its visible text) in the Vuetify select marked ``data-testid=test_id``.

    A long list is virtual (only the options in sight exist): it is scrolled from the top until
    the option does.
    """
    menu = page.locator(".v-overlay--active")  # a menu closing after the last choice is no longer active
    wanted = menu.get_by_role("option", name=option, exact=True)
    listbox = menu.get_by_role("listbox")
    if listbox.count():  # a menu left open (by a failed test) would be closed by the click below
        page.keyboard.press("Escape")
        listbox.wait_for(state="detached", timeout=10_000)
    page.get_by_test_id(test_id).click()
    listbox.wait_for(timeout=10_000)
    if not wanted.count():  # the menu opens scrolled to the current choice: search from the top
        listbox.evaluate("(el) => { el.scrollTop = 0; }")
        page.wait_for_timeout(50)
    for _ in range(200):
        if wanted.count() or not listbox.evaluate("(el) => { const top = el.scrollTop;"
                                                  " el.scrollTop += el.clientHeight / 2; return el.scrollTop > top; }"):
            break
        page.wait_for_timeout(50)
    if not wanted.count():
        shown = listbox.get_by_role("option").all_inner_texts()
        page.keyboard.press("Escape")
        raise AssertionError(f"{test_id} has no option {option!r}; it lists {shown}")
    wanted.click()
    wait_client_idle(page)  # the choice has reached the server before the caller's next click


def save_node(page, node_name: str, path: Path | str, timeout_ms: int = 60_000) -> None:
    """Save ``node_name`` (or "Whole scene (.mrb)") to ``path`` through the Save panel.

    Waits for "Saved ... to <path>"; raises with the drawer's error text (or the overwrite
    question) when that appears instead.
    """
    open_panel(page, "save", "save-node")
    close_error(page)  # an earlier message must not be read as this save's
    error = page.get_by_test_id("app-error")
    shown = page.get_by_test_id("save-node").locator(".v-select__selection-text")
    changed = not shown.count() or shown.inner_text().strip() != node_name
    choose(page, "save-node", node_name)
    if changed:  # the server answers with the node's default path: typed before it comes, the path is lost
        stem = "scene" if node_name == "Whole scene (.mrb)" else node_name
        wait_for_input(page, "save-path", rf"(^|/){re.escape(stem)}\.[^/]*$")
    page.get_by_test_id("save-path").locator("input").fill(str(path))
    wait_client_idle(page)  # the server reads the path when Save is clicked
    page.get_by_test_id("save-button").click()
    done = page.get_by_test_id("save-message").filter(has_text=f" to {path}")
    question = page.get_by_test_id("save-overwrite-question")
    done.or_(error).or_(question).first.wait_for(timeout=timeout_ms)
    if error.count():
        raise AssertionError(f"saving {node_name} to {path} failed: {error.inner_text()}")
    if question.count():
        raise AssertionError(f"saving {node_name} to {path} asks first: {question.inner_text()}")


def wait_for_input(page, test_id: str, pattern: str, timeout_ms: int = 10_000) -> None:
    """Wait until the text field marked ``test_id`` holds a value matching the regular expression ``pattern``."""
    page.wait_for_function("([id, pattern]) => { const field = document.querySelector(`[data-testid=\"${id}\"] input`);"
                           " return !!field && new RegExp(pattern).test(field.value); }",
                           arg=[test_id, pattern], timeout=timeout_ms)


def open_panel(page, panel_id: str, shown_test_id: str) -> None:
    """Expand the drawer panel ``panel_id`` unless ``shown_test_id`` (an element of it) is visible."""
    if not page.get_by_test_id(shown_test_id).is_visible():
        page.get_by_test_id(f"panel-{panel_id}").locator("button").first.click()
        page.get_by_test_id(shown_test_id).wait_for(state="visible", timeout=10_000)


def error_text(page, timeout_ms: int = 30_000) -> str:
    """The message at the top of the drawer (waits for it)."""
    error = page.get_by_test_id("app-error")
    error.wait_for(timeout=timeout_ms)
    return error.inner_text()


def close_error(page) -> None:
    """Close the drawer's message, if one is shown."""
    error = page.get_by_test_id("app-error")
    if error.count():
        error.get_by_role("button").first.click()
        error.wait_for(state="detached", timeout=10_000)
        wait_client_idle(page)  # else the server still holds this message: the same one again would not be sent
