"""One Slicer scene for the views and for SegForge's module Logic.

trame-slicer's :class:`~trame_slicer.core.SlicerApp` builds the scene the web views render
(with the crosshair, slice orientation presets, view and displayable-manager factories).
SegForge's module Logic and :mod:`segforge.mrml` find their scene through
``slicer.mrmlScene`` and module logics through ``slicer.modules.<name>.logic()``, which
:func:`segforge.mrml.create_headless_slicer` would set up on a *second* scene. So instead of
making a second one, this module completes trame-slicer's application with the module
logics SegForge needs and installs *its* scene, through :class:`segforge.mrml.HeadlessSlicer`,
as the one ``slicer.mrmlScene``: nodes a Logic writes are the nodes the views display.
"""
from __future__ import annotations

import logging
from typing import Any

import slicer

from segforge.mrml.scene import HEADLESS_MODULE_LOGICS, HeadlessSlicer

logger = logging.getLogger(__name__)

#: trame-slicer registers these under other attribute names; map Slicer module name -> attribute.
_TRAME_SLICER_LOGICS = {
    "Colors": "color_logic",
    "Volumes": "volumes_logic",
    "Segmentations": "segmentations_logic",
    "SubjectHierarchy": "subject_hierarchy_logic",
    "Terminologies": "terminologies_logic",
    "Data": "data_logic",
}


def create_slicer_app() -> tuple[Any, HeadlessSlicer]:
    """trame-slicer's application, completed and installed as ``slicer.mrmlScene``.

    Returns ``(slicer_app, headless)``: the :class:`trame_slicer.core.SlicerApp` the views are
    built on, and the :class:`~segforge.mrml.HeadlessSlicer` view of the same scene and logics.
    """
    from trame_slicer.core import SlicerApp

    slicer_app = SlicerApp()
    logics: dict[str, Any] = {name: getattr(slicer_app, attribute)
                              for name, attribute in _TRAME_SLICER_LOGICS.items()}
    logics["Markups"] = slicer_app.markups_logic._logic  # trame-slicer wraps the vtkSlicerMarkupsLogic
    # The logics SegForge writes through that trame-slicer does not create (models, tables...),
    # registered under Slicer's module names so C++ logics find each other.
    for module_name, class_name in HEADLESS_MODULE_LOGICS.items():
        if module_name not in logics:
            logics[module_name] = slicer_app.register_module_logic(getattr(slicer, class_name)(),
                                                                   logic_name=module_name)
    headless = HeadlessSlicer(slicer_app.scene, slicer_app.app_logic, logics)
    headless.install()
    logger.debug("trame-slicer scene installed as slicer.mrmlScene with logics %s", ", ".join(logics))
    return slicer_app, headless
