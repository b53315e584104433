"""Write a vessel result as files that open in 3D Slicer and in any spreadsheet.

``vessels.seg.nrrd`` (one segment, the image's geometry), ``centerlines.vtp`` (a polyline
per branch, point array ``Radius``, cell array ``BranchId``) and ``surface.vtp`` in LPS
tagged the way Slicer saves models, ``branches.csv``, ``stenoses.csv`` and ``summary.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..csv_table import write_csv
from ..polydata_io import write_polydata
from ..segmentation_file import SegmentInfo, write_seg_nrrd
from .tree import VesselTree, centerline_polydata

#: The vessel segment: "Tissue / Blood vessel" in Slicer's general anatomy terminology
#: (SNOMED CT), serialised as Slicer writes it (the Logic uses the same value).
VESSEL_SEGMENT = SegmentInfo(label=1, name="vessels", color=(0.85, 0.2, 0.2),
                             terminology="Segmentation category and type - 3D Slicer General Anatomy list"
                                         "~SCT^85756007^Tissue~SCT^59820001^Blood vessel~^^~"
                                         "Anatomic codes - DICOM master list~^^~^^")
BRANCH_COLUMNS = ("id", "parent", "length_mm", "chord_mm", "tortuosity", "mean_curvature_per_mm",
                  "max_curvature_per_mm", "mean_radius_mm", "min_radius_mm", "max_radius_mm", "point_count")
FINDING_COLUMNS = ("kind", "branch", "stenosis_percent", "ratio", "minimal_diameter_mm", "maximal_diameter_mm",
                   "reference_diameter_mm", "arc_mm", "length_mm", "x_lps", "y_lps", "z_lps")


def vessel_output_bytes(tree: VesselTree) -> int:
    """A generous estimate of the files' size, to check free space before writing: the mask
    (compressed, at most about a quarter of a byte per voxel) and the meshes (base64 text)."""
    size = tree.mask.array.size // 4 + 64 * 1024 + 400 * (len(tree.branch_rows) + len(tree.finding_rows))
    if tree.surface is not None:
        size += 2 * (24 * tree.surface.GetNumberOfPoints() + 16 * tree.surface.GetNumberOfCells())
    size += 2 * 32 * sum(len(branch.points_lps) for branch in tree.branches)
    return int(size)


def write_vessel_outputs(tree: VesselTree, folder: str | os.PathLike, extra_summary: dict[str, Any] | None = None,
                         segment_name: str = VESSEL_SEGMENT.name) -> dict[str, Path]:
    """Write every result the tree holds into ``folder``; returns the files by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    segment = dataclasses.replace(VESSEL_SEGMENT, name=segment_name)
    files = {"segmentation": write_seg_nrrd(tree.mask, [segment], folder / "vessels.seg.nrrd")}
    if tree.summary.get("branches") is not None:
        files["centerlines"] = write_polydata(centerline_polydata(tree.branches), folder / "centerlines.vtp")
        files["branches"] = write_csv(folder / "branches.csv", BRANCH_COLUMNS, tree.branch_rows)
    if tree.summary.get("stenoses") is not None:
        files["stenoses"] = write_csv(folder / "stenoses.csv", FINDING_COLUMNS, tree.finding_rows)
    if tree.surface is not None:
        files["surface"] = write_polydata(tree.surface, folder / "surface.vtp")
    summary = {**tree.summary, **(extra_summary or {}), "files": {k: p.name for k, p in files.items()}}
    files["summary"] = folder / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2))
    return files
