"""Which parts of an interactive result go into its DICOM SEG and SR (Export to DICOM, Send to PACS).

The rule, in one place for the desktop panel, the web panel and scripts: the one segment the
session edited, as it is now in the segmentation node, on the input volume's grid (the other
segments are the user's, not this tool's result), marked semi-automatic with the backend
that proposed it; the SR holds its volume and maximum 3D diameter, measured on those voxels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from segforge.dicom.results import lesion_dicom
from segforge.dicom.scene_export import DicomExport, FileLookup, source_of_volume
from segforge.errors import InputError
from segforge.interactive.backends import DEFAULT_BACKEND
from segforge.mrml.segments import existing_segment, mask_from_segment
from segforge.mrml.volumes import image_from_volume_node
from segforge.interactive.replay import lesion_segment


@dataclass(frozen=True)
class LesionResult:
    """An interactive result: the segment a session edited, and the backend that proposed it."""

    segmentation: Any
    segment_id: str
    backend: str = DEFAULT_BACKEND


def lesion_dicom_export(volume_node: Any, result: Optional[LesionResult], derived: bool = False,
                        file_for_instance: Optional[FileLookup] = None) -> DicomExport:
    """The SEG and SR of the edited segment (see the module's text)."""
    if volume_node is None:
        raise InputError("No input volume is selected", "the SEG refers to the volume the lesion was drawn on",
                         "select the result's input volume")
    if result is None or result.segmentation is None or result.segmentation.GetScene() is None:
        raise InputError("No lesion to export", "no segment was edited in this session, or its segmentation "
                         "was removed", "segment a lesion first")
    segment = existing_segment(result.segmentation, result.segment_id)
    image = image_from_volume_node(volume_node)
    mask = mask_from_segment(result.segmentation, result.segment_id, volume_node)
    if not mask.array.any():
        raise InputError(f"The segment '{segment.GetName()}' is empty", "a DICOM SEG needs at least one voxel",
                         "add a click on the lesion first")
    source = source_of_volume(volume_node, image, derived, file_for_instance)
    info = lesion_segment(segment.GetName(), tuple(segment.GetColor()), segment.GetTerminology() or None)
    return DicomExport("interactive", volume_node.GetName(), image, source,
                       lambda folder, series: lesion_dicom(folder, series, mask, info, result.backend))
