"""Clicks in the web views place into one panel's point list at a time (trame-slicer's own
SlicerApp, in this process): a panel starting to place takes the clicks from the one before,
which is told so, and the one before stopping later leaves the new one placing."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def slicer_app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


def placing(slicer_app):
    """(is the views' mode Place, the ID of the list clicks go into)."""
    scene = slicer_app.scene
    interaction = scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    selection = scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    return interaction.GetCurrentInteractionMode() == interaction.Place, selection.GetActivePlaceNodeID()


def test_one_panel_places_at_a_time(slicer_app):
    from segforge_app.interactive_clicks import ClickPlacement

    scene = slicer_app.scene
    seeds, prompts = (scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name) for name in ("seeds", "prompts"))
    taken = []
    vessel = ClickPlacement(slicer_app, lambda *_: None, on_taken=lambda: taken.append("vessel"))
    interactive = ClickPlacement(slicer_app, lambda *_: None, on_taken=lambda: taken.append("interactive"))

    vessel.place(seeds)
    assert placing(slicer_app) == (True, seeds.GetID()) and taken == []
    interactive.place(prompts)
    assert placing(slicer_app) == (True, prompts.GetID())
    assert taken == ["vessel"] and vessel.active is None, "the panel that placed before was not told"
    vessel.stop()  # e.g. its job starts: the other panel's placing goes on
    assert placing(slicer_app) == (True, prompts.GetID())
    interactive.stop()
    assert placing(slicer_app)[0] is False
    assert taken == ["vessel"]
