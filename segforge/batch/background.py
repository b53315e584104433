"""A batch as a background job: what Slicer's Python console (or any GUI) starts and goes on.

Why a thread, not the SegForge worker: the cases already run in Dask's worker processes; the
thread only submits them and collects outcomes, so the GUI's thread stays free. Like every
other SegForge job it has progress (``fraction``, ``message``) and Cancel, which lands within
:data:`.runner.POLL_S` and stops the batch as Ctrl-C does on the command line: running cases
are cancelled, every case folder is whole or absent, the tables match them.

From Slicer's Python console::

    from segforge.batch import ClusterSettings, discover, start_batch
    from segforge.organ.parameters import OrganParameters

    job = start_batch("organ", discover("/data/cts").cases, "/data/results", OrganParameters(),
                      cluster=ClusterSettings(workers=2))
    job.fraction, job.message    # any time
    job.cancel()                 # if need be
    summary = job.wait()         # the same summary run_batch returns
"""
from __future__ import annotations

import threading
from typing import Any, Mapping, Optional, Sequence

from ..errors import Cancelled
from .cases import Case
from .runner import BatchSummary, ClusterSettings, run_batch


class BatchJob:
    """One batch running in a thread of this process."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self.message = "Starting the cluster"
        self.summary: Optional[BatchSummary] = None
        self.error: Optional[BaseException] = None
        self._cancel = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def cancel(self) -> None:
        """Stop the batch: no new case starts, running ones are cancelled (see the module's text)."""
        self._cancel.set()

    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> BatchSummary:
        """The summary once the batch has ended (``interrupted`` after a Cancel); its error, if it failed."""
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the batch is still running ({self.message})")
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary

    def _report(self, fraction: float, message: str) -> None:
        self.fraction, self.message = fraction, message
        if self._cancel.is_set():
            raise Cancelled("The batch was cancelled")

    def _run(self, arguments: tuple, options: dict) -> None:
        try:
            self.summary = run_batch(*arguments, **options, report=self._report)
            self.message = self.summary.line()
        except BaseException as error:  # kept for wait(), which raises it in the caller's thread
            self.error = error
            self.message = f"Failed: {error}"


def start_batch(workflow: str, cases: Sequence[Case], out: str, parameters: Any,
                options: Optional[Mapping[str, Any]] = None, *, cluster: ClusterSettings = ClusterSettings(),
                client: Any = None, pacs: Any = None, store: bool = False,
                left_out: Sequence[dict] = ()) -> BatchJob:
    """:func:`.runner.run_batch` in a background thread (no progress bar, no printing); the job at once.
    ``pacs``, ``store``, ``left_out``: as :func:`.runner.run_batch` takes them (a PACS cohort from
    the Slicer console runs in the background like any other)."""
    job = BatchJob()
    job._thread = threading.Thread(
        target=job._run, name="segforge-batch", daemon=True,
        args=((workflow, cases, out, parameters, options),
              {"cluster": cluster, "client": client, "progress": False, "say": lambda line: None, "pacs": pacs,
               "store": store, "left_out": left_out}))
    job._thread.start()
    return job
