"""InteractiveSegmentSession: the console API of SegInteractive, one segment edited click by click.

    session = SegInteractiveLogic().start_session(volumeNode, segmentationNode)  # a new "lesion"
    session.add_point([12.0, -30.5, 44.0])               # a positive click, world RAS mm
    session.add_point([15.0, -28.0, 44.0], positive=False)
    session.add_lasso(closedCurveNode)                    # inside the curve: the lesion in that slice
    session.undo(); session.redo()
    session.accept()                                      # or session.discard()

The image went to the worker once, when the session opened; each prompt sends only the
prompt and writes back only the box that changed. A session is bound to one volume and
one segment: prompts outside the volume are refused before anything is sent, and another
target needs another session (accept or discard this one first). Every ``add_*`` blocks;
each has a ``start_*`` twin that returns an :class:`InteractionJob` for the widget.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np

from segforge.errors import InputError
from segforge.image import Image
from segforge.interactive.prompts import Prompt, to_voxels
from segforge.interactive.session import MaskChange
from segforge.progress import ProgressCallback

from . import prompt_nodes
from .interaction_job import InteractionJob
from .target_segment import TargetSegment

log = logging.getLogger(__name__)


class InteractiveSegmentSession:
    """One interactive session: a volume, the engine's session in the worker, the target segment."""

    def __init__(self, engine: Any, volume_node: Any, target: TargetSegment,
                 on_end: Callable[["InteractiveSegmentSession"], None] = lambda session: None) -> None:
        self.engine = engine
        self.volume_node = volume_node
        self.target = target
        self._on_end = on_end
        self._running: Optional[InteractionJob] = None
        self.closed = False

    # -- state ------------------------------------------------------------------------------
    @property
    def segmentation_node(self) -> Any:
        return self.target.segmentation_node

    @property
    def segment_id(self) -> str:
        return self.target.segment_id

    @property
    def image(self) -> Image:
        return self.engine.image

    @property
    def history(self) -> list[Prompt]:
        """The prompts applied so far, oldest first."""
        return list(self.engine.history)

    @property
    def can_undo(self) -> bool:
        return not self.closed and self.engine.can_undo

    @property
    def can_redo(self) -> bool:
        return not self.closed and self.engine.can_redo

    @property
    def busy(self) -> bool:
        """True while an interaction started with ``start_*`` has not been finished."""
        return self._running is not None

    @property
    def warning(self) -> Optional[str]:
        """What the backend wants the user to know (e.g. a deep backend running on CPU is slow)."""
        return getattr(self.engine, "warning", None)

    # -- prompts (blocking) --------------------------------------------------------------------
    def interact(self, prompt: Prompt, progress: Optional[ProgressCallback] = None) -> MaskChange:
        """Apply any engine prompt (LPS) and write the change into the segment."""
        self._check_ready(prompt)
        change = self.engine.interact(prompt) if progress is None else self.engine.interact(prompt, progress)
        return self._write(change, self.engine.withdraw_last)

    def add_point(self, position_ras: Sequence[float], positive: bool = True,
                  progress: Optional[ProgressCallback] = None) -> MaskChange:
        """A click at a world RAS position: inside the lesion (positive) or outside it."""
        return self.interact(prompt_nodes.point_prompt(position_ras, positive), progress)

    def add_point_from_markups(self, fiducial_node: Any, index: int = -1, positive: bool = True,
                               progress: Optional[ProgressCallback] = None) -> MaskChange:
        """Control point ``index`` (default: the last) of a markups point list as a click."""
        return self.interact(self._markups_prompt(fiducial_node, index, positive), progress)

    def add_box(self, min_ras: Sequence[float], max_ras: Sequence[float], positive: bool = True,
                progress: Optional[ProgressCallback] = None) -> MaskChange:
        """A box between two opposite world RAS corners, around the lesion."""
        return self.interact(prompt_nodes.box_prompt(min_ras, max_ras, positive), progress)

    def add_roi(self, roi_node: Any, positive: bool = True,
                progress: Optional[ProgressCallback] = None) -> MaskChange:
        """A markups ROI as a box (a rotated ROI: its world bounding box)."""
        return self.interact(prompt_nodes.roi_prompt(roi_node, positive), progress)

    def add_scribble(self, segmentation_node: Any, segment_id: str, positive: bool = True,
                     progress: Optional[ProgressCallback] = None) -> MaskChange:
        """Strokes painted in a helper segment (its voxels on this volume) as a scribble."""
        return self.interact(self._scribble_prompt(segmentation_node, segment_id, positive), progress)

    def add_lasso(self, curve_node: Any, positive: bool = True,
                  progress: Optional[ProgressCallback] = None) -> MaskChange:
        """A markups closed curve drawn in one slice: inside it is the lesion there (positive), or
        is erased (negative)."""
        return self.interact(prompt_nodes.curve_lasso_prompt(curve_node, positive), progress)

    def add_stroke(self, points_ras: Sequence[Sequence[float]], positive: bool = True,
                   progress: Optional[ProgressCallback] = None) -> MaskChange:
        """A stroke (world RAS positions in order, as a drag in a slice view gives them) as a scribble."""
        return self.interact(prompt_nodes.stroke_scribble_prompt(points_ras, self.image, positive), progress)

    # -- prompts (asynchronous, for the widget) -------------------------------------------------
    def start_interaction(self, prompt: Prompt) -> InteractionJob:
        """Send a prompt and return at once; the job's ``finish`` writes the change."""
        self._check_ready(prompt)
        job = InteractionJob(self.engine.submit_interact(prompt), self._write_if_open, self._job_done)
        self._running = job
        return job

    def start_point(self, position_ras: Sequence[float], positive: bool = True) -> InteractionJob:
        return self.start_interaction(prompt_nodes.point_prompt(position_ras, positive))

    def start_point_from_markups(self, fiducial_node: Any, index: int = -1, positive: bool = True) -> InteractionJob:
        return self.start_interaction(self._markups_prompt(fiducial_node, index, positive))

    def start_roi(self, roi_node: Any, positive: bool = True) -> InteractionJob:
        return self.start_interaction(prompt_nodes.roi_prompt(roi_node, positive))

    def start_scribble(self, segmentation_node: Any, segment_id: str, positive: bool = True) -> InteractionJob:
        return self.start_interaction(self._scribble_prompt(segmentation_node, segment_id, positive))

    def start_lasso(self, curve_node: Any, positive: bool = True) -> InteractionJob:
        return self.start_interaction(prompt_nodes.curve_lasso_prompt(curve_node, positive))

    def start_stroke(self, points_ras: Sequence[Sequence[float]], positive: bool = True) -> InteractionJob:
        return self.start_interaction(prompt_nodes.stroke_scribble_prompt(points_ras, self.image, positive))

    # -- history ------------------------------------------------------------------------------
    def undo(self) -> Optional[MaskChange]:
        """Take back the last prompt (None when there is none); the segment goes back exactly."""
        self._check_ready()
        change = self.engine.undo()
        return None if change is None else self._write(change, self.engine.redo)

    def redo(self) -> Optional[MaskChange]:
        """Apply the last undone prompt again (None when there is none)."""
        self._check_ready()
        change = self.engine.redo()
        return None if change is None else self._write(change, self.engine.undo)

    def reset(self) -> MaskChange:
        """Forget every prompt: the segment goes back to how the session found it. Written
        first, forgotten after: a reset the scene refuses leaves every prompt in the session, as
        the segment still shows them (the engine reset first used to forget them all)."""
        self._check_ready()
        back = MaskChange.between(np.asarray(self.engine.mask), (self.target.initial != 0).astype(np.uint8))
        written = self._write(back, lambda: None)
        self.engine.reset()
        return written

    # -- ending -------------------------------------------------------------------------------
    def accept(self) -> str:
        """End the session and keep the segment as it is now; returns its ID."""
        self._end()
        log.info("kept segment '%s' after %d prompts", self.target.name, len(self.engine.history))
        return self.segment_id

    def discard(self) -> None:
        """End the session and put the segment back exactly as it was (a new one is removed)."""
        self._end()
        self.target.restore()

    # -- helpers ------------------------------------------------------------------------------
    def _markups_prompt(self, fiducial_node: Any, index: int, positive: bool) -> Prompt:
        if fiducial_node is not None and index < 0:
            index += fiducial_node.GetNumberOfControlPoints()
        prompt, placed_on = prompt_nodes.markups_point_prompt(fiducial_node, index, positive)
        try:
            to_voxels(prompt, self.image)
        except InputError as error:
            if placed_on is not None and placed_on is not self.volume_node:
                raise InputError(f"The point was placed on '{placed_on.GetName()}', outside "
                                 f"'{self.volume_node.GetName()}' being segmented", error.why,
                                 f"show '{self.volume_node.GetName()}' in the slice views "
                                 "and place it there") from error
            raise
        return prompt

    def _scribble_prompt(self, segmentation_node: Any, segment_id: str, positive: bool) -> Prompt:
        if segmentation_node is self.segmentation_node and segment_id == self.segment_id:
            raise InputError("The scribble is the segment being edited", "a scribble must be a separate helper segment",
                             "paint the scribble into the scribble segment, not the lesion")
        return prompt_nodes.scribble_prompt(segmentation_node, segment_id, self.volume_node, self.image, positive)

    def _check_ready(self, prompt: Optional[Prompt] = None) -> None:
        """Refuse before anything is sent: an ended session, one still busy, a prompt off the volume."""
        if self.closed:
            raise InputError("This interactive session has ended", "it was accepted or discarded",
                             "start a new session")
        if self._running is not None:
            raise InputError("An interaction is still running", "one prompt is segmented at a time",
                             "wait for it, or press Cancel")
        if prompt is not None:
            to_voxels(prompt, self.image)  # InputError for a prompt outside the volume: nothing changes

    def _write_if_open(self, change: MaskChange) -> MaskChange:
        if self.closed:  # accepted or discarded while the job ran: the segment is final
            raise InputError("The session ended before this interaction finished", "nothing was written",
                             "start a new session to go on editing")
        return self._write(change, self.engine.withdraw_last)

    def _write(self, change: MaskChange, take_back: Callable[[], Any]) -> MaskChange:
        """Write the engine's ``change`` into the segment; when the scene refuses it (the segment
        deleted, the segmentation switched to closed surfaces, Slicer refusing the labelmap),
        ``take_back`` takes the step back out of the engine and whatever part of the box was
        written is put back, so the session never holds a prompt the segment does not show (it
        did: the next click wrote only its own difference, and segment and session drifted
        apart). The scene's error is raised: the segment and the session are as they were."""
        try:
            return self.target.write(change)
        except BaseException:
            try:
                take_back()
            except Exception as error:  # the worker gone too: the next operation rebuilds it
                log.warning("taking the unwritten step back out of the session failed: %s", error)
            try:
                self.target.write(change.inverse())
            except Exception:  # refused again for the same reason: nothing had been written
                pass
            raise

    def _job_done(self) -> None:
        self._running = None

    def _end(self) -> None:
        """Close the engine's session; a prompt still running is cancelled and never written."""
        if self.closed:
            self._check_ready()
        if self._running is not None:
            self._running.cancel()
            self._running = None
        self.closed = True
        try:
            self.engine.close()
        except Exception as error:  # the worker may be gone; the segment is what matters now
            log.warning("closing the worker's session failed: %s", error)
        finally:
            self._on_end(self)
