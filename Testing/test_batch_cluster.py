"""``segforge batch --scheduler`` against a separately started ``dask scheduler`` and two
``dask worker`` processes on loopback: a DICOM tree, and a worker killed mid-case (its case
retried on another worker, then recorded as failed once the scheduler's limit is reached)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk
from batch_cohort import SEGFORGE, dicom_tree, small_ct

from segforge.batch.resume import RECORD
from segforge.image_io import from_sitk, to_sitk, write_image
from segforge.output_set import verify_manifest

DASK = Path(sys.executable).with_name("dask")
#: The scheduler gives a case one retry after a lost worker; one task per worker thread at a time.
SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
                 "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with two single-thread workers (each under its own nanny)."""
    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    env = {**os.environ, **SCHEDULER_ENV}
    processes = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for n in range(2):
            processes.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--host", "127.0.0.1", "--name", f"w{n}", "--memory-limit", "0"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        logging.getLogger("distributed").setLevel(logging.ERROR)
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_dicom_tree_on_an_existing_cluster(tmp_path, scheduler):
    tree = dicom_tree(tmp_path / "tree")
    out = tmp_path / "out"
    done = subprocess.run([str(SEGFORGE), "batch", "organ", str(tree), "--out", str(out), "--scheduler", scheduler,
                           "--modality", "CT", "--structures", "lungs,bones"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert "2 cases in" in lines[0] and "2 left out" in lines[1]
    assert lines[-1] == f"2 succeeded, 0 failed, 0 skipped; failures listed in {out / 'failures.csv'}"
    left_out = json.loads((out / "batch.json").read_text())["left_out"]
    assert sorted(e["reason"].split(",")[0] for e in left_out)[1] == "modality MR"
    for case_id in ("patient1_ct", "patient2_ct"):
        assert verify_manifest(out / "cases" / case_id) == []
        record = json.loads((out / "cases" / case_id / RECORD).read_text())
        assert record["inputs"][0]["files"] == 30 and record["worker"]["pid"] != done.args  # ran on a dask worker
    rows = (out / "cohort_organ.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("case_id,structure")


def _processing_worker(client, prefix: str, exclude: set[str]):
    """The address of the worker now holding the case whose task key starts with ``prefix``."""
    for address, keys in client.processing().items():
        if address not in exclude and any(str(key).startswith(prefix) for key in keys):
            return address
    return None


def test_a_worker_killed_mid_case_is_retried_then_the_case_is_recorded_failed(tmp_path, scheduler):
    from distributed import Client

    folder = tmp_path / "cts"
    folder.mkdir()
    for n in range(2):
        write_image(small_ct(3 * n), folder / f"ct{n}.nii.gz")
    big = sitk.Expand(to_sitk(small_ct()), [4, 4, 4])  # the slowed case: 64 times the voxels
    write_image(from_sitk(big), folder / "slow.nii.gz")
    out = tmp_path / "out"
    batch = subprocess.Popen([str(SEGFORGE), "batch", "organ", str(folder), "--out", str(out), "--scheduler",
                              scheduler, "--structures", "lungs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    killed: list[str] = []
    try:
        with Client(scheduler, timeout="30s") as client:
            for _attempt in range(2):
                deadline, address = time.monotonic() + 120, None
                while address is None and time.monotonic() < deadline and batch.poll() is None:
                    address = _processing_worker(client, "segforge-case-slow-", set(killed))
                    time.sleep(0.05)
                assert address is not None, "the slowed case never ran"
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                killed.append(address)
                deadline = time.monotonic() + 60
                while address in client.scheduler_info()["workers"] and time.monotonic() < deadline:
                    time.sleep(0.05)
        stdout, stderr = batch.communicate(timeout=240)
    finally:
        if batch.poll() is None:
            batch.kill()
    assert batch.returncode == 1, stdout + stderr
    assert stdout.strip().splitlines()[-1] == (f"2 succeeded, 1 failed, 0 skipped; failures listed in "
                                               f"{out / 'failures.csv'}")
    failures = (out / "failures.csv").read_text()
    assert "The case slow was lost with its worker every time it ran" in failures
    assert len(killed) == 2 and killed[0] != killed[1]  # the retry ran on another worker
    assert not (out / "cases" / "slow").exists() and not list((out / "cases").glob(".*"))
    assert all(verify_manifest(out / "cases" / c) == [] for c in ("ct0", "ct1"))
