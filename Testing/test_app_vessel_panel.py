"""The SegVessel web panel without a browser: a real trame server's state, a headless Slicer
scene, the panel's own callbacks and the desktop module's Logic in a real worker.

What the page does is what these callbacks do (a click calls them), so the rules of the panel
(which files become segment inputs, how a box drawn in an oblique view becomes the vessel's
box, which point lists it uses, which segments it lists) are checked here in seconds.
"""
from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import pytest

from conftest import OBLIQUE, SAMPLE_DATA
from segforge.errors import InputError
from segforge.image_io import read_image
from segforge.mrml.segments import SegmentSpec, mask_from_segment, new_segmentation_node, write_label_segments
from segforge_app.context import ERROR_KEY, AppContext
from segforge_app.jobs import JobTracker, job_state_key

TS = SAMPLE_DATA / "ts_thoracic_cta_aorta"
_names = itertools.count()


class _NoViews:
    """The panel asks the view manager for views to place points in; headless there are none."""

    def get_threed_views(self) -> list:
        return []

    def get_views(self) -> list:
        return []


@pytest.fixture
def context(headless_slicer):
    """An AppContext on a fresh trame server whose state is ready, as after a browser connects."""
    from trame.app import get_server

    headless_slicer.view_manager = _NoViews()
    server = get_server(f"segforge-vessel-panel-test-{next(_names)}", client_type="vue3")
    context = AppContext(server, headless_slicer)
    context.jobs = JobTracker(context, interval_s=0.05)
    server.state.ready()
    return context


@pytest.fixture
def panel(context):
    from segforge_app.vessel_panel import VesselPanel

    return VesselPanel(context)


def y_volume():
    """A bright Y in noise on an oblique anisotropic grid (the Logic tests' MRA), and its truth."""
    from segforge.vessel.synthetic import make_grid, y_bifurcation

    tree = y_bifurcation(make_grid((40, 40, 60), (0.8, 0.8, 1.2), OBLIQUE, center_lps=(5, -3, 20)),
                         center_lps=(5, -3, 20))
    noise = np.random.default_rng(0).normal(0, 20, tree.mask.array.shape)
    return tree.mask.with_array((tree.mask.array.astype(np.float32) * 500 + 100 + noise).astype(np.int16)), tree


def run_panel(context, panel, timeout_s: float = 300.0) -> tuple[dict, dict]:
    """Press Run as the page does (an error goes to the page's error box) and wait for the job."""
    async def main():
        context.clear_error()
        try:
            panel.run()
            deadline = time.monotonic() + timeout_s
            await asyncio.sleep(0.05)
            while context.jobs.is_running("segvessel"):
                assert time.monotonic() < deadline, "the job never ended"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
        except Exception as error:  # what shows_errors does with it
            context.report_error(error)

    asyncio.run(main())
    return context.state[job_state_key("segvessel")], context.state[ERROR_KEY]


def offered_segmentations(context) -> list[str]:
    """The segmentations the panel's Segmentation select offers (its items filter)."""
    return [node["name"] for node in context.state["scene_nodes"] if node["kind"] == "segmentation"]


# -- 1. a label-map file is a segment input -----------------------------------------------------------


