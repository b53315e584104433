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


def test_a_two_click_box_on_a_tilted_or_oblique_anisotropic_volume_is_the_box_drawn(slicer_app):
    """The web app's box (two opposite corners clicked in a slice of the volume, as its views
    show them) on a volume tilted 10 degrees took its depth from the tilt: 3 slices instead of
    7 (Dice 0.904 -> 0.789 on a ball); on a fully oblique one it was twice the drawn size
    in-plane. Now it is the same voxel box on every orientation, and the same lesion."""
    import numpy as np

    from conftest import OBLIQUE, rotation
    from segforge.image import Image
    from segforge.interactive.prompts import box_to_voxels
    from segforge.interactive.session import InteractiveSession
    from segforge_app.interactive_clicks import box_from_corners, set_roi
    from SegInteractiveLib.prompt_nodes import roi_prompt

    shape, spacing = (40, 64, 64), (0.8, 0.9, 2.5)
    mm = (np.indices(shape).transpose(1, 2, 3, 0) - (20, 32, 32)) * np.array(spacing)[::-1]
    ball = (mm ** 2).sum(-1) < 8.0 ** 2
    array = (np.random.default_rng(1).normal(0, 15, shape) + 150 * ball).astype(np.int16)
    roi = slicer_app.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    roi.CreateDefaultDisplayNodes()
    boxes, masks = [], []
    for direction in (np.eye(3), rotation(10, 0, 0), OBLIQUE):
        image = Image(array, spacing, (4.0, -7.0, 11.0), direction)
        ijk_to_ras = image.ijk_to_ras()
        corners = [(ijk_to_ras @ [32 + d, 32 + d, 20, 1.0])[:3] for d in (-11.25, 11.25)]  # i, j, k
        centre, size, axes = box_from_corners(*corners, ijk_to_ras)
        assert np.allclose(size, [22.5 * 0.8, 22.5 * 0.9, 22.5 * 0.9])  # depth: the widest side drawn
        set_roi(roi, centre, size, axes)
        prompt = roi_prompt(roi)
        boxes.append(box_to_voxels(prompt, image))
        session = InteractiveSession(image)
        session.interact(prompt)
        masks.append(session.mask.copy())
    assert boxes[0].lo_kji == (16, 21, 21) and boxes[0].hi_kji == (25, 44, 44)  # 9 slices of 2.5 mm >= 20.25 mm
    assert boxes[1] == boxes[0] and boxes[2] == boxes[0]
    dice = 2 * (masks[0].astype(bool) & ball).sum() / (masks[0].sum() + ball.sum())
    assert dice > 0.85 and np.array_equal(masks[1], masks[0]) and np.array_equal(masks[2], masks[0])
