"""The SegInteractive panel: a lesion from clicks, a box, lassos and scribbles in the web slice views.

Drives the desktop module's own Logic (``app_module_logic("SegInteractive")``): Start session
opens an :class:`InteractiveSegmentSession` (the volume goes to the worker once), each
click placed in a slice view (:mod:`.interactive_clicks`) becomes ``start_point_from_markups``
followed by a :class:`~segforge_app.jobs.JobTracker` of its own that polls every 30 ms (the
page never waits for the worker), and the segment is shown in the views after each one. A
lasso or a scribble is dragged in a slice view (:mod:`.interactive_drag`); the Logic turns
the dragged path into the prompt (``start_lasso`` on a closed curve through it,
``start_stroke``). The prompts are shown as the desktop panel shows them
(:class:`PromptMarkers`: green / red points and curves, the box as an ROI). The status line
gives the segment's voxels and millilitres and how long the last click took to become a
mask on the server.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from segforge.errors import InputError
from segforge.forms import DEVICE_TITLES
from SegInteractiveLib.form import DISCARDED, InteractiveForm, kept_line, status_line

from .context import NODES_KEY
from .interactive_clicks import ClickPlacement, box_from_corners, corner_list, point_ras, set_roi
from .interactive_drag import DragDrawing
from .jobs import JobTracker, job_progress
from .module_logics import app_module_logic
from .panels import Panel, register_panel
from .results import follow_input_volume, render_views

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)

KEY = "seginteractive"
FORM = InteractiveForm()
VOLUME, NAME, BACKEND, BACKENDS, DEVICE = "si_volume", "si_segment_name", "si_backend", "si_backends", "si_device"
OPEN, BUSY, MODE, STATUS, WARNING, KEPT = "si_open", "si_busy", "si_mode", "si_status", "si_warning", "si_kept"
CAN_UNDO, CAN_REDO = "si_can_undo", "si_can_redo"
#: Lassos and scribbles drawn next erase (negative) instead of adding.
DRAW_NEGATIVE = "si_draw_negative"
#: Modes whose prompts are dragged, not clicked; True: a closed contour (lasso).
DRAG_MODES = {"lasso": True, "scribble": False}

#: Seconds between two polls of a running click (the worker answers a click in a few hundred ms);
#: the first poll comes after FIRST_POLL_S, each next one twice as late, up to CLICK_POLL_S.
CLICK_POLL_S = 0.03
FIRST_POLL_S = 0.005
#: The held views render this long after the status was flushed (trame sends it on the next loop turns).
RELEASE_AFTER_S = 0.002

MODE_HINTS = {"positive": "Click on the lesion in a slice view (positive click).",
              "negative": "Click where the mask leaked, outside the lesion (negative click).",
              "box": "Click two opposite corners of a box around the lesion in a slice view.",
              "lasso": "Drag around the lesion in a slice view: what the loop encloses is the lesion there.",
              "scribble": "Drag over the lesion in a slice view to paint a stroke."}


class _Followed:
    """An InteractionJob whose failure (or cancellation) also reaches the panel, not only the drawer.

    Its ``finish`` writes the segment with the views' rendering held (see
    :meth:`InteractivePanel._hold_views`): the status goes to the page before the frames.
    """

    def __init__(self, job: Any, on_failed: Callable[[], None], panel: "InteractivePanel") -> None:
        self._job, self._on_failed, self._panel = job, on_failed, panel
        self.finished_at = self.written_at = 0.0

    def poll(self) -> Any:
        status = self._job.poll()
        if status.finished and not self.finished_at:
            self.finished_at = time.perf_counter()
        return status

    def cancel(self) -> None:
        self._job.cancel()

    def finish(self) -> Any:
        self._panel._hold_views()
        try:
            change = self._job.finish()
        except BaseException:
            self._panel._release_views()
            self._on_failed()
            raise
        self.written_at = time.perf_counter()
        return change


class InteractivePanel:
    """Callbacks of the SegInteractive panel, bound to one :class:`AppContext`."""

    def __init__(self, context: "AppContext") -> None:
        self.context = context
        self.logic = app_module_logic("SegInteractive")
        self.markers: Any = None  # PromptMarkers of the open session
        self.corners: Any = None  # the box's corner points (a point list of the session)
        self.clicks = ClickPlacement(context.slicer_app, self._on_placed, on_taken=self._placement_taken)
        self.drags = DragDrawing(context.slicer_app, self._on_drawn)
        # A tracker of its own: a click is done in a few hundred ms, and the app's tracker
        # (0.2 s between polls, for jobs of minutes) would add up to 0.2 s to each click.
        self.jobs = JobTracker(context, interval_s=CLICK_POLL_S, first_interval_s=FIRST_POLL_S)
        self._held: list[Any] = []  # views whose rendering waits until the status is sent
        state = context.state
        backends = self.logic.backends()
        follow_input_volume(context, VOLUME)
        for key, value in ((NAME, FORM.new_segment_name), (BACKENDS, backends), (BACKEND, FORM.backend),
                           (DEVICE, FORM.device),
                           (OPEN, False), (BUSY, False), (MODE, ""), (STATUS, "No session."), (WARNING, ""),
                           (DRAW_NEGATIVE, False),
                           (KEPT, []), (CAN_UNDO, False), (CAN_REDO, False)):
            state.setdefault(key, value)

    @property
    def state(self) -> Any:
        return self.context.state

    @property
    def session(self) -> Any:
        return self.logic.session

    # -- session ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start a session (the worker is started and the volume sent off the page's loop)."""
        if self.session is not None:
            self.logic.start_session(None)  # the Logic's own refusal: accept or discard the open one first
        volume = self.context.scene.GetNodeByID(self.state[VOLUME] or "")
        if volume is None:
            raise InputError("No input volume is selected", "the scene has no volume, or none is chosen",
                             "load a volume in the Data panel and choose it as input volume")
        self._set(**{BUSY: True, STATUS: "Starting the session (sending the volume to the worker)..."})
        from trame_server.utils.asynchronous import create_task

        create_task(self._start(volume))

    async def _start(self, volume: Any) -> None:
        try:
            await asyncio.to_thread(self.logic.worker.hello)  # spawning the worker must not freeze the page
            started = time.perf_counter()
            opening = self.logic.prepare(volume, form_from_state(self.state))
            try:  # the volume goes to the worker off the page's loop: the page keeps answering
                engine = await asyncio.to_thread(opening.open_engine)
            except BaseException:
                opening.abort()
                raise
            session = opening.finish(engine)
            from SegInteractiveLib.prompt_markers import PromptMarkers

            self.markers = PromptMarkers.create(self.context.scene, volume)
            self.corners = corner_list(self.context.scene)
            for point_list in (self.markers.positive, self.markers.negative, self.corners):
                self.clicks.observe(point_list)
            self.context.show_volume(volume, reset_views=False)
            self.context.refresh_nodes()
            logger.info("interactive session started in %.2f s", time.perf_counter() - started)
            self._set(**{OPEN: True, BUSY: False, WARNING: session.warning or ""})
            self.set_mode("positive")
            self._status(f"Session started on '{volume.GetName()}'", "")
        except Exception as error:  # noqa: BLE001 - shown in the drawer
            self._set(**{BUSY: False, STATUS: "The session did not start."})
            self.context.report_error(error)

    def accept(self) -> None:
        session = self._open_session()
        name, node = session.target.name, session.segmentation_node
        self._end()
        session.accept()
        voxels, millilitres = self.logic.segment_size(session)
        self.context.add_result("SegInteractive", session.volume_node, self.logic.lesion_result(session),
                                f"SegInteractive: {name} in {node.GetName()}")
        kept = list(self.state[KEPT]) + [{"segmentation": node.GetName(), "segment": name, "voxels": voxels,
                                          "ml": round(millilitres, 2)}]
        self.context.refresh_nodes()  # first: the status then names nodes the page already lists
        self._set(**{KEPT: kept, STATUS: kept_line(name, node.GetName(), voxels, millilitres)})

    def discard(self) -> None:
        session = self._open_session()
        self._end()
        session.discard()
        self.context.refresh_nodes()
        self._set(**{STATUS: DISCARDED})
        render_views(self.context, fit_3d=False)

    def _end(self) -> None:
        """Stop placing, cancel a running click, and take the prompts' markers out of the scene."""
        self.jobs.cancel(KEY)
        self.clicks.forget_all()
        self.drags.stop()
        if self.markers is not None:
            self.markers.remove_all()
            if self.corners is not None and self.context.scene.GetNodeByID(self.corners.GetID()) is not None:
                self.context.scene.RemoveNode(self.corners)
        self.markers = self.corners = None
        self._set(**{OPEN: False, MODE: "", BUSY: False, CAN_UNDO: False, CAN_REDO: False, WARNING: ""})

    def _open_session(self) -> Any:
        session = self.session
        if session is None:
            raise InputError("No interactive session is open", "prompts, undo and accept belong to a session",
                             "choose the input volume and press Start session")
        return session

    # -- prompts ----------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """Positive, negative or box: clicks in the slice views place that prompt; lasso or
        scribble: drags draw it (again: stop)."""
        self._open_session()
        self.drags.stop()
        if mode == self.state[MODE]:
            self.clicks.stop()
            self._set(**{MODE: ""})
            return
        if self.corners is not None:
            self.corners.RemoveAllControlPoints()  # a half-drawn box is dropped
        if mode in DRAG_MODES:
            self.clicks.stop()
            self.drags.start(closed=DRAG_MODES[mode], positive=not self.state[DRAW_NEGATIVE])
        else:
            target = {"positive": self.markers.positive, "negative": self.markers.negative, "box": self.corners}[mode]
            self.clicks.place(target)
        self._set(**{MODE: mode})
        self._hint(MODE_HINTS[mode])

    def _placement_taken(self) -> None:
        """Another panel (SegVessel's seeds or box) now places with the clicks: no prompt mode is on."""
        if self.corners is not None:
            self.corners.RemoveAllControlPoints()  # a half-drawn box is dropped
        self._set(**{MODE: ""})
        self._hint("Clicks now place for another panel: choose Positive, Negative or Box to prompt again.")

    def _on_placed(self, point_list: Any, index: int) -> None:
        """A point was defined in a view, inside VTK's handling of the click.

        A click's prompt is sent at once: the rest of that handling (30-50 ms, each view's
        markups widget taking the new point) then overlaps the model's work. What changes a
        point list waits until VTK is done with it: refusing a click, and a box's corners.
        """
        placed = time.perf_counter()
        if point_list is self.corners:
            asyncio.get_event_loop().call_soon(self.context.shows_errors(self._use_corner), index, placed)
        else:
            self.context.shows_errors(self._use_point)(point_list, index, placed)

    def _use_point(self, point_list: Any, index: int, placed: float) -> None:
        session, markers = self.session, self.markers
        if session is None or markers is None:
            return
        refuse = functools.partial(asyncio.get_event_loop().call_soon, markers.refused, point_list, index)
        self._refuse_while_running(refuse)
        positive = markers.is_positive(point_list)
        try:
            job = session.start_point_from_markups(point_list, index, positive=positive)
        except Exception:
            refuse()
            raise
        what = "positive click" if positive else "negative click"
        self._follow(job, what, placed, lambda: markers.applied(point_list, index),
                     lambda: markers.refused(point_list, index))

    def _use_corner(self, index: int, placed: float) -> None:
        session, markers = self.session, self.markers
        if session is None or markers is None:
            return
        self._refuse_while_running(lambda: markers.refused(self.corners, index))
        if self.corners.GetNumberOfControlPoints() < 2:
            self._hint("Now click the opposite corner of the box.")
            return
        # along the volume's axes: the views show its own slices, so the box drawn is the box used
        centre, size, axes = box_from_corners(point_ras(self.corners, 0), point_ras(self.corners, 1),
                                              session.image.ijk_to_ras())
        self.corners.RemoveAllControlPoints()
        roi = markers.box_node()
        set_roi(roi, centre, size, axes)
        roi.SetDisplayVisibility(True)  # hidden by an undo or reset before
        try:
            job = session.start_roi(roi)
        except Exception:
            markers.box_refused()
            raise
        self._follow(job, "box", placed, lambda: markers.box_applied(roi), markers.box_refused)

    def set_draw_negative(self, negative: bool) -> None:
        """The sign of the lassos and scribbles drawn next (a drag mode on keeps going, with it)."""
        self._set(**{DRAW_NEGATIVE: bool(negative)})
        if self.state[MODE] in DRAG_MODES:
            self.drags.start(closed=DRAG_MODES[self.state[MODE]], positive=not negative)

    def _on_drawn(self, points_ras: Any, _slice_node: Any) -> None:
        """A drag ended in a view, inside VTK's handling of the release: the prompt is made and
        sent once VTK is done (it adds nodes to the scene)."""
        mode, placed = self.state[MODE], time.perf_counter()
        if mode in DRAG_MODES:
            asyncio.get_event_loop().call_soon(self.context.shows_errors(self._use_drawn), mode, points_ras, placed)

    def _use_drawn(self, mode: str, points_ras: Any, placed: float) -> None:
        session, markers = self.session, self.markers
        if session is None or markers is None:
            return
        positive = self.drags.positive
        self._refuse_while_running(lambda: None)
        if mode == "lasso":
            node = markers.lasso_from_points(points_ras, positive)
            start = lambda: session.start_lasso(node, positive=positive)  # noqa: E731
        else:
            node = markers.stroke_node(points_ras, positive)
            start = lambda: session.start_stroke(points_ras, positive=positive)  # noqa: E731
        try:
            job = start()
        except Exception:
            markers.curve_refused(node)
            raise
        what = f"{'positive' if positive else 'negative'} {mode}"
        self._follow(job, what, placed, lambda: markers.curve_applied(node), lambda: markers.curve_refused(node))

    def _refuse_while_running(self, refuse: Callable[[], Any]) -> None:
        if self.jobs.is_running(KEY):
            refuse()
            raise InputError("The click was not used", "the previous prompt is still being segmented",
                             "wait for it (or press Cancel), then click again")

    def _follow(self, job: Any, what: str, placed: float, applied: Callable[[], Any],
                refused: Callable[[], Any]) -> None:
        def failed() -> None:
            refused()
            self._set(**{BUSY: False})
            self._status(f"The {what} was not used: the segment is as it was.", "")

        def done(change: Any) -> None:
            try:
                applied()
                took_ms = (followed.written_at - placed) * 1000
                self._status(f"{what.capitalize()} applied", f"click to mask {took_ms:.0f} ms", **{BUSY: False})
                logger.info("%s: %.0f ms from the click to the segment written (submitted after %.0f ms, "
                            "seen finished after %.0f ms); status sent after %.0f ms", what, took_ms,
                            (submitted - placed) * 1000, (followed.finished_at - placed) * 1000,
                            (time.perf_counter() - placed) * 1000)
            finally:
                self._release_views()

        submitted = time.perf_counter()
        followed = _Followed(job, failed, self)
        self._set(**{BUSY: True, STATUS: f"Segmenting the {what}..."})
        self.jobs.start(KEY, followed, done, on_cancelled=lambda: None)

    # -- history ----------------------------------------------------------------------------------

    def undo(self) -> None:
        self._history("undo")

    def redo(self) -> None:
        self._history("redo")

    def reset(self) -> None:
        self._history("reset")

    def _history(self, what: str) -> None:
        session = self._open_session()
        if self.jobs.is_running(KEY):
            raise InputError(f"{what.capitalize()} has to wait", "a prompt is still being segmented",
                             "wait for it, or press Cancel")
        started = time.perf_counter()
        self._hold_views()
        try:
            change = getattr(session, what)()
            if self.markers is not None and (change is not None or what == "reset"):
                {"undo": self.markers.undone, "redo": self.markers.redone, "reset": self.markers.reset}[what]()
            took_ms = (time.perf_counter() - started) * 1000
            self._status(f"{what.capitalize()} done" if change is not None or what == "reset"
                         else f"Nothing to {what}", f"{what} {took_ms:.0f} ms")
        finally:
            self._release_views()

    # -- display ----------------------------------------------------------------------------------

    def _status(self, prefix: str, timing: str, **more: Any) -> None:
        """The status line: the segment's size now, and the last interaction's time (one flush with ``more``)."""
        session = self.session
        if session is None:
            self._set(**{STATUS: prefix}, **more)
            return
        text = status_line(prefix, session.target.name, len(session.history), *self.logic.segment_size(session),
                           timing)
        self._set(**{STATUS: text, CAN_UNDO: session.can_undo, CAN_REDO: session.can_redo}, **more)

    def _hint(self, text: str) -> None:
        self._set(**{STATUS: text})

    def _hold_views(self) -> None:
        """Hold the views' rendering while the segment is written and the status sent.

        Writing the segment asks every view for a frame at once (about 30-60 ms each with
        software rendering, on the page's event loop), and those frames were rendered before
        trame sent the new status: the status came 70-150 ms after the segment was written.
        """
        for view in self.context.slicer_app.view_manager.get_views():
            if not view.set_render_blocked(True):  # (one held by someone else stays theirs)
                self._held.append(view)

    def _release_views(self) -> None:
        """Render the held views once the status just flushed has left (trame sends it from the loop)."""
        if not self._held:
            return
        held, self._held = self._held, []

        def release() -> None:
            for view in held:
                view.set_render_blocked(False)  # and schedules a frame

        asyncio.get_event_loop().call_later(RELEASE_AFTER_S, release)

    def _set(self, **values: Any) -> None:
        self.context.set_state(**values)


def form_from_state(state: Any) -> Any:
    """The SegInteractive form of the panel's state: a new segment of a new segmentation."""
    return InteractiveForm.from_values({"backend": state[BACKEND], "device": state[DEVICE],
                                        "new_segment_name": state[NAME]})


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3

    panel = InteractivePanel(context)
    guard = context.shows_errors
    closed = (f"{OPEN} || {BUSY}",)
    v3.VSelect(v_model=(VOLUME,), items=(f"{NODES_KEY}.filter(n => n.kind === 'volume')",), item_title="name",
               item_value="id", label="Input volume", density="compact", hide_details=True, disabled=closed,
               classes="mb-2", raw_attrs=['data-testid="seginteractive-volume"'])
    v3.VTextField(v_model=(NAME,), label="Segment name", density="compact", disabled=closed,
                  hint="a new segment of a new segmentation", persistent_hint=True,
                  raw_attrs=['data-testid="seginteractive-name"'])
    v3.VSelect(v_model=(BACKEND,), items=(BACKENDS,), label="Backend", density="compact", hide_details=True,
               disabled=closed, classes="my-2", raw_attrs=['data-testid="seginteractive-backend"'])
    v3.VSelect(v_model=(DEVICE,), items=([{"title": t, "value": v} for v, t in DEVICE_TITLES.items()],),
               label="Device", density="compact", hide_details=True, disabled=closed, classes="mb-2",
               raw_attrs=['data-testid="seginteractive-device"'])
    v3.VBtn("Start session", click=guard(panel.start), block=True, disabled=(BUSY,), prepend_icon="mdi-play",
            raw_attrs=['data-testid="seginteractive-start"'])
    with html.Div(classes="d-flex flex-wrap my-2", style="gap: 4px;"):
        for mode, label, icon in (("positive", "Positive", "mdi-plus-circle"),
                                  ("negative", "Negative", "mdi-minus-circle"),
                                  ("box", "Box", "mdi-selection"),
                                  ("lasso", "Lasso", "mdi-lasso"),
                                  ("scribble", "Scribble", "mdi-draw")):
            v3.VBtn(label, size="small", prepend_icon=icon, click=(guard(panel.set_mode), f"['{mode}']"),
                    variant=(f"{MODE} === '{mode}' ? 'flat' : 'outlined'",),
                    color=(f"{MODE} === '{mode}' ? 'primary' : undefined",),
                    raw_attrs=[f'data-testid="seginteractive-{mode}"'])
    v3.VBtn("Lassos and scribbles erase", size="small", prepend_icon="mdi-eraser", class_="mb-2",
            click=(guard(panel.set_draw_negative), f"[!{DRAW_NEGATIVE}]"),
            variant=(f"{DRAW_NEGATIVE} ? 'flat' : 'outlined'",), color=(f"{DRAW_NEGATIVE} ? 'error' : undefined",),
            raw_attrs=['data-testid="seginteractive-draw-negative"',
                       f':aria-pressed="{DRAW_NEGATIVE} ? \'true\' : \'false\'"'])
    with html.Div(classes="d-flex flex-wrap mb-2", style="gap: 4px;"):
        for label, handler, icon, enabled in (
                ("Undo", panel.undo, "mdi-undo", f"{CAN_UNDO} && !{BUSY}"),
                ("Redo", panel.redo, "mdi-redo", f"{CAN_REDO} && !{BUSY}"),
                ("Reset", panel.reset, "mdi-restore", f"{OPEN} && !{BUSY}"),
                ("Accept", panel.accept, "mdi-check", f"{OPEN} && !{BUSY}"),
                ("Discard", panel.discard, "mdi-close", f"{OPEN}")):
            v3.VBtn(label, size="small", variant="outlined", prepend_icon=icon, click=guard(handler),
                    disabled=(f"!({enabled})",), raw_attrs=[f'data-testid="seginteractive-{label.lower()}"'])
    job_progress(context.state, KEY, on_cancel=lambda: panel.jobs.cancel(KEY))
    html.Div(f"{{{{ {STATUS} }}}}", classes="text-body-2", raw_attrs=['data-testid="seginteractive-status"'])
    html.Div(f"{{{{ {WARNING} }}}}", v_if=(WARNING,), classes="text-caption text-warning")
    with v3.VList(v_if=(f"{KEPT}.length",), density="compact", raw_attrs=['data-testid="seginteractive-kept"']):
        v3.VListSubheader("Kept segments")
        v3.VListItem(v_for=f"item in {KEPT}", title=("item.segment",),
                     subtitle=("`${item.segmentation}: ${item.voxels} voxels, ${item.ml} mL`",))


register_panel(Panel(id=KEY, title="SegInteractive", build=build, order=30))
