"""PromptRunner: the open session's prompts run one at a time, and undo, redo and reset between them.

Each prompt (a click, a box, a scribble, a lasso) starts an interaction in the background worker that
the panel's JobRunner polls, so Slicer never freezes and Cancel always works. A prompt sent
while another runs is refused, not queued, so that each one refines the segment the previous
one left. When a prompt ends, its marker stays (applied) or goes (refused, failed, cancelled)
and the status line says what the session looks like now.
"""
import slicer
from slicer.i18n import tr as _

from segforge.errors import Cancelled, SegForgeError
from SegInteractiveLib.form import status_line


def errorText(what: str, error: Exception) -> str:
    """A status line: what failed, and SegForge's why and what to do when it says so."""
    detail = error.message if isinstance(error, SegForgeError) else str(error)
    return f"{what} {detail}"


class PromptRunner:
    """The prompts of the session ``logic.session`` (nothing happens while it is None), for a
    panel whose ``ui`` has a ``statusLabel`` and a ``progressBar``; ``jobs`` is the panel's
    JobRunner, ``prompts`` its PromptPlacement. ``refresh`` re-derives the panel's buttons after
    an undo, redo or reset (the JobRunner does so around each prompt)."""

    def __init__(self, ui, jobs, prompts, logic, refresh=None) -> None:
        self._ui = ui
        self._jobs = jobs
        self._prompts = prompts
        self._logic = logic
        self._refresh = refresh or (lambda: None)

    def sendPoint(self, pointList, index: int) -> None:
        """A point was clicked in a view: segment with it (at once, in the background)."""
        session = self._logic.session
        if session is None:
            return
        if self._jobs.running:
            self._prompts.refused((pointList, index))
            self._showStatus(_("Wait for the running interaction (or Cancel it) before the next click."))
            return
        try:
            job = session.start_point_from_markups(pointList, index,
                                                   positive=self._prompts.markers.is_positive(pointList))
        except Exception as error:
            self._prompts.refused((pointList, index))
            self._showStatus(errorText(_("The point was not used."), error))
            return
        self._start(job, "point", (pointList, index))

    def sendBox(self) -> None:
        """The box the user dragged (Apply box)."""
        session, markers = self._logic.session, self._prompts.markers
        if session is None or markers is None or markers.box is None:
            return
        self._send(lambda: session.start_roi(markers.box), "box")

    def sendScribble(self) -> None:
        """What the user painted into the helper segmentation, with the current sign (Apply scribble)."""
        session, markers = self._logic.session, self._prompts.markers
        if session is None or markers is None:
            return
        helper, segmentId = markers.scribble_segment()
        self._send(lambda: session.start_scribble(helper, segmentId, positive=self._prompts.positive), "scribble")

    def sendLasso(self) -> None:
        """The closed curve the user drew, with the current sign (Apply lasso); the Logic refuses an
        open or unfinished one, saying what to do."""
        session, markers = self._logic.session, self._prompts.markers
        if session is None or markers is None:
            return
        curve = markers.lasso
        if self._jobs.running:
            self._showStatus(_("Wait for the running interaction (or Cancel it)."))
            return
        self._prompts.stopDrawingLasso()
        try:
            job = session.start_lasso(curve, positive=self._prompts.positive)
        except Exception as error:
            self._showStatus(errorText(_("The lasso was not used."), error))
            return
        self._start(job, "lasso", curve)

    def history(self, what: str) -> None:
        """The session's "undo", "redo" or "reset"; nothing without a session or while a prompt runs."""
        session = self._logic.session
        if session is None or self._jobs.running:
            return
        try:
            with slicer.util.WaitCursor():
                changed = getattr(session, what)()
        except Exception as error:
            self._showStatus(errorText(_("{what} failed.").format(what=what.capitalize()), error))
            self._refresh()
            return
        if changed is not None or what == "reset":
            self._prompts.historyMoved(what)
        self._showStatus(self.sessionText(""))
        self._refresh()

    def sessionText(self, prefix: str) -> str:
        """The status line of the open session (only ``prefix`` without one)."""
        session = self._logic.session
        if session is None:
            return prefix
        return status_line(prefix.rstrip("."), session.target.name, len(session.history),
                           *self._logic.segment_size(session), warning=session.warning)

    def _send(self, start, kind: str) -> None:
        if self._jobs.running:
            self._showStatus(_("Wait for the running interaction (or Cancel it)."))
            return
        try:
            job = start()
        except Exception as error:
            self._showStatus(errorText(_("The prompt was not used."), error))
            return
        self._start(job, kind, None)

    def _start(self, job, kind: str, point) -> None:
        """``kind``: "point", "box", "scribble" or "lasso"; ``point``: (point list, index) of the
        click, the lasso's curve, or None."""
        self._jobs.start(job, lambda change: self._onDone(kind, point),
                         lambda error: self._onFailed(point, error), _("Segmenting..."))

    def _onDone(self, kind: str, point) -> None:
        self._prompts.applied(kind, point)
        self._ui.progressBar.value = 100
        self._showStatus(self.sessionText(_("Done.")))

    def _onFailed(self, point, error: Exception) -> None:
        self._prompts.refused(point)
        self._showStatus(_("Cancelled. The segment is as it was.") if isinstance(error, Cancelled)
                         else errorText(_("The prompt failed."), error))

    def _showStatus(self, text: str) -> None:
        self._ui.statusLabel.text = text
