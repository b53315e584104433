"""Drags in the web slice views as world RAS paths: how a lasso or a scribble is drawn in the browser.

Clicks are placed by trame-slicer's markups placement (:mod:`.interactive_clicks`), but a
lasso and a stroke are drawn by dragging, which no markups widget records. The browser
forwards mouse events to each slice view's render window interactor on the server; while a
:class:`DragDrawing` is on, it observes those interactors ahead of Slicer's own interactor
style (a higher observer priority) and consumes the left button's press, moves and release,
so a drag draws instead of changing window/level. Each position is taken from display to
world RAS through the slice node's XY-to-RAS matrix, which is exact for any slice
orientation; the path is drawn as a line in that view while dragging, and handed on, in
order, at release. What the path becomes (a lasso, a scribble) is decided by the Logic.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

#: Observer priority above the slice view interactor style's (0): our callbacks run first.
PRIORITY = 10.0
#: A new position is kept when it lies this many display pixels from the last one kept.
MIN_STEP_PX = 2.0
#: The line's colour while dragging, by sign (the applied prompt's markers use the same ones).
COLORS = {True: (0.2, 0.85, 0.3), False: (0.95, 0.25, 0.2)}


class _Trace:
    """The path being dragged in one view: display positions, and the 2D line that shows them."""

    def __init__(self, renderer: Any, color: tuple[float, float, float], closed: bool) -> None:
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkRenderingCore import vtkActor2D, vtkPolyDataMapper2D

        self.renderer, self.closed = renderer, closed
        self.display: list[tuple[float, float]] = []
        self.points, self.lines = vtkPoints(), vtkCellArray()
        self.polydata = vtkPolyData()
        self.polydata.SetPoints(self.points)
        self.polydata.SetLines(self.lines)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(self.polydata)
        self.actor = vtkActor2D()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(*color)
        self.actor.GetProperty().SetLineWidth(2.0)
        renderer.AddViewProp(self.actor)

    def add(self, x: float, y: float) -> bool:
        """Keep a display position (False: too close to the last one to matter)."""
        if self.display and np.hypot(x - self.display[-1][0], y - self.display[-1][1]) < MIN_STEP_PX:
            return False
        self.display.append((x, y))
        self.points.InsertNextPoint(x, y, 0.0)
        count = len(self.display)
        self.lines.Reset()
        order = list(range(count)) + ([0] if self.closed and count > 2 else [])
        self.lines.InsertNextCell(len(order), order)
        self.points.Modified()
        self.polydata.Modified()
        return True

    def remove(self) -> None:
        self.renderer.RemoveViewProp(self.actor)


class DragDrawing:
    """Left-button drags in the slice views, while on, become paths handed to
    ``on_drawn(points_ras, view_node)``: an (N, 3) array of world RAS positions in drag order."""

    def __init__(self, slicer_app: Any, on_drawn: Callable[[np.ndarray, Any], None]) -> None:
        self.slicer_app = slicer_app
        self.on_drawn = on_drawn
        self.closed = False
        self.positive = True
        self._observed: list[tuple[Any, list[int]]] = []
        self._view: Optional[Any] = None  # the view being dragged in
        self._trace: Optional[_Trace] = None

    @property
    def active(self) -> bool:
        return bool(self._observed)

    def start(self, closed: bool, positive: bool) -> None:
        """Drags now draw (``closed``: shown as a closed contour, a lasso) until :meth:`stop`."""
        from vtkmodules.vtkCommonCore import vtkCommand

        self.stop()
        self.closed, self.positive = closed, positive
        for view in self._slice_views():
            interactor = view.interactor()
            tags = []
            for event, handler in ((vtkCommand.LeftButtonPressEvent, self._press),
                                   (vtkCommand.MouseMoveEvent, self._move),
                                   (vtkCommand.LeftButtonReleaseEvent, self._release)):
                holder: dict[str, int] = {}
                holder["tag"] = interactor.AddObserver(event, self._consuming(view, handler, holder), PRIORITY)
                tags.append(holder["tag"])
            self._observed.append((interactor, tags))

    def stop(self) -> None:
        """Drags change the views again (window/level, panning); a drag under way is dropped."""
        for interactor, tags in self._observed:
            for tag in tags:
                interactor.RemoveObserver(tag)
        self._observed.clear()
        self._end_trace()

    # -- events ----------------------------------------------------------------------------------

    @staticmethod
    def _consuming(view: Any, handler: Callable[[Any, Any], bool],
                   holder: dict[str, int]) -> Callable[[Any, str], None]:
        """An observer that calls ``handler(view, interactor)`` and, when it took the event, stops
        Slicer's interactor style from seeing it (the abort flag of its own command, ``holder["tag"]``)."""
        def observer(interactor: Any, _event: str) -> None:
            if handler(view, interactor):
                command = interactor.GetCommand(holder["tag"])
                if command is not None:
                    command.SetAbortFlag(1)

        return observer

    def _press(self, view: Any, interactor: Any) -> bool:
        if self._placing():
            return False  # another panel places points with clicks now: the click is theirs
        self._end_trace()
        self._view = view
        self._trace = _Trace(view.renderer(), COLORS[self.positive], self.closed)
        self._trace.add(*interactor.GetEventPosition())
        view.schedule_render()
        return True

    def _move(self, view: Any, interactor: Any) -> bool:
        if self._trace is None or view is not self._view:
            return False  # no drag under way: the pointer's moves are Slicer's (cursor position...)
        if self._trace.add(*interactor.GetEventPosition()):
            view.schedule_render()
        return True

    def _release(self, view: Any, interactor: Any) -> bool:
        if self._trace is None or view is not self._view:
            return False
        self._trace.add(*interactor.GetEventPosition())
        display = np.asarray(self._trace.display, dtype=np.float64)
        slice_node = view.get_view_node()
        self._end_trace()
        self.on_drawn(ras_of_display(slice_node, display), slice_node)
        return True

    def _end_trace(self) -> None:
        if self._trace is not None:
            self._trace.remove()
            if self._view is not None:
                self._view.schedule_render()
        self._trace, self._view = None, None

    def _placing(self) -> bool:
        from slicer import vtkMRMLInteractionNode

        node = self.slicer_app.markups_logic.interaction_node
        return node is not None and node.GetCurrentInteractionMode() == vtkMRMLInteractionNode.Place

    def _slice_views(self) -> list[Any]:
        from trame_slicer.views import SliceView

        return [view for view in self.slicer_app.view_manager.get_views() if isinstance(view, SliceView)]


def ras_of_display(slice_node: Any, display_xy: np.ndarray) -> np.ndarray:
    """World RAS positions (N, 3) of display positions (N, 2, pixels from the bottom left) of a
    slice view, on its slice plane."""
    matrix = slice_node.GetXYToRAS()
    xy_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    xy = np.c_[display_xy, np.zeros(len(display_xy)), np.ones(len(display_xy))]
    return (xy @ xy_to_ras.T)[:, :3]
