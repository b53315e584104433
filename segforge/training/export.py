"""Write a trained vessel network as a catalog model: TorchScript file, SHA-256, catalog entry,
training record; all or nothing, and only for a run that finished, validated and whose weights
are all numbers.

All or nothing: the model is written into a hidden temporary folder beside its place and moved
there (and listed in the folder's ``catalog.json``) only when the caller's block ends well, so
the install into the cache (:mod:`.install`) happens from the temporary folder first; a Cancel,
a failed install or Ctrl-C leave no model and no listing behind.

Why a catalog entry with a ``file://`` URL: the runtime installs and verifies every model
through the catalog (checksum, cache folder), so a model trained here is used exactly like
a downloaded one: name the written catalog file in ``SEGFORGE_CATALOG`` and run
``segforge vessel --model ID``. The entry states what the runtime must do for the network
to see what it was trained on: z-scored intensities (no window), RAS-closest axes, the
training patch size.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from ..output_set import file_sha256
from ..catalog.catalog import ID_PATTERN, model_problems
from ..catalog.download import swap_into_place
from ..errors import InputError
from ..output_set import replace_file
from .train import TrainingConfig, TrainingRecord, check_finite_weights

MODEL_FILE = "model.pt"
RECORD_FILE = "training.json"
CATALOG_FILE = "catalog.json"


def _write_atomically(path: Path, text: str) -> None:
    replace_file(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def export_vessel_model(network: torch.nn.Module, record: TrainingRecord, config: TrainingConfig, model_id: str,
                        out_dir: Path, min_validation_dice: float = 0.0) -> dict:
    """Write ``out_dir/<model_id>/model.pt`` (+ ``training.json``) and its entry in
    ``out_dir/catalog.json`` (other entries there are kept); returns the entry. See
    :func:`staged_export`, which this is with nothing to do in between."""
    with staged_export(network, record, config, model_id, out_dir, min_validation_dice) as (entry, _):
        return entry


@contextlib.contextmanager
def staged_export(network: torch.nn.Module, record: TrainingRecord, config: TrainingConfig, model_id: str,
                  out_dir: Path, min_validation_dice: float = 0.0) -> Iterator[tuple[dict, Path]]:
    """Write the model into a temporary folder in ``out_dir`` and yield its entry and the model
    file there (to install from); when the block ends normally, move the folder to
    ``out_dir/<model_id>`` (an older one replaced whole) and list the entry in
    ``out_dir/catalog.json`` (other entries there are kept). When the block raises, nothing is
    left: the temporary folder is removed, an older model and the catalog file stay as they were.

    Raises InputError, writing nothing, when the run did not finish, its validation Dice
    is below ``min_validation_dice`` or not a number, a weight is not a number, or the id is
    not a catalog id.
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
    check_finite_weights(network, "at the end of the run")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.", suffix=".part", dir=out_dir))
    try:
        staged = staging / MODEL_FILE
        torch.jit.script(network.to("cpu").eval()).save(str(staged))
        entry = _entry(model_id, staged, (out_dir / model_id / MODEL_FILE).resolve(), record, config)
        _write_atomically(staging / RECORD_FILE, json.dumps({"record": record.__dict__, "entry": entry}, indent=1))
        yield entry, staged
        swap_into_place(staging, out_dir / model_id)
        _list(out_dir / CATALOG_FILE, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _entry(model_id: str, staged: Path, final: Path, record: TrainingRecord, config: TrainingConfig) -> dict:
    """The catalog entry of the model file ``staged``, which will lie at ``final``."""
    entry = {
        "id": model_id, "workflow": "vessel", "framework": "torchscript", "url": final.as_uri(),
        "size_bytes": staged.stat().st_size, "sha256": file_sha256(staged),
        "licence": "trained locally by segforge train vessel; the training data's terms apply",
        "labels": {"1": "vessels"},
        "input": {"modality": ["CT", "MR"], "spacing_mm": None, "intensity_window": None, "orientation": "RAS",
                  "patch_size": list(config.patch_size)},
        "min_gpu_memory_gb": 0,
        "description": f"Vessel U-Net trained by segforge train vessel: {config.steps} steps, validation Dice "
                       f"{record.final_dice:.3f}, {record.seconds:.0f} s.",
    }
    problems = model_problems(entry)
    if problems:  # a bug here, not the user's: say so plainly
        raise InputError("The exported model's catalog entry is not valid", "; ".join(problems),
                         "report this as a SegForge bug")
    return entry


def _list(catalog_path: Path, entry: dict) -> None:
    """Add (or replace) ``entry`` in the catalog file ``catalog_path``, other entries kept."""
    models = []
    if catalog_path.is_file():
        models = [m for m in json.loads(catalog_path.read_text(encoding="utf-8")).get("models", [])
                  if m.get("id") != entry["id"]]
    _write_atomically(catalog_path, json.dumps({"schema_version": 1, "models": [*models, entry]}, indent=1))
