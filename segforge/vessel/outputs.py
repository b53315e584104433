"""Write a vessel result as files that open in 3D Slicer and in any spreadsheet.

``vessels.seg.nrrd`` (one segment, the image's geometry), ``centerlines.vtp`` (a polyline
per branch, point array ``Radius``, cell array ``BranchId``), ``centerline_model_vmtk.vtp``
(VMTK's layout: a polyline per root-to-end path with ``Radius`` and VMTK's arrays, what
SlicerVMTK's Cross Section Analysis and Centerline Disassembly take) and ``surface.vtp`` in LPS
tagged the way Slicer saves models, ``branches.csv``, ``stenoses.csv`` (the findings),
``cross_sections.csv`` (every section of every branch), ``landmarks.csv`` (one row per
landmark), ``diameters.png`` (the diameter along the longest branches), ``straightened.nrrd``
(the curved planar reformat of the main path) and ``summary.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..csv_table import write_csv
from ..polydata_io import write_polydata
from ..image_io import write_image
from ..segmentation_file import SegmentInfo, write_seg_nrrd
from .diameter_plot import Mark, diameter_plot_png
from .tree import SECTION_VALUES, VesselTree, centerline_polydata
from .vmtk_centerlines import vmtk_centerline_polydata

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
SECTION_COLUMNS = ("branch", "arc_mm", "x_lps", "y_lps", "z_lps", *SECTION_VALUES[1:])
LANDMARK_COLUMNS = ("landmark", "x_lps", "y_lps", "z_lps", "branch", "arc_mm", "centerline_x_lps", "centerline_y_lps",
                    "centerline_z_lps", "distance_mm", "max_diameter_mm", "min_diameter_mm",
                    "perpendicular_diameter_mm", "area_mm2")


def plot_marks(tree: VesselTree) -> list[Mark]:
    """The landmarks and findings as marks on the diameter plot."""
    marks = [Mark(int(r["branch"]), float(r["arc_mm"]), "landmark") for r in tree.landmark_rows]
    return marks + [Mark(int(r["branch"]), float(r["arc_mm"]), str(r.get("kind", "stenosis")))
                    for r in tree.finding_rows]


def vessel_output_bytes(tree: VesselTree) -> int:
    """A generous estimate of the files' size, to check free space before writing: the mask
    (compressed, at most about a quarter of a byte per voxel) and the meshes (base64 text)."""
    size = tree.mask.array.size // 4 + 64 * 1024 + 400 * (len(tree.branch_rows) + len(tree.finding_rows))
    if tree.surface is not None:
        size += 2 * (24 * tree.surface.GetNumberOfPoints() + 16 * tree.surface.GetNumberOfCells())
    size += 2 * 2 * 64 * sum(len(branch.points_lps) for branch in tree.branches)  # both layouts, trunk repeated
    size += 160 * sum(len(profile.arc_mm) for profile in tree.profiles) + (1 << 20)  # the CSV and the picture
    if tree.straightened is not None:
        size += tree.straightened.array.nbytes
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
        files["centerline_model_vmtk"] = write_polydata(vmtk_centerline_polydata(tree.branches),
                                                        folder / "centerline_model_vmtk.vtp")
        files["branches"] = write_csv(folder / "branches.csv", BRANCH_COLUMNS, tree.branch_rows)
    if tree.summary.get("stenoses") is not None:
        files["stenoses"] = write_csv(folder / "stenoses.csv", FINDING_COLUMNS, tree.finding_rows)
    if tree.profiles:
        files["cross_sections"] = write_csv(folder / "cross_sections.csv", SECTION_COLUMNS, tree.section_rows())
        files["diameter_plot"] = folder / "diameters.png"
        files["diameter_plot"].write_bytes(diameter_plot_png(tree.profiles, plot_marks(tree)))
    if tree.landmark_rows:
        files["landmarks"] = write_csv(folder / "landmarks.csv", LANDMARK_COLUMNS, tree.landmark_rows)
    if tree.straightened is not None:
        files["straightened"] = write_image(tree.straightened, folder / "straightened.nrrd")
    if tree.surface is not None:
        files["surface"] = write_polydata(tree.surface, folder / "surface.vtp")
    summary = {**tree.summary, **(extra_summary or {}), "files": {k: p.name for k, p in files.items()}}
    files["summary"] = folder / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2))
    return files
