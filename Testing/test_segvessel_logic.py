"""SegVesselLogic end to end: a real MRML scene, a real worker subprocess, the real CTA."""
from __future__ import annotations

import re
import sys
import time

import numpy as np
import pytest

from conftest import OBLIQUE, REPO
from segforge.errors import Cancelled, InputError, WorkerDied
from segforge.image import Image
from segforge.image_io import read_image
from segforge.mrml.segments import (SegmentSpec, mask_from_segment, new_segmentation_node, segment_ids_by_name,
                                    write_label_segments)
from segforge.mrml.volumes import image_from_volume_node, volume_node_from_image
from segforge.vessel import VesselMaskParameters, vessel_mask
from segforge.worker import WorkerClient
from worker_helpers import slow_job, wait_until_running

sys.path.insert(0, str(REPO / "SegVessel"))
from SegVesselLib import SegVesselLogic

SAMPLE = REPO / "Resources" / "SampleData" / "ts_thoracic_cta_aorta"
BRANCHES = ("brachiocephalic_trunk", "common_carotid_artery_left", "subclavian_artery_left")


@pytest.fixture
def logic(worker):
    return SegVesselLogic(worker)


def small_tube_image() -> Image:
    k, j, i = np.indices((24, 28, 32))
    array = np.where(np.hypot(k - 12, j - 14) <= 3, 400, 0).astype(np.int16)
    return Image(array, (0.8, 0.9, 1.7), (-12.5, 30.0, 101.0), OBLIQUE)


def all_segment_masks(segmentation, reference) -> dict:
    return {segment_id: mask_from_segment(segmentation, segment_id, reference).array
            for segment_id in segmentation.GetSegmentation().GetSegmentIDs()}


def test_cta_vessels_land_on_the_vessels(mrml_scene, logic):
    cta = read_image(SAMPLE / "cta_thorax_1p5mm.nii.gz")
    volume = volume_node_from_image(cta, "CTA")
    parameters = VesselMaskParameters.for_cta()
    fractions = []
    segmentation = logic.segment_vessels(volume, parameters=parameters,
                                         progress=lambda f, m: fractions.append(f))
    assert fractions and fractions == sorted(fractions)
    segment_id = segment_ids_by_name(segmentation)["Vessels"][0]
    mask = mask_from_segment(segmentation, segment_id, volume).array > 0
    # Exactly the engine's answer, voxel for voxel, on the CTA's grid...
    np.testing.assert_array_equal(mask, vessel_mask(cta, parameters).array > 0)
    # ...which lies on the vessels: the aorta and its branches are found, and a mask shifted
    # by 3 voxels along any axis would cover clearly less of the small branches.
    aorta = read_image(SAMPLE / "pred_aorta.nii.gz").array > 0
    branches = np.any([read_image(SAMPLE / f"pred_{n}.nii.gz").array > 0 for n in BRANCHES], axis=0)
    recall = (mask & branches).sum() / branches.sum()
    assert (mask & aorta).sum() / aorta.sum() > 0.4
    assert recall > 0.4
    for axis in range(3):
        for shift in (-3, 3):
            shifted = np.roll(mask, shift, axis=axis)
            assert (shifted & branches).sum() / branches.sum() < 0.9 * recall
    assert np.percentile(cta.array[mask], 5) >= 150  # contrast-filled lumen, not bone or fat


def test_oblique_volume_mask_is_exact_on_its_grid(mrml_scene, logic):
    image = small_tube_image()
    volume = volume_node_from_image(image, "Oblique tube")
    parameters = VesselMaskParameters(1.5, 3.0, 2, threshold=0.2)
    segmentation = logic.segment_vessels(volume, parameters=parameters)
    segment_id = segment_ids_by_name(segmentation)["Vessels"][0]
    on_grid = mask_from_segment(segmentation, segment_id, image_from_volume_node(volume))
    assert on_grid.same_grid(image)
    np.testing.assert_array_equal(on_grid.array > 0, vessel_mask(image, parameters).array > 0)
    assert on_grid.array.any()


