"""Train a vessel network on (image, label) pairs: MONAI U-Net, random patches, Dice + CE +
skeleton recall, progress with Cancel, checkpoints and resume.

Why these choices: patches keep memory fixed whatever the volume size; half the patches
are centred on a vessel voxel so that thin vessels are seen at all; skeleton recall (the
label's skeleton precomputed once per pair, :func:`.skeleton.label_skeleton`) is the
connectivity term cheap enough for every step. Arrays go to the network in the runtime's
convention (:mod:`segforge.vessel.deep_model`): voxel axes reordered to lie closest to R,
A, S, (x, y, z) order, z-scored intensities, so the exported model runs unchanged through
``segforge vessel --model ID``.

Cancel: the progress callback may raise :class:`~segforge.errors.Cancelled` (the worker's
way) and Ctrl-C raises KeyboardInterrupt; either way the last checkpoint is on disk (resume
from it with ``resume=True``) and no model is exported. Export is :mod:`.export`'s job.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import Cancelled, InputError
from ..image import Image
from ..orientation import network_axes, to_network_axes
from ..output_set import replace_file
from ..progress import ProgressCallback, no_progress
from .config import TrainingConfig
from .label_checks import MIN_VALIDATION_VOXELS, refuse_blob
from .losses import dice_ce_loss, skeleton_recall_loss
from .skeleton import label_skeleton

CHECKPOINT = "checkpoint.pt"
#: A checkpoint file starts with this line and the SHA-256 of the rest (torch's own file).
_CHECKPOINT_HEADER = b"SEGFORGE-CHECKPOINT 1 sha256 "
_CHECKPOINT_KEYS = ("config", "data", "network", "optimiser", "rng", "step", "record")
_DIVERGED_TODO = "lower the learning rate, or check the images for extreme values"

log = logging.getLogger(__name__)


@dataclass
class Pair:
    """One (image, label) pair in the network's convention, with the label's skeleton."""

    image: np.ndarray  # float32 (x, y, z), z-scored
    label: np.ndarray  # uint8 (x, y, z)
    skeleton: np.ndarray  # uint8 (x, y, z)
    vessel_voxels: np.ndarray = field(repr=False)  # (n, 3) indices of label voxels


@dataclass
class TrainingRecord:
    """What happened: the config, losses per step, validation Dice per check, time."""

    config: dict
    losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    finished: bool = False
    initial_weights: Optional[str] = None  # the model file fine-tuning started from, and its SHA-256

    @property
    def final_dice(self) -> float:
        return self.validation[-1][1] if self.validation else float("nan")


class OutOfMemory(InputError):
    """A training step or validation did not fit in memory (RAM or GPU)."""


_OUT_OF_MEMORY_SIGNS = ("out of memory", "can't allocate memory", "Failed to allocate", "bad_alloc",
                        "Unable to allocate", "DefaultCPUAllocator")


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's and numpy's ways of saying an allocation failed (CPU or GPU)."""
    if isinstance(error, MemoryError) or "OutOfMemory" in type(error).__name__:
        return True
    text = str(error)
    return any(sign in text for sign in _OUT_OF_MEMORY_SIGNS)


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


