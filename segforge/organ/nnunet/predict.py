"""Segment an image with an nnU-Net v2 model folder: the labels nnUNetPredictor gives,
on the input's exact grid."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

from ...errors import InputError
from ...image import Image, require_3d_volume
from ...progress import ProgressCallback, report_while, sub_progress
from ...runtime.model_cache import ModelCache, shared_models
from .export import logits_to_labels
from .network import build_network, load_folds, load_weights
from .plans import read_model
from .preprocess import preprocess
from .sliding_window import TILE_STEP, predict_logits


def predict_labels(image: Image, model_folder: str | Path, folds: Sequence[int | str] = (0,), device: str = "cpu",
                   mirroring: bool = False, progress: Optional[ProgressCallback] = None, *,
                   configuration: Optional[str] = None, force_onednn: bool = False,
                   tile_step: float = TILE_STEP, cache: ModelCache = shared_models) -> Image:
    """Label map (uint8, or uint16 past 254 labels) of ``image`` on its own grid.

    ``folds`` (numbers, or "all" for ``fold_all``) are averaged; ``mirroring`` turns on
    the test-time flips the checkpoints allow (8x slower). ``progress`` may raise
    :class:`segforge.errors.Cancelled` to stop; it hears of every network tile.
    ``force_onednn`` speeds up small CPU networks (5x on the test's tiny U-Net) but can
    move a handful of tie voxels relative to nnU-Net (1 of 107,520 in the test).
    ``tile_step`` is nnU-Net's ``tile_step_size`` (a fraction of the patch). The built
    network stays in ``cache`` (the process's, by default), so the next image of a worker or a
    batch skips reading the checkpoints and building it.
    """
    require_3d_volume(image)
    model = read_model(model_folder, configuration)
    if model.num_inputs != 1:
        raise InputError("This nnU-Net model needs several input images",
                         f"it takes {model.num_inputs} channels ({', '.join(model.channel_names)})",
                         "use a single-channel model")
    report = sub_progress(progress, 0.0, 1.0)
    report(0.0, "Loading the nnU-Net model")
    network, fold_weights, in_use = _loaded(model, folds, device, force_onednn, cache)

    spacing_zyx = tuple(reversed(image.spacing))  # Image spacing is (i, j, k) = (x, y, z)

    # Resampling a large volume takes seconds in one scipy call: report (and let Cancel
    # land) from this thread meanwhile.
    def prepare(stage: ProgressCallback):
        stage(0.02, "Preparing the image")
        return preprocess(image.array[None], spacing_zyx, model)

    report(0.02, "Preparing the image")  # also from this thread: a Cancel here lands whatever the timing
    pre = report_while(prepare, report)
    with in_use:  # several folds load their weights in turn: one image at a time per network
        logits = predict_logits(pre.data, network, fold_weights, model.patch_size, model.num_outputs,
                                mirroring=mirroring, device=device, progress=sub_progress(progress, 0.05, 0.9),
                                tile_step=tile_step)
    labels = logits_to_labels(logits, model, pre, progress=sub_progress(progress, 0.9, 1.0))
    report(1.0, "Segmentation done")
    return image.with_array(labels)


def _loaded(model, folds: Sequence[int | str], device: str, force_onednn: bool,
            cache: ModelCache) -> tuple[Any, list, threading.Lock]:
    """The network with its folds' weights, from ``cache`` when the same files were loaded
    before (keyed by every checkpoint's and the plans' path, size and modification time)."""
    def load() -> tuple[Any, list, threading.Lock]:
        fold_weights = load_folds(model, folds)
        network = build_network(model, device, force_onednn=force_onednn)
        if len(fold_weights) == 1:
            # One fold: its weights live in the network only; a second copy would cost as much
            # memory again (336 MiB for a TotalSegmentator-sized 3 mm network).
            load_weights(network, fold_weights[0])
            fold_weights = [replace(fold_weights[0], weights=None)]
        return network, fold_weights, threading.Lock()

    files = [model.checkpoint(fold) for fold in folds] + [model.folder / "plans.json", model.folder / "dataset.json"]
    if not all(path.is_file() for path in files):
        return load()  # says which file is missing, in its own words
    key = ("nnunet", model.configuration, tuple(str(fold) for fold in folds), device, force_onednn,
           *(ModelCache.file_key(path) for path in files))
    return cache.get(key, load)[0]
