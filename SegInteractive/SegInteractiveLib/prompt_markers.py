"""The scene nodes a user places prompts with, and what undo and redo do to them.

A session's prompts are shown where they were placed: positive clicks as green points,
negative ones red, the box as an ROI, each lasso as a closed curve and each stroke dragged
in a web slice view as an open curve (green or red by sign), scribbles painted into a helper
segmentation of their own (never the segmentation being edited, so the scribble is no "other
segment" to protect and is never saved with the result). Undo hides the last click's point
(or box, lasso, stroke), redo
shows it again, a new prompt drops the undone ones, and the session's end removes them all.
Qt-free, so the widget stays thin and this is tested headless.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from segforge.mrml.convert import array_from_vtk_matrix, vtk_matrix_from_array
from segforge.mrml.segments import new_segmentation_node, set_segment_mask
from segforge.mrml.volumes import volume_grid

POSITIVE_COLOR = (0.2, 0.85, 0.3)
NEGATIVE_COLOR = (0.95, 0.25, 0.2)
BOX_COLOR = (0.95, 0.85, 0.2)
SCRIBBLE_NAME = "scribble"
#: Control point size of lasso and stroke curves, relative to the views (Slicer's default is 3).
CURVE_GLYPH_SCALE = 1.0


@dataclass(frozen=True)
class _Curve:
    """An applied lasso or stroke: a curve node of its own, hidden by undo, removed by reset."""

    node: Any


@dataclass(frozen=True)
class _Box:
    """An applied box: the session's ROI and where it was (centre and size, world RAS, and its
    turn) when applied."""

    node: Any
    geometry: tuple[tuple[float, ...], ...]


def _roi_geometry(roi_node: Any) -> tuple[tuple[float, ...], ...]:
    """The ROI's centre, size and turn (its object-to-node matrix: a box drawn on an oblique
    volume is turned with it), to show an applied box again after a later one moved the ROI."""
    centre, size = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    roi_node.GetCenterWorld(centre)
    roi_node.GetSizeWorld(size)
    turn = tuple(array_from_vtk_matrix(roi_node.GetObjectToNodeMatrix())[:3, :3].ravel())
    return tuple(centre), tuple(size), turn


def _set_roi_geometry(roi_node: Any, geometry: tuple[tuple[float, ...], ...]) -> None:
    centre, size, turn = geometry
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(turn, (3, 3))
    roi_node.SetAndObserveObjectToNodeMatrix(vtk_matrix_from_array(matrix))
    roi_node.SetCenterWorld(*centre)
    roi_node.SetSizeWorld(*size)


@dataclass
class PromptMarkers:
    """Point lists, ROI and scribble segmentation of one session, and the points per prompt."""

    scene: Any
    volume_node: Any
    positive: Any = None
    negative: Any = None
    box: Optional[Any] = None
    scribbles: Optional[Any] = None
    lasso: Optional[Any] = None  # the closed curve being drawn, not applied yet
    _shown: list = field(default_factory=list)   # per applied prompt: (point list, point id) or None
    _hidden: list = field(default_factory=list)  # per undone prompt, last undone last

    @classmethod
    def create(cls, scene: Any, volume_node: Any) -> "PromptMarkers":
        markers = cls(scene, volume_node)
        markers.positive = markers._point_list("SegInteractive positive", POSITIVE_COLOR)
        markers.negative = markers._point_list("SegInteractive negative", NEGATIVE_COLOR)
        return markers

    def is_positive(self, point_list: Any) -> bool:
        return point_list is self.positive

    def box_node(self) -> Any:
        """The ROI the user drags around the lesion (created on first use)."""
        if self.box is None or self.scene.GetNodeByID(self.box.GetID()) is None:
            self.box = self.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode",
                                                    self.scene.GenerateUniqueName("SegInteractive box"))
            self.box.CreateDefaultDisplayNodes()
            self.box.GetDisplayNode().SetSelectedColor(*BOX_COLOR)
        return self.box

    def scribble_segment(self) -> tuple[Any, str]:
        """The helper segmentation and segment to paint a scribble into (created on first use)."""
        if self.scribbles is None or self.scene.GetNodeByID(self.scribbles.GetID()) is None:
            self.scribbles = new_segmentation_node(self.volume_node, "SegInteractive scribbles", scene=self.scene)
            self.scribbles.SetAttribute("SegInteractive.helper", "1")
        segmentation = self.scribbles.GetSegmentation()
        segment_id = segmentation.GetSegmentIdBySegmentName(SCRIBBLE_NAME)
        if not segment_id:
            segment_id = segmentation.AddEmptySegment(SCRIBBLE_NAME, SCRIBBLE_NAME, [0.3, 0.6, 1.0])
        return self.scribbles, segment_id

    def clear_scribble(self) -> None:
        """Empty the scribble segment after it was applied (ready for the next stroke)."""
        if self.scribbles is not None:
            node, segment_id = self.scribble_segment()
            set_segment_mask(node, segment_id, volume_grid(self.volume_node))

    def lasso_node(self, positive: bool = True) -> Any:
        """A fresh closed curve to draw the next lasso with (one being drawn and not applied goes)."""
        self.drop_lasso()
        self.lasso = self._curve("vtkMRMLMarkupsClosedCurveNode", "SegInteractive lasso", positive)
        return self.lasso

    def drop_lasso(self) -> None:
        """The lasso being drawn is not wanted (or was refused): it leaves the scene."""
        if self.lasso is not None:
            _remove_node(self.scene, self.lasso)
        self.lasso = None

    def lasso_from_points(self, points_ras: Any, positive: bool = True) -> Any:
        """A lasso drawn by dragging (the web views): a closed curve through the dragged positions,
        straight between them, so the curve shown is the contour used."""
        node = self.lasso_node(positive)
        node.SetCurveTypeToLinear()
        for point in points_ras:
            node.AddControlPointWorld(*(float(v) for v in point))
        return node

    def stroke_node(self, points_ras: Any, positive: bool = True) -> Any:
        """A stroke dragged in a view, shown as an open curve (straight between the positions)."""
        node = self._curve("vtkMRMLMarkupsCurveNode", "SegInteractive stroke", positive)
        node.SetCurveTypeToLinear()
        for point in points_ras:
            node.AddControlPointWorld(*(float(v) for v in point))
        return node

    def curve_applied(self, node: Any) -> None:
        """A lasso or stroke (``node``) was applied: it stays shown; undo hides it, redo shows it."""
        self.applied(None)
        self._shown[-1] = _Curve(node)
        if node is self.lasso:
            self.lasso = None

    def curve_refused(self, node: Any) -> None:
        """A lasso or stroke was not used: its curve leaves the scene."""
        if node is self.lasso:
            self.lasso = None
        _remove_node(self.scene, node)

    # -- prompts and history -------------------------------------------------------------------
    def applied(self, point_list: Optional[Any] = None, index: int = -1) -> None:
        """A prompt was applied: remember its point (None for a box or scribble); undone ones go."""
        for entry in self._hidden:
            self._remove(entry)
        self._hidden.clear()
        if point_list is None:
            self._shown.append(None)
        else:
            index = index if index >= 0 else point_list.GetNumberOfControlPoints() - 1
            self._shown.append((point_list, point_list.GetNthControlPointID(index)))

    def box_applied(self, roi_node: Any) -> None:
        """A box (``roi_node`` where it is now) was applied: undo hides it, redo shows it there again."""
        self.applied(None)
        self._shown[-1] = _Box(roi_node, _roi_geometry(roi_node))
        roi_node.SetDisplayVisibility(True)

    def box_refused(self) -> None:
        """A box was not used (refused or cancelled): its ROI goes back to the last applied box, or hides."""
        if self.box is not None:
            self._show_last_box()

    def refused(self, point_list: Any, index: int = -1) -> None:
        """A placed point was not used (refused or cancelled): take it away again."""
        index = index if index >= 0 else point_list.GetNumberOfControlPoints() - 1
        if 0 <= index < point_list.GetNumberOfControlPoints():
            point_list.RemoveNthControlPoint(index)

    def undone(self) -> None:
        if self._shown:
            entry = self._shown.pop()
            self._set_visible(entry, False)
            self._hidden.append(entry)
            if isinstance(entry, _Box):
                self._show_last_box()

    def redone(self) -> None:
        if self._hidden:
            entry = self._hidden.pop()
            self._set_visible(entry, True)
            self._shown.append(entry)

    def reset(self) -> None:
        for entry in self._shown + self._hidden:
            self._remove(entry)
        self._shown.clear()
        self._hidden.clear()
        if self.box is not None and self.scene.GetNodeByID(self.box.GetID()) is not None:
            self.box.SetDisplayVisibility(False)

    def remove_all(self) -> None:
        """The session ended: its helper nodes leave the scene."""
        self.reset()
        self.drop_lasso()
        for node in (self.positive, self.negative, self.box, self.scribbles):
            if node is not None:
                _remove_node(self.scene, node)
        self.positive = self.negative = self.box = self.scribbles = None

    # -- helpers ---------------------------------------------------------------------------------
    def _point_list(self, name: str, color: tuple[float, float, float]) -> Any:
        node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", self.scene.GenerateUniqueName(name))
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetSelectedColor(*color)
        display.SetColor(*color)
        display.SetPointLabelsVisibility(False)
        node.SetControlPointLabelFormat("")
        return node

    def _show_last_box(self) -> None:
        """The ROI shows the latest box still applied, or nothing when none is."""
        last = next((entry for entry in reversed(self._shown) if isinstance(entry, _Box)), None)
        if last is None:
            self.box.SetDisplayVisibility(False)
        else:
            self._set_visible(last, True)

    def _curve(self, class_name: str, name: str, positive: bool) -> Any:
        node = self.scene.AddNewNodeByClass(class_name, self.scene.GenerateUniqueName(name))
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
        display.SetSelectedColor(*color)
        display.SetColor(*color)
        display.SetPointLabelsVisibility(False)
        display.SetPropertiesLabelVisibility(False)
        display.SetGlyphScale(CURVE_GLYPH_SCALE)  # a dragged curve has many points: the line shows it
        node.SetControlPointLabelFormat("")
        return node

    @staticmethod
    def _set_visible(entry: Any, visible: bool) -> None:
        if isinstance(entry, _Curve):
            entry.node.SetDisplayVisibility(visible)
        elif isinstance(entry, _Box):
            if visible:
                _set_roi_geometry(entry.node, entry.geometry)
            entry.node.SetDisplayVisibility(visible)
        elif entry is not None:
            point_list, point_id = entry
            index = point_list.GetNthControlPointIndexByID(point_id)
            if index >= 0:
                point_list.SetNthControlPointVisibility(index, visible)

    def _remove(self, entry: Any) -> None:
        if isinstance(entry, _Curve):
            _remove_node(self.scene, entry.node)
        elif entry is not None and not isinstance(entry, _Box):  # the box's ROI is shared: hidden, not removed
            point_list, point_id = entry
            index = point_list.GetNthControlPointIndexByID(point_id)
            if index >= 0:
                point_list.RemoveNthControlPoint(index)


def _remove_node(scene: Any, node: Any) -> None:
    """Take ``node`` and its display nodes out of the scene (Slicer leaves the displays behind,
    headless at least)."""
    if scene.GetNodeByID(node.GetID()) is None:
        return
    displays = [node.GetNthDisplayNode(n) for n in range(node.GetNumberOfDisplayNodes())]
    scene.RemoveNode(node)
    for display in displays:
        if display is not None and display.GetScene() is scene:
            scene.RemoveNode(display)