def test_user_segments_are_never_overwritten_without_asking(mrml_scene, logic):
    image = small_tube_image()
    volume = volume_node_from_image(image, "Tube")
    segmentation = new_segmentation_node(volume, "Mine")
    user = np.zeros(image.array.shape, np.uint8)
    user[2:10, 3:20, 4:30] = 1
    write_label_segments(segmentation, image.with_array(user), [SegmentSpec(1, "Liver")])
    write_label_segments(segmentation, image.with_array(user), [SegmentSpec(1, "Vessels")])
    before = all_segment_masks(segmentation, volume)
    with pytest.raises(InputError, match="already exists"):
        logic.start_vessel_mask(volume, segmentation, VesselMaskParameters(1.5, 3.0, 2, threshold=0.2))
    after = all_segment_masks(segmentation, volume)
    assert after.keys() == before.keys()
    for segment_id, mask in before.items():
        np.testing.assert_array_equal(after[segment_id], mask)
    logic.segment_vessels(volume, segmentation, VesselMaskParameters(1.5, 3.0, 2, threshold=0.2),
                          on_existing="rename")
    names = segment_ids_by_name(segmentation)
    assert set(names) == {"Liver", "Vessels", "Vessels 2"}
    liver = mask_from_segment(segmentation, names["Liver"][0], volume).array
    np.testing.assert_array_equal(liver > 0, user > 0)
    logic.segment_vessels(volume, segmentation, VesselMaskParameters(1.5, 3.0, 2, threshold=0.2),
                          on_existing="replace")
    replaced = mask_from_segment(segmentation, names["Vessels"][0], volume).array
    assert not np.array_equal(replaced > 0, user > 0)
    np.testing.assert_array_equal(mask_from_segment(segmentation, names["Liver"][0], volume).array > 0, user > 0)


def test_cancel_leaves_the_scene_untouched(mrml_scene, logic):
    big, params = slow_job()
    volume = volume_node_from_image(big, "Noise")
    segmentation = new_segmentation_node(volume, "Target")
    job = logic.start_vessel_mask(volume, segmentation, VesselMaskParameters(**params))
    wait_until_running(job)
    job.cancel()
    deadline = time.monotonic() + 10.0
    while not (status := job.poll()).finished:
        assert time.monotonic() < deadline, "cancel never took effect"
        time.sleep(0.02)
    assert status.state == "cancelled" and status.cancel_latency_s < 1.0
    with pytest.raises(Cancelled):
        job.finish()
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 0


def test_dead_worker_is_a_failed_job_with_a_reason(mrml_scene):
    import os
    import signal

    with WorkerClient() as client:
        logic = SegVesselLogic(client)
        big, params = slow_job()
        volume = volume_node_from_image(big, "Noise")
        job = logic.start_vessel_mask(volume, parameters=VesselMaskParameters(**params))
        wait_until_running(job)
        os.kill(client.pid, signal.SIGKILL)
        while not (status := job.poll()).finished:
            time.sleep(0.05)
        assert status.state == "failed" and "stopped" in status.message
        with pytest.raises(WorkerDied):
            job.finish()
        # The next job simply works, on a fresh worker.
        segmentation = logic.segment_vessels(volume_node_from_image(small_tube_image(), "Tube"),
                                             parameters=VesselMaskParameters(1.5, 3.0, 2, threshold=0.2))
        assert segment_ids_by_name(segmentation)["Vessels"]


def test_no_volume_is_a_clear_error(mrml_scene, logic):
    with pytest.raises(InputError, match="No input volume"):
        logic.start_vessel_mask(None)


def synthetic_y_volume():
    """A bright Y (3 branches) in noise on an oblique anisotropic grid, and its truth."""
    from segforge.vessel.synthetic import make_grid, y_bifurcation

    tree = y_bifurcation(make_grid((40, 40, 60), (0.8, 0.8, 1.2), OBLIQUE, center_lps=(5, -3, 20)),
                         center_lps=(5, -3, 20))
    noise = np.random.default_rng(0).normal(0, 20, tree.mask.array.shape)
    return tree.mask.with_array((tree.mask.array.astype(np.float32) * 500 + 100 + noise).astype(np.int16)), tree


