"""Benchmark: one TotalSegmentator-format model run by the TotalSegmentator package and by SegForge.

The same weights folder, shaped like TotalSegmentator's fast ``total`` model (task 297,
``Dataset297_TotalSegmentator_total_3mm_1559subj``, 118 outputs, 3 mm) and built locally by
``benchmarks/totalseg_weights.py`` (a small U-Net trained for a few minutes on the bundled CT;
nothing is downloaded), segments the bundled abdominal CT

(a) through the ``TotalSegmentator`` package's own pipeline, ``totalsegmentator(input, output,
    fast=True, ml=True, device="cpu")``, the call ``TotalSegmentator -i ct.nii.gz -o seg.nii.gz
    --fast --ml -d cpu`` makes, in the Python of a separate virtual environment
    (``--ts-python``; TotalSegmentator is not a dependency of SegForge), and
(b) through SegForge's engine: ``segforge.organ.pipeline.segment_organs(image,
    OrganParameters(model="totalseg-total-fast", device="cpu"))`` (what ``segforge organ``
    runs), which reorients to the closest RAS+ axes and runs its own nnU-Net v2 runner.

Both find the weights through ``TOTALSEG_WEIGHTS_PATH``; TotalSegmentator's home
(``TOTALSEG_HOME_DIR``) is a scratch folder whose ``config.json`` turns usage statistics off,
and ``SEGFORGE_HOME`` is an empty scratch folder, so that weights SegForge may have
downloaded for real are not used.
Each run is its own child process: wall time from start to exit (imports included) and the
time of the segmentation call alone, the child's peak RSS (``ru_maxrss`` from ``wait4``: the
largest single process among it and the children it waited for) and the peak of the summed RSS
of its whole process tree (sampled every 50 ms from /proc; TotalSegmentator's nnU-Net starts
worker processes). Labels are compared on the input grid: overall voxel agreement, agreement
inside the union of both foregrounds, Dice per structure, and how many of the disagreeing
voxels lie on a label boundary.

Both place the sliding-window tiles at 0.8 of the patch: TotalSegmentator's ``nnunet.py``
does so for the ``total`` tasks, and SegForge's catalog entries say so (``nnunet.tile_step``).

Inputs: the bundled CT as it is (3 mm, stored RAS: neither pipeline resamples), the same CT
stored LPS (both reorient), and the CT upsampled to 1.5 mm (both resample to 3 mm and back).

Run: ``python benchmarks/organ_totalsegmentator.py --ts-python /tmp/tsvenv/bin/python``
(install TotalSegmentator there: ``python3.11 -m venv /tmp/tsvenv &&
/tmp/tsvenv/bin/pip install torch TotalSegmentator``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import totalseg_weights  # noqa: E402

INPUTS = ("ct_3mm_ras", "ct_3mm_lps", "ct_1.5mm")

# ---------------------------------------------------------------------------------------------
# Child programs (run with -c; argv[1] is a JSON job)

TS_CHILD = textwrap.dedent("""
    import json, sys, time
    job = json.loads(sys.argv[1])
    started = time.perf_counter()
    import torch
    from totalsegmentator.python_api import totalsegmentator
    # nnU-Net finds the trainer class by importing every trainer module, which fails when
    # torchvision does not load (PyPI's torchvision is a CUDA build that cannot load beside a
    # CPU-only torch). Name the class through TotalSegmentator's own table of custom trainers
    # instead: same class, no scan; inference is untouched.
    import totalsegmentator.nnunet as ts_nnunet
    from nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs_NoMirroring import (
        nnUNetTrainer_4000epochs_NoMirroring)
    ts_nnunet.custom_trainers.setdefault("nnUNetTrainer_4000epochs_NoMirroring", nnUNetTrainer_4000epochs_NoMirroring)
    imported = time.perf_counter()
    totalsegmentator(job["input"], job["output"], ml=True, fast=True, device="cpu", quiet=True)
    done = time.perf_counter()
    print("RESULT " + json.dumps({"import_s": imported - started, "segment_s": done - imported,
                                  "torch_threads": torch.get_num_threads()}))
