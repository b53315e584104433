"""Qt helpers shared by the SegForge module widgets (SegVessel, SegOrgan, SegInteractive).

The engine package ``segforge/`` stays free of Qt; what the three panels share and needs Qt
lives here. The top-level CMakeLists.txt installs this package beside the modules and
``segforge/`` (the folder Slicer puts on ``sys.path``), so ``import SegForgeWidgets`` works
the same from an installed extension and from a checkout on ``PYTHONPATH``.
"""
from .job_runner import JobRunner

__all__ = ["JobRunner"]
