"""The slice and 3D views: trame-slicer's remote-rendered views, each with a stable DOM marker.

Rendering stays trame-slicer's (VTK renders on the server; RCA sends the browser JPEG/PNG
frames). What SegForge adds is a marker per view, ``data-view="Red"`` (Slicer's view
names: Red = axial, Yellow = sagittal, Green = coronal, ThreeD), so the browser tests and
the README screenshots find a given view without relying on the grid's order.
"""
from __future__ import annotations

from typing import Any


def register_view_factories(slicer_app: Any, server: Any) -> None:
    """Let the app's view manager create remote views, with trame-slicer's gutters plus the marker."""
    from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui, create_vertical_view_gutter_ui
    from trame_slicer.rca_view import register_rca_factories

    def slice_view_ui(server: Any, view_id: str, view: Any) -> None:
        create_vertical_slice_view_gutter_ui(server, view_id, view)
        _marker(view_id)

    def three_d_view_ui(server: Any, view_id: str, view: Any) -> None:
        create_vertical_view_gutter_ui(server, view_id, view)
        _marker(view_id)

    register_rca_factories(slicer_app.view_manager, server, slice_view_ui_f=slice_view_ui,
                           three_d_view_ui_f=three_d_view_ui)


def _marker(view_id: str) -> None:
    from trame.widgets import html

    html.Span(classes="segforge-view-marker", style="display: none;", raw_attrs=[f'data-view="{view_id}"'])
