"""The one call that trains or fine-tunes a vessel model and installs it: what ``segforge train
vessel``, the worker's ``train.vessel`` task and so SegVessel's Fine-tune panels all run.

    from segforge.training.run import train_vessel_model
    from segforge.training.config import TrainingConfig
    result = train_vessel_model([(image, label), (image2, label2)], "my-vessels",
                                config=TrainingConfig(steps=300), base_model="my-starter")
    print(result.entry["id"], result.record.final_dice, result.run_dir / "curve.csv")

Why one call: the checks before work (a free model id, pairs on their grids, labels that are
vessels, enough data to validate), the run folder's layout (checkpoint, curve, exported model),
the rule "installed only when finished and validated" and the messages for a run that
diverges, runs out of memory or is cancelled must be the same wherever training starts.

The run folder (default ``<home>/training/<model id>/``) keeps ``checkpoint.pt`` (resume from
it), ``curve.csv`` / ``curve.png`` and, once validated, ``<id>/model.pt`` with its
``training.json`` and ``catalog.json`` (as ``segforge train vessel --out`` always wrote them);
the model is then installed in the cache and
listed in the catalog of trained models (:mod:`.install`), so every model list sees it at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from ..errors import InputError, ModelError
from ..file_lock import file_lock
from ..image import Image
from ..progress import ProgressCallback, no_progress, report_while, sub_progress
from ..runtime.device import choose_device
from .config import TrainingConfig, check_min_dice
from .inputs import PairFiles, read_pair

#: A pair as the caller has it: images in memory (a scene, synthetic data) or files to read.
PairInput = Union[tuple[Image, Image], PairFiles]


@dataclass(frozen=True)
class TrainedModel:
    """A finished run: the catalog entry it installed, its record, and where its files are."""

    entry: dict
    record: object  # segforge.training.train.TrainingRecord (torch-free import here)
    run_dir: Path
    curve_csv: Path
    curve_png: Optional[Path]

    @property
    def model_id(self) -> str:
        return str(self.entry["id"])

    def summary(self) -> str:
        """One line for a person."""
        return (f"Model {self.model_id}: validation Dice {self.record.final_dice:.3f} after "
                f"{len(self.record.losses)} steps ({self.record.seconds:.0f} s); it is in the model list now")


def check_model_id(model_id: str) -> None:
    """InputError unless ``model_id`` is a catalog id (it also names the run folder: no '/', no '..')."""
    import re

    from ..catalog.catalog import ID_PATTERN

    if not isinstance(model_id, str) or not re.fullmatch(ID_PATTERN, model_id):
        raise InputError("The model id is not valid", f"it is {model_id!r}",
                         "use lowercase letters, digits, '.', '_' or '-' (up to 64), not starting with a symbol")


def default_run_dir(model_id: str) -> Path:
    """``<home>/training/<model id>``: where a run keeps its checkpoint and curve."""
    from ..catalog.cache import cache_home

    return cache_home() / "training" / model_id


def base_model_path(base_model: Union[str, os.PathLike]) -> Path:
    """The model file a fine-tune starts from: an installed vessel model's id, or a model file."""
    if isinstance(base_model, str) and os.path.sep not in base_model and not base_model.endswith(".pt"):
        from ..catalog import is_installed, load_catalog, model_path
        from ..catalog.cache import verify

        catalog = load_catalog()
        if base_model not in catalog:
            raise InputError(f"There is no model {base_model!r} to start from",
                             "known models: " + ", ".join(e.id for e in catalog.for_workflow("vessel")),
                             "pick an installed vessel model, or give a model.pt file")
        entry = catalog.get(base_model)
        if entry.workflow != "vessel" or entry.framework != "torchscript" or not is_installed(entry):
            raise InputError(f"Model {base_model} cannot be fine-tuned here",
                             f"it is a {entry.workflow} {entry.framework} model"
                             + ("" if is_installed(entry) else ", not installed"),
                             "start from an installed TorchScript vessel model (one trained by SegForge)")
        problems = verify(entry).problems  # a replaced or damaged file would be trained on silently
        if problems:
            raise InputError(f"The installed model {base_model} is damaged", "; ".join(problems),
                             f"repair it with `segforge models download {base_model} --force`")
        return Path(model_path(entry))
    path = Path(base_model).expanduser()
    if not path.is_file():
        raise InputError(f"No model file at {path}", "the file to fine-tune from does not exist",
                         "give a model.pt written by segforge train vessel, or an installed model's id")
    return path


