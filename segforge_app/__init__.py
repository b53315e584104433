"""SegForge in a web browser: a trame-slicer application over one headless Slicer scene.

Kept outside :mod:`segforge` on purpose: the engine stays free of any UI, and this package
is an optional install (``pip install "segforge[app]"``). It never reimplements a workflow:
each module panel drives the same module Logic (``SegXxx/SegXxxLib``) the desktop widgets
use, on the same scene (``slicer.mrmlScene``) the views show.

Entry point: :func:`segforge_app.app.run` (``segforge app`` on the command line).
"""