def test_vessel_tree_lands_in_the_scene_as_slicer_users_expect(mrml_scene, logic):
    import slicer.util

    from segforge.mrml import point_measurement, rows_from_table
    from segforge.vessel.pipeline import VesselPipelineParameters, preset, run_vessel_pipeline

    image, truth = synthetic_y_volume()
    volume = volume_node_from_image(image, "MRA")
    parameters = VesselPipelineParameters(mask=preset("mra"))
    nodes = logic.vessel_tree(volume, parameters)
    expected = run_vessel_pipeline(image, parameters)

    segment_id = segment_ids_by_name(nodes.segmentation)["Vessels"][0]
    np.testing.assert_array_equal(mask_from_segment(nodes.segmentation, segment_id, volume).array > 0,
                                  expected.mask.array > 0)
    assert len(nodes.curves) == len(expected.graph.branches) == len(truth.branches) == 3
    for curve, branch in zip(nodes.curves, expected.graph.branches):
        np.testing.assert_allclose(point_measurement(curve, "Radius"), branch.radii_mm, atol=1e-9)
        np.testing.assert_allclose(slicer.util.arrayFromMarkupsControlPoints(curve, world=True)[:, :2],
                                   -branch.points_lps[:, :2], atol=1e-6)  # RAS in the scene
    radius = nodes.centerline_model.GetPolyData().GetPointData().GetArray("Radius")
    assert radius is not None and radius.GetRange()[1] <= expected.graph.radii_mm().max() + 1e-6
    assert nodes.surface_model.GetPolyData().GetNumberOfCells() > 100
    rows = rows_from_table(nodes.branch_table)
    assert [row["id"] for row in rows] == [b.id for b in expected.graph.branches]
    assert rows_from_table(nodes.stenosis_table) == [] and nodes.stenosis_points is None  # a healthy Y


def test_vessel_tree_cancel_leaves_no_node_behind(mrml_scene, logic):
    from segforge.vessel.pipeline import VesselPipelineParameters

    big, params = slow_job()
    volume = volume_node_from_image(big, "Noise")
    before = mrml_scene.GetNumberOfNodes()
    job = logic.start_vessel_tree(volume, VesselPipelineParameters(mask=VesselMaskParameters(**params)))
    wait_until_running(job)
    job.cancel()
    deadline = time.monotonic() + 10.0
    while not (status := job.poll()).finished:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert status.state == "cancelled"
    with pytest.raises(Cancelled):
        job.finish()
    assert mrml_scene.GetNumberOfNodes() == before


# -- a segment the user already has ------------------------------------------------------------------


def test_a_segment_is_taken_on_its_own_oblique_grid_or_the_volume_grid(mrml_scene, logic):
    """The segment's voxels keep their world positions: on its own labelmap grid (no volume), or
    resampled onto the volume's grid (a volume is an input too)."""
    from segforge.mrml.segments import mask_on_segment_grid

    image, truth = synthetic_y_volume()
    segmentation = new_segmentation_node(image, "Y")
    (segment_id,) = write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    own = mask_on_segment_grid(segmentation, segment_id)
    assert own.array.sum() == np.count_nonzero(truth.mask.array)
    # Each voxel centre of the cut-out grid is a voxel centre of the truth's grid, inside the same way.
    kji = np.argwhere(own.array > 0)
    world = own.ijk_to_ras() @ np.c_[kji[:, ::-1], np.ones(len(kji))].T
    back = np.linalg.inv(truth.mask.ijk_to_ras()) @ world
    ijk = np.round(back[:3]).astype(int)
    np.testing.assert_allclose(back[:3], ijk, atol=1e-6)
    assert truth.mask.array[ijk[2], ijk[1], ijk[0]].all()
    assert not own.array[0].any() and not own.array[-1].any()  # a margin of background
    volume = volume_node_from_image(image, "MRA")
    on_volume = logic.segment_mask(segmentation, segment_id, volume)
    assert on_volume.same_grid(image)
    np.testing.assert_array_equal(on_volume.array > 0, truth.mask.array > 0)
    with pytest.raises(InputError, match="No segmentation is selected"):
        logic.segment_mask(None, segment_id)


