"""Export to DICOM and Send to PACS through the modules' Logic (what the desktop and web panels
call): a real MRML scene, a real worker, volumes loaded from DICOM folders by the app's own
loader, SEG and SR read back by highdicom, a real Orthanc (DICOMweb, authentication on)."""
from __future__ import annotations

import shutil
import sys
import tempfile
import time

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from conftest import REPO
from dicom_helpers import DCIODVFY, dciodvfy_errors, write_series
from orthanc_fixture import PASSWORD, USER, OrthancServer, free_port, orthanc  # noqa: F401 (the fixture)
from segforge.dicom.pacs import ENV_CONFIG, ENV_PASSWORD, ENV_TIMEOUT, ENV_URL, ENV_USER, Pacs, pacs_config
from segforge.errors import Cancelled, InputError
from segforge.mrml.dicom_source import INSTANCE_UIDS_ATTRIBUTE, dicom_origin
from segforge.mrml.segments import SegmentSpec, mask_from_segment, new_segmentation_node, write_label_segments
from segforge.mrml.volumes import volume_node_from_image
from segforge.output_set import verify_manifest
from segforge_app.data_loading import load_path
from test_dicom_cli import assert_lesion_codes, oblique_chest

for module in ("SegOrgan", "SegVessel", "SegInteractive"):
    sys.path.insert(0, str(REPO / module))
from SegInteractiveLib import SegInteractiveLogic  # noqa: E402
from SegInteractiveLib.dicom_export import LesionResult  # noqa: E402
from SegOrganLib import SegOrganLogic  # noqa: E402
from SegVesselLib import SegVesselLogic  # noqa: E402

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")


@pytest.fixture(scope="module")
def chest_series(tmp_path_factory):
    """The chest phantom as a CT series with proper UIDs on an oblique, anisotropic grid."""
    return write_series(oblique_chest(), tmp_path_factory.mktemp("chest") / "ct")


@pytest.fixture
def no_pacs(monkeypatch, tmp_path):
    """No PACS in the environment nor in a config file (the user's own is not read)."""
    for name in (ENV_URL, ENV_USER, ENV_PASSWORD, ENV_TIMEOUT):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "absent.json"))
    (tmp_path / "absent.json").write_text("{}")


def load_series(folder, scene):
    (volume,) = load_path(folder, scene).volumes
    return volume


def seg_masks(path, source_folder) -> dict[str, np.ndarray]:
    """The SEG's segments as highdicom reads them, on the source series' slices (k order of the grid)."""
    from segforge.dicom.source import read_source_series
    from segforge.image_io import read_volume

    image = read_volume(source_folder)
    uids = [str(d.SOPInstanceUID) for d in read_source_series(source_folder, image).datasets]
    seg = hd.seg.segread(path)
    masks = {}
    for description in seg.SegmentSequence:
        number = int(description.SegmentNumber)
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[number],
                                                   assert_missing_frames_are_empty=True)
        masks[str(description.SegmentLabel)] = pixels[..., 0] > 0
    return masks


def sr_groups(path) -> dict:
    report = hd.sr.srread(path)
    return {str(g.tracking_identifier): g for g in report.content.get_volumetric_roi_measurement_groups()}


def test_a_series_loaded_by_the_app_remembers_its_slices(mrml_scene, chest_series):
    volume = load_series(chest_series, mrml_scene)
    origin = dicom_origin(volume)
    expected = sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in chest_series.glob("*.dcm"))
    assert origin.folder == chest_series and sorted(origin.instance_uids) == expected
    assert len(volume.GetAttribute(INSTANCE_UIDS_ATTRIBUTE).split()) == len(expected)  # Slicer's own attribute