def test_a_label_map_file_loads_as_a_segmentation_the_panel_offers(context, panel):
    """TotalSegmentator's aorta mask and its two-label lumen file were loaded as grey volumes:
    the panel listed no segmentation, and choosing one as the volume was refused as "looks like
    a label map". Now each is a segmentation (one segment per label, named as the file names
    them), on the file's own grid voxel for voxel; the CTA beside them stays a volume."""
    from segforge_app.data_loading import load_paths

    files = [TS / "cta_thorax_1p5mm.nii.gz", TS / "pred_aorta.nii.gz", TS / "pred_T716_aorta_true_false_lumen.nii.gz"]
    loaded = load_paths(files, context.scene)
    context.refresh_nodes()
    assert [node.GetName() for node in loaded.volumes] == ["cta_thorax_1p5mm"]
    assert offered_segmentations(context) == ["pred_aorta", "pred_T716_aorta_true_false_lumen"]
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1  # no grey copy left behind
    lumen = context.scene.GetFirstNodeByName("pred_T716_aorta_true_false_lumen")
    segmentation = lumen.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    assert names == ["aorta_true_lumen", "aorta_false_lumen"]  # from the file's TotalSegmentator header
    labels = read_image(files[2])
    for n, value in enumerate((1, 2)):
        on_file_grid = mask_from_segment(lumen, segmentation.GetNthSegmentID(n), labels)
        np.testing.assert_array_equal(on_file_grid.array > 0, labels.array == value)

    aorta = context.scene.GetFirstNodeByName("pred_aorta")
    context.set_state(segvessel_input_kind="segment", segvessel_input_segmentation=aorta.GetID())
    (row,) = context.state["segvessel_input_segments"]
    assert row["title"] == "pred_aorta" and context.state["segvessel_segment"] == row["value"]
    panel.check()  # the form's job is accepted: a segment input, no volume needed


def test_totalsegmentator_multi_label_output_loads_as_named_segments_and_its_ct_stays_a_volume(headless_slicer):
    """TotalSegmentator's multi-label file (41 of its 117 classes present, more than a mask's few
    values) is a label map because the file names every value it holds; the CT beside it, in
    a folder whose label_names.json names labels too, holds values it does not name: a volume."""
    from segforge_app.data_loading import load_paths

    folder = SAMPLE_DATA / "ts_ct_abdomen_3mm"
    scene = headless_slicer.scene
    loaded = load_paths([folder / "example_ct_sm.nii.gz", folder / "example_seg.nii.gz"], scene)
    assert [node.GetName() for node in loaded.volumes] == ["example_ct_sm"]
    (labels,) = [node for node in loaded.nodes if node.IsA("vtkMRMLSegmentationNode")]
    segmentation = labels.GetSegmentation()
    names = {segmentation.GetNthSegment(n).GetName(): segmentation.GetNthSegmentID(n)
             for n in range(segmentation.GetNumberOfSegments())}
    assert len(names) == 41 and "spleen" in names
    truth = read_image(folder / "example_seg.nii.gz")
    np.testing.assert_array_equal(mask_from_segment(labels, names["aorta"], truth).array > 0, truth.array == 52)


def test_a_label_map_given_as_the_volume_is_told_to_be_the_segment_input():
    from segforge.vessel.pipeline import VesselPipelineParameters, run_vessel_pipeline

    with pytest.raises(InputError) as caught:
        run_vessel_pipeline(read_image(TS / "pred_aorta.nii.gz"), VesselPipelineParameters())
    assert "label map" in caught.value.what and "segment input" in caught.value.todo


# -- 2. a box drawn on an oblique volume ---------------------------------------------------------------


def show_in_slice_views(context, volume) -> None:
    """What showing a volume leaves in the scene for the panels: the views' background volume
    (headless there are no views, so their composite node is made here)."""
    composite = context.scene.GetNodeByID("vtkMRMLSliceCompositeNodeRed")
    if composite is None:
        composite = context.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    composite.SetBackgroundVolumeID(volume.GetID())


