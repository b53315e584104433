"""The client's side of an interactive session: the image goes to the worker once, clicks go as prompts.

:class:`RemoteSession` has the API of :class:`~segforge.interactive.session.InteractiveSession`
(the engine's, in-process), so the module Logic, the console and the tests can use either.
It keeps a local copy of the mask, equal to the worker's because every change the worker
sends back (a box, before and after) is applied to it, and the prompts done and undone.
That is all it needs to rebuild the session: when the worker died, or answers
:class:`~segforge.errors.SessionLost` (it dropped the session for newer ones, or a server
restarted), the session is opened again (the image is sent again) and every prompt is
replayed, the undone ones too, then the failed operation is tried once more. The user
loses nothing, not even redo.

One operation at a time: a GUI disables its buttons while an interaction runs.
"""
from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Callable, Optional

import numpy as np

from ..errors import Cancelled, InputError, SegForgeError, SessionLost, WorkerDied, WorkerError
from ..image import Image, require_3d_volume
from ..interactive.backends import DEFAULT_BACKEND
from ..interactive.prompts import Prompt, ScribblePrompt, prompt_to_json
from ..interactive.session import MaskChange, image_key
from ..progress import ProgressCallback, no_progress
from .client import JobResult, JobStatus, RemoteJob, WorkerClient, poll_until_finished
from .jobs import CANCELLED, DONE, FAILED, RUNNING
from .module_job import ModuleJob
from .protocol import payload_size

log = logging.getLogger(__name__)

#: What makes the client rebuild the session on a (fresh) worker and try again once.
_LOST = (SessionLost, WorkerDied)


