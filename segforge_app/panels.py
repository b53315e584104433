"""The left drawer's panels: one registry, one entry per panel.

The Data panel is the first entry; SegVessel, SegOrgan and SegInteractive each add one
:class:`Panel` here (``register_panel``) whose ``build`` lays out widgets and binds them to
that module's Logic through the :class:`AppContext`. The app builds the drawer from the
registry, so adding a module panel touches no other file.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .context import AppContext


@dataclass(frozen=True)
class Panel:
    """A drawer panel: ``build(context)`` is called inside the panel's body while the UI is laid out."""

    id: str  # state/DOM-safe identifier, e.g. "segorgan"
    title: str
    build: Callable[["AppContext"], Any]
    order: int = 100


_PANELS: dict[str, Panel] = {}


def register_panel(panel: Panel) -> Panel:
    """Add (or replace, by id) a panel in the drawer."""
    _PANELS[panel.id] = panel
    return panel


#: The app's own panels, each a module of this package that registers itself when imported.
BUILTIN_PANELS = ("data_panel", "vessel_panel", "organ_panel", "interactive_panel", "save_panel", "dicom_panel")


def registered_panels() -> list[Panel]:
    """The panels in drawer order (the built-in ones are registered on first call)."""
    for name in BUILTIN_PANELS:
        importlib.import_module(f"{__package__}.{name}")
    return sorted(_PANELS.values(), key=lambda panel: (panel.order, panel.id))
