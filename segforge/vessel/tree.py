"""The vessel result as front ends use it, and its form on the wire.

The engine's graph holds internals (nodes, components) a Slicer scene or a CSV file does
not need. :class:`VesselTree` keeps what they show: the mask, each branch's points and
radii, the branch and stenosis tables, the surface and a summary. The worker sends it as
arrays plus small JSON rows (never voxel or point lists in JSON), and the CLI goes
through the same conversion, so both front ends see identical values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkCommonCore import vtkPoints

from ..image import Image
from .pipeline import VesselResult


@dataclass(frozen=True)
class BranchLine:
    """One branch: ordered centreline points (LPS mm), radius at each (mm), parent branch."""

    id: int
    parent: Optional[int]
    points_lps: np.ndarray
    radii_mm: np.ndarray


@dataclass
class VesselTree:
    """What the vessel workflow gives a front end."""

    mask: Image
    branches: list[BranchLine] = field(default_factory=list)
    branch_rows: list[dict[str, Any]] = field(default_factory=list)
    finding_rows: list[dict[str, Any]] = field(default_factory=list)
    surface: Optional[vtkPolyData] = None
    summary: dict[str, Any] = field(default_factory=dict)


def _finding_row(finding: Any) -> dict[str, Any]:
    """One finding as a row: ``kind`` ("stenosis" or "dilatation"), ``ratio`` (its diameter
    over the reference), and the keys rows had before dilatations existed (a dilatation's
    ``stenosis_percent`` is 0)."""
    x, y, z = (float(c) for c in finding.position_lps)
    return {"kind": finding.kind, "branch": finding.branch,
            "stenosis_percent": round(float(finding.stenosis_percent), 2), "ratio": round(float(finding.ratio), 3),
            "minimal_diameter_mm": float(finding.minimal_diameter_mm),
            "maximal_diameter_mm": float(finding.maximal_diameter_mm),
            "reference_diameter_mm": float(finding.reference_diameter_mm), "arc_mm": float(finding.arc_mm),
            "length_mm": float(finding.length_mm), "x_lps": x, "y_lps": y, "z_lps": z}


def to_wire(result: VesselResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arrays and JSON metadata carrying a pipeline result."""
    arrays: dict[str, Any] = {"mask": result.mask}
    meta: dict[str, Any] = {"seconds": dict(result.seconds), "branches": [], "branch_rows": [], "finding_rows": []}
    if result.graph is not None:
        branches = result.graph.branches
        arrays["centerline_points"] = (np.concatenate([b.points_lps for b in branches]) if branches
                                       else np.zeros((0, 3)))
        arrays["centerline_radii"] = (np.concatenate([b.radii_mm for b in branches]) if branches else np.zeros(0))
        meta["branches"] = [{"id": b.id, "parent": b.parent, "points": len(b.points_lps)} for b in branches]
        meta["branch_rows"] = [{"id": m.branch, **{k: v for k, v in asdict(m).items() if k != "branch"}}
                               for m in result.metrics]
    if result.stenoses is not None:
        meta["finding_rows"] = [_finding_row(f) for f in result.stenoses.findings]
    if result.surface is not None:
        points = vtk_to_numpy(result.surface.GetPoints().GetData()).astype(np.float64)
        triangles = vtk_to_numpy(result.surface.GetPolys().GetConnectivityArray()).reshape(-1, 3)
        arrays["surface_points"] = points
        arrays["surface_triangles"] = triangles.astype(np.int64)
    meta["summary"] = _summary(result, meta)
    return arrays, meta


def _summary(result: VesselResult, meta: dict[str, Any]) -> dict[str, Any]:
    graph = result.graph
    return {"mask_model": result.mask_model,
            "mask_voxels": int(np.count_nonzero(result.mask.array)),
            "mask_volume_ml": float(np.count_nonzero(result.mask.array) * np.prod(result.mask.spacing) / 1000.0),
            "branches": len(graph.branches) if graph else None,
            "bifurcations": len(graph.bifurcations) if graph else None,
            "endpoints": len(graph.endpoints) if graph else None,
            "components": graph.component_count if graph else None,
            "total_length_mm": graph.total_length_mm if graph else None,
            "stenoses": _count(meta["finding_rows"], "stenosis") if result.stenoses is not None else None,
            "dilatations": _count(meta["finding_rows"], "dilatation") if result.stenoses is not None else None,
            "graded_percent": round(100 * result.stenoses.graded_fraction, 1) if result.stenoses is not None else None,
            "surface_triangles": int(result.surface.GetNumberOfCells()) if result.surface is not None else None,
            "topology": asdict(result.topology) if result.topology is not None else None,
            "seconds": dict(result.seconds)}


def _count(rows: list[dict[str, Any]], kind: str) -> int:
    return sum(1 for row in rows if row.get("kind", "stenosis") == kind)


def from_wire(arrays: dict[str, Any], meta: dict[str, Any]) -> VesselTree:
    """The :class:`VesselTree` a result's arrays and metadata describe."""
    tree = VesselTree(arrays["mask"], branch_rows=list(meta.get("branch_rows", [])),
                      finding_rows=list(meta.get("finding_rows", [])), summary=dict(meta.get("summary", {})))
    start = 0
    for branch in meta.get("branches", []):
        stop = start + int(branch["points"])
        tree.branches.append(BranchLine(int(branch["id"]), branch["parent"],
                                        np.asarray(arrays["centerline_points"][start:stop], np.float64),
                                        np.asarray(arrays["centerline_radii"][start:stop], np.float64)))
        start = stop
    if "surface_points" in arrays:
        tree.surface = _triangles(arrays["surface_points"], arrays["surface_triangles"])
    return tree


def tree_from_result(result: VesselResult) -> VesselTree:
    """In-process front ends (the CLI) take the same road as the worker's clients."""
    return from_wire(*to_wire(result))


def _polydata(points: np.ndarray, offsets: np.ndarray, connectivity: np.ndarray) -> tuple[vtkPolyData, vtkCellArray]:
    """Polydata holding ``points`` and the cells ``offsets``/``connectivity`` describe (the caller
    decides whether they are polygons or lines)."""
    polydata = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, np.float64), deep=True))
    polydata.SetPoints(vtk_points)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(np.ascontiguousarray(offsets, np.int64), deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(connectivity, np.int64).ravel(), deep=True))
    return polydata, cells


def _triangles(points: np.ndarray, triangles: np.ndarray) -> vtkPolyData:
    polydata, cells = _polydata(points, np.arange(0, 3 * len(triangles) + 1, 3), triangles)
    polydata.SetPolys(cells)
    return polydata


def centerline_polydata(branches: list[BranchLine]) -> vtkPolyData:
    """One polyline cell per branch, point array ``Radius`` (mm), cell array ``BranchId``; LPS."""
    points = np.concatenate([b.points_lps for b in branches]) if branches else np.zeros((0, 3))
    offsets = np.concatenate([[0], np.cumsum([len(b.points_lps) for b in branches])]).astype(np.int64)
    polydata, lines = _polydata(points, offsets, np.arange(offsets[-1]))
    polydata.SetLines(lines)
    radius = numpy_to_vtk(np.concatenate([b.radii_mm for b in branches]) if branches else np.zeros(0), deep=True)
    radius.SetName("Radius")
    polydata.GetPointData().AddArray(radius)
    polydata.GetPointData().SetActiveScalars("Radius")
    branch_id = numpy_to_vtk(np.array([b.id for b in branches], np.int32), deep=True)
    branch_id.SetName("BranchId")
    polydata.GetCellData().AddArray(branch_id)
    return polydata
