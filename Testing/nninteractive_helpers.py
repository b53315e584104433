"""A tiny nnInteractive model folder, built locally for the tests and the benchmark (nothing
is downloaded).

The folder has the layout of the published ``nnInteractive_v1.0`` folder on Hugging Face:
``plans.json``, ``dataset.json``, ``inference_session_class.json`` (the v1.0 checkpoint's
legacy metadata: point radius 4, scribble thickness 2, no 3D boxes) and
``fold_0/checkpoint_final.pth`` (``network_weights``, ``trainer_name``, ``init_args``), so
the nnInteractive package loads it with its own ``initialize_from_trained_model_folder``.
The network is an nnU-Net PlainConvUNet (three stages, four features, no normalisation) with a
small non-cubic patch, fed the image plus nnInteractive's seven interaction channels, two
outputs. Its weights are small random numbers with one hand-set path on top, so its masks
have a shape the tests can reason about: the full-resolution encoder conv averages the
previous mask, the positive prompts (points and scribbles twice as strong) and a little of
the image, minus the negative prompts six times as strong; the full-resolution decoder conv
passes that on and the segmentation head calls a voxel foreground where it exceeds 0.5.
So a positive click gives a blob of about its radius, the mask grows where the image is
bright and a negative click erases around itself. (Purely random weights give noise-like
masks that touch every patch face, which sends nnInteractive through its slowest path, the
maximal zoom-out and refinement, at every click: minutes per test on a CPU.)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

#: nnInteractive v1.0: prev_seg + (bbox/lasso, points, scribble) x (positive, negative).
INTERACTION_CHANNELS = 7
CONFIGURATION = "3d_fullres"


def _plans(patch_size: Sequence[int], features: Sequence[int]) -> dict:
    n_stages = len(features)
    strides = [[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 1)
    return {
        "dataset_name": "Dataset999_TinyInteractive",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
        "original_median_shape_after_transp": [64, 64, 64],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 1.0, "mean": 0.0, "median": 0.0, "min": -1.0, "percentile_00_5": -1.0,
                  "percentile_99_5": 1.0, "std": 1.0}},
        "configurations": {CONFIGURATION: {
            "data_identifier": "nnUNetPlans_3d_fullres",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2,
            "patch_size": list(patch_size),
            "median_image_size_in_voxels": [64, 64, 64],
            "spacing": [1.0, 1.0, 1.0],
            "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n_stages,
                    "features_per_stage": list(features),
                    "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * n_stages,
                    "strides": strides,
                    "n_conv_per_stage": [1] * n_stages,
                    "n_conv_per_stage_decoder": [1] * (n_stages - 1),
                    "conv_bias": True,
                    "norm_op": None,
                    "norm_op_kwargs": None,
                    "dropout_op": None,
                    "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
            "batch_dice": False,
        }},
    }


#: Input channel weights of the hand-set path: image, then nnInteractive's channels
#: (prev_seg, box+, box-, point+, point-, scribble+, scribble-).
_PATH_WEIGHTS = (0.15, 1.0, 1.0, -3.0, 2.0, -6.0, 2.0, -6.0)


def _set_weights(network, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(0.01 * torch.randn(parameter.shape, generator=generator))
        first = network.encoder.stages[0][0].convs[0].conv
        for channel, weight in enumerate(_PATH_WEIGHTS):
            first.weight[0, channel] = weight / 27.0
        first.bias[0] = 0.0
        last = network.decoder.stages[-1].convs[0].conv  # input: upsampled (F) then skip (F)
        skip0 = network.decoder.transpconvs[-1].weight.shape[1]
        last.weight[0] = 0.0
        last.weight[0, skip0, 1, 1, 1] = 1.0
        last.bias[0] = 0.0
        head = network.decoder.seg_layers[-1]
        head.weight[:] = 0.0
        head.weight[1, 0] = 1.0
        head.bias[:] = torch.tensor([0.5, 0.0])


def build_tiny_model_folder(folder: Path, patch_size: Sequence[int] = (52, 56, 60),
                            features: Sequence[int] = (4, 4, 4), seed: int = 0) -> Path:
    """Write a loadable nnInteractive model folder with random weights into ``folder``."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    folder = Path(folder)
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    plans = _plans(patch_size, features)
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "object": 1},
               "numTraining": 1, "file_ending": ".nii.gz"}
    plans_text = json.dumps(plans, indent=2)
    (folder / "plans.json").write_text(plans_text)
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    (folder / "inference_session_class.json").write_text(json.dumps(
        {"inference_class": "nnInteractiveInferenceSession", "point_radius": 4,
         "preferred_scribble_thickness": 2}, indent=2))
    architecture = plans["configurations"][CONFIGURATION]["architecture"]
    network = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], 1 + INTERACTION_CHANNELS, 2,
                                     allow_init=False, deep_supervision=False)
    _set_weights(network, seed)
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnInteractiveTrainer_stub",
                "init_args": {"configuration": CONFIGURATION, "plans": plans, "fold": 0}},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder
