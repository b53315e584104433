"""``FILE[:LABEL|NAME]``: a segment of a real file as a binary mask on the file's own grid.

Real files: TotalSegmentator's multi-label output (label names in its NIfTI header extension),
the same labels with a ``label_names.json`` beside them, VMTK's level-set mask, and a
``.seg.nrrd`` with two overlapping segments (two layers) written by Slicer's own writer on an
oblique, anisotropic grid.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SAMPLE_DATA, make_image
from segforge.errors import InputError
from segforge.image_io import read_image, write_image
from segforge.label_names import names_from_json, nifti_label_table
from segforge.segment_input import file_segments, read_segment, split_segment_spec

TS_LABELS = SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_seg.nii.gz"
LEVEL_SET = SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta_mask_DERIVED_levelset_lt0.nii.gz"


def test_a_totalsegmentator_label_by_name_or_value():
    labels = read_image(TS_LABELS)
    aorta = read_segment(f"{TS_LABELS}:aorta")
    assert aorta.name == "aorta"
    assert aorta.mask.same_grid(labels) and aorta.mask.array.dtype == np.uint8
    np.testing.assert_array_equal(aorta.mask.array, labels.array == 52)  # "aorta" is class 52 of the total task
    liver = read_segment(TS_LABELS, "5")
    np.testing.assert_array_equal(liver.mask.array, labels.array == 5)
    assert liver.name == "liver"
    assert read_segment(f"{TS_LABELS}:AORTA").mask.array.sum() == aorta.mask.array.sum()  # any case


def test_the_header_extension_names_the_labels():
    table = nifti_label_table(TS_LABELS)
    assert table[1] == "spleen" and table[52] == "aorta" and len(table) == 117


def test_names_from_a_label_names_json_beside_a_plain_label_map(tmp_path):
    """The labels saved without the header extension: the JSON beside them names them."""
    plain = tmp_path / "labels.nii.gz"
    write_image(read_image(TS_LABELS), plain)
    assert nifti_label_table(plain) == {}
    with pytest.raises(InputError, match="no segment 'aorta'"):
        read_segment(plain, "aorta")
    shutil.copy(TS_LABELS.parent / "label_names.json", tmp_path / "label_names.json")
    np.testing.assert_array_equal(read_segment(plain, "aorta").mask.array, read_image(TS_LABELS).array == 52)


def test_names_from_json_forms():
    assert names_from_json({"1": "aorta", "2": "iliac"}) == {1: ("aorta",), 2: ("iliac",)}
    assert names_from_json({"aorta": 1, "iliac": 2}) == {1: ("aorta",), 2: ("iliac",)}
    assert names_from_json({"ct": {"1": "aorta"}, "mr": {"1": "aorta", "2": "vein"}, "x": {"2": "cava"}}) == {
        1: ("aorta",), 2: ("vein", "cava")}
    assert names_from_json(["aorta"]) == {}


def test_an_unknown_name_lists_what_the_file_holds():
    with pytest.raises(InputError) as caught:
        read_segment(TS_LABELS, "aortta")
    message = caught.value.message
    assert "no segment 'aortta'" in message and "52 aorta" in message and "1 spleen" in message
    assert "and 1 more" in message  # 41 labels, 40 listed
    # A class the label table names but no voxel holds is said so.
    with pytest.raises(InputError, match=r"names 'brain' \(label 90\) but no voxel holds it"):
        read_segment(TS_LABELS, "brain")
    with pytest.raises(InputError, match="holds 41 segments.*Name the one to use"):
        read_segment(TS_LABELS)


def test_a_binary_mask_needs_no_selector():
    level_set = read_image(LEVEL_SET)
    segment = read_segment(LEVEL_SET)
    assert segment.mask.same_grid(level_set) and segment.name == "label 1"
    np.testing.assert_array_equal(segment.mask.array, level_set.array > 0)
    with pytest.raises(InputError, match="It holds label 1"):
        read_segment(f"{LEVEL_SET}:2")


def write_two_layer_seg_nrrd(path, headless_slicer):
    """Two overlapping segments on an oblique grid, saved by Slicer's writer (so in two layers)."""
    from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
    from segforge.mrml.storage import save_node

    grid = make_image((10, 12, 14), np.uint8)
    aorta = np.zeros(grid.array.shape, np.uint8)
    aorta[2:6, 2:8, 3:9] = 1
    iliac = np.zeros(grid.array.shape, np.uint8)
    iliac[4:9, 5:10, 6:12] = 1
    node = new_segmentation_node(grid, "Vessels")
    write_label_segments(node, grid.with_array(aorta), [SegmentSpec(1, "Aorta")])
    write_label_segments(node, grid.with_array(iliac), [SegmentSpec(1, "Left iliac")])
    assert node.GetSegmentation().GetNumberOfLayers() == 2
    save_node(node, path)
    return grid, aorta, iliac, node


