"""SegVesselLogic: a CTA / MRA volume node in, a vessel segment out, via the worker.

The scripting API of the SegVessel module. ``start_vessel_mask`` returns at once with a
job the GUI polls; ``segment_vessels`` is the blocking call for the Python console:

    logic = SegVesselLogic()
    segmentation = logic.segment_vessels(volumeNode)
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Optional

from segforge.errors import InputError
from segforge.mrml.segments import OnExisting, refuse_name_clashes
from segforge.mrml.volumes import image_from_volume_node
from segforge.progress import ProgressCallback
from segforge.vessel import VesselMaskParameters
from segforge.vessel.pipeline import VesselPipelineParameters
from segforge.vessel.tree import from_wire
from segforge.worker import JobResult, ModuleJob, RemoteJob, WorkerLogic

from .form import VesselForm
from .tree_nodes import VesselNodes, write_vessel_segment, write_vessel_tree

log = logging.getLogger(__name__)


class SegVesselLogic(WorkerLogic):
    """Vessel segmentation of a volume node into a segmentation node (no Qt here)."""

    def _submit(self, task: str, volume_node: Any, segmentation_node: Optional[Any], segment_name: str,
                on_existing: OnExisting, params: dict[str, Any]) -> RemoteJob:
        """Check the inputs (a name clash is refused before any work) and send the volume."""
        if volume_node is None:
            raise InputError("No input volume is selected", "", "select a CTA or MRA volume")
        image = image_from_volume_node(volume_node)
        refuse_name_clashes(segmentation_node, [segment_name], on_existing)
        remote = self.worker.submit(task, {"image": image}, params)
        log.info("%s job %s started for %s", task, remote.id, volume_node.GetName())
        return remote

    def start(self, volume_node: Any, form: VesselForm, segmentation_node: Optional[Any] = None,
              on_existing: OnExisting = "error") -> ModuleJob:
        """The job a panel's form asks for (see :meth:`VesselForm.job`): the mask alone, or the tree.

        What the desktop panel, the web panel and scripts that fill a form call; the result
        is the segmentation node (mask) or :class:`VesselNodes` (tree), see :func:`summary_of`.
        """
        task, parameters = form.job()
        if task == "vessel.mask":
            return self.start_vessel_mask(volume_node, segmentation_node, parameters, form.segment_name, on_existing)
        return self.start_vessel_tree(volume_node, parameters, segmentation_node, form.segment_name, on_existing)

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
                          on_existing: OnExisting = "error") -> ModuleJob:
        """The whole workflow in the worker: mask, centerlines with radius, stenoses, surface.

        ``job.finish()`` creates the nodes (see :class:`VesselNodes`) and returns them: the
        vessel segment, one curve per branch with a per-point Radius, a centerline tube model
        coloured by radius, the surface model, a branch table, a stenosis table and points.
        """
        remote = self._submit("vessel.tree", volume_node, segmentation_node, segment_name, on_existing,
                              asdict(parameters))

        def write_result(result: JobResult) -> VesselNodes:
            tree = from_wire(result.outputs, result.meta)
            return write_vessel_tree(tree, volume_node, segmentation_node, segment_name, on_existing)

        return ModuleJob(remote, write_result)

    def vessel_tree(self, volume_node: Any, parameters: VesselPipelineParameters = VesselPipelineParameters(),
                    segmentation_node: Optional[Any] = None, segment_name: str = "Vessels",
                    on_existing: OnExisting = "error", progress: Optional[ProgressCallback] = None) -> VesselNodes:
        """Blocking variant of :meth:`start_vessel_tree` for the Python console."""
        return self.start_vessel_tree(volume_node, parameters, segmentation_node, segment_name,
                                      on_existing).wait(progress)

    def segment_vessels(self, volume_node: Any, segmentation_node: Optional[Any] = None,
                        parameters: VesselMaskParameters = VesselMaskParameters(),
                        segment_name: str = "Vessels", on_existing: OnExisting = "error",
                        progress: Optional[ProgressCallback] = None) -> Any:
        """Blocking variant for scripts: run the job and return the segmentation node."""
        job = self.start_vessel_mask(volume_node, segmentation_node, parameters, segment_name, on_existing)
        return job.wait(progress)

