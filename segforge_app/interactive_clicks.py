"""Clicks in the web slice views as world RAS positions: trame-slicer's markups placement.

The browser forwards mouse events to the server's render windows; with a markups point
list made the active place node (``markups_logic.place_node``) a click there defines a
control point, exactly as in Slicer. :class:`ClickPlacement` observes the lists it is
given and calls back with the list and the index of every point the user defined. Also
here: the box a user draws with two clicks, turned into an ROI with a depth, because two
clicks in a slice view lie in one plane and a box prompt needs a depth; its edges run along
the volume's axes, as the slice it was drawn in does.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

#: A box axis thinner than this fraction of its widest side is given that widest side as depth.
FLAT = 0.05
#: The attribute of the app's SlicerApp naming the ClickPlacement the views place for now.
PLACING_ATTRIBUTE = "_segforge_placing"
#: The box's colour (the ROI's, in SegInteractive's PromptMarkers).
BOX_COLOR = (0.95, 0.85, 0.2)


class ClickPlacement:
    """Point placement in the slice views into one of several observed point lists.

    The views place into one list at a time: a panel that starts placing takes the clicks from
    the one that placed before, whose ``on_taken`` is called (so its buttons stop saying it places).
    """

    def __init__(self, slicer_app: Any, on_placed: Callable[[Any, int], None],
                 on_taken: Optional[Callable[[], None]] = None) -> None:
        self.slicer_app = slicer_app
        self.on_placed = on_placed
        self.on_taken = on_taken
        self._observed: dict[str, tuple[Any, int]] = {}  # node ID -> (node, observer tag)
        self.active: Optional[Any] = None

    def observe(self, point_list: Any) -> None:
        """Call ``on_placed(point_list, index)`` whenever the user defines a point in ``point_list``."""
        from slicer import vtkMRMLMarkupsNode
        from vtkmodules.util.misc import calldata_type
        from vtkmodules.util.vtkConstants import VTK_INT

        @calldata_type(VTK_INT)
        def defined(caller: Any, _event: str, index: Any = None) -> None:
            count = caller.GetNumberOfControlPoints()
            if index is None or not 0 <= int(index) < count:
                index = count - 1
            if index >= 0 and caller.GetNthControlPointPositionStatus(int(index)) == caller.PositionDefined:
                self.on_placed(caller, int(index))

        tag = point_list.AddObserver(vtkMRMLMarkupsNode.PointPositionDefinedEvent, defined)
        self._observed[point_list.GetID()] = (point_list, tag)

    def place(self, point_list: Any) -> None:
        """Clicks in the views now place points into ``point_list`` (until :meth:`stop`)."""
        previous = getattr(self.slicer_app, PLACING_ATTRIBUTE, None)
        if previous is not None and previous is not self and previous.active is not None:
            previous.active = None
            if previous.on_taken is not None:
                previous.on_taken()
        setattr(self.slicer_app, PLACING_ATTRIBUTE, self)
        self.slicer_app.markups_logic.place_node(point_list, persistent=True)
        self.active = point_list

    def stop(self) -> None:
        """Back to moving and zooming the views."""
        if self.active is not None:
            self.active = None
            self.slicer_app.markups_logic.disable_place_mode()

    def forget_all(self) -> None:
        """Stop placing and observing (the session ended; its lists leave the scene)."""
        self.stop()
        for point_list, tag in self._observed.values():
            point_list.RemoveObserver(tag)
        self._observed.clear()


def corner_list(scene: Any) -> Any:
    """A point list for the two corners of a box (yellow, like the box's ROI; no labels)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", scene.GenerateUniqueName("SegInteractive box corners"))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetSelectedColor(*BOX_COLOR)
    display.SetColor(*BOX_COLOR)
    display.SetPointLabelsVisibility(False)
    return node


def point_ras(point_list: Any, index: int) -> list[float]:
    position = [0.0, 0.0, 0.0]
    point_list.GetNthControlPointPositionWorld(index, position)
    return position


def box_from_corners(corner_a: Sequence[float], corner_b: Sequence[float],
                     ijk_to_ras: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (RAS mm), size (mm along the box's axes) and axes (RAS, one edge direction per
    column) of the box two opposite corners clicked in one slice span.

    With ``ijk_to_ras`` (the volume's, whose own slices the views show) the box's edges run
    along the volume's axes, so on an oblique or gantry-tilted volume the box is the one drawn
    in its slice: taken along the patient axes, the depth came from the tilt (3 slices instead
    of 7) and a fully oblique box grew to twice the drawn size in-plane. Without it (a box for
    another purpose) the edges run along the patient axes. The axis the clicks share (the
    slice's normal) is given the box's widest side as depth, centred on the slice: a lesion is
    about as deep as it is wide. The engine clips the box to the volume.
    """
    a, b = np.asarray(corner_a, float), np.asarray(corner_b, float)
    if ijk_to_ras is None:
        axes = np.eye(3)
    else:
        matrix = np.asarray(ijk_to_ras, float)[:3, :3]
        axes = matrix / np.linalg.norm(matrix, axis=0)
    size = np.abs(axes.T @ (a - b))
    widest = float(size.max())
    size = np.where(size < FLAT * widest, widest, size)
    return (a + b) / 2, size, axes


def set_roi(roi_node: Any, centre: np.ndarray, size: np.ndarray, axes: Optional[np.ndarray] = None) -> None:
    """Put the ROI at ``centre`` (world RAS) with ``size`` along ``axes`` (RAS, one direction per
    column; the patient axes when None), shown as an outline."""
    from segforge.mrml.convert import vtk_matrix_from_array

    orientation = np.eye(4)  # always set: the ROI is reused, and the last box may have been turned
    if axes is not None:
        orientation[:3, :3] = axes
    roi_node.SetAndObserveObjectToNodeMatrix(vtk_matrix_from_array(orientation))
    roi_node.SetCenterWorld(*(float(v) for v in centre))
    roi_node.SetSizeWorld(*(float(v) for v in size))
    # Drawn as an outline only: the mask inside stays visible, and the box is not dragged (a
    # dragged box would not be applied again; the next box is drawn with two new clicks).
    display = roi_node.GetDisplayNode()
    display.SetFillVisibility(False)
    display.SetPropertiesLabelVisibility(False)
    display.SetHandlesInteractive(False)
    roi_node.SetLocked(True)
