"""Points and an ROI drawn in Slicer's views as the engine's inputs: LPS millimetres.

The desktop panel and the web app both read the user's markups through these (seed points,
the source and target points of the centerlines, landmarks, the box), so a point means the
same on both.
"""
from __future__ import annotations

from typing import Any, Optional

from segforge.errors import InputError


def points_lps_from_markups(point_list_node: Any) -> tuple:
    """The defined control points of a point list, world RAS -> LPS millimetres (x and y negated)."""
    if point_list_node is None:
        return ()
    points = []
    for index in range(point_list_node.GetNumberOfControlPoints()):
        if point_list_node.GetNthControlPointPositionStatus(index) != point_list_node.PositionDefined:
            continue
        ras = [0.0, 0.0, 0.0]
        point_list_node.GetNthControlPointPositionWorld(index, ras)
        points.append((-ras[0], -ras[1], ras[2]))
    return tuple(points)


def source_lps_from_markups(point_list_node: Any) -> Optional[tuple]:
    """The one source point of a point list (LPS mm); None for no list or an empty one. A list
    with several points is refused: which of them is the source would be a guess."""
    points = points_lps_from_markups(point_list_node)
    if len(points) > 1:
        raise InputError(f"The source point list '{point_list_node.GetName()}' holds {len(points)} points",
                         "the centerlines start from one source point",
                         "keep one point in it (the others can be targets)")
    return points[0] if points else None


def roi_lps_from_markups(roi_node: Any) -> Optional[tuple]:
    """An ROI's world bounds as an LPS box (xmin, ymin, zmin, xmax, ymax, zmax) in mm; None without ROI.

    The engine limits the work to a box along the patient axes: an ROI turned along an oblique
    or tilted volume's axes (the web app's box, drawn in the volume's own slices) is taken as the
    bounds of the turned box, a little larger than it where it is turned, never cutting into it.
    """
    if roi_node is None:
        return None
    bounds = [0.0] * 6
    roi_node.GetRASBounds(bounds)  # world RAS: xmin, xmax, ymin, ymax, zmin, zmax
    return (-bounds[1], -bounds[3], bounds[4], -bounds[0], -bounds[2], bounds[5])
