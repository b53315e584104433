"""Which parts of a vessel result go into its DICOM SEG and SR (Export to DICOM, Send to PACS).

The rule, in one place for the desktop panel, the web panel and scripts: the vessel tree the
job computed (:attr:`VesselNodes.tree`): its mask as the one segment, its branch lengths and
diameters, stenoses and dilatations with their places, and its landmarks as the SR's groups,
so every number in the SR was measured on the voxels of the SEG. A mask-only job has no tree
(nothing measured) and a tree computed from a segment alone is not on any image's grid: both
are refused with what to do. The segment keeps the name the job gave it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from segforge.dicom.results import vessel_dicom
from segforge.dicom.scene_export import DicomExport, FileLookup, source_of_volume
from segforge.errors import InputError
from segforge.mrml.volumes import image_from_volume_node
from segforge.vessel.outputs import VESSEL_SEGMENT

from .tree_nodes import VesselNodes


def vessel_dicom_export(volume_node: Any, nodes: Optional[VesselNodes], derived: bool = False,
                        file_for_instance: Optional[FileLookup] = None) -> DicomExport:
    """The SEG and SR of a vessel tree result (see the module's text)."""
    if volume_node is None:
        raise InputError("No input volume is selected", "the SEG refers to the volume the vessels were found on",
                         "select the result's input volume")
    if nodes is None or getattr(nodes, "tree", None) is None:
        raise InputError("No vessel tree to export", "the SR holds the tree's measurements (branches, findings, "
                         "landmarks), and the last result has none (a mask only, or no result yet)",
                         "run the vessel tree (centerlines) first")
    tree = nodes.tree
    image = image_from_volume_node(volume_node)
    if tree.mask.array.shape != image.array.shape or not np.allclose(tree.mask.ijk_to_lps(), image.ijk_to_lps(),
                                                                      atol=1e-4):
        raise InputError(f"The vessel tree is not on the grid of '{volume_node.GetName()}'",
                         "it was computed from a segment alone, or on another volume", "run the vessel tree with "
                         "this volume as input, then export")
    source = source_of_volume(volume_node, image, derived, file_for_instance)
    name = VESSEL_SEGMENT.name
    segmentation = nodes.segmentation
    if segmentation is not None and segmentation.GetScene() is not None and nodes.segment_id:
        segment = segmentation.GetSegmentation().GetSegment(nodes.segment_id)
        name = segment.GetName() if segment is not None else name  # renamed by the user: the name now
    segment = dataclasses.replace(VESSEL_SEGMENT, name=name)
    model = str(tree.summary.get("mask_model", "vessel") or "vessel")
    return DicomExport("vessel", volume_node.GetName(), image, source,
                       lambda folder, series: vessel_dicom(folder, series, tree, segment, model))

