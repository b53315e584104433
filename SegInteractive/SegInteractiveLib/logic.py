"""SegInteractiveLogic: a lesion from a few clicks, boxes or scribbles, refined click by click.

The scripting API of the SegInteractive module, free of Qt. ``start_session`` sends the
volume to the worker once and returns the session object, which is the console API:

    from SegInteractiveLib import SegInteractiveLogic
    session = SegInteractiveLogic().start_session(volumeNode, segmentationNode)  # edits a new "lesion"
    session.add_point([10.0, -22.0, 35.5])      # world RAS mm, as Slicer shows them
    session.add_roi(roiNode); session.undo(); session.accept()

Only the chosen segment is written, only where a prompt changed it; by default it never
takes voxels of the segmentation's other segments.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from segforge.dicom.scene_export import DicomExportLogic
from segforge.errors import InputError
from segforge.image import Image
from segforge.interactive.backends import BACKENDS, DEFAULT_BACKEND, require_backend
from segforge.mrml.segments import new_segmentation_node
from segforge.mrml.volumes import image_from_volume_node
from segforge.worker import WorkerLogic

from .dicom_export import LesionResult, lesion_dicom_export
from .form import InteractiveForm
from .segment_session import InteractiveSegmentSession
from .target_segment import TargetSegment

log = logging.getLogger(__name__)


class SegInteractiveLogic(WorkerLogic, DicomExportLogic):
    """Interactive segmentation of one segment of a segmentation node (no Qt here)."""

    def __init__(self, worker: Any = None) -> None:
        super().__init__(worker)
        #: The open session, or None: one at a time, bound to one volume and one segment.
        self.session: Optional[InteractiveSegmentSession] = None
        self._opening: Optional[SessionOpening] = None

    def backends(self) -> list[str]:
        """Names of the interactive backends, the default first."""
        return [DEFAULT_BACKEND, *sorted(name for name in BACKENDS if name != DEFAULT_BACKEND)]

    def start(self, volume_node: Any, form: InteractiveForm,
              segmentation_node: Optional[Any] = None) -> InteractiveSegmentSession:
        """Open the session a panel's form asks for (see :meth:`start_session`)."""
        return self.start_session(volume_node, segmentation_node, **form.session_options())

    def prepare(self, volume_node: Any, form: InteractiveForm, segmentation_node: Optional[Any] = None) -> Any:
        """The first step of opening the session a form asks for (see :meth:`prepare_session`)."""
        return self.prepare_session(volume_node, segmentation_node, **form.session_options())

    @staticmethod
    def segment_size(session: InteractiveSegmentSession) -> tuple[int, float]:
        """The session's segment now: its voxels on the volume's grid and their volume in mL."""
        from segforge.mrml.segments import segment_voxel_count

        voxels = segment_voxel_count(session.segmentation_node, session.segment_id, session.volume_node)
        return voxels, voxels * float(np.prod(session.volume_node.GetSpacing())) / 1000.0

    def start_session(self, volume_node: Any, segmentation_node: Optional[Any] = None, segment_id: str = "",
                      backend: str = DEFAULT_BACKEND, device: str = "auto", protect_other_segments: bool = True,
                      segment_name: str = "lesion") -> InteractiveSegmentSession:
        """Open a session that edits one segment of ``segmentation_node`` (a new node when None).

        ``segment_id`` "" creates a segment named ``segment_name`` ("lesion 2"... when taken);
        an existing segment is refined, starting from its voxels. With
        ``protect_other_segments`` the segment never takes a voxel of another segment.
        Refused while another session of this Logic is open: accept or discard it first.
        """
        opening = self.prepare_session(volume_node, segmentation_node, segment_id, backend, device,
                                       protect_other_segments, segment_name)
        try:
            engine = opening.open_engine()
        except BaseException:
            opening.abort()
            raise
        return opening.finish(engine)

    def prepare_session(self, volume_node: Any, segmentation_node: Optional[Any] = None, segment_id: str = "",
                        backend: str = DEFAULT_BACKEND, device: str = "auto", protect_other_segments: bool = True,
                        segment_name: str = "lesion") -> "SessionOpening":
        """:meth:`start_session` in steps, for a GUI that sends the volume off its main thread.

        This step (main thread) checks the inputs and opens the segment; then
        ``open_engine()`` (any thread: worker I/O only) and ``finish(engine)`` or ``abort()``
        (main thread). Until then a second session is refused.
        """
        self._refuse_second_session(segmentation_node, segment_id)
        if volume_node is None:
            raise InputError("No input volume is selected", "", "select the volume that shows the lesion")
        require_backend(backend)
        image = image_from_volume_node(volume_node)
        created_node = segmentation_node is None
        if created_node:
            segmentation_node = new_segmentation_node(volume_node, f"{volume_node.GetName()} segmentation")
        try:
            target = TargetSegment.open(segmentation_node, segment_id, image, protect=protect_other_segments,
                                        segment_name=segment_name)
        except Exception:
            if created_node:
                segmentation_node.GetScene().RemoveNode(segmentation_node)
            raise
        self._opening = SessionOpening(self, volume_node, image, target, created_node, backend, device,
                                       protect_other_segments)
        return self._opening

    def _open_engine(self, image: Image, backend: str, device: str, initial: Optional[np.ndarray]) -> Any:
        """The engine's session in the worker (the image is sent here, once per session)."""
        from segforge.worker.interactive_client import RemoteSession

        return RemoteSession(self.worker, image, backend, device, initial)

    def _refuse_second_session(self, segmentation_node: Optional[Any], segment_id: str) -> None:
        if self._opening is not None:
            raise InputError("An interactive session is being opened", "its volume is on the way to the worker",
                             "wait for it to open, then accept or discard it before starting another")
        session = self.session
        if session is None or session.closed:
            return
        if segmentation_node is session.segmentation_node and segment_id != session.segment_id:
            why = f"a session edits one segment, and '{session.target.name}' is being edited"
        else:
            why = f"segment '{session.target.name}' of '{session.segmentation_node.GetName()}' is being edited"
        raise InputError("An interactive session is already open", why,
                         "accept or discard it first, then start the new one")

    def _session_ended(self, session: InteractiveSegmentSession) -> None:
        if self.session is session:
            self.session = None

    # -- Export to DICOM / Send to PACS (which parts go in: :mod:`.dicom_export`) -------------------

    #: the SEG and SR of a result, read from the scene (Export/Send themselves: DicomExportLogic)
    dicom_export = staticmethod(lesion_dicom_export)

    @staticmethod
    def lesion_result(session: InteractiveSegmentSession) -> LesionResult:
        """What a session leaves to export: its segment, and the backend that proposed it (the
        segment stays exportable after the session is accepted and closed)."""
        return LesionResult(session.segmentation_node, session.segment_id,
                            str(getattr(session.engine, "backend_name", "") or DEFAULT_BACKEND))



