"""SegInteractiveLogic end to end: a real MRML scene, a real worker subprocess, the default backend.

The promise under test is that an interactive tool never wipes the user's labels
(MONAILabel #1327): every other segment is compared, after every step, with what a fresh
export by Slicer's own code gives (on the volume's grid and on the segment's own grid),
not with what our reading functions say.
"""
from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import slicer
import slicer.util
import vtk
from vtkmodules.util import numpy_support

from conftest import OBLIQUE, REPO
from segforge.errors import Cancelled, InputError
from segforge.image import Image
from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
from segforge.mrml.volumes import volume_node_from_image
from worker_helpers import slow_job, wait_until_running

sys.path.insert(0, str(REPO / "SegInteractive"))
from SegInteractiveLib import SegInteractiveLogic

SHAPE = (36, 44, 44)
CENTRE_KJI = np.array((18, 22, 22))
RADIUS = 7


@pytest.fixture
def logic(worker):
    return SegInteractiveLogic(worker)


def blob_image(spacing=(1.0, 1.0, 1.0), direction=np.eye(3), origin=(10.0, -20.0, 5.0)) -> tuple[Image, np.ndarray]:
    """A bright ball (200) in noise (0 +- 20) and the ball's mask; the ball is round in millimetres."""
    rng = np.random.default_rng(7)
    kji = np.indices(SHAPE).transpose(1, 2, 3, 0)
    mm = (kji - CENTRE_KJI) * np.asarray(spacing)[::-1]
    ball = np.sum(mm ** 2, axis=-1) < (RADIUS * min(spacing)) ** 2
    array = (rng.normal(0, 20, SHAPE) + 200 * ball).astype(np.int16)
    return Image(array, spacing, origin, direction), ball


def ras_of(image: Image, kji) -> np.ndarray:
    k, j, i = kji
    return (image.ijk_to_ras() @ np.array([i, j, k, 1.0]))[:3]


def box_mask(k: slice, j: slice, i: slice) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[k, j, i] = 1
    return mask


def on_grid(segmentation, segment_id, volume) -> np.ndarray:
    """The segment on the volume's grid, exported by Slicer's own utility."""
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, volume).astype(bool)


def own_labelmap(segmentation, segment_id) -> tuple:
    """The segment's own labelmap as Slicer exports it: its geometry and the indices of its voxels
    (its layer's padding, which separating it from a shared layer changes, left out)."""
    image = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentation, segment_id, image)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    label = segmentation.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    scalars = image.GetPointData().GetScalars()
    if scalars is None or x1 < x0:
        return tuple(matrix.GetElement(r, c) for r in range(4) for c in range(4)), np.zeros((0, 3), int)
    voxels = numpy_support.vtk_to_numpy(scalars).reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1) == label
    return tuple(matrix.GetElement(r, c) for r in range(4) for c in range(4)), np.argwhere(voxels) + (z0, y0, x0)


def export(segmentation, segment_ids, volume) -> dict:
    return {s: (on_grid(segmentation, s, volume), own_labelmap(segmentation, s)) for s in segment_ids}


def assert_same(exported: dict, segmentation, volume) -> None:
    now = export(segmentation, list(exported), volume)
    for segment_id, (grid, (matrix, voxels)) in exported.items():
        grid_now, (matrix_now, voxels_now) = now[segment_id]
        np.testing.assert_array_equal(grid_now, grid, err_msg=f"segment {segment_id} changed on the volume grid")
        assert matrix_now == matrix, f"segment {segment_id}'s labelmap moved"
        np.testing.assert_array_equal(voxels_now, voxels, err_msg=f"segment {segment_id}'s own voxels changed")