class RemoteSession:
    """An interactive session whose backend runs in a worker (local or a shared server)."""

    def __init__(self, worker: WorkerClient, image: Image, backend: str = DEFAULT_BACKEND, device: str = "auto",
                 initial: Optional[np.ndarray] = None) -> None:
        """Send the image (and ``initial``, an existing segment to refine) to the worker, once."""
        self.worker = worker
        self.image = require_3d_volume(image)
        self.key = image_key(image)
        self.backend_name = backend
        self.device = device
        self._initial = _checked_initial(initial, image.array.shape)
        self.mask = self._initial_mask()
        self.history: list[Prompt] = []
        self._undone: list[Prompt] = []  # a stack: the last one undone is redone first
        self._undone_before_last: list[Prompt] = []  # what the last interaction cleared (see withdraw_last)
        self.warning: Optional[str] = None
        #: Bytes of image (and initial mask) arrays sent to workers so far, and how many times.
        self.image_bytes_sent = 0
        self.opens = 0
        self._session_id: Optional[str] = None
        self._generation = 0  # the worker generation the session was opened on
        self._open()

    @property
    def can_undo(self) -> bool:
        return bool(self.history)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def redo_count(self) -> int:
        """Prompts that redo would apply again (as the engine's session says it)."""
        return len(self._undone)

    # -- operations ---------------------------------------------------------------------
    def interact(self, prompt: Prompt, progress: Optional[ProgressCallback] = None) -> MaskChange:
        """Apply one prompt and wait for the worker; ``progress`` may raise Cancelled (nothing changes then)."""
        job = _InteractionJob(self, prompt)
        try:
            poll_until_finished(job.poll, job.cancel, progress)
        except Cancelled:
            job.settle()
            raise
        return self._commit("interact", job.result(), prompt, job.replayed)

    def submit_interact(self, prompt: Prompt) -> ModuleJob[MaskChange]:
        """Start one prompt and return at once, for a GUI timer: poll, cancel, then ``finish``
        applies the change to ``mask`` and returns it."""
        job = _InteractionJob(self, prompt)
        finish = lambda result: self._commit("interact", result, prompt, job.replayed)  # noqa: E731
        return ModuleJob(job, finish)  # type: ignore[arg-type] - a RemoteJob in all but name

    def undo(self) -> Optional[MaskChange]:
        """Take back the last prompt (None when there is none); the backend does not run."""
        return self._blocking("interactive.undo") if self.history else None

    def redo(self) -> Optional[MaskChange]:
        """Apply the last undone prompt again (None when there is none); the backend does not run."""
        return self._blocking("interactive.redo") if self._undone else None

    def withdraw_last(self) -> Optional[MaskChange]:
        """Take back the interaction just made as if it never happened (its redo list comes back),
        here and in the worker: for a change the caller could not write into the scene, so the
        session's prompts stay those the segment shows. Call it right after ``interact``."""
        if not self.history:
            return None
        try:
            if self._session_id is not None:
                return self._commit("withdraw", self._run("interactive.withdraw"))
        except _LOST as error:
            log.info("the worker lost the interactive session (%s); rebuilding it without the prompt", error.message)
        except SegForgeError as error:  # any other refusal: its session still holds the prompt, so leave it
            log.warning("the worker could not take the prompt back (%s); rebuilding the session without it",
                        error.message)
            self.close()
        self._record("withdraw", None, True)  # then the worker's session is rebuilt from what is left
        old = self.mask.copy()
        self.mask[...] = self._rebuild()
        return MaskChange.between(old, self.mask)

    def reset(self) -> MaskChange:
        """Forget every prompt: back to the initial mask (empty without one)."""
        try:
            if self._session_id is not None:
                return self._commit("reset", self._run("interactive.reset"))
        except _LOST as error:
            log.info("the worker lost the interactive session (%s); opening it afresh", error.message)
        self._open()  # a fresh session is the reset state: nothing to replay
        old = self.mask.copy()
        self.mask[...] = self._initial_mask()
        self.history.clear()
        self._undone.clear()
        return MaskChange.between(old, self.mask)

    def close(self) -> None:
        """Let the worker free the image; a worker that is gone already is no error."""
        session, self._session_id = self._session_id, None
        gone = self.worker.local and (self.worker.pid is None or self.worker.generation != self._generation)
        if session is not None and not gone:  # never start a fresh local worker just to close
            try:
                self.worker.run("interactive.close", {}, {"session": session})
            except WorkerError as error:
                log.info("closing the interactive session: %s", error.message)

    # -- the worker's session -----------------------------------------------------------
    def _open(self, progress: Optional[ProgressCallback] = None) -> None:
        """Send the image (and the initial mask) and start a session on the worker."""
        self._session_id = None
        inputs: dict[str, Any] = {"image": self.image}
        if self._initial is not None:
            inputs["initial"] = self._initial
        params = {"backend": self.backend_name, "device": self.device, "key": self.key}
        job = self.worker.submit("interactive.open", inputs, params)
        self.image_bytes_sent += payload_size(inputs)
        self.opens += 1
        result = job.wait(progress)
        self._session_id = str(result.meta["session"])
        self._generation = self.worker.generation
        self.warning = result.meta.get("warning")

    def _params(self, extra: Optional[dict[str, Any]] = None, check_state: bool = True) -> dict[str, Any]:
        params = {"session": self._session_id, **(extra or {})}
        if check_state:  # the worker refuses (SessionLost) if its session is not in the state we believe
            params["state"] = [len(self.history), len(self._undone)]
        return params

    def _run(self, task: str, progress: Optional[ProgressCallback] = None, check_state: bool = True) -> JobResult:
        return self.worker.run(task, {}, self._params(check_state=check_state), progress)

    def _submit_prompt(self, prompt: Prompt, check_state: bool = True) -> RemoteJob:
        wire, inputs = _wire_prompt(prompt)
        return self.worker.submit("interactive.interact", inputs, self._params({"prompt": wire}, check_state))

    def _rebuild(self, progress: ProgressCallback = no_progress) -> np.ndarray:
        """Open the session again (the image is sent again) and replay every prompt, then undo
        the ones that were undone; returns the worker's mask."""
        try:
            self._open(lambda f, m: progress(0.0, "Sending the image to the worker again"))
            mask = self._initial_mask()
            redo = self._undone[::-1]
            steps = [*self.history, *redo]
            for n, prompt in enumerate(steps):
                report = _replay_progress(progress, n, len(steps))
                _apply(mask, _change(self._submit_prompt(prompt, check_state=False).wait(report)))
            for _ in redo:
                _apply(mask, _change(self._run("interactive.undo", check_state=False)))
            return mask
        except BaseException:
            self._session_id = None  # half replayed: the next operation rebuilds again
            raise

    def _retry_after_rebuild(self, attempt: Callable[[], JobResult],
                             progress: ProgressCallback = no_progress) -> tuple[JobResult, np.ndarray]:
        """Rebuild, then ``attempt`` once; returns its result and the worker's mask before it."""
        replayed = self._rebuild(progress)
        try:
            return attempt(), replayed
        except BaseException:
            if not np.array_equal(replayed, self.mask):
                self._session_id = None  # the worker's mask is not ours yet: rebuild again next time
            raise

    def _blocking(self, task: str) -> MaskChange:
        """Undo or redo, rebuilding the session first if the worker lost it."""
        attempt = lambda: self._run(task)  # noqa: E731
        try:
            if self._session_id is not None:
                return self._commit(task.split(".")[1], attempt())
        except _LOST as error:
            log.info("the worker lost the interactive session (%s); rebuilding it", error.message)
        result, replayed = self._retry_after_rebuild(attempt)
        return self._commit(task.split(".")[1], result, replayed=replayed)

    # -- the local copy ---------------------------------------------------------------
    def _commit(self, op: str, result: JobResult, prompt: Optional[Prompt] = None,
                replayed: Optional[np.ndarray] = None) -> MaskChange:
        """Apply the worker's change to the local mask and record the operation; after a rebuild
        whose mask differs from ours (a backend that is not deterministic), take the worker's."""
        change = _change(result)
        _check_inside(change, self.mask.shape)
        old = None
        if replayed is not None and not np.array_equal(replayed, self.mask):
            log.warning("after rebuilding the interactive session the worker's mask differs from this "
                        "client's in %d voxels; taking the worker's", int(np.count_nonzero(replayed != self.mask)))
            old = self.mask.copy()
            self.mask[...] = replayed
        _apply(self.mask, change)
        self._record(op, prompt, bool(result.meta.get("changed", True)))
        return change if old is None else MaskChange.between(old, self.mask)

    def _record(self, op: str, prompt: Optional[Prompt], changed: bool) -> None:
        if op == "interact" and prompt is not None:
            self.history.append(prompt)
            self._undone_before_last = self._undone[:]
            self._undone.clear()
        elif op == "withdraw" and changed:
            self.history.pop()
            self._undone[:] = self._undone_before_last
        elif op == "undo" and changed:
            self._undone.append(self.history.pop())
        elif op == "redo" and changed:
            self.history.append(self._undone.pop())
        elif op == "reset":
            self.history.clear()
            self._undone.clear()

    def _initial_mask(self) -> np.ndarray:
        return self._initial.copy() if self._initial is not None else np.zeros(self.image.array.shape, np.uint8)


