"""Benchmark: multi-scale Frangi vesselness on a 256^3 volume, ours against its peers.

Ours: :func:`segforge.vessel.vesselness` (torch, slabs, closed-form eigenvalues), on the
CPU or a GPU. Peers, in the same run on the same data and scales:
- ``simpleitk``: ``SmoothingRecursiveGaussian`` + ``ObjectnessMeasure`` per scale, the
  maximum over scales (the previous implementation, and the issue's reference);
- ``skimage``: scikit-image's ``frangi`` (isotropic sigmas in voxels only: it cannot
  honour anisotropic spacing, so its sigmas use the mean spacing; slow, ``--skip-skimage``).

Each method runs in its own subprocess, so its peak memory (the rise of the process's
resident high-water mark over its resident size before the filter) is its own. Reports
seconds (median and best of ``--repeats``), the speed-up of ours over each peer, the
Pearson correlation of each response with SimpleITK's, and the machine and date.

The volume: tubes of radius 1-5 mm (a branching tree plus loose segments) of 300 on 0,
Gaussian noise sigma 20, spacing 0.8 x 0.8 x 1.0 mm; scales: radii 1, 2 and 4 mm.

Run: ``python benchmarks/vesselness.py [--shape 256 256 256] [--device cpu|cuda]
[--repeats 3] [--skip-skimage] [--skip-simpleitk] [--json out/bench/vesselness.json]``
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACING = (0.8, 0.8, 1.0)  # i, j, k in mm
RADII = (1.0, 2.0, 4.0)


def phantom(shape_kji: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A deterministic vessel-like volume (float32, HU-like), fast to draw at 512^3."""
    rng = np.random.default_rng(seed)
    array = rng.normal(0.0, 20.0, shape_kji).astype(np.float32)
    spacing_kji = np.array(SPACING[::-1])
    extent = np.array(shape_kji) * spacing_kji
    segments = []
    # a tree: a trunk with branches that halve in radius
    start, direction, radius = extent * [0.1, 0.5, 0.5], np.array([1.0, 0.2, 0.1]), 5.0
    stack = [(start, direction / np.linalg.norm(direction), radius, 0)]
    while stack:
        point, heading, r, depth = stack.pop()
        end = np.clip(point + heading * extent.min() * 0.35, 0, extent)
        segments.append((point, end, r))
        if depth < 3:
            for turn in (-0.7, 0.7):
                new = heading + turn * np.cross(heading, rng.normal(size=3))
                stack.append((end, new / np.linalg.norm(new), max(1.0, r * 0.7), depth + 1))
    for _ in range(12):  # loose vessels of every size
        a, b = rng.uniform(0, 1, 3) * extent, rng.uniform(0, 1, 3) * extent
        segments.append((a, b, rng.uniform(1.0, 4.0)))
    for a, b, r in segments:
        low = np.maximum(np.floor((np.minimum(a, b) - r - 1) / spacing_kji).astype(int), 0)
        high = np.minimum(np.ceil((np.maximum(a, b) + r + 1) / spacing_kji).astype(int) + 1, shape_kji)
        if np.any(high <= low):
            continue
        k, j, i = np.meshgrid(*(np.arange(lo, hi) for lo, hi in zip(low, high)), indexing="ij")
        points = np.stack([k, j, i], -1) * spacing_kji
        t = np.clip(((points - a) @ (b - a)) / max(np.dot(b - a, b - a), 1e-9), 0, 1)
        distance = np.linalg.norm(points - (a + t[..., None] * (b - a)), axis=-1)
        inside = np.clip(r - distance + 0.5, 0.0, 1.0)  # about one voxel of partial volume
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
        array[box] = np.maximum(array[box], 300.0 * inside + array[box] * (1 - inside))
    return array


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _gamma(array: np.ndarray) -> float:
    from segforge.vessel.vesselness import structureness_gamma
    return structureness_gamma(array)


