"""Benchmark: SegForge's nnU-Net v2 runner against nnunetv2's nnUNetPredictor, CPU, end to end.

Both run the same nnU-Net-format model folder on the same CT-like volume (256x256x200
x, y, z; int16 HU-like: air outside a body ellipse, fat, soft tissue and bone-like
blobs; spacing 0.8 x 0.8 x 1.5 mm, so both resample to the model's 3 mm). The model is
shaped like TotalSegmentator's fast ``total`` model (Dataset297, 3d_fullres, 3 mm): a
6-stage PlainConvUNet (32..320 features, patch 112x112x128, no mirroring) with 118
outputs (117 structures and background). Its weights are random with a fixed seed: the
labels' equality with nnU-Net is tested in Testing/test_organ_nnunet.py; here only speed
and memory count, and random weights make every voxel's label depend on the numerics, so
the voxel agreement printed below still catches a runner that cuts corners.

- peer: ``nnUNetPredictor(perform_everything_on_device=False, device=cpu)``,
  ``initialize_from_trained_model_folder``, ``predict_single_npy_array``; its stages are
  timed by wrapping the methods that call makes (``run_case_npy``,
  ``predict_logits_from_preprocessed_data``,
  ``convert_predicted_logits_to_segmentation_with_correct_shape``).
- ours: :func:`segforge.organ.nnunet.predict_labels`, its stages timed by wrapping the
  functions it calls.

Each run is a fresh interpreter (peak RSS = that process's ``ru_maxrss``, imports
included); peer and ours alternate; medians are reported.

Run: ``python benchmarks/organ_nnunet.py [--classes 118|4] [--runs 2] [--quick] [--json OUT]``
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from totalseg_weights import RESAMPLING  # noqa: E402  (nnU-Net's planner defaults, one copy)

STAGES = ("load", "preprocess", "network", "export")
SEED = 297


# ----------------------------------------------------------------------------- the model

def architecture(features: list[int]) -> dict:
    """PlainConvUNet kwargs as nnU-Net's planner writes them for a 112x112x128 patch at 3 mm."""
    n = len(features)
    return {
        "n_stages": n, "features_per_stage": features, "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * n,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 1, 2]][:n],
        "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def plans(features: list[int], patch: list[int]) -> dict:
    """A plans.json like TotalSegmentator's 3 mm ``total`` model's (no transpose, CT normalisation)."""
    return {
        "dataset_name": "Dataset297_Bench", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": patch, "median_image_size_in_voxels": [150, 110, 110],
            "spacing": [3.0, 3.0, 3.0], "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            **RESAMPLING, "batch_dice": False,
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": architecture(features),
                             "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        }},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3071.0, "mean": 77.0, "median": 60.0, "min": -1024.0,
            "percentile_00_5": -1004.0, "percentile_99_5": 1588.0, "std": 257.0}},
    }


def write_model(folder: Path, classes: int, features: list[int], patch: list[int]) -> Path:
    """The model folder with one fold of seeded random weights (InstanceNorm affine randomised
    and the last layer scaled, so that the classes differ and most voxels have a clear winner)."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans(features, patch)))
    labels = {"background": 0, **{f"structure_{i}": i for i in range(1, classes)}}
    (folder / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}))
    torch.manual_seed(SEED)
    kwargs = architecture(features)
    net = PlainConvUNet(
        input_channels=1, num_classes=classes, deep_supervision=False, n_stages=kwargs["n_stages"],
        features_per_stage=features, conv_op=torch.nn.Conv3d, kernel_sizes=kwargs["kernel_sizes"],
        strides=kwargs["strides"], n_conv_per_stage=kwargs["n_conv_per_stage"],
        n_conv_per_stage_decoder=kwargs["n_conv_per_stage_decoder"], conv_bias=True,
        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.decoder.seg_layers[-1].weight *= 4
    (folder / "fold_0").mkdir(exist_ok=True)
    torch.save({"network_weights": net.state_dict(), "init_args": {"configuration": "3d_fullres"},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": None},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


def ct_volume(shape_zyx: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """int16 HU volume (z, y, x): air, an elliptic body of fat with soft-tissue organs, bone-like blobs, noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape_zyx], indexing="ij")
    img = np.full(shape_zyx, -1000, np.float32)
    body = (y / 0.75) ** 2 + (x / 0.9) ** 2 < 1
    img[body] = -90  # fat
    for hu, count, radius in ((45, 6, (0.15, 0.35)), (700, 5, (0.04, 0.1)), (-800, 2, (0.1, 0.2))):
        for _ in range(count):  # organs, bones, lungs
            c, r = rng.uniform(-0.5, 0.5, 3), rng.uniform(*radius)
            img[body & ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r ** 2)] = hu + rng.uniform(-20, 20)
    img += rng.normal(0, 20, shape_zyx).astype(np.float32)
    return np.round(img).astype(np.int16)


