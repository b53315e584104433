"""SegOrgan's Logic, importable without Qt (the scripting API of the SegOrgan module). The
form (:mod:`.form`) is what every front end fills; it imports without Slicer, so
``segforge organ`` uses it outside Slicer too (the Logic, which needs Slicer's MRML, is
imported on first use)."""
from .form import OrganForm

__all__ = ["OrganForm", "OrganNodes", "SegOrganLogic"]


def __getattr__(name: str):
    if name == "SegOrganLogic":
        from .logic import SegOrganLogic

        return SegOrganLogic
    if name == "OrganNodes":
        from .organ_nodes import OrganNodes

        return OrganNodes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