def grid_difference(image: Image, label: Image) -> str:
    """What differs between two grids, in millimetres and degrees: a label drawn on another grid
    is often only shifted or turned, with the same size and spacing, and saying so shows where
    to look."""
    differences = []
    if image.array.shape != label.array.shape:
        differences.append(f"size {image.array.shape} against {label.array.shape} voxels")
    if not np.allclose(image.spacing, label.spacing, rtol=0, atol=1e-4):
        differences.append(f"spacing {_mm(image.spacing)} against {_mm(label.spacing)} mm")
    shift = float(np.linalg.norm(np.subtract(label.origin_lps, image.origin_lps)))
    if shift > 1e-4:
        differences.append(f"origin shifted by {shift:.3g} mm")
    cosines = np.clip((np.asarray(image.direction_lps) * np.asarray(label.direction_lps)).sum(axis=0), -1, 1)
    turn = float(np.degrees(np.arccos(cosines)).max())
    if turn > 1e-3:
        differences.append(f"axes turned by up to {turn:.3g} degrees")
    return "; ".join(differences) or "its voxel centres lie apart by more than 0.0001 mm"


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def prepare_pair(image: Image, label: Image, name: str = "pair", check_shape: bool = True) -> Pair:
    """Check a pair and bring it into the network's convention (see module docstring).

    ``check_shape``: refuse a blob-shaped label (:func:`refuse_blob`); off for the halves of a
    split volume, whose whole label was checked (a vessel cut at the border of a half is short).
    """
    if not image.same_grid(label):
        raise InputError(f"The label of {name} is not on its image's grid", grid_difference(image, label),
                         "resample the label onto the image (or export it from the same scene)")
    mask = np.asarray(label.array) > 0
    if not mask.any():
        raise InputError(f"The label of {name} is empty", "it has no vessel voxel",
                         "give a label with the vessels drawn, or leave the pair out")
    if check_shape:
        refuse_blob(mask, image.spacing[::-1], name)
    values = np.asarray(image.array, np.float32)
    if not np.isfinite(values).all():
        raise InputError(f"The image of {name} has non-finite voxels", "NaN or infinity in the volume",
                         "fix or crop the volume first")
    axes = network_axes(image.direction_lps)
    x = np.ascontiguousarray(to_network_axes(values, axes))
    x = (x - x.mean()) / (x.std() + 1e-6)
    y = np.ascontiguousarray(to_network_axes(mask, axes)).astype(np.uint8)
    skeleton = label_skeleton(torch.from_numpy(y)[None, None].float())[0, 0].numpy().astype(np.uint8)
    return Pair(x.astype(np.float32), y, skeleton, np.argwhere(y > 0))


def split_in_halves(image: Image, label: Image) -> tuple[tuple[Image, Image], tuple[Image, Image]]:
    """One labelled volume as two pairs: its halves across the longest voxel axis (by extent in mm).

    Why: fine-tuning on one volume still needs data the network has not seen to validate on;
    two halves of one scan share its contrast and noise, which is what is measured.
    Raises InputError where a half would hold no vessel.
    """
    if not image.same_grid(label):
        raise InputError("The label is not on its image's grid", grid_difference(image, label),
                         "resample the label onto the image")
    extent = [n * s for n, s in zip(image.array.shape, image.spacing[::-1])]
    axis = int(np.argmax(extent))
    middle = image.array.shape[axis] // 2
    halves = []
    for part in (slice(0, middle), slice(middle, None)):
        box = tuple(part if a == axis else slice(None) for a in range(3))
        halves.append((image.crop(box), label.crop(box)))
    for number, (_, half) in enumerate(halves, start=1):
        if not np.asarray(half.array).any():
            raise InputError(f"Half {number} of the volume has no vessel", f"it was cut across array axis {axis}",
                             "label vessels in both halves, or give two labelled volumes")
    return halves[0], halves[1]


def build_network(config: TrainingConfig) -> torch.nn.Module:
    """MONAI's U-Net, one input channel, one output channel (vessel logits)."""
    from monai.networks.nets import UNet
    return UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=tuple(config.channels),
                strides=(2,) * (len(config.channels) - 1), num_res_units=1)


def _patch(pair: Pair, size: Sequence[int], rng: np.random.Generator, on_vessel: bool) -> tuple[np.ndarray, ...]:
    """A patch of image, label and skeleton (zero-padded where it leaves the volume)."""
    shape = np.asarray(pair.image.shape)
    size = np.asarray(size)
    if on_vessel:
        centre = pair.vessel_voxels[rng.integers(len(pair.vessel_voxels))]
    else:
        centre = rng.integers(0, shape)
    start = centre - size // 2
    out = []
    for array in (pair.image, pair.label, pair.skeleton):
        patch = np.zeros(tuple(size), array.dtype)
        low = np.maximum(start, 0)
        high = np.minimum(start + size, shape)
        patch[tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start))] = \
            array[tuple(slice(a, b) for a, b in zip(low, high))]
        out.append(patch)
    return tuple(out)


def _batch(pairs: Sequence[Pair], config: TrainingConfig, rng: np.random.Generator,
           device: torch.device) -> tuple[torch.Tensor, ...]:
    patches = [_patch(pairs[rng.integers(len(pairs))], config.patch_size, rng,
                      rng.random() < config.vessel_patch_fraction) for _ in range(config.batch_size)]
    return tuple(torch.from_numpy(np.stack([p[n] for p in patches])[:, None]).to(device, torch.float32)
                 for n in range(3))


