"""The vessel result as front ends use it, and its form on the wire.

The engine's graph holds internals (nodes, components) a Slicer scene or a CSV file does
not need. :class:`VesselTree` keeps what they show: the mask, each branch's points and
radii, each branch's cross-sections, the branch, landmark and finding tables, the
straightened volume, the surface and a summary. The worker sends it as arrays plus small
JSON rows (never voxel or point lists in JSON: the centerlines and the cross-sections travel
as concatenated arrays, JSON only says how many points each branch has), and the CLI goes
through the same conversion, so every front end sees identical values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkCommonCore import vtkPoints

from ..image import Image
from .cross_sections import BranchSections
from .pipeline import VesselResult


@dataclass(frozen=True)
class BranchLine:
    """One branch: ordered centreline points (LPS mm), radius at each (mm), parent branch."""

    id: int
    parent: Optional[int]
    points_lps: np.ndarray
    radii_mm: np.ndarray


#: A branch's cross-section measurements, one value per section (what cross_sections.csv holds);
#: NaN where the section's outline did not close (the lumen edge was not found all around).
SECTION_VALUES = ("arc_mm", "area_mm2", "equivalent_diameter_mm", "min_diameter_mm", "max_diameter_mm",
                  "perpendicular_diameter_mm", "circularity")


@dataclass
class VesselTree:
    """What the vessel workflow gives a front end."""

    mask: Image
    branches: list[BranchLine] = field(default_factory=list)
    branch_rows: list[dict[str, Any]] = field(default_factory=list)
    finding_rows: list[dict[str, Any]] = field(default_factory=list)
    surface: Optional[vtkPolyData] = None
    summary: dict[str, Any] = field(default_factory=dict)
    #: each branch's cross-sections, as the engine measured them (see :class:`.cross_sections.BranchSections`)
    profiles: list[BranchSections] = field(default_factory=list)
    landmark_rows: list[dict[str, Any]] = field(default_factory=list)
    #: The curved planar reformat of the main path (its own grid; k runs along the path).
    straightened: Optional[Image] = None

    def section_rows(self) -> list[dict[str, Any]]:
        """One row per cross-section of every branch (cross_sections.csv, the desktop table)."""
        rows = []
        for profile in self.profiles:
            for n in range(len(profile.arc_mm)):
                x, y, z = (float(c) for c in profile.points_lps[n])
                rows.append({"branch": profile.branch, "arc_mm": float(profile.arc_mm[n]),
                             "x_lps": x, "y_lps": y, "z_lps": z,
                             **{name: float(getattr(profile, name)[n]) for name in SECTION_VALUES[1:]}})
        return rows


def _finding_row(finding: Any) -> dict[str, Any]:
    """One finding as a row: ``kind`` ("stenosis" or "dilatation"), ``ratio`` (its diameter
    over the reference), and the keys rows had before dilatations existed (a dilatation's
    ``stenosis_percent`` is 0)."""
    x, y, z = (float(c) for c in finding.position_lps)
    return {"kind": finding.kind, "branch": finding.branch,
            "stenosis_percent": round(float(finding.stenosis_percent), 2), "ratio": round(float(finding.ratio), 3),
            "minimal_diameter_mm": float(finding.minimal_diameter_mm),
            "maximal_diameter_mm": float(finding.maximal_diameter_mm),
            "reference_diameter_mm": float(finding.reference_diameter_mm),
            "reference_method": str(finding.reference_method), "arc_mm": float(finding.arc_mm),
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
    _sections_to_wire(result.sections, arrays, meta)
    meta["landmark_rows"] = [_landmark_row(n, m) for n, m in enumerate(result.landmarks, start=1)]
    if result.straightened is not None:
        arrays["straightened"] = result.straightened
    if result.surface is not None:
        points = vtk_to_numpy(result.surface.GetPoints().GetData()).astype(np.float64)
        triangles = vtk_to_numpy(result.surface.GetPolys().GetConnectivityArray()).reshape(-1, 3)
        arrays["surface_points"] = points
        arrays["surface_triangles"] = triangles.astype(np.int64)
    meta["summary"] = _summary(result, meta)
    return arrays, meta


def _sections_to_wire(sections: Any, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Every branch's sections as one array per measurement; JSON holds each branch's count."""
    meta["sections"] = [{"branch": int(s.branch), "count": len(s.arc_mm)} for s in sections]
    if not sections:
        return
    arrays["section_points"] = np.concatenate([np.asarray(s.points_lps, np.float64).reshape(-1, 3) for s in sections])
    for name in SECTION_VALUES:
        arrays[f"section_{name}"] = np.concatenate([np.asarray(getattr(s, name), np.float64) for s in sections])


