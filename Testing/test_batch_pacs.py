"""A PACS query as a batch cohort, against the real Orthanc and a real Dask LocalCluster (one
worker): each image series a case, fetched into a verified cache, run, its SEG and SR in the
case folder and stored back; a rerun skips the cases and stores nothing twice; a PACS that is
down fails each case alone, with one message, and leaves no case folder. From the Python API
over DICOMweb, and from the command line over DIMSE."""
from __future__ import annotations

import json
import re

import pydicom
import pytest
from pydicom.uid import generate_uid

from batch_cohort import local_client
from conftest import SHARED_DATA
from dicom_helpers import DCIODVFY, DCMQI_PATIENT, dcmqi_ct
from orthanc_fixture import (READ_ONLY_AE, OrthancServer, dimse_env, move_env, orthanc,  # noqa: F401 (the fixture)
                             pacs_env)
from segforge.batch import SeriesRule, pacs_cohort, run_batch
from segforge.batch.pacs_cases import PACS_CACHE
from segforge.dicom.pacs import open_pacs
from segforge.dicom.pacs_config import PacsConfig, pacs_config
from segforge.errors import InputError
from segforge.organ.parameters import OrganParameters
from segforge.output_set import verify_manifest
from test_cli import segforge

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

PATIENT = DCMQI_PATIENT


