"""Centerlines as markups curves with a per-point Radius, the way Slicer's own tools store them.

A vessel branch becomes a ``vtkMRMLMarkupsCurveNode`` whose control points are the
centerline points and whose ``Radius`` is a ``vtkMRMLStaticMeasurement`` with one value
per control point. The curve is linear with one curve point per control point, so the
curve's point data (``slicer.util.arrayFromMarkupsCurveData(curve, "Radius", world=True)``)
holds exactly the given radii, and the measurement is saved in ``.mrk.json``.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import slicer
import vtk
from vtkmodules.util import numpy_support

from ..image import LPS_TO_RAS
from .scene import get_scene

logger = logging.getLogger(__name__)

RADIUS = "Radius"


def curve_from_polyline(*, points_lps: Optional[np.ndarray] = None, points_ras: Optional[np.ndarray] = None,
                        radius_mm: Optional[Sequence[float]] = None, name: str = "Centerline",
                        color: Optional[tuple[float, float, float]] = None,
                        scene: Optional[Any] = None) -> Any:
    """A new curve node through the points (world millimetres, give exactly one of LPS or RAS).

    ``radius_mm`` (one value per point) becomes the curve's ``Radius`` measurement.
    """
    if (points_lps is None) == (points_ras is None):
        raise ValueError("give exactly one of points_lps and points_ras")
    points = np.asarray(points_lps if points_ras is None else points_ras, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 2:
        raise ValueError(f"a curve needs an (N, 3) array with N >= 2, got shape {points.shape}")
    if points_ras is None:
        points = points * np.diag(LPS_TO_RAS)[:3]
    scene = scene or get_scene()
    curve = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", scene.GenerateUniqueName(name))
    curve.CreateDefaultDisplayNodes()
    curve.SetCurveTypeToLinear()
    curve.SetNumberOfPointsPerInterpolatingSegment(1)
    curve.SetControlPointLabelFormat("")
    display = curve.GetDisplayNode()
    display.SetPointLabelsVisibility(False)
    display.SetPropertiesLabelVisibility(False)
    if color is not None:
        display.SetSelectedColor(*color)
        display.SetColor(*color)
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points), deep=True))
    curve.SetControlPointPositionsWorld(vtk_points)
    if radius_mm is not None:
        set_point_measurement(curve, RADIUS, radius_mm, units="mm")
    logger.debug("curve '%s' with %d points", curve.GetName(), len(points))
    return curve


def set_point_measurement(curve: Any, name: str, values: Sequence[float], units: str = "") -> Any:
    """Attach (or replace) a per-control-point measurement, e.g. ``Radius`` in mm.

    The values also become the curve's point data array of that name.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) != curve.GetNumberOfControlPoints():
        raise ValueError(f"{name} has {len(values)} values for {curve.GetNumberOfControlPoints()} control points")
    for index in reversed(range(curve.GetNumberOfMeasurements())):
        if curve.GetNthMeasurement(index).GetName() == name:
            curve.RemoveNthMeasurement(index)
    array = numpy_support.numpy_to_vtk(values, deep=True, array_type=vtk.VTK_DOUBLE)
    array.SetName(name)
    measurement = slicer.vtkMRMLStaticMeasurement()
    measurement.SetName(name)
    measurement.SetUnits(units)
    measurement.SetPrintFormat("%-#4.4g%s")
    measurement.SetControlPointValues(array)
    # Adding a measurement that already holds its values makes the curve interpolate them
    # into its point data; changing the values of an added one would not.
    curve.AddMeasurement(measurement)
    return measurement


def point_measurement(curve: Any, name: str) -> np.ndarray:
    """The per-control-point values of a measurement (a copy)."""
    measurement = curve.GetMeasurement(name)
    if measurement is None or measurement.GetControlPointValues() is None:
        raise KeyError(f"curve '{curve.GetName()}' has no per-point measurement {name!r}")
    return numpy_support.vtk_to_numpy(measurement.GetControlPointValues()).copy()


def control_points_lps(curve: Any) -> np.ndarray:
    """The curve's control points in world LPS millimetres, (N, 3)."""
    points = vtk.vtkPoints()
    points.SetDataTypeToDouble()  # the default float32 would round the positions
    curve.GetControlPointPositionsWorld(points)
    return numpy_support.vtk_to_numpy(points.GetData()).astype(np.float64) * np.diag(LPS_TO_RAS)[:3]


def point_list_from_points(points_lps: np.ndarray, labels: Sequence[str], name: str = "Points",
                           color: Optional[tuple[float, float, float]] = None, scene: Optional[Any] = None) -> Any:
    """A new markups point list (fiducials) at LPS points, one label each (e.g. stenosis findings)."""
    points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    if len(labels) != len(points):
        raise ValueError(f"{len(labels)} labels for {len(points)} points")
    scene = scene or get_scene()
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    if color is not None:
        node.GetDisplayNode().SetSelectedColor(*color)
    for point, label in zip(points * np.diag(LPS_TO_RAS)[:3], labels):
        node.AddControlPointWorld(vtk.vtkVector3d(*point), str(label))
    return node