@pytest.fixture
def scene_with_segments(mrml_scene):
    """The blob volume and a segmentation holding two user segments in one shared layer:
    "Overlap" covers the ball's upper half (k >= centre), "Far" lies elsewhere."""
    image, ball = blob_image()
    volume = volume_node_from_image(image, "Blob")
    segmentation = new_segmentation_node(volume, "Mine")
    overlap = box_mask(slice(CENTRE_KJI[0], 30), slice(10, 34), slice(10, 34))
    far = box_mask(slice(2, 6), slice(2, 8), slice(30, 40))
    overlap_id, far_id = write_label_segments(segmentation, image.with_array(overlap + 2 * far),
                                              [SegmentSpec(1, "Overlap"), SegmentSpec(2, "Far")])
    vtk_segmentation = segmentation.GetSegmentation()
    assert vtk_segmentation.GetLayerIndex(overlap_id) == vtk_segmentation.GetLayerIndex(far_id)
    return image, ball, volume, segmentation, (overlap_id, far_id)


def scribble_segment(volume, points_kji, name="Scribble"):
    """A helper segmentation with the painted voxels (as the Segment Editor's Paint would leave them)."""
    helper = new_segmentation_node(volume, "Scribbles")
    painted = np.zeros(SHAPE, np.uint8)
    painted[tuple(np.asarray(points_kji).T)] = 1
    (segment_id,) = write_label_segments(helper, painted, [SegmentSpec(1, name)], reference=volume)
    return helper, segment_id


def test_every_step_leaves_the_other_segments_bit_identical(scene_with_segments, logic):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    overlap = on_grid(segmentation, other_ids[0], volume)
    before = export(segmentation, other_ids, volume)
    session = logic.start_session(volume, segmentation)
    lesion_id = session.segment_id
    assert segmentation.GetSegmentation().GetSegment(lesion_id).GetName() == "lesion"
    assert session.warning is None

    def lesion() -> np.ndarray:
        return on_grid(segmentation, lesion_id, volume)

    def check() -> None:
        assert_same(before, segmentation, volume)
        assert not (lesion() & overlap).any(), "the lesion took voxels of a protected segment"
        np.testing.assert_array_equal(lesion(), session.engine.mask.astype(bool) & ~overlap)

    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    check()
    assert (lesion() == (ball & ~overlap)).mean() > 0.99 and lesion().sum() > 0.8 * (ball & ~overlap).sum()
    session.add_point(ras_of(image, CENTRE_KJI - (5, 0, 0)), positive=False)
    check()
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    corners = [ras_of(image, CENTRE_KJI + d) for d in ((-9, -9, -9), (9, 9, 9))]
    roi.SetCenter(*((corners[0] + corners[1]) / 2))
    roi.SetSize(*np.abs(corners[1] - corners[0]))
    session.add_roi(roi)
    check()
    helper, scribble_id = scribble_segment(volume, [CENTRE_KJI + (-2, d, 0) for d in range(-3, 4)])
    session.add_scribble(helper, scribble_id)
    check()
    assert session.undo() is not None
    check()
    session.redo()
    check()
    session.reset()
    check()
    assert not lesion().any() and not session.can_undo
    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    check()
    assert session.accept() == lesion_id and logic.session is None
    check()
    assert lesion().any()


def test_without_protection_the_lesion_overlaps_and_the_other_segment_keeps_its_voxels(scene_with_segments, logic):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    before = export(segmentation, other_ids, volume)
    overlap = on_grid(segmentation, other_ids[0], volume)
    session = logic.start_session(volume, segmentation, protect_other_segments=False)
    session.add_point(ras_of(image, CENTRE_KJI))
    lesion = on_grid(segmentation, session.segment_id, volume)
    assert (lesion & overlap).sum() > 100  # the two segments overlap (Slicer keeps them in separate layers)
    assert (lesion == ball).mean() > 0.99
    assert_same(before, segmentation, volume)
    session.accept()
    assert_same(before, segmentation, volume)


