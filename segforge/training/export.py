"""Write a trained vessel network as a catalog model: TorchScript file, SHA-256, catalog entry,
training record; all or nothing, and only for a run that finished and validated.

Why a catalog entry with a ``file://`` URL: the runtime installs and verifies every model
through the catalog (checksum, cache folder), so a model trained here is used exactly like
a downloaded one: name the written catalog file in ``SEGFORGE_CATALOG`` and run
``segforge vessel --model ID``. The entry states what the runtime must do for the network
to see what it was trained on: z-scored intensities (no window), RAS-closest axes, the
training patch size.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch

from ..catalog.catalog import ID_PATTERN, model_problems
from ..errors import InputError
from .train import TrainingConfig, TrainingRecord

MODEL_FILE = "model.pt"
RECORD_FILE = "training.json"
CATALOG_FILE = "catalog.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def export_vessel_model(network: torch.nn.Module, record: TrainingRecord, config: TrainingConfig, model_id: str,
                        out_dir: Path, min_validation_dice: float = 0.0) -> dict:
    """Write ``out_dir/<model_id>/model.pt`` (+ ``training.json``) and its entry in
    ``out_dir/catalog.json`` (other entries there are kept); returns the entry.

    Raises InputError, writing nothing, when the run did not finish, its validation Dice
    is below ``min_validation_dice`` or not a number, or the id is not a catalog id.
    """
    import re
    if not re.fullmatch(ID_PATTERN, model_id):
        raise InputError("The model id is not valid", f"it is {model_id!r}",
                         "use lowercase letters, digits, '.', '_' or '-' (up to 64), not starting with a symbol")
    if not record.finished:
        raise InputError("The training did not finish", f"{len(record.losses)} of {config.steps} steps ran",
                         "resume the run to its end before exporting")
    dice = record.final_dice
    if not math.isfinite(dice) or dice < min_validation_dice:
        raise InputError("The trained model did not validate",
                         f"its validation Dice is {dice:.3f}, the minimum is {min_validation_dice:.3f}",
                         "train longer, on more data, or lower the minimum")
    folder = Path(out_dir) / model_id
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{MODEL_FILE}.part"
    scripted = torch.jit.script(network.to("cpu").eval())
    scripted.save(str(partial))
    os.replace(partial, folder / MODEL_FILE)
    model_path = (folder / MODEL_FILE).resolve()
    entry = {
        "id": model_id, "workflow": "vessel", "framework": "torchscript", "url": model_path.as_uri(),
        "size_bytes": model_path.stat().st_size, "sha256": _sha256(model_path),
        "licence": "trained locally by segforge train vessel; the training data's terms apply",
        "labels": {"1": "vessels"},
        "input": {"modality": ["CT", "MR"], "spacing_mm": None, "intensity_window": None, "orientation": "RAS",
                  "patch_size": list(config.patch_size)},
        "min_gpu_memory_gb": 0,
        "description": f"Vessel U-Net trained by segforge train vessel: {config.steps} steps, validation Dice "
                       f"{dice:.3f}, {record.seconds:.0f} s.",
    }
    problems = model_problems(entry)
    if problems:  # a bug here, not the user's: say so plainly
        raise InputError("The exported model's catalog entry is not valid", "; ".join(problems),
                         "report this as a SegForge bug")
    _write_atomically(folder / RECORD_FILE, json.dumps({"record": record.__dict__, "entry": entry}, indent=1))
    catalog_path = Path(out_dir) / CATALOG_FILE
    models = []
    if catalog_path.is_file():
        models = [m for m in json.loads(catalog_path.read_text(encoding="utf-8")).get("models", [])
                  if m.get("id") != model_id]
    _write_atomically(catalog_path, json.dumps({"schema_version": 1, "models": [*models, entry]}, indent=1))
    return entry
