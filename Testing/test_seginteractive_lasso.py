"""SegInteractive's lasso and stroke on a real MRML scene, through a real worker subprocess.

A markups closed curve drawn in an axial slice of an oblique, anisotropic volume becomes the
lesion in that slice exactly (Slicer's own export of the segment is compared with a ray cast
of the curve in the slice's plane); the other segments stay bit-identical; undo and redo
bring the segment back exactly; an open curve, one of two points, or one drawn across
slices is refused with what to do. A stroke (the web views' scribble) paints the voxels it
passes over. The markers of applied lassos follow undo and redo and leave with the session.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import slicer
import vtk

from conftest import REPO
from segforge.errors import InputError
from segforge.image import Image
from segforge.interactive.prompts import LassoPrompt, ScribblePrompt, to_voxels
from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
from segforge.mrml.volumes import volume_node_from_image
from test_interactive_lasso import ARROW_JI, SHAPE, SLICE, ball_image, expected_slice

sys.path.insert(0, str(REPO / "SegInteractive"))
from SegInteractiveLib import SegInteractiveLogic
from SegInteractiveLib.prompt_markers import PromptMarkers
from test_seginteractive_logic import assert_same, export, on_grid


def ras_of(image: Image, kji) -> np.ndarray:
    kji = np.atleast_2d(np.asarray(kji, float))
    return (np.c_[kji[:, ::-1], np.ones(len(kji))] @ image.ijk_to_ras().T)[:, :3]


def curve(class_name: str, points_ras: np.ndarray, linear: bool = True):
    node = slicer.mrmlScene.AddNewNodeByClass(class_name)
    if linear:
        node.SetCurveTypeToLinear()
    for point in points_ras:
        node.AddControlPointWorld(vtk.vtkVector3d(*point))
    return node


@pytest.fixture
def scene(mrml_scene):
    """The oblique ball volume and a segmentation with a user segment beside the ball."""
    image, ball = ball_image()
    assert image.is_oblique
    volume = volume_node_from_image(image, "Ball")
    segmentation = new_segmentation_node(volume, "Mine")
    other = np.zeros(SHAPE, np.uint8)
    other[SLICE - 1:SLICE + 2, 5:12, 5:15] = 1  # beside the ball, partly under the band of a lasso
    (other_id,) = write_label_segments(segmentation, image.with_array(other), [SegmentSpec(1, "Other")])
    return image, ball, volume, segmentation, other_id


def test_a_closed_curve_is_the_lesion_in_its_slice_and_undo_redo_are_exact(scene, worker):
    image, _, volume, segmentation, other_id = scene
    before = export(segmentation, [other_id], volume)
    session = SegInteractiveLogic(worker).start_session(volume, segmentation)
    points = ras_of(image, np.c_[np.full(len(ARROW_JI), SLICE), ARROW_JI])
    lasso = curve("vtkMRMLMarkupsClosedCurveNode", points)
    session.add_lasso(lasso)
    lesion = on_grid(segmentation, session.segment_id, volume)
    expected = expected_slice(image, points * (-1, -1, 1))  # the reference works in LPS
    np.testing.assert_array_equal(lesion[SLICE], expected)
    assert lesion[SLICE - 1].any(), "the lesion did not grow beyond the lasso's slice"
    assert_same(before, segmentation, volume)
    assert isinstance(session.history[-1], LassoPrompt) and session.history[-1].positive

    session.add_point(ras_of(image, (SLICE + 2, 20, 30))[0])
    after_click = on_grid(segmentation, session.segment_id, volume)
    np.testing.assert_array_equal(after_click[SLICE], expected)  # a click does not undo the lasso's rule
    session.undo()
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), lesion)
    session.undo()
    assert not on_grid(segmentation, session.segment_id, volume).any()
    session.redo()
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), lesion)
    session.redo()
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), after_click)

    # a negative lasso erases what it encloses in its slice
    square = np.array([(14.5, 24.5), (24.5, 24.5), (24.5, 34.5), (14.5, 34.5)])
    erase = curve("vtkMRMLMarkupsClosedCurveNode", ras_of(image, np.c_[np.full(4, SLICE - 1), square]))
    assert after_click[SLICE - 1, 15:25, 25:35].any()
    session.add_lasso(erase, positive=False)
    assert not on_grid(segmentation, session.segment_id, volume)[SLICE - 1, 15:25, 25:35].any()
    assert_same(before, segmentation, volume)
    session.accept()


def test_an_open_a_short_or_a_slanted_curve_is_refused_saying_what_to_do(scene, worker):
    image, _, volume, segmentation, _ = scene
    session = SegInteractiveLogic(worker).start_session(volume, segmentation)
    points = ras_of(image, np.c_[np.full(len(ARROW_JI), SLICE), ARROW_JI])
    cases = [(curve("vtkMRMLMarkupsCurveNode", points), "is not closed", "closed curve"),
             (curve("vtkMRMLMarkupsClosedCurveNode", points[:2]), "fewer than 3 points", "three points or more"),
             (curve("vtkMRMLMarkupsClosedCurveNode", ras_of(image, [(4, 12, 20), (6, 28, 22), (8, 20, 40)])),
              "spans several slices", "Rotate to volume plane"),
             (slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode"), "Expected a markups closed curve",
              "Lasso tool")]
    for node, what, todo in cases:
        with pytest.raises(InputError) as raised:
            session.add_lasso(node)
        assert what in raised.value.what and todo in raised.value.todo, raised.value.message
    assert not session.history and not on_grid(segmentation, session.segment_id, volume).any()
    session.discard()


def test_a_stroke_paints_the_voxels_it_passes_over(scene, worker):
    image, ball, volume, segmentation, _ = scene
    session = SegInteractiveLogic(worker).start_session(volume, segmentation)
    ends = ras_of(image, [(SLICE, 17.0, 25.0), (SLICE, 23.0, 36.0)])
    session.add_stroke(ends)  # two far-apart positions, as a fast drag gives them
    stroke = session.history[-1]
    assert isinstance(stroke, ScribblePrompt)
    painted = to_voxels(stroke, image).kji
    assert len(painted) >= 11 and set(painted[:, 0]) == {SLICE}, painted
    steps = np.abs(np.diff(painted[np.argsort(painted[:, 2])][:, 1:], axis=0)).max(axis=1)
    assert steps.max() <= 1, "the stroke skipped voxels between its two ends"
    lesion = on_grid(segmentation, session.segment_id, volume)
    assert lesion[tuple(painted.T)].all() and (lesion & ball).sum() > 0.5 * ball.sum()
    with pytest.raises(InputError, match="no usable position"):
        session.add_stroke([])
    session.discard()


def test_lasso_markers_follow_undo_redo_and_leave_with_the_session(scene, worker):
    image, _, volume, segmentation, _ = scene
    nodes = slicer.mrmlScene.GetNumberOfNodes()
    markers = PromptMarkers.create(slicer.mrmlScene, volume)
    session = SegInteractiveLogic(worker).start_session(volume, segmentation)
    drawn = markers.lasso_node(positive=True)
    assert drawn.IsA("vtkMRMLMarkupsClosedCurveNode") and markers.lasso is drawn
    markers.lasso_node()  # drawing again drops the curve not applied
    assert slicer.mrmlScene.GetNodeByID(drawn.GetID()) is None
    node = markers.lasso_from_points(ras_of(image, np.c_[np.full(len(ARROW_JI), SLICE), ARROW_JI]))
    session.add_lasso(node)
    markers.curve_applied(node)
    assert markers.lasso is None
    session.undo()
    markers.undone()
    assert not node.GetDisplayVisibility()
    session.redo()
    markers.redone()
    assert node.GetDisplayVisibility()
    stroke = markers.stroke_node(ras_of(image, [(SLICE, 17, 25), (SLICE, 23, 36)]), positive=False)
    assert stroke.IsA("vtkMRMLMarkupsCurveNode") and not stroke.IsA("vtkMRMLMarkupsClosedCurveNode")
    markers.curve_refused(stroke)
    assert slicer.mrmlScene.GetNodeByID(stroke.GetID()) is None
    session.accept()
    markers.remove_all()
    left = [slicer.mrmlScene.GetNthNode(n).GetClassName() for n in range(nodes, slicer.mrmlScene.GetNumberOfNodes())]
    assert not [name for name in left if "Markups" in name], left


def test_a_curve_still_being_placed_counts_only_its_placed_points(scene, worker):
    """Apply lasso while the views still place: the point following the mouse is not part of the lasso."""
    image, _, volume, segmentation, _ = scene
    session = SegInteractiveLogic(worker).start_session(volume, segmentation)
    points = ras_of(image, np.c_[np.full(len(ARROW_JI), SLICE), ARROW_JI])
    lasso = curve("vtkMRMLMarkupsClosedCurveNode", points)
    mouse = ras_of(image, [(SLICE + 3, 2, 2)])[0]  # off the slice: a lasso with it would span several
    lasso.AddControlPointWorld(vtk.vtkVector3d(*mouse))
    lasso.SetNthControlPointPosition(len(points), *mouse, lasso.PositionPreview)  # no transform: world = local
    assert lasso.GetNumberOfDefinedControlPoints() == len(points)
    session.add_lasso(lasso)
    lesion = on_grid(segmentation, session.segment_id, volume)
    np.testing.assert_array_equal(lesion[SLICE], expected_slice(image, points * (-1, -1, 1)))
    session.discard()
