"""SegOrgan's Logic, importable without Qt (the scripting API of the SegOrgan module)."""
from .logic import SegOrganLogic

__all__ = ["SegOrganLogic"]