# ----------------------------------------------------------------------------- the workers

@contextlib.contextmanager
def timed_attribute(owner: Any, name: str, seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Wrap ``owner.name`` so that its calls' wall time adds up in ``seconds[stage]``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def run_peer(model: Path, array: np.ndarray, spacing_zyx: tuple[float, ...], seconds: dict[str, float]) -> np.ndarray:
    """nnUNetPredictor as TotalSegmentator drives it for one in-memory volume."""
    import torch
    from nnunetv2.inference import predict_from_raw_data as module
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    start = time.perf_counter()
    predictor = module.nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                       perform_everything_on_device=False, device=torch.device("cpu"),
                                       verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,))
    seconds["load"] = time.perf_counter() - start
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed_attribute(DefaultPreprocessor, "run_case_npy", seconds, "preprocess"))
        stack.enter_context(timed_attribute(module.nnUNetPredictor, "predict_logits_from_preprocessed_data",
                                            seconds, "network"))
        stack.enter_context(timed_attribute(module, "convert_predicted_logits_to_segmentation_with_correct_shape",
                                            seconds, "export"))
        return predictor.predict_single_npy_array(array[None], {"spacing": list(spacing_zyx)}, None, None, False)


def run_ours(model: Path, array: np.ndarray, spacing_zyx: tuple[float, ...], seconds: dict[str, float]) -> np.ndarray:
    """segforge's predict_labels on a segforge Image of the same array."""
    from segforge.image import Image
    from segforge.organ.nnunet import predict as module
    image = Image(array, tuple(reversed(spacing_zyx)))
    with contextlib.ExitStack() as stack:
        for name, stage in (("load_folds", "load"), ("build_network", "load"), ("load_weights", "load"),
                            ("preprocess", "preprocess"),
                            ("predict_logits", "network"), ("logits_to_labels", "export")):
            stack.enter_context(timed_attribute(module, name, seconds, stage))
        return module.predict_labels(image, model, folds=(0,)).array


