"""SegOrganLogic: a CT / MR volume node in, a segment per structure and statistics out.

The scripting API of the SegOrgan module, free of Qt. ``start_organ_segmentation`` returns
at once with a job the GUI polls; ``segment_organs`` is the blocking call for the console:

    from SegOrganLib import SegOrganLogic
    from segforge.organ.parameters import OrganParameters
    nodes = SegOrganLogic().segment_organs(volumeNode, OrganParameters(structures=("lungs", "bones")))
    print(nodes.segment_ids, nodes.statistics_table.GetNumberOfRows())
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Optional

from segforge.dicom.scene_export import DicomExportLogic
from segforge.errors import InputError
from segforge.mrml.segments import OnExisting, refuse_before_writing, segment_ids_by_name
from segforge.mrml.volumes import image_from_volume_node
from segforge.organ.models import OrganModelChoice, organ_models
from segforge.organ.parameters import OrganParameters
from segforge.organ.pipeline import check_request
from segforge.progress import ProgressCallback
from segforge.worker import JobResult, ModuleJob, WorkerLogic

from .form import OrganForm, clash_question
from .dicom_export import organ_dicom_export
from .organ_nodes import OrganNodes, write_organ_nodes

log = logging.getLogger(__name__)


class SegOrganLogic(WorkerLogic, DicomExportLogic):
    """Organ / tissue segmentation of a volume node into a segmentation node (no Qt here)."""

    def models(self) -> list[OrganModelChoice]:
        """The organ models to offer: installed or not, verified or not, with their structures."""
        return organ_models()

    def existing_structures(self, segmentation_node: Optional[Any], parameters: OrganParameters) -> list[str]:
        """Names the job would write that ``segmentation_node`` already has (ask before replacing)."""
        if segmentation_node is None:
            return []
        existing = segment_ids_by_name(segmentation_node)
        return [name for name in check_request(parameters).wanted.values() if name in existing]

    def start(self, volume_node: Any, form: OrganForm, segmentation_node: Optional[Any] = None,
              on_existing: OnExisting = "error") -> ModuleJob[OrganNodes]:
        """Start the job a panel's form asks for (see :meth:`start_organ_segmentation`)."""
        return self.start_organ_segmentation(volume_node, form.parameters(self.models()), segmentation_node,
                                             on_existing, statistics=form.create_statistics,
                                             surfaces=form.create_surfaces)

    def clash_question(self, segmentation_node: Optional[Any], form: OrganForm) -> Optional[str]:
        """What to ask before a form's job writes names ``segmentation_node`` already has; None: no clash."""
        if segmentation_node is None:
            return None
        return clash_question(segmentation_node.GetName(),
                              self.existing_structures(segmentation_node, form.parameters(self.models())))

    def start_organ_segmentation(self, volume_node: Any, parameters: OrganParameters = OrganParameters(),
                                 segmentation_node: Optional[Any] = None, on_existing: OnExisting = "error",
                                 statistics: bool = True, surfaces: bool = False) -> ModuleJob[OrganNodes]:
        """Send the volume to the worker and return the running job at once.

        ``job.finish()`` writes a segment per structure found into ``segmentation_node`` (a
        new node when None), adds the statistics table and, with ``surfaces``, the 3D
        surfaces, and returns :class:`OrganNodes`. Segments of the same names already there
        are handled by ``on_existing`` ("error", "replace" or "rename"), checked now, before
        any work, as are the model (known, installed) and the structure names.
        """
        if volume_node is None:
            raise InputError("No input volume is selected", "", "select a CT or MR volume")
        refuse_before_writing(segmentation_node, list(check_request(parameters).wanted.values()), on_existing)
        image = image_from_volume_node(volume_node)
        params = {**asdict(parameters), "structures": list(parameters.structures), "statistics": statistics}
        remote = self.worker.submit("organ.segment", {"image": image}, params)
        log.info("organ.segment job %s started for %s (model %s)", remote.id, volume_node.GetName(), parameters.model)

        def write_result(result: JobResult) -> OrganNodes:
            from segforge.organ.wire import from_wire

            organ_result, rows = from_wire(result.outputs, result.meta)
            return write_organ_nodes(volume_node, segmentation_node, organ_result, rows, on_existing, surfaces)

        return ModuleJob(remote, write_result)

    def segment_organs(self, volume_node: Any, parameters: OrganParameters = OrganParameters(),
                       segmentation_node: Optional[Any] = None, on_existing: OnExisting = "error",
                       statistics: bool = True, surfaces: bool = False,
                       progress: Optional[ProgressCallback] = None) -> OrganNodes:
        """Blocking variant of :meth:`start_organ_segmentation` for scripts and the console."""
        return self.start_organ_segmentation(volume_node, parameters, segmentation_node, on_existing,
                                             statistics, surfaces).wait(progress)

    # -- Export to DICOM / Send to PACS (which parts go in: :mod:`.dicom_export`) -------------------

    #: the SEG and SR of a result, read from the scene (Export/Send themselves: DicomExportLogic)
    dicom_export = staticmethod(organ_dicom_export)