def test_only_the_region_that_changed_is_written(scene_with_segments, logic):
    """A voxel the user paints into the lesion far from the next change survives it: the
    session never rewrites its whole mask (which does not hold that voxel) into the segment."""
    image, ball, volume, segmentation, other_ids = scene_with_segments
    session = logic.start_session(volume, segmentation, protect_other_segments=False)
    session.add_point(ras_of(image, CENTRE_KJI))
    user_voxel = (30, 38, 3)
    single = box_mask(*(slice(v, v + 1) for v in user_voxel))
    painted = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(volume)
    painted.GetPointData().SetScalars(numpy_support.numpy_to_vtk(single.ravel(), deep=True))
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        painted, segmentation, session.segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MAX)
    lesion_before = on_grid(segmentation, session.segment_id, volume)
    assert lesion_before[user_voxel]

    change = session.add_point(ras_of(image, CENTRE_KJI + (0, 5, 0)), positive=False)
    assert not change.empty
    lesion_after = on_grid(segmentation, session.segment_id, volume)
    outside = np.ones(SHAPE, bool)
    outside[change.slices] = False
    np.testing.assert_array_equal(lesion_after[outside], lesion_before[outside])
    assert lesion_after[user_voxel]
    inside = lesion_after[change.slices]
    np.testing.assert_array_equal(inside, change.after.astype(bool))
    session.undo()
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), lesion_before)


def test_refinement_starts_from_the_segment_and_undo_redo_discard_round_trip(mrml_scene, logic):
    image, ball = blob_image()
    volume = volume_node_from_image(image, "Blob")
    # The user's segment was drawn on a coarser grid: discard must give back that labelmap, not a resampled one.
    coarse = Image(np.zeros((18, 22, 22), np.uint8), (2.0, 2.0, 2.0), image.origin_lps, image.direction_lps)
    segmentation = new_segmentation_node(coarse, "Drawn")
    partial = np.zeros(coarse.array.shape, np.uint8)
    partial[8:10, 10:12, 10:12] = 1  # a rough start inside the ball
    near = np.zeros(coarse.array.shape, np.uint8)
    near[2:5, 2:5, 2:5] = 1
    lesion_id, near_id = write_label_segments(segmentation, coarse.with_array(partial + 2 * near),
                                              [SegmentSpec(1, "Tumour"), SegmentSpec(2, "Near")])
    original = export(segmentation, [lesion_id, near_id], volume)

    session = logic.start_session(volume, segmentation, lesion_id)
    np.testing.assert_array_equal(session.engine.mask.astype(bool), original[lesion_id][0])
    steps = [export(segmentation, [lesion_id], volume)[lesion_id][0]]
    for position, positive in ((CENTRE_KJI, True), (CENTRE_KJI + (4, 0, 0), False), (CENTRE_KJI + (-3, 2, 0), True)):
        session.add_point(ras_of(image, position), positive)
        steps.append(on_grid(segmentation, lesion_id, volume))
        np.testing.assert_array_equal(steps[-1], session.engine.mask.astype(bool))
    assert not np.array_equal(steps[1], steps[0]) and (steps[1] & ball).sum() > 0.8 * ball.sum()
    for expected in reversed(steps[:-1]):
        session.undo()
        np.testing.assert_array_equal(on_grid(segmentation, lesion_id, volume), expected)
    assert session.undo() is None
    for expected in steps[1:]:
        session.redo()
        np.testing.assert_array_equal(on_grid(segmentation, lesion_id, volume), expected)
    session.discard()
    assert_same(original, segmentation, volume)
    assert logic.session is None


def test_discarding_a_new_segment_removes_it(scene_with_segments, logic):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    segmentation.GetSegmentation().AddEmptySegment("", "lesion")
    before = export(segmentation, other_ids, volume)
    session = logic.start_session(volume, segmentation)
    assert segmentation.GetSegmentation().GetSegment(session.segment_id).GetName() == "lesion 2"
    # the new segment is a lesion to Slicer too (Morphologically Altered Structure / Lesion)
    assert "SCT^52988006^Lesion" in segmentation.GetSegmentation().GetSegment(session.segment_id).GetTerminology()
    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    session.discard()
    assert segmentation.GetSegmentation().GetSegment(session.segment_id) is None
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 3
    assert_same(before, segmentation, volume)
    with pytest.raises(InputError, match="has ended"):
        session.add_point(ras_of(image, CENTRE_KJI))