def worker(who: str, model: Path, volume: Path, labels_out: Path, spacing_zyx: tuple[float, ...]) -> dict:
    """One timed run in this (fresh) process; labels go to ``labels_out``."""
    started = time.perf_counter()
    import torch  # noqa: F401  (both runners need it; its import is not part of the run)
    if who == "peer":
        import nnunetv2.inference.predict_from_raw_data  # noqa: F401
        run: Callable = run_peer
    else:
        import segforge.organ.nnunet.predict  # noqa: F401
        run = run_ours
    imports = time.perf_counter() - started
    array = np.load(volume)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    labels = run(model, array, spacing_zyx, seconds)
    total = time.perf_counter() - start
    np.save(labels_out, np.asarray(labels))
    return {"who": who, "total_s": total, "imports_s": imports, **{f"{k}_s": seconds.get(k, 0.0) for k in STAGES},
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_threads": __import__("torch").get_num_threads()}


# ----------------------------------------------------------------------------- the driver

def spawn(who: str, model: Path, volume: Path, labels: Path, spacing_zyx: tuple[float, ...]) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", who, "--model", str(model),
               "--volume", str(volume), "--labels", str(labels), "--spacing", *map(str, spacing_zyx)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT))
    if done.returncode != 0:
        raise RuntimeError(f"{who} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> dict:
    keys = ["total_s", *(f"{k}_s" for k in STAGES), "peak_rss_mib", "imports_s"]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def table(peer: dict, ours: dict) -> str:
    rows = ["| runner | total | load | preprocess | network | export | peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in (("nnUNetPredictor (nnunetv2 2.8.1)", peer), ("**SegForge predict_labels**", ours)):
        rows.append(f"| {name} | {r['total_s']:.1f} s | {r['load_s']:.1f} s | {r['preprocess_s']:.1f} s | "
                    f"{r['network_s']:.1f} s | {r['export_s']:.1f} s | {r['peak_rss_mib'] / 1024:.2f} GiB |")
    rows.append(f"| peer / ours | {peer['total_s'] / ours['total_s']:.2f}x | | "
                f"{peer['preprocess_s'] / max(ours['preprocess_s'], 1e-9):.2f}x | "
                f"{peer['network_s'] / max(ours['network_s'], 1e-9):.2f}x | "
                f"{peer['export_s'] / max(ours['export_s'], 1e-9):.2f}x | "
                f"ours / peer {ours['peak_rss_mib'] / peer['peak_rss_mib']:.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=118, help="output channels incl. background (118 or 4)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each runner (alternating)")
    parser.add_argument("--quick", action="store_true", help="small volume and narrow net: a smoke test")
    parser.add_argument("--narrow", action="store_true", help="features 8..80 instead of 32..320 (same patch)")
    parser.add_argument("--only", choices=("peer", "ours"), help="run one side only (for profiling)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", choices=("peer", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--volume", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spacing", type=float, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.volume, args.labels, tuple(args.spacing))))
        return

    shape_zyx = (60, 96, 96) if args.quick else (200, 256, 256)
    spacing_zyx = (1.5, 0.8, 0.8)
    narrow = args.narrow or args.quick
    features = [8, 16, 32, 64, 80, 80] if narrow else [32, 64, 128, 256, 320, 320]
    patch = [112, 112, 128]
    sides = [args.only] if args.only else ["peer", "ours"]
    with tempfile.TemporaryDirectory(prefix="segforge_nnunet_bench_") as tmp:
        work = Path(tmp)
        model = write_model(work / "Dataset297_Bench" / "nnUNetTrainer__nnUNetPlans__3d_fullres",
                            args.classes, features, patch)
        volume = work / "volume.npy"
        np.save(volume, ct_volume(shape_zyx))
        results: dict[str, list[dict]] = {s: [] for s in sides}
        for run in range(args.runs):
            order = sides if run % 2 == 0 else list(reversed(sides))
            for who in order:
                result = spawn(who, model, volume, work / f"labels_{who}_{run}.npy", spacing_zyx)
                results[who].append(result)
                print(f"run {run + 1} {who}: {result['total_s']:.1f} s (" + ", ".join(
                    f"{k} {result[k + '_s']:.1f}" for k in STAGES) + f"), peak RSS "
                      f"{result['peak_rss_mib']:.0f} MiB", flush=True)
        agreement = None
        if len(sides) == 2:
            peer_labels = np.load(work / "labels_peer_0.npy")
            ours_labels = np.load(work / "labels_ours_0.npy")
            agreement = {"fraction": float(np.mean(peer_labels == ours_labels)),
                         "differing_voxels": int(np.sum(peer_labels != ours_labels)), "voxels": int(peer_labels.size),
                         "labels_present": int(len(np.unique(peer_labels))),
                         "shape_equal": peer_labels.shape == ours_labels.shape}
    summary = {s: summarise(r) for s, r in results.items()}
    report = {
        "benchmark": "organ_nnunet", "volume_xyz": list(reversed(shape_zyx)),
        "spacing_xyz": list(reversed(spacing_zyx)),
        "classes": args.classes, "features": features, "patch": patch, "runs": results, "median": summary,
        "agreement": agreement, "torch_threads": results[sides[0]][0]["torch_threads"],
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
                   f"python {platform.python_version()}".strip(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if len(sides) == 2:
        print()
        print(table(summary["peer"], summary["ours"]))
        print(f"\nlabels agree: {agreement['fraction'] * 100:.5f} % ({agreement['differing_voxels']} of "
              f"{agreement['voxels']} voxels differ; {agreement['labels_present']} labels present)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