def test_vessel_tree_from_a_segment_between_endpoints(mrml_scene, logic):
    """The CE-MRA level-set mask as a segment of a segmentation node, no volume: the form's job
    with a source, two targets (VMTK's end points) and a landmark gives curves with Radius, the
    cross-section table, the diameter chart and the landmark table, named after the segment."""
    from segforge.mrml import point_measurement, rows_from_table
    from segforge.mrml.plots import chart_series
    from SegVesselLib.form import VesselForm
    from test_cli_vessel_segment import LEVEL_SET, reference_centerline

    mask = read_image(LEVEL_SET)
    segmentation = new_segmentation_node(mask, "CE-MRA")
    (segment_id,) = write_label_segments(segmentation, mask, [SegmentSpec(1, "Aorta")])
    cells, _ = reference_centerline()
    landmark = cells[0][len(cells[0]) // 4]
    form = VesselForm(input_kind="segment", segment=segment_id, source_lps=tuple(cells[0][0]),
                      targets_lps=tuple(tuple(cell[-1]) for cell in cells), landmarks_lps=(tuple(landmark),),
                      create_surface=False)
    nodes = logic.start(None, form, input_segmentation=segmentation).wait()

    assert nodes.segmentation.GetName() == "Aorta vessels"
    assert len(nodes.curves) == 3
    for curve in nodes.curves:
        assert np.all(point_measurement(curve, "Radius") > 0)
    sections = rows_from_table(nodes.section_table)
    assert {row["branch"] for row in sections} == {row["id"] for row in rows_from_table(nodes.branch_table)}
    (row,) = rows_from_table(nodes.landmark_table)
    np.testing.assert_allclose([row["x_lps"], row["y_lps"], row["z_lps"]], landmark, atol=1e-6)
    assert nodes.landmark_points.GetNumberOfControlPoints() == 1
    series = chart_series(nodes.diameter_chart)
    assert series and all(s.GetTableNode() is not None for s in series)
    assert nodes.tree is not None and nodes.tree.profiles
    # VMTK's layout for SlicerVMTK: one line per source-to-target path, with Radius, in RAS.
    vmtk = nodes.vmtk_centerline_model.GetPolyData()
    assert vmtk.GetNumberOfLines() == 2 and vmtk.GetPointData().GetArray("Radius") is not None
    ends = [vmtk.GetPoint(vmtk.GetCell(n).GetPointId(vmtk.GetCell(n).GetNumberOfPoints() - 1)) for n in range(2)]
    for end in ends:
        lps = np.array(end) * [-1.0, -1.0, 1.0]
        assert min(np.linalg.norm(lps - cell[-1]) for cell in cells) < 5.0, "a path does not end at a target"
    # The same mask went in as the level-set file holds (the segment's own grid is the file's).
    vessel_id = segment_ids_by_name(nodes.segmentation)["Vessels"][0]
    assert mask_from_segment(nodes.segmentation, vessel_id, mask).array.sum() >= mask.array.astype(bool).sum()


def test_console_segment_with_its_volume(mrml_scene, logic):
    """``vessel_tree_from_segment`` with the MRA volume too (the segment on the volume's grid, the
    grey image sharpening the edge): the straightened view is of the MRA's intensities."""
    from segforge.mrml import rows_from_table
    from segforge.vessel.endpoints import EndpointParameters
    from segforge.vessel.pipeline import VesselPipelineParameters
    from test_cli_vessel_segment import CEMRA, LEVEL_SET, reference_centerline

    mask = read_image(LEVEL_SET)
    mra = read_image(CEMRA / "aorta.mha")
    volume = volume_node_from_image(mra, "MRA")
    segmentation = new_segmentation_node(volume, "CE-MRA")
    (segment_id,) = write_label_segments(segmentation, mask.with_array(mask.array), [SegmentSpec(1, "Aorta")],
                                         reference=volume)
    cells, _ = reference_centerline()
    parameters = VesselPipelineParameters(endpoints=EndpointParameters(
        source_lps=tuple(cells[0][0]), targets_lps=tuple(tuple(cell[-1]) for cell in cells)))
    nodes = logic.vessel_tree_from_segment(segmentation, segment_id, parameters, volume_node=volume)
    assert nodes.segmentation.GetName() == "MRA vessels" and len(nodes.curves) == 3
    straightened = image_from_volume_node(nodes.straightened_volume)
    assert straightened.array.max() > 100, "the straightened view should show the MRA's intensities"
    assert rows_from_table(nodes.section_table)


def test_a_point_just_past_a_segments_cut_end_is_taken_and_a_surface_output_refused_up_front(mrml_scene, logic):
    """A segment alone is analysed on its own grid cut to it: the cut kept two voxels of margin,
    so a target 2.5 mm past the tube's cut end (within the 3 mm a point snaps) was "outside the
    image" on 0.5 mm voxels. And an output segmentation of closed surfaces was refused only once
    the whole job had run."""
    import vtk

    from SegVesselLib.form import VesselForm

    k, j, i = np.indices((60, 30, 30))
    tube = ((np.hypot((i - 15) * 0.5, (j - 15) * 0.5) <= 3.0) & (k >= 3) & (k < 50)).astype(np.uint8)
    image = Image(tube, (0.5, 0.5, 0.5), (-12.5, 30.0, 101.0), OBLIQUE)
    segmentation = new_segmentation_node(image, "Tube")
    (segment_id,) = write_label_segments(segmentation, image, [SegmentSpec(1, "Tube")])

    def lps_at(k_index: float) -> tuple:
        ras = image.ijk_to_ras() @ np.array([15.0, 15.0, k_index, 1.0])
        return (-ras[0], -ras[1], ras[2])

    past_end = lps_at(49 + 5)  # five 0.5 mm voxels past the last one
    form = VesselForm(input_kind="segment", segment=segment_id, source_lps=lps_at(5), targets_lps=(past_end,),
                      landmarks_lps=(past_end,), create_surface=False)
    nodes = logic.start(None, form, input_segmentation=segmentation).wait()
    assert len(nodes.curves) == 1 and nodes.landmark_table is not None

    surfaces = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    surfaces.CreateDefaultDisplayNodes()
    surfaces.GetSegmentation().SetSourceRepresentationName("Closed surface")
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    surfaces.AddSegmentFromClosedSurfaceRepresentation(sphere.GetOutput(), "model", [0.2, 0.5, 0.8])
    started = time.perf_counter()
    with pytest.raises(InputError, match="keeps its segments as closed surfaces"):
        logic.start(None, form, segmentation_node=surfaces, input_segmentation=segmentation)
    assert time.perf_counter() - started < 1.0  # before the job, not after it
    assert surfaces.GetSegmentation().GetNumberOfSegments() == 1
    assert surfaces.GetSegmentation().GetSourceRepresentationName() == "Closed surface"


# -- the output segmentation at the job's end: a re-run into the last result, or one deleted meanwhile ---


def _tree_form(segment_id, landmark=None):
    from SegVesselLib.form import VesselForm

    return VesselForm(input_kind="segment", segment=segment_id,
                      landmarks_lps=() if landmark is None else (tuple(landmark),))


def _scene_node_ids(scene) -> set:
    return {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}


def _output_nodes(nodes) -> list:
    """Every node a tree job made besides the segmentation (curves, models, tables, chart, points, volume)."""
    single = [nodes.centerline_model, nodes.vmtk_centerline_model, nodes.surface_model, nodes.branch_table,
              nodes.stenosis_table, nodes.stenosis_points, nodes.section_table, nodes.diameter_chart,
              nodes.landmark_table, nodes.landmark_points, nodes.straightened_volume]
    return [n for n in [*nodes.curves, *single, *nodes.diameter_tables] if n is not None]


def test_replace_on_a_rerun_replaces_every_output_and_keep_both_keeps_them(mrml_scene, logic):
    """The desktop panel makes the last result its output: a re-run answered "Replace" must
    replace the curves, models, tables, chart, points and volume too, not pile up "_1" copies
    next to the replaced segment; "Keep both" keeps the old ones and adds the new."""
    from segforge.mrml import rows_from_table

    image, truth = synthetic_y_volume()
    y_segmentation = new_segmentation_node(image, "Y")
    (y_id,) = write_label_segments(y_segmentation, truth.mask, [SegmentSpec(1, "Y")])
    landmark = truth.branches[0].points_lps[len(truth.branches[0].points_lps) // 2]
    form = _tree_form(y_id, landmark)
    first = logic.start(None, form, input_segmentation=y_segmentation).wait()
    output = first.segmentation
    after_one = _scene_node_ids(mrml_scene)
    old = _output_nodes(first)
    assert first.diameter_chart is not None and first.landmark_points is not None and len(first.curves) == 3
    names = sorted(n.GetName() for n in old)

    second = logic.start(None, form, segmentation_node=output, on_existing="replace",
                         input_segmentation=y_segmentation).wait()
    assert second.segmentation is output and second.segment_id == first.segment_id
    assert len(_scene_node_ids(mrml_scene)) == len(after_one), "a replacing re-run added nodes"
    assert all(n.GetScene() is None for n in old), "an output of the replaced run is still in the scene"
    assert sorted(n.GetName() for n in _output_nodes(second)) == names  # no "_1" names
    assert segment_ids_by_name(output) == {"Vessels": [first.segment_id]}

    # A different result replaces it: a straight tube, one branch, the nodes hold it.
    tube = small_tube_image().with_array((small_tube_image().array > 0).astype(np.uint8))
    tube_segmentation = new_segmentation_node(tube, "Tube")
    (tube_id,) = write_label_segments(tube_segmentation, tube, [SegmentSpec(1, "Tube")])
    third = logic.start(None, _tree_form(tube_id), segmentation_node=output, on_existing="replace",
                        input_segmentation=tube_segmentation).wait()
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLMarkupsCurveNode") == len(third.curves) == 1
    assert len(rows_from_table(third.branch_table)) == 1
    assert all(n.GetScene() is None for n in _output_nodes(second))
    vessel_id = segment_ids_by_name(output)["Vessels"][0]
    np.testing.assert_array_equal(mask_from_segment(output, vessel_id, tube).array > 0, tube.array > 0)

    # Keep both: the tube's nodes stay, the Y's are added next to them under a second segment...
    kept = _output_nodes(third)
    fourth = logic.start(None, form, segmentation_node=output, on_existing="rename",
                         input_segmentation=y_segmentation).wait()
    assert set(segment_ids_by_name(output)) == {"Vessels", "Vessels 2"}
    assert all(n.GetScene() is mrml_scene for n in kept + _output_nodes(fourth))
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLMarkupsCurveNode") == 1 + 3
    # ...and replacing "Vessels" again replaces only the nodes made with it.
    fifth = logic.start(None, _tree_form(tube_id), segmentation_node=output, on_existing="replace",
                        input_segmentation=tube_segmentation).wait()
    assert all(n.GetScene() is None for n in kept)
    assert all(n.GetScene() is mrml_scene for n in _output_nodes(fourth) + _output_nodes(fifth))
    # A mask alone replacing "Vessels" takes away the tree nodes that described the old segment.
    volume = volume_node_from_image(image, "Y volume")
    logic.start_vessel_mask(volume, output, VesselMaskParameters(1.5, 3.0, 2, threshold=0.2), "Vessels",
                            "replace").wait()
    assert all(n.GetScene() is None for n in _output_nodes(fifth))
    assert all(n.GetScene() is mrml_scene for n in _output_nodes(fourth))


def test_an_output_segmentation_deleted_during_the_job_gets_a_new_one(mrml_scene, logic):
    """The user deleted the chosen output segmentation while the job ran: the vessel segment
    goes into a new segmentation node in the scene (as with no output chosen), not into the
    deleted node where nobody sees it while the curves and tables land in the scene."""
    image, truth = synthetic_y_volume()
    y_segmentation = new_segmentation_node(image, "Y")
    (y_id,) = write_label_segments(y_segmentation, truth.mask, [SegmentSpec(1, "Y")])
    output = new_segmentation_node(image, "Out")
    job = logic.start(None, _tree_form(y_id), segmentation_node=output, input_segmentation=y_segmentation)
    mrml_scene.RemoveNode(output)
    nodes = job.wait()
    assert nodes.segmentation is not output and nodes.segmentation.GetScene() is mrml_scene
    vessel_id = segment_ids_by_name(nodes.segmentation)["Vessels"][0]
    assert mask_from_segment(nodes.segmentation, vessel_id, truth.mask).array.any()
    assert output.GetSegmentation().GetNumberOfSegments() == 0
    # The mask job too.
    volume = volume_node_from_image(small_tube_image(), "Tube")
    gone = new_segmentation_node(volume, "Gone")
    job = logic.start_vessel_mask(volume, gone, VesselMaskParameters(1.5, 3.0, 2, threshold=0.2))
    mrml_scene.RemoveNode(gone)
    segmentation = job.wait()
    assert segmentation is not gone and segmentation.GetScene() is mrml_scene
    assert segment_ids_by_name(segmentation)["Vessels"]


def test_a_segment_tree_started_without_a_name_is_named_by_default(mrml_scene, logic):
    """``start_vessel_tree(None, ..., segment=...)`` from the console without ``name=``: the
    nodes were named after the volume, which is None, so the finish failed with an
    AttributeError once the whole job had run and nothing reached the scene."""
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters

    image, truth = synthetic_y_volume()
    segmentation = new_segmentation_node(image, "Y")
    (segment_id,) = write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False))
    nodes = logic.start_vessel_tree(None, parameters, segment=logic.segment_mask(segmentation, segment_id)).wait()
    assert nodes.segmentation.GetName() == "Vessels vessels"
    assert nodes.curves and all(c.GetName().startswith("Vessels branch ") for c in nodes.curves)


