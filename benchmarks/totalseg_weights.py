"""Build, locally and offline, a weights folder shaped like TotalSegmentator's fast ``total`` model.

TotalSegmentator 2.x looks for the ``total --fast`` model (task 297) at
``$TOTALSEG_WEIGHTS_PATH/Dataset297_TotalSegmentator_total_3mm_1559subj/
nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres/`` and downloads nothing when
``Dataset297_TotalSegmentator_total_3mm_1559subj`` already exists. This module writes that
folder (``dataset.json``, ``plans.json``, ``fold_0/checkpoint_final.pth``) with 118 outputs:
background plus the 117 ``total`` classes, numbered and named as
``segforge.organ.terminology.label_set("total")`` (the same map as TotalSegmentator's
``class_map["total"]``).

The network is not TotalSegmentator's: it is a small nnU-Net ``PlainConvUNet`` (4 stages,
8/16/32/64 features, 3 mm spacing, CT normalisation) trained here on CPU for a few minutes
to reproduce the ``total`` label map of the bundled CT
(``Resources/SampleData/ts_ct_abdomen_3mm``: TotalSegmentator's own test files, Apache-2.0),
its 23 structures of at least ``MIN_VOXELS`` voxels (random crops, cross-entropy, AdamW).
Training makes the outputs confident and spatially smooth, as a real model's are, so that
comparing two pipelines that run it measures the pipelines, not the noise of random weights.
How well it reproduces the reference is reported but beside the point.

The folder is cached: a second call with the same settings returns it at once.

Run alone: ``python benchmarks/totalseg_weights.py --out /tmp/segforge_ts_weights``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "Resources" / "SampleData" / "ts_ct_abdomen_3mm"
CT_FILE = SAMPLE / "example_ct_sm.nii.gz"
SEG_FILE = SAMPLE / "example_seg.nii.gz"

DATASET = "Dataset297_TotalSegmentator_total_3mm_1559subj"
TRAINER = "nnUNetTrainer_4000epochs_NoMirroring"
MODEL_SUBFOLDER = f"{TRAINER}__nnUNetPlans__3d_fullres"
SPACING = [3.0, 3.0, 3.0]
PATCH = [32, 80, 80]  # (z, y, x); the bundled CT is 30 x 101 x 122 at 3 mm, so 4-6 tiles
FEATURES = [8, 16, 32, 64]
ARCH = {
    "n_stages": 4, "features_per_stage": FEATURES, "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
    "n_conv_per_stage": [2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
}
RESAMPLING = {  # nnU-Net's planner defaults
    "resampling_fn_data": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
    "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
    "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
}
#: Training crops (z, y, x) and batch: smaller than the inference patch, which is cheaper on
#: CPU (PyTorch's batch-1 Conv3d backward is slow); the network is fully convolutional.
TRAIN_PATCH = [16, 64, 64]
TRAIN_BATCH = 2
#: Structures smaller than this (voxels at 3 mm) in the reference become background for
#: training: ribs and other thin structures do not converge in minutes on a CPU.
MIN_VOXELS = 400
#: Bump when the recipe changes, so cached folders are rebuilt.
RECIPE = "2026-11-24.2"


def total_labels() -> dict[int, str]:
    from segforge.organ.terminology import label_set
    labels = dict(sorted(label_set("total").items()))
    if len(labels) != 117 or sorted(labels) != list(range(1, 118)):
        raise RuntimeError(f"label_set('total') has {len(labels)} labels, expected 1..117")
    return labels


def _intensity_properties(ct: np.ndarray, seg: np.ndarray) -> dict:
    """nnU-Net's foreground intensity statistics (over labelled voxels), as its planner computes them."""
    values = ct[seg > 0].astype(np.float64)
    return {"max": float(values.max()), "mean": float(values.mean()), "median": float(np.median(values)),
            "min": float(values.min()), "percentile_00_5": float(np.percentile(values, 0.5)),
            "percentile_99_5": float(np.percentile(values, 99.5)), "std": float(values.std())}


