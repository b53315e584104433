"""PromptPlacement: where the user puts a session's prompts, in the views and the Segment Editor.

The panel decides what a prompt does (the session, the running job, the status line); this
owns the scene side it needs: the session's markers (:class:`PromptMarkers`), the views'
place mode into them, and the click in a view that defines a point, handed on to the panel
as (point list, index) once that point's position is defined.
"""
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.util import VTKObservationMixin

from SegForgeWidgets.placement import enterPlaceMode, leavePlaceMode, placingInto
from SegInteractiveLib.prompt_markers import PromptMarkers


class PromptPlacement(VTKObservationMixin):
    """The open session's markers (``markers``, None between sessions) and the sign of the next
    point and scribble (``positive``; T switches it). A point defined by a click in a view goes
    to ``onPointPlaced(pointList, index)``."""

    def __init__(self, onPointPlaced) -> None:
        VTKObservationMixin.__init__(self)
        self._onPointPlaced = onPointPlaced
        self.markers = None
        self.positive = True

    def open(self, volumeNode) -> None:
        """The session started: its point lists, listened to for clicks."""
        self.markers = PromptMarkers.create(slicer.mrmlScene, volumeNode)
        for pointList in (self.markers.positive, self.markers.negative):
            self.addObserver(pointList, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onPointDefined)

    def close(self) -> None:
        """The session ended: its markers leave the scene."""
        if self.markers is None:
            return
        for pointList in (self.markers.positive, self.markers.negative):
            self.removeObserver(pointList, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onPointDefined)
        self.markers.remove_all()
        self.markers = None

    def forget(self) -> None:
        """The scene closes (the markers go with it) or the panel is cleaned up: stop listening,
        remove nothing."""
        self.removeObservers()
        self.markers = None

    def placePoints(self, positive: bool) -> None:
        """Clicks in the views add points of this sign until stopped."""
        self.positive = positive
        enterPlaceMode(self.markers.positive if positive else self.markers.negative, persistent=True)

    def placingPoints(self) -> bool:
        """Whether the views place points into one of this session's point lists."""
        return self.markers is not None and placingInto(self.markers.positive, self.markers.negative)

    def stopPlacingPoints(self) -> None:
        if self.placingPoints():
            leavePlaceMode()

    def placeBox(self) -> None:
        """A fresh box: the next drag in a view draws it."""
        roi = self.markers.box_node()
        roi.RemoveAllControlPoints()
        enterPlaceMode(roi, persistent=False)

    def drawLasso(self) -> None:
        """A fresh closed curve, coloured by the current sign: clicks in a slice view place its
        points until the curve is closed (Apply lasso sends it)."""
        curve = self.markers.lasso_node(self.positive)
        enterPlaceMode(curve, persistent=True)

    def stopDrawingLasso(self) -> None:
        """Clicks stop adding points to the lasso (it is applied, or another tool is chosen)."""
        if self.markers is not None and self.markers.lasso is not None and placingInto(self.markers.lasso):
            leavePlaceMode()

    def openScribbleEditor(self, volumeNode) -> None:
        """The Segment Editor on the helper segmentation, Paint active, so that the scribble
        never lands in the segmentation being edited; the status bar says how to come back."""
        helper, segmentId = self.markers.scribble_segment()
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(helper)
        editor.setSourceVolumeNode(volumeNode)
        editor.setCurrentSegmentID(segmentId)
        editor.setActiveEffectByName("Paint")
        slicer.util.showStatusMessage(_("Paint the scribble, then go back to SegInteractive and Apply scribble."), 5000)

    def applied(self, kind: str, point) -> None:
        """A prompt changed the segment: the markers remember its point for undo and redo
        (``point``: (point list, index), or None for a box or scribble; for a lasso, its curve
        stays shown); an applied scribble is emptied, ready for the next stroke."""
        if self.markers is None:
            return
        if kind == "lasso":
            self.markers.curve_applied(point)
            return
        self.markers.applied(*(point or ()))
        if kind == "scribble":
            self.markers.clear_scribble()

    def refused(self, point) -> None:
        """A click was not used (refused, failed or cancelled): its point goes (a lasso is kept
        where the user drew it, to be corrected and applied again)."""
        if point is not None and self.markers is not None and isinstance(point, tuple):
            self.markers.refused(*point)

    def historyMoved(self, what: str) -> None:
        """The session's "undo", "redo" or "reset" changed it: the markers follow."""
        if self.markers is not None:
            {"undo": self.markers.undone, "redo": self.markers.redone, "reset": self.markers.reset}[what]()

    @vtk.calldata_type(vtk.VTK_INT)
    def _onPointDefined(self, caller, event, index=None) -> None:
        if index is None or not 0 <= index < caller.GetNumberOfControlPoints():
            index = caller.GetNumberOfControlPoints() - 1
        if self.markers is None or index < 0 \
                or caller.GetNthControlPointPositionStatus(index) != caller.PositionDefined:
            return
        self._onPointPlaced(caller, index)
