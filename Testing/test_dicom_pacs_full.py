"""A PACS whose storage is full (a real Orthanc with ``MaximumStorageSize`` and every patient
protected from recycling): storing a result it cannot keep is one line over DICOMweb and
DIMSE, nothing is kept, and the same store goes through once there is room.

Orthanc 1.10's DICOMweb answers such a STOW-RS with HTTP 200 and neither a stored nor a failed
instance listed; only looking the instance up afterwards shows that it was not kept."""
from __future__ import annotations

import shutil
from typing import Iterator

import numpy as np
import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from conftest import SHARED_DATA
from dicom_helpers import DCIODVFY, one_line, uploaded_dcmqi_ct
from orthanc_fixture import (DICOMWEB_PLUGIN, ORTHANC, PASSWORD, USER, OrthancServer, dimse_env, pacs_env,
                             start_orthanc, stop_orthanc)
from test_cli import segforge

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

LIMIT_MB = 3  # the CT (1.6 MB) and a filler; the filler alone is more than our SEG and SR need
#: Room left once the PACS is filled: less than our SEG needs, more than nothing.
ROOM_BYTES = 4_000


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Iterator[tuple[OrthancServer, dict]]:
    """Orthanc holding dcmqi's CT and a filler patient, both protected, ``ROOM_BYTES`` short of
    its ``LIMIT_MB``; and the CT study's UIDs and folder."""
    if ORTHANC is None or not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc with its DICOMweb plugin is missing: `make test` installs orthanc orthanc-dicomweb")
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    folder = tmp_path_factory.mktemp("orthanc-full")
    process, server = start_orthanc(folder, MaximumStorageSize=LIMIT_MB)
    try:
        study = uploaded_dcmqi_ct(server, SHARED_DATA, tmp_path_factory.mktemp("upload") / "ct")
        used = int(server.rest("/statistics")["TotalDiskSize"])
        filler = _filler(study["folder"], LIMIT_MB * 1024 * 1024 - used - ROOM_BYTES, folder / "filler.dcm")
        assert server.upload(filler)["status"] == 200
        for patient in server.rest("/patients"):
            requests.put(f"{server.url}/patients/{patient}/protected", data="1", auth=(USER, PASSWORD),
                         timeout=10).raise_for_status()
        yield server, study
    finally:
        stop_orthanc(process)
        shutil.rmtree(folder, ignore_errors=True)


def _filler(ct_folder, nbytes: int, path):
    """Another patient's instance of about ``nbytes`` (uncompressed pixels)."""
    dataset = pydicom.dcmread(sorted(ct_folder.glob("*.dcm"))[0])
    side = int(np.sqrt(max(nbytes - 4_000, 2) / 2))
    dataset.Rows = dataset.Columns = side
    dataset.PixelData = np.zeros((side, side), np.int16).tobytes()
    dataset.PatientID, dataset.PatientName = "FILLER", "Filler^Patient"
    for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(dataset, uid, generate_uid())
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(path)
    return path


def _results(server: OrthancServer, study: dict, tmp_path):
    out = tmp_path / "results"
    run = segforge("pacs", "run", "organ", "--study", study["study"], "--out", str(out), "--no-store",
                   env_extra=pacs_env(server))
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_a_full_pacs_keeps_nothing_and_says_so_in_one_line(full, tmp_path, protocol):
    server, study = full
    out = _results(server, study, tmp_path)
    before = sorted(server.rest("/instances"))
    env = pacs_env(server) if protocol == "dicomweb" else dimse_env(server)
    run = segforge("pacs", "store", str(out), env_extra=env)
    one_line(run, {"dicomweb": "did not keep seg.dcm", "dimse": "out of resources"}[protocol])
    assert "seg.dcm" in run.stderr
    assert sorted(server.rest("/instances")) == before  # nothing kept, not even part of the set


def test_the_same_store_goes_through_once_there_is_room(full, tmp_path):
    server, study = full
    out = _results(server, study, tmp_path)
    filler = next(p for p in server.rest("/patients") if server.rest(f"/patients/{p}")["MainDicomTags"]["PatientID"]
                  == "FILLER")
    requests.delete(f"{server.url}/patients/{filler}", auth=(USER, PASSWORD), timeout=10).raise_for_status()
    run = segforge("pacs", "store", str(out), env_extra=pacs_env(server))
    assert run.returncode == 0 and run.stdout.count("stored:") == 2, run.stdout + run.stderr
