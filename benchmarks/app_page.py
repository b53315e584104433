"""Benchmark: the web app's page against trame-slicer's own medical viewer, same browser, same volume.

Ours: ``segforge app`` with the sample CT (``--data``). Peer: trame-slicer's
``trame_slicer/app/medical_viewer_app.py`` (``MedicalViewerApp``), started by this file in a
child process (``--peer-child``). Its command line (``main()`` through ``fire``) has no data
option, so the child loads the same file through the peer's own loading code
(``LoadVolumeLogic._on_load_volume_files``, what its upload button calls once the files are
written to disk) before the server starts, as ``segforge app --data`` does; and it switches
the peer to the same "Quad View" layout ours opens with (the peer opens "Axial Primary",
whose axial view has about four times the pixels). Both render with trame-slicer's RCA
views and the same TurboJPEG encoder; the peer also shows a volume rendering in 3D.

Measured, for each app, with Debian's Chromium under Playwright kept to loopback (the
browser tests' set-up, ``Testing/app_browser.py``), 1400x900 window:
(a) process start -> the axial view in the page shows the volume (not black, not flat);
(b) a click on the axial slice slider -> a new axial frame in the page (median of N clicks).

Run: ``python benchmarks/app_page.py [--starts 3] [--clicks 9] [--json out/benchmarks/app_page.json]``
(needs the app extra and /usr/bin/chromium; ``make app`` / ``make browser``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT = REPO / "Resources" / "SampleData" / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz"
LAYOUT = "Quad View"
VIEWPORT = {"width": 1400, "height": 900}
FRACTIONS = (0.2, 0.8, 0.35, 0.65, 0.5)
PEER_READY = "trame-slicer medical viewer ready:"
URL = re.compile(r"(?:SegForge app ready:|" + re.escape(PEER_READY) + r") (http://\S+)")


def peer_child(port: int, data: Path) -> None:
    """The peer app as trame-slicer ships it, plus the same volume and layout as ours (see above)."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from trame.app import get_server
    from trame_slicer.app.medical_viewer_app import MedicalViewerApp

    server = get_server("medical_viewer", client_type="vue3")
    app = MedicalViewerApp(server=server)
    app._logic._layout_button_logic.data.current_layout_id = LAYOUT
    app._logic._load_files_logic._on_load_volume_files([str(data)])
    server.controller.on_server_ready.add(
        lambda **_: print(f"{PEER_READY} http://127.0.0.1:{server.port}/index.html", flush=True))
    sys.argv = sys.argv[:1]  # trame parses its own options from argv
    server.start(host="127.0.0.1", port=port, open_browser=False, show_connection_info=False, timeout=0)


class Process:
    """A server subprocess whose output is scanned for its URL."""

    def __init__(self, command: list[str], env: dict) -> None:
        self.started = time.perf_counter()
        self.url: str | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=REPO)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            match = URL.search(line)
            if match and self.url is None:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def wait_url(self, timeout_s: float = 120.0) -> str:
        self._ready.wait(timeout_s)
        if self.url is None:
            raise RuntimeError(f"no URL within {timeout_s} s:\n{''.join(self.lines[-30:])}")
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def commands(port: int) -> dict[str, list[str]]:
    from app_browser import segforge_app_command

    return {"ours": segforge_app_command("--port", str(port), "--data", str(CT)),
            "peer": [sys.executable, str(Path(__file__).resolve()), "--peer-child", "--port", str(port),
                     "--data", str(CT)]}


def axial_index(page) -> int:
    """Which of the page's views (in DOM order) is the axial one: known in ours by its marker."""
    return page.evaluate(
        "() => { const areas = [...document.querySelectorAll('.remote-controlled-area')];"
        " const marker = document.querySelector(`span[data-view='Red']`);"
        " return areas.findIndex(a => a.parentElement.contains(marker)); }")


def frame_src(page, index: int) -> str:
    return page.evaluate("(i) => { const a = document.querySelectorAll('.remote-controlled-area')[i];"
                         " const img = a && a.querySelector('img'); return img ? img.src : ''; }", index)


def shows_volume(page, index: int) -> bool:
    from app_browser import image_stats

    if not frame_src(page, index).startswith("blob:"):
        return False
    spread, bright = image_stats(page.locator(".remote-controlled-area").nth(index).locator("img").screenshot())
    return spread > 20 and bright > 0.1


