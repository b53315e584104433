"""SegOrgan's Logic: many labelled structures (TotalSegmentator-like) from a CT or MR volume.

Not available in this release: organ segmentation arrives in a later SegForge release. Until
then this class only says so. :attr:`SegOrganLogic.available` is False, and every method that
would produce a result raises :class:`segforge.errors.SegForgeError`; nothing here makes up
a segmentation. The class imports without Qt, like every SegForge Logic, so the widget, the
web panel, the Python console and the tests share it.
"""
from __future__ import annotations

from typing import Any, NoReturn

from segforge.errors import SegForgeError


class SegOrganLogic:
    """Scripting API of SegOrgan (organ segmentation)."""

    #: Whether this release can segment organs; the widget keeps Apply disabled while False.
    available = False

    def start_organ_segmentation(self, volume_node: Any, segmentation_node: Any = None, **options: Any) -> NoReturn:
        """Would start segmenting organs in the background; raises until the workflow exists."""
        raise not_available()

    def segment_organs(self, volume_node: Any, segmentation_node: Any = None, **options: Any) -> NoReturn:
        """Blocking variant of :meth:`start_organ_segmentation`; raises until the workflow exists."""
        raise not_available()


def not_available() -> SegForgeError:
    """The error every SegOrgan action raises in this release."""
    return SegForgeError("Organ segmentation is not available in this SegForge release",
                         "it arrives in a later release",
                         "Watch the SegForge release notes; SegVessel works today")