def test_a_segment_reaching_past_its_volume_is_refused_naming_the_share_outside(mrml_scene, logic):
    """"A segment and its volume" with a volume covering part of the segment analysed only that
    part (2073 of 3155 voxels) without a word. Now it is refused with the share outside and what
    to choose instead; a volume on a grid shifted by less than half a voxel (resampling
    round-off at the edge) still takes the whole segment, on the oblique anisotropic grid."""
    image, truth = synthetic_y_volume()
    segmentation = new_segmentation_node(image, "Y")
    (segment_id,) = write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    cropped = volume_node_from_image(Image(image.array[:, :, :28].copy(), image.spacing, image.origin_lps,
                                           image.direction_lps), "Cropped MRA")
    with pytest.raises(InputError) as caught:
        logic.segment_mask(segmentation, segment_id, cropped)
    assert re.fullmatch(r"\d+% of the segment 'Y vessel' lies outside the volume 'Cropped MRA'", caught.value.what)
    assert 25 <= int(caught.value.what.split("%")[0]) <= 40  # a third of the Y lies past i = 27
    assert "segment alone" in caught.value.todo and "covers the whole segment" in caught.value.todo

    shift = 0.4 * image.spacing[0] * np.asarray(image.direction_lps)[:, 0]  # along the volume's first axis
    shifted = volume_node_from_image(Image(image.array, image.spacing, tuple(np.add(image.origin_lps, shift)),
                                           image.direction_lps), "Shifted MRA")
    assert logic.segment_mask(segmentation, segment_id, shifted).array.sum() == truth.mask.array.sum()


