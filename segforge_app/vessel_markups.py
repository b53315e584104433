"""SegVessel's points and ROI in the web app, placed with clicks in the slice views.

As on the desktop panel: seed points keep only the vessels they touch, a box limits the work
to the region it covers, the centerlines run from a source point to each target point, and
the diameters are measured at landmarks. Points are point lists the user clicks into (the
source list keeps one point: a new click moves it); the box is drawn like SegInteractive's,
two opposite corners in a slice view (the axis the clicks share is given the box's widest
side as depth). All are ordinary markups nodes of the scene, so they show in every view, are
saved with the scene, and reach the Logic as the desktop's do.
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
#: The point lists the panel places into: role -> (node name, colour).
POINT_LISTS = {"seeds": (SEEDS_NAME, SEED_COLOR), "source": ("SegVessel source", (0.2, 0.5, 1.0)),
               "targets": ("SegVessel targets", (1.0, 0.5, 0.1)), "landmarks": ("SegVessel landmarks", (0.9, 0.2, 0.9))}
HINTS = {"seeds": "Click on a vessel in a slice view to add a seed point (click Seed points again to stop).",
         "roi": "Click two opposite corners of the box in a slice view.",
         "source": "Click where the centerlines start (one point; a new click moves it).",
         "targets": "Click where each centerline ends (click Targets again to stop).",
         "landmarks": "Click where the diameters are measured (click Landmarks again to stop)."}


class VesselMarkups:
    """The panel's seed list, box corners and ROI; ``on_change()`` after each edit."""

    def __init__(self, context: "AppContext", on_change: Callable[[], None]) -> None:
        self.context = context
        self.on_change = on_change
        self.mode = ""  # "seeds", "roi" or "" (clicks move the views)
        self._nodes: dict[str, Any] = {}
        self.clicks = ClickPlacement(context.slicer_app, self._on_placed, on_taken=self._placement_taken)

    # -- the nodes (made on first use; made again if the user's scene lost them) -------------------

    def _known(self, role: str) -> Optional[Any]:
        """The node of ``role`` in the scene: the one this panel made, else one of the role's name
        and class already there (a scene reloaded from a .mrb, a node another session made),
        adopted so its points are used and clicks go into it instead of a second node of the
        same name. None when there is none."""
        node = self._nodes.get(role)
        scene = self.context.scene
        if node is not None and node.GetScene() is scene:
            return node
        name, node_class = _name_and_class(role)
        found = scene.GetNodesByClassByName(node_class, name)
        node = found.GetItemAsObject(0) if found.GetNumberOfItems() else None
        if node is None:
            self._nodes.pop(role, None)
            return None
        if role != "roi":
            self.clicks.observe(node)
        self._nodes[role] = node
        return node

    def _node(self, role: str) -> Any:
        node = self._known(role)
        if node is not None:
            return node
        scene = self.context.scene
        name, node_class = _name_and_class(role)
        if role == "roi":
            node = scene.AddNewNodeByClass(node_class, name)
            node.CreateDefaultDisplayNodes()
        else:
            color = POINT_LISTS.get(role, (name, SEED_COLOR))[1]
            node = scene.AddNewNodeByClass(node_class, name)
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            display.SetSelectedColor(*color)
            display.SetColor(*color)
            display.SetPointLabelsVisibility(role in POINT_LISTS)
            self.clicks.observe(node)
        self._nodes[role] = node
        return node

    def seeds(self) -> Optional[Any]:
        """The seed point list, or None when no seed was placed."""
        return self.points("seeds")

    def points(self, role: str) -> Optional[Any]:
        """The point list of ``role`` ("seeds", "source", "targets", "landmarks"), or None when empty."""
        node = self._known(role)
        return node if node is not None and node.GetNumberOfControlPoints() else None

    def add_point(self, role: str, point_lps: tuple) -> None:
        """A point placed by value (a script, or a test standing in for a click), LPS mm."""
        node = self._node(role)
        if role == "source":
            node.RemoveAllControlPoints()
        x, y, z = point_lps
        node.AddControlPoint([-x, -y, z])
        self.on_change()

    def roi(self) -> Optional[Any]:
        """The ROI node, or None when no box was drawn."""
        return self._known("roi")

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
        self.clicks.place(self._node("corners" if mode == "roi" else mode))
        return HINTS[mode]

    def stop(self) -> None:
        self.clicks.stop()
        self.mode = ""

    def clear(self, what: str) -> None:
        """Remove the points of a list ("seeds", "source", "targets", "landmarks"), or the box ("roi")."""
        if what in POINT_LISTS:
            if self._known(what) is not None:
                self._nodes[what].RemoveAllControlPoints()
        else:
            roi = self._known("roi")
            self._nodes.pop("roi", None)
            if roi is not None:
                roi.GetScene().RemoveNode(roi)
        self.on_change()

    def describe(self) -> str:
        """One line: how many seeds, the box's size, then the source, targets and landmarks placed."""
        seeds = self.seeds()
        count = seeds.GetNumberOfControlPoints() if seeds is not None else 0
        parts = [f"{count} seed point{'s' if count != 1 else ''}" if count else "no seed points"]
        for role, word in (("source", "source"), ("targets", "target"), ("landmarks", "landmark")):
            node = self.points(role)
            if node is not None:
                n = node.GetNumberOfControlPoints()
                parts.append(f"{n} {word}{'s' if n != 1 and role != 'source' else ''}")
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

    def _shown_ijk_to_ras(self) -> Optional[np.ndarray]:
        """The IJK-to-RAS matrix of the volume the slice views show (trame-slicer turns them to its
        axes), None when none is shown (the views then follow the patient axes). In world RAS, as
        the corners clicked are: a volume under a transform is shown turned with it."""
        from segforge.mrml.volumes import world_ijk_to_ras

        from .results import shown_volume_id

        volume = self.context.scene.GetNodeByID(shown_volume_id(self.context) or "")
        if volume is None or not volume.IsA("vtkMRMLVolumeNode"):
            return None
        return world_ijk_to_ras(volume)

    def _on_placed(self, point_list: Any, _index: int) -> None:
        """A point was defined in a view: act once VTK is done with the click (a box changes the list)."""
        asyncio.get_event_loop().call_soon(self.context.shows_errors(self._use_point), point_list)

    def _use_point(self, point_list: Any) -> None:
        source = self._nodes.get("source")
        if point_list is source and source.GetNumberOfControlPoints() > 1:  # one source: the last click
            while source.GetNumberOfControlPoints() > 1:
                source.RemoveNthControlPoint(0)
        corners = self._nodes.get("corners")
        if point_list is corners and corners.GetNumberOfControlPoints() >= 2:
            # along the shown volume's axes (the views show its own slices): along the patient axes
            # a box drawn on a tilted or oblique volume became a thin slab cutting the vessel
            centre, size, axes = box_from_corners(point_ras(corners, 0), point_ras(corners, 1),
                                                  self._shown_ijk_to_ras())
            corners.RemoveAllControlPoints()
            roi = self._node("roi")
            set_roi(roi, centre, np.maximum(size, 1.0), axes)
            self.stop()
        self.on_change()


def _name_and_class(role: str) -> tuple[str, str]:
    """The node name and MRML class of a role's node: what the panel makes and what it adopts."""
    if role == "roi":
        return ROI_NAME, "vtkMRMLMarkupsROINode"
    return POINT_LISTS.get(role, (f"{ROI_NAME} corners", None))[0], "vtkMRMLMarkupsFiducialNode"
