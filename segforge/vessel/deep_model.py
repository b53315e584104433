"""The vessel mask from a deep network of the model catalog, on the input's exact grid.

Framework: ``"torchscript"``, a MONAI (or any PyTorch) network exported with
``torch.jit.script`` or ``torch.jit.trace``. One file runs without the Python class that
defined it, so a catalog entry and ``segforge models download ID`` are all a user needs.
The network follows the conventions MONAI's training transforms give it:

* input ``(1, 1, x, y, z)``: one channel; the volume's voxel axes reordered and flipped to
  lie closest to R, A, S (MONAI's ``Orientation("RAS")`` without a rotation: exact, no
  interpolation); at the entry's ``input.spacing_mm`` (x, y, z; null: native spacing);
  intensities clamped to ``input.intensity_window`` and scaled to 0..1, or z-scored when
  the entry has none (the same normalisation as the ``segment.torchscript`` worker task);
* output: logits, either one channel (sigmoid: vessel) or channel 0 background and channel
  n for label n of the entry's ``labels`` (softmax); every listed label counts as vessel;
* tiles of ``input.patch_size`` voxels (x, y, z; default 96 each), 25 % overlap, Gaussian
  blending (MONAI's ``sliding_window_inference``); each tile reports progress, so Cancel
  lands within one tile.

Resampling happens in the image's own frame (possibly oblique): the model's grid keeps the
image's direction and physical extent, only the voxel count changes, so nothing is cut off
and no rotation blurs the data. The vessel probability (not the labels) is resampled back
linearly onto the input grid and thresholded at 0.5, which places the edge between voxels
more faithfully than nearest-neighbour labels would. Then the post-processing the builtin
path offers applies: ROI, seed or largest component, hole filling. The radii, measure,
relative thresholds, intensity window and lumen refinement of
:class:`~segforge.vessel.parameters.VesselMaskParameters` belong to the builtin filter and
are ignored here.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..catalog.catalog import ModelEntry
from ..errors import InputError, ModelError
from ..image import Image, require_3d_volume
from ..orientation import from_network_axes, network_axes, to_network_axes
from ..progress import ProgressCallback, no_progress, report_while, sub_progress
from .parameters import VesselMaskParameters

if TYPE_CHECKING:
    import torch

    from ..runtime.model_cache import ModelCache

log = logging.getLogger(__name__)

#: Frameworks this module runs (the catalog knows more; they need their own runtime).
FRAMEWORKS = ("torchscript",)
#: Tile size (x, y, z voxels) when the catalog names none: divisible by 32, so U-Nets of
#: up to five levels accept it; MONAI pads a smaller volume up to it.
DEFAULT_PATCH = (96, 96, 96)
OVERLAP = 0.25
#: Vessel probability above which a voxel is vessel (argmax for a two-channel network).
PROBABILITY_THRESHOLD = 0.5


@dataclass(frozen=True)
class DeepVesselModel:
    """What running one vessel network takes: its file and the input it was trained on."""

    id: str
    path: Path
    #: Spacing (x, y, z) in mm on the RAS-ordered axes; None: the image's own spacing.
    spacing_mm: Optional[tuple[float, float, float]] = None
    #: (low, high) clamped and scaled to 0..1; None: z-score.
    intensity_window: Optional[tuple[float, float]] = None
    patch_size: tuple[int, int, int] = DEFAULT_PATCH
    #: Output channels that are vessel (label n = channel n; channel 0 is background).
    vessel_labels: tuple[int, ...] = (1,)

    @classmethod
    def from_entry(cls, entry: ModelEntry, home: Optional[Path] = None) -> "DeepVesselModel":
        """The model a catalog entry describes, once it is installed; ModelError otherwise."""
        from ..catalog.cache import is_installed, model_path

        if entry.framework not in FRAMEWORKS:
            raise ModelError(f"Model {entry.id} cannot make a vessel mask",
                             f"it is a {entry.framework} model; the vessel mask runs {', '.join(FRAMEWORKS)} networks",
                             "export the network with torch.jit and catalog it as torchscript, "
                             "or choose another vessel model")
        if not is_installed(entry, home):
            raise not_installed(entry)
        path = model_path(entry, home)
        if entry.is_archive or path is None or not path.is_file():
            raise ModelError(f"Model {entry.id} is not a single TorchScript file",
                             f"it is installed as {path}", "catalog the .pt file itself, not an archive")
        return cls(entry.id, path, entry.input.spacing_mm, entry.input.intensity_window,
                   entry.input.patch_size or DEFAULT_PATCH, tuple(sorted(entry.labels)))


def not_installed(entry: ModelEntry) -> ModelError:
    """The error for a catalog model whose weights are not in the cache: says how to get them."""
    from ..catalog.cache import models_dir

    return ModelError(f"Vessel model {entry.id} is not installed",
                      f"its weights were never downloaded into {models_dir()}",
                      f"run 'segforge models download {entry.id}' (where the worker runs), "
                      "or choose model auto or vesselness-frangi")


# --- geometry: the network's grid ------------------------------------------------------

def model_grid_shape(shape: Sequence[int], spacing: Sequence[float],
                     target_mm: Optional[Sequence[float]]) -> tuple[int, ...]:
    """Voxels per axis at the model's spacing over the same extent (at least one)."""
    if target_mm is None:
        return tuple(int(n) for n in shape)
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_mm))


