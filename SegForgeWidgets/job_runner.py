"""JobRunner: a module panel's running worker job, polled from a timer.

The Logic starts a job (``segforge.worker.module_job.ModuleJob`` or anything with ``poll``,
``cancel`` and ``finish``); the runner asks it for its status on each timer tick, so the GUI
never waits, shows the progress in the panel's progress bar and status label, drives the
Cancel button, and when the job has ended collects it (``finish``) and hands the result to
``on_done``, or what went wrong (``Cancelled`` too) to ``on_error``.
"""
import logging
import traceback

import qt

import slicer
from slicer.i18n import tr as _

from segforge.errors import Cancelled, SegForgeError


class JobRunner:
    """The one job of a panel whose ``ui`` has a ``progressBar``, a ``statusLabel`` and a
    ``cancelButton`` (the runner connects Cancel itself).

    ``refresh`` re-derives the panel's other buttons; it is called when a job starts and
    after it has ended, and by :meth:`showIdle`.
    """

    def __init__(self, ui, intervalMs: int, moduleName: str, refresh=None) -> None:
        self._ui = ui
        self._moduleName = moduleName
        self._refresh = refresh or (lambda: None)
        self._job = None
        self._onDone = self._onError = None
        self._cancelRequested = False
        self._timer = qt.QTimer()
        self._timer.setInterval(intervalMs)
        self._timer.connect("timeout()", self._poll)
        ui.cancelButton.connect("clicked(bool)", self.cancel)

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, job, onDone, onError, message: str) -> None:
        """Poll ``job`` until it ends, then ``onDone(result)`` or ``onError(error)``."""
        self._job, self._onDone, self._onError = job, onDone, onError
        self._cancelRequested = False
        self._showRunning(0.0, message)
        self._timer.start()
        self._refresh()

    def cancel(self) -> None:
        """Ask the job to stop (the Cancel button); its end still comes through ``onError``."""
        if self._job is None or self._cancelRequested:
            return
        self._cancelRequested = True
        self._ui.cancelButton.enabled = False
        self._ui.statusLabel.text = _("Cancelling...")
        self._cancelQuietly(self._job)

    def drop(self, cancel: bool = True) -> None:
        """Let go of the job without calling back (the scene closes, the panel is destroyed...)."""
        job = self._job
        self._release()
        if cancel and job is not None:
            self._cancelQuietly(job)

    def showIdle(self, message: str) -> None:
        """No job: Cancel off, an empty progress bar, ``message`` as the status."""
        self._ui.cancelButton.enabled = False
        self._ui.progressBar.value = 0
        self._ui.statusLabel.text = message
        self._refresh()

    def showFailure(self, error: Exception, context: str) -> None:
        """The usual ``onError``: a cancelled job wrote nothing; anything else is shown."""
        if isinstance(error, Cancelled):
            self.showIdle(_("Cancelled. Nothing was written."))
            return
        self.showIdle(_("Failed"))
        self.showError(context, error)

    def showError(self, context: str, error: Exception) -> None:
        """SegForge's own errors say what went wrong and what to do; others get the traceback."""
        if isinstance(error, SegForgeError):
            logging.error("%s: %s", self._moduleName, error.message)
            slicer.util.errorDisplay(error.message)
        else:
            logging.error("%s: %s\n%s", self._moduleName, context, traceback.format_exc())
            slicer.util.errorDisplay(f"{context}\n\n{error}", detailedText=traceback.format_exc())

    # -- internals ----------------------------------------------------------------------------

    def _poll(self) -> None:
        job, onDone, onError = self._job, self._onDone, self._onError
        if job is None:
            self._timer.stop()
            return
        try:
            status = job.poll()  # ModuleJob.poll never raises; a lost worker is a failed status
            if not status.finished:
                self._showRunning(status.fraction, status.message)
                return
            self._release()
            result = job.finish()
        except Exception as error:  # onError runs in here: showError's traceback needs the exception
            self._release()
            self._ui.cancelButton.enabled = False
            onError(error)
        else:
            self._ui.cancelButton.enabled = False
            onDone(result)
        self._refresh()

    def _showRunning(self, fraction: float, message: str) -> None:
        self._ui.cancelButton.enabled = not self._cancelRequested
        self._ui.progressBar.value = int(round(100 * min(max(float(fraction), 0.0), 1.0)))
        if not self._cancelRequested:  # "Cancelling..." stays until the job has ended
            self._ui.statusLabel.text = message

    def _release(self) -> None:
        """Stop polling and forget the job (the panel's widgets are left alone)."""
        self._timer.stop()
        self._job = self._onDone = self._onError = None
        self._cancelRequested = False

    def _cancelQuietly(self, job) -> None:
        try:
            job.cancel()
        except Exception as error:  # the worker may already be gone; finish() will say so
            logging.warning("%s: cancel failed: %s", self._moduleName, error)