def test_a_seg_nrrd_segment_by_name_or_id_across_layers(tmp_path, headless_slicer):
    path = tmp_path / "vessels.seg.nrrd"
    grid, aorta, iliac, node = write_two_layer_seg_nrrd(path, headless_slicer)
    assert sitk.ReadImage(str(path)).GetNumberOfComponentsPerPixel() == 2
    for spec, expected in ((f"{path}:Aorta", aorta), (f"{path}:left iliac", iliac)):
        segment = read_segment(spec)
        assert segment.mask.same_grid(grid), "the oblique grid of the file"
        np.testing.assert_array_equal(segment.mask.array, expected)
    iliac_id = node.GetSegmentation().GetSegmentIdBySegmentName("Left iliac")
    np.testing.assert_array_equal(read_segment(path, iliac_id).mask.array, iliac)
    # Both segments have label value 1 (in their own layers): a value is ambiguous.
    with pytest.raises(InputError, match=r"'1' names 2 segments.*\"Left iliac\" \(layer 1, label 1\)"):
        read_segment(path, "1")
    with pytest.raises(InputError, match="holds 2 segments"):
        read_segment(path)
    assert [s.name for s in file_segments(path)] == ["Aorta", "Left iliac"]


def test_digits_naming_one_segment_by_value_and_another_by_name_are_ambiguous(tmp_path, headless_slicer):
    """A segment named "2" at label 1 beside one at label 2: ":2" was taken as the label value
    without a word, the segment the user named "2" never considered."""
    from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
    from segforge.mrml.storage import save_node

    grid = make_image((10, 12, 14), np.uint8)
    labels = np.zeros(grid.array.shape, np.uint8)
    labels[2:5, 2:6, 3:9] = 1
    labels[6:9, 7:10, 6:12] = 2
    node = new_segmentation_node(grid, "Vessels")
    write_label_segments(node, grid.with_array(labels), [SegmentSpec(1, "2"), SegmentSpec(2, "Blob")])
    path = tmp_path / "numbered.seg.nrrd"
    save_node(node, path)
    ids = [node.GetSegmentation().GetSegmentIdBySegmentName(name) for name in ("2", "Blob")]
    with pytest.raises(InputError, match=r"'2' names 2 segments.*Use the segment's ID instead") as error:
        read_segment(path, "2")
    assert all(i in str(error.value) for i in ids)
    np.testing.assert_array_equal(read_segment(path, "Blob").mask.array, labels == 2)
    np.testing.assert_array_equal(read_segment(path, ids[0]).mask.array, labels == 1)


def test_a_plain_nrrd_label_map_by_value(tmp_path):
    labels = make_image((8, 9, 10), np.uint8).with_array(np.zeros((8, 9, 10), np.uint16))
    labels.array[1:4, 2:5, 3:7] = 300
    labels.array[5:7, 1:3, 1:9] = 7
    path = write_image(labels, tmp_path / "labels.nrrd")
    segment = read_segment(f"{path}:300")
    assert segment.mask.same_grid(labels) and segment.name == "label 300"
    np.testing.assert_array_equal(segment.mask.array, labels.array == 300)


def test_grey_images_and_bad_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="does not look like a label map"):
        read_segment(SAMPLE_DATA / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz", "1")
    with pytest.raises(InputError, match="No segment file"):
        read_segment(tmp_path / "missing.nii.gz:aorta")
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(LEVEL_SET.read_bytes()[:2000])
    with pytest.raises(InputError):
        read_segment(cut)
    empty = write_image(make_image((5, 6, 7), np.uint8).with_array(np.zeros((5, 6, 7), np.uint8)),
                        tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="holds no segment"):
        read_segment(empty)
    fractional = write_image(make_image((5, 6, 7), np.float32), tmp_path / "grey.nii.gz")
    with pytest.raises(InputError, match="not a label map"):
        read_segment(fractional)


def test_the_spec_splits_at_the_last_colon_unless_the_path_exists(tmp_path):
    assert split_segment_spec("a/b.seg.nrrd:Aorta") == (tmp_path.__class__("a/b.seg.nrrd"), "Aorta")
    assert split_segment_spec("a/b.nii.gz:52") == (tmp_path.__class__("a/b.nii.gz"), "52")
    assert split_segment_spec("a/b.nii.gz") == (tmp_path.__class__("a/b.nii.gz"), None)
    assert split_segment_spec("C:\\scans\\seg.nii.gz")[1] is None
    odd = tmp_path / "time 10:30.nii.gz"
    write_image(read_image(LEVEL_SET), odd)
    assert split_segment_spec(str(odd)) == (odd, None)
    assert read_segment(f"{odd}:1").mask.array.sum() == read_image(LEVEL_SET).array.astype(bool).sum()
