"""SegVessel's seed points and ROI in the web app, placed with clicks in the slice views.

As on the desktop panel: seed points keep only the vessels they touch, and a box limits the
work to the region it covers. Seeds are a point list the user clicks into; the box is drawn
like SegInteractive's, two opposite corners in a slice view (the axis the clicks share is
given the box's widest side as depth). Both are ordinary markups nodes of the scene, so they
show in every view, are saved with the scene, and reach the Logic as the desktop's do.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .interactive_clicks import ClickPlacement, box_from_corners, point_ras, set_roi

if TYPE_CHECKING:
    from .context import AppContext

SEEDS_NAME = "SegVessel seeds"
ROI_NAME = "SegVessel ROI"
SEED_COLOR = (0.2, 0.8, 0.3)
HINTS = {"seeds": "Click on a vessel in a slice view to add a seed point (click Seed points again to stop).",
         "roi": "Click two opposite corners of the box in a slice view."}


class VesselMarkups:
    """The panel's seed list, box corners and ROI; ``on_change()`` after each edit."""

    def __init__(self, context: "AppContext", on_change: Callable[[], None]) -> None:
        self.context = context
        self.on_change = on_change
        self.mode = ""  # "seeds", "roi" or "" (clicks move the views)
        self._nodes: dict[str, Any] = {}
        self.clicks = ClickPlacement(context.slicer_app, self._on_placed, on_taken=self._placement_taken)

    # -- the nodes (made on first use; made again if the user's scene lost them) -------------------

    def _node(self, role: str) -> Any:
        node = self._nodes.get(role)
        if node is not None and node.GetScene() is self.context.scene:
            return node
        scene = self.context.scene
        if role == "roi":
            node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", ROI_NAME)
            node.CreateDefaultDisplayNodes()
        else:
            node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode",
                                           SEEDS_NAME if role == "seeds" else f"{ROI_NAME} corners")
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            display.SetSelectedColor(*SEED_COLOR)
            display.SetColor(*SEED_COLOR)
            display.SetPointLabelsVisibility(role == "seeds")
            self.clicks.observe(node)
        self._nodes[role] = node
        return node

    def seeds(self) -> Optional[Any]:
        """The seed point list, or None when no seed was placed."""
        node = self._nodes.get("seeds")
        return node if node is not None and node.GetNumberOfControlPoints() else None

    def roi(self) -> Optional[Any]:
        """The ROI node, or None when no box was drawn."""
        node = self._nodes.get("roi")
        return node if node is not None and node.GetScene() is self.context.scene else None

    # -- placing -----------------------------------------------------------------------------------

    def toggle(self, mode: str) -> str:
        """Start placing seeds or a box; the same mode again (or the other one) stops the first."""
        self.clicks.stop()
        if mode == self.mode:
            self.mode = ""
            return ""
        self.mode = mode
        if mode == "roi":
            self._node("corners").RemoveAllControlPoints()
        self.clicks.place(self._node("corners" if mode == "roi" else "seeds"))
        return HINTS[mode]

    def stop(self) -> None:
        self.clicks.stop()
        self.mode = ""

    def clear(self, what: str) -> None:
        """Remove the seeds, or the box ("roi")."""
        if what == "seeds":
            if self._nodes.get("seeds") is not None:
                self._nodes["seeds"].RemoveAllControlPoints()
        else:
            roi = self._nodes.pop("roi", None)
            if roi is not None and roi.GetScene() is not None:
                roi.GetScene().RemoveNode(roi)
        self.on_change()

    def describe(self) -> str:
        """One line: how many seeds, and the box's size."""
        seeds = self.seeds()
        count = seeds.GetNumberOfControlPoints() if seeds is not None else 0
        parts = [f"{count} seed point{'s' if count != 1 else ''}" if count else "no seed points"]
        roi = self.roi()
        if roi is None:
            parts.append("no box (the whole volume)")
        else:
            size = [0.0, 0.0, 0.0]
            roi.GetSizeWorld(size)
            parts.append("box " + " x ".join(f"{s:.0f}" for s in size) + " mm")
        return "; ".join(parts) + "."

    def _placement_taken(self) -> None:
        """Another panel (SegInteractive's prompts) now places with the clicks."""
        corners = self._nodes.get("corners")
        if corners is not None:
            corners.RemoveAllControlPoints()
        self.mode = ""
        self.on_change()

    def _on_placed(self, point_list: Any, _index: int) -> None:
        """A point was defined in a view: act once VTK is done with the click (a box changes the list)."""
        asyncio.get_event_loop().call_soon(self.context.shows_errors(self._use_point), point_list)

    def _use_point(self, point_list: Any) -> None:
        corners = self._nodes.get("corners")
        if point_list is corners and corners.GetNumberOfControlPoints() >= 2:
            centre, size = box_from_corners(point_ras(corners, 0), point_ras(corners, 1))
            corners.RemoveAllControlPoints()
            roi = self._node("roi")
            set_roi(roi, centre, np.maximum(size, 1.0))
            self.stop()
        self.on_change()
