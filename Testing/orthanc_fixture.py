"""A real Orthanc PACS for the tests: Debian's ``Orthanc`` with its DICOMweb plugin, started as a
plain process from a JSON config on a free loopback port, authentication on, its storage in
a throwaway folder, stopped (and its files deleted) after the tests.

Its DICOM (DIMSE) port is on too, on another free port: it answers only our AE title
(``OUR_AE`` connecting from 127.0.0.1, allowed to echo, find, get, move and store; ``READ_ONLY_AE``
the same but store) and only when
called by its own (``ORTHANC_AE``), so a wrong title is a refused association. Orthanc's
modality entry for ``OUR_AE`` names 127.0.0.1 and a free port (``move_port``): where a C-MOVE
to ``OUR_AE`` sends the images, so SegForge's Storage SCP listens there."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from conftest import SHARED_DATA
from dicom_helpers import uploaded_dcmqi_ct

ORTHANC = shutil.which("Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "segforge", "test-only-password"
ORTHANC_AE, OUR_AE = "ORTHANC_TEST", "SEGFORGE"
READ_ONLY_AE = "SEGFORGE_RO"  # may find and fetch, not store


@dataclass(frozen=True)
class OrthancServer:
    url: str  # the server's root (Orthanc's REST API)
    folder: Path
    dicom_port: int = 0  # its DIMSE port (on 127.0.0.1), called ORTHANC_AE
    move_port: int = 0  # where its modality entry for OUR_AE says a C-MOVE sends the images

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def rest(self, path: str) -> object:
        """GET on Orthanc's own REST API (what the tests count instances with)."""
        answer = requests.get(f"{self.url}{path}", auth=(USER, PASSWORD), timeout=10)
        answer.raise_for_status()
        return answer.json()

    def remove_segforge_results(self) -> None:
        """Delete the SEG and SR series SegForge stored: their UIDs come from what they hold, so a
        test that must see its results stored anew removes what an earlier test filed."""
        for series in self.rest("/series?expand"):
            tags = series["MainDicomTags"]
            if tags.get("Modality") in ("SEG", "SR") and tags.get("Manufacturer") == "SegForge":
                requests.delete(f"{self.url}/series/{series['ID']}", auth=(USER, PASSWORD),
                                timeout=10).raise_for_status()

    def upload(self, path: Path) -> dict:
        answer = requests.post(f"{self.url}/instances", data=path.read_bytes(), auth=(USER, PASSWORD), timeout=30)
        return {"status": answer.status_code, **(answer.json() if answer.content else {})}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_orthanc(folder: Path, **settings: object) -> tuple[subprocess.Popen, OrthancServer]:
    """Orthanc on free loopback ports, storing in ``folder``; ``settings`` override its config."""
    http, dicom, move = free_port(), free_port(), free_port()
    config = {"Name": "SEGFORGE_TEST", "StorageDirectory": str(folder / "storage"),
              "IndexDirectory": str(folder / "index"), "HttpPort": http, "DicomPort": dicom,
              "DicomServerEnabled": True, "DicomAet": ORTHANC_AE,
              "DicomCheckCalledAet": True, "DicomCheckModalityHost": True, "DicomAlwaysAllowEcho": False,
              "DicomAlwaysAllowStore": False, "DicomModalities": {"segforge": {
                  "AET": OUR_AE, "Host": "127.0.0.1", "Port": move, "AllowEcho": True,
                  "AllowFind": True, "AllowGet": True, "AllowMove": True, "AllowStore": True},
                  "readonly": {"AET": READ_ONLY_AE, "Host": "127.0.0.1", "Port": free_port(), "AllowEcho": True,
                               "AllowFind": True, "AllowGet": True, "AllowMove": False, "AllowStore": False}},
              "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
              "RegisteredUsers": {USER: PASSWORD}, "Plugins": [str(DICOMWEB_PLUGIN)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpServerEnabled": True,
              "ConcurrentJobs": 1, "HttpThreadsCount": 4, **settings}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen([ORTHANC, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT,
                               cwd=folder)
    server = OrthancServer(f"http://127.0.0.1:{http}", folder, dicom, move)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc stopped at start: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            server.rest("/system")
            return process, server
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("Orthanc did not answer within 30 s")


def stop_orthanc(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[OrthancServer]:
    if ORTHANC is None or not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc with its DICOMweb plugin is missing: `make test` installs orthanc orthanc-dicomweb")
    folder = tmp_path_factory.mktemp("orthanc")
    process, server = start_orthanc(folder)
    try:
        yield server
    finally:
        stop_orthanc(process)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def study(orthanc: OrthancServer, tmp_path_factory) -> dict:
    """dcmqi's CT uploaded into the module's Orthanc: its study and series UIDs, and its folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return uploaded_dcmqi_ct(orthanc, SHARED_DATA, tmp_path_factory.mktemp("upload") / "ct")


def pacs_env(server: OrthancServer, **changes: str) -> dict[str, str]:
    """The environment a user sets for SegForge's PACS commands (credentials never on a command line)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGFORGE_PACS")}
    env.update(SEGFORGE_PACS_URL=server.dicomweb, SEGFORGE_PACS_USER=USER, SEGFORGE_PACS_PASSWORD=PASSWORD)
    env.update(changes)
    return env


def dimse_env(server: OrthancServer, **changes: str) -> dict[str, str]:
    """The environment for the same PACS over DIMSE: host, port and the two AE titles."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGFORGE_PACS")}
    env.update(SEGFORGE_PACS_PROTOCOL="dimse", SEGFORGE_PACS_HOST="127.0.0.1",
               SEGFORGE_PACS_PORT=str(server.dicom_port), SEGFORGE_PACS_AET=ORTHANC_AE,
               SEGFORGE_PACS_CALLING_AET=OUR_AE, SEGFORGE_PACS_TIMEOUT="20")
    env.update(changes)
    return env


def move_env(server: OrthancServer, **changes: str) -> dict[str, str]:
    """DIMSE with fetches by C-MOVE: the PACS sends the images to our AE title, whose Storage SCP
    listens on loopback at the port Orthanc's modality entry names."""
    return dimse_env(server, **{"SEGFORGE_PACS_FETCH": "move", "SEGFORGE_PACS_MOVE_PORT": str(server.move_port),
                                "SEGFORGE_PACS_MOVE_BIND": "127.0.0.1", **changes})