class _InteractionJob:
    """One interaction as a GUI polls it (the RemoteJob interface ModuleJob drives): the worker's
    job, or, once the worker has lost the session, a rebuild and one retry on a thread that
    the same polls follow. A finished job's result is collected at once, so a lost session
    (an error of the job) is noticed while polling, not when the GUI finishes."""

    def __init__(self, session: RemoteSession, prompt: Prompt) -> None:
        self._session, self._prompt = session, prompt
        self.id = uuid.uuid4().hex
        self.replayed: Optional[np.ndarray] = None
        self._remote: Optional[RemoteJob] = None
        self._background: Optional[_Background] = None
        self._final: Optional[JobStatus] = None
        self._outcome: Optional[JobResult] = None
        self._error: Optional[SegForgeError] = None
        try:
            if session._session_id is not None:
                self._remote = session._submit_prompt(prompt)
                self.id = self._remote.id
                return
        except _LOST as error:
            log.info("the worker lost the interactive session (%s); rebuilding it", error.message)
        self._start_rebuild()

    def poll(self) -> JobStatus:
        if self._final is not None:
            return self._final
        if self._background is not None:
            return self._background.status()
        assert self._remote is not None
        try:
            status = self._remote.poll()
            if status.finished:
                self._collect(status)
        except _LOST as error:
            log.info("the worker lost the interactive session (%s); rebuilding it", error.message)
            self._start_rebuild()
            return self._background.status()  # type: ignore[union-attr]
        return status

    def cancel(self) -> JobStatus:
        if self._background is not None:
            self._background.cancel()
        elif self._remote is not None and self._final is None:
            try:
                status = self._remote.cancel()
                if status.finished:  # a queued job ends at once: collect it, as poll would
                    self._collect(status)
                return status
            except _LOST:  # the worker is gone: so is the job; the next operation rebuilds
                self._session._session_id = None
                self._error = Cancelled()
                self._final = JobStatus(CANCELLED, 0.0, "Cancelled")
        return self.poll()

    def result(self) -> JobResult:
        if self._background is not None:
            return self._background.result()
        if self._error is not None:
            raise self._error
        if self._outcome is None:
            raise WorkerError("The interaction has not finished yet", "it is still running",
                              "poll it until it has finished")
        return self._outcome

    def settle(self) -> None:
        """Wait for a rebuild thread to end (after a cancel, before the next operation)."""
        if self._background is not None:
            self._background.join()

    def _collect(self, status: JobStatus) -> None:
        """Fetch a finished job's result now; a lost session raises (and is retried by ``poll``)."""
        assert self._remote is not None
        try:
            self._outcome = self._remote.result()
        except _LOST:
            raise
        except SegForgeError as error:
            self._error = error
        self._final = status

    def _start_rebuild(self) -> None:
        self._remote = None

        def work(progress: ProgressCallback) -> JobResult:
            attempt = lambda: self._session._submit_prompt(self._prompt).wait(progress)  # noqa: E731
            result, self.replayed = self._session._retry_after_rebuild(attempt, progress)
            return result

        self._background = _Background(work)


