"""SegInteractive's Logic, importable without Qt (the scripting API of the SegInteractive module)."""
from .logic import SegInteractiveLogic

__all__ = ["SegInteractiveLogic"]
