"""The PACS round trip against a real Orthanc (DICOMweb, authentication on): find a study, fetch
its series, run a workflow, store SEG and SR back, from the CLI and the Python API; a retry
stores nothing twice; a PACS that is down, slow, refuses the credentials or lacks the study,
and a config that leaks a password, each give one line and leave the PACS as it was."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from dicom_helpers import DCIODVFY, DCMQI_PATIENT, dciodvfy_errors, one_line
from orthanc_fixture import PASSWORD, USER, OrthancServer, orthanc, study  # noqa: F401 (fixtures)
from segforge.dicom.pacs import Pacs, PacsConfig, pacs_config
from segforge.dicom.seg_import import read_dicom_seg
from segforge.errors import InputError
from segforge.image_io import read_volume
from test_cli import segforge

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

PATIENT = DCMQI_PATIENT


def _env(server: OrthancServer, **changes: str) -> dict[str, str]:
    return {"SEGFORGE_PACS_URL": server.dicomweb, "SEGFORGE_PACS_USER": USER, "SEGFORGE_PACS_PASSWORD": PASSWORD,
            "SEGFORGE_PACS_TIMEOUT": "20", **changes}


def test_the_bundled_series_with_empty_uids_is_refused_by_the_pacs(orthanc, shared_data):  # noqa: F811
    first = sorted((shared_data / "dicom" / "ts_ct_series_20sl").iterdir())[0]
    answer = orthanc.upload(first)
    assert answer["status"] == 400 and "missing StudyInstanceUID" in answer["Details"]


def test_find_run_store_round_trip_from_the_cli(orthanc, study, tmp_path):  # noqa: F811
    env = _env(orthanc)
    found = segforge("pacs", "find", "--patient-id", PATIENT, env_extra=env)
    assert found.returncode == 0 and study["study"] in found.stdout and "1 study" in found.stdout, found.stderr
    out = tmp_path / "results"
    run = segforge("pacs", "run", "organ", "--study", study["study"], "--out", str(out), env_extra=env)
    assert run.returncode == 0, run.stderr
    assert "stored: seg.dcm" in run.stdout and "stored: sr.dcm" in run.stdout
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    pacs = Pacs(pacs_config(env))
    modalities = sorted(s["Modality"] for s in pacs.find_series(study["study"]))
    assert modalities == ["CT", "SEG", "SR"]
    # what the PACS holds is what was written, on the CT's grid
    seg_series = next(s for s in pacs.find_series(study["study"]) if s["Modality"] == "SEG")
    (fetched,) = pacs.fetch_series(study["study"], seg_series["SeriesInstanceUID"], tmp_path / "back")
    image = read_volume(study["folder"])
    back, ours = read_dicom_seg(fetched, image), read_dicom_seg(out / "seg.dcm", image)
    assert [s.name for s in back.segments] == [s.name for s in ours.segments]
    assert all(np.array_equal(back.masks[n], ours.masks[n]) for n in ours.masks)
    instances = len(orthanc.rest("/instances"))
    again = segforge("pacs", "store", str(out), env_extra=env)  # a retry: nothing twice
    assert again.returncode == 0 and again.stdout.count("already stored") == 2, again.stdout + again.stderr
    assert len(orthanc.rest("/instances")) == instances == 5
    # the same run again: the same objects (their UIDs come from what they hold), stored once
    rerun = segforge("pacs", "run", "organ", "--study", study["study"], "--out", str(out), "--overwrite",
                     env_extra=env)
    assert rerun.returncode == 0 and rerun.stdout.count("already stored") == 2, rerun.stdout + rerun.stderr
    assert len(orthanc.rest("/instances")) == 5
    # the study's one image series is still found among its SEG and SR
    assert pacs.choose_series(study["study"]) == study["series"]


def test_fetch_writes_the_series_all_or_nothing(orthanc, study, tmp_path):  # noqa: F811
    run = segforge("pacs", "fetch", "--study", study["study"], "--series", study["series"], "--out",
                   str(tmp_path / "ct"), env_extra=_env(orthanc))
    assert run.returncode == 0, run.stderr
    assert read_volume(tmp_path / "ct").same_grid(read_volume(study["folder"]))
    assert len(list((tmp_path / "ct").glob("*.dcm"))) == 3 and (tmp_path / "ct" / "manifest.json").is_file()


def test_a_failed_store_sends_nothing(orthanc, study, tmp_path):  # noqa: F811
    out = tmp_path / "results"
    run = segforge("pacs", "run", "organ", "--study", study["study"], "--out", str(out), "--no-store",
                   env_extra=_env(orthanc))
    assert run.returncode == 0 and "stored" not in run.stdout, run.stderr
    before = len(orthanc.rest("/instances"))
    one_line(segforge("pacs", "store", str(out), env_extra=_env(orthanc, SEGFORGE_PACS_PASSWORD="wrong")),
              "refused the credentials (HTTP 401)")
    with open(out / "sr.dcm", "r+b") as handle:  # an altered file: refused before the SEG is sent
        handle.truncate(1000)
    one_line(segforge("pacs", "store", str(out), env_extra=_env(orthanc)), "changed since they were written")
    assert len(orthanc.rest("/instances")) == before


@pytest.mark.parametrize("case", ["down", "credentials", "timeout", "no study", "no config"])
def test_pacs_problems_areone_line(orthanc, study, tmp_path, case):  # noqa: F811
    listener = None
    env = _env(orthanc)
    if case == "down":
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env["SEGFORGE_PACS_URL"], expected = f"http://127.0.0.1:{port}/dicom-web", "cannot be reached"
    elif case == "credentials":
        env["SEGFORGE_PACS_PASSWORD"], expected = "wrong", "refused the credentials"
    elif case == "timeout":
        listener = socket.socket()  # accepts connections (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        env.update(SEGFORGE_PACS_URL=f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web",
                   SEGFORGE_PACS_TIMEOUT="1")
        expected = "did not answer within 1 s"
    elif case == "no study":
        expected = "holds no study 1.2.3.4.5"
    else:
        env = {"SEGFORGE_PACS_URL": "", "HOME": str(tmp_path)}
        expected = "No PACS is configured"
    try:
        study_uid = "1.2.3.4.5" if case == "no study" else study["study"]
        run = segforge("pacs", "run", "organ", "--study", study_uid, "--out", str(tmp_path / "out"), env_extra=env)
    finally:
        if listener is not None:
            listener.close()
    one_line(run, expected)
    assert not (tmp_path / "out").exists()


def test_config_file_gives_the_credentials_and_must_be_private(orthanc, study, tmp_path):  # noqa: F811
    config = tmp_path / "pacs.json"
    config.write_text(json.dumps({"url": orthanc.dicomweb, "username": USER, "password": PASSWORD}))
    config.chmod(0o600)
    settings = pacs_config({"SEGFORGE_PACS_CONFIG": str(config)})
    assert PASSWORD not in repr(settings)
    assert [s["StudyInstanceUID"] for s in Pacs(settings).find_studies({"PatientID": PATIENT})] == [study["study"]]
    config.chmod(0o644)
    with pytest.raises(InputError, match="(?i)can be read by other users.*chmod 600"):
        pacs_config({"SEGFORGE_PACS_CONFIG": str(config)})
    with pytest.raises(InputError, match="(?i)refused the credentials"):
        Pacs(PacsConfig(orthanc.dicomweb, USER, "wrong", 10)).find_studies()



def _settings(tmp_path, env: dict, file_values: dict) -> PacsConfig:
    """pacs_config of ``env`` and a (private) config file holding ``file_values``."""
    path = tmp_path / "pacs.json"
    path.write_text(json.dumps(file_values))
    path.chmod(0o600)
    return pacs_config({**env, "SEGFORGE_PACS_CONFIG": str(path)})


@pytest.mark.parametrize("url", ["pacs.example.org", "http://", "ftp://x/y", "http://[::1", "http://h:port/x", 5],
                         ids=["no scheme", "no host", "ftp", "bracket", "port", "a number"])
def test_a_malformed_pacs_url_is_one_line(tmp_path, url):
    """A URL the request library cannot use raised a raw "Malformed URL" ValueError mid-command."""
    with pytest.raises(InputError, match="PACS URL is not usable"):
        _settings(tmp_path, {} if url == 5 else {"SEGFORGE_PACS_URL": url}, {"url": url} if url == 5 else {})


def test_a_password_in_the_url_is_refused_and_never_shown(tmp_path):
    """http://user:secret@host/... was printed back in every message and in the settings' repr."""
    env = {key: "" for key in ("SEGFORGE_PACS_USER", "SEGFORGE_PACS_PASSWORD", "SEGFORGE_PACS_PROTOCOL")}
    env.update(SEGFORGE_PACS_URL="http://segforge:wrong-secret@127.0.0.1:9/dicom-web", HOME=str(tmp_path))
    run = segforge("pacs", "find", env_extra=env)
    one_line(run, "SEGFORGE_PACS_USER and SEGFORGE_PACS_PASSWORD")
    assert "wrong-secret" not in run.stderr + run.stdout