def test_stray_islands_of_a_segment_are_counted_as_dropped_not_as_branches(mrml_scene, logic):
    """A segment with stray islands (a voxel, a 2x2x2 blob: what TotalSegmentator masks often
    hold) reported each as a zero-length one-point "branch": the summary said 6 branches, 4
    curves were made. Now the summary's count, the branch table, the curves and the CLI's
    summary.json (the same tree summary) agree, and the pieces left out are said."""
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline
    from segforge.vessel.tree import tree_from_result
    from SegVesselLib.tree_nodes import summary_of

    image, truth = synthetic_y_volume()
    array = truth.mask.array.copy()
    array[2, 2, 2] = 1
    array[5:7, 40:42, 5:7] = 1
    array[-8:-2, 3:6, 3:6] = 1  # a 3x3x6 blob: long enough for a short branch of its own
    islands = truth.mask.with_array(array)
    segmentation = new_segmentation_node(image, "Y")
    (segment_id,) = write_label_segments(segmentation, islands, [SegmentSpec(1, "Y vessel")])
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False))
    nodes = logic.vessel_tree_from_segment(segmentation, segment_id, parameters)

    assert len(nodes.curves) == nodes.branch_table.GetNumberOfRows() == 4
    assert summary_of(nodes).startswith("Done: 4 branches; 2 stray pieces too small for a branch left out;")
    summary = tree_from_result(run_vessel_pipeline(None, parameters, segment=islands)).summary  # summary.json's
    assert summary["branches"] == 4 and summary["dropped_pieces"] == 2


