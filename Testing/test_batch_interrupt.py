"""Ctrl-C (SIGINT) to a running ``segforge batch``: it stops its local cluster, every case folder
is whole or absent, the tables hold the finished cases, and a rerun finishes the rest."""
from __future__ import annotations

import signal
import subprocess
import time

import psutil
from batch_cohort import SEGFORGE, run_segforge, small_ct

from segforge.image_io import write_image
from segforge.output_set import verify_manifest


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes_the_rest(tmp_path):
    folder = tmp_path / "cts"
    folder.mkdir()
    for n in range(8):
        write_image(small_ct(2 * n), folder / f"ct{n}.nii.gz")
    out = tmp_path / "out"
    batch = subprocess.Popen([str(SEGFORGE), "batch", "organ", str(folder), "--out", str(out), "--workers", "1",
                              "--structures", "lungs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and batch.poll() is None:
            if len(list((out / "cases").glob("*/manifest.json"))) >= 1:
                break
            time.sleep(0.05)
        children = psutil.Process(batch.pid).children(recursive=True)
        assert children, "the local cluster's worker processes"
        batch.send_signal(signal.SIGINT)
        stdout, stderr = batch.communicate(timeout=60)
    finally:
        if batch.poll() is None:
            batch.kill()
    assert batch.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "INFO distributed" not in stderr  # Dask's close chatter (and its CommClosedError tracebacks) kept quiet
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("interrupted (") and "not run): " in last and "failures listed in" in last
    done = sorted(p.parent.name for p in (out / "cases").glob("*/manifest.json"))
    assert 1 <= len(done) < 8
    assert sorted(p.name for p in (out / "cases").iterdir()) == done  # no partial folder, hidden or not
    assert all(verify_manifest(out / "cases" / case_id) == [] for case_id in done)
    assert (out / "cohort_organ.csv").read_text().count("\n") == 1 + len(done)
    psutil.wait_procs(children, timeout=20)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]  # workers stopped

    rerun = run_segforge("batch", "organ", str(folder), "--out", str(out), "--workers", "1", "--structures", "lungs")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.strip().splitlines()[-1].startswith(f"{8 - len(done)} succeeded, 0 failed, {len(done)} skipped")
