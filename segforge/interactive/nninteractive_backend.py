"""The deep interactive backend: nnInteractive model folders, run through the nnInteractive package.

Why nnInteractive (and not SAM-Med3D): it is the published promptable 3D model with every
prompt SegForge has (points, boxes, scribbles, and an initial mask to refine), it runs on the
native voxel grid of any size (no fixed 128^3 input to resample into and out of), and its
model folders are nnU-Net folders (``plans.json``, ``dataset.json``, ``fold_0/
checkpoint_final.pth``) built on ``nnunetv2``, which SegForge already tests against. The
package (``pip install nninteractive``) is its reference implementation; this module only
adapts SegForge's session to it, so its output is the package's output (the tests check that
voxel for voxel).

Model lookup, first found wins:

1. ``$SEGFORGE_NNINTERACTIVE_MODEL``: a model folder (or the ``model_folder`` argument).
2. SegForge's model cache, when the catalog has an entry ``nninteractive-v1.0`` (an nnunetv2
   entry whose ``nnunet.path`` is the model folder inside the installed archive). The shipped
   catalog has none yet: the published folder is several files on Hugging Face and no archive,
   which a catalog entry (one file) cannot fetch; a site can add an entry for its own archive
   through ``$SEGFORGE_CATALOG``.
3. nnInteractive's own download folder (``$NNINTERACTIVE_MODEL_DIR`` or ``~/.nninteractive``,
   ``models/nnInteractive_v1.0``), which ``nninteractive-download-model nnInteractive_v1.0``
   fills; so weights the package already downloaded are used as they are.

None of them: a :class:`ModelError` that says how to get the weights. The published weights
are CC BY-NC-SA 4.0 (non-commercial); the package's code is Apache-2.0.

Geometry: the package works on the voxel array as SimpleITK reads it, ``[k, j, i]`` with a
channel in front (its "x, y, z" is the array's axes 0, 1, 2), and never resamples: the
model was trained on native grids and crops (192^3 patches, zooming out up to 4x and refining)
by itself. So the image array goes in as it is and prompts keep their k, j, i indices; an
oblique or anisotropic volume needs no transform, and the mask comes back on the image grid.
Boxes: the v1.0 checkpoint takes 2D boxes only (drawn on a slice); a 3D box is given to it
as the 2D box on its middle slice across its thinnest axis (ties: k). A checkpoint that
declares 3D boxes gets the box as it is. Scribbles are the painted voxels, as painted.

State: the package keeps the image (normalised), the interaction channels and the previous
mask between clicks, so a click costs one crop and a few network passes, not a new image.
It keeps that state in host memory by design (crops go to the GPU for each pass, so the
model fits 8-10 GB GPUs); the network stays on the GPU. The backend feeds each new prompt
alone when the history it gets extends the one it fed and the mask it gets is the one it
returned. After a one-step undo it uses the package's own undo; after anything else (several
undos, a reset, a worker that lost the session) it resets the package and replays the prompts
with a prediction after each, because nnInteractive's result depends on the order of its
predictions (each one is the next one's previous mask): a replay gives exactly the mask a
fresh session fed the same prompts gives, where seeding the package with the current mask
would lose the earlier clicks (their channels) and change the next result. A mask the session
started with (before its first prompt) is given to the package as its initial segmentation.

Cancel: the package runs each interaction in one call. It runs here on a helper thread
while the caller's thread reports progress every 0.1 s, so Cancel returns within that; the
helper is stopped at its next network pass and the package rolls the interaction back (its
calls are atomic), so the backend stays usable and the next click waits for that to finish.

Device: "auto" takes the GPU when it has the memory (:func:`segforge.runtime.device.choose_device`)
else the CPU; on the CPU each click takes seconds (the published network is large), which is
logged and kept in :attr:`NnInteractiveBackend.warning` for front ends to show.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import Cancelled, InputError, ModelError, SegForgeError
from ..image import Image, foreground_box
from ..progress import ProgressCallback
from .backends import MaskPatch
from .prompts import VoxelBox, VoxelPoint, VoxelPrompt, VoxelScribble

log = logging.getLogger(__name__)

NAME = "nninteractive"
MODEL_ENV = "SEGFORGE_NNINTERACTIVE_MODEL"
CATALOG_ID = "nninteractive-v1.0"
PACKAGE_MODEL = "nnInteractive_v1.0"
"""The published model's folder name (on Hugging Face and in nnInteractive's own folder)."""
MIN_GPU_MEMORY_GB = 10.0
"""GPU memory the published model needs (nnInteractive's recommendation), when no catalog entry says."""
CHECKPOINT = "checkpoint_final.pth"
METADATA_FILES = ("inference_info.json", "inference_session_class.json")
CPU_WARNING = ("nnInteractive runs on the CPU here: each interaction takes seconds (tens of seconds for a "
               "large lesion); a CUDA GPU with about 10 GB free makes it well under a second")
_POLL_S = 0.1
_STOP_WAIT_S = 0.5


class _Stop(Exception):
    """Raised inside the package's network pass to stop a cancelled step."""


# -- the package --------------------------------------------------------------------------
def _package() -> Any:
    """nnInteractive's inference session class; an error saying how to install it when absent."""
    try:
        from nnInteractive.inference import inference_session
    except ImportError as error:
        raise ModelError("The nnInteractive backend needs the nninteractive package",
                         f"it cannot be imported in this Python ({error})",
                         "install it with `pip install nninteractive` (or `pip install segforge[nninteractive]`), "
                         "or choose the random-walker backend, which needs no model") from error
    _quiet(inference_session)
    return inference_session.nnInteractiveInferenceSession


def _quiet(module: Any) -> None:
    """Send the package's print() calls to this module's debug log.

    A local worker's stdout is a pipe nobody reads after its ready line: a few thousand
    clicks of the package's chatter would fill it and block the worker.
    """
    import nnInteractive.interaction.point as point

    def debug(*args: Any, **_kwargs: Any) -> None:
        log.debug("nnInteractive: %s", " ".join(str(a) for a in args))

    for each in (module, point):
        each.print = debug  # module globals shadow the builtin


# -- the model folder ----------------------------------------------------------------------
def folder_problem(folder: Path) -> Optional[str]:
    """Why ``folder`` is not an nnInteractive model folder (None if it is one)."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    missing = [name for name in ("plans.json", "dataset.json") if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in METADATA_FILES):
        missing.append(" or ".join(METADATA_FILES))
    if not list(folder.glob(f"fold_*/{CHECKPOINT}")):
        missing.append(f"fold_*/{CHECKPOINT}")
    return f"{folder} lacks {', '.join(missing)}" if missing else None


def _package_download_folder() -> Path:
    """Where ``nninteractive-download-model`` puts the published model (its model_management rules)."""
    root = os.environ.get("NNINTERACTIVE_MODEL_DIR", "").strip()
    return (Path(root).expanduser() if root else Path.home() / ".nninteractive") / "models" / PACKAGE_MODEL


def _catalog_entry() -> Any:
    from ..catalog import load_catalog

    try:
        catalog = load_catalog()
    except ModelError as error:
        log.warning("Model catalog unreadable, looking for nnInteractive elsewhere: %s", error)
        return None
    return catalog.get(CATALOG_ID) if CATALOG_ID in catalog else None


def find_model_folder(model_folder: Optional[os.PathLike | str] = None) -> tuple[Path, Optional[int]]:
    """The model folder to load and its fold (None: the folder's only fold), found as the
    module docstring says; ModelError with what to do when there is none."""
    explicit = model_folder or os.environ.get(MODEL_ENV, "").strip()
    if explicit:
        folder = Path(explicit).expanduser()
        problem = folder_problem(folder)
        if problem:
            named = "the model folder given" if model_folder else f"{MODEL_ENV}"
            raise ModelError("The nnInteractive model folder cannot be used",
                             f"{named} points at {folder}, but {problem.replace(str(folder), 'it')}",
                             "point it at a model folder holding plans.json, dataset.json, "
                             "inference_session_class.json and fold_0/checkpoint_final.pth, "
                             f"or unset {MODEL_ENV} to use the downloaded model")
        return folder, None
    searched = []
    entry = _catalog_entry()
    if entry is not None:
        from ..catalog import cache

        found = cache.nnunet_model_folder(entry)
        if found is not None and folder_problem(found) is None:
            folds = entry.nnunet.folds if entry.nnunet is not None else ()
            return found, (int(folds[0]) if folds and folds[0] != "all" else None)
        searched.append(str(cache.model_dir(entry.id)))
    theirs = _package_download_folder()
    if folder_problem(theirs) is None:
        return theirs, None
    searched.append(str(theirs))
    ways = [f"`segforge models download {CATALOG_ID}`"] if entry is not None else []
    ways.append(f"nnInteractive's own `nninteractive-download-model {PACKAGE_MODEL}` (it comes with the "
                "nninteractive package)")
    raise ModelError("The nnInteractive model is not installed",
                     f"{MODEL_ENV} is not set and there is no model folder in {' or '.join(searched)}",
                     f"download it (about 400 MB from Hugging Face; the weights are CC BY-NC-SA 4.0, for "
                     f"non-commercial use) with {' or with '.join(ways)}, or set {MODEL_ENV} to a model "
                     "folder (plans.json, dataset.json, inference_session_class.json, fold_0/checkpoint_final.pth)")


def min_gpu_memory_gb() -> float:
    entry = _catalog_entry()
    return float(entry.min_gpu_memory_gb) if entry is not None else MIN_GPU_MEMORY_GB


# -- loading, shared between sessions --------------------------------------------------------
def _torch_device(requested: str) -> tuple[str, Optional[str]]:
    from ..runtime.device import choose_device

    if requested not in ("auto", "cpu") and not requested.startswith("cuda"):
        raise InputError(f"Unknown device {requested!r}", "devices are auto, cpu and cuda (or cuda:N)",
                         "choose auto, cpu or cuda")
    device, warning = choose_device(requested, min_gpu_memory_gb())
    if device == "cpu":
        warning = f"{warning}. {CPU_WARNING}" if warning else CPU_WARNING
    return device, warning


def _load(folder: Path, fold: Optional[int], device: str) -> dict:
    """The package's loaded model (network on ``device``, plans, metadata), read once per worker."""
    import torch

    from ..runtime.model_cache import ModelCache, shared_models

    checkpoint = next(iter(sorted(folder.glob(f"fold_{fold if fold is not None else '*'}/{CHECKPOINT}"))), None)
    if checkpoint is None:
        raise ModelError("The nnInteractive model folder has no checkpoint for the fold asked for",
                         f"{folder} has no fold_{fold}/{CHECKPOINT}", "download the model again")
    session_class = _package()

    def load() -> dict:
        loader = session_class(device=torch.device(device), torch_n_threads=torch.get_num_threads(),
                               verbose=False)
        try:
            try:
                artifacts = loader._load_model_artifacts_from_disk(str(folder), fold, CHECKPOINT)
            except (OSError, KeyError, RuntimeError, ValueError) as error:
                raise ModelError(f"Could not load the nnInteractive model in {folder}",
                                 str(error).splitlines()[0] if str(error) else type(error).__name__,
                                 "download the model again; it may be incomplete, or made for a newer "
                                 "nninteractive (`pip install -U nninteractive`)") from error
            if device != "cpu":  # the first pass on a GPU pays cuDNN's tuning: now, not at the first click
                loader.initialize_from_loaded_artifacts(artifacts)
                loader.warmup()
        finally:
            loader.executor.shutdown(wait=False)
        return artifacts

    key = (*ModelCache.file_key(checkpoint), str(folder.resolve()), "nninteractive", device)
    artifacts, _cached = shared_models.get(key, load)
    return artifacts


class _CancellableNetwork:
    """The shared network, behind a check that stops a cancelled step at its next pass."""

    def __init__(self, network: Any, stop: threading.Event) -> None:
        self.network = network
        self.stop = stop

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.stop.is_set():
            raise _Stop()
        return self.network(*args, **kwargs)


def _same(a: VoxelPrompt, b: VoxelPrompt) -> bool:
    if type(a) is not type(b) or a.positive != b.positive:
        return False
    if isinstance(a, VoxelScribble):
        return np.array_equal(a.kji, b.kji)  # type: ignore[union-attr]
    return a == b


def _same_history(a: Sequence[VoxelPrompt], b: Sequence[VoxelPrompt]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


def package_box(prompt: VoxelBox, boxes_3d: bool) -> list[list[int]]:
    """The box as the package takes it ([[lo, hi)] per array axis); a 3D box flattened to its
    middle slice across its thinnest axis when the checkpoint takes 2D boxes only."""
    bounds = [[int(lo), int(hi)] for lo, hi in zip(prompt.lo_kji, prompt.hi_kji)]
    sizes = [hi - lo for lo, hi in bounds]
    if boxes_3d or min(sizes) == 1:
        return bounds
    axis = int(np.argmin(sizes))  # the first of equal sizes: k before j before i
    middle = (bounds[axis][0] + bounds[axis][1] - 1) // 2
    bounds[axis] = [middle, middle + 1]
    return bounds


def scribble_patch(prompt: VoxelScribble) -> tuple[np.ndarray, list[list[int]]]:
    """The painted voxels as a mask over their bounding box, and that box."""
    kji = np.asarray(prompt.kji, dtype=np.int64).reshape(-1, 3)
    lo, hi = kji.min(axis=0), kji.max(axis=0) + 1
    mask = np.zeros(tuple(hi - lo), dtype=np.uint8)
    mask[tuple((kji - lo).T)] = 1
    return mask, [[int(a), int(b)] for a, b in zip(lo, hi)]


class NnInteractiveBackend:
    """One session's nnInteractive state: the package's session on this image, on one device."""

    name = NAME

    def __init__(self, image: Image, device: str = "auto",
                 model_folder: Optional[os.PathLike | str] = None) -> None:
        import torch

        self.image = image
        self.model_folder, fold = find_model_folder(model_folder)
        self.device, self.warning = _torch_device(device)
        if self.warning:
            log.warning("%s", self.warning)
        artifacts = _load(self.model_folder, fold, self.device)
        self._stop = threading.Event()
        session = _package()(device=torch.device(self.device), torch_n_threads=torch.get_num_threads(),
                             verbose=False)
        session.initialize_from_loaded_artifacts(artifacts)
        # The package's __del__ shuts its executor down and waits for its thread; run by the
        # garbage collector inside another thread's start-up, that wait deadlocked the test
        # suite once. The executor is idle by then, so not waiting loses nothing.
        session.executor.shutdown = functools.partial(session.executor.shutdown, wait=False)
        session.network = _CancellableNetwork(artifacts["network"], self._stop)
        self.licence: Optional[str] = session.license
        self._session = session
        self._boxes_3d = bool(session.supported_interactions.get("bbox3d", False))
        self._target = np.zeros(image.array.shape, dtype=np.uint8)
        session.set_image(image.array[None])  # normalised on the package's own thread meanwhile
        session.set_target_buffer(self._target)
        self._fed: list[VoxelPrompt] = []
        self._initial: Optional[np.ndarray] = None
        self._undoable = False
        self._helper: Optional[threading.Thread] = None
        self.steps = 0
        """How many interactions the package ran (replays included)."""

    # -- the Backend protocol ---------------------------------------------------------------
    def predict(self, prompts: Sequence[VoxelPrompt], current: np.ndarray,
                progress: ProgressCallback) -> MaskPatch:
        if not prompts:
            raise InputError("No prompt to segment from", "the interaction has no prompt",
                             "click, draw a box or paint on the lesion")
        if current.shape != self._target.shape:
            raise InputError("The mask does not fit the image", f"it is {current.shape}, the image "
                             f"{self._target.shape}", "start a new session on this image")
        self._finish_cancelled(progress)
        history, newest = list(prompts[:-1]), prompts[-1]
        if _same_history(history, self._fed) and np.array_equal(current, self._target):
            self._run([newest], progress)
        elif self._undoable and _same_history(history, self._fed[:-1]) and self._undo(current):
            self._run([newest], progress)
        else:
            self._replay(history, newest, current, progress)
        box = foreground_box(self._target)
        if box is None:
            return (slice(0, 0),) * 3, np.zeros((0, 0, 0), np.uint8)  # type: ignore[return-value]
        return box, self._target[box].copy()  # type: ignore[return-value]

    # -- state ------------------------------------------------------------------------------
    def _undo(self, current: np.ndarray) -> bool:
        """The package's one-step undo, if it leaves the mask the caller has."""
        undone = bool(self._session.undo())
        self._undoable = False
        if undone:
            self._fed.pop()
            if np.array_equal(current, self._target):
                log.debug("nnInteractive: undid the last interaction")
                return True
        return False

    def _replay(self, history: list[VoxelPrompt], newest: VoxelPrompt, current: np.ndarray,
                progress: ProgressCallback) -> None:
        """Start the package afresh and feed it the whole history, then the newest prompt."""
        if not history:
            self._initial = current.copy() if current.any() else None
        log.info("nnInteractive: replaying %d prompt(s)%s", len(history),
                 " on the initial mask" if self._initial is not None else "")
        self._fed = []
        self._undoable = False
        self._step(self._restart, progress, 0.0, "nnInteractive: starting over")
        self._run([*history, newest], progress)

    def _restart(self) -> None:
        self._session.reset_interactions()
        if self._initial is not None:
            self._session.add_initial_seg_interaction(self._initial, run_prediction=False)

    def _run(self, prompts: Sequence[VoxelPrompt], progress: ProgressCallback) -> None:
        """Feed ``prompts`` one by one (a prediction after each) on the helper thread."""
        for index, prompt in enumerate(prompts):
            what = f"{'positive' if prompt.positive else 'negative'} {_kind(prompt)}"
            message = (f"nnInteractive: {what}" if len(prompts) == 1
                       else f"nnInteractive: prompt {index + 1} of {len(prompts)} ({what})")
            self._step(lambda p=prompt: self._feed(p), progress, index / len(prompts), message)
            self._fed.append(prompt)
            self._undoable = True
            self.steps += 1
        progress(1.0, "nnInteractive: done")

    def _feed(self, prompt: VoxelPrompt) -> None:
        session = self._session
        if isinstance(prompt, VoxelPoint):
            session.add_point_interaction(tuple(int(v) for v in prompt.kji), include_interaction=prompt.positive)
        elif isinstance(prompt, VoxelBox):
            session.add_bbox_interaction(package_box(prompt, self._boxes_3d), include_interaction=prompt.positive)
        elif isinstance(prompt, VoxelScribble):
            mask, bounds = scribble_patch(prompt)
            session.add_scribble_interaction(mask, include_interaction=prompt.positive, interaction_bbox=bounds)
        else:
            raise InputError(f"Unknown prompt {type(prompt).__name__}", "prompts are points, boxes and scribbles")

    # -- the helper thread and Cancel --------------------------------------------------------
    def _step(self, work: Callable[[], None], progress: ProgressCallback, fraction: float, message: str) -> None:
        outcome: dict = {}

        def run() -> None:
            try:
                work()
            except BaseException as error:  # handed to the caller's thread
                outcome["error"] = error

        self._stop.clear()
        helper = threading.Thread(target=run, name="segforge-nninteractive", daemon=True)
        self._helper = helper
        helper.start()
        try:
            while helper.is_alive():
                progress(fraction, message)
                helper.join(_POLL_S)
        except Cancelled:
            self._stop.set()
            self._undoable = False  # the step may finish before it sees the stop
            helper.join(_STOP_WAIT_S)
            raise
        self._helper = None
        error = outcome.get("error")
        if error is not None:
            raise _translated(error) from error

    def _finish_cancelled(self, progress: ProgressCallback) -> None:
        """Wait for a cancelled step still stopping (the package is rolling it back)."""
        helper = self._helper
        while helper is not None and helper.is_alive():
            progress(0.0, "nnInteractive: finishing the cancelled step")
            helper.join(_POLL_S)
        self._helper = None


def _kind(prompt: VoxelPrompt) -> str:
    return {VoxelPoint: "click", VoxelBox: "box", VoxelScribble: "scribble"}.get(type(prompt), "prompt")


def _translated(error: BaseException) -> BaseException:
    """A package failure as an error that says what to do (others unchanged)."""
    if isinstance(error, (SegForgeError, _Stop)):
        return error
    text = str(error)
    if "out of memory" in text.lower():
        return SegForgeError("nnInteractive ran out of GPU memory", text.splitlines()[0],
                             "close other programs using the GPU, or start the session on the CPU device")
    if isinstance(error, ValueError):
        return InputError("nnInteractive refused the prompt", text, "place the prompt inside the image")
    return error


def make(image: Image, device: str) -> NnInteractiveBackend:
    """The ``BACKENDS`` factory: the model found as the module docstring says."""
    return NnInteractiveBackend(image, device)