def test_a_segment_given_by_its_name_from_the_console_is_taken(mrml_scene, logic):
    """``vessel_tree_from_segment(segmentation, "Y vessel")``: the name instead of the ID gave
    "has no segment 'Y vessel'. It may have been deleted." Now a name no other segment has is
    taken; a name two segments share is refused listing the IDs and names the node holds."""
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters

    image, truth = synthetic_y_volume()
    segmentation = new_segmentation_node(image, "Y")
    (segment_id,) = write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False))
    nodes = logic.vessel_tree_from_segment(segmentation, "Y vessel", parameters)
    assert nodes.segmentation.GetName() == "Y vessel vessels" and len(nodes.curves) == 3
    np.testing.assert_array_equal(logic.segment_mask(segmentation, "Y vessel").array,
                                  logic.segment_mask(segmentation, segment_id).array)

    (twin_id,) = write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")], on_existing="rename")
    segmentation.GetSegmentation().GetSegment(twin_id).SetName("Y vessel")  # two of that name now
    with pytest.raises(InputError) as caught:
        logic.segment_mask(segmentation, "Y vessel")
    assert caught.value.what == "Segmentation 'Y' has no segment 'Y vessel'"
    assert "is the name of 2 segments" in caught.value.why and f'"Y vessel" (ID {segment_id})' in caught.value.why
    assert "give the segment's ID" in caught.value.todo