@pytest.mark.parametrize("port", ["70000", "104.7", "0", True, 104.7, 70000])
def test_a_dimse_port_out_of_range_or_not_whole_is_refused(tmp_path, port):
    """70000 failed as an OverflowError in pynetdicom's thread, 104.7 became 104, true became 1."""
    env = {"SEGFORGE_PACS_PROTOCOL": "dimse", "SEGFORGE_PACS_HOST": "127.0.0.1", "SEGFORGE_PACS_AET": "X"}
    in_env = isinstance(port, str)
    with pytest.raises(InputError, match="port is not usable.*1 to 65535"):
        _settings(tmp_path, {**env, "SEGFORGE_PACS_PORT": port} if in_env else env, {} if in_env else {"port": port})


def test_an_unknown_dimse_host_is_one_line(tmp_path):
    """pynetdicom said only "[Errno -2] Name or service not known"."""
    env = {"SEGFORGE_PACS_PROTOCOL": "dimse", "SEGFORGE_PACS_HOST": "no such host.invalid", "SEGFORGE_PACS_PORT": "104",
           "SEGFORGE_PACS_AET": "X", "SEGFORGE_PACS_TIMEOUT": "5", "HOME": str(tmp_path)}
    one_line(segforge("pacs", "echo", env_extra=env), "was not found. Check SEGFORGE_PACS_HOST")
