"""SegVessel's Fine-tune section: its form, the rule that turns its fields into a training job,
and the Logic call that sends pairs from the scene to the worker.

Why here (Qt-free, beside the vessel form): the desktop panel, the web panel and the Python
console fill the same :class:`FineTuneForm`; nothing else builds training parameters. The
worker's ``train.vessel`` task (:mod:`segforge.worker.training_task`) runs
:func:`segforge.training.run.train_vessel_model`, the call ``segforge train vessel`` makes, and
installs the model only when it finished and validated, so :func:`.form.model_choices` lists it
as soon as the job is done.

From the Python console::

    from SegVesselLib.fine_tune import FineTuneForm, ScenePair, start_fine_tune
    job = start_fine_tune(worker, [ScenePair(ct1, seg1, "Vessels"), ScenePair(ct2, seg2, "Vessels")],
                          FineTuneForm(model_id="my-vessels", steps=200))
    print(job.wait().summary)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Sequence

from segforge.errors import InputError
from segforge.forms import Form, labelled
from segforge.training.config import TrainingConfig
from segforge.worker import JobResult, ModuleJob, WorkerClient

#: The base-model choice meaning "train a new network from scratch".
FROM_SCRATCH = ""
TASK = "train.vessel"


@dataclass(frozen=True)
class FineTuneForm(Form):
    """The Fine-tune section's fields; small defaults, so a first try takes minutes on a CPU."""

    model_id: str = labelled("", "the new model's name")
    base_model: str = labelled(FROM_SCRATCH, "the model to start from")
    steps: int = labelled(100, "the number of steps")
    patch_size: int = labelled(32, "the patch size")
    batch_size: int = labelled(2, "the batch size")
    learning_rate: float = labelled(1e-3, "the learning rate")
    #: One labelled volume: train on one half, validate on the other.
    split: bool = False
    min_dice: float = labelled(0.0, "the minimum validation Dice")
    #: Go on from the checkpoint a cancelled run of this name left (same settings), not from scratch.
    resume: bool = False
    device: str = labelled("auto", "the device")

    def config(self) -> TrainingConfig:
        """The engine's training config of these fields (it refuses bad values, saying what to change)."""
        return TrainingConfig(steps=self.steps, patch_size=(self.patch_size,) * 3, batch_size=self.batch_size,
                              learning_rate=self.learning_rate, device=self.device,
                              validate_every=max(1, min(50, self.steps // 4)),
                              checkpoint_every=max(1, min(25, self.steps // 4)))

    def params(self, pair_count: int) -> dict[str, Any]:
        """The ``train.vessel`` job's parameters for ``pair_count`` pairs; InputError for what is
        wrong, before anything is sent."""
        import re

        from segforge.catalog.catalog import ID_PATTERN

        if not re.fullmatch(ID_PATTERN, self.model_id):
            raise InputError("The new model needs a name", f"{self.model_id!r} is not a model id",
                             "use lowercase letters, digits, '.', '_' or '-' (for example my-vessels)")
        if self.split and pair_count != 1:
            raise InputError("Split in halves takes one pair", f"{pair_count} pairs are chosen",
                             "choose one labelled volume to split, or untick Split")
        if not self.split and pair_count < 2:
            raise InputError("Too little data to train and validate", f"{pair_count} pair(s) are chosen",
                             "add a second pair (the last one validates), or tick Split for one volume")
        if not 0.0 <= self.min_dice <= 1.0:
            raise InputError("The minimum validation Dice is invalid", f"it is {self.min_dice:g}",
                             "give a value between 0 and 1")
        config = self.config()
        return {"model_id": self.model_id, "config": {**config.__dict__}, "split": self.split,
                "base_model": self.base_model or None, "min_dice": self.min_dice, "resume": self.resume}

    def problem(self, pair_count: int) -> Optional[str]:
        """Why the section cannot start as it is (one sentence), or None: what a panel shows by its button."""
        try:
            self.params(pair_count)
        except InputError as error:
            return error.message
        return None


class ScenePair(NamedTuple):
    """A training pair in the scene: a volume and the vessel segment drawn on it."""

    volume: Any  # vtkMRMLScalarVolumeNode
    segmentation: Any  # vtkMRMLSegmentationNode
    segment_id: str

    def describe(self) -> str:
        segment = self.segmentation.GetSegmentation().GetSegment(self.segment_id) if self.segmentation else None
        return f"{self.volume.GetName() if self.volume else '?'} / {segment.GetName() if segment else self.segment_id}"


@dataclass(frozen=True)
class FineTuneResult:
    """What a finished training job says: the new model's id, its validation Dice, the run folder."""

    model_id: str
    validation_dice: float
    steps: int
    run_dir: str
    curve_png: str
    summary: str


def base_model_choices() -> list[tuple[str, str]]:
    """The models a fine-tune may start from, as (value, title): from scratch, then each installed
    TorchScript vessel model (the kind SegForge trains)."""
    from segforge.vessel.mask_step import installed_vessel_models

    return [(FROM_SCRATCH, "None: train from scratch")] + [
        (entry.id, entry.id) for entry in installed_vessel_models() if entry.framework == "torchscript"]


def scene_inputs(pairs: Sequence[ScenePair]) -> dict[str, Any]:
    """The pairs as the worker's inputs: each volume, and its segment as a mask on the volume's
    grid (resampled there if the segment was drawn on another), so every pair shares one grid."""
    from segforge.mrml.segments import mask_from_segment
    from segforge.mrml.volumes import image_from_volume_node

    inputs: dict[str, Any] = {}
    for number, pair in enumerate(pairs):
        if pair.volume is None or pair.segmentation is None or not pair.segment_id:
            raise InputError(f"Training pair {number + 1} is incomplete", "it needs a volume and a vessel segment",
                             "choose both for every pair")
        mask = mask_from_segment(pair.segmentation, pair.segment_id, pair.volume)
        if not mask.array.any():
            raise InputError(f"The label of pair {number + 1} ({pair.describe()}) is empty",
                             "the segment has no voxel inside the volume",
                             "choose the segment drawn on that volume, or leave the pair out")
        inputs[f"image_{number}"] = image_from_volume_node(pair.volume)
        inputs[f"label_{number}"] = mask
    return inputs


def start_fine_tune(worker: WorkerClient, pairs: Sequence[ScenePair], form: FineTuneForm) -> ModuleJob:
    """Send the scene's pairs to the worker to train (or fine-tune from ``form.base_model``); the
    running job at once. ``job.finish()`` returns a :class:`FineTuneResult`; by then the model is
    installed and in :func:`.form.model_choices`. Nothing in the scene changes."""
    params = form.params(len(pairs))
    remote = worker.submit(TASK, scene_inputs(pairs), params)

    def result_of(result: JobResult) -> FineTuneResult:
        meta = result.meta
        return FineTuneResult(str(meta["model_id"]), float(meta["validation_dice"]), int(meta["steps"]),
                              str(meta["run_dir"]), str(meta.get("curve_png", "")), str(meta["summary"]))

    return ModuleJob(remote, result_of)