def test_an_oblique_anisotropic_volume_gets_the_lesion_on_the_ball(mrml_scene, logic):
    """The segmentation's own geometry is another (axis-aligned) volume's; the click at the
    ball's RAS centre must fill the ball's voxels of the oblique volume."""
    spacing = (0.8, 1.1, 2.0)
    image, ball = blob_image(spacing, OBLIQUE, (-30.0, 12.5, 40.0))
    volume = volume_node_from_image(image, "Oblique blob")
    other = volume_node_from_image(Image(np.zeros((20, 20, 20), np.int16), (3.0, 3.0, 3.0), (-60.0, -20.0, 0.0)),
                                   "Other")
    segmentation = new_segmentation_node(other, "On another grid")
    session = logic.start_session(volume, segmentation)
    session.start_point(ras_of(image, CENTRE_KJI)).wait()
    lesion = on_grid(segmentation, session.segment_id, volume)
    dice = 2 * (lesion & ball).sum() / (lesion.sum() + ball.sum())
    assert dice > 0.95, dice
    session.accept()


def test_an_roi_turned_with_an_oblique_anisotropic_volume_is_exactly_its_voxels(mrml_scene, logic):
    """An ROI aligned with a tilted or oblique volume around a 20 x 20 x 8 voxel block became its
    world bounding box, then the voxel box around that: 1.8 to 19.5 times the voxels. Its turn
    now goes to the engine with it."""
    from SegInteractiveLib.prompt_nodes import roi_prompt
    from segforge.interactive.prompts import VoxelBox, box_to_voxels

    image, ball = blob_image(spacing=(0.7, 1.3, 2.9), direction=OBLIQUE)
    volume = volume_node_from_image(image, "Blob")
    lo, hi = CENTRE_KJI - (4, 10, 10), CENTRE_KJI + (3, 9, 9)  # k, j, i inclusive: 8 x 20 x 20 voxels
    ijk_to_ras = image.ijk_to_ras()
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    turn = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            turn.SetElement(row, column, ijk_to_ras[row, column] / image.spacing[column])
    roi.SetAndObserveObjectToNodeMatrix(turn)
    roi.SetCenterWorld(*(ijk_to_ras @ [*((lo + hi)[::-1] / 2), 1.0])[:3])
    roi.SetSizeWorld(*((hi - lo + 1)[::-1] * np.asarray(image.spacing)))
    assert box_to_voxels(roi_prompt(roi), image) == VoxelBox(tuple(lo), tuple(hi + 1), True)
    session = logic.start_session(volume)
    session.add_roi(roi)
    outside = np.ones(SHAPE, bool)
    outside[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = False
    segment = on_grid(session.segmentation_node, session.segment_id, volume)
    assert segment.any() and not segment[outside].any()
    session.discard()


def test_a_point_on_another_volume_is_refused_and_nothing_changes(scene_with_segments, logic):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    elsewhere = Image(np.zeros((10, 10, 10), np.int16), (1.0, 1.0, 1.0), (300.0, 300.0, 300.0))
    other_volume = volume_node_from_image(elsewhere, "Elsewhere")
    session = logic.start_session(volume, segmentation)
    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    lesion = on_grid(segmentation, session.segment_id, volume)
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    index = points.AddControlPointWorld(vtk.vtkVector3d(*ras_of(elsewhere, (5, 5, 5))))
    points.SetNthControlPointAssociatedNodeID(index, other_volume.GetID())
    with pytest.raises(InputError, match="placed on 'Elsewhere'") as error:
        session.add_point_from_markups(points, index)
    assert "Blob" in error.value.message and error.value.todo
    with pytest.raises(InputError, match="outside the image"):
        session.start_point(ras_of(elsewhere, (5, 5, 5)))
    with pytest.raises(InputError, match="outside the image"):
        session.add_box(ras_of(elsewhere, (0, 0, 0)), ras_of(elsewhere, (9, 9, 9)))
    assert len(session.history) == 1 and not session.busy
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), lesion)
    points.AddControlPointWorld(vtk.vtkVector3d(*ras_of(image, CENTRE_KJI - (4, 0, 0))))
    session.add_point_from_markups(points)  # the last point: on the session's volume
    assert len(session.history) == 2
    session.accept()


