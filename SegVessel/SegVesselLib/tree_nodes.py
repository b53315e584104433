"""A vessel tree into the Slicer scene: segment, branch curves, centerline and surface
models, tables and finding fiducials (the measurements: :mod:`.measurement_nodes`).

Called only when a job has finished, so a failed or cancelled job leaves the scene as it
was. Every node is new except the segmentation, where only the vessel segment is written;
the segmentation remembers which nodes were made with each of its vessel segments (see
:func:`remember_outputs`), so a run that replaces the segment replaces those nodes too.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from vtkmodules.vtkFiltersCore import vtkTubeFilter

from segforge.mrml.markups import curve_from_polyline, point_list_from_points
from segforge.mrml.models import model_from_polydata
from segforge.mrml.scene import batch_processing, get_scene
from segforge.mrml.segments import (OnExisting, SegmentSpec, new_segmentation_node, policy_at_finish,
                                    write_label_segments)
from segforge.mrml.tables import rows_from_table, table_from_rows
from segforge.vessel.outputs import BRANCH_COLUMNS, FINDING_COLUMNS, VESSEL_SEGMENT
from segforge.vessel.tree import VesselTree, centerline_polydata
from segforge.vessel.vmtk_centerlines import vmtk_centerline_polydata

from .measurement_nodes import write_diameter_chart, write_landmarks, write_section_table, write_straightened

log = logging.getLogger(__name__)

#: What the nodes of a tree made without a volume and without a name are named after.
DEFAULT_BASE_NAME = "Vessels"

VESSEL_COLOR = VESSEL_SEGMENT.color
#: More curves than this make the Markups module unusable; the longest branches get one.
MAX_CURVES = 300
#: The segmentation node's reference role to every node a tree job made besides the segment
#: (a node reference: saved with the scene, and dropped by Slicer when the user deletes the node).
OUTPUT_ROLE = "segforgeVesselOutput"
#: The attribute on each such node: the ID of the vessel segment it was made with (a
#: segmentation can hold several, "Vessels" and "Vessels 2" after a "keep both").
OUTPUT_SEGMENT_ATTRIBUTE = "SegForge.VesselSegment"


@dataclass
class VesselNodes:
    """The nodes a vessel job created or wrote into."""

    segmentation: Any
    curves: list[Any] = field(default_factory=list)
    centerline_model: Optional[Any] = None
    #: The centerlines in VMTK's layout (lines, Radius): SlicerVMTK's Cross Section Analysis and
    #: Centerline Disassembly take it as their centerline model.
    vmtk_centerline_model: Optional[Any] = None
    surface_model: Optional[Any] = None
    branch_table: Optional[Any] = None
    stenosis_table: Optional[Any] = None
    stenosis_points: Optional[Any] = None
    section_table: Optional[Any] = None
    diameter_chart: Optional[Any] = None
    diameter_tables: list[Any] = field(default_factory=list)
    landmark_table: Optional[Any] = None
    landmark_points: Optional[Any] = None
    straightened_volume: Optional[Any] = None
    #: The values the nodes were made from (what a web panel draws its diameter picture from).
    tree: Optional[VesselTree] = None
    #: The vessel segment the job wrote into :attr:`segmentation` (what a DICOM SEG of it files).
    segment_id: Optional[str] = None


def write_vessel_segment(volume_node: Optional[Any], segmentation_node: Optional[Any], mask: Any, segment_name: str,
                         on_existing: OnExisting, name: Optional[str] = None) -> Any:
    """The mask as ``segment_name``; the user's other segments are never touched. A new
    segmentation is made on the volume's grid, or on the mask's without a volume. Replacing a
    segment an earlier tree job made also removes that job's curves, models and tables: they
    described the segment replaced."""
    segmentation, segment_id = _write_segment(volume_node, segmentation_node, mask, segment_name, on_existing, name)
    if on_existing == "replace" and segment_id is not None:
        remove_outputs(segmentation, segment_id)
    return segmentation


def _write_segment(volume_node: Optional[Any], segmentation_node: Optional[Any], mask: Any, segment_name: str,
                   on_existing: OnExisting, name: Optional[str] = None) -> tuple[Any, Optional[str]]:
    """:func:`write_vessel_segment`, and the ID of the segment written (None: the mask was empty).

    An output node the user deleted while the job ran is treated as no node given (a new one is
    made): written into the detached node, the segment would be lost without a word while the
    curves and tables land in the scene and the summary names a node that is gone.
    """
    if segmentation_node is not None and segmentation_node.GetScene() is None:
        log.warning("the output segmentation '%s' was deleted during the job: the result goes into a new one",
                    segmentation_node.GetName())
        segmentation_node = None
    base = base_name(volume_node, name)
    target = segmentation_node or new_segmentation_node(volume_node if volume_node is not None else mask,
                                                        f"{base} vessels", scene=get_scene())
    spec = SegmentSpec(1, segment_name, VESSEL_COLOR, VESSEL_SEGMENT.terminology)
    ids = write_label_segments(target, mask, [spec], on_existing=policy_at_finish(target, [segment_name],
                                                                                  on_existing))
    return target, (ids[0] if ids else None)


def _tube(polydata: Any) -> Any:
    tube = vtkTubeFilter()
    tube.SetInputData(polydata)
    tube.SetVaryRadiusToVaryRadiusByAbsoluteScalar()
    tube.SetNumberOfSides(12)
    tube.CappingOn()
    tube.Update()
    return tube.GetOutput()


def write_vessel_tree(tree: VesselTree, volume_node: Optional[Any], segmentation_node: Optional[Any] = None,
                      segment_name: str = "Vessels", on_existing: OnExisting = "error",
                      max_curves: int = MAX_CURVES, name: Optional[str] = None) -> VesselNodes:
    """Every result the tree holds as scene nodes, named ``name`` or after the volume (shown once
    all are written); without a volume (a segment's tree) new nodes go on the mask's grid."""
    with batch_processing(volume_node.GetScene() if volume_node is not None else get_scene()):
        return _write_vessel_tree(tree, volume_node, segmentation_node, segment_name, on_existing, max_curves,
                                  base_name(volume_node, name))


def base_name(volume_node: Optional[Any], name: Optional[str]) -> str:
    """What a result's nodes are named after: ``name``, else the volume's name, else
    :data:`DEFAULT_BASE_NAME` (a segment's tree from the console, given neither: the finish
    must not fail once the whole job has run)."""
    if name:
        return name
    return volume_node.GetName() if volume_node is not None else DEFAULT_BASE_NAME


def _write_vessel_tree(tree: VesselTree, volume_node: Optional[Any], segmentation_node: Optional[Any],
                       segment_name: str, on_existing: OnExisting, max_curves: int, base: str) -> VesselNodes:
    segmentation, segment_id = _write_segment(volume_node, segmentation_node, tree.mask, segment_name, on_existing,
                                              base)
    scene = segmentation.GetScene()
    # After the segment (where a late refusal can still stop the finish), before the new nodes.
    replaced = remove_outputs(segmentation, segment_id) if on_existing == "replace" and segment_id else set()
    before = {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}
    nodes = _write_tree_nodes(tree, segmentation, segment_id, max_curves, base)
    made = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes()) if scene.GetNthNode(n).GetID() not in before]
    _take_back_names(scene, made, replaced)
    if segment_id is not None:
        remember_outputs(segmentation, segment_id, made)
    return nodes


def _take_back_names(scene: Any, made: list[Any], replaced: set[str]) -> None:
    """The new nodes take the names of the nodes they replace: Slicer's unique names count on
    per name (a name once used gets "_1" after its node is deleted), so a replacing re-run
    would name every node "..._1", then "..._2"."""
    for node in made:  # in the order they were made, as the replaced ones were
        match = re.fullmatch(r"(.+)_\d+", node.GetName() or "")
        if not match:
            continue
        base = match.group(1)  # "Y landmarks" for the table and for the points ("Y landmarks_1")
        for name in [base, *(f"{base}_{n}" for n in range(1, len(replaced) + 1))]:
            if name == node.GetName():
                break
            if name in replaced and scene.GetFirstNodeByName(name) is None:
                node.SetName(name)
                break


def remember_outputs(segmentation: Any, segment_id: str, made: list[Any]) -> None:
    """Reference every node a job made (display, storage and plot series nodes included: the
    nodes new in the scene) from the segmentation, marked with the segment they were made with."""
    for node in made:
        node.SetAttribute(OUTPUT_SEGMENT_ATTRIBUTE, segment_id)
        segmentation.AddNodeReferenceID(OUTPUT_ROLE, node.GetID())


def outputs_of(segmentation: Any, segment_id: str) -> list[Any]:
    """The nodes still in the scene that a tree job made with the segment ``segment_id``."""
    referenced = (segmentation.GetNthNodeReference(OUTPUT_ROLE, n)
                  for n in range(segmentation.GetNumberOfNodeReferences(OUTPUT_ROLE)))
    return [node for node in referenced
            if node is not None and node.GetAttribute(OUTPUT_SEGMENT_ATTRIBUTE) == segment_id]


def remove_outputs(segmentation: Any, segment_id: str) -> set[str]:
    """Remove the nodes the last tree job made with the segment ``segment_id``: "Replace" replaces
    the whole result, not the segment alone next to a second set of curves, models and tables.
    The names of the nodes removed."""
    scene = segmentation.GetScene()
    names = set()
    for node in outputs_of(segmentation, segment_id):
        if node.GetScene() is scene:  # a display node may have gone with its displayable node
            names.add(node.GetName())
            scene.RemoveNode(node)
    return names


def _write_tree_nodes(tree: VesselTree, segmentation: Any, segment_id: Optional[str], max_curves: int,
                      base: str) -> VesselNodes:
    nodes = VesselNodes(segmentation, segment_id=segment_id)
    if tree.summary.get("branches") is not None:
        longest = sorted(tree.branches, key=lambda b: -float(np.linalg.norm(np.diff(b.points_lps, axis=0),
                                                                            axis=1).sum()))[:max_curves]
        if len(tree.branches) > max_curves:
            log.warning("%d branches: curves for the %d longest; all are in the model and table",
                        len(tree.branches), max_curves)
        for branch in sorted(longest, key=lambda b: b.id):
            if len(branch.points_lps) >= 2:
                nodes.curves.append(curve_from_polyline(points_lps=branch.points_lps, radius_mm=branch.radii_mm,
                                                        name=f"{base} branch {branch.id}", color=VESSEL_COLOR))
        nodes.centerline_model = model_from_polydata(_tube(centerline_polydata(tree.branches)), space="LPS",
                                                     name=f"{base} centerlines", scalars="Radius")
        nodes.vmtk_centerline_model = model_from_polydata(vmtk_centerline_polydata(tree.branches), space="LPS",
                                                          name=f"{base} centerline model", color=VESSEL_COLOR)
        nodes.vmtk_centerline_model.GetDisplayNode().SetVisibility(False)  # the tube model shows them
        nodes.branch_table = table_from_rows(tree.branch_rows, f"{base} branches", columns=list(BRANCH_COLUMNS))
    if tree.summary.get("stenoses") is not None:
        nodes.stenosis_table = table_from_rows(tree.finding_rows, f"{base} stenoses", columns=list(FINDING_COLUMNS))
        if tree.finding_rows:
            points = np.array([[r["x_lps"], r["y_lps"], r["z_lps"]] for r in tree.finding_rows])
            labels = [finding_label(r) for r in tree.finding_rows]
            nodes.stenosis_points = point_list_from_points(points, labels, f"{base} stenoses", (1.0, 0.8, 0.0))
    if tree.surface is not None:
        nodes.surface_model = model_from_polydata(tree.surface, space="LPS", name=f"{base} vessel surface",
                                                  color=VESSEL_COLOR)
    nodes.section_table = write_section_table(tree, base)
    nodes.diameter_chart, nodes.diameter_tables = write_diameter_chart(tree, base)
    nodes.landmark_table, nodes.landmark_points = write_landmarks(tree, base)
    nodes.straightened_volume = write_straightened(tree, base)
    nodes.tree = tree
    return nodes


def finding_label(row: dict[str, Any]) -> str:
    """A finding's point label: "62% stenosis (branch 3)" or "1.8x dilatation (branch 3)"."""
    if row.get("kind", "stenosis") == "dilatation":
        return f"{float(row['ratio']):.1f}x dilatation (branch {row['branch']})"
    return f"{float(row['stenosis_percent']):.0f}% stenosis (branch {row['branch']})"


def summary_of(result: Any) -> str:
    """The line a panel shows for a finished job: a :class:`VesselNodes` or a segmentation node."""
    from .form import summary

    segmentation = getattr(result, "segmentation", result)
    where = segmentation.GetName() if segmentation is not None else "the segmentation"
    if not isinstance(result, VesselNodes):
        return summary(where)

    def rows(table):
        return None if table is None else table.GetNumberOfRows()

    findings = rows_from_table(result.stenosis_table) if result.stenosis_table is not None else None
    kinds = [row.get("kind", "stenosis") for row in findings or []]
    dropped = result.tree.summary.get("dropped_pieces") if result.tree is not None else None
    return summary(where, rows(result.branch_table), None if findings is None else kinds.count("stenosis"),
                   result.surface_model is not None, kinds.count("dilatation"), dropped)
