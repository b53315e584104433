"""Run a TorchScript segmentation network on a volume, tile by tile, with Cancel.

The network is loaded once per worker (see :mod:`.models_cache`); tiles come from MONAI's
sliding-window inference, and every tile reports progress, which is where Cancel lands.
The pieces (device choice, loading, normalisation, tiled inference) are public because the
deep vessel mask (:mod:`segforge.vessel.deep_model`) runs its networks the same way.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from ..errors import InputError, ModelError
from ..image import Image
from ..progress import ProgressCallback
from .jobs import Job
from .models_cache import ModelCache, shared_models

if TYPE_CHECKING:
    import torch


def torch_device(requested: str) -> str:
    """The torch device for "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N";
    InputError when a GPU is asked for and torch sees none."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but no GPU is usable",
                         "torch sees no CUDA device (no GPU, no driver, or a CPU-only torch)",
                         "choose the CPU or auto device, or start the worker on a GPU machine")
    return requested


def load_torchscript(path: str, device: str) -> Any:
    """The TorchScript network in ``path`` on ``device``, in eval mode; ModelError if unreadable."""
    import torch

    try:
        model = torch.jit.load(path, map_location=device)
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"Could not load the TorchScript model {path}", str(error).splitlines()[0],
                         "re-download the model; it may be corrupt or made by a newer torch") from error
    model.eval()
    return model


def cached_torchscript(path: str, device: str, cache: ModelCache = shared_models) -> tuple[Any, bool]:
    """The network in ``path`` on ``device`` from the worker's model cache (loaded on a miss),
    and whether it was already loaded."""
    return cache.get((*ModelCache.file_key(path), device), lambda: load_torchscript(path, device))


def normalised_tensor(values: "np.ndarray | torch.Tensor", window: Optional[Sequence[float]],
                      device: str) -> "torch.Tensor":
    """The volume as a (1, 1, ...) float tensor on ``device``, normalised there (fast on a GPU):
    an intensity ``window`` (low, high) is clamped and scaled to 0..1 (CT in HU), without one
    the values are z-scored (MR, whose intensities have no fixed scale)."""
    import torch

    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values))
    values = values.to(device).float()
    if window is not None:
        low, high = float(window[0]), float(window[1])
        values = (values.clamp(low, high) - low) / max(high - low, 1e-6)
    else:
        values = (values - values.mean()) / values.std().clamp_min(1e-6)
    return values[None, None]


def tile_count(shape: Sequence[int], roi: Sequence[int], overlap: float) -> int:
    """How many tiles MONAI's sliding window visits (for progress as "tile n of N")."""
    count = 1
    for size, tile in zip(shape, roi):
        step = max(int(tile * (1 - overlap)), 1)
        count *= 1 if size <= tile else math.ceil((size - tile) / step) + 1
    return count


def sliding_window_logits(model: Callable[[Any], Any], tensor: "torch.Tensor", roi: Sequence[int],
                          overlap: float, progress: ProgressCallback, label: str = "Tile") -> "torch.Tensor":
    """The network's output over the whole (1, C, ...) ``tensor``, tile by tile with Gaussian
    blending; ``progress`` is called before every tile, so a Cancel raised there lands
    within one tile."""
    import torch
    from monai.inferers import sliding_window_inference

    total = tile_count(tensor.shape[2:], roi, overlap)
    done = [0]

    def predict(tiles: "torch.Tensor") -> "torch.Tensor":
        progress(min(done[0] / total, 1.0), f"{label} {min(done[0] + 1, total)} of {total}")
        out = model(tiles)
        done[0] += tiles.shape[0]
        return out

    with torch.inference_mode():
        return sliding_window_inference(tensor, list(roi), 1, predict, overlap=overlap, mode="gaussian")


def model_file(params: dict[str, Any]) -> str:
    """The weights a job asks for: ``model_id`` (from the catalog, installed in the model cache),
    or ``model_path`` — any file for a private local worker, only files inside the model cache
    for a shared server (a client must not make the server open its other files)."""
    from ..catalog import load_catalog
    from ..catalog.cache import is_installed, model_path, models_dir

    if params.get("model_id"):
        entry = load_catalog().get(str(params["model_id"]))
        located = model_path(entry)
        if located is None or not is_installed(entry):
            raise ModelError(f"Model {entry.id} is not installed on the worker's machine", "it was never downloaded",
                             f"run 'segforge models download {entry.id}' where the worker runs")
        return str(located)
    path = os.path.realpath(str(params.get("model_path", "")))
    if os.environ.get("SEGFORGE_ALLOW_MODEL_PATHS") != "1":
        cache = os.path.realpath(models_dir())
        if os.path.commonpath([path, cache]) != cache:
            raise ModelError("This worker only runs models from its model cache", f"{path} is outside {cache}",
                             "install the model on the server (segforge models download ID) and send model_id")
    if not os.path.isfile(path):
        raise ModelError(f"No model file at {path}", "the path does not exist on the worker's machine",
                         "download the model first (segforge models download ID) or fix the path")
    return path


def segment_with_torchscript(image: Image, params: dict[str, Any], job: Job,
                             cache: ModelCache = shared_models) -> tuple[dict, dict]:
    """Label map (argmax over channels; sigmoid > 0.5 for one channel) of the network's output."""
    import torch

    path = model_file(params)
    device = torch_device(str(params.get("device", "auto")))
    job.progress(0.0, "Loading the model")
    model, cached = cached_torchscript(path, device, cache)
    roi = [int(n) for n in params.get("roi_size", image.array.shape)]
    overlap = float(params.get("overlap", 0.25))
    with torch.inference_mode():
        tensor = normalised_tensor(image.array, params.get("intensity_window"), device)
        logits = sliding_window_logits(model, tensor, roi, overlap, job.progress)
    job.progress(1.0, "Writing labels")
    if logits.shape[1] == 1:
        labels = (torch.sigmoid(logits[0, 0]) > 0.5).to(torch.uint8)
    else:
        labels = torch.argmax(logits[0], dim=0).to(torch.uint8)
    return ({"labels": image.with_array(labels.cpu().numpy())},
            {"model_cached": cached, "model_loads": cache.loads, "tiles": tile_count(image.array.shape, roi, overlap),
             "device": device})
