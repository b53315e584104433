"""Prompts from what the user placed in Slicer: RAS positions, markups points, ROIs and closed
curves, painted segments, strokes dragged in a slice view.

Slicer shows and stores positions in world RAS millimetres; the engine's prompts are LPS.
Every conversion happens here, in world coordinates (parent transforms applied), so a
prompt lands on the voxel the user saw it on, on oblique and anisotropic volumes too.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from segforge.errors import InputError
from segforge.image import LPS_TO_RAS, Image
from segforge.interactive.lasso import lasso_prompt
from segforge.interactive.prompts import BoxPrompt, LassoPrompt, PointPrompt, ScribblePrompt, shown_value
from segforge.mrml.convert import array_from_vtk_matrix
from segforge.mrml.segments import mask_from_segment

#: RAS <-> LPS: x and y change sign (the matrix is its own inverse).
_FLIP = np.diag(LPS_TO_RAS)[:3]


def lps_from_ras(position_ras: Sequence[float]) -> np.ndarray:
    """A world RAS position (mm) in LPS; InputError unless it is three finite numbers, showing
    the position as given (the engine's spelling: [nan, 0, 0], not numpy's np.float64(nan))."""
    try:
        point = np.asarray(position_ras, dtype=np.float64).ravel()
    except (TypeError, ValueError, OverflowError):  # None, "abc", an integer too large for a float
        point = np.zeros(0)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        what = f"A position is {shown_value(position_ras)}"
        raise InputError(what, "it must be three finite numbers (R, A, S in mm)",
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
    """A markups ROI as a box. An ROI along the patient axes is its world bounding box; an ROI
    turned (with an oblique or tilted volume, or by the user) keeps its turn: its world
    corners and edge directions go to the engine, which takes exactly the voxels of an ROI
    aligned with the volume (its bounding box along the patient axes held 1.8 to 19.5 times
    them). Under a transform that shears or scales unevenly, the world bounding box."""
    if roi_node is None or not roi_node.IsA("vtkMRMLMarkupsROINode"):
        kind = "nothing" if roi_node is None else roi_node.GetClassName()
        raise InputError(f"Expected a markups ROI, got {kind}", "boxes come from ROI nodes",
                         "place an ROI around the lesion (Box button)")
    if roi_node.GetNumberOfControlPoints() == 0:
        raise InputError(f"ROI '{roi_node.GetName()}' is not placed yet", "it has no position",
                         "place the ROI around the lesion first")
    edges = array_from_vtk_matrix(roi_node.GetObjectToWorldMatrix())[:3, :3]
    axes = edges / np.linalg.norm(edges, axis=0)
    along_patient = np.allclose(np.abs(axes), np.round(np.abs(axes)), atol=1e-6)
    if along_patient or not np.allclose(axes.T @ axes, np.eye(3), atol=1e-6):
        bounds = [0.0] * 6
        roi_node.GetRASBounds(bounds)
        return box_prompt(bounds[0::2], bounds[1::2], positive)
    centre, size = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    roi_node.GetCenterWorld(centre)
    roi_node.GetSizeWorld(size)
    half = axes @ (np.asarray(size) / 2)
    low, high = lps_from_ras(np.asarray(centre) - half), lps_from_ras(np.asarray(centre) + half)
    axes_lps = (axes * _FLIP[:, None]).T  # one LPS direction per row
    return BoxPrompt(tuple(float(v) for v in low), tuple(float(v) for v in high), bool(positive),  # type: ignore[arg-type]
                     tuple(tuple(float(v) for v in axis) for axis in axes_lps))


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


def curve_lasso_prompt(curve_node: Any, positive: bool = True) -> LassoPrompt:
    """A markups closed curve as a lasso: the contour as the views draw it (its interpolated
    curve points, world coordinates, parent transforms applied). An open curve encloses nothing
    and is refused, as is a curve of fewer than 3 points."""
    if curve_node is None or not curve_node.IsA("vtkMRMLMarkupsCurveNode"):
        kind = "nothing" if curve_node is None else curve_node.GetClassName()
        raise InputError(f"Expected a markups closed curve, got {kind}", "a lasso is a closed curve drawn in a slice",
                         "draw the lasso with the Lasso tool (a closed curve) in a slice view")
    if not curve_node.IsA("vtkMRMLMarkupsClosedCurveNode"):
        raise InputError(f"The lasso '{curve_node.GetName()}' is not closed",
                         "it is an open curve, which does not enclose a region",
                         "draw a closed curve (Lasso tool) around the object, or paint a scribble for a stroke")
    count = curve_node.GetNumberOfDefinedControlPoints()
    if count < 3:
        raise InputError(f"The lasso '{curve_node.GetName()}' has fewer than 3 points", f"it has {count}",
                         "draw a loop around the object in one slice view (drag it, or click three points or more)")
    points = curve_node.GetCurvePointsWorld()
    ras = np.array([points.GetPoint(n) for n in range(points.GetNumberOfPoints())] if points else [], np.float64)
    if len(ras) < 3 or count < curve_node.GetNumberOfControlPoints():
        # not interpolated yet, or a point still follows the mouse (being placed): the points
        # the user has set are the contour
        ras = np.array([_world_point(curve_node, n) for n in range(curve_node.GetNumberOfControlPoints())
                        if curve_node.GetNthControlPointPositionStatus(n) == curve_node.PositionDefined])
    return lasso_prompt(ras * _FLIP, bool(positive))


def stroke_scribble_prompt(points_ras: Sequence[Sequence[float]], grid: Image, positive: bool = True) -> ScribblePrompt:
    """A stroke dragged in a slice view (its world RAS positions, in order) as a scribble: the
    stroke sampled every half of the volume's finest spacing, so every voxel it passes over is
    painted, however fast the pointer moved between two positions."""
    ras = np.asarray(points_ras, dtype=np.float64)
    if ras.ndim != 2 or ras.shape[1:] != (3,) or len(ras) == 0 or not np.all(np.isfinite(ras)):
        raise InputError("The stroke holds no usable position", f"its positions have the shape {ras.shape}",
                         "drag over the object in a slice view to paint a stroke")
    step = 0.5 * float(min(grid.spacing))
    samples = [ras[:1]]
    for start, end in zip(ras[:-1], ras[1:]):
        count = max(int(np.ceil(np.linalg.norm(end - start) / step)), 1)
        samples.append(start + np.outer(np.arange(1, count + 1) / count, end - start))
    return ScribblePrompt(np.concatenate(samples) * _FLIP, bool(positive))


def _world_point(markups_node: Any, index: int) -> list[float]:
    position = [0.0, 0.0, 0.0]
    markups_node.GetNthControlPointPositionWorld(index, position)
    return position
