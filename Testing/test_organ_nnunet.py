"""segforge.organ.nnunet: nnU-Net v2 model folders give nnUNetPredictor's labels.

A tiny PlainConvUNet model folder (3 stages, 8/16/32 features, patch 32^3, 4 labels) is
written by the test itself with random weights: random weights give labels that change
from voxel to voxel, so any difference in preprocessing, tiling, Gaussian weighting, fold
averaging or export shows up as disagreement. The last layer is scaled up (x4) so that
most voxels have a clear winner; ties in the float16 logits remain and are part of what is
compared (nnU-Net breaks them to the lowest label).
"""
from __future__ import annotations

import json
import shutil
import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
unet = pytest.importorskip("dynamic_network_architectures.architectures.unet",
                           reason="dynamic-network-architectures (the organ extra) is not installed")

from conftest import OBLIQUE  # noqa: E402
from segforge.errors import Cancelled, ModelError  # noqa: E402
from segforge.image import Image  # noqa: E402
from segforge.organ.nnunet import predict_labels, read_model  # noqa: E402
from segforge.organ.nnunet.sliding_window import tile_starts  # noqa: E402

LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidney": 3}
PATCH = [32, 32, 32]
MODEL_SPACING = [1.5, 1.5, 1.5]
ARCH = {
    "n_stages": 3, "features_per_stage": [8, 16, 32], "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
    "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
}
RESAMPLING = {"resampling_fn_data": "resample_data_or_seg_to_shape",
              "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
              "resampling_fn_seg": "resample_data_or_seg_to_shape",
              "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
              "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
              "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                     "force_separate_z": None}}


def _plans() -> dict:
    return {
        "dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
        # A real transpose, so axis order mistakes cannot hide.
        "transpose_forward": [2, 0, 1], "transpose_backward": [1, 2, 0],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2, "patch_size": PATCH, "median_image_size_in_voxels": [64, 64, 64],
                "spacing": MODEL_SPACING, "normalization_schemes": ["CTNormalization"],
                "use_mask_for_norm": [False], **RESAMPLING, "batch_dice": False,
                "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                 "arch_kwargs": ARCH,
                                 "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            },
            "3d_lowres_child": {"inherits_from": "3d_fullres", "spacing": [3.0, 3.0, 3.0]},
        },
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 3071.0, "mean": 99.5, "median": 102.0, "min": -1024.0,
                  "percentile_00_5": -958.0, "percentile_99_5": 1342.0, "std": 139.9}},
    }


def _network(seed: int):
    torch.manual_seed(seed)
    net = unet.PlainConvUNet(
        input_channels=1, num_classes=len(LABELS), deep_supervision=False, n_stages=3, features_per_stage=[8, 16, 32],
        conv_op=torch.nn.Conv3d, kernel_sizes=[[3] * 3] * 3, strides=[[1] * 3, [2] * 3, [2] * 3],
        n_conv_per_stage=[2, 2, 2], n_conv_per_stage_decoder=[2, 2], conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm3d):  # non-trivial affine: classes differ
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.decoder.seg_layers[-1].weight *= 4  # clearer winners
    return net


