"""Work that waits on the network or the disk, run in a thread of this process, polled like a worker job.

Sending a SEG and an SR to a PACS is seconds of waiting on HTTP, not computation: the worker
process (models, images, protocol) adds nothing there. A :class:`ThreadJob` runs such work
in a background thread and offers what a panel polls a :class:`~segforge.worker.ModuleJob`
with (``poll``, ``cancel``, ``finish``, ``wait``), so the desktop's JobRunner and the web app's
JobTracker show its progress and Cancel and the GUI never waits on it. The work must not
touch MRML nodes (not thread-safe): the Logic reads the scene first, on the GUI's thread.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

from ..errors import Cancelled, SegForgeError
from ..progress import ProgressCallback
from .client import JobStatus, poll_until_finished
from .jobs import CANCELLED, DONE, FAILED, RUNNING

T = TypeVar("T")


class ThreadJob(Generic[T]):
    """``work(progress)`` running in a daemon thread; Cancel lands at its next progress report."""

    def __init__(self, work: Callable[[ProgressCallback], T], message: str = "Starting...") -> None:
        self._work = work
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._status = JobStatus(RUNNING, 0.0, message)
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="segforge-thread-job", daemon=True)
        self._thread.start()

    def _progress(self, fraction: float, message: str) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        with self._lock:
            self._status = JobStatus(RUNNING, float(fraction), message)

    def _run(self) -> None:
        try:
            value = self._work(self._progress)
        except Cancelled:
            self._set(JobStatus(CANCELLED, self._status.fraction, "Cancelled"))
        except BaseException as error:  # noqa: BLE001 - handed to finish() on the GUI's thread
            self._error = error
            text = error.message if isinstance(error, SegForgeError) else f"{type(error).__name__}: {error}"
            self._set(JobStatus(FAILED, self._status.fraction, text))
        else:
            self._value = value
            self._set(JobStatus(DONE, 1.0, "Done"))

    def _set(self, status: JobStatus) -> None:
        with self._lock:
            self._status = status

    def poll(self) -> JobStatus:
        """The latest status; never raises."""
        with self._lock:
            return self._status

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report (what it finished stays done)."""
        self._cancel.set()

    def finish(self) -> T:
        """The work's result; raises what went wrong, or :class:`Cancelled`."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self.poll().state == CANCELLED:
            raise Cancelled()
        return self._value  # type: ignore[return-value]

    def wait(self, progress: Optional[ProgressCallback] = None, interval_s: float = 0.1) -> T:
        """Block until done (for scripts and the Python console), then finish."""
        poll_until_finished(self.poll, self.cancel, progress, interval_s)
        return self.finish()
