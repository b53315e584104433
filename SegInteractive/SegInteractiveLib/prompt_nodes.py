"""Prompts from what the user placed in Slicer: RAS positions, markups points and ROIs, painted segments.

Slicer shows and stores positions in world RAS millimetres; the engine's prompts are LPS.
Every conversion happens here, in world coordinates (parent transforms applied), so a
prompt lands on the voxel the user saw it on, on oblique and anisotropic volumes too.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from segforge.errors import InputError
from segforge.image import LPS_TO_RAS, Image
from segforge.interactive.prompts import BoxPrompt, PointPrompt, ScribblePrompt
from segforge.mrml.segments import mask_from_segment

#: RAS <-> LPS: x and y change sign (the matrix is its own inverse).
_FLIP = np.diag(LPS_TO_RAS)[:3]


def lps_from_ras(position_ras: Sequence[float]) -> np.ndarray:
    """A world RAS position (mm) in LPS; InputError unless it is three finite numbers."""
    point = np.asarray(position_ras, dtype=np.float64).ravel()
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise InputError(f"A position is {list(point)}", "it must be three finite numbers (R, A, S in mm)",
                         "place the point on the volume being segmented")
    return point * _FLIP


def point_prompt(position_ras: Sequence[float], positive: bool = True) -> PointPrompt:
    """A click at a world RAS position."""
    return PointPrompt(tuple(float(v) for v in lps_from_ras(position_ras)), bool(positive))  # type: ignore[arg-type]


def box_prompt(corner_a_ras: Sequence[float], corner_b_ras: Sequence[float], positive: bool = True) -> BoxPrompt:
    """A box between two opposite world RAS corners (any two; negating x, y swaps min and max)."""
    a, b = lps_from_ras(corner_a_ras), lps_from_ras(corner_b_ras)
    low, high = np.minimum(a, b), np.maximum(a, b)
    return BoxPrompt(tuple(float(v) for v in low), tuple(float(v) for v in high), bool(positive))  # type: ignore[arg-type]


def roi_prompt(roi_node: Any, positive: bool = True) -> BoxPrompt:
    """A markups ROI as a box: its world bounding box (a rotated or transformed ROI's too)."""
    if roi_node is None or not roi_node.IsA("vtkMRMLMarkupsROINode"):
        kind = "nothing" if roi_node is None else roi_node.GetClassName()
        raise InputError(f"Expected a markups ROI, got {kind}", "boxes come from ROI nodes",
                         "place an ROI around the lesion (Box button)")
    if roi_node.GetNumberOfControlPoints() == 0:
        raise InputError(f"ROI '{roi_node.GetName()}' is not placed yet", "it has no position",
                         "place the ROI around the lesion first")
    bounds = [0.0] * 6
    roi_node.GetRASBounds(bounds)
    return box_prompt(bounds[0::2], bounds[1::2], positive)


def markups_point_prompt(fiducial_node: Any, index: int, positive: bool = True) -> tuple[PointPrompt, Optional[Any]]:
    """Control point ``index`` of a markups point list as a click, and the volume it was placed
    on (Slicer records it as the point's associated node; None when unknown)."""
    if fiducial_node is None or not fiducial_node.IsA("vtkMRMLMarkupsNode"):
        kind = "nothing" if fiducial_node is None else fiducial_node.GetClassName()
        raise InputError(f"Expected a markups point list, got {kind}", "clicks come from markups points",
                         "place a point on the lesion")
    count = fiducial_node.GetNumberOfControlPoints()
    if not 0 <= index < count:
        raise InputError(f"'{fiducial_node.GetName()}' has no point {index}", f"it has {count} points",
                         "place the point first")
    position = [0.0, 0.0, 0.0]
    fiducial_node.GetNthControlPointPositionWorld(index, position)
    associated_id = fiducial_node.GetNthControlPointAssociatedNodeID(index)
    scene = fiducial_node.GetScene()
    associated = scene.GetNodeByID(associated_id) if associated_id and scene is not None else None
    return point_prompt(position, positive), associated


def scribble_prompt(segmentation_node: Any, segment_id: str, volume_node: Any, grid: Image,
                    positive: bool = True) -> ScribblePrompt:
    """A painted segment as a scribble: the centres (LPS) of the session volume's voxels it covers."""
    if segmentation_node is None or segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
        raise InputError(f"There is no scribble segment '{segment_id}'", "it may have been deleted",
                         "paint the scribble with the Segment Editor's Paint effect, then apply it")
    painted = np.argwhere(mask_from_segment(segmentation_node, segment_id, volume_node).array)
    if painted.size == 0:
        raise InputError("The scribble is empty", f"no voxel of '{volume_node.GetName()}' is painted in it",
                         "paint a stroke on the lesion (Segment Editor, Paint), then apply it")
    ijk1 = np.c_[painted[:, ::-1], np.ones(len(painted))]
    return ScribblePrompt((ijk1 @ grid.ijk_to_lps().T)[:, :3], bool(positive))