def test_one_session_at_a_time_and_one_interaction_at_a_time(scene_with_segments, logic):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    session = logic.start_session(volume, segmentation)
    with pytest.raises(InputError, match="already open") as error:
        logic.start_session(volume, segmentation, other_ids[1])
    assert "accept or discard" in error.value.todo
    job = session.start_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    assert session.busy
    with pytest.raises(InputError, match="still running"):
        session.undo()
    change = job.wait()
    assert not change.empty and not session.busy
    session.accept()
    far_session = logic.start_session(volume, segmentation, other_ids[1])
    assert far_session.segment_id == other_ids[1]
    far_session.discard()


def test_a_session_opens_in_steps_with_the_volume_sent_from_another_thread(scene_with_segments, logic):
    """prepare_session, open_engine on a thread (as the web app does, so its page never waits on
    the worker), finish: the same session as start_session. abort undoes what prepare made."""
    import threading

    image, ball, volume, segmentation, other_ids = scene_with_segments
    scene = volume.GetScene()
    before = export(segmentation, other_ids, volume)
    opening = logic.prepare_session(volume, segmentation)
    with pytest.raises(InputError, match="being opened"):
        logic.start_session(volume, segmentation)
    engines = []
    thread = threading.Thread(target=lambda: engines.append(opening.open_engine()))
    thread.start()
    thread.join(120)
    session = opening.finish(engines[0])
    assert logic.session is session
    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    lesion = on_grid(segmentation, session.segment_id, volume)
    assert lesion.sum() > 100 and lesion[ball].sum() > 0.9 * lesion.sum(), "the click did not segment the ball"
    session.discard()
    assert_same(before, segmentation, volume)

    nodes = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    opening = logic.prepare_session(volume)  # a new segmentation for the session
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == nodes + 1
    opening.abort()
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == nodes
    logic.start_session(volume, segmentation).discard()  # no longer refused
    assert_same(before, segmentation, volume)


def test_a_cancelled_interaction_leaves_the_segment_as_it_was(scene_with_segments, logic, worker):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    session = logic.start_session(volume, segmentation)
    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    lesion = on_grid(segmentation, session.segment_id, volume)
    slow_image, slow_params = slow_job()
    busy = worker.submit("vessel.mask", {"image": slow_image}, slow_params)  # the worker runs one job at a time
    try:
        wait_until_running(busy)
        job = session.start_point(ras_of(image, CENTRE_KJI + (3, 0, 0)))
        assert session.busy
        job.cancel()
        assert job.poll().state == "cancelled"
    finally:
        busy.cancel()
    with pytest.raises(Cancelled):
        job.finish()
    assert not session.busy and len(session.history) == 1
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), lesion)
    session.add_point(ras_of(image, CENTRE_KJI + (3, 0, 0)), positive=False)  # the session goes on
    assert len(session.history) == 2
    session.discard()


def test_a_worker_that_died_is_rebuilt_and_the_segment_stays_in_step(scene_with_segments, logic, worker):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    before = export(segmentation, other_ids, volume)
    session = logic.start_session(volume, segmentation)
    session.add_point(ras_of(image, CENTRE_KJI - (3, 0, 0)))
    os.kill(worker.pid, signal.SIGKILL)
    session.add_point(ras_of(image, CENTRE_KJI - (5, 0, 0)), positive=False)
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume),
                                  session.engine.mask.astype(bool) & ~before[other_ids[0]][0])
    session.undo()
    session.discard()
    assert_same(before, segmentation, volume)


