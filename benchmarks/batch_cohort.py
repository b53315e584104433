"""Cohort throughput: (a) a shell loop of single ``segforge organ`` calls (how people run
TotalSegmentator over a cohort today), (b) ``segforge batch`` with 1 worker, (c) with 2 workers,
on the same cohort of small CTs, in the same run. Cases per minute and peak memory per
worker process.

    .venv/bin/python benchmarks/batch_cohort.py --cases 20 [--gpus 1]

The cohort: the sample CT (Resources/SampleData/ts_ct_abdomen_3mm) at half resolution in-plane
(``--full-resolution``: at its own resolution, about three times the work per case),
copies with the intensities shifted by 1 HU each, segmented by ``ct-tissues`` (no weights).
Peak memory: (a) the largest ``ru_maxrss`` of the CLI children; (b, c) each Dask worker's own
``ru_maxrss`` as batch.json records it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
CT = ROOT / "Resources" / "SampleData" / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz"
SEGFORGE = Path(sys.executable).with_name("segforge")


def make_cohort(folder: Path, cases: int, step: int = 2) -> None:
    folder.mkdir(parents=True)
    image = sitk.Cast(sitk.ReadImage(str(CT))[::step, ::step, :], sitk.sitkInt16)
    for n in range(cases):
        sitk.WriteImage(image + n, str(folder / f"case{n:03d}.nii.gz"), True)


def shell_loop(folder: Path, out: Path) -> tuple[float, float]:
    """Seconds, and the largest child peak RSS (MB), of one `segforge organ` per case."""
    started = time.perf_counter()
    for path in sorted(folder.iterdir()):
        subprocess.run([str(SEGFORGE), "organ", str(path), "--out", str(out / path.name.split(".")[0])],
                       check=True, capture_output=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return time.perf_counter() - started, peak


def batch(folder: Path, out: Path, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run([str(SEGFORGE), "batch", "organ", str(folder), "--out", str(out), *extra], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    record = json.loads((out / "batch.json").read_text())
    assert not record["failed"], record["failed"]
    return seconds, record["workers_peak_rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--full-resolution", action="store_true",
                        help="the sample CT at its own 122x102x30 voxels (about 3x the work per case)")
    parser.add_argument("--gpus", type=int, default=0, help="also run `segforge batch --gpus N --device cuda`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "cohort"
        make_cohort(folder, args.cases, 1 if args.full_resolution else 2)
        rows = []
        seconds, peak = shell_loop(folder, Path(temporary) / "loop")
        rows.append(("(a) shell loop of `segforge organ`", seconds, f"{peak:.0f} (largest single call)"))
        for workers in (1, 2):
            seconds, peaks = batch(folder, Path(temporary) / f"batch{workers}", "--workers", str(workers))
            rows.append((f"({'b' if workers == 1 else 'c'}) `segforge batch --workers {workers}`", seconds,
                         ", ".join(f"{v:.0f}" for v in sorted(peaks.values()))))
        if args.gpus:
            seconds, peaks = batch(folder, Path(temporary) / "gpu", "--gpus", str(args.gpus), "--device", "cuda")
            rows.append((f"`segforge batch --gpus {args.gpus}`", seconds,
                         ", ".join(f"{v:.0f}" for v in sorted(peaks.values()))))
    size = "122x102x30" if args.full_resolution else "61x51x30"
    print(f"# {args.cases} cases (sample CT at {size} voxels, ct-tissues), {platform.node()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{datetime.date.today().isoformat()}")
    print("| run | seconds | cases/min | peak memory per worker process (MB) |")
    print("| --- | ---: | ---: | --- |")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {60 * args.cases / seconds:.1f} | {peak} |")


if __name__ == "__main__":
    main()
