"""A worker job as a module Logic hands it to a GUI: poll, cancel, then finish in the scene.

The Logic submits the work and says what to do with the result (write a segment, a
curve...). The widget polls from a timer and never waits; a worker that dies shows up
as a finished, failed status, and ``finish`` raises the error that explains it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Generic, Optional, TypeVar

from ..errors import SegForgeError
from ..progress import ProgressCallback
from .client import JobResult, JobStatus, RemoteJob, WorkerClient, poll_until_finished, shared_worker
from .jobs import FAILED

if TYPE_CHECKING:
    from .thread_job import ThreadJob

T = TypeVar("T")


class ModuleJob(Generic[T]):
    """A running worker job and the step that turns its result into scene nodes."""

    def __init__(self, remote: RemoteJob, finish: Callable[[JobResult], T]) -> None:
        self.remote = remote
        self._finish = finish
        self._error: Optional[SegForgeError] = None
        self._status = JobStatus("queued", 0.0, "Submitted")

    def poll(self) -> JobStatus:
        """The latest status; never raises (a lost worker is a failed status)."""
        if self._error is None and not self._status.finished:
            try:
                self._status = self.remote.poll()
            except SegForgeError as error:
                self._error = error
                self._status = JobStatus(FAILED, self._status.fraction, error.message)
        return self._status

    def cancel(self) -> None:
        """Ask the worker to stop; the next poll shows 'cancelled' within about a second."""
        if self._error is None and not self._status.finished:
            try:
                self._status = self.remote.cancel()
            except SegForgeError as error:  # the worker is gone: the job is over, and says why
                self._error = error
                self._status = JobStatus(FAILED, self._status.fraction, error.message)

    def finish(self) -> T:
        """Collect the result and write it into the scene; raises what went wrong."""
        if self._error is not None:
            raise self._error
        return self._finish(self.remote.result())

    def wait(self, progress: Optional[ProgressCallback] = None, interval_s: float = 0.1) -> T:
        """Block until done (for scripts and the Python console), then finish."""
        poll_until_finished(self.poll, self.cancel, progress, interval_s)
        return self.finish()


class WorkerLogic:
    """Base of the module Logics: the worker their jobs go to."""

    def __init__(self, worker: Optional[WorkerClient] = None) -> None:
        self._worker = worker

    @property
    def worker(self) -> WorkerClient:
        """The worker jobs go to: the session's shared one unless another was given."""
        if self._worker is None:
            self._worker = shared_worker()
        return self._worker

    @staticmethod
    def background(work: Callable[[ProgressCallback], T], message: str) -> "ThreadJob[T]":
        """``work`` in a background thread of this process, polled by a panel like a worker job
        (work that needs nothing of the worker process: writing or sending files)."""
        from .thread_job import ThreadJob

        return ThreadJob(work, message)
