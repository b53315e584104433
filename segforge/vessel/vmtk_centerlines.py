"""Centerlines laid out as VMTK lays them out, for SlicerVMTK's modules and VMTK's filters.

Why a second layout: :func:`.tree.centerline_polydata` stores one polyline per *branch*,
which is what SegForge's own views need. VMTK's centreline filters (and SlicerVMTK's
Extract Centerline, Centerline Disassembly, Cross Section Analysis, which build on them)
expect what ``vtkvmtkPolyDataCenterlines`` writes: one polyline per *path*, from the
source (the root) to each end, the paths overlapping along their common trunk, and the
maximal inscribed sphere radius at every point. ``vtkvmtkCenterlineBranchExtractor``
finds the bifurcations itself from where the paths part (their radii decide how far the
bifurcation zone reaches), so branches are not labelled here.

What the file holds (checked against SlicerVMTK's sources, 2026-12):

- point array ``Radius``: the radius SlicerVMTK's modules read (Extract Centerline's
  ``radiusArrayName``; Cross Section Analysis accepts a model only if it has it);
- point array ``MaximumInscribedSphereRadius``: the same values under the name VMTK's
  command-line scripts use;
- point arrays ``EdgeArray`` (2 components) and ``EdgePCoordArray``: in VMTK the Voronoi
  edge each point was traced on; Centerline Disassembly copies them into its pieces and
  fails where they are missing, so they are written, as -1 (no Voronoi edge) and 0;
- cell array ``CenterlineIds`` (0, 1, ... one per path) and ``TargetBranchId`` (the
  SegForge branch each path ends on).

Points are in LPS millimetres, like every engine geometry (the Slicer bridge flips them
to RAS); each path has its own copy of the trunk's points, as in VMTK's output.
"""
from __future__ import annotations

from typing import Optional, Protocol, Sequence

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData


class _BranchLike(Protocol):
    id: int
    parent: Optional[int]
    points_lps: np.ndarray
    radii_mm: np.ndarray


def root_to_end_paths(branches: Sequence[_BranchLike]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(points, radii, end branch id) of each path from a root to a branch with no children.

    Branches are followed through their ``parent``; where a child starts on its parent's
    last point, that point is kept once."""
    by_id = {b.id: b for b in branches}
    has_children = {b.parent for b in branches if b.parent is not None}
    paths = []
    for leaf in branches:
        if leaf.id in has_children:
            continue
        route, seen = [leaf], {leaf.id}
        while route[-1].parent is not None and route[-1].parent in by_id and route[-1].parent not in seen:
            route.append(by_id[route[-1].parent])
            seen.add(route[-1].id)
        route.reverse()
        points, radii = [np.asarray(route[0].points_lps, float)], [np.asarray(route[0].radii_mm, float)]
        for branch in route[1:]:
            p, r = np.asarray(branch.points_lps, float), np.asarray(branch.radii_mm, float)
            joined = len(p) and np.allclose(p[0], points[-1][-1], atol=1e-6)
            points.append(p[1:] if joined else p)
            radii.append(r[1:] if joined else r)
        paths.append((np.concatenate(points), np.concatenate(radii), leaf.id))
    return paths


def vmtk_centerline_polydata(branches: Sequence[_BranchLike]) -> vtkPolyData:
    """One polyline per root-to-end path with VMTK's point arrays (see the module's notes)."""
    paths = [p for p in root_to_end_paths(branches) if len(p[0]) >= 2]
    points = np.concatenate([p[0] for p in paths]) if paths else np.zeros((0, 3))
    radii = np.concatenate([p[1] for p in paths]) if paths else np.zeros(0)
    offsets = np.concatenate([[0], np.cumsum([len(p[0]) for p in paths])]).astype(np.int64)
    polydata = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, np.float64), deep=True))
    polydata.SetPoints(vtk_points)
    lines = vtkCellArray()
    lines.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(np.arange(offsets[-1], dtype=np.int64), deep=True))
    polydata.SetLines(lines)
    data = polydata.GetPointData()
    for name in ("Radius", "MaximumInscribedSphereRadius"):
        array = numpy_to_vtk(np.ascontiguousarray(radii, np.float64), deep=True)
        array.SetName(name)
        data.AddArray(array)
    data.SetActiveScalars("Radius")
    edge = numpy_to_vtk(np.full((len(points), 2), -1.0), deep=True)
    edge.SetName("EdgeArray")
    data.AddArray(edge)
    coordinate = numpy_to_vtk(np.zeros(len(points)), deep=True)
    coordinate.SetName("EdgePCoordArray")
    data.AddArray(coordinate)
    for name, values in (("CenterlineIds", np.arange(len(paths))), ("TargetBranchId", [p[2] for p in paths])):
        array = numpy_to_vtk(np.asarray(values, np.int32), deep=True)
        array.SetName(name)
        polydata.GetCellData().AddArray(array)
    return polydata