def write_model(folder, folds=(0, 1)):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(_plans()))
    (folder / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 1, "file_ending": ".nii.gz"}))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir(exist_ok=True)
        torch.save({"network_weights": _network(100 + fold).state_dict(),
                    "init_args": {"configuration": "3d_fullres"}, "trainer_name": "nnUNetTrainer",
                    "inference_allowed_mirroring_axes": (0, 1, 2)},
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def ct_like(shape_zyx, seed=0, zero_border=0):
    """HU volume (z, y, x): air, an elliptic body with blobs, noise; optional exact-zero border."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape_zyx], indexing="ij")
    img = np.full(shape_zyx, -1000, np.float32)
    body = (y / 0.8) ** 2 + (x / 0.9) ** 2 < 1
    img[body] = 40
    for _ in range(5):
        c, r = rng.uniform(-0.5, 0.5, 3), rng.uniform(0.15, 0.35)
        img[body & ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r ** 2)] = rng.uniform(-100, 300)
    img += rng.normal(0, 30, shape_zyx).astype(np.float32)
    if zero_border:  # outside a scanner's field of view: nnU-Net crops it away
        b = zero_border
        img[:b] = 0
        img[:, :, -b:] = 0
    return np.round(img).astype(np.int16)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("nnunet") / "Dataset999_Tiny"
                       / "nnUNetTrainer__nnUNetPlans__3d_fullres")


def _image(array_zyx, spacing_zyx):
    return Image(array_zyx, tuple(reversed(spacing_zyx)), (-12.5, 40.25, 7.125), OBLIQUE)


def _reference(model_dir, array_zyx, spacing_zyx, folds, mirroring, tile_step=0.5):
    predictor_module = pytest.importorskip("nnunetv2.inference.predict_from_raw_data",
                                           reason="nnunetv2 (dev extra) is not installed: no reference labels")
    predictor = predictor_module.nnUNetPredictor(
        tile_step_size=tile_step, use_gaussian=True, use_mirroring=mirroring, perform_everything_on_device=False,
        device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_dir), use_folds=folds)
    start = time.perf_counter()
    labels = predictor.predict_single_npy_array(array_zyx[None].astype(np.float32),
                                                {"spacing": list(spacing_zyx)}, None, None, False)
    return labels, time.perf_counter() - start


CASES = {
    # name: (shape z,y,x, spacing z,y,x, folds, mirroring, tile step)
    "isotropic": ((40, 56, 48), (1.5, 1.5, 1.5), (0, 1), False, 0.5),
    "resampled": ((30, 40, 36), (2.0, 1.2, 1.0), (0,), False, 0.5),
    "anisotropic_separate_z": ((12, 44, 40), (5.0, 1.2, 1.3), (0,), False, 0.5),
    "smaller_than_patch": ((20, 24, 16), (1.5, 1.5, 1.5), (0, 1), True, 0.5),
    "totalsegmentator_step": ((36, 50, 44), (1.5, 1.5, 1.5), (0,), False, 0.8),  # TotalSegmentator's total
}


@pytest.mark.parametrize("case", list(CASES))
def test_labels_match_nnunet_predictor(model_dir, case):
    shape, spacing, folds, mirroring, tile_step = CASES[case]
    array = ct_like(shape, seed=len(case), zero_border=3 if case == "isotropic" else 0)
    reference, t_ref = _reference(model_dir, array, spacing, folds, mirroring, tile_step)
    image = _image(array, spacing)
    start = time.perf_counter()
    labels = predict_labels(image, model_dir, folds=folds, mirroring=mirroring, tile_step=tile_step)
    t_ours = time.perf_counter() - start

    assert labels.same_grid(image) and labels.array.dtype == np.uint8
    assert np.array_equal(labels.direction_lps, OBLIQUE)
    agreement = float(np.mean(labels.array == reference))
    present = np.unique(reference)
    print(f"{case}: agreement {agreement * 100:.4f} % ({int(np.sum(labels.array != reference))} of "
          f"{reference.size} voxels differ), labels {present.tolist()}, ours {t_ours:.2f} s, "
          f"nnUNetPredictor {t_ref:.2f} s")
    assert len(present) >= 2, "the test network should predict more than one label"
    assert agreement >= 0.999


def test_lean_forward_is_bit_identical():
    """The memory-lean U-Net pass runs the network's own operations: outputs equal exactly."""
    from segforge.organ.nnunet.network import _is_plain_unet, forward
    net = _network(100).eval()
    tile = torch.from_numpy(ct_like((32, 32, 32), seed=3).astype(np.float32) / 300)[None, None]
    assert _is_plain_unet(net)
    with torch.inference_mode():
        assert torch.equal(forward(net, tile), net(tile))


def test_tile_starts_follow_nnunet():
    assert tile_starts(110, 64) == [0, 23, 46]
    assert tile_starts(64, 64) == [0]
    assert tile_starts(200, 64) == [0, 27, 54, 82, 109, 136]


def test_cancel_stops_between_tiles(model_dir):
    seen = []

    def progress(fraction, message):
        if message.startswith("Segmenting: tile"):
            seen.append(message)
            if len(seen) == 2:
                raise Cancelled()

    with pytest.raises(Cancelled):
        predict_labels(_image(ct_like((40, 56, 48)), (1.5, 1.5, 1.5)), model_dir, folds=(0, 1), progress=progress)
    assert len(seen) == 2


def test_cancel_while_preparing(model_dir):
    def progress(fraction, message):
        if message == "Preparing the image":
            raise Cancelled()

    with pytest.raises(Cancelled):
        predict_labels(_image(ct_like((20, 24, 16)), (1.5, 1.5, 1.5)), model_dir, progress=progress)


@pytest.mark.parametrize("folds", [(0,), (0, 1)])
def test_the_network_is_built_once_per_process_and_rebuilt_for_new_weights(model_dir, tmp_path, folds):
    """A worker or a batch runs image after image: the checkpoints are read and the network
    built at the first only, with the same labels; replaced weights are loaded afresh."""
    import shutil

    from segforge.runtime.model_cache import ModelCache

    cache = ModelCache()
    image = _image(ct_like((20, 24, 16), seed=3), (1.5, 1.5, 1.5))
    first = predict_labels(image, model_dir, folds=folds, cache=cache)
    second = predict_labels(image, model_dir, folds=folds, cache=cache)
    assert cache.loads == 1 and np.array_equal(first.array, second.array)
    copy = shutil.copytree(model_dir, tmp_path / model_dir.name)
    predict_labels(image, copy, folds=folds, cache=cache)
    assert cache.loads == 2
    checkpoint = copy / "fold_0" / "checkpoint_final.pth"
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 10**9))
    predict_labels(image, copy, folds=folds, cache=cache)
    assert cache.loads == 3


