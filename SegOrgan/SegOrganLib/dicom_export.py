"""Which parts of an organ result go into its DICOM SEG and SR (Export to DICOM, Send to PACS).

The rule, in one place for the desktop panel, the web panel and scripts: the segments the
organ job wrote (:attr:`OrganNodes.segment_ids`) that the segmentation still has, as they are
now (an edit made since is filed, a deleted segment is not), on the input volume's grid, with
their names, colours and terminology; the SR's volume, mean and SD are measured on those
voxels and the volume, so the report and the SEG never disagree. The model is the job's.
"""
from __future__ import annotations

from typing import Any, Optional

from segforge.dicom.results import organ_dicom
from segforge.dicom.scene_export import DicomExport, FileLookup, source_of_volume
from segforge.errors import InputError
from segforge.mrml.segments import labels_from_segments
from segforge.mrml.volumes import image_from_volume_node
from segforge.segmentation_file import SegmentInfo

from .organ_nodes import OrganNodes


def organ_dicom_export(volume_node: Any, nodes: Optional[OrganNodes], derived: bool = False,
                       file_for_instance: Optional[FileLookup] = None) -> DicomExport:
    """The SEG and SR of an organ result, read from the scene now (see the module's text)."""
    if volume_node is None:
        raise InputError("No input volume is selected", "the SEG refers to the volume the organs were found on",
                         "select the result's input volume")
    if nodes is None or nodes.segmentation is None or nodes.segmentation.GetScene() is None:
        raise InputError("No organ result to export", "no segmentation was made in this session, or it was "
                         "removed from the scene", "run Segment first")
    if nodes.volume is not None and nodes.volume is not volume_node:
        raise InputError(f"The organ result was made on '{nodes.volume.GetName()}', not on '{volume_node.GetName()}'",
                         "a DICOM SEG must refer to the images it was computed on",
                         f"select '{nodes.volume.GetName()}' as the input volume, or run Segment on this one")
    segmentation = nodes.segmentation.GetSegmentation()
    kept = [segment_id for segment_id in nodes.segment_ids if segmentation.GetSegment(segment_id) is not None]
    if not kept:
        raise InputError(f"'{nodes.segmentation.GetName()}' holds none of the result's segments",
                         "they were deleted after the job", "run Segment again")
    image = image_from_volume_node(volume_node)
    source = source_of_volume(volume_node, image, derived, file_for_instance)
    labels, specs = labels_from_segments(nodes.segmentation, volume_node, kept)
    segments = [SegmentInfo(s.label, s.name, s.color, s.terminology) for s in specs]
    model = str(nodes.summary.get("model", "") or "organ")
    return DicomExport("organ", volume_node.GetName(), image, source,
                       lambda folder, series: organ_dicom(folder, series, image, labels, segments, model))
