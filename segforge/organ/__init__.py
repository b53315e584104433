"""Organ and tissue segmentation.

``ct-tissues`` (:func:`ct_tissues`) needs no model weights: body, lungs, airway, bones,
fat and soft tissue of a CT from intensity ranges, morphology and connected components.

Importing this package loads neither scipy nor the workflows; they load on first use
(``segforge.organ.terminology`` stays pure Python).
"""
from __future__ import annotations

from typing import Any

from .labels import LabelResult

__all__ = ["LabelResult", "TISSUE_LABELS", "ct_tissues"]


def __getattr__(name: str) -> Any:
    if name in ("TISSUE_LABELS", "ct_tissues"):
        from . import tissues
        return getattr(tissues, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