class SessionOpening:
    """A session between :meth:`SegInteractiveLogic.prepare_session` and its ``finish`` or ``abort``."""

    def __init__(self, logic: SegInteractiveLogic, volume_node: Any, image: Image, target: TargetSegment,
                 created_node: bool, backend: str, device: str, protect: bool) -> None:
        self.logic, self.volume_node, self.image, self.target = logic, volume_node, image, target
        self.created_node, self.backend, self.device, self.protect = created_node, backend, device, protect

    def open_engine(self) -> Any:
        """Send the volume (and the segment to refine) to the worker: no scene access, any thread."""
        initial = self.target.initial if self.target.initial.any() else None
        return self.logic._open_engine(self.image, self.backend, self.device, initial)

    def finish(self, engine: Any) -> InteractiveSegmentSession:
        """The open session (main thread)."""
        self.logic._opening = None
        session = InteractiveSegmentSession(engine, self.volume_node, self.target, on_end=self.logic._session_ended)
        self.logic.session = session
        log.info("interactive session on '%s', segment '%s' (%s, %s)", self.volume_node.GetName(), self.target.name,
                 self.backend, "protecting other segments" if self.protect else "overlap allowed")
        return session

    def abort(self) -> None:
        """Put the segment back as it was and remove a segmentation made for the session (main thread)."""
        self.logic._opening = None
        self.target.restore()
        if self.created_node:
            node = self.target.segmentation_node
            if node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