""")

SF_CHILD = textwrap.dedent("""
    import json, sys, time
    job = json.loads(sys.argv[1])
    sys.path.insert(0, job["repo"])
    started = time.perf_counter()
    import torch
    from segforge.catalog import load_catalog, nnunet_model_folder
    from segforge.image_io import read_image, write_image
    from segforge.organ.parameters import OrganParameters
    from segforge.organ.pipeline import segment_organs
    imported = time.perf_counter()
    image = read_image(job["input"])
    read = time.perf_counter()
    result = segment_organs(image, OrganParameters(model="totalseg-total-fast", device="cpu"), progress=None)
    segmented = time.perf_counter()
    write_image(result.labels, job["output"])
    written = time.perf_counter()
    folder = nnunet_model_folder(load_catalog().get("totalseg-total-fast"))
    print("RESULT " + json.dumps({"engine": "segforge.organ.pipeline.segment_organs", "model_folder": str(folder),
                                  "import_s": imported - started, "read_s": read - imported,
                                  "segment_s": segmented - read, "write_s": written - segmented,
                                  "torch_threads": torch.get_num_threads(), "warnings": list(result.warnings),
                                  "names": {int(k): v for k, v in result.names.items()}}))
""")



# ---------------------------------------------------------------------------------------------
# Child process measurement

def _proc_tree_rss(root: int) -> int:
    """Summed RSS (bytes) of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                resident = int(f.read().split()[1]) * page
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = resident
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in tree)


def run_child(argv: list[str], env: dict[str, str], log_path: Path) -> dict:
    """Run a child; wall time, peak RSS (ru_maxrss via wait4) and sampled peak tree RSS."""
    with open(log_path, "w") as log:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        peak_tree = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak_tree[0] = max(peak_tree[0], _proc_tree_rss(child.pid))
                except Exception:  # a process vanished mid-read
                    pass
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout_chunks: list[str] = []
        reader = threading.Thread(target=lambda: stdout_chunks.append(child.stdout.read()), daemon=True)
        reader.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        reader.join()
    stdout = "".join(stdout_chunks)
    log_path.write_text(log_path.read_text() + "\n--- stdout ---\n" + stdout)
    if child.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with exit code {child.returncode}; see {log_path}")
    result = next(json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("RESULT "))
    return {**result, "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
            "peak_tree_rss_mib": peak_tree[0] / 2**20}


# ---------------------------------------------------------------------------------------------
# Inputs

def write_inputs(folder: Path) -> dict[str, Path]:
    import SimpleITK as sitk
    folder.mkdir(parents=True, exist_ok=True)
    source = sitk.ReadImage(str(totalseg_weights.CT_FILE))
    paths = {name: folder / f"{name}.nii.gz" for name in INPUTS}
    sitk.WriteImage(source, str(paths["ct_3mm_ras"]))
    # Same voxels stored with i to the patient's left and j to posterior (LPS, identity direction).
    direction = np.array(source.GetDirection()).reshape(3, 3)
    array = sitk.GetArrayFromImage(source)
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(array[:, ::-1, ::-1]))
    size, spacing = source.GetSize(), np.array(source.GetSpacing())
    far_corner = source.TransformIndexToPhysicalPoint((size[0] - 1, size[1] - 1, 0))
    flipped.SetSpacing(source.GetSpacing())
    flipped.SetDirection((direction @ np.diag([-1.0, -1.0, 1.0])).ravel().tolist())
    flipped.SetOrigin(far_corner)
    sitk.WriteImage(flipped, str(paths["ct_3mm_lps"]))
    # Upsampled to 1.5 mm over the same extent (linear), stored as int16 like a scanner's CT.
    new_spacing = spacing / 2
    new_size = [int(n * 2) for n in size]
    origin = np.array(source.GetOrigin()) + direction @ (new_spacing / 2 - spacing / 2)
    fine = sitk.Resample(source, new_size, sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                         new_spacing.tolist(), source.GetDirection(), -1024.0, sitk.sitkInt16)
    sitk.WriteImage(fine, str(paths["ct_1.5mm"]))
    return paths


# ---------------------------------------------------------------------------------------------
# Comparison

def _read_labels(path: Path):
    import SimpleITK as sitk
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image).astype(np.int32)


