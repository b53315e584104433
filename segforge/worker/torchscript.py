"""The worker's ``segment.torchscript`` task: a TorchScript segmentation network on a volume,
tile by tile, with Cancel.

What the task decides is here (which weights a client may ask for, the labels it returns);
how a network runs is the shared runtime's (:mod:`segforge.runtime`: device choice, the
process's model cache, loading, normalisation, tiled inference), which the deep vessel mask
(:mod:`segforge.vessel.deep_model`) uses the same way.
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import ModelError
from ..image import Image
from ..runtime.device import choose_device
from ..runtime.model_cache import ModelCache, shared_models
from ..runtime.sliding_window import sliding_window_logits, tile_count
from ..runtime.torchscript import cached_torchscript, normalised_tensor
from .jobs import Job


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
    device, _warning = choose_device(str(params.get("device", "auto")))
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
