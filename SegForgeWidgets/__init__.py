"""Qt helpers shared by the SegForge module widgets (SegVessel, SegOrgan, SegInteractive).

The engine package ``segforge/`` stays free of Qt; what the three panels share and needs Qt
(or Slicer's GUI) lives here: :class:`~.job_runner.JobRunner` (a panel's running job) and
:mod:`.python_dependencies` (installing packages on first use, after asking). The top-level
CMakeLists.txt installs this package beside the modules and ``segforge/`` (the folder
Slicer puts on ``sys.path``), so ``import SegForgeWidgets`` works the same from an installed
extension and from a checkout on ``PYTHONPATH``.

Importing the package is cheap and needs no Qt: each helper is imported when first asked for
(``from SegForgeWidgets import JobRunner`` imports Qt then, not before).
"""

__all__ = ["DicomSection", "JobRunner"]


def __getattr__(name):
    if name == "DicomSection":
        from .dicom_section import DicomSection

        return DicomSection
    if name == "JobRunner":
        from .job_runner import JobRunner

        return JobRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
