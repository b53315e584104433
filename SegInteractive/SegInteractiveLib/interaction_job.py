"""A running interaction as the widget drives it: poll from a timer, Cancel, then finish into the scene.

The engine's job applies the worker's answer to the session's mask; ``finish`` here also
writes that change into the target segment, so the scene changes only when a job has
succeeded (a cancelled or failed click leaves the segment as it was).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from segforge.errors import Cancelled
from segforge.interactive.session import MaskChange
from segforge.progress import ProgressCallback
from segforge.worker.client import JobStatus, poll_until_finished
from segforge.worker.jobs import CANCELLED


class InteractionJob:
    """One interaction in flight (wraps the engine's ``ModuleJob[MaskChange]``)."""

    def __init__(self, job: Any, write: Callable[[MaskChange], MaskChange], done: Callable[[], None]) -> None:
        self._job = job
        self._write = write
        self._done = done

    def poll(self) -> JobStatus:
        """The latest status; never raises (a lost worker is a failed status)."""
        return self._job.poll()

    def cancel(self) -> None:
        """Ask the worker to stop; the segment stays as it was."""
        self._job.cancel()

    def finish(self) -> MaskChange:
        """Write the change into the segment and return it; raises what went wrong (Cancelled too)."""
        try:
            if self._job.poll().state == CANCELLED:  # nothing to collect (a job cancelled while queued)
                raise Cancelled()
            return self._write(self._job.finish())
        finally:
            self._done()

    def wait(self, progress: Optional[ProgressCallback] = None, interval_s: float = 0.05) -> MaskChange:
        """Block until done, then finish (scripts, tests)."""
        try:
            poll_until_finished(self.poll, self.cancel, progress, interval_s)
        except BaseException:
            self._done()
            raise
        return self.finish()
