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
from segforge.mrml.scene import get_scene
from segforge.mrml.segments import (OnExisting, SegmentSpec, new_segmentation_node, segment_ids_by_name,
                                    terminology_entry, write_label_segments)
from segforge.mrml.volumes import image_from_volume_node
from segforge.progress import ProgressCallback
from segforge.vessel import VesselMaskParameters
from segforge.worker import JobResult, ModuleJob, WorkerClient, shared_worker

log = logging.getLogger(__name__)

VESSEL_COLOR = (0.85, 0.2, 0.2)
#: "Tissue / Blood vessel" in Slicer's general anatomy terminology (SNOMED CT).
VESSEL_TERMINOLOGY = (("SCT", "85756007", "Tissue"), ("SCT", "59820001", "Blood vessel"))


class SegVesselLogic:
    """Vessel segmentation of a volume node into a segmentation node (no Qt here)."""

    def __init__(self, worker: Optional[WorkerClient] = None) -> None:
        self._worker = worker

    @property
    def worker(self) -> WorkerClient:
        """The worker jobs go to: the session's shared one unless another was given."""
        if self._worker is None:
            self._worker = shared_worker()
        return self._worker

    def start_vessel_mask(self, volume_node: Any, segmentation_node: Optional[Any] = None,
                          parameters: VesselMaskParameters = VesselMaskParameters(),
                          segment_name: str = "Vessels", on_existing: OnExisting = "error") -> ModuleJob:
        """Send the volume to the worker and return the running job at once.

        ``job.finish()`` writes the mask as ``segment_name`` into ``segmentation_node`` (a new
        node when None) and returns that node. A segment of that name already there is
        handled by ``on_existing`` ("error", "replace" or "rename"), checked now, before any
        work, so the user is asked before anything runs.
        """
        if volume_node is None:
            raise InputError("No input volume is selected", "", "select a CTA or MRA volume")
        image = image_from_volume_node(volume_node)
        if (segmentation_node is not None and on_existing == "error"
                and segment_name in segment_ids_by_name(segmentation_node)):
            raise InputError(f"Segment '{segment_name}' already exists in '{segmentation_node.GetName()}'",
                             "SegForge never overwrites a segment without asking",
                             "choose replace or keep both, or pick another segment name")
        remote = self.worker.submit("vessel.mask", {"image": image}, asdict(parameters))
        log.info("vessel mask job %s started for %s", remote.id, volume_node.GetName())

        def write_result(result: JobResult) -> Any:
            target = segmentation_node or new_segmentation_node(
                volume_node, f"{volume_node.GetName()} vessels", scene=get_scene())
            spec = SegmentSpec(1, segment_name, VESSEL_COLOR, terminology_entry(*VESSEL_TERMINOLOGY))
            policy = on_existing
            if policy == "error" and segment_name in segment_ids_by_name(target):
                # The user made a segment of that name while the job ran: keep both, lose nothing.
                log.warning("segment '%s' appeared during the job; the result gets another name", segment_name)
                policy = "rename"
            write_label_segments(target, result.outputs["mask"], [spec], on_existing=policy)
            return target

        return ModuleJob(remote, write_result)

    def segment_vessels(self, volume_node: Any, segmentation_node: Optional[Any] = None,
                        parameters: VesselMaskParameters = VesselMaskParameters(),
                        segment_name: str = "Vessels", on_existing: OnExisting = "error",
                        progress: Optional[ProgressCallback] = None) -> Any:
        """Blocking variant for scripts: run the job and return the segmentation node."""
        job = self.start_vessel_mask(volume_node, segmentation_node, parameters, segment_name, on_existing)
        return job.wait(progress)
