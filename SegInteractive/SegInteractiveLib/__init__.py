"""SegInteractive's Logic, importable without Qt (the scripting API of the SegInteractive module).
The form (:mod:`.form`) is what every front end fills; it imports without Slicer, so
``segforge interactive`` uses it outside Slicer too (the rest needs Slicer's MRML and is
imported on first use)."""
from importlib import import_module

from .form import InteractiveForm

__all__ = ["InteractionJob", "InteractiveForm", "InteractiveSegmentSession", "SegInteractiveLogic"]

_LAZY = {"InteractionJob": ".interaction_job", "InteractiveSegmentSession": ".segment_session",
         "SegInteractiveLogic": ".logic"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
