"""The PACS round trip over DIMSE (pynetdicom) against the real Orthanc's DICOM port: C-ECHO,
C-FIND of studies and series, C-GET of a series, C-MOVE of it to our own Storage SCP (the same
instances as C-GET's), C-STORE of SEG and SR, from the CLI and the Python API with the same
settings mechanism as DICOMweb; a retry stores nothing twice; an association refused, a PACS
down or silent, a C-MOVE destination the PACS does not know, our C-MOVE port taken, each one
line, the PACS left as it was and nothing written."""
from __future__ import annotations

import socket

import numpy as np
import pydicom
import pytest

from dicom_helpers import DCIODVFY, DCMQI_PATIENT, dciodvfy_errors, one_line
from orthanc_fixture import ORTHANC_AE, OUR_AE, dimse_env, free_port, move_env, orthanc, study  # noqa: F401 (fixtures)
from segforge.dicom.dimse import DimsePacs
from segforge.dicom.pacs import open_pacs
from segforge.dicom.pacs_config import pacs_config
from segforge.errors import InputError
from segforge.image_io import read_volume
from segforge.output_set import verify_manifest
from test_cli import segforge

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

PATIENT = DCMQI_PATIENT


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


@pytest.mark.parametrize("case", ["refused", "down", "timeout", "no study", "incomplete", "fetch method",
                                  "no move port"])
def test_dimse_problems_areone_line(orthanc, study, tmp_path, case):  # noqa: F811
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
    elif case == "fetch method":
        env.update(SEGFORGE_PACS_FETCH="wado", HOME=str(tmp_path))
        expected = "Unknown PACS fetch method 'wado'"
    elif case == "no move port":
        env.update(SEGFORGE_PACS_FETCH="move", HOME=str(tmp_path))
        expected = "SEGFORGE_PACS_MOVE_PORT is not set"
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
    one_line(run, expected)
    assert not (tmp_path / "out").exists()


def test_an_ae_title_the_pacs_does_not_know_may_not_query(orthanc, study):  # noqa: F811
    """An AE title the PACS does not list: the association is refused, and the message names our
    AE title and what the PACS administrator must do."""
    pacs = open_pacs(pacs_config(dimse_env(orthanc, SEGFORGE_PACS_CALLING_AET="STRANGER")))
    with pytest.raises(InputError) as raised:
        pacs.find_studies({"PatientID": PATIENT})
    assert "refused the association" in raised.value.message and "must list 'STRANGER'" in raised.value.message
    assert OUR_AE != "STRANGER"


def _series(folder) -> dict:
    """SOP Instance UID -> dataset, of every file in ``folder`` (the manifest aside)."""
    datasets = (pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm")))
    return {str(d.SOPInstanceUID): d for d in datasets}


def test_a_series_fetched_by_c_move_equals_its_c_get(orthanc, study, tmp_path):  # noqa: F811
    """C-MOVE to our AE title, whose Storage SCP listens (on loopback here) at the port Orthanc's
    modality entry names: the same instances, pixel for pixel, as C-GET brings, from the API (the
    settings in the config file) and from ``segforge pacs fetch`` (in the environment); nothing
    left beside the folders."""
    import json

    by_get = open_pacs(pacs_config(dimse_env(orthanc))).fetch_series(study["study"], study["series"],
                                                                      tmp_path / "get")
    settings = tmp_path.parent / f"{tmp_path.name}-pacs.json"
    settings.write_text(json.dumps({"protocol": "dimse", "host": "127.0.0.1", "port": orthanc.dicom_port,
                                    "called_ae": ORTHANC_AE, "calling_ae": OUR_AE, "fetch": "move",
                                    "move_port": orthanc.move_port, "move_bind": "127.0.0.1", "timeout_s": 20}))
    pacs = open_pacs(pacs_config({"SEGFORGE_PACS_CONFIG": str(settings)}))
    assert pacs.config.fetch == "move" and pacs.config.destination_ae == OUR_AE
    assert "fetch='move'" in repr(pacs.config) and f"move_port={orthanc.move_port}" in repr(pacs.config)
    by_move = pacs.fetch_series(study["study"], study["series"], tmp_path / "move")
    assert sorted(p.name for p in by_move) == sorted(p.name for p in by_get) and len(by_move) == 3
    run = segforge("pacs", "fetch", "--study", study["study"], "--out", str(tmp_path / "cli"),
                   env_extra=move_env(orthanc))
    assert run.returncode == 0 and "fetched 3 instances" in run.stdout, run.stdout + run.stderr
    assert verify_manifest(tmp_path / "cli") == []
    got = _series(tmp_path / "get")
    for folder in (tmp_path / "move", tmp_path / "cli"):
        moved = _series(folder)
        assert set(moved) == set(got) == set(_series(study["folder"]))
        for uid, dataset in moved.items():
            assert np.array_equal(dataset.pixel_array, got[uid].pixel_array)
            assert dataset.SeriesInstanceUID == study["series"]
    assert read_volume(tmp_path / "move").same_grid(read_volume(tmp_path / "get"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli", "get", "move"]  # no temporary folder left


@pytest.mark.parametrize("case", ["unknown destination", "another port"])
def test_a_c_move_the_pacs_cannot_deliver_isone_line(orthanc, study, tmp_path, case):  # noqa: F811
    """A destination AE title the PACS does not list (our AE may move; NOWHERE is no modality of
    it), or our SCP on another port than the one its modality entry names: one line saying both
    possibilities and the settings, nothing written (no folder, no temporary one)."""
    if case == "unknown destination":
        env, destination = move_env(orthanc, SEGFORGE_PACS_MOVE_AET="NOWHERE"), "NOWHERE"
    else:
        env, destination = move_env(orthanc, SEGFORGE_PACS_MOVE_PORT=str(free_port())), OUR_AE
    run = segforge("pacs", "fetch", "--study", study["study"], "--out", str(tmp_path / "out"), env_extra=env)
    one_line(run, f"refused the C-MOVE to '{destination}'")
    assert f"list '{destination}' with this machine's address and port {env['SEGFORGE_PACS_MOVE_PORT']}" in run.stderr
    assert "SEGFORGE_PACS_FETCH=get" in run.stderr, run.stderr
    with pytest.raises(InputError, match=destination):
        open_pacs(pacs_config(env)).fetch_series(study["study"], study["series"], tmp_path / "api")
    assert list(tmp_path.iterdir()) == []


def test_our_c_move_port_in_use_isone_line(orthanc, study, tmp_path):  # noqa: F811
    with socket.socket() as taken:  # another program listening on the port the PACS sends to
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier C-MOVE's connections may linger
        taken.bind(("127.0.0.1", orthanc.move_port))
        taken.listen(1)
        run = segforge("pacs", "fetch", "--study", study["study"], "--out", str(tmp_path / "out"),
                       env_extra=move_env(orthanc))
        with pytest.raises(InputError, match="is in use"):
            open_pacs(pacs_config(move_env(orthanc))).fetch_series(study["study"], study["series"], tmp_path / "api")
    one_line(run, f"Port {orthanc.move_port}, where SegForge receives the C-MOVE as 'SEGFORGE', is in use")
    assert "SEGFORGE_PACS_MOVE_PORT" in run.stderr
    assert list(tmp_path.iterdir()) == []
