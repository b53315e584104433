"""The web app against a careless or hostile user: links without (or with a wrong) secret,
a raw websocket, a busy port, a bad --host or --port, --data that is missing or not an image.

Each case asserts the message the user gets (what is wrong and what to do) and that nothing
was lost: the app that was running still serves its page with the right secret, a refused
start leaves nothing listening and the files given untouched. Plain HTTP (urllib, no proxy)
where no browser is needed; Chromium for the one page a person reads.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app_browser import (ARTEFACTS, REPO, AppProcess, app_env, artefacts_on_failure, free_port, only_loopback,
                         segforge_app_command)
from segforge_app.auth import REFUSAL_MISSING, REFUSAL_WRONG, check_request, cookie_name, cookie_value

TODO = "Open the exact URL that `segforge app` printed"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app with an empty scene; ``base`` is http://127.0.0.1:PORT, ``url`` the printed URL."""
    process = AppProcess("--port", str(free_port()), "--data", log=ARTEFACTS / "app_bad_input.log")
    try:
        url = process.wait_url()
        parts = urlsplit(url)
        yield {"process": process, "url": url, "base": f"{parts.scheme}://{parts.netloc}",
               "secret": parts.query.split("secret=", 1)[1], "port": parts.port}
    finally:
        process.stop()


def opener(cookies: CookieJar | None = None) -> urllib.request.OpenerDirector:
    """urllib without proxies (loopback only), keeping cookies in ``cookies`` if given."""
    handlers = [urllib.request.ProxyHandler({})]
    if cookies is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(cookies))
    return urllib.request.build_opener(*handlers)


