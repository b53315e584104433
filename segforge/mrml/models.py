"""Surface meshes and centerline polylines as model nodes, with their point arrays kept.

Engine meshes come from ITK-side code in LPS or from VTK code in RAS; the caller must say
which (``space``), and the node always holds RAS as Slicer expects. Point arrays (radius,
branch id, curvature...) travel with the mesh and one of them can colour it.
"""
from __future__ import annotations

import logging
from typing import Any, Literal, Optional

import slicer
import vtk

from .scene import get_scene

logger = logging.getLogger(__name__)

#: Colour table used to show a model's scalars (one of the tables the colour logic always adds).
SCALAR_COLOR_TABLE_ID = "vtkMRMLColorTableNodeRainbow"


def model_from_polydata(polydata: vtk.vtkPolyData, *, space: Literal["RAS", "LPS"], name: str = "Model",
                        color: Optional[tuple[float, float, float]] = None, scalars: Optional[str] = None,
                        scene: Optional[Any] = None) -> Any:
    """A new model node holding a copy of ``polydata`` (points in world ``space`` millimetres).

    ``scalars`` names a point array to colour the model by (over its full value range).
    """
    if space not in ("RAS", "LPS"):
        raise ValueError(f"space must be 'RAS' or 'LPS', not {space!r}")
    if scalars is not None and polydata.GetPointData().GetArray(scalars) is None:
        raise ValueError(f"the mesh has no point array {scalars!r}")
    mesh = _in_ras(polydata, space)
    scene = scene or get_scene()
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", scene.GenerateUniqueName(name))
    node.SetAndObservePolyData(mesh)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if color is not None:
        display.SetColor(*color)
    if scalars is not None:
        display.SetActiveScalar(scalars, vtk.vtkAssignAttribute.POINT_DATA)
        display.SetAndObserveColorNodeID(SCALAR_COLOR_TABLE_ID)
        display.SetScalarRangeFlag(slicer.vtkMRMLDisplayNode.UseDataScalarRange)
        display.ScalarVisibilityOn()
    logger.debug("model '%s': %d points, %d cells", node.GetName(), mesh.GetNumberOfPoints(), mesh.GetNumberOfCells())
    return node


def _in_ras(polydata: vtk.vtkPolyData, space: str) -> vtk.vtkPolyData:
    if space == "RAS":
        copy = vtk.vtkPolyData()
        copy.DeepCopy(polydata)
        return copy
    flip = vtk.vtkTransform()
    flip.Scale(-1.0, -1.0, 1.0)  # LPS <-> RAS; two flips keep the triangles' orientation
    transformer = vtk.vtkTransformPolyDataFilter()
    transformer.SetTransform(flip)
    transformer.SetInputData(polydata)
    transformer.Update()
    return transformer.GetOutput()