def resample_linear(volume: "torch.Tensor", shape: Sequence[int]) -> "torch.Tensor":
    """A 3D tensor resampled linearly to ``shape`` over the same extent (voxel-centre
    convention, ``align_corners=False``): resampling to ``shape`` and back to the original
    shape maps every voxel centre onto itself, so the round trip keeps the geometry."""
    import torch.nn.functional as F

    if tuple(volume.shape) == tuple(shape):
        return volume
    return F.interpolate(volume[None, None], size=tuple(int(n) for n in shape), mode="trilinear",
                         align_corners=False)[0, 0]


def vessel_probability(logits: "torch.Tensor", vessel_labels: Sequence[int]) -> "torch.Tensor":
    """The (1, 1, ...) probability that a voxel is vessel: sigmoid of a one-channel output, or
    the softmax summed over the vessel channels (any vessel class beats the background)."""
    import torch

    channels = int(logits.shape[1])
    if channels == 1:
        return torch.sigmoid(logits)
    if not vessel_labels or max(vessel_labels) >= channels:
        raise ModelError(f"The network gives {channels} output channels",
                         f"its catalog entry lists label(s) {', '.join(map(str, vessel_labels))}; "
                         "label n must be output channel n",
                         "fix the entry's labels to match the network's output")
    return torch.softmax(logits, dim=1)[:, list(vessel_labels)].sum(dim=1, keepdim=True)


# --- the mask ----------------------------------------------------------------------------