@pytest.fixture(scope="module")
def cohort_in_pacs(orthanc: OrthancServer, tmp_path_factory) -> dict:  # noqa: F811
    """Two CT series of one study (dcmqi's CT, and a copy as a second series) and dcmqi's own SEG
    of the first (a derived object: never a case)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    first = dcmqi_ct(SHARED_DATA, tmp_path_factory.mktemp("upload") / "ct")
    second = tmp_path_factory.mktemp("upload") / "ct2"
    second.mkdir()
    series_uid = generate_uid()
    for path in sorted(first.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID, dataset.SeriesNumber = series_uid, 3
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.save_as(second / path.name, enforce_file_format=True)
    for path in [*sorted(first.glob("*.dcm")), *sorted(second.glob("*.dcm")),
                 SHARED_DATA / "dicom" / "dcmqi_ct3slice_seg" / "liver.dcm"]:
        assert orthanc.upload(path)["status"] == 200
    return {"series": sorted([str(pydicom.dcmread(next(first.glob("*.dcm"))).SeriesInstanceUID), series_uid])}


@pytest.fixture(scope="module")
def client():
    with local_client(1) as client:
        yield client


def test_a_query_is_a_cohort_run_stored_and_resumed_without_storing_twice(orthanc, cohort_in_pacs, client,  # noqa: F811
                                                                          tmp_path):
    config = pacs_config(pacs_env(orthanc))
    cohort = pacs_cohort({"PatientID": PATIENT}, SeriesRule(modality="CT"), open_pacs(config))
    assert sorted(c.pacs_series for c in cohort.cases) == cohort_in_pacs["series"]
    assert [e["reason"] for e in cohort.left_out] == ["a derived object (SEG), not images"]  # dcmqi's SEG
    before = len(orthanc.rest("/instances"))
    out = tmp_path / "out"
    summary = run_batch("organ", cohort.cases, out, OrganParameters(), client=client, progress=False, pacs=config,
                        store=True, left_out=cohort.left_out)
    assert summary.failed == [] and sorted(summary.succeeded) == sorted(c.case_id for c in cohort.cases)
    assert len(orthanc.rest("/instances")) == before + 4  # a SEG and an SR per case
    records = {}
    for case in cohort.cases:
        folder = out / "cases" / case.case_id
        assert verify_manifest(folder) == [] and verify_manifest(out / PACS_CACHE / case.pacs_series) == []
        seg = pydicom.dcmread(folder / "seg.dcm")
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == case.pacs_series
        assert summary.stored[case.case_id] == {"seg.dcm": "stored", "sr.dcm": "stored"}
        records[case.case_id] = json.loads((folder / "run_record.json").read_text())
        assert records[case.case_id]["inputs"][0]["files"] == 3  # the input hash is over the series' instances
    assert "test-only-password" not in (out / "batch.json").read_text()
    assert "(2 stored in the PACS, 4 objects sent)" in summary.line()
    # a rerun: the cache is verified and reused, the cases skipped, nothing stored twice
    again = run_batch("organ", cohort.cases, out, OrganParameters(), client=client, progress=False, pacs=config,
                      store=True)
    assert sorted(again.skipped) == sorted(summary.succeeded) and again.failed == []
    assert all(files == {"seg.dcm": "already stored", "sr.dcm": "already stored"} for files in again.stored.values())
    assert len(orthanc.rest("/instances")) == before + 4
    for case in cohort.cases:
        assert json.loads((out / "cases" / case.case_id / "run_record.json").read_text()) == records[case.case_id]


def test_a_pacs_down_fails_each_case_alone_with_one_message(orthanc, cohort_in_pacs, client, tmp_path):  # noqa: F811
    import socket

    cohort = pacs_cohort({"PatientID": PATIENT}, SeriesRule(modality="CT"), open_pacs(pacs_config(pacs_env(orthanc))))
    with socket.socket() as probe:  # a port nobody listens on: the PACS went down after the query
        probe.bind(("127.0.0.1", 0))
        down = PacsConfig(f"http://127.0.0.1:{probe.getsockname()[1]}/dicom-web", "u", "p", 5)
    out = tmp_path / "out"
    summary = run_batch("organ", cohort.cases, out, OrganParameters(), client=client, progress=False, pacs=down)
    assert summary.succeeded == [] and len(summary.failed) == 2
    assert all("cannot be reached" in f["why"] and f["todo"] for f in summary.failed), summary.failed
    assert list((out / "cases").iterdir()) == [] and list((out / PACS_CACHE).iterdir()) == []
    assert (out / "failures.csv").read_text().count("\n") == 3  # header + 2
    with pytest.raises(InputError, match="no filter"):
        pacs_cohort({}, pacs=open_pacs(pacs_config(pacs_env(orthanc))))
    with pytest.raises(InputError, match="'PatientNumber' is not a DICOM attribute"):
        pacs_cohort({"PatientNumber": PATIENT}, pacs=open_pacs(pacs_config(pacs_env(orthanc))))


def test_the_command_line_runs_a_query_over_dimse_and_resumes(orthanc, cohort_in_pacs, tmp_path):  # noqa: F811
    env = dimse_env(orthanc)
    out = tmp_path / "out"
    before = len(orthanc.rest("/instances"))
    args = ("batch", "organ", "--pacs-query", f"PatientID={PATIENT}", "--modality", "CT", "--out", str(out),
            "--store", "--workers", "1")
    run = segforge(*args, env_extra=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 cases in the PACS (pacs)" in run.stdout, run.stdout
    # 4 objects, or none where an earlier test of this module filed the same results: the objects'
    # UIDs come from what they hold, so the same result is never stored twice
    sent = re.search(r"2 succeeded, 0 failed, 0 skipped \(2 stored in the PACS, ([04]) objects sent\)", run.stdout)
    assert sent, run.stdout
    assert len(orthanc.rest("/instances")) == before + int(sent.group(1))
    again = segforge(*args, env_extra=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 succeeded, 0 failed, 2 skipped (2 stored in the PACS, 0 objects sent)" in again.stdout, again.stdout
    assert len(orthanc.rest("/instances")) == before + int(sent.group(1))
    # bad use, and a PACS down at the query: one line each, nothing run
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = {**env, "SEGFORGE_PACS_PORT": str(probe.getsockname()[1])}
    for extra, expected, environment in (
            (("--store",), "--store is for a PACS cohort", env),
            (("--pacs-query", "PatientID"), "is not KEY=VALUE", env),
            (("--pacs-query", f"PatientID={PATIENT}"), "cannot be reached", down)):
        inputs = (str(tmp_path),) if extra == ("--store",) else ()
        bad = segforge("batch", "organ", *inputs, *extra, "--out", str(tmp_path / "bad"), env_extra=environment)
        assert bad.returncode == 1 and expected in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_refused_store_keeps_the_results_and_a_rerun_only_stores_them(orthanc, cohort_in_pacs, client,  # noqa: F811
                                                                         tmp_path):
    """Over DIMSE from the API: an AE title that may fetch but not store; the cases' results are
    written, each case says they were not stored; the rerun with a title that may store does
    not redo the cases, it stores them."""
    read_only = pacs_config(dimse_env(orthanc, SEGFORGE_PACS_CALLING_AET=READ_ONLY_AE))
    cohort = pacs_cohort({"PatientID": PATIENT}, SeriesRule(modality="CT"), open_pacs(read_only))
    out = tmp_path / "out"
    orthanc.remove_segforge_results()  # what earlier tests filed: the same results, the same objects
    before = len(orthanc.rest("/instances"))
    summary = run_batch("organ", cohort.cases, out, OrganParameters(), client=client, progress=False, pacs=read_only,
                        store=True)
    assert summary.succeeded == [] and len(summary.failed) == 2
    for failure in summary.failed:
        assert "were written but not stored" in failure["what"] and READ_ONLY_AE in failure["why"], failure
        assert "run the batch again with --store" in failure["todo"]
        assert verify_manifest(out / "cases" / failure["case_id"]) == []  # the results are kept whole
    assert len(orthanc.rest("/instances")) == before
    stored = run_batch("organ", cohort.cases, out, OrganParameters(), client=client, progress=False,
                       pacs=pacs_config(dimse_env(orthanc)), store=True)
    assert sorted(stored.skipped) == sorted(c.case_id for c in cohort.cases) and stored.failed == []
    assert all(files == {"seg.dcm": "stored", "sr.dcm": "stored"} for files in stored.stored.values())
    assert len(orthanc.rest("/instances")) == before + 4


def test_a_cohort_fetched_by_c_move(orthanc, cohort_in_pacs, client, tmp_path):  # noqa: F811
    """Over DIMSE with fetches by C-MOVE: the Dask worker runs our Storage SCP for each case's
    fetch in turn, on the one port Orthanc's entry names; each case's cache holds its series as
    the PACS lists it, with its manifest, and nothing else is left in the cache."""
    config = pacs_config(move_env(orthanc))
    cohort = pacs_cohort({"PatientID": PATIENT}, SeriesRule(modality="CT"), open_pacs(config))
    out = tmp_path / "out"
    summary = run_batch("organ", cohort.cases, out, OrganParameters(), client=client, progress=False, pacs=config)
    assert summary.failed == [] and len(summary.succeeded) == 2, summary.failed
    pacs = open_pacs(config)
    for case in cohort.cases:
        cache = out / PACS_CACHE / case.pacs_series
        assert {p.stem for p in cache.glob("*.dcm")} == set(pacs.find_instances(case.pacs_study, case.pacs_series))
        assert verify_manifest(cache) == []
    assert sorted(p.name for p in (out / PACS_CACHE).iterdir()) == cohort_in_pacs["series"]


def test_dicom_on_a_dicom_tree_writes_seg_and_sr_per_case(tmp_path):
    """``--dicom`` with a DICOM tree: each case's SEG and SR pass dciodvfy; a volume-file case
    cannot have them and fails alone with what to do."""
    from dicom_helpers import dciodvfy_errors

    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    tree = tmp_path / "tree"
    dcmqi_ct(SHARED_DATA, tree / "ct")
    out = tmp_path / "out"
    run = segforge("batch", "organ", str(tree), "--out", str(out), "--dicom", "--workers", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    case = out / "cases" / "ct"
    assert dciodvfy_errors(case / "seg.dcm") == [] and dciodvfy_errors(case / "sr.dcm") == []
    assert verify_manifest(case) == []
    derived = segforge("batch", "organ", str(tree), "--out", str(out), "--dicom-derived")
    assert derived.returncode == 1 and "--dicom-derived is not a batch option" in derived.stderr, derived.stderr
    # a manifest with a DICOM series and a volume file: the volume's case fails alone
    from segforge.image_io import read_volume, write_image

    write_image(read_volume(tree / "ct"), tmp_path / "ct.nii.gz")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"case_id,image\nseries,{tree / 'ct'}\nvolume,{tmp_path / 'ct.nii.gz'}\n")
    mixed = segforge("batch", "organ", str(manifest), "--out", str(tmp_path / "mixed"), "--dicom", "--workers", "1")
    assert mixed.returncode == 1, mixed.stdout + mixed.stderr
    assert "1 succeeded, 1 failed" in mixed.stdout and "failed volume: Cannot write DICOM SEG or SR" in mixed.stdout
    assert (tmp_path / "mixed" / "cases" / "series" / "seg.dcm").is_file()
    assert not (tmp_path / "mixed" / "cases" / "volume").exists()