def test_a_box_drawn_on_an_oblique_volume_is_the_box_drawn_and_keeps_the_vessel(context, panel):
    """Two corners 44 x 44 mm apart clicked in the oblique volume's own slice (as trame-slicer's
    views show it) made a box along the patient axes: a slab a few mm deep that cut the Y to
    2/3 of its voxels. Now the box runs along the volume's axes, 44 mm deep, and the vessel
    job keeps every voxel of the segment (the engine takes the turned box's bounds)."""
    from segforge.mrml.segments import segment_ids_by_name
    from segforge.mrml.volumes import volume_node_from_image

    image, truth = y_volume()
    volume = volume_node_from_image(image, "Oblique MRA")
    show_in_slice_views(context, volume)
    segmentation = new_segmentation_node(image, "Y")
    write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    context.refresh_nodes()
    context.set_state(segvessel_input_kind="segment", segvessel_input_segmentation=segmentation.GetID(),
                      segvessel_create_surface=False)
    ijk_to_ras = image.ijk_to_ras()
    axes = ijk_to_ras[:3, :3] / np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    centre_ras = np.array([-5.0, 3.0, 20.0])  # the Y's centre, LPS (5, -3, 20)
    corners = panel.markups._node("corners")  # two clicks in the volume's i-j plane through the centre
    corners.AddControlPoint(list(centre_ras - 22 * axes[:, 0] - 22 * axes[:, 1]))
    corners.AddControlPoint(list(centre_ras + 22 * axes[:, 0] + 22 * axes[:, 1]))
    panel.markups._use_point(corners)

    roi = panel.markups.roi()
    size = [0.0] * 3
    roi.GetSizeWorld(size)
    np.testing.assert_allclose(size, [44.0, 44.0, 44.0], atol=1e-6)
    assert "box 44 x 44 x 44 mm" in context.state["segvessel_inputs"]
    job, error = run_panel(context, panel)
    assert error is None and job["state"] == "done", (job, error)
    result = context.results[list(context.results)[-1]].result
    (vessel_id,) = segment_ids_by_name(result.segmentation)["Vessels"]
    kept = mask_from_segment(result.segmentation, vessel_id, image).array > 0
    np.testing.assert_array_equal(kept, truth.mask.array > 0)


# -- 7. point lists from a reloaded scene -------------------------------------------------------------


def test_point_lists_of_a_reloaded_scene_are_used_and_placed_into(context, panel, tmp_path):
    """A scene saved with the panel's source, targets and landmarks (.mrb) and opened in a new
    session showed the lists but the panel ignored them ("no seed points", no source), and
    pressing Targets made a second "SegVessel targets" node. Now the panel adopts them by name
    and class: they are listed, in its form, and clicks go into them."""
    from segforge.mrml import save_scene_bundle
    from segforge_app.data_loading import load_paths

    image, truth = y_volume()
    segmentation = new_segmentation_node(image, "Y")
    write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    source, target, landmark = (tuple(float(v) for v in p) for p in
                                (truth.branches[0].points_lps[2], truth.branches[1].points_lps[80],
                                 truth.branches[0].points_lps[60]))
    panel.markups.add_point("source", source)
    panel.markups.add_point("targets", target)
    panel.markups.add_point("landmarks", landmark)
    save_scene_bundle(tmp_path / "points.mrb", context.scene)
    context.scene.Clear(False)  # the new session's empty scene, and a panel that made no node
    context.refresh_nodes()
    from segforge_app.vessel_panel import VesselPanel

    reopened = VesselPanel(context)
    context.set_state(segvessel_inputs=reopened.markups.describe())
    assert context.state["segvessel_inputs"].startswith("no seed points; no box")
    load_paths([tmp_path / "points.mrb"], context.scene)
    context.refresh_nodes()
    said = "no seed points; 1 source; 1 target; 1 landmark; no box (the whole volume)."
    assert context.state["segvessel_inputs"] == said
    loaded = context.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    context.set_state(segvessel_input_kind="segment", segvessel_input_segmentation=loaded.GetID())
    form = reopened.form()
    np.testing.assert_allclose(form.source_lps, source, atol=1e-4)
    np.testing.assert_allclose(form.targets_lps, [target], atol=1e-4)
    np.testing.assert_allclose(form.landmarks_lps, [landmark], atol=1e-4)
    reopened.markups.add_point("targets", source)  # a second target goes into the loaded list
    targets = context.scene.GetNodesByClassByName("vtkMRMLMarkupsFiducialNode", "SegVessel targets")
    assert targets.GetNumberOfItems() == 1 and targets.GetItemAsObject(0).GetNumberOfControlPoints() == 2


