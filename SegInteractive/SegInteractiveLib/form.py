"""SegInteractive's form: the session's fields, and how a session's state reads to a person.

The desktop panel (its parameter node), the web panel (its state) and ``segforge
interactive`` (its options) each fill an :class:`InteractiveForm`; the Logic opens a
session from it, the CLI its engine session. The status line a panel shows after each
prompt is written once here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from segforge.errors import InputError
from segforge.forms import DEVICE_TITLES, Form, labelled
from segforge.interactive.backends import DEFAULT_BACKEND, require_backend

#: The target "a new segment" (segment IDs are never empty).
NEW_SEGMENT = ""


@dataclass(frozen=True)
class InteractiveForm(Form):
    """The SegInteractive panel's fields."""

    backend: str = labelled(DEFAULT_BACKEND, "the backend")
    device: str = labelled("auto", "the device")
    #: The segment never takes a voxel of the segmentation's other segments.
    protect_other_segments: bool = True
    #: The segment to refine; NEW_SEGMENT starts a new one named ``new_segment_name``.
    target_segment_id: str = NEW_SEGMENT
    new_segment_name: str = labelled("lesion", "the segment name")

    def session_options(self) -> dict[str, Any]:
        """The Logic's session arguments (``prepare_session`` / ``start_session``), checked."""
        require_backend(self.backend)
        if not (self.device in DEVICE_TITLES or self.device.startswith("cuda:")):
            raise InputError("The device is unknown", f"it is {self.device!r}", "choose auto, cpu, cuda or cuda:N")
        if self.target_segment_id == NEW_SEGMENT and not self.new_segment_name:
            raise InputError("No segment name", "the new segment's name is empty", "enter a name for the segment")
        return {"segment_id": self.target_segment_id, "backend": self.backend, "device": self.device,
                "protect_other_segments": self.protect_other_segments, "segment_name": self.new_segment_name}


def form_from_parameter_node(parameter_node: Any) -> InteractiveForm:
    """The desktop panel's form: each field from the parameter node's camelCase twin."""
    return InteractiveForm.from_attributes(parameter_node)


def status_line(prefix: str, segment: str, prompts: int, voxels: int, millilitres: float, timing: str = "",
                warning: Optional[str] = None) -> str:
    """What a panel says after a prompt: the segment's size now, and the last interaction's time."""
    text = (f"{prefix + '. ' if prefix else ''}Segment '{segment}': {voxels} voxels, {millilitres:.2f} mL, "
            f"{prompts} prompts" + (f"; {timing}" if timing else "") + ".")
    return text + (f"\nWarning: {warning}" if warning else "")


def kept_line(segment: str, segmentation: str, voxels: int, millilitres: float) -> str:
    """What a panel says when a session's segment is kept."""
    return f"Kept segment '{segment}' of '{segmentation}': {voxels} voxels, {millilitres:.2f} mL."


DISCARDED = "Discarded: the segment is as it was before the session."
