"""The module Logic classes the panels drive: the desktop modules' own, not a second copy.

SegVessel, SegOrgan and SegInteractive keep their Logic in ``<Module>/<Module>Lib`` (Slicer's
scripted-module layout). Slicer puts each module folder on ``sys.path``; the wheel installs
the three ``<Module>Lib`` packages at the top level, and an editable install (``make venv``)
puts the module folders on the path, so they import as installed packages. One Logic per
module per app; all of them send their jobs to the shared worker process
(:func:`segforge.worker.shared_worker`), so the page's event loop never runs a model.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any

#: Module name -> its Logic class, as the desktop widget creates it.
LOGIC_CLASSES = {"SegVessel": "SegVesselLogic", "SegOrgan": "SegOrganLogic",
                 "SegInteractive": "SegInteractiveLogic"}


@functools.lru_cache(maxsize=None)
def app_module_logic(module_name: str) -> Any:
    """The app's one ``<module_name>Logic`` (created on first use)."""
    library = importlib.import_module(f"{module_name}Lib")
    return getattr(library, LOGIC_CLASSES[module_name])()