def train_vessel_model(pairs: Sequence[PairInput], model_id: str, run_dir: Optional[Path] = None,
                       config: TrainingConfig = TrainingConfig(), *, split: bool = False,
                       base_model: Optional[Union[str, os.PathLike]] = None, resume: bool = False,
                       min_dice: float = 0.0, progress: Optional[ProgressCallback] = None,
                       install: bool = True, on_commit: Optional[Callable[[], None]] = None) -> TrainedModel:
    """Train on ``pairs`` (the last one validates; with ``split``, one pair cut in halves), from
    ``base_model`` (an installed model id or a model file: fine-tuning) or from scratch, or on
    from the run folder's checkpoint (``resume``); export and install the model only when the
    run finished with a validation Dice of at least ``min_dice``.

    Raises InputError (one line: what, why, what to do) before any training for a taken id, a
    minimum Dice outside 0-1, a base model that is missing or fails its checksum (checked with
    ``resume`` too), pairs off their grids, an empty or blob-shaped label, too little data (all
    before the run folder is made), a run folder another run holds; during it for a damaged or
    mismatched checkpoint, a network that diverges or memory that runs out; Cancelled when
    ``progress`` raises it (the checkpoint is kept). In every failure no model is installed, none
    is left in the run folder and the catalogs are unchanged.
    ``on_commit`` is called once nothing can stop the install any more (the worker then stops
    listening to Cancel, so a job never says "cancelled" about a model it installed).
    """
    from .install import refuse_taken_id
    from .label_checks import refuse_blob
    from .train import check_enough_data, prepare_pair, split_in_halves

    report = progress or no_progress
    check_model_id(model_id)  # before it names a folder
    check_min_dice(min_dice)
    if install:
        refuse_taken_id(model_id)
    initial = base_model_path(base_model) if base_model is not None else None  # checked even to resume
    if split and len(pairs) != 1:
        raise InputError("Splitting takes exactly one pair", f"{len(pairs)} pairs were given",
                         "give one labelled volume to split in halves, or two or more pairs without splitting")
    if not split and len(pairs) < 2:
        raise InputError("Too little data to train and validate", f"{len(pairs)} pair(s) were given",
                         "give at least two pairs (the last one validates), or split one volume in halves")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(model_id)
    config = replace(config, device=choose_device(config.device)[0])  # "auto": a GPU when torch sees one
    prepared = []
    preparing = sub_progress(report, 0.0, 0.05)
    for number, pair in enumerate(pairs):
        name = pair.name if isinstance(pair, PairFiles) else f"pair {number + 1}"

        def prepare(stage: ProgressCallback, pair: PairInput = pair, name: str = name, number: int = number) -> list:
            stage(number / len(pairs), f"Preparing {name}")
            image, label = read_pair(pair) if isinstance(pair, PairFiles) else pair
            if not split:
                return [prepare_pair(image, label, name)]
            halves = split_in_halves(image, label)
            refuse_blob(np.asarray(label.array) > 0, label.spacing[::-1], name)  # the whole label; halves are short
            return [prepare_pair(*half, f"half {n + 1} of {name}", check_shape=False) for n, half in enumerate(halves)]

        # Reading a volume and thinning its label take seconds on a large one: Cancel lands meanwhile.
        prepared += report_while(prepare, preparing)
    check_enough_data(prepared[:-1], prepared[-1:])  # before the run folder is made
    created = not run_dir.exists()
    lock = run_lock_path(run_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lock, wait=False) as held:
        if not held:
            raise InputError(f"Another training is using the run folder {run_dir}",
                             "two runs in one folder would overwrite each other's checkpoint and model",
                             "wait for it to finish, or train in another folder (--out)")
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            return _train_in(run_dir, prepared, model_id, config, report, resume, initial, min_dice, install,
                             on_commit)
        except BaseException:
            if created:  # a run that stopped before its first checkpoint leaves no empty folder behind
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            raise


def run_lock_path(run_dir: Path) -> Path:
    """The lock a run holds on its run folder for the whole run. In SegForge's home rather than
    in the folder, so that a run refused or stopped early leaves the user's folder as it was."""
    from ..catalog.cache import cache_home

    key = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:32]
    return cache_home() / "training" / ".locks" / f"{key}.lock"


def _train_in(run_dir: Path, prepared: list, model_id: str, config: TrainingConfig, report: ProgressCallback,
              resume: bool, initial: Optional[Path], min_dice: float, install: bool,
              on_commit: Optional[Callable[[], None]]) -> TrainedModel:
    """Train, export and install in ``run_dir``, whose lock the caller holds. The model is
    exported into a temporary folder, installed from there, and moved into the run folder only
    once installed: a Cancel or failure up to then leaves neither model nor listing."""
    from .curve import write_curve_csv, write_curve_png
    from .export import staged_export
    from .install import install_trained_model
    from .train import train

    def keep_curve(latest: object) -> None:
        write_curve_csv(latest, run_dir)

    network, record = train(prepared[:-1], prepared[-1:], config, run_dir, sub_progress(report, 0.05, 0.97),
                            resume=resume, initial_weights=initial, on_checkpoint=keep_curve)
    curve_csv = write_curve_csv(record, run_dir)
    curve_png = _try_png(write_curve_png, record, run_dir)  # not on Cancel: it must land at once
    report(0.97, "Exporting the model")
    with staged_export(network, record, config, model_id, run_dir, min_dice) as (entry, staged):
        if install:
            report(0.98, "Installing the model")  # the last point where Cancel lands
            if on_commit is not None:
                on_commit()
            install_trained_model(entry, source=staged)
    return TrainedModel(entry, record, run_dir, curve_csv, curve_png)


def _try_png(write, record: object, folder: Path) -> Optional[Path]:
    """The curve picture, or None where VTK cannot render here (the CSV is the record)."""
    try:
        return write(record, folder)
    except (ImportError, RuntimeError, OSError, ModelError):
        return None