def _landmark_row(number: int, measurement: Any) -> dict[str, Any]:
    """One landmark's measurements (a handful per job: rows, like the findings)."""
    x, y, z = (float(c) for c in measurement.point_lps)
    cx, cy, cz = (float(c) for c in measurement.centerline_point_lps)
    return {"landmark": number, "x_lps": x, "y_lps": y, "z_lps": z, "branch": int(measurement.branch),
            "arc_mm": float(measurement.arc_mm), "centerline_x_lps": cx, "centerline_y_lps": cy,
            "centerline_z_lps": cz, "distance_mm": float(measurement.distance_mm),
            "max_diameter_mm": _number(measurement.max_diameter_mm),
            "min_diameter_mm": _number(measurement.min_diameter_mm),
            "perpendicular_diameter_mm": _number(measurement.perpendicular_diameter_mm),
            "area_mm2": _number(measurement.area_mm2)}


def _number(value: Any) -> Optional[float]:
    """A measurement for JSON: NaN (an outline that did not close) becomes None."""
    value = float(value)
    return None if not np.isfinite(value) else value


def dropped_pieces_text(count: Optional[int]) -> str:
    """How a summary line says that stray pieces of the mask were left out of the branches
    (see :attr:`~segforge.vessel.graph.CenterlineGraph.dropped_pieces`); "" for none."""
    if not count:
        return ""
    return f"{count} stray piece{'s' if count != 1 else ''} too small for a branch left out"


def _summary(result: VesselResult, meta: dict[str, Any]) -> dict[str, Any]:
    graph = result.graph
    return {"mask_model": result.mask_model,
            "mask_voxels": int(np.count_nonzero(result.mask.array)),
            "mask_volume_ml": float(np.count_nonzero(result.mask.array) * np.prod(result.mask.spacing) / 1000.0),
            "branches": len(graph.branches) if graph else None,
            "dropped_pieces": graph.dropped_pieces if graph else None,
            "bifurcations": len(graph.bifurcations) if graph else None,
            "endpoints": len(graph.endpoints) if graph else None,
            "components": graph.component_count if graph else None,
            "total_length_mm": graph.total_length_mm if graph else None,
            "stenoses": _count(meta["finding_rows"], "stenosis") if result.stenoses is not None else None,
            "dilatations": _count(meta["finding_rows"], "dilatation") if result.stenoses is not None else None,
            "graded_percent": round(100 * result.stenoses.graded_fraction, 1) if result.stenoses is not None else None,
            "surface_triangles": int(result.surface.GetNumberOfCells()) if result.surface is not None else None,
            "cross_sections": sum(entry["count"] for entry in meta["sections"]),
            "landmarks": len(meta["landmark_rows"]),
            "topology": _plain(result.topology),
            "seconds": dict(result.seconds)}


def _plain(report: Any) -> Any:
    """A report dataclass as JSON values (None stays None)."""
    if report is None:
        return None
    values = asdict(report)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in values.items()}


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
    start = 0
    for entry in meta.get("sections", []):
        stop = start + int(entry["count"])
        values = {name: np.asarray(arrays[f"section_{name}"][start:stop], np.float64) for name in SECTION_VALUES}
        tree.profiles.append(BranchSections(
            int(entry["branch"]), points_lps=np.asarray(arrays["section_points"][start:stop], np.float64),
            closed=np.isfinite(values["area_mm2"]), **values))  # an open section's values are NaN
        start = stop
    tree.landmark_rows = list(meta.get("landmark_rows", []))
    tree.straightened = arrays.get("straightened")
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
