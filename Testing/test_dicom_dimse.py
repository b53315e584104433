"""The PACS round trip over DIMSE (pynetdicom) against the real Orthanc's DICOM port: C-ECHO,
C-FIND of studies and series, C-GET of a series, C-STORE of SEG and SR, from the CLI and the
Python API with the same settings mechanism as DICOMweb; a retry stores nothing twice; an
association refused, a PACS down or silent, each one line, the PACS left as it was."""
from __future__ import annotations

import socket

import numpy as np
import pydicom
import pytest

from conftest import SHARED_DATA
from dicom_helpers import DCIODVFY, DCMQI_PATIENT, dciodvfy_errors, uploaded_dcmqi_ct
from orthanc_fixture import OUR_AE, OrthancServer, dimse_env, orthanc  # noqa: F401 (the fixture)
from segforge.dicom.dimse import DimsePacs
from segforge.dicom.pacs import open_pacs
from segforge.dicom.pacs_config import pacs_config
from segforge.errors import InputError
from segforge.image_io import read_volume
from test_cli import segforge

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

PATIENT = DCMQI_PATIENT


@pytest.fixture(scope="module")
def study(orthanc: OrthancServer, tmp_path_factory) -> dict:  # noqa: F811
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return uploaded_dcmqi_ct(orthanc, SHARED_DATA, tmp_path_factory.mktemp("upload") / "ct")


def _one_line(run, expected: str) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_the_api_finds_fetches_and_stores_over_dimse(orthanc, study, tmp_path):  # noqa: F811
    pacs = open_pacs(pacs_config(dimse_env(orthanc)))
    assert isinstance(pacs, DimsePacs)
    pacs.echo()
    (found,) = pacs.find_studies({"PatientID": PATIENT})
    assert found["StudyInstanceUID"] == study["study"] and found["PatientID"] == PATIENT
    assert pacs.find_studies({"PatientID": "nobody"}) == []
    assert pacs.choose_series(study["study"]) == study["series"]
    paths = pacs.fetch_series(study["study"], study["series"], tmp_path / "ct")
    sent = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in study["folder"].glob("*.dcm")}
    assert {p.stem for p in paths} == set(sent)
    for path in paths:  # what came back over C-GET is the instance that went in, pixel for pixel
        back = pydicom.dcmread(path)
        assert np.array_equal(back.pixel_array, sent[back.SOPInstanceUID].pixel_array)
    assert read_volume(tmp_path / "ct").same_grid(read_volume(study["folder"]))
    with pytest.raises(InputError, match="holds no study 1.2.3.4.5"):
        pacs.find_series("1.2.3.4.5")
    with pytest.raises(InputError, match="sent no images of series 1.2.3"):
        pacs.fetch_series(study["study"], "1.2.3", tmp_path / "none")
    with pytest.raises(InputError, match="not a DICOM attribute"):
        pacs.find_studies({"PatientNumber": "1"})


def test_run_and_store_from_the_cli_over_dimse_never_twice(orthanc, study, tmp_path):  # noqa: F811
    env = dimse_env(orthanc)
    echo = segforge("pacs", "echo", env_extra=env)
    assert echo.returncode == 0 and "(dimse)" in echo.stdout, echo.stderr
    found = segforge("pacs", "find", "--patient-id", PATIENT, env_extra=env)
    assert found.returncode == 0 and study["study"] in found.stdout and "1 study" in found.stdout, found.stderr
    before = len(orthanc.rest("/instances"))
    out = tmp_path / "results"
    run = segforge("pacs", "run", "organ", "--study", study["study"], "--out", str(out), env_extra=env)
    assert run.returncode == 0, run.stderr
    assert "stored: seg.dcm" in run.stdout and "stored: sr.dcm" in run.stdout, run.stdout
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    assert len(orthanc.rest("/instances")) == before + 2
    seg = pydicom.dcmread(out / "seg.dcm")
    assert any(i["MainDicomTags"]["SOPInstanceUID"] == seg.SOPInstanceUID for i in orthanc.rest("/instances?expand"))
    modalities = sorted(s["Modality"] for s in open_pacs(pacs_config(env)).find_series(study["study"]))
    assert modalities.count("SEG") >= 1 and modalities.count("SR") >= 1
    again = segforge("pacs", "store", str(out), env_extra=env)
    assert again.returncode == 0 and again.stdout.count("already stored") == 2, again.stdout + again.stderr
    assert len(orthanc.rest("/instances")) == before + 2


@pytest.mark.parametrize("case", ["refused", "down", "timeout", "no study", "incomplete"])
def test_dimse_problems_are_one_line(orthanc, study, tmp_path, case):  # noqa: F811
    listener = None
    env = dimse_env(orthanc)
    if case == "refused":  # Orthanc checks the AE title it is called by
        env["SEGFORGE_PACS_AET"], expected = "NOT_ORTHANC", "refused the association"
    elif case == "down":
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            env["SEGFORGE_PACS_PORT"] = str(probe.getsockname()[1])
        expected = "cannot be reached"
    elif case == "timeout":
        listener = socket.socket()  # accepts connections (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        env.update(SEGFORGE_PACS_PORT=str(listener.getsockname()[1]), SEGFORGE_PACS_TIMEOUT="1")
        expected = "did not accept an association within 1 s"
    elif case == "no study":
        expected = "holds no study 1.2.3.4.5"
    else:
        env.pop("SEGFORGE_PACS_AET")
        env.update(HOME=str(tmp_path))
        expected = "SEGFORGE_PACS_AET not set"
    try:
        study_uid = "1.2.3.4.5" if case == "no study" else study["study"]
        run = segforge("pacs", "run", "organ", "--study", study_uid, "--out", str(tmp_path / "out"), env_extra=env)
    finally:
        if listener is not None:
            listener.close()
    _one_line(run, expected)
    assert not (tmp_path / "out").exists()


def test_an_ae_title_the_pacs_does_not_know_may_not_query(orthanc, study):  # noqa: F811
    """An AE title the PACS does not list: the association is refused, and the message names our
    AE title and what the PACS administrator must do."""
    pacs = open_pacs(pacs_config(dimse_env(orthanc, SEGFORGE_PACS_CALLING_AET="STRANGER")))
    with pytest.raises(InputError) as raised:
        pacs.find_studies({"PatientID": PATIENT})
    assert "refused the association" in raised.value.message and "must list 'STRANGER'" in raised.value.message
    assert OUR_AE != "STRANGER"
