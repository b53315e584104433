"""An organ result into the Slicer scene: one segment per structure, a statistics table.

Called only when a job has finished, so a failed or cancelled job leaves the scene as it
was. Only the segments named by the result are written; the user's other segments keep
every voxel. A new segmentation node is removed again if writing into it fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from segforge.mrml.scene import get_scene
from segforge.mrml.segments import (OnExisting, SegmentSpec, create_closed_surfaces, new_segmentation_node,
                                    policy_at_finish, write_label_segments)
from segforge.mrml.tables import table_from_rows
from segforge.organ.outputs import organ_segments
from segforge.organ.pipeline import OrganResult
from segforge.organ.statistics import StructureStatistics

#: The statistics table's columns (Slicer's Segment Statistics wording) and their units.
TABLE_COLUMNS = {"structure": "Segment", "label": "Label value", "voxels": "Voxel count",
                 "volume_ml": "Volume [mL]", "mean": "Mean", "sd": "Standard deviation"}


@dataclass
class OrganNodes:
    """What an organ job created or wrote into."""

    segmentation: Any
    segment_ids: list[str] = field(default_factory=list)
    statistics_table: Optional[Any] = None
    warnings: tuple[str, ...] = ()
    summary: dict = field(default_factory=dict)
    #: the volume the organs were found on (what a DICOM SEG of them must refer to)
    volume: Optional[Any] = None


def write_organ_nodes(volume_node: Any, segmentation_node: Optional[Any], result: OrganResult,
                      statistics: Sequence[StructureStatistics], on_existing: OnExisting,
                      surfaces: bool) -> OrganNodes:
    """Segments (structures the image holds; absent ones are listed in the summary), the
    statistics table of those segments, and on request their 3D surfaces."""
    scene = get_scene()
    created = segmentation_node is None
    target = segmentation_node or new_segmentation_node(volume_node, f"{volume_node.GetName()} organs", scene=scene)
    policy = policy_at_finish(target, list(result.names.values()), on_existing)
    specs = [SegmentSpec(s.label, s.name, s.color, s.terminology) for s in organ_segments(result.names)]
    try:
        segment_ids = write_label_segments(target, result.labels, specs, on_existing=policy, skip_empty=True)
        if surfaces and segment_ids:
            create_closed_surfaces(target)
    except Exception:
        if created:
            scene.RemoveNode(target)
        raise
    found = [s for s in statistics if s.voxels > 0]
    table = None
    if found:
        rows = [{TABLE_COLUMNS[key]: value for key, value in s.row().items()} for s in found]
        table = table_from_rows(rows, f"{volume_node.GetName()} organ statistics",
                                columns=list(TABLE_COLUMNS.values()), units={"Volume [mL]": "mL"}, scene=scene)
    summary = {"model": result.model, "device": result.device, "segments": len(segment_ids),
               "absent": sorted(set(result.names.values()) - {s.structure for s in found}) if statistics else [],
               "seconds": dict(result.seconds)}
    return OrganNodes(target, segment_ids, table, result.warnings, summary, volume_node)