def plans(intensity: dict) -> dict:
    return {
        "dataset_name": DATASET, "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
        "original_median_spacing_after_transp": SPACING, "original_median_shape_after_transp": [30, 101, 122],
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2, "patch_size": PATCH, "median_image_size_in_voxels": [30, 101, 122],
                "spacing": SPACING, "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
                **RESAMPLING, "batch_dice": False,
                "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                 "arch_kwargs": ARCH,
                                 "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            },
        },
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity},
    }


def dataset_json(labels: dict[int, str]) -> dict:
    return {"channel_names": {"0": "CT"}, "labels": {"background": 0, **{n: v for v, n in labels.items()}},
            "numTraining": 1, "file_ending": ".nii.gz", "name": DATASET,
            "description": "SegForge benchmark stand-in, trained on one CT; not TotalSegmentator's weights"}


def network(num_classes: int):
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    return PlainConvUNet(
        input_channels=1, num_classes=num_classes, deep_supervision=False, n_stages=4, features_per_stage=FEATURES,
        conv_op=torch.nn.Conv3d, kernel_sizes=[[3] * 3] * 4, strides=[[1] * 3] + [[2] * 3] * 3,
        n_conv_per_stage=[2] * 4, n_conv_per_stage_decoder=[2] * 3, conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def _read_training_pair():
    import SimpleITK as sitk
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(CT_FILE))).astype(np.float32)  # (z, y, x)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(SEG_FILE))).astype(np.int64)
    if ct.shape != seg.shape:
        raise RuntimeError(f"{CT_FILE.name} {ct.shape} and {SEG_FILE.name} {seg.shape} differ")
    return ct, seg


def train(ct: np.ndarray, seg: np.ndarray, intensity: dict, seconds: float, seed: int, log=print):
    """Random-crop training of the patch-sized network on one volume; returns (state_dict, stats)."""
    import torch
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = (np.clip(ct, intensity["percentile_00_5"], intensity["percentile_99_5"]) - intensity["mean"]) \
        / max(intensity["std"], 1e-8)
    # Pad to at least the patch (nnU-Net pads with 0 after normalisation; the label pad is background).
    counts = np.bincount(seg.ravel(), minlength=118)
    seg = np.where(counts[seg] >= MIN_VOXELS, seg, 0)
    pads = [(max(0, p - s) // 2, max(0, p - s) - max(0, p - s) // 2) for p, s in zip(TRAIN_PATCH, norm.shape)]
    norm = np.pad(norm, pads, constant_values=0.0).astype(np.float32)
    target = np.pad(seg, pads, constant_values=0)
    from segforge.organ.nnunet.network import use_onednn_convolutions
    net = network(118)
    use_onednn_convolutions(net)  # training only: PyTorch's batch-1 direct Conv3d is several times slower
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-5)
    # Frequent classes dominate plain cross-entropy; a mild inverse-frequency weight helps the small ones.
    counts = np.bincount(target.ravel(), minlength=118).astype(np.float64)
    weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** 0.25, 0.0)
    weights = torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    x_all, y_all = torch.from_numpy(norm), torch.from_numpy(target)
    started, step, losses = time.perf_counter(), 0, []
    while time.perf_counter() - started < seconds:
        crops = []
        for _ in range(TRAIN_BATCH):
            starts = [int(rng.integers(0, s - p + 1)) for s, p in zip(norm.shape, TRAIN_PATCH)]
            crops.append(tuple(slice(a, a + p) for a, p in zip(starts, TRAIN_PATCH)))
        x = torch.stack([x_all[sl] for sl in crops])[:, None]
        y = torch.stack([y_all[sl] for sl in crops])
        if rng.random() < 0.5:  # mild intensity jitter, so the model is not brittle to resampling blur
            x = x * float(rng.uniform(0.9, 1.1)) + float(rng.normal(0, 0.05))
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 25 == 0:
            log(f"  training step {step}, loss {np.mean(losses[-25:]):.3f}, {time.perf_counter() - started:.0f} s")
    net.eval()
    for module in net.modules():  # back to the plain class, so the state_dict is an ordinary one
        if isinstance(module, torch.nn.Conv3d):
            module.__class__ = torch.nn.Conv3d
    # How well it reproduces the reference on the whole volume (one forward pass, not nnU-Net's tiling).
    extra = [(-s) % 8 for s in norm.shape]  # three stride-2 stages: whole-volume input must divide by 8
    with torch.no_grad():
        whole = torch.from_numpy(np.pad(norm, [(0, e) for e in extra]))
        pred = net(whole[None, None]).argmax(1)[0].numpy()
    inner = tuple(slice(a, a + s) for (a, _), s in zip(pads, seg.shape))
    pred = pred[inner]
    dice = {}
    for value in np.unique(seg[seg > 0]):
        a, b = pred == value, seg == value
        dice[int(value)] = float(2 * (a & b).sum() / (a.sum() + b.sum()))
    stats = {"steps": step, "seconds": round(time.perf_counter() - started, 1),
             "final_loss": round(float(np.mean(losses[-25:])), 4),
             "voxel_accuracy_vs_training_labels": round(float((pred == seg).mean()), 4),
             "mean_dice_vs_training_labels": round(float(np.mean(list(dice.values()))), 4),
             "trained_structures": len(dice)}
    return net.state_dict(), stats


