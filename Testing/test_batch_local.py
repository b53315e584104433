"""``segforge batch`` on a real Dask LocalCluster: the three workflows, failures, resume, the
tables, the run records, and the command line's final line."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from batch_cohort import interactive_folder, local_client, organ_folder, run_segforge, small_ct, vessel_manifest

from segforge.batch import discover, run_batch
from segforge.batch.resume import RECORD
from segforge.image_io import write_image
from segforge.organ.parameters import OrganParameters
from segforge.output_set import verify_manifest
from segforge.vessel.pipeline import VesselPipelineParameters, preset


@pytest.fixture(scope="module")
def client():
    with local_client(2) as client:
        yield client


ORGAN = OrganParameters(structures=("lungs", "bones"))


def test_organ_folder_with_a_truncated_file_and_an_mr_goes_on_and_resumes(tmp_path, client):
    folder = organ_folder(tmp_path / "cts", copies=3)
    out = tmp_path / "out"
    cases = discover(folder).cases
    summary = run_batch("organ", cases, out, ORGAN, {"statistics": True}, client=client, progress=False)
    assert sorted(summary.succeeded) == ["ct0", "ct1", "ct2"] and summary.skipped == []
    failed = {f["case_id"]: f for f in summary.failed}
    assert set(failed) == {"truncated", "wrong_modality_mr"}
    assert "incomplete" in failed["truncated"]["what"] and failed["truncated"]["todo"]
    assert "CT" in failed["wrong_modality_mr"]["what"] + failed["wrong_modality_mr"]["why"]
    assert summary.line() == f"3 succeeded, 2 failed, 0 skipped; failures listed in {out / 'failures.csv'}"
    assert (out / "failures.csv").read_text().count("\n") == 3  # header + 2
    for case_id in ("ct0", "ct1", "ct2"):
        folder_ = out / "cases" / case_id
        assert verify_manifest(folder_) == []
        record = json.loads((folder_ / RECORD).read_text())
        assert record["inputs"][0]["sha256"] and record["parameters"]["structures"] == ["lungs", "bones"]
        assert record["versions"]["segforge"] and record["versions"]["distributed"] and record["device"] == "cpu"
        assert record["timings"]["workflow_s"] > 0
    assert not (out / "cases" / "truncated").exists() and not list((out / "cases").glob(".*"))
    table = pq.read_table(out / "cohort_organ.parquet").to_pylist()
    assert sorted({(r["case_id"], r["structure"]) for r in table}) == [
        (c, s) for c in ("ct0", "ct1", "ct2") for s in ("bones", "lungs")]
    lungs = [r["volume_ml"] for r in table if r["structure"] == "lungs"]
    assert all(v > 10 for v in lungs)
    assert (out / "cohort_organ.csv").read_text().count("\n") == 7
    # a worker process ran more than one case (it keeps its imports and models between cases)
    records = [json.loads((out / "cases" / c / RECORD).read_text()) for c in ("ct0", "ct1", "ct2")]
    assert len({r["worker"]["pid"] for r in records}) <= 2

    # rerun: the done cases are skipped, the failed ones tried again; a changed input is redone
    write_image(small_ct(50), folder / "ct1.nii.gz")
    again = run_batch("organ", discover(folder).cases, out, ORGAN, {"statistics": True}, client=client,
                      progress=False)
    assert sorted(again.skipped) == ["ct0", "ct2"] and again.succeeded == ["ct1"] and len(again.failed) == 2
    assert len(pq.read_table(out / "cohort_organ.parquet")) == 6  # skipped cases keep their rows
    # other parameters: every case redone
    third = run_batch("organ", [c for c in discover(folder).cases if c.case_id == "ct0"], out,
                      OrganParameters(structures=("lungs",)), {"statistics": True}, client=client, progress=False)
    assert third.succeeded == ["ct0"] and len(pq.read_table(out / "cohort_organ.parquet")) == 1


def test_vessel_manifest_of_segments_gives_a_branch_table(tmp_path, client):
    manifest = vessel_manifest(tmp_path / "m")
    cases = discover(manifest, segment_label="aorta").cases
    parameters = VesselPipelineParameters(mask=preset("cta"))
    summary = run_batch("vessel", cases, tmp_path / "out", parameters, {"segment_name": "Aorta"}, client=client,
                        progress=False)
    assert sorted(summary.succeeded) == ["A-1", "B_2"], summary.failed
    rows = pq.read_table(tmp_path / "out" / "cohort_vessel.parquet").to_pylist()
    for case_id in ("A-1", "B_2"):
        own = [r for r in rows if r["case_id"] == case_id]
        assert own and all(r["length_mm"] > 0 and r["mean_diameter_mm"] > 5 for r in own)  # an aorta: > 5 mm
    assert (tmp_path / "out" / "cases" / "A-1" / "centerlines.vtp").is_file()


def test_interactive_folder_with_prompt_files_gives_lesion_volumes(tmp_path, client):
    folder = interactive_folder(tmp_path / "lesions")
    parameters = {"backend": "random-walker", "device": "cpu", "segment_name": "Lesion"}
    summary = run_batch("interactive", discover(folder).cases, tmp_path / "out", parameters, client=client,
                        progress=False)
    assert sorted(summary.succeeded) == ["lung_a", "lung_b"], summary.failed
    rows = pq.read_table(tmp_path / "out" / "cohort_interactive.parquet").to_pylist()
    assert len(rows) == 2 and rows[0]["volume_ml"] > 0 and rows[0]["volume_ml"] == rows[1]["volume_ml"]
    assert rows[0]["prompts"] == 1


def test_the_command_runs_a_local_cluster_and_says_how_many(tmp_path):
    folder = tmp_path / "cts"
    folder.mkdir()
    write_image(small_ct(), folder / "one.nii.gz")
    (folder / "two.nii.gz").write_bytes(b"not a volume")
    done = run_segforge("batch", "organ", str(folder), "--out", str(tmp_path / "out"), "--workers", "1",
                        "--structures", "lungs")
    assert done.returncode == 1, done.stderr  # a case failed
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == f"1 succeeded, 1 failed, 0 skipped; failures listed in {tmp_path / 'out' / 'failures.csv'}"
    assert any(line.startswith("Dask dashboard: http://127.0.0.1:") for line in lines)
    assert any(line.startswith("failed two: ") for line in lines) and "Traceback" not in done.stderr
    assert "cases:" in done.stderr  # the progress bar
    bad = run_segforge("batch", "organ", str(folder), "--out", str(tmp_path / "o2"), "--structures", "lung")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "lung" in bad.stderr
    refused = run_segforge("batch", "organ", str(folder), "--out", str(tmp_path / "o3"), "--overwrite")
    assert refused.returncode == 1 and "--overwrite is not a batch option" in refused.stderr


def test_a_background_batch_reports_progress_and_cancels_leaving_whole_case_folders(tmp_path):
    """What Slicer's console runs: the batch in a thread, its progress readable, Cancel landing
    like Ctrl-C (the cases not run are listed; every case folder is whole)."""
    import time

    from segforge.batch import ClusterSettings, start_batch

    folder = organ_folder(tmp_path / "cts", copies=6, bad=False)
    out = tmp_path / "out"
    job = start_batch("organ", discover(folder).cases, str(out), ORGAN, {"statistics": True},
                      cluster=ClusterSettings(workers=1))
    deadline = time.monotonic() + 120
    while job.fraction == 0.0 and not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "of 6 cases" in job.message, job.message
    job.cancel()
    summary = job.wait(timeout=120)
    assert summary.interrupted and summary.not_run, summary
    assert 1 <= len(summary.succeeded) < 6
    folders = sorted(p.name for p in (out / "cases").iterdir())
    assert folders == sorted(summary.succeeded)  # nothing hidden or partial beside them
    assert all(verify_manifest(out / "cases" / name) == [] for name in folders)
    assert len({r["case_id"] for r in pq.read_table(out / "cohort_organ.parquet").to_pylist()}) == len(folders)
