"""SegVessel's Logic: importable without Qt, so the desktop widget, the web panel, the
Python console and the tests share it."""
from .logic import SegVesselLogic

__all__ = ["SegVesselLogic"]