def run_ours(array: np.ndarray, device: str, repeats: int) -> tuple[np.ndarray, list[float], dict]:
    import torch

    from segforge.image import Image
    from segforge.vessel import VesselMaskParameters, vesselness

    image = Image(array, SPACING)
    parameters = VesselMaskParameters(min(RADII), max(RADII), len(RADII), device=device)
    assert np.allclose(parameters.radii_mm(), RADII)
    vesselness(Image(array[:16, :32, :32], SPACING), parameters)  # first-call overheads off the clock
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = vesselness(image, parameters).array
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    extra = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        extra["gpu"] = torch.cuda.get_device_name()
        extra["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result, times, extra


def run_simpleitk(array: np.ndarray, repeats: int) -> tuple[np.ndarray, list[float], dict]:
    import SimpleITK as sitk

    gamma = _gamma(array)
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        source = sitk.GetImageFromArray(array)
        source.SetSpacing(SPACING)
        best = None
        for radius in RADII:
            sigma = radius / np.sqrt(2.0)
            smoothed = sitk.SmoothingRecursiveGaussian(source, sigma) * float(sigma ** 2)
            measure = sitk.ObjectnessMeasureImageFilter()
            measure.SetObjectDimension(1)
            measure.SetBrightObject(True)
            measure.SetScaleObjectnessMeasure(False)
            measure.SetAlpha(0.5)
            measure.SetBeta(0.5)
            measure.SetGamma(gamma)
            response = measure.Execute(smoothed)
            best = response if best is None else sitk.Maximum(best, response)
        result = sitk.GetArrayFromImage(best)
        times.append(time.perf_counter() - started)
    return result, times, {"simpleitk": sitk.Version_VersionString(),
                           "threads": sitk.ProcessObject_GetGlobalDefaultNumberOfThreads()}


def run_skimage(array: np.ndarray, repeats: int) -> tuple[np.ndarray, list[float], dict]:
    import skimage
    from skimage.filters import frangi

    mean_spacing = float(np.mean(SPACING))
    sigmas = [r / np.sqrt(2.0) / mean_spacing for r in RADII]
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = frangi(array, sigmas=sigmas, alpha=0.5, beta=0.5, gamma=_gamma(array), black_ridges=False)
        times.append(time.perf_counter() - started)
    return result.astype(np.float32), times, {"skimage": skimage.__version__}


def child(method: str, volume: Path, out: Path, device: str, repeats: int) -> None:
    """Run one method on the saved volume; write its response and a JSON report."""
    array = np.load(volume)
    # libraries in first, so the peak counts the filter's memory, not the imports
    if method == "ours":
        import torch  # noqa: F401

        import segforge.vessel.slabs  # noqa: F401
    elif method == "simpleitk":
        import SimpleITK  # noqa: F401
    else:
        import skimage.filters  # noqa: F401
    before = _rss_kib("VmRSS")
    runner = {"ours": lambda: run_ours(array, device, repeats), "simpleitk": lambda: run_simpleitk(array, repeats),
              "skimage": lambda: run_skimage(array, repeats)}[method]
    result, times, extra = runner()
    peak_mib = (_rss_kib("VmHWM") - before) / 1024
    np.save(out.with_suffix(".npy"), result)
    out.write_text(json.dumps({"method": method, "seconds": statistics.median(times), "best_seconds": min(times),
                               "all_seconds": times, "peak_extra_mib": peak_mib,
                               "volume_mib": array.nbytes / 2 ** 20, **extra}))


def _host_busy_seconds() -> float:
    """CPU seconds all processes on this machine (containers included) spent busy."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _summary(rows: list[dict]) -> dict:
    times = [row["seconds"] for row in rows]
    summary = dict(rows[0])
    summary.update(seconds=statistics.median(times), best_seconds=min(times), all_seconds=times,
                   peak_extra_mib=max(row["peak_extra_mib"] for row in rows),
                   other_load=[round(row["other_load"], 2) for row in rows])
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 256], metavar=("K", "J", "I"))
    parser.add_argument("--device", default="cpu", help="ours on cpu, cuda or auto (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-skimage", action="store_true", help="skip scikit-image's frangi (slow)")
    parser.add_argument("--skip-simpleitk", action="store_true", help="skip SimpleITK (slow on big volumes)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "VOLUME", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.device, args.repeats)
        return 0

    methods = ["ours"] + ([] if args.skip_simpleitk else ["simpleitk"]) + ([] if args.skip_skimage else ["skimage"])
    runs: dict[str, list[dict]] = {method: [] for method in methods}
    with tempfile.TemporaryDirectory() as folder:
        volume = Path(folder) / "volume.npy"
        np.save(volume, phantom(tuple(args.shape)))
        responses = {}
        # Interleaved, one timed call per child process: load from other processes on the
        # machine then hits every method alike, and is measured and reported.
        for repeat in range(args.repeats):
            for method in methods:
                if method == "skimage" and repeat > 0:
                    continue
                out = Path(folder) / f"{method}.json"
                print(f"run {repeat + 1}/{args.repeats}: {method}...", flush=True)
                before, cpu_before = _host_busy_seconds(), _children_cpu_seconds()
                started = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--device", args.device, "--repeats", "1",
                                "--child", method, str(volume), str(out)], check=True)
                wall = time.perf_counter() - started
                other = (_host_busy_seconds() - before) - (_children_cpu_seconds() - cpu_before)
                run = json.loads(out.read_text())
                run["other_load"] = max(0.0, other) / (wall * _cpus())
                runs[method].append(run)
                responses[method] = np.load(out.with_suffix(".npy"))
        results = {method: _summary(rows) for method, rows in runs.items()}
        reference = responses.get("simpleitk")
        for method, response in responses.items():
            if reference is not None:
                results[method]["correlation_with_simpleitk"] = float(
                    np.corrcoef(response.ravel().astype(np.float64), reference.ravel().astype(np.float64))[0, 1])
    ours = results["ours"]["seconds"]
    for method in methods[1:]:
        results[method]["ours_faster_by"] = results[method]["seconds"] / ours
        results[method]["ours_faster_by_best"] = results[method]["best_seconds"] / results["ours"]["best_seconds"]
    report = {"benchmark": "vesselness", "shape_kji": args.shape, "spacing_ijk": SPACING, "radii_mm": RADII,
              "device": args.device, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "processor": _cpu_model(), "cpus": _cpus()},
              "results": results}
    print(f"\nvesselness, {'x'.join(map(str, args.shape))} voxels, {len(RADII)} scales, ours on {args.device}, "
          f"{report['machine']['cpus']} CPUs, {report['date']}")
    print(f"{'method':<10} {'median s':>9} {'best s':>8} {'ours faster':>12} {'corr vs sitk':>13} "
          f"{'peak extra MiB':>15}  other load (share of CPUs busy elsewhere)")
    for method, row in results.items():
        print(f"{method:<10} {row['seconds']:>9.2f} {row['best_seconds']:>8.2f} "
              f"{row.get('ours_faster_by', 1.0):>11.1f}x {row.get('correlation_with_simpleitk', float('nan')):>13.4f} "
              f"{row['peak_extra_mib']:>15.0f}  {row['other_load']}")
    if "gpu" in results["ours"]:
        print(f"GPU: {results['ours']['gpu']}, peak allocated {results['ours']['gpu_peak_mib']:.0f} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
