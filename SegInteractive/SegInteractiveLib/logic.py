"""SegInteractive's Logic: a lesion from a few clicks, boxes or scribbles, refined click by click.

Not available in this release: interactive segmentation arrives in a later SegForge release.
Until then this class only says so. :attr:`SegInteractiveLogic.available` is False, and every
method that would produce or edit a segment raises :class:`segforge.errors.SegForgeError`;
nothing here makes up a mask or touches a segmentation. The class imports without Qt, like
every SegForge Logic, so the widget, the web panel, the Python console and the tests share it.
"""
from __future__ import annotations

from typing import Any, NoReturn

from segforge.errors import SegForgeError


class SegInteractiveLogic:
    """Scripting API of SegInteractive (interactive lesion segmentation)."""

    #: Whether this release can segment interactively; the widget keeps Apply disabled while False.
    available = False

    def start_session(self, volume_node: Any, segmentation_node: Any, segment_id: str = "", **options: Any) -> NoReturn:
        """Would open an interactive session on one segment; raises until the workflow exists."""
        raise not_available()


def not_available() -> SegForgeError:
    """The error every SegInteractive action raises in this release."""
    return SegForgeError("Interactive segmentation is not available in this SegForge release",
                         "it arrives in a later release",
                         "Watch the SegForge release notes; Slicer's Segment Editor works meanwhile")
