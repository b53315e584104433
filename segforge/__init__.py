"""SegForge: GPU segmentation for 3D Slicer — the engine.

Pure functions on typed values (:class:`segforge.image.Image`), one subpackage per
workflow (``vessel``, ``organ``, ``interactive``), a background worker
(:mod:`segforge.worker`) and the MRML bridge (:mod:`segforge.mrml`, the only part that
imports Slicer). Nothing here imports Qt.
"""
__version__ = "0.1.0"