def build_weights(root: str | Path, train_seconds: float = 600.0, seed: int = 0, log=print) -> Path:
    """The weights folder (to use as ``TOTALSEG_WEIGHTS_PATH``) under ``root``, built once per recipe."""
    import torch
    key_source = json.dumps({"recipe": RECIPE, "seconds": train_seconds, "seed": seed, "patch": PATCH,
                             "features": FEATURES, "train_patch": TRAIN_PATCH, "batch": TRAIN_BATCH,
                             "min_voxels": MIN_VOXELS,
                             "ct": hashlib.sha256(CT_FILE.read_bytes()).hexdigest(),
                             "seg": hashlib.sha256(SEG_FILE.read_bytes()).hexdigest()}, sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:12]
    weights_dir = Path(root) / f"weights_{key}"
    model_dir = weights_dir / DATASET / MODEL_SUBFOLDER
    stamp = weights_dir / "built.json"
    if stamp.exists() and (model_dir / "fold_0" / "checkpoint_final.pth").exists():
        log(f"Weights folder cached: {weights_dir}")
        return weights_dir
    if weights_dir.exists():
        shutil.rmtree(weights_dir)
    labels = total_labels()
    ct, seg = _read_training_pair()
    intensity = _intensity_properties(ct, seg)
    log(f"Training a {FEATURES} PlainConvUNet for {train_seconds:.0f} s on {CT_FILE.name} "
        f"(torch threads {torch.get_num_threads()})")
    state, stats = train(ct, seg, intensity, train_seconds, seed, log)
    (model_dir / "fold_0").mkdir(parents=True)
    (model_dir / "plans.json").write_text(json.dumps(plans(intensity), indent=2))
    (model_dir / "dataset.json").write_text(json.dumps(dataset_json(labels), indent=2))
    torch.save({"network_weights": state, "init_args": {"configuration": "3d_fullres"},
                "trainer_name": TRAINER, "inference_allowed_mirroring_axes": None},
               model_dir / "fold_0" / "checkpoint_final.pth")
    stamp.write_text(json.dumps({"key": key, "training": stats, "torch": torch.__version__,
                                 "date": time.strftime("%Y-%m-%d")}, indent=2))
    log(f"Weights folder built: {weights_dir} ({json.dumps(stats)})")
    return weights_dir


def built_info(weights_dir: str | Path) -> dict:
    return json.loads((Path(weights_dir) / "built.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/segforge_ts_weights"))
    parser.add_argument("--train-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_weights(args.out, args.train_seconds, args.seed))


if __name__ == "__main__":
    main()
