"""SegVesselLogic: a CTA / MRA volume node or a vessel segment in, a vessel tree out, via the worker.

The scripting API of the SegVessel module. ``start_vessel_mask`` returns at once with a
job the GUI polls; ``segment_vessels`` is the blocking call for the Python console:

    logic = SegVesselLogic()
    segmentation = logic.segment_vessels(volumeNode)
    nodes = logic.vessel_tree_from_segment(segmentationNode, segmentId)   # a segment the user has
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Optional, Sequence

from segforge.dicom.scene_export import DicomExportLogic
from segforge.errors import InputError
from segforge.image import Image
from segforge.mrml.segments import (OnExisting, mask_from_segment, mask_on_segment_grid, refuse_before_writing,
                                    segment_id_of, share_outside)
from segforge.mrml.volumes import image_from_volume_node
from segforge.progress import ProgressCallback
from segforge.vessel import VesselMaskParameters
from segforge.vessel.endpoints import SNAP_MM
from segforge.vessel.pipeline import VesselPipelineParameters
from segforge.vessel.tree import from_wire
from segforge.worker import JobResult, ModuleJob, RemoteJob, WorkerLogic

from .fine_tune import FineTuneForm, ScenePair, start_fine_tune
from .form import VesselForm
from .dicom_export import vessel_dicom_export
from .tree_nodes import VesselNodes, base_name, write_vessel_segment, write_vessel_tree

log = logging.getLogger(__name__)


class SegVesselLogic(WorkerLogic, DicomExportLogic):
    """Vessel segmentation of a volume node into a segmentation node (no Qt here)."""

    def _submit(self, task: str, volume_node: Any, segmentation_node: Optional[Any], segment_name: str,
                on_existing: OnExisting, params: dict[str, Any], segment: Optional[Image] = None) -> RemoteJob:
        """Check the inputs (a name clash is refused before any work) and send the volume and/or segment."""
        if volume_node is None and segment is None:
            raise InputError("No input volume is selected", "", "select a CTA or MRA volume")
        inputs = {} if segment is None else {"segment": segment}
        if volume_node is not None:
            inputs["image"] = image_from_volume_node(volume_node)
        refuse_before_writing(segmentation_node, [segment_name], on_existing)
        remote = self.worker.submit(task, inputs, params)
        log.info("%s job %s started for %s", task, remote.id, volume_node.GetName() if volume_node else "a segment")
        return remote

    def start(self, volume_node: Any, form: VesselForm, segmentation_node: Optional[Any] = None,
              on_existing: OnExisting = "error", input_segmentation: Optional[Any] = None) -> ModuleJob:
        """The job a panel's form asks for (see :meth:`VesselForm.job`): the mask alone, or the tree,
        from the volume, the segment ``form.segment`` of ``input_segmentation``, or both.

        What the desktop panel, the web panel and scripts that fill a form call; the result
        is the segmentation node (mask) or :class:`VesselNodes` (tree), see :func:`summary_of`.
        """
        task, parameters, inputs = form.job()
        volume = volume_node if "image" in inputs else None
        if "image" in inputs and volume_node is None:
            raise InputError("No input volume is selected", "the input is a volume" + " and a segment" * (
                "segment" in inputs), "select a CTA or MRA volume")
        if task == "vessel.mask":
            return self.start_vessel_mask(volume, segmentation_node, parameters, form.segment_name, on_existing)
        segment = (self.segment_mask(input_segmentation, form.segment, volume) if "segment" in inputs else None)
        return self.start_vessel_tree(volume, parameters, segmentation_node, form.segment_name, on_existing,
                                      segment=segment, name=None if volume else _segment_name(input_segmentation,
                                                                                             form.segment))

    @staticmethod
    def segment_mask(segmentation_node: Optional[Any], segment_id: str, volume_node: Optional[Any] = None) -> Image:
        """A segment as the engine's vessel mask: on the volume's grid when a volume is given (so
        the two share one grid), else on the segment's own labelmap grid.

        A segment reaching past the volume is refused: on the volume's grid the part outside
        would be dropped without a word, and the tree, lengths and findings would describe a
        cut vessel (see :func:`segforge.mrml.segments.share_outside`)."""
        if segmentation_node is None:
            raise InputError("No segmentation is selected", "the input is a segment",
                             "select the segmentation that holds the vessel segment")
        segment_id = segment_id_of(segmentation_node, segment_id)  # the console may give its name
        if volume_node is None:
            return mask_on_segment_grid(segmentation_node, segment_id, margin_mm=SNAP_MM)  # points snap that far
        mask = mask_from_segment(segmentation_node, segment_id, volume_node)
        if not mask.array.any():
            raise InputError(f"The segment '{_segment_name(segmentation_node, segment_id)}' has no voxel inside "
                             f"the volume '{volume_node.GetName()}'", "it is empty, or lies outside the volume",
                             "choose the volume the segment was made on, or the segment alone as input")
        outside = share_outside(segmentation_node, segment_id, volume_node)
        if outside > 0:
            raise InputError(f"{_percent(outside)} of the segment '{_segment_name(segmentation_node, segment_id)}' "
                             f"lies outside the volume '{volume_node.GetName()}'",
                             "only the part inside the volume would be analysed: the tree, lengths and findings "
                             "would describe a cut vessel",
                             "choose the segment alone as input, or a volume that covers the whole segment")
        return mask

    @staticmethod
    def clash_question(segmentation_node: Optional[Any], form: VesselForm) -> Optional[str]:
        """What to ask before a form's job writes a segment name ``segmentation_node`` already has;
        None: no clash."""
        if segmentation_node is None or not segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(
                form.segment_name):
            return None
        return f'The segmentation "{segmentation_node.GetName()}" already has a segment "{form.segment_name}".'

    def start_vessel_mask(self, volume_node: Any, segmentation_node: Optional[Any] = None,
                          parameters: VesselMaskParameters = VesselMaskParameters(),
                          segment_name: str = "Vessels", on_existing: OnExisting = "error") -> ModuleJob:
        """Send the volume to the worker and return the running job at once.

        ``job.finish()`` writes the mask as ``segment_name`` into ``segmentation_node`` (a new
        node when None) and returns that node. A segment of that name already there is
        handled by ``on_existing`` ("error", "replace" or "rename"), checked now, before any
        work, so the user is asked before anything runs.
        """
        remote = self._submit("vessel.mask", volume_node, segmentation_node, segment_name, on_existing,
                              asdict(parameters))

        def write_result(result: JobResult) -> Any:
            return write_vessel_segment(volume_node, segmentation_node, result.outputs["mask"], segment_name,
                                        on_existing)

        return ModuleJob(remote, write_result)

    def start_vessel_tree(self, volume_node: Any, parameters: VesselPipelineParameters = VesselPipelineParameters(),
                          segmentation_node: Optional[Any] = None, segment_name: str = "Vessels",
                          on_existing: OnExisting = "error", segment: Optional[Image] = None,
                          name: Optional[str] = None) -> ModuleJob:
        """The whole workflow in the worker: mask (or the given ``segment``, see :meth:`segment_mask`),
        centerlines with radius, cross-sections, landmarks, findings, straightened view, surface.

        ``job.finish()`` creates the nodes (see :class:`VesselNodes`) and returns them: the
        vessel segment, one curve per branch with a per-point Radius, a centerline tube model
        coloured by radius, the surface model, the tables, finding points and the diameter plot.
        ``name`` names the nodes (default: the volume's name, or "Vessels" without a volume).
        """
        name = base_name(volume_node, name)  # before the job: a missing name must not fail its finish
        remote = self._submit("vessel.tree", volume_node, segmentation_node, segment_name, on_existing,
                              asdict(parameters), segment)

        def write_result(result: JobResult) -> VesselNodes:
            tree = from_wire(result.outputs, result.meta)
            return write_vessel_tree(tree, volume_node, segmentation_node, segment_name, on_existing, name=name)

        return ModuleJob(remote, write_result)

    def vessel_tree(self, volume_node: Any, parameters: VesselPipelineParameters = VesselPipelineParameters(),
                    segmentation_node: Optional[Any] = None, segment_name: str = "Vessels",
                    on_existing: OnExisting = "error", progress: Optional[ProgressCallback] = None) -> VesselNodes:
        """Blocking variant of :meth:`start_vessel_tree` for the Python console."""
        return self.start_vessel_tree(volume_node, parameters, segmentation_node, segment_name,
                                      on_existing).wait(progress)

    def vessel_tree_from_segment(self, input_segmentation: Any, segment_id: str,
                                 parameters: VesselPipelineParameters = VesselPipelineParameters(),
                                 volume_node: Optional[Any] = None, segmentation_node: Optional[Any] = None,
                                 segment_name: str = "Vessels", on_existing: OnExisting = "error",
                                 progress: Optional[ProgressCallback] = None) -> VesselNodes:
        """Blocking: the vessel tree of a segment the user already has (the volume, when given,
        sharpens the lumen edge), for the Python console. ``segment_id``: the segment's ID, or its
        name when no other segment has it."""
        if input_segmentation is not None:
            segment_id = segment_id_of(input_segmentation, segment_id)
        segment = self.segment_mask(input_segmentation, segment_id, volume_node)
        return self.start_vessel_tree(volume_node, parameters, segmentation_node, segment_name, on_existing,
                                      segment=segment, name=None if volume_node else _segment_name(
                                          input_segmentation, segment_id)).wait(progress)

    def start_fine_tune(self, pairs: Sequence[ScenePair], form: FineTuneForm) -> ModuleJob:
        """Train or fine-tune a vessel model in the worker on (volume, vessel segment) pairs of the
        scene (see :func:`.fine_tune.start_fine_tune`); the job's result names the new model."""
        return start_fine_tune(self.worker, pairs, form)

    def segment_vessels(self, volume_node: Any, segmentation_node: Optional[Any] = None,
                        parameters: VesselMaskParameters = VesselMaskParameters(),
                        segment_name: str = "Vessels", on_existing: OnExisting = "error",
                        progress: Optional[ProgressCallback] = None) -> Any:
        """Blocking variant for scripts: run the job and return the segmentation node."""
        job = self.start_vessel_mask(volume_node, segmentation_node, parameters, segment_name, on_existing)
        return job.wait(progress)

    # -- Export to DICOM / Send to PACS (which parts go in: :mod:`.dicom_export`) -------------------

    #: the SEG and SR of a result, read from the scene (Export/Send themselves: DicomExportLogic)
    dicom_export = staticmethod(vessel_dicom_export)




def _segment_name(segmentation_node: Any, segment_id: str) -> str:
    """The segment's name (its ID when the node has no such segment: the check comes later)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id) if segmentation_node is not None else None
    return segment.GetName() if segment is not None else segment_id


def _percent(share: float) -> str:
    """A share as the message gives it: "38%", never "0%" for a sliver ("under 1%")."""
    return "under 1%" if share < 0.01 else f"{share:.0%}"