def get(url: str, cookies: CookieJar | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, refusals included."""
    try:
        with opener(cookies).open(url, timeout=30) as response:
            return response.status, response.headers.get_content_type(), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get_content_type(), refused.read().decode("utf-8", "replace")


def assert_still_served(app) -> None:
    """Nothing lost: the printed URL still opens the app (trame's page, not a refusal)."""
    status, kind, body = get(app["url"])
    assert status == 200 and kind == "text/html", (status, body[:300])
    assert "<div id=\"app\">" in body and REFUSAL_MISSING not in body


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(segforge_app_command(*args), capture_output=True, text=True, env=app_env(),
                          timeout=timeout, cwd=REPO)


def error_line(run: subprocess.CompletedProcess) -> str:
    """The CLI's one-line message (see ``only_our_lines`` for what else stderr may hold)."""
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("segforge: error:")]
    assert len(lines) == 1, run.stderr
    return lines[0]


def only_our_lines(run: subprocess.CompletedProcess) -> None:
    """stderr holds SegForge's lines and nothing of VTK's or ITK's (no source file, no object
    address, no pipeline request, no coloured log)."""
    ours = ("segforge app: starting on", "segforge: error:")
    assert [line for line in run.stderr.splitlines() if line.strip() and not line.startswith(ours)] == [], \
        run.stderr
    assert not any(mark in run.stderr for mark in (".cxx", "(0x", "vtkMRML", "ERR|", "\x1b[")), run.stderr


def nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# ----------------------------------------------------------------------------- the secret

def test_the_page_without_its_secret_says_what_to_do_in_the_browser(app, browser):
    page = browser.new_page()
    blocked: list[str] = []
    only_loopback(page, blocked)
    try:
        with artefacts_on_failure(page, "bad_input_no_secret", app["process"]):
            response = page.goto(app["base"] + "/index.html")
            assert response.status == 401
            text = page.inner_text("body")
            assert f"{REFUSAL_MISSING}." in text and TODO in text and f"{app['base']}/index.html?secret=" in text
            assert "try/catch" not in text
            assert page.locator("span[data-view]").count() == 0 and page.locator("#app").count() == 0
            # Nothing lost: the printed URL opens the app in the same page.
            page.goto(app["url"])
            page.locator("span[data-view='Red']").wait_for(state="attached", timeout=30_000)
            assert "secret=" not in page.url
            # A reload drops the secret (trame's client took it off the address bar): the refusal again.
            response = page.reload()
            assert response.status == 401 and REFUSAL_MISSING in page.inner_text("body")
            assert blocked == []
    finally:
        page.close()


@pytest.mark.parametrize("path", ["/", "/index.html", "/index.html?other=1"])
def test_a_link_without_the_secret_gets_the_refusal_page(app, path):
    status, kind, body = get(app["base"] + path)
    assert status == 401 and kind == "text/html"
    assert f"{REFUSAL_MISSING}." in body and TODO in body and "?secret=" in body
    assert app["secret"] not in body
    assert_still_served(app)


def test_a_wrong_secret_gets_403_and_says_so(app):
    for wrong in ("not-the-secret", app["secret"][:-1], app["secret"] + "x", ""):
        status, kind, body = get(f"{app['base']}/index.html?secret={wrong}")
        assert status == 403 and kind == "text/html", wrong
        assert f"{REFUSAL_WRONG}." in body and TODO in body and app["secret"] not in body
    assert_still_served(app)


def test_the_secret_in_a_wrong_place_is_refused(app):
    secret = app["secret"]
    for url in (f"{app['base']}/index.html?token={secret}",  # another parameter
                f"{app['base']}/index.html?Secret={secret}",  # names are case-sensitive
                f"{app['base']}/index.html#secret={secret}",  # a fragment never reaches the server
                f"{app['base']}/{secret}/index.html"):  # in the path
        status, _, body = get(url)
        assert status == 401 and secret not in body, url
        assert REFUSAL_MISSING in body and TODO in body, url
    assert_still_served(app)


def test_scripts_need_the_cookie_the_right_page_set(app):
    script = app["base"] + "/vue.global.js"
    status, kind, body = get(script)
    assert status == 401 and kind == "text/plain" and REFUSAL_MISSING in body and TODO in body
    cookies = CookieJar()
    assert get(app["url"], cookies)[0] == 200  # the printed URL sets the cookie...
    assert [cookie.name for cookie in cookies] == [cookie_name(app["port"])]
    assert all(cookie.value != app["secret"] for cookie in cookies), "the cookie must not hold the secret"
    assert get(script, cookies)[0] == 200  # ...which opens the scripts
    forged = CookieJar()
    get(app["url"], forged)
    for cookie in forged:
        cookie.value = hashlib.sha256(cookie.value.encode()).hexdigest()
    assert get(script, forged)[0] == 403
    # The cookie opens scripts, never a page: a page always needs the secret in its link.
    assert get(app["base"] + "/index.html", cookies)[0] == 401


def test_a_websocket_without_the_secret_is_refused(app):
    def upgrade(query: str = "", cookie: str | None = None) -> int:
        """The status of a websocket upgrade of /ws (101: switched; the page's client does the same)."""
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
        if cookie is not None:
            headers["Cookie"] = f"{cookie_name(app['port'])}={cookie}"
        connection = http.client.HTTPConnection("127.0.0.1", app["port"], timeout=30)
        try:
            connection.request("GET", "/ws" + query, headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()

    assert upgrade() == 401
    assert upgrade("?secret=not-the-secret") == 403
    assert upgrade(cookie="0" * 64) == 403
    # With the cookie the page's link set, the upgrade passes (wslink then asks for the secret itself).
    assert upgrade(cookie=cookie_value(app["secret"])) == 101
    assert_still_served(app)


def test_the_gate_rules():
    secret = "s3cret-s3cret-s3cret"
    assert check_request(secret, "/index.html", secret, None) == (0, True)  # a page: sets the cookie
    assert check_request(secret, "/vue.global.js", secret, None) == (0, False)
    assert check_request(secret, "/index.html", None, None) == (401, False)
    assert check_request(secret, "/", "nope", None) == (403, False)
    assert check_request(secret, "/index.html", None, cookie_value(secret)) == (401, False)  # pages need the link
    assert check_request(secret, "/ws", None, cookie_value(secret)) == (0, False)
    assert check_request(secret, "/ws", None, cookie_value("another-secret-here")) == (403, False)
    assert cookie_value(secret) != secret and secret not in cookie_value(secret)


# ----------------------------------------------------------------------------- starting

def test_a_busy_port_says_so_and_the_running_app_keeps_serving(app):
    started = time.perf_counter()
    run = run_cli("--port", str(app["port"]), "--data")
    assert run.returncode == 1, run.stdout + run.stderr
    line = error_line(run)
    assert f"Cannot listen on 127.0.0.1:{app['port']}" in line and "already in use" in line, line
    assert "pick another port with --port" in line.lower(), line
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr  # refused before building anything
    assert time.perf_counter() - started < 30
    assert_still_served(app)


def test_a_port_out_of_range_says_which_are_allowed():
    run = run_cli("--port", "70000", "--data")
    assert run.returncode == 1
    line = error_line(run)
    assert "Cannot listen on port 70000" in line and "from 0 to 65535" in line and "--port" in line


@pytest.mark.parametrize("host, why", [("no-such-host.invalid", "is not an address or a known host name"),
                                       ("192.0.2.1", "is not an address of this machine")])
def test_a_bad_host_says_to_check_it(host, why):
    port = free_port()
    run = run_cli("--host", host, "--port", str(port), "--data", timeout=60)
    assert run.returncode == 1
    line = error_line(run)
    assert f"Cannot listen on {host}:{port}" in line and why in line and "check --host" in line.lower(), line
    assert "Refusing to listen" not in line  # not mistaken for a missing token
    assert nothing_listens(port)


def test_a_missing_data_file_is_refused_before_anything_starts(tmp_path):
    port = free_port()
    missing = tmp_path / "no_such_scan.nii.gz"
    started = time.perf_counter()
    run = run_cli("--port", str(port), "--data", str(missing))
    assert run.returncode == 1
    line = error_line(run)
    assert f"Nothing at {missing}" in line and "--data" in line, line
    assert time.perf_counter() - started < 30 and nothing_listens(port)
    assert not missing.exists()


def test_a_data_file_that_is_not_an_image_says_so_and_is_left_alone(tmp_path):
    port = free_port()
    fake = tmp_path / "scan.nii.gz"
    fake.write_bytes(b"this is not a NIfTI image\n" * 10)
    before = fake.read_bytes()
    run = run_cli("--port", str(port), "--data", str(fake))
    assert run.returncode == 1, run.stdout + run.stderr
    line = error_line(run)
    assert f"Could not read {fake}" in line and "does not start with a NIfTI header" in line, line
    assert "copy the file again" in line and "Traceback" not in run.stderr, line
    assert fake.read_bytes() == before and sorted(tmp_path.iterdir()) == [fake]
    assert nothing_listens(port)


def test_a_data_file_of_an_unknown_type_says_which_it_reads(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("patient notes\n")
    run = run_cli("--port", str(free_port()), "--data", str(notes))
    assert run.returncode == 1
    line = error_line(run)
    assert "SegForge does not read notes.txt" in line and "NIfTI" in line and "DICOM" in line, line
    assert notes.read_text() == "patient notes\n"


@pytest.mark.parametrize("name, words", [
    ("surface.stl", "Premature EOF while reading header"),
    ("surface.vtp", "Error parsing input file"),
    ("surface.vtk", "does not contain polydata nor unstructured grid"),
    ("surface.ply", "found no points"),
    ("surface.obj", "found no points"),
    ("scene.mrb", "not a zip archive"),
])
def test_a_data_file_vtk_cannot_read_gives_our_line_and_no_native_dump(tmp_path, name, words):
    """VTK's readers printed their own dump before our line (ERROR: In vtkSTLReader.cxx, line
    247, a vtkInformation request, coloured log lines), and text named .ply or .obj loaded as an
    empty model. Now: one line, said before the views are built; the file is left alone."""
    fake = tmp_path / name
    fake.write_text("patient notes, not a model\n")
    port = free_port()
    run = run_cli("--port", str(port), "--data", str(fake))
    assert run.returncode == 1, run.stdout + run.stderr
    line = error_line(run)
    assert f"{fake}" in line and words in line, line
    assert "Failed to read node" not in line and "(0x" not in line, line
    only_our_lines(run)
    assert "Info: In" not in run.stdout and ".cxx" not in run.stdout, run.stdout
    assert fake.read_text() == "patient notes, not a model\n" and sorted(tmp_path.iterdir()) == [fake]
    assert nothing_listens(port)



def test_uploaded_files_never_overwrite_each_other_or_leave_the_folder(tmp_path):
    """A folder upload is flattened to base names: two series' IM0001 overwrote each other, one
    slice silently lost. A name that climbs out of the folder stays in it."""
    from segforge_app.data_panel import upload_target

    names = ["a/IM0001", "b/IM0001", "../../etc/passwd", "..", "", "C:\\scans\\ct.nii.gz", "ct.nii.gz"]
    written = []
    for number, name in enumerate(names):
        target = upload_target(tmp_path, name)
        target.write_bytes(bytes([number]))
        written.append(target)
    assert [p.parent for p in written] == [tmp_path] * len(names)
    assert len({p.name for p in written}) == len(names)
    assert [p.read_bytes() for p in written] == [bytes([n]) for n in range(len(names))]  # nothing overwritten
    assert written[5].name == "ct.nii.gz" and written[6].name.endswith(".nii.gz")  # the ending still says the type


def test_a_system_folder_as_data_is_refused_at_once(tmp_path):
    """--data /proc read /proc/kmsg through GDCM and blocked forever."""
    if not Path("/proc/self/mountinfo").is_file():
        pytest.skip("no /proc here")
    port = free_port()
    run = run_cli("--port", str(port), "--data", "/proc", timeout=120)
    assert run.returncode == 1
    assert "/proc is not a folder of images" in error_line(run)
    only_our_lines(run)
    assert nothing_listens(port)


@pytest.mark.parametrize("name", ["table.csv", "surface.vtp", "points.mrk.json"])
def test_a_pipe_or_a_device_named_like_data_is_refused_as_what_it_is(tmp_path, name, mrml_scene):
    """It was 'No file at ...: the path does not exist or is a folder' (it exists, and is neither)."""
    from segforge.errors import InputError
    from segforge_app.data_loading import load_path

    device = tmp_path / f"zeros-{name}"
    device.symlink_to("/dev/zero")
    pipe = tmp_path / name
    os.mkfifo(pipe)
    for path in (device, pipe):
        with pytest.raises(InputError) as caught:
            load_path(path, mrml_scene)
        assert "is not a regular file" in caught.value.what and "named pipe, a socket or a device" in caught.value.why