def test_missing_checkpoint_is_a_model_error(model_dir):
    with pytest.raises(ModelError) as raised:
        predict_labels(_image(ct_like((20, 24, 16)), (1.5, 1.5, 1.5)), model_dir, folds=(0, 3))
    assert "fold_3" in raised.value.what and raised.value.todo


def test_corrupt_plans_and_label_mismatch_are_model_errors(model_dir, tmp_path):
    broken = tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    shutil.copytree(model_dir, broken)
    (broken / "plans.json").write_text('{"configurations": {"3d_fullres": ')
    with pytest.raises(ModelError) as raised:
        read_model(broken)
    assert "corrupt" in raised.value.what and raised.value.todo

    (broken / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": {"spacing": [1, 1, 1]}}}))
    with pytest.raises(ModelError) as raised:
        read_model(broken)
    assert raised.value.todo

    shutil.copy(model_dir / "plans.json", broken / "plans.json")
    dataset = json.loads((broken / "dataset.json").read_text())
    dataset["labels"]["pancreas"] = 4
    (broken / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(ModelError) as raised:
        predict_labels(_image(ct_like((20, 24, 16)), (1.5, 1.5, 1.5)), broken)
    assert "5 labels" in raised.value.why and "4 output channels" in raised.value.why and raised.value.todo


def test_inheritance_and_old_plans_format(model_dir, tmp_path):
    child = read_model(model_dir, "3d_lowres_child")
    parent = read_model(model_dir)
    assert parent.configuration == "3d_fullres" and parent.num_outputs == 4 and parent.transpose_forward == (2, 0, 1)
    assert child.spacing == (3.0, 3.0, 3.0) and child.patch_size == parent.patch_size
    assert child.architecture == parent.architecture

    old = tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    shutil.copytree(model_dir, old)
    plans = _plans()
    config = plans["configurations"]["3d_fullres"]
    del config["architecture"]
    config.update({"UNet_class_name": "PlainConvUNet", "UNet_base_num_features": 8, "unet_max_num_features": 32,
                   "n_conv_per_stage_encoder": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2],
                   "num_pool_per_axis": [2, 2, 2], "pool_op_kernel_sizes": ARCH["strides"],
                   "conv_kernel_sizes": ARCH["kernel_sizes"]})
    (old / "plans.json").write_text(json.dumps(plans))
    assert read_model(old).architecture.kwargs == parent.architecture.kwargs