def test_an_uploaded_series_is_kept_after_its_upload_folder_is_gone(mrml_scene, chest_series, tmp_path):
    from segforge_app.data_loading import load_uploaded_folder

    upload = tmp_path / "upload"
    shutil.copytree(chest_series, upload / "ct")
    (volume,) = load_uploaded_folder(upload, mrml_scene, keep_series_in=tmp_path / "kept").volumes
    shutil.rmtree(upload)  # what the Data panel's temporary upload folder does
    result, expected = _lesion(volume, mrml_scene)
    origin = dicom_origin(volume)
    assert origin.folder.is_dir() and (tmp_path / "kept") in origin.folder.parents
    files = SegInteractiveLogic().export_dicom(volume, result, tmp_path / "dicom")
    np.testing.assert_array_equal(seg_masks(files["dicom_seg"], chest_series)["lesion"], expected)


def test_organ_export_reads_back_equal_to_the_segments(mrml_scene, worker, chest_series, tmp_path):
    logic = SegOrganLogic(worker)
    volume = load_series(chest_series, mrml_scene)
    nodes = logic.segment_organs(volume)
    fractions = []
    files = logic.start_export_dicom(volume, nodes, tmp_path / "dicom").wait(lambda f, m: fractions.append(f))
    out = tmp_path / "dicom"
    assert set(files) == {"dicom_seg", "dicom_sr"} and verify_manifest(out) == []
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    masks = seg_masks(out / "seg.dcm", chest_series)
    segmentation = nodes.segmentation.GetSegmentation()
    names = {segmentation.GetSegment(i).GetName(): i for i in nodes.segment_ids}
    assert set(masks) == set(names) and len(masks) >= 3
    for name, segment_id in names.items():
        np.testing.assert_array_equal(masks[name], mask_from_segment(nodes.segmentation, segment_id, volume).array > 0)
    groups = sr_groups(out / "sr.dcm")
    from segforge.mrml.tables import rows_from_table

    for row in rows_from_table(nodes.statistics_table):
        volume_mm3 = groups[row["Segment"]].get_measurements(name=codes.SCT.Volume)[0].value
        assert float(volume_mm3) == pytest.approx(row["Volume [mL]"] * 1000, rel=1e-6)
    seg = pydicom.dcmread(out / "seg.dcm")
    first = pydicom.dcmread(sorted(chest_series.glob("*.dcm"))[0])
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.PatientID == first.PatientID


def test_an_organ_result_is_never_filed_against_another_volume(mrml_scene, worker, chest_series, tmp_path):
    """The SEG must refer to the images the organs were found on: another volume (the selector
    changed while the job ran) is refused in one line, nothing written."""
    logic = SegOrganLogic(worker)
    volume = load_series(chest_series, mrml_scene)
    other = load_series(chest_series, mrml_scene)
    nodes = logic.segment_organs(volume)
    with pytest.raises(InputError, match="was made on .*, not on"):
        logic.start_export_dicom(other, nodes, tmp_path / "dicom")
    assert not (tmp_path / "dicom").exists()