def measure(browser, name: str, command: list[str], index: int | None, clicks: int) -> dict:
    """One start of one app: start -> axial view shows the volume, then ``clicks`` slider clicks."""
    from app_browser import app_env, only_loopback

    page = browser.new_page(viewport=VIEWPORT)
    blocked: list[str] = []
    only_loopback(page, blocked)
    process = Process(command, app_env())
    try:
        url = process.wait_url()
        url_s = time.perf_counter() - process.started
        page.goto(url)
        page.locator(".remote-controlled-area img").first.wait_for(state="attached", timeout=120_000)
        if index is None:
            page.locator("span[data-view='Red']").wait_for(state="attached", timeout=60_000)
            index = axial_index(page)
        deadline = time.perf_counter() + 120
        while not shows_volume(page, index):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{name}: the axial view never showed the volume")
            time.sleep(0.05)
        page_s = time.perf_counter() - process.started
        time.sleep(1.0)  # let both apps finish their first frames before clicking
        slider = page.locator(".remote-controlled-area").nth(index).locator("xpath=..").locator(".slice-slider").first
        box = slider.bounding_box()
        times = []
        for n in range(clicks):
            src = frame_src(page, index)
            clicked = time.perf_counter()
            page.mouse.click(box["x"] + FRACTIONS[n % len(FRACTIONS)] * box["width"], box["y"] + box["height"] / 2)
            page.wait_for_function(
                "([i, old]) => { const a = document.querySelectorAll('.remote-controlled-area')[i];"
                " const img = a && a.querySelector('img'); return img && img.src !== old; }",
                arg=[index, src], timeout=10_000, polling="raf")
            times.append(time.perf_counter() - clicked)
            time.sleep(0.3)  # settle (no interactive-quality frame left over for the next click)
        # Aborted, so they cost no time (the peer asks GitHub for its favicon); reported, not fatal.
        return {"url_s": url_s, "page_s": page_s, "click_s": times, "axial_view_index": index,
                "blocked_requests": sorted(set(blocked))}
    finally:
        process.stop()
        page.close()


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "date": date.today().isoformat()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="starts of each app (alternating)")
    parser.add_argument("--clicks", type=int, default=9, help="slider clicks per start")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "benchmarks" / "app_page.json")
    parser.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=CT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_child:
        peer_child(args.port, args.data)
        return

    sys.path.insert(0, str(REPO / "Testing"))
    from app_browser import CHROMIUM, CHROMIUM_ARGS, free_port
    from playwright.sync_api import sync_playwright

    runs: dict[str, list[dict]] = {"ours": [], "peer": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        browser_version = browser.version
        try:
            index = None
            for start in range(args.starts):
                for name in ("ours", "peer"):
                    # The peer has no view markers: its axial view is found where ours is, in the
                    # same trame-slicer layout ("Quad View" from the same LayoutManager grid).
                    run = measure(browser, name, commands(free_port())[name], index if name == "peer" else None,
                                  args.clicks)
                    index = run["axial_view_index"] if name == "ours" else index
                    runs[name].append(run)
                    print(f"start {start + 1} {name}: URL {run['url_s']:.2f} s, page {run['page_s']:.2f} s, "
                          f"click median {statistics.median(run['click_s']) * 1000:.0f} ms", flush=True)
        finally:
            browser.close()

    def summary(name: str) -> dict:
        clicks = [t for run in runs[name] for t in run["click_s"]]
        return {"start_to_page_s": statistics.median(run["page_s"] for run in runs[name]),
                "start_to_url_s": statistics.median(run["url_s"] for run in runs[name]),
                "click_to_frame_s": statistics.median(clicks), "runs": runs[name]}

    results = {name: summary(name) for name in runs}
    ratios = {key: results["ours"][key] / results["peer"][key]
              for key in ("start_to_url_s", "start_to_page_s", "click_to_frame_s")}
    report = {"benchmark": "app_page", **machine(), "chromium": browser_version, "viewport": VIEWPORT,
              "volume": str(CT.relative_to(REPO)), "layout": LAYOUT, "starts": args.starts, "clicks": args.clicks,
              "peer": "trame-slicer MedicalViewerApp (trame_slicer/app/medical_viewer_app.py)",
              "results": results, "ratio_ours_over_peer": ratios}
    print(f"\nmachine: {report['nproc']} cpus, {report['cpu']}, {report['date']}, Chromium {browser_version}")
    print(f"{'what (median)':<36} {'ours':>10} {'peer':>10} {'ours/peer':>9}")
    for key, label, scale, unit in (("start_to_url_s", "process start -> URL printed", 1, "s"),
                                    ("start_to_page_s", "process start -> axial view shows CT", 1, "s"),
                                    ("click_to_frame_s", "slider click -> new axial frame", 1000, "ms")):
        print(f"{label:<36} {results['ours'][key] * scale:7.2f} {unit:<2} {results['peer'][key] * scale:7.2f} {unit:<2}"
              f" {ratios[key]:9.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