class _Background:
    """Blocking work on a thread, polled like a worker job; Cancel reaches it through its progress."""

    def __init__(self, work: Callable[[ProgressCallback], JobResult]) -> None:
        self.state, self.fraction, self.message = RUNNING, 0.0, "Reconnecting to the worker"
        self._work = work
        self._cancel = threading.Event()
        self._value: Optional[JobResult] = None
        self._error: Optional[SegForgeError] = None
        self._thread = threading.Thread(target=self._run, name="segforge-interactive-rebuild", daemon=True)
        self._thread.start()

    def status(self) -> JobStatus:
        return JobStatus(self.state, self.fraction, self.message)

    def cancel(self) -> None:
        self._cancel.set()

    def join(self) -> None:
        self._thread.join()

    def result(self) -> JobResult:
        if self._error is not None:
            raise self._error
        if self._value is None:
            raise WorkerError("The interaction has not finished yet", "the session is being rebuilt",
                              "poll it until it has finished")
        return self._value

    def _progress(self, fraction: float, message: str) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self.fraction, self.message = fraction, message

    def _run(self) -> None:
        try:
            self._value = self._work(self._progress)
            self.state = DONE
        except Cancelled as error:
            self._error, self.state = error, CANCELLED
        except SegForgeError as error:
            self._error, self.state, self.message = error, FAILED, error.message
        except Exception as error:  # noqa: BLE001 - a bug becomes a failed job the GUI shows, not a dead thread
            log.exception("rebuilding the interactive session failed")
            self._error = WorkerError("Rebuilding the interactive session failed", f"{type(error).__name__}: {error}",
                                      "close the session and start again")
            self.state, self.message = FAILED, self._error.message


# -- helpers ------------------------------------------------------------------------------
def _checked_initial(initial: Optional[np.ndarray], shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """An existing segment as a 0/1 uint8 mask on the image's grid (None when absent)."""
    if initial is None:
        return None
    array = np.asarray(getattr(initial, "array", initial))
    if array.shape != tuple(shape):
        raise InputError("The initial mask is not on the image's grid", f"its shape is {array.shape} (k, j, i), "
                         f"the image's is {tuple(shape)}", "give the existing segment as a mask on the same volume")
    return (array != 0).astype(np.uint8)


def _wire_prompt(prompt: Prompt) -> tuple[dict[str, Any], dict[str, Any]]:
    """A prompt as JSON; a scribble's points travel as a binary array, not a JSON list."""
    if isinstance(prompt, ScribblePrompt):
        points = np.asarray(prompt.points_lps, dtype=np.float64).reshape(-1, 3)
        return {"type": "scribble", "positive": prompt.positive}, {"points": points}
    return prompt_to_json(prompt), {}


def _change(result: JobResult) -> MaskChange:
    offset = tuple(int(v) for v in result.meta["offset_kji"])
    before, after = np.asarray(result.outputs["before"]), np.asarray(result.outputs["after"])
    return MaskChange(offset, before, after)  # type: ignore[arg-type]


def _check_inside(change: MaskChange, shape: tuple[int, ...]) -> None:
    if change.empty:
        return
    if change.before.shape != change.after.shape or any(
            s.start < 0 or s.stop > n for s, n in zip(change.slices, shape)):
        raise WorkerError("The worker sent a mask change that does not fit the image",
                          f"box at {change.offset_kji} of shape {change.after.shape}, image {shape}",
                          "install the same SegForge version on both sides")


def _apply(mask: np.ndarray, change: MaskChange) -> None:
    if not change.empty:
        mask[change.slices] = change.after


def _replay_progress(progress: ProgressCallback, n: int, count: int) -> ProgressCallback:
    def report(fraction: float, message: str) -> None:
        progress((n + fraction) / max(count, 1), f"Replaying prompt {n + 1} of {count}")

    return report