def deep_vessel_mask_and_meta(image: Image, model: "DeepVesselModel | ModelEntry",
                              parameters: VesselMaskParameters = VesselMaskParameters(),
                              progress: Optional[ProgressCallback] = None,
                              cache: "Optional[ModelCache]" = None) -> tuple[Image, dict[str, Any]]:
    """A uint8 vessel mask (1 = vessel) on ``image``'s grid, made by a deep network, and what a
    front end reports: the model, whether it was already loaded, the device, the tiles and the
    model's grid (JSON-friendly).

    ``model`` is an installed catalog entry or a :class:`DeepVesselModel` (e.g. a file
    with its settings). Raises InputError, ModelError or Cancelled.
    """
    import torch

    from . import mask as masks
    from ..runtime.device import choose_device
    from ..runtime.model_cache import shared_models
    from ..runtime.sliding_window import sliding_window_logits
    from ..runtime.torchscript import cached_torchscript, normalised_tensor

    require_3d_volume(image)
    spec = model if isinstance(model, DeepVesselModel) else DeepVesselModel.from_entry(model)
    cache = cache if cache is not None else shared_models
    report = progress or no_progress
    device, _warning = choose_device(parameters.device)
    crop = inner = (slice(None),) * 3
    if parameters.roi_lps is not None:
        crop, inner = masks.roi_crop(image, parameters.roi_lps, _context_voxels(image, spec))
    region = image.crop(crop)

    report(0.0, f"Deep vessel model {spec.id}: loading")
    path = str(spec.path)
    network, cached = cached_torchscript(path, device, cache)
    axes = network_axes(region.direction_lps)
    with torch.inference_mode():
        report(0.03, f"Deep vessel model {spec.id}: resampling")
        volume = to_network_axes(_tensor(region.array, device), axes)
        native_shape = tuple(volume.shape)
        grid = model_grid_shape(native_shape, axes.spacing(region), spec.spacing_mm)
        tensor = normalised_tensor(resample_linear(volume, grid), spec.intensity_window, device)
        del volume
        logits = sliding_window_logits(network, tensor, spec.patch_size, OVERLAP,
                                       sub_progress(report, 0.05, 0.85), f"Deep vessel model {spec.id}: tile")
        del tensor
        report(0.85, f"Deep vessel model {spec.id}: back onto the image's grid")
        probability = vessel_probability(logits, spec.vessel_labels)[0, 0]
        del logits
        probability = from_network_axes(resample_linear(probability, native_shape), axes)
        found = (probability > PROBABILITY_THRESHOLD).cpu().numpy()
    seeds = None
    if parameters.seeds_lps:
        seeds = masks.seed_indices(image, parameters.seeds_lps) - np.array([s.start or 0 for s in crop])
    started = time.monotonic()
    mask = report_while(lambda stage: _post_process(found, region, inner, seeds, parameters, stage), report)
    full = np.zeros(image.array.shape, dtype=np.uint8)
    full[crop] = mask
    report(1.0, f"Vessel mask done ({spec.id}, {time.monotonic() - started:.1f} s after the network)")
    native_spacing = axes.spacing(region)
    meta = {"model": spec.id, "model_cached": cached, "model_loads": cache.loads, "device": device,
            "tiles": _tiles(grid, spec.patch_size), "model_grid_xyz": list(grid),
            "model_spacing_mm": [n * s / g for n, s, g in zip(native_shape, native_spacing, grid)]}
    log.info("Deep vessel mask by %s on %s: %d voxels", spec.id, device, int(np.count_nonzero(full)))
    return image.with_array(full), meta


def _tensor(array: np.ndarray, device: str) -> "torch.Tensor":
    """The voxels as a float tensor on ``device``; types torch holds are sent as they are
    (an int16 CT travels to the GPU at half the size of float32)."""
    import torch

    if array.dtype not in (np.int8, np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64):
        array = array.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device).float()


def _tiles(grid: Sequence[int], patch: Sequence[int]) -> int:
    from ..runtime.sliding_window import tile_count

    return tile_count(grid, patch, OVERLAP)


def _context_voxels(image: Image, spec: DeepVesselModel) -> list[int]:
    """Margin (k, j, i voxels) kept around an ROI so the network sees half a tile of context."""
    spacing = max(spec.spacing_mm or image.spacing)
    reach_mm = max(spec.patch_size) * spacing / 2.0
    return [int(math.ceil(reach_mm / s)) for s in reversed(image.spacing)]


def _post_process(found: np.ndarray, region: Image, inner: tuple[slice, slice, slice],
                  seeds: Optional[np.ndarray], parameters: VesselMaskParameters,
                  stage: ProgressCallback) -> np.ndarray:
    """The builtin path's clean-up on the network's mask: ROI, components, holes."""
    from . import mask as masks

    in_roi = masks.roi_in_region(region, inner, parameters.roi_lps)
    found = masks.finish_mask(found, tuple(reversed(region.spacing)), in_roi, seeds, parameters, stage)
    if not found.any():
        raise InputError("The deep vessel model found no vessel",
                         "no voxel reached a vessel probability of 0.5"
                         + (" inside the region of interest" if in_roi is not None else ""),
                         "check that the volume matches the model's modality, or use model vesselness-frangi")
    return found