def test_a_segmentation_of_closed_surfaces_is_refused_as_the_session_opens(mrml_scene, logic):
    """It opened, the first click ran in the worker and was counted in the session, and only
    then was the write refused: the session held a click the segment did not."""
    image, _ = blob_image()
    volume = volume_node_from_image(image, "Blob")
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.GetSegmentation().SetSourceRepresentationName("Closed surface")
    sphere = vtk.vtkSphereSource()
    sphere.SetCenter(*ras_of(image, CENTRE_KJI + (0, 0, 12)))
    sphere.SetRadius(4)
    sphere.Update()
    segmentation.AddSegmentFromClosedSurfaceRepresentation(sphere.GetOutput(), "model", [0.2, 0.5, 0.8])
    nodes = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(InputError, match="keeps its segments as closed surfaces") as raised:
        logic.prepare_session(volume, segmentation)
    assert "source representation" in raised.value.todo
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1  # no segment was added
    assert segmentation.GetSegmentation().GetSourceRepresentationName() == "Closed surface"
    assert slicer.mrmlScene.GetNumberOfNodes() == nodes and logic.session is None
    segmentation.CreateBinaryLabelmapRepresentation()  # what the message says to do
    segmentation.GetSegmentation().SetSourceRepresentationName("Binary labelmap")
    session = logic.start_session(volume, segmentation)
    session.add_point(ras_of(image, CENTRE_KJI))
    np.testing.assert_array_equal(on_grid(segmentation, session.segment_id, volume), session.engine.mask != 0)
    session.discard()


def test_a_step_the_scene_refuses_is_taken_back_out_of_the_session(scene_with_segments, logic, monkeypatch):
    """The scene refuses a write half way (Slicer took the added voxels, then refused the
    labelmap), blocking and through the widget's job: the prompt leaves the session too (its
    redo list comes back) and the half written is put back, so segment and session stay in
    step. Before, the session kept the click, and the next one wrote only its own difference."""
    from SegInteractiveLib import target_segment
    from segforge.errors import SegForgeError

    image, ball, volume, segmentation, _ = scene_with_segments
    session = logic.start_session(volume, segmentation, protect_other_segments=False)
    real = target_segment.change_segment_voxels
    refusing, half_written = [], []

    def half_then_refuse(node, segment_id, offset, add, remove, ijk_to_ras):
        if not refusing:
            return real(node, segment_id, offset, add, remove, ijk_to_ras)
        refusing.pop()
        half_written.append(int(np.count_nonzero(add)))
        real(node, segment_id, offset, add, np.zeros_like(remove), ijk_to_ras)
        raise SegForgeError(f"Could not edit segment '{segment_id}'", "Slicer refused the labelmap", "check the log")

    monkeypatch.setattr(target_segment, "change_segment_voxels", half_then_refuse)

    def in_step() -> np.ndarray:
        segment = on_grid(segmentation, session.segment_id, volume)
        np.testing.assert_array_equal(segment, session.engine.mask != 0)
        return segment

    session.add_point(ras_of(image, CENTRE_KJI))
    session.add_point(ras_of(image, CENTRE_KJI + (4, 0, 0)), positive=False)
    session.undo()
    first = in_step()
    assert first.any() and session.can_redo and len(session.history) == 1
    elsewhere = ras_of(image, CENTRE_KJI + (0, 0, 18))  # a new piece: the refused write adds voxels
    for attempt in (lambda: session.add_point(elsewhere), lambda: session.start_point(elsewhere).wait(),
                    session.redo):
        refusing.append(True)
        with pytest.raises(SegForgeError, match="refused the labelmap"):
            attempt()
        assert len(session.history) == 1 and session.can_redo and not session.busy  # as before
        np.testing.assert_array_equal(in_step(), first)
    session.redo()  # the negative click undone before the refusals, not one of them
    smaller = in_step()
    assert smaller.sum() < first.sum()
    refusing.append(True)
    with pytest.raises(SegForgeError, match="refused the labelmap"):
        session.undo()
    np.testing.assert_array_equal(in_step(), smaller)
    assert len(session.history) == 2 and not session.can_redo
    assert half_written[0] and half_written[1] and len(half_written) == 4  # the refused clicks half wrote voxels
    session.add_point(elsewhere)
    assert in_step().sum() > smaller.sum() and len(session.history) == 3
    shown = in_step()
    refusing.append(True)
    with pytest.raises(SegForgeError, match="refused the labelmap"):
        session.reset()  # the engine used to forget every prompt before the write was refused
    np.testing.assert_array_equal(in_step(), shown)
    assert len(session.history) == 3 and session.can_undo
    session.reset()
    assert not in_step().any() and not session.history
    session.accept()


