"""Jobs inside the worker: a queue run one at a time, with progress and cancel.

One job runs at a time (a GPU is used by one model at once); the others wait. A job's
progress callback is also its cancellation point: once Cancel is asked, the next
progress report raises :class:`~segforge.errors.Cancelled`, so the engine's habit of
reporting at least once a second is what makes Cancel take effect within a second.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import Cancelled, JobFailed, SegForgeError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED_STATES = frozenset({DONE, FAILED, CANCELLED})

#: A task body: (inputs, params, job) -> (outputs, meta). It reports through job.progress.
TaskBody = Callable[[dict[str, Any], dict[str, Any], "Job"], tuple[dict[str, Any], dict[str, Any]]]


@dataclass
class Job:
    """One submitted task and everything the client may ask about it."""

    task: str
    body: TaskBody
    inputs: dict[str, Any]
    params: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Who submitted it (the server's per-client limits count by this; "" for no one in particular).
    owner: str = ""
    #: Interactive sessions its owner may keep open (0: no limit); read by ``interactive.open``.
    session_limit: int = 0
    state: str = QUEUED
    fraction: float = 0.0
    message: str = "Waiting for the worker"
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: Optional[SegForgeError] = None
    finished_at: Optional[float] = None
    cancel_requested_at: Optional[float] = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _committed: bool = field(default=False, repr=False)

    def progress(self, fraction: float, message: str) -> None:
        """Record progress; raises Cancelled once the client asked to cancel (until :meth:`commit`)."""
        if self._cancel.is_set() and not self._committed:
            raise Cancelled()
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.message = message

    def commit(self) -> None:
        """From now on the job finishes whatever the client asks: called by a task right before a
        change it cannot take back (a trained model put into the catalog), so that a Cancel that
        comes too late never makes the job say "cancelled" about a change that was made."""
        self._committed = True

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def status(self) -> dict[str, Any]:
        status = {"job": self.id, "task": self.task, "state": self.state,
                  "fraction": self.fraction, "message": self.message}
        if self.state == CANCELLED and self.cancel_requested_at is not None and self.finished_at is not None:
            # Measured inside the worker, so it says how fast the engine obeyed, whatever the network.
            status["cancel_latency_s"] = self.finished_at - self.cancel_requested_at
        return status

    def _finish(self, state: str, message: str) -> None:
        self.state, self.message, self.finished_at = state, message, time.monotonic()
        self.inputs = {}  # free the input volume as soon as it is not needed


class JobQueue:
    """The worker's queue of submitted jobs, run one after another on a single background thread
    (not to be confused with ``SegForgeWidgets.JobRunner``, a panel's view of one job)."""

    def __init__(self, keep_finished_s: float = 600.0) -> None:
        self._jobs: dict[str, Job] = {}
        self._queue: "queue.Queue[Optional[Job]]" = queue.Queue()
        self._lock = threading.Lock()
        self._keep_finished_s = keep_finished_s
        self._thread = threading.Thread(target=self._run_forever, name="segforge-jobs", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            self._forget_old()
            job = self._jobs.get(job_id)
        if job is None:
            raise SegForgeError("The worker has no such job", f"job {job_id!r} is unknown or its "
                                "result was already collected", "submit the job again")
        return job

    def unfinished(self, owner: str, task: Optional[str] = None) -> int:
        """Jobs of ``owner`` (of ``task``, if given) queued or running now."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.owner == owner and job.state not in FINISHED_STATES
                       and (task is None or job.task == task))

    def __len__(self) -> int:
        return len(self._jobs)

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:  # the queue takes a queued job under the same lock: no race with its start
            if job.cancel_requested_at is None and job.state not in FINISHED_STATES:
                job.cancel_requested_at = time.monotonic()
            job._cancel.set()
            if job.state == QUEUED:
                job._finish(CANCELLED, "Cancelled before it started")
        return job

    def pop_finished(self, job_id: str) -> Job:
        """Hand over a finished job's result and forget the job."""
        job = self.get(job_id)
        if job.state not in FINISHED_STATES:
            raise SegForgeError("The job has not finished yet", f"it is {job.state}",
                                "poll its status until it has finished")
        with self._lock:
            self._jobs.pop(job_id, None)
        return job

    def stop(self) -> None:
        for job in list(self._jobs.values()):
            job._cancel.set()
        self._queue.put(None)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > self._keep_finished_s:
                del self._jobs[job_id]

    def _run_forever(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != QUEUED:  # cancelled while it waited
                    continue
                job.state, job.message = RUNNING, "Starting"
            self._run(job)

    def _run(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            outputs, meta = job.body(job.inputs, job.params, job)
            if job.cancel_requested and not job._committed:
                raise Cancelled()
        except Cancelled:
            job._finish(CANCELLED, "Cancelled")
        except SegForgeError as error:
            job.error = error
            job._finish(FAILED, error.message)
        except MemoryError as error:
            job.error = _out_of_memory(job.task, str(error) or "an allocation failed")
            job._finish(FAILED, job.error.message)
        except Exception as error:  # noqa: BLE001 - any bug becomes a structured error, not a dead worker
            log.error("job %s (%s) failed:\n%s", job.id, job.task, traceback.format_exc())
            job.error = _unexpected_error(job.task, error)
            job._finish(FAILED, job.error.message)
        else:
            job.outputs, job.meta = outputs, {**meta, "seconds": time.perf_counter() - started}
            job.fraction = 1.0
            job._finish(DONE, "Done")


_ALLOCATION_FAILURES = ("Failed to allocate", "bad_alloc", "Unable to allocate")


def _out_of_memory(task: str, why: str) -> JobFailed:
    return JobFailed(f"The {task} job ran out of memory", why,
                     "crop the volume to the region of interest, or use a machine with more memory")


def _unexpected_error(task: str, error: Exception) -> JobFailed:
    name, text = type(error).__name__, str(error)
    if "OutOfMemory" in name:
        return JobFailed(f"The {task} job ran out of GPU memory", text.splitlines()[0],
                         "close other GPU programs, crop the volume, or run on the CPU")
    if any(sign in text for sign in _ALLOCATION_FAILURES):  # C++ libraries (ITK, VTK) out of memory
        return _out_of_memory(task, text.strip().splitlines()[-1])
    return JobFailed(f"The {task} job failed inside the worker", f"{name}: {error}",
                     "report this with the worker log; other jobs are not affected")
