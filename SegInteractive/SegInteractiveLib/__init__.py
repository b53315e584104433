"""SegInteractive's Logic, importable without Qt (the scripting API of the SegInteractive module)."""
from .interaction_job import InteractionJob
from .logic import SegInteractiveLogic
from .segment_session import InteractiveSegmentSession

__all__ = ["InteractionJob", "InteractiveSegmentSession", "SegInteractiveLogic"]