def test_bad_requests_are_refused_before_any_work(scene_with_segments, logic):
    image, ball, volume, segmentation, other_ids = scene_with_segments
    nodes = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(InputError, match="Unknown interactive backend"):
        logic.start_session(volume, segmentation, backend="nope")
    with pytest.raises(InputError, match="no segment"):
        logic.start_session(volume, segmentation, "Segment_404")
    with pytest.raises(InputError, match="No input volume"):
        logic.start_session(None, segmentation)
    assert slicer.mrmlScene.GetNumberOfNodes() == nodes and segmentation.GetSegmentation().GetNumberOfSegments() == 2
    assert logic.session is None and logic.backends()[0] == "random-walker"
    session = logic.start_session(volume)  # no segmentation: a new one on the volume
    assert session.segmentation_node is not segmentation
    with pytest.raises(InputError, match="first prompt is a negative"):
        session.add_point(ras_of(image, CENTRE_KJI), positive=False)
    assert not on_grid(session.segmentation_node, session.segment_id, volume).any()
    session.discard()


def test_a_bad_position_is_shown_as_given_not_as_numpy_spells_it(scene_with_segments, logic):
    """add_point([nan, 0, 0]) said "A position is [np.float64(nan), np.float64(0.0), ...]"; a
    position that is no number at all was a raw TypeError or ValueError."""
    image, ball, volume, segmentation, _ = scene_with_segments
    session = logic.start_session(volume, segmentation)
    for position, shown in [([np.nan, 0, 0], "[nan, 0, 0]"), ([1, 2], "[1, 2]"),
                            (np.array([1.5, np.inf, 2.0]), "[1.5, inf, 2]"), (None, "None"), ("abc", "'abc'")]:
        with pytest.raises(InputError) as raised:
            session.add_point(position)
        assert raised.value.what == f"A position is {shown}" and "np." not in raised.value.message
    assert not session.history
    session.discard()


def test_prompt_markers_follow_undo_redo_and_leave_with_the_session(scene_with_segments, logic):
    """The widget's helper nodes: clicks shown and hidden with undo / redo, a scribble painted
    in a segmentation of its own and cleared after use, all removed at the end."""
    from SegInteractiveLib.prompt_markers import PromptMarkers

    image, ball, volume, segmentation, other_ids = scene_with_segments
    nodes = slicer.mrmlScene.GetNumberOfNodes()
    markers = PromptMarkers.create(slicer.mrmlScene, volume)
    session = logic.start_session(volume, segmentation)
    markers.positive.AddControlPointWorld(vtk.vtkVector3d(*ras_of(image, CENTRE_KJI - (3, 0, 0))))
    session.add_point_from_markups(markers.positive, positive=markers.is_positive(markers.positive))
    markers.applied(markers.positive)
    markers.negative.AddControlPointWorld(vtk.vtkVector3d(*ras_of(image, (1, 1, 1))))
    session.add_point_from_markups(markers.negative, positive=markers.is_positive(markers.negative))
    markers.applied(markers.negative)
    session.undo()
    markers.undone()
    assert not markers.negative.GetNthControlPointVisibility(0) and markers.positive.GetNthControlPointVisibility(0)
    session.redo()
    markers.redone()
    assert markers.negative.GetNthControlPointVisibility(0)
    session.undo()
    markers.undone()

    helper, scribble_id = markers.scribble_segment()
    assert helper is not segmentation and markers.scribble_segment() == (helper, scribble_id)
    painted = np.zeros(SHAPE, np.uint8)
    painted[CENTRE_KJI[0] - 2, 20:25, 22] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(painted, helper, scribble_id, volume)
    session.add_scribble(helper, scribble_id)
    markers.applied()
    assert markers.negative.GetNumberOfControlPoints() == 0  # the undone click went with the new prompt
    markers.clear_scribble()
    assert not on_grid(helper, scribble_id, volume).any()
    with pytest.raises(InputError, match="scribble is empty"):
        session.add_scribble(helper, scribble_id)
    session.accept()
    markers.remove_all()
    left = [slicer.mrmlScene.GetNthNode(n).GetClassName() for n in range(nodes, slicer.mrmlScene.GetNumberOfNodes())]
    assert not [name for name in left if "Markups" in name or "Segmentation" in name], left