# -- 8. the segment list follows the chosen segmentation -------------------------------------------------


def test_the_segment_list_follows_segments_added_renamed_and_removed(context, panel):
    """The Vessel segment select listened only to the segmentation choice and the node list:
    a segment added (SegInteractive's new segment), renamed or removed left it stale, and a
    removed chosen segment was run as its raw ID. Now the list follows the segmentation's
    segments, and a chosen segment removed leaves no choice (Run asks for one) rather than
    another segment chosen behind the user's back."""
    image, truth = y_volume()
    segmentation = new_segmentation_node(image, "Y")
    (liver,) = write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Liver")])
    context.refresh_nodes()
    context.set_state(segvessel_input_kind="segment", segvessel_input_segmentation=segmentation.GetID(),
                      segvessel_create_surface=False)

    def listed():
        return [row["title"] for row in context.state["segvessel_input_segments"]]

    assert listed() == ["Liver"] and context.state["segvessel_segment"] == liver
    aorta = segmentation.GetSegmentation().AddEmptySegment("", "Aorta", [1.0, 0.0, 0.0])
    assert listed() == ["Liver", "Aorta"]
    segmentation.GetSegmentation().GetSegment(liver).SetName("Renamed")
    assert listed() == ["Renamed", "Aorta"] and context.state["segvessel_segment"] == liver
    segmentation.GetSegmentation().RemoveSegment(liver)
    assert listed() == ["Aorta"] and context.state["segvessel_segment"] == ""
    job, error = run_panel(context, panel)
    assert error["what"] == "No segment is chosen"
    assert job is None or job["state"] != "done"
    context.set_state(segvessel_segment=aorta)  # the user chooses again; the other segmentation's list is not followed
    other = new_segmentation_node(image, "Other")
    write_label_segments(other, truth.mask, [SegmentSpec(1, "Vessel")])
    context.refresh_nodes()
    context.set_state(segvessel_input_segmentation=other.GetID())
    segmentation.GetSegmentation().AddEmptySegment("", "Late", [0.0, 1.0, 0.0])
    assert listed() == ["Vessel"]


# -- 9. a segment-only result is not "of" the volume ----------------------------------------------------


def test_a_segment_only_result_is_not_titled_after_an_unused_volume(context, panel):
    """With a volume in the scene (so chosen in the volume select) and the segment alone as
    input, the result was titled "SegVessel: ... of MRA" and carried the MRA's id for Export to
    DICOM, a volume the job never used. Now only a job that takes the image names one."""
    from segforge.mrml.volumes import volume_node_from_image

    image, truth = y_volume()
    volume = volume_node_from_image(image, "MRA")
    segmentation = new_segmentation_node(image, "Y")
    write_label_segments(segmentation, truth.mask, [SegmentSpec(1, "Y vessel")])
    context.refresh_nodes()
    assert context.state["segvessel_volume"] == volume.GetID()  # the select follows the scene's volume
    context.set_state(segvessel_input_kind="segment", segvessel_input_segmentation=segmentation.GetID(),
                      segvessel_create_surface=False, segvessel_create_stenoses=False)
    job, error = run_panel(context, panel)
    assert error is None and job["state"] == "done", (job, error)
    (result,) = context.results.values()
    assert result.title == "SegVessel: Y vessel vessels" and result.volume_id is None

    context.set_state(segvessel_input_kind="both", segvessel_output="", segvessel_segment_name="Vessels 2")
    job, error = run_panel(context, panel)
    assert error is None and job["state"] == "done", (job, error)
    newest = context.results[list(context.results)[-1]]
    assert newest.title.endswith(" of MRA") and newest.volume_id == volume.GetID()
