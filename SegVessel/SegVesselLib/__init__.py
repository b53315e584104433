"""SegVessel's Logic: importable without Qt, so the desktop widget, the web panel, the
Python console and the tests share it. The form (:mod:`.form`) is what every front end
fills; it imports without Slicer, so ``segforge vessel`` uses it outside Slicer too (the
Logic, which needs Slicer's MRML, is imported on first use)."""
from .form import VesselForm

__all__ = ["SegVesselLogic", "VesselForm"]


def __getattr__(name: str):
    if name == "SegVesselLogic":
        from .logic import SegVesselLogic

        return SegVesselLogic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