def test_an_edited_and_a_deleted_segment_are_filed_as_they_are_now(mrml_scene, worker, chest_series, tmp_path):
    logic = SegOrganLogic(worker)
    volume = load_series(chest_series, mrml_scene)
    nodes = logic.segment_organs(volume)
    segmentation = nodes.segmentation.GetSegmentation()
    deleted, edited = nodes.segment_ids[0], nodes.segment_ids[1]
    deleted_name = segmentation.GetSegment(deleted).GetName()
    segmentation.RemoveSegment(deleted)
    from segforge.mrml.segments import set_segment_mask

    mask = mask_from_segment(nodes.segmentation, edited, volume)
    mask.array[: mask.array.shape[0] // 2] = 0  # the user erased half of it
    set_segment_mask(nodes.segmentation, edited, mask)
    logic.export_dicom(volume, nodes, tmp_path / "dicom")
    masks = seg_masks(tmp_path / "dicom" / "seg.dcm", chest_series)
    assert deleted_name not in masks
    np.testing.assert_array_equal(masks[segmentation.GetSegment(edited).GetName()], mask.array > 0)


def test_vessel_export_holds_the_tree_measurements(mrml_scene, worker, tmp_path):
    from segforge.vessel.pipeline import VesselPipelineParameters, preset
    from test_segvessel_logic import synthetic_y_volume

    image, _ = synthetic_y_volume()
    folder = write_series(image, tmp_path / "mra")
    volume = load_series(folder, mrml_scene)
    logic = SegVesselLogic(worker)
    nodes = logic.vessel_tree(volume, VesselPipelineParameters(mask=preset("mra")))
    logic.export_dicom(volume, nodes, tmp_path / "dicom")
    out = tmp_path / "dicom"
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    (name, mask), = seg_masks(out / "seg.dcm", folder).items()
    assert name == "Vessels"
    np.testing.assert_array_equal(mask, mask_from_segment(nodes.segmentation, nodes.segment_id, volume).array > 0)
    groups = sr_groups(out / "sr.dcm")
    assert nodes.tree.branch_rows
    for row in nodes.tree.branch_rows:
        group = groups[f"branch {row['id']}"]
        assert float(group.get_measurements(name=codes.SCT.Length)[0].value) == pytest.approx(row["length_mm"])


def test_vessel_export_without_a_tree_is_refused(mrml_scene, worker, chest_series, tmp_path):
    volume = load_series(chest_series, mrml_scene)
    segmentation = SegVesselLogic(worker).segment_vessels(volume)  # a mask only: nothing measured
    with pytest.raises(InputError, match="No vessel tree to export"):
        SegVesselLogic(worker).export_dicom(volume, segmentation, tmp_path / "dicom")
    assert not (tmp_path / "dicom").exists()


def _lesion(volume, mrml_scene) -> tuple[LesionResult, np.ndarray]:
    """A lesion segment beside another segment of the user's (which is not filed)."""
    grid = oblique_chest()
    labels = np.zeros(grid.array.shape, np.uint8)
    labels[3:6, 10:16, 12:20] = 1
    labels[1:3, 2:5, 2:5] = 2
    node = new_segmentation_node(volume, "lesions", scene=mrml_scene)
    ids = write_label_segments(node, grid.with_array(labels), [SegmentSpec(1, "lesion", (1.0, 0.5, 0.0)),
                                                                SegmentSpec(2, "the user's", (0.0, 0.5, 1.0))])
    return LesionResult(node, ids[0]), labels == 1


def test_lesion_export_is_the_edited_segment_only(mrml_scene, worker, chest_series, tmp_path):
    volume = load_series(chest_series, mrml_scene)
    result, expected = _lesion(volume, mrml_scene)
    SegInteractiveLogic(worker).export_dicom(volume, result, tmp_path / "dicom")
    out = tmp_path / "dicom"
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    masks = seg_masks(out / "seg.dcm", chest_series)
    assert list(masks) == ["lesion"]
    np.testing.assert_array_equal(masks["lesion"], expected)
    volume_mm3 = sr_groups(out / "sr.dcm")["lesion"].get_measurements(name=codes.SCT.Volume)[0].value
    assert float(volume_mm3) == pytest.approx(expected.sum() * 4.0 * 3.5 * 5.0)
    seg = pydicom.dcmread(out / "seg.dcm")
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert_lesion_codes(out / "seg.dcm")


def test_a_volume_not_from_dicom_is_refused_unless_a_derived_series_is_asked(mrml_scene, worker, tmp_path):
    volume = volume_node_from_image(oblique_chest(), "chest.nii.gz")
    result, expected = _lesion(volume, mrml_scene)
    logic = SegInteractiveLogic(worker)
    with pytest.raises(InputError) as refused:
        logic.start_export_dicom(volume, result, tmp_path / "dicom")
    message = refused.value.message
    assert "'chest.nii.gz'" in message and "not loaded from a DICOM series" in message
    assert "New derived series" in message and "\n" not in message
    assert not (tmp_path / "dicom").exists()
    files = logic.export_dicom(volume, result, tmp_path / "dicom", derived=True)
    out = tmp_path / "dicom"
    slices = sorted(out.glob("derived_ct_*.dcm"))
    assert len(slices) == oblique_chest().array.shape[0] and verify_manifest(out) == []
    assert pydicom.dcmread(slices[0]).SeriesDescription == "SegForge DERIVED (not original images)"
    assert dciodvfy_errors(files["dicom_seg"]) == []
    derived = tmp_path / "derived"
    derived.mkdir()
    for path in slices:
        shutil.copy(path, derived)
    np.testing.assert_array_equal(seg_masks(files["dicom_seg"], derived)["lesion"], expected)
    with pytest.raises(InputError, match="not loaded from a DICOM series"):
        logic.start_send_to_pacs(volume, result)


def test_a_folder_with_files_is_never_mixed_and_a_failure_leaves_it_as_it_was(mrml_scene, worker, chest_series,
                                                                               tmp_path):
    volume = load_series(chest_series, mrml_scene)
    result, _ = _lesion(volume, mrml_scene)
    logic = SegInteractiveLogic(worker)
    out = tmp_path / "dicom"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty"):
        logic.export_dicom(volume, result, out)
    empty = new_segmentation_node(volume, "empty", scene=mrml_scene)
    segment_id = empty.GetSegmentation().AddEmptySegment("nothing")
    with pytest.raises(InputError, match="is empty"):
        logic.export_dicom(volume, LesionResult(empty, segment_id), tmp_path / "other")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and not (tmp_path / "other").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_send_to_pacs_stores_then_finds_and_a_retry_sends_nothing(mrml_scene, worker, orthanc, chest_series,  # noqa: F811
                                                                   monkeypatch):
    monkeypatch.setenv(ENV_URL, orthanc.dicomweb)
    monkeypatch.setenv(ENV_USER, USER)
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    for path in sorted(chest_series.glob("*.dcm")):
        assert orthanc.upload(path)["status"] == 200
    volume = load_series(chest_series, mrml_scene)
    result, expected = _lesion(volume, mrml_scene)
    logic = SegInteractiveLogic(worker)
    assert logic.pacs_url() == orthanc.dicomweb
    job = logic.start_send_to_pacs(volume, result)
    outcome = job.wait()
    assert outcome == {"seg.dcm": "stored", "sr.dcm": "stored"} and job.poll().state == "done"
    study = str(pydicom.dcmread(sorted(chest_series.glob("*.dcm"))[0]).StudyInstanceUID)
    pacs = Pacs(pacs_config())
    series = {s["Modality"]: s["SeriesInstanceUID"] for s in pacs.find_series(study)}
    assert set(series) == {"CT", "SEG", "SR"}
    with tempfile.TemporaryDirectory() as folder:
        (fetched,) = pacs.fetch_series(study, series["SEG"], folder)
        np.testing.assert_array_equal(seg_masks(fetched, chest_series)["lesion"], expected)
    instances = len(orthanc.rest("/instances"))
    again = logic.start_send_to_pacs(volume, result).wait()  # the same result: found there, not sent twice
    assert again == {"seg.dcm": "already stored", "sr.dcm": "already stored"}
    assert len(orthanc.rest("/instances")) == instances
    mask = mask_from_segment(result.segmentation, result.segment_id, volume)
    mask.array[4, 12, 14] = 0  # an edit: a new result, new objects
    from segforge.mrml.segments import set_segment_mask

    set_segment_mask(result.segmentation, result.segment_id, mask)
    assert logic.start_send_to_pacs(volume, result).wait() == {"seg.dcm": "stored", "sr.dcm": "stored"}
    assert len(orthanc.rest("/instances")) == instances + 2


def test_send_to_a_pacs_that_is_down_is_one_line_and_stores_nothing(mrml_scene, worker, orthanc, chest_series,  # noqa: F811
                                                                     monkeypatch):
    monkeypatch.setenv(ENV_URL, f"http://127.0.0.1:{free_port()}/dicom-web")
    monkeypatch.setenv(ENV_USER, USER)
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    monkeypatch.setenv(ENV_TIMEOUT, "5")
    volume = load_series(chest_series, mrml_scene)
    result, _ = _lesion(volume, mrml_scene)
    before = len(orthanc.rest("/instances"))
    job = SegInteractiveLogic(worker).start_send_to_pacs(volume, result)
    with pytest.raises(InputError) as failed:
        job.wait()
    message = failed.value.message
    assert "cannot be reached" in message and "\n" not in message and "Traceback" not in message
    assert job.poll().state == "failed" and job.poll().message == message
    assert len(orthanc.rest("/instances")) == before


def test_no_pacs_configured_turns_send_off(no_pacs):
    assert SegOrganLogic.pacs_url() is None and SegVesselLogic.pacs_url() is None


def test_cancel_stops_a_background_job_at_its_next_report():
    from segforge.worker import ThreadJob

    reports = []

    def slow(progress):
        for n in range(200):
            progress(n / 200, "waiting")
            reports.append(n)
            time.sleep(0.02)
        return "finished"

    job = ThreadJob(slow)
    while not reports:
        time.sleep(0.01)
    job.cancel()
    with pytest.raises(Cancelled):
        job.wait()
    assert job.poll().state == "cancelled" and len(reports) < 50


def test_a_volume_from_slicers_dicom_module_is_found_through_its_database(mrml_scene, worker, chest_series,
                                                                          tmp_path):
    """Slicer's DICOM module leaves only DICOM.instanceUIDs on the node; the files come from its
    database's lookup (here a plain mapping, as ``slicer.dicomDatabase.fileForInstance`` answers)."""
    from segforge.image_io import read_volume

    volume = volume_node_from_image(read_volume(chest_series), "2: CT")
    files = {str(pydicom.dcmread(p).SOPInstanceUID): str(p) for p in chest_series.glob("*.dcm")}
    volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(files))
    result, expected = _lesion(volume, mrml_scene)
    logic = SegInteractiveLogic(worker)
    with pytest.raises(InputError, match="Slicer's DICOM database"):
        logic.start_export_dicom(volume, result, tmp_path / "no_database")
    logic.export_dicom(volume, result, tmp_path / "dicom", file_for_instance=files.get)
    np.testing.assert_array_equal(seg_masks(tmp_path / "dicom" / "seg.dcm", chest_series)["lesion"], expected)
    missing = dict(list(files.items())[1:])
    with pytest.raises(InputError, match="no file for 1 of its"):
        logic.start_export_dicom(volume, result, tmp_path / "missing", file_for_instance=missing.get)


def test_a_series_folder_gone_is_found_again_through_the_database(mrml_scene, worker, chest_series, tmp_path):
    """A scene reopened elsewhere: the folder the series was loaded from is gone, and the
    slices' UIDs still find their files through Slicer's DICOM database; without it, one line."""
    copy = tmp_path / "moved" / "ct"
    shutil.copytree(chest_series, copy)
    volume = load_series(copy, mrml_scene)
    shutil.rmtree(copy)
    result, expected = _lesion(volume, mrml_scene)
    logic = SegInteractiveLogic(worker)
    with pytest.raises(InputError, match="is gone"):
        logic.start_export_dicom(volume, result, tmp_path / "no_database")
    files = {str(pydicom.dcmread(p).SOPInstanceUID): str(p) for p in chest_series.glob("*.dcm")}
    logic.export_dicom(volume, result, tmp_path / "dicom", file_for_instance=files.get)
    np.testing.assert_array_equal(seg_masks(tmp_path / "dicom" / "seg.dcm", chest_series)["lesion"], expected)
