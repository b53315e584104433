"""DICOM SEG export and import: conformance (dciodvfy), the masks read back by highdicom and by
our importer at the same world positions, on an oblique anisotropic grid and on dcmqi's CT;
dcmqi's own SEG imported; bad sources refused with a message."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from segforge.dicom.seg_export import Algorithm, build_segmentation
from segforge.dicom.seg_import import load_into_segmentation_node, read_dicom_seg
from segforge.dicom.source import read_source_series
from segforge.errors import InputError
from segforge.image import Image
from segforge.image_io import read_volume
from segforge.organ.outputs import organ_segments
from segforge.segmentation_file import SegmentInfo

from conftest import OBLIQUE, make_image
from dicom_helpers import DCIODVFY, ball_labels, dcmqi_ct, dciodvfy_errors, write_series

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")

SEGMENTS = [SegmentInfo(3, "liver", (0.9, 0.5, 0.4)), SegmentInfo(8, "kidney_left", (0.2, 0.6, 0.9))]


@pytest.fixture(scope="module")
def oblique_series(tmp_path_factory):
    """An oblique, anisotropic 16-bit CT series (spacing 0.7 x 1.3 x 2.9 mm) and its image as read."""
    folder = write_series(make_image((7, 12, 16), np.int16, direction_lps=OBLIQUE),
                          tmp_path_factory.mktemp("oblique") / "ct")
    return folder, read_volume(folder)


def _export(folder, image, labels, path, segments=SEGMENTS):
    source = read_source_series(folder, image)
    export = build_segmentation(labels, segments, source, Algorithm("organ", "ct-tissues"))
    return export, export.write(path)


def test_seg_of_an_oblique_series_passes_dciodvfy_and_reads_back_at_the_same_places(oblique_series, tmp_path):
    folder, image = oblique_series
    assert image.is_oblique and len(set(image.spacing)) == 3
    labels = ball_labels(image)
    export, path = _export(folder, image, labels, tmp_path / "seg.dcm")
    assert dciodvfy_errors(path) == []
    seg = pydicom.dcmread(path)
    first = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID", "AccessionNumber"):
        assert seg[keyword].value == first[keyword].value
    assert seg.SegmentationType == "BINARY" and seg.SeriesInstanceUID != first.SeriesInstanceUID
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {pydicom.dcmread(p).SOPInstanceUID for p in folder.glob("*.dcm")}
    # empty frames are left out: label 8 touches 2 of the 7 slices
    per_segment = [item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
                   for item in seg.PerFrameFunctionalGroupsSequence]
    assert per_segment.count(2) == 2 and export.segment_numbers == {3: 1, 8: 2}
    # each frame's position is its slice's place on the grid (LPS)
    for item in seg.PerFrameFunctionalGroupsSequence:
        source_uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        slice_file = next(p for p in folder.glob("*.dcm") if pydicom.dcmread(p).SOPInstanceUID == source_uid)
        assert np.allclose(item.PlanePositionSequence[0].ImagePositionPatient,
                           pydicom.dcmread(slice_file).ImagePositionPatient, atol=1e-3)
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert "ct-tissues" in algorithm.AlgorithmName and algorithm.AlgorithmVersion
    back = read_dicom_seg(path, image)
    assert np.array_equal(back.masks[1], labels.array == 3) and np.array_equal(back.masks[2], labels.array == 8)
    assert [s.name for s in back.segments] == ["liver", "kidney_left"]
    assert np.allclose(back.segments[0].color, (0.9, 0.5, 0.4), atol=0.01)
    assert "SCT^64033007^Kidney~SCT^7771000^Left" in back.segments[1].terminology


def test_seg_read_without_an_image_puts_each_voxel_at_its_world_place(oblique_series, tmp_path):
    folder, image = oblique_series
    labels = ball_labels(image)
    _, path = _export(folder, image, labels, tmp_path / "seg.dcm")
    own = read_dicom_seg(path)  # the SEG's own geometry: frames present only, maybe in another order
    for mask, expected in ((own.masks[1], labels.array == 3), (own.masks[2], labels.array == 8)):
        assert _same_places(_world(own.grid, mask), _world(image, expected))


def test_highdicom_reads_our_seg_back_to_the_same_masks(oblique_series, tmp_path):
    import highdicom as hd

    folder, image = oblique_series
    labels = ball_labels(image)
    _, path = _export(folder, image, labels, tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    files = sorted(folder.glob("*.dcm"), key=lambda p: float(
        np.asarray(pydicom.dcmread(p).ImagePositionPatient) @ image.direction_lps[:, 2]))
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in files]
    pixels = seg.get_pixels_by_source_instance(uids)
    assert np.array_equal(pixels[..., 0] > 0, labels.array == 3) and np.array_equal(pixels[..., 1] > 0,
                                                                                     labels.array == 8)
    description = seg.get_segment_description(1)
    assert description.segmented_property_type == codes.SCT.Liver


def test_organ_terminology_reaches_the_seg(oblique_series, tmp_path):
    folder, image = oblique_series
    _, path = _export(folder, image, ball_labels(image), tmp_path / "seg.dcm",
                      organ_segments({3: "spleen", 8: "kidney_right"}))
    seg = pydicom.dcmread(path)
    kidney = seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0]
    assert (kidney.CodeValue, kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning) == ("64033007", "Right")
    assert seg.SegmentSequence[0].SegmentLabel == "spleen" and dciodvfy_errors(path) == []


def test_dcmqi_liver_seg_imports_on_the_ct_grid(shared_data, tmp_path):
    import SimpleITK as sitk

    folder = dcmqi_ct(shared_data, tmp_path / "ct")
    image = read_volume(folder)
    imported = read_dicom_seg(shared_data / "dicom" / "dcmqi_ct3slice_seg" / "liver.dcm", image)
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "dicom" / "dcmqi_ct3slice_seg" /
                                                          "liver_seg.nrrd")))
    assert [s.name for s in imported.segments] == ["Liver"]
    assert np.array_equal(imported.masks[1], reference > 0) and imported.masks[1].sum() > 100_000
    assert "^T-62000^Liver" in imported.segments[0].terminology
    assert imported.label_image().same_grid(image)


def test_our_seg_of_dcmqi_ct_round_trips(shared_data, tmp_path):
    folder = dcmqi_ct(shared_data, tmp_path / "ct")
    image = read_volume(folder)
    labels = ball_labels(image)
    _, path = _export(folder, image, labels, tmp_path / "seg.dcm")
    assert dciodvfy_errors(path) == []
    assert np.array_equal(read_dicom_seg(path, image).label_image().array, np.select(
        [labels.array == 3, labels.array == 8], [1, 2], 0))


def test_dicom_seg_loads_into_a_slicer_segmentation_node_in_ras(mrml_scene, oblique_series, tmp_path):
    from segforge.mrml.segments import mask_from_segment, segment_ids_by_name

    folder, image = oblique_series
    labels = ball_labels(image)
    _, path = _export(folder, image, labels, tmp_path / "seg.dcm")
    node = load_into_segmentation_node(path, image, scene=mrml_scene)
    ids = segment_ids_by_name(node)
    assert set(ids) == {"liver", "kidney_left"}
    segment = node.GetSegmentation().GetSegment(ids["kidney_left"][0])
    assert "Kidney" in segment.GetTerminology() and np.allclose(segment.GetColor(), (0.2, 0.6, 0.9), atol=0.01)
    for name, value in (("liver", 3), ("kidney_left", 8)):
        assert np.array_equal(mask_from_segment(node, ids[name][0], image).array > 0, labels.array == value)


def test_a_series_with_empty_uids_is_refused(shared_data):
    folder = shared_data / "dicom" / "ts_ct_series_20sl"
    image = read_volume(folder)
    with pytest.raises(InputError, match="(?i)empty or missing StudyInstanceUID.*SeriesInstanceUID.*SOPInstanceUID"):
        read_source_series(folder, image)


def test_a_volume_file_is_refused_as_source(tmp_path, oblique_series):
    _, image = oblique_series
    with pytest.raises(InputError, match="(?i)not a DICOM series.*give the folder of the DICOM series"):
        read_source_series(tmp_path / "ct.nii.gz", image)


def test_a_grid_other_than_the_series_is_refused(oblique_series):
    folder, image = oblique_series
    shifted = Image(image.array, image.spacing, tuple(np.add(image.origin_lps, (0.5, 0, 0))), image.direction_lps)
    with pytest.raises(InputError, match="not on the segmented volume's grid"):
        read_source_series(folder, shifted)
    finer = Image(image.array, (0.35, *image.spacing[1:]), image.origin_lps, image.direction_lps)
    with pytest.raises(InputError, match="pixels are 0.7 x 1.3 mm, the volume's voxels 0.35 x 1.3 mm"):
        read_source_series(folder, finer)
    with pytest.raises(InputError, match="holds 7 slices and the segmented volume 6"):
        read_source_series(folder, image.crop((slice(0, 6), slice(None), slice(None))))


def test_unnamed_labels_and_an_empty_result_are_refused(oblique_series):
    folder, image = oblique_series
    source = read_source_series(folder, image)
    with pytest.raises(InputError, match=r"(?i)label values \[8\] have no segment name"):
        build_segmentation(ball_labels(image), SEGMENTS[:1], source, Algorithm("organ", "m"))
    with pytest.raises(InputError, match="(?i)holds no segmented voxel"):
        build_segmentation(image.with_array(np.zeros(image.array.shape, np.uint8)), SEGMENTS, source,
                           Algorithm("organ", "m"))


def test_names_equal_in_their_first_64_characters_get_distinct_labels(oblique_series, tmp_path):
    """Segment Label is LO (64 characters): two long names once became the same label and the
    same Tracking ID. The Tracking ID (UT) keeps the whole name; the second label is numbered."""
    folder, image = oblique_series
    stem = "x" * 64
    segments = [SegmentInfo(3, stem + "_left", (1, 0, 0)), SegmentInfo(8, stem + "_right", (0, 1, 0))]
    _, path = _export(folder, image, ball_labels(image), tmp_path / "seg.dcm", segments)
    assert dciodvfy_errors(path) == []
    items = pydicom.dcmread(path).SegmentSequence
    assert [item.SegmentLabel for item in items] == [stem, stem[:60] + " (2)"]
    assert [item.TrackingID for item in items] == [s.name for s in segments]


@pytest.mark.parametrize("on_the_image", [True, False], ids=["on the image", "on its own grid"])
def test_a_damaged_seg_is_one_input_error(oblique_series, tmp_path, on_the_image):
    """A SEG cut short (pixel data missing) or a frame naming a segment the file does not
    describe raised ValueError / KeyError from deep inside the reader."""
    folder, image = oblique_series
    _, path = _export(folder, image, ball_labels(image), tmp_path / "seg.dcm")
    reference = image if on_the_image else None
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(InputError, match="(?i)is damaged"):
        read_dicom_seg(cut, reference)
    dataset = pydicom.dcmread(path)
    dataset.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 7
    dataset.save_as(tmp_path / "ref.dcm")
    with pytest.raises(InputError, match="(?i)is damaged. frame 1 refers to segment 7, which the file does not"):
        read_dicom_seg(tmp_path / "ref.dcm", reference)


def test_a_file_that_is_not_a_seg_is_refused(oblique_series):
    folder, _ = oblique_series
    with pytest.raises(InputError, match="(?i)is not a DICOM SEG.*give the segmentation object"):
        read_dicom_seg(sorted(folder.glob("*.dcm"))[0])


DCMQI = shutil.which("segimage2itkimage", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                 os.environ.get("PATH", "")]))


def _world(image: Image, mask: np.ndarray) -> np.ndarray:
    k, j, i = np.nonzero(mask)
    return (image.ijk_to_lps() @ np.stack([i, j, k, np.ones_like(i)]))[:3].T


def _same_places(a: np.ndarray, b: np.ndarray) -> bool:
    """Two sets of LPS points equal within 1 micrometre (each point of one is a point of the other)."""
    from scipy.spatial import cKDTree

    return len(a) == len(b) and len(a) > 0 and cKDTree(b).query(a)[0].max() < 1e-3 \
        and cKDTree(a).query(b)[0].max() < 1e-3


@pytest.mark.skipif(DCMQI is None, reason="dcmqi missing (pip install dcmqi, in the dicom extra)")
def test_dcmqi_reads_our_seg_to_the_same_voxels(oblique_series, tmp_path):
    """dcmqi's converter (QIICR's, in C++ on DCMTK and ITK) puts each segment's voxels where we meant them."""
    import json
    import subprocess

    from segforge.image_io import read_image

    folder, image = oblique_series
    labels = ball_labels(image)
    _, path = _export(folder, image, labels, tmp_path / "seg.dcm")
    out = tmp_path / "dcmqi"
    out.mkdir()
    run = subprocess.run([DCMQI, "--inputDICOM", str(path), "--outputDirectory", str(out), "--outputType", "nrrd"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert [s[0]["SegmentLabel"] for s in meta["segmentAttributes"]] == ["liver", "kidney_left"]
    for number, value in ((1, 3), (2, 8)):
        theirs = read_image(out / f"{number}.nrrd")
        assert _same_places(_world(theirs, theirs.array > 0), _world(image, labels.array == value))


def test_a_wrong_spacing_between_slices_in_the_source_does_not_reach_the_seg(oblique_series, tmp_path):
    """GDCM wrote Spacing Between Slices 1 mm for any series; highdicom copies the source's into
    the SEG and then builds its volume on 1 mm slices. Ours says the grid's, and the import places
    frames by their positions whatever the file says."""
    import highdicom as hd

    folder, image = oblique_series
    assert float(pydicom.dcmread(sorted(folder.glob("*.dcm"))[0]).SpacingBetweenSlices) == pytest.approx(2.9)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for path in sorted(folder.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        dataset.SpacingBetweenSlices = "1"
        dataset.save_as(wrong / path.name)
    labels = ball_labels(image)
    _, path = _export(wrong, image, labels, tmp_path / "seg.dcm")
    volume = hd.seg.segread(path).get_volume(combine_segments=False)
    assert volume.spacing_between_slices == pytest.approx(2.9)
    back = read_dicom_seg(path, image)
    assert np.array_equal(back.masks[1], labels.array == 3) and np.array_equal(back.masks[2], labels.array == 8)
