"""Read an nnU-Net v2 model folder's ``dataset.json`` and ``plans.json`` into typed values.

Only what inference needs is kept. A configuration may inherit from another
(``inherits_from``), and plans written before nnU-Net 2.4 describe the network with
``UNet_class_name`` and friends instead of an ``architecture`` block; both are resolved
here, the way nnunetv2's ``PlansManager`` and ``ConfigurationManager`` do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ...errors import ModelError

#: Normalisation schemes this runner implements (nnU-Net's class names).
SUPPORTED_NORMALIZATION = ("CTNormalization", "ZScoreNormalization", "NoNormalization")

_OLD_ARCHITECTURES = {
    "PlainConvUNet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "ResidualEncoderUNet": "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet",
}


@dataclass(frozen=True)
class IntensityProperties:
    """Foreground intensity statistics of one input channel (used by CT normalisation)."""

    mean: float
    std: float
    percentile_00_5: float
    percentile_99_5: float


@dataclass(frozen=True)
class Resampling:
    """How nnU-Net resamples data or logits: spline order in-plane, order along a separate z."""

    order: int
    order_z: int = 0
    force_separate_z: Optional[bool] = None


@dataclass(frozen=True)
class Architecture:
    """The network class (dotted name) and its keyword arguments, as JSON text."""

    class_name: str
    kwargs_json: str
    requires_import: tuple[str, ...]

    @property
    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.kwargs_json)


@dataclass(frozen=True)
class NnUNetModel:
    """One configuration of an nnU-Net v2 model folder, ready to run."""

    folder: Path
    configuration: str
    labels: tuple[tuple[str, int], ...]       # (name, value) incl. background, excl. "ignore"
    channel_names: tuple[str, ...]
    transpose_forward: tuple[int, int, int]
    transpose_backward: tuple[int, int, int]
    patch_size: tuple[int, int, int]
    spacing: tuple[float, float, float]       # the model's spacing, in transposed axis order
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    intensity_properties: tuple[Optional[IntensityProperties], ...]
    data_resampling: Resampling
    logits_resampling: Resampling
    architecture: Architecture

    @property
    def num_inputs(self) -> int:
        return len(self.channel_names)

    @property
    def num_outputs(self) -> int:
        """Output channels of the network: one per label, background included."""
        return len(self.labels)

    @property
    def label_dtype(self) -> str:
        """nnU-Net writes uint8 labels unless there are 255 or more foreground labels."""
        return "uint8" if len(self.labels) - 1 < 255 else "uint16"

    def checkpoint(self, fold: int | str, name: str = "checkpoint_final.pth") -> Path:
        return self.folder / f"fold_{fold}" / name


def read_model(folder: str | Path, configuration: Optional[str] = None) -> NnUNetModel:
    """Read ``folder``'s dataset.json and plans.json.

    ``configuration`` defaults to the last ``__`` part of the folder's name
    (``nnUNetTrainer__nnUNetPlans__3d_fullres``), or the only configuration in the plans.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"The nnU-Net model folder {folder} does not exist",
                         "the path is wrong or the model was never downloaded",
                         "download the model again or choose the folder that holds plans.json")
    dataset = _read_json(folder / "dataset.json")
    plans = _read_json(folder / "plans.json")
    try:
        return _parse(folder, dataset, plans, configuration)
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ModelError(f"The nnU-Net model in {folder} cannot be read",
                         f"plans.json or dataset.json lacks or garbles an entry ({type(error).__name__}: {error})",
                         "download the model again; if you made it yourself, "
                         "re-run nnUNetv2_plan_experiment") from error


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(f"The nnU-Net model file {path.name} is missing",
                         f"{path.parent} has no {path.name}",
                         "download the model again (an interrupted download leaves files out)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"The nnU-Net model file {path} is corrupt", f"it is not valid JSON ({error})",
                         "download the model again") from error
    if not isinstance(data, dict):
        raise ModelError(f"The nnU-Net model file {path} is corrupt", "it does not hold a JSON object",
                         "download the model again")
    return data