def validation_dice(network: torch.nn.Module, pairs: Sequence[Pair], config: TrainingConfig,
                    progress: Optional[ProgressCallback] = None, fraction: float = 0.0) -> float:
    """Dice of the thresholded prediction on whole validation volumes (sliding windows).

    ``progress`` hears ``fraction`` before every window, so a Cancel raised from it lands
    within one window even on a large validation volume.
    """
    from monai.inferers import sliding_window_inference
    device = torch.device(config.device)
    report = progress or no_progress

    def predict(window: torch.Tensor) -> torch.Tensor:
        report(fraction, "Validating")
        return network(window)

    network.eval()
    overlap = total = 0.0
    with torch.no_grad():
        for pair in pairs:
            x = torch.from_numpy(pair.image)[None, None].to(device)
            logits = sliding_window_inference(x, tuple(config.patch_size), 2, predict, overlap=0.25, mode="gaussian")
            if not bool(torch.isfinite(logits).all()):  # NaN > 0 is False: it would pass as background
                raise InputError("Training diverged", "the network's output on the validation data is not a number",
                                 _DIVERGED_TODO)
            predicted = (logits[0, 0] > 0).cpu().numpy()
            truth = pair.label > 0
            overlap += 2 * float((predicted & truth).sum())
            total += float(predicted.sum() + truth.sum())
    network.train()
    return overlap / total if total else 1.0


def load_initial_weights(network: torch.nn.Module, path: Path, device: torch.device) -> str:
    """Start from a trained model file (TorchScript, as :mod:`.export` writes it): fine-tuning.
    Returns a description for the record (path and SHA-256)."""
    from ..output_set import file_sha256

    try:
        weights = torch.jit.load(str(path), map_location=device).state_dict()
    except (OSError, RuntimeError, ValueError) as error:
        raise InputError(f"The model to start from cannot be read: {path}", str(error).splitlines()[0],
                         "give a model.pt written by segforge train vessel") from error
    own = network.state_dict()
    for key in sorted(own.keys() | weights.keys()):  # the first difference, not torch's page of them
        theirs = tuple(weights[key].shape) if key in weights else "nothing"
        ours = tuple(own[key].shape) if key in own else "nothing"
        if theirs != ours:
            raise InputError("The model to start from does not match the network to train",
                             f"{key} is {theirs} in the model, {ours} in the network to train",
                             "give the same --channels as the model was trained with (its training.json names them)")
    network.load_state_dict(weights)
    return f"{path} (sha256 {file_sha256(Path(path))})"


def check_finite_weights(network: torch.nn.Module, when: str) -> None:
    """InputError "Training diverged" unless every weight is a finite number: a step can blow the
    weights up after its loss was measured, and such a network must be neither saved nor exported."""
    if not all(bool(torch.isfinite(value).all()) for value in network.state_dict().values()):
        raise InputError("Training diverged", f"the network's weights stopped being numbers {when}", _DIVERGED_TODO)


def check_enough_data(train_pairs: Sequence[Pair], validation_pairs: Sequence[Pair]) -> None:
    """InputError unless there is a pair to train on and enough vessel to validate on (before any work)."""
    if not train_pairs or not validation_pairs:
        raise InputError("Too little data to train and validate",
                         f"{len(train_pairs)} training and {len(validation_pairs)} validation pairs",
                         "give at least one pair for each (two labelled volumes, or one split in two)")
    held_out = sum(len(pair.vessel_voxels) for pair in validation_pairs)
    if held_out < MIN_VALIDATION_VOXELS:
        raise InputError("Too little data to validate", f"the validation data holds {held_out} vessel voxels, "
                         f"fewer than {MIN_VALIDATION_VOXELS}", "validate on a pair (or half) with more vessels")


def data_fingerprint(train_pairs: Sequence[Pair], validation_pairs: Sequence[Pair]) -> str:
    """SHA-256 of the pairs as the network sees them, in order: a checkpoint resumes only on the
    data it was trained and validated on, or its record would mix two experiments."""
    digest = hashlib.sha256()
    for role, pairs in (("train", train_pairs), ("validation", validation_pairs)):
        for pair in pairs:
            digest.update(f"{role} {pair.image.shape}".encode())
            digest.update(np.ascontiguousarray(pair.image))
            digest.update(np.ascontiguousarray(pair.label))
    return digest.hexdigest()


