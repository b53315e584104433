"""The worker's ``train.vessel`` task: train or fine-tune a vessel model where the worker runs,
with progress (step, loss, validation Dice, time left) and Cancel within a step.

Thin: it gathers the pairs and calls :func:`segforge.training.run.train_vessel_model`, the same
call as ``segforge train vessel``. Pairs come as inputs (``image_0``/``label_0``,
``image_1``/``label_1``... : volumes and vessel masks sent from a scene, on their grids) and/or
as files the worker reads (``files``: [[image, label], ...], ``folder``, ``manifest``; paths on
the worker's machine). The last pair validates unless ``split`` cuts a single pair in halves.

Params: ``model_id``; ``config`` (a :class:`~segforge.training.config.TrainingConfig` as a
dict); ``base_model`` (an installed model's id: fine-tuning; never a file), ``resume``,
``min_dice``. The run folder is always ``<home>/training/<id>`` on the worker's machine: a
client (perhaps of a shared server) never names where the worker writes. Meta: the model id,
its validation Dice, steps, seconds, the run folder and curve files, and a one-line summary.
"""
from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..image import Image
from .jobs import Job

_PARAMS = ("model_id", "config", "split", "base_model", "resume", "min_dice", "files", "folder", "manifest")


def scene_pairs(inputs: dict[str, Any]) -> list[tuple[Image, Image]]:
    """``image_N``/``label_N`` inputs as pairs, in N order; a half pair is refused."""
    numbers = sorted({int(name.split("_", 1)[1]) for name in inputs
                      if name.startswith(("image_", "label_")) and name.split("_", 1)[1].isdigit()})
    pairs = []
    for n in numbers:
        image, label = inputs.get(f"image_{n}"), inputs.get(f"label_{n}")
        if not isinstance(image, Image) or not isinstance(label, Image):
            raise InputError(f"Training pair {n + 1} is incomplete", "each pair needs a volume and its vessel "
                             "label, both with their geometry", "send image_N and label_N for every pair")
        pairs.append((image, label))
    return pairs


def train_vessel_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Train (see module docstring); nothing comes back but the meta: the model is installed."""
    from pathlib import Path

    from ..training.config import TrainingConfig
    from ..training.inputs import PairFiles, pairs_from_folder, pairs_from_manifest
    from ..training.run import train_vessel_model

    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        raise InputError(f"Unknown parameter(s) {', '.join(unknown)}", f"train.vessel takes {list(_PARAMS)}",
                         "check the parameter names")
    model_id = params.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise InputError("The trained model has no id", "model_id is missing", "give the model an id")
    pairs: list[Any] = list(scene_pairs(inputs))
    for number, files in enumerate(params.get("files") or []):
        if not (isinstance(files, (list, tuple)) and len(files) == 2 and all(isinstance(f, str) for f in files)):
            raise InputError(f"File pair {number + 1} is not [image, label]", f"it is {files!r}",
                             "give each pair as two paths")
        pairs.append(PairFiles(files[0], files[1], Path(files[0]).name))
    if params.get("folder"):
        pairs += pairs_from_folder(params["folder"])
    if params.get("manifest"):
        pairs += pairs_from_manifest(params["manifest"])
    base_model = params.get("base_model") or None
    if base_model is not None and (not isinstance(base_model, str) or "/" in base_model or "\\" in base_model
                                   or base_model.endswith(".pt")):
        raise InputError(f"The worker fine-tunes from an installed model, not from {base_model!r}",
                         "a client names the model to start from by its catalog id (a file on the worker's "
                         "machine could be anything)", "install the model (segforge models download ID) and "
                         "give its id")
    config = TrainingConfig.from_dict(dict(params.get("config") or {}))
    min_dice = params.get("min_dice", 0.0)
    if not isinstance(min_dice, (int, float)) or isinstance(min_dice, bool):
        raise InputError(f"min_dice is {min_dice!r}", "it must be a number", "give a number between 0 and 1")
    result = train_vessel_model(pairs, model_id, None, config,
                                split=bool(params.get("split", False)), base_model=base_model,
                                resume=bool(params.get("resume", False)), min_dice=float(min_dice),
                                progress=job.progress, on_commit=job.commit)
    record = result.record
    return {}, {"model_id": result.model_id, "validation_dice": record.final_dice, "steps": len(record.losses),
                "training_seconds": record.seconds, "run_dir": str(result.run_dir),
                "curve_csv": str(result.curve_csv), "curve_png": str(result.curve_png or ""),
                "summary": result.summary()}


TRAINING_TASKS = {"train.vessel": train_vessel_task}
