"""SegOrgan's Logic, importable without Qt (the scripting API of the SegOrgan module)."""
from .logic import SegOrganLogic
from .organ_nodes import OrganNodes

__all__ = ["OrganNodes", "SegOrganLogic"]