def write_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` with its SHA-256 in the file's first line, whole or not at all
    (:func:`~segforge.output_set.replace_file`): one file, so the checksum and the checkpoint can
    never be of two different saves."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    body = buffer.getvalue()
    replace_file(path, lambda partial: partial.write_bytes(
        _CHECKPOINT_HEADER + hashlib.sha256(body).hexdigest().encode() + b"\n" + body))


def _unusable(path: Path, why: str) -> InputError:
    return InputError(f"The checkpoint {path} cannot be resumed", why,
                      "start afresh without --resume, or in another folder")


def read_checkpoint(path: Path, device: Union[str, torch.device] = "cpu") -> dict:
    """The state :func:`write_checkpoint` wrote, verified: its checksum, its keys, finite weights.
    InputError naming the file for an empty, truncated, changed or foreign file. Loaded with
    ``weights_only``: a checkpoint is tensors, numbers and strings, so no code runs from it."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise _unusable(path, f"it cannot be read ({error.strerror or error})") from error
    header, _, body = data.partition(b"\n")
    if not header.startswith(_CHECKPOINT_HEADER):
        raise _unusable(path, "the file is empty" if not data else "it is not a SegForge checkpoint")
    if hashlib.sha256(body).hexdigest().encode() != header[len(_CHECKPOINT_HEADER):]:
        raise _unusable(path, "it is damaged: its SHA-256 does not match (the file was cut short or changed)")
    try:
        state = torch.load(io.BytesIO(body), map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds on a bad file; all mean "damaged"
        raise _unusable(path, f"it is damaged ({_first_line(error)})") from error
    if not isinstance(state, dict) or any(key not in state for key in _CHECKPOINT_KEYS):
        raise _unusable(path, "it is not a SegForge checkpoint of this version")
    moments = [value for values in state["optimiser"].get("state", {}).values() for value in values.values()]
    if not all(bool(torch.isfinite(t).all()) for t in [*state["network"].values(), *moments] if torch.is_tensor(t)):
        raise _unusable(path, "its weights are not all finite numbers")
    return state


def train(train_pairs: Sequence[Pair], validation_pairs: Sequence[Pair], config: TrainingConfig, workdir: Path,
          progress: Optional[ProgressCallback] = None, resume: bool = False,
          initial_weights: Optional[Path] = None,
          on_checkpoint: Optional[Callable[[TrainingRecord], None]] = None) -> tuple[torch.nn.Module, TrainingRecord]:
    """Train from scratch, from ``initial_weights`` (a trained model file: fine-tuning), or on
    from ``workdir``'s checkpoint with ``resume``; the network and its record.

    Raises Cancelled on Cancel or Ctrl-C (the checkpoint is saved first); InputError when
    there is no pair to train or validate on, when a checkpoint to resume is damaged or was made
    with other settings, on other data or from another base model, or when the loss, the
    weights or the validation output stop being numbers (a run that diverged is never saved
    or exported); with ``resume`` and no checkpoint the run starts as asked (and says so);
    OutOfMemory (the last checkpoint kept as it was) when a step or a
    validation does not fit in memory. ``on_checkpoint`` hears the record after
    every checkpoint (the run folder's training curve is written from it).
    """
    report = progress or no_progress
    check_enough_data(train_pairs, validation_pairs)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    network = build_network(config).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    record = TrainingRecord(asdict(config))
    rng = np.random.default_rng(config.seed)
    step = 0
    checkpoint = workdir / CHECKPOINT
    data = data_fingerprint(train_pairs, validation_pairs)
    if resume and checkpoint.is_file():
        step, record = _resume(checkpoint, config, data, network, optimiser, rng, initial_weights, device)
    else:
        if resume:  # nothing to go on from: start as asked, and say so
            start = f"from {initial_weights}" if initial_weights is not None else "from scratch"
            log.warning("No checkpoint in %s to resume: training starts %s", workdir, start)
            report(0.0, f"No checkpoint to resume: training starts {start}")
        if initial_weights is not None:
            record.initial_weights = load_initial_weights(network, initial_weights, device)
    started = time.perf_counter() - record.seconds
    measured = False  # validated in this process at the last step: a resumed run always measures again

    def save() -> None:
        check_finite_weights(network, f"at step {step}")  # the last good checkpoint is kept
        record.seconds = time.perf_counter() - started
        write_checkpoint(checkpoint, {"config": asdict(config), "data": data, "network": network.state_dict(),
                                      "optimiser": optimiser.state_dict(), "rng": rng.bit_generator.state,
                                      "step": step, "record": asdict(record)})
        if on_checkpoint is not None:
            on_checkpoint(record)

    network.train()
    shown = f"Training: step {step + 1}/{config.steps} starting"
    try:
        while step < config.steps:
            image, label, skeleton = _batch(train_pairs, config, rng, device)
            logits = network(image)
            loss = dice_ce_loss(logits, label)
            if config.skeleton_recall_weight and bool(skeleton.any()):
                loss = loss + config.skeleton_recall_weight * skeleton_recall_loss(torch.sigmoid(logits), skeleton)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise InputError("Training diverged", f"the loss became {value} at step {step + 1}", _DIVERGED_TODO)
            report(step / config.steps, shown)  # Cancel lands here too: half a step sooner, nothing changed yet
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            record.losses.append(value)
            if step % config.validate_every == 0 or step == config.steps:
                record.validation.append((step, validation_dice(network, validation_pairs, config, report,
                                                                step / config.steps)))
                measured = step == config.steps
            if step % config.checkpoint_every == 0 or step == config.steps:
                save()
            elapsed = time.perf_counter() - started
            eta = elapsed / max(step, 1) * (config.steps - step)
            dice = f", validation Dice {record.final_dice:.3f}" if record.validation else ""
            shown = f"Training: step {step}/{config.steps}, loss {value:.3f}{dice}, about {eta:.0f} s left"
            report(step / config.steps, shown)
        if not measured:  # resumed a finished run (or one cancelled in its last validation): measure on this data
            record.validation = [entry for entry in record.validation if entry[0] != step]
            record.validation.append((step, validation_dice(network, validation_pairs, config, report, 1.0)))
    except (KeyboardInterrupt, Cancelled) as stop:
        save()
        raise Cancelled("Training was cancelled", f"at step {step} of {config.steps}; the checkpoint is in "
                        f"{checkpoint}", "run again with resume to go on from there") from stop
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        optimiser.zero_grad(set_to_none=True)  # free what the failed step held; its state is not saved
        raise OutOfMemory("Training ran out of memory", f"at step {step + 1} of {config.steps} "
                          f"(batch {config.batch_size} of {'x'.join(map(str, config.patch_size))} patches on "
                          f"{config.device}): {_first_line(error)}",
                          "lower the batch size or the patch size (or use a device with more memory), then start "
                          "afresh (the last checkpoint is kept)") from error
    record.seconds = time.perf_counter() - started
    record.finished = True
    return network, record


def _resume(checkpoint: Path, config: TrainingConfig, data: str, network: torch.nn.Module,
            optimiser: torch.optim.Optimizer, rng: np.random.Generator, initial_weights: Optional[Path],
            device: torch.device) -> tuple[int, TrainingRecord]:
    """Load ``checkpoint`` into the network, optimiser and generator after checking it was made
    with these settings, on this data and from this starting model; its step and record."""
    from ..output_set import file_sha256

    state = read_checkpoint(checkpoint, device)
    if state["config"] != asdict(config):
        theirs = state["config"] if isinstance(state["config"], dict) else {}
        changed = [key for key, value in asdict(config).items() if theirs.get(key) != value]
        raise InputError("The checkpoint was made with other settings",
                         f"{checkpoint} differs in " + ", ".join(f"{key} ({theirs.get(key)!r} there, "
                                                                 f"{getattr(config, key)!r} now)" for key in changed),
                         "resume with the same settings, or start afresh without --resume or in another folder")
    if state["data"] != data:
        raise InputError("The checkpoint was made on other data", f"{checkpoint} was trained and validated on other "
                         "images or labels (or in another order)",
                         "resume with the same pairs, or start afresh without --resume or in another folder")
    try:
        record = TrainingRecord(**state["record"])
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["rng"]
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        why = f"it is not a SegForge checkpoint of this version ({_first_line(error)})"
        raise _unusable(checkpoint, why) from error
    started_from = record.initial_weights or ""
    if initial_weights is not None and f"sha256 {file_sha256(Path(initial_weights))}" not in started_from:
        raise InputError("The checkpoint did not start from the model given", f"{checkpoint} started from "
                         f"{record.initial_weights or 'scratch'}, not from {initial_weights}",
                         "resume without naming another base model, or start afresh in another folder")
    return int(state["step"]), record