def _parse(folder: Path, dataset: dict, plans: dict, configuration: Optional[str]) -> NnUNetModel:
    configurations = plans["configurations"]
    name = configuration or _default_configuration(folder, configurations)
    if name not in configurations:
        raise ModelError(f"The nnU-Net model has no configuration {name!r}",
                         f"plans.json offers {', '.join(sorted(configurations))}",
                         "pick one of those configurations")
    config = _resolve_inheritance(configurations, name)
    patch = tuple(int(p) for p in config["patch_size"])
    if len(patch) != 3:
        raise ModelError(f"The nnU-Net configuration {name!r} is not 3D",
                         f"its patch size is {list(patch)}; only 3D configurations run here",
                         "use the model's 3d_fullres or 3d_lowres configuration")
    labels = _labels(dataset)
    channels = tuple(str(v) for _, v in sorted(dataset["channel_names"].items(), key=lambda kv: int(kv[0])))
    schemes = tuple(config["normalization_schemes"])
    for scheme in schemes:
        if scheme not in SUPPORTED_NORMALIZATION:
            raise ModelError(f"The nnU-Net model uses the normalisation {scheme}",
                             f"this runner implements {', '.join(SUPPORTED_NORMALIZATION)} only",
                             "use a model trained with one of those")
    if len(schemes) != len(channels):
        raise ModelError("The nnU-Net model's plans and dataset disagree",
                         f"{len(schemes)} normalisation schemes for {len(channels)} input channels",
                         "download the model again")
    intensities = plans.get("foreground_intensity_properties_per_channel", {})
    props = []
    for c, scheme in enumerate(schemes):
        p = intensities.get(str(c))
        if p is None:
            if scheme == "CTNormalization":
                raise KeyError(f"foreground_intensity_properties_per_channel[{c}]")
            props.append(None)
        else:
            props.append(IntensityProperties(float(p["mean"]), float(p["std"]),
                                             float(p["percentile_00_5"]), float(p["percentile_99_5"])))
    return NnUNetModel(
        folder=folder,
        configuration=name,
        labels=labels,
        channel_names=channels,
        transpose_forward=_axes(plans.get("transpose_forward", [0, 1, 2])),
        transpose_backward=_axes(plans.get("transpose_backward", [0, 1, 2])),
        patch_size=patch,  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in config["spacing"]),  # type: ignore[arg-type]
        normalization_schemes=schemes,
        use_mask_for_norm=tuple(bool(u) for u in config["use_mask_for_norm"]),
        intensity_properties=tuple(props),
        data_resampling=_resampling(config, "resampling_fn_data", default_order=3),
        logits_resampling=_resampling(config, "resampling_fn_probabilities", default_order=1),
        architecture=_architecture(config, name),
    )


def _default_configuration(folder: Path, configurations: Mapping[str, Any]) -> str:
    from_name = folder.name.split("__")[-1]
    if from_name in configurations:
        return from_name
    if len(configurations) == 1:
        return next(iter(configurations))
    raise ModelError("The nnU-Net model folder does not say which configuration it holds",
                     f"its name {folder.name!r} does not end in one of {', '.join(sorted(configurations))}",
                     "pass the configuration explicitly")


def _resolve_inheritance(configurations: Mapping[str, Any], name: str) -> dict:
    chain, config = [name], dict(configurations[name])
    while "inherits_from" in config:
        parent = config.pop("inherits_from")
        if parent in chain or parent not in configurations:
            raise ValueError(f"configuration {chain[-1]!r} inherits from {parent!r}, which is "
                             + ("circular" if parent in chain else "missing"))
        chain.append(parent)
        config = {**configurations[parent], **config}
    return config


def _labels(dataset: dict) -> tuple[tuple[str, int], ...]:
    labels = []
    for name, value in dataset["labels"].items():
        if isinstance(value, (list, tuple)):
            raise ModelError("The nnU-Net model is region-based",
                             f"label {name!r} is a region {value}; region-based models are not supported yet",
                             "use a model trained on plain labels")
        if name != "ignore":
            labels.append((str(name), int(value)))
    labels.sort(key=lambda nv: nv[1])
    if [v for _, v in labels] != list(range(len(labels))):
        raise ValueError(f"labels must be 0..n-1 without gaps, got {[v for _, v in labels]}")
    return tuple(labels)


def _axes(values: Any) -> tuple[int, int, int]:
    axes = tuple(int(v) for v in values)
    if sorted(axes) != [0, 1, 2]:
        raise ValueError(f"transpose {list(values)} is not a permutation of 0, 1, 2")
    return axes  # type: ignore[return-value]


def _resampling(config: dict, key: str, default_order: int) -> Resampling:
    function = config.get(key, "resample_data_or_seg_to_shape")
    if function != "resample_data_or_seg_to_shape":
        raise ModelError(f"The nnU-Net model resamples with {function}",
                         "this runner implements nnU-Net's default resample_data_or_seg_to_shape only",
                         "use a model with the default resampling")
    kwargs = config.get(key + "_kwargs") or {}
    force = kwargs.get("force_separate_z")
    return Resampling(int(kwargs.get("order", default_order)), int(kwargs.get("order_z", 0)),
                      None if force is None else bool(force))


def _architecture(config: dict, name: str) -> Architecture:
    if "architecture" in config:
        arch = config["architecture"]
        return Architecture(str(arch["network_class_name"]), json.dumps(arch["arch_kwargs"]),
                            tuple(arch.get("_kw_requires_import", ())))
    # Plans written before nnU-Net 2.4 (the mapping ConfigurationManager applies).
    old = config["UNet_class_name"]
    if old not in _OLD_ARCHITECTURES:
        raise ModelError(f"The nnU-Net configuration {name!r} uses the network {old}",
                         "old-style plans are understood for PlainConvUNet and ResidualEncoderUNet only",
                         "re-plan the model with a current nnU-Net")
    n_stages = len(config["n_conv_per_stage_encoder"])
    blocks = "n_conv_per_stage" if old == "PlainConvUNet" else "n_blocks_per_stage"
    kwargs = {
        "n_stages": n_stages,
        "features_per_stage": [min(config["UNet_base_num_features"] * 2 ** i, config["unet_max_num_features"])
                               for i in range(n_stages)],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": config["conv_kernel_sizes"],
        "strides": config["pool_op_kernel_sizes"],
        blocks: config["n_conv_per_stage_encoder"],
        "n_conv_per_stage_decoder": config["n_conv_per_stage_decoder"],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return Architecture(_OLD_ARCHITECTURES[old], json.dumps(kwargs), ("conv_op", "norm_op", "dropout_op", "nonlin"))