def _boundary(labels: np.ndarray) -> np.ndarray:
    """Voxels with a 6-neighbour of another label."""
    edge = np.zeros(labels.shape, bool)
    for axis in range(3):
        diff = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        edge[tuple(lo)] |= diff
        edge[tuple(hi)] |= diff
    return edge


def compare(ts_path: Path, sf_path: Path, names: dict[int, str]) -> dict:
    ts_img, ts = _read_labels(ts_path)
    sf_img, sf = _read_labels(sf_path)
    if ts.shape != sf.shape:
        raise RuntimeError(f"label grids differ: TotalSegmentator {ts.shape}, SegForge {sf.shape}")
    grid_ok = (np.allclose(ts_img.GetSpacing(), sf_img.GetSpacing(), atol=1e-4)
               and np.allclose(ts_img.GetOrigin(), sf_img.GetOrigin(), atol=1e-3)
               and np.allclose(ts_img.GetDirection(), sf_img.GetDirection(), atol=1e-5))
    union = (ts > 0) | (sf > 0)
    disagree = ts != sf
    on_edge = disagree & (_boundary(ts) | _boundary(sf))
    dice = {}
    for value in sorted(set(np.unique(ts)) | set(np.unique(sf))):
        if value == 0:
            continue
        a, b = ts == value, sf == value
        dice[names.get(int(value), str(value))] = {
            "value": int(value), "ts_voxels": int(a.sum()), "sf_voxels": int(b.sum()),
            "dice": float(2 * (a & b).sum() / (a.sum() + b.sum()))}
    values = [d["dice"] for d in dice.values()]
    return {"grid_identical": bool(grid_ok), "voxels": int(ts.size),
            "agreement": float((~disagree).mean()),
            "agreement_in_union_foreground": float((~disagree[union]).mean()) if union.any() else 1.0,
            "disagreeing_voxels": int(disagree.sum()),
            "disagreeing_on_a_boundary": int(on_edge.sum()),
            "structures": len(dice), "structures_dice_1": sum(v == 1.0 for v in values),
            "mean_dice": float(np.mean(values)) if values else 1.0,
            "min_dice": float(np.min(values)) if values else 1.0,
            "dice": dice}


# ---------------------------------------------------------------------------------------------

def ts_versions(ts_python: str) -> dict:
    code = ("import importlib.metadata as m, json, torch; print(json.dumps({p: m.version(p) for p in "
            "('TotalSegmentator', 'nnunetv2', 'dynamic_network_architectures', 'nibabel', 'numpy', 'scipy')} "
            "| {'torch': torch.__version__}))")
    done = subprocess.run([ts_python, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{ts_python} cannot import TotalSegmentator:\n{done.stderr.strip()[-2000:]}\n"
                         "Install it into a separate virtual environment, e.g. "
                         "python3.11 -m venv /tmp/tsvenv && /tmp/tsvenv/bin/pip install torch TotalSegmentator")
    return json.loads(done.stdout)


def ts_home(folder: Path) -> Path:
    """A TotalSegmentator home whose config.json says: no usage statistics, disclaimer already shown."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"totalseg_id": "totalseg_SEGFORGEBENCH", "send_usage_stats": False, "prediction_counter": 0,
              "statistics_disclaimer_shown": True}
    (folder / "config.json").write_text(json.dumps(config, indent=4))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ts-python", default=os.environ.get("SEGFORGE_TS_PYTHON"),
                        help="Python of a virtual environment with the TotalSegmentator package "
                             "(or set SEGFORGE_TS_PYTHON)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segforge_ts_bench"),
                        help="scratch folder; the trained weights are cached here")
    parser.add_argument("--train-seconds", type=float, default=600.0)
    parser.add_argument("--inputs", default=",".join(INPUTS), help=f"comma-separated subset of {INPUTS}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per pipeline and input (best wall time kept)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    if not args.ts_python or not Path(args.ts_python).exists():
        raise SystemExit(
            "TotalSegmentator's Python is missing: pass --ts-python /path/to/venv/bin/python "
            f"(got {args.ts_python!r}).\nTotalSegmentator is not a SegForge dependency; install it into a "
            "separate virtual environment:\n  python3.11 -m venv /tmp/tsvenv && "
            "/tmp/tsvenv/bin/pip install torch TotalSegmentator")
    versions = ts_versions(args.ts_python)
    print(f"TotalSegmentator environment: {versions}", flush=True)
    inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    unknown = set(inputs) - set(INPUTS)
    if unknown:
        raise SystemExit(f"unknown inputs {sorted(unknown)}; choose from {INPUTS}")

    args.work.mkdir(parents=True, exist_ok=True)
    weights = totalseg_weights.build_weights(args.work, args.train_seconds)  # not timed
    model_folder = weights / totalseg_weights.DATASET / totalseg_weights.MODEL_SUBFOLDER
    paths = write_inputs(args.work / "inputs")
    home = ts_home(args.work / "ts_home")
    segforge_home = args.work / "segforge_home"
    segforge_home.mkdir(exist_ok=True)
    env = {**os.environ, "TOTALSEG_WEIGHTS_PATH": str(weights), "TOTALSEG_HOME_DIR": str(home),
           "SEGFORGE_HOME": str(segforge_home), "PYTHONUNBUFFERED": "1"}
    env.pop("nnUNet_results", None)
    names = totalseg_weights.total_labels()

    import SimpleITK as sitk
    import torch
    report = {"benchmark": "organ_totalsegmentator", "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
              "segforge_python": sys.version.split()[0], "segforge_torch": torch.__version__,
              "totalsegmentator_env": versions, "weights": str(weights),
              "weights_training": totalseg_weights.built_info(weights)["training"], "cases": {}}
    for name in inputs:
        source = sitk.ReadImage(str(paths[name]))
        case = {"size": list(source.GetSize()), "spacing": list(source.GetSpacing())}
        out = args.work / "out" / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        runs: dict[str, list[dict]] = {"totalsegmentator": [], "segforge": []}
        for attempt in range(args.repeat):
            ts_out = out / f"ts_{attempt}.nii.gz"
            sf_out = out / f"sf_{attempt}.nii.gz"
            print(f"[{name}] TotalSegmentator run {attempt + 1}", flush=True)
            runs["totalsegmentator"].append(run_child(
                [args.ts_python, "-c", TS_CHILD, json.dumps({"input": str(paths[name]), "output": str(ts_out)})],
                env, out / f"ts_{attempt}.log"))
            print(f"[{name}] SegForge run {attempt + 1}", flush=True)
            runs["segforge"].append(run_child(
                [sys.executable, "-c", SF_CHILD, json.dumps({"input": str(paths[name]), "output": str(sf_out),
                                                             "repo": str(REPO)})],
                env, out / f"sf_{attempt}.log"))
        for pipeline, results in runs.items():
            best = min(results, key=lambda r: r["wall_s"])
            case[pipeline] = {**{k: v for k, v in best.items() if k != "names"},
                              "wall_s_all": [round(r["wall_s"], 2) for r in results]}
        sf_run = runs["segforge"][0]
        if Path(sf_run["model_folder"]).resolve() != model_folder.resolve():
            raise RuntimeError(f"SegForge used {sf_run['model_folder']}, not the benchmark's {model_folder}")
        if sf_run["names"] and {int(k): v for k, v in sf_run["names"].items()} != names:
            case["segforge_names_differ"] = True
        case["comparison"] = compare(out / "ts_0.nii.gz", out / "sf_0.nii.gz", names)
        if args.repeat > 1:  # is each pipeline repeatable?
            case["ts_repeatable"] = bool(np.array_equal(_read_labels(out / "ts_0.nii.gz")[1],
                                                        _read_labels(out / f"ts_{args.repeat - 1}.nii.gz")[1]))
        report["cases"][name] = case
        c = case["comparison"]
        print(f"[{name}] agreement {c['agreement']:.5f}, in foreground {c['agreement_in_union_foreground']:.5f}, "
              f"mean Dice {c['mean_dice']:.4f} (min {c['min_dice']:.4f}) over {c['structures']} structures; "
              f"TS {case['totalsegmentator']['wall_s']:.1f} s / {case['totalsegmentator']['peak_rss_mib']:.0f} MiB, "
              f"SegForge {case['segforge']['wall_s']:.1f} s / {case['segforge']['peak_rss_mib']:.0f} MiB", flush=True)
    report["segforge_engine"] = runs["segforge"][0]["engine"]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
