"""Files in and out of the engine: exact geometry, and bad images refused with a what-to-do."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SAMPLE_DATA, make_image
from segforge.errors import InputError
from segforge.image import LPS_TO_RAS, Image, foreground_box, grow_box, require_3d_volume, set_voxels
from segforge.image_io import read_image, read_volume, to_sitk, write_image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".seg.nrrd"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_file_round_trip_keeps_voxels_and_geometry(tmp_path, suffix, dtype):
    image = make_image((7, 11, 13), dtype)
    back = read_image(write_image(image, tmp_path / f"image{suffix}"))
    assert back.array.dtype == image.array.dtype
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.ijk_to_lps(), image.ijk_to_lps(), atol=1e-5)
    assert back.is_oblique


def test_ijk_to_ras_is_lps_flipped_and_voxel_centres_agree_with_simpleitk():
    image = make_image((5, 6, 7))
    reference = to_sitk(image)
    for ijk in [(0, 0, 0), (6, 5, 4), (3, 1, 2)]:
        lps = reference.TransformIndexToPhysicalPoint(ijk)
        np.testing.assert_allclose(image.ijk_to_lps() @ (*ijk, 1.0), (*lps, 1.0), atol=1e-9)
        np.testing.assert_allclose(image.ijk_to_ras() @ (*ijk, 1.0), LPS_TO_RAS @ (*lps, 1.0), atol=1e-9)
    again = Image.from_ijk_to_ras(image.array, image.ijk_to_ras())
    assert again.same_grid(image, tol=1e-12)


def test_two_d_image_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkInt16), str(path))
    with pytest.raises(InputError) as caught:
        read_image(path)
    assert "2D" in caught.value.what and "whole series" in caught.value.todo


def test_single_slice_volume_loads_but_is_refused_by_workflows(tmp_path):
    image = Image(np.zeros((1, 16, 16), np.int16))
    path = write_image(image, tmp_path / "one.nii.gz")
    assert read_image(path).array.shape == (1, 16, 16)
    with pytest.raises(InputError, match="2D"):
        read_volume(path)
    with pytest.raises(InputError, match="2D"):
        require_3d_volume(image)


def test_four_d_and_vector_images_are_refused(tmp_path):
    frames = [sitk.GetImageFromArray(np.full((4, 5, 6), t, np.int16)) for t in range(3)]
    four_d = sitk.JoinSeries(frames)  # a 4D scalar image: three time points
    assert four_d.GetDimension() == 4
    sitk.WriteImage(four_d, str(tmp_path / "series.nii.gz"))
    with pytest.raises(InputError) as caught:
        read_image(tmp_path / "series.nii.gz")
    assert "4D" in caught.value.what and "time point" in caught.value.todo
    rgb = sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InputError, match="multi-component"):
        read_image(tmp_path / "rgb.nrrd")
    with pytest.raises(InputError, match="4D"):
        Image(np.zeros((2, 3, 4, 5)))


def test_empty_and_non_numeric_arrays_are_refused():
    with pytest.raises(InputError, match="empty"):
        Image(np.zeros((0, 4, 4)))
    with pytest.raises(InputError, match="numbers"):
        Image(np.array([[["a"]]]))


def test_bad_geometry_is_refused():
    with pytest.raises(InputError, match="spacing"):
        Image(np.zeros((2, 2, 2)), (1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="rotation"):
        Image(np.zeros((2, 2, 2)), direction_lps=np.diag([1.0, 2.0, 1.0]))


def test_missing_file_and_unknown_suffix_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="No file"):
        read_image(tmp_path / "nope.nii.gz")
    with pytest.raises(InputError, match="Use one of"):
        write_image(make_image(), tmp_path / "image.png")


# -- DICOM ----------------------------------------------------------------------------

def test_dicom_series_round_trip_keeps_an_oblique_anisotropic_grid(tmp_path):
    from segforge.image_io import write_dicom_series

    image = make_image((6, 10, 12), np.int16)
    files = write_dicom_series(image, tmp_path / "series")
    assert len(files) == 6
    back = read_volume(tmp_path / "series")
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.ijk_to_lps(), image.ijk_to_lps(), atol=1e-6)


def test_dicom_writing_refuses_what_it_would_get_wrong(tmp_path):
    from segforge.image_io import write_dicom_series

    with pytest.raises(InputError, match="integer"):
        write_dicom_series(make_image((3, 4, 5), np.float32), tmp_path / "f")
    mirrored = make_image((3, 4, 5), np.int16)
    mirrored = Image(mirrored.array, mirrored.spacing, mirrored.origin_lps,
                     mirrored.direction_lps @ np.diag([1, 1, -1]))
    with pytest.raises(InputError, match="left-handed"):
        write_dicom_series(mirrored, tmp_path / "m")


def test_real_dicom_series_reads_onto_the_reference_segmentation(tmp_path):
    """A real CT series (JPEG 2000, empty UIDs): the reference labels, saved in another voxel
    order, must fall on tissue in patient space, which only happens if our geometry is right."""
    sample = SAMPLE_DATA / "ts_ct_dicom_series"
    volume = read_volume(sample / "series")
    assert volume.array.shape == (20, 512, 512) and volume.array.dtype == np.int16
    reference = sitk.ReadImage(str(sample / "pred_seg.nii.gz"))
    on_ct = sitk.GetArrayFromImage(sitk.Resample(reference, to_sitk(volume), sitk.Transform(),
                                                 sitk.sitkNearestNeighbor, 0))
    labelled = on_ct > 0
    assert labelled.sum() > 0.9 * (sitk.GetArrayFromImage(reference) > 0).sum()
    air = volume.array < -500
    assert air[labelled].mean() < 0.05  # organs and bone, not air
    flipped = np.flip(labelled, axis=1)  # the same labels with the j axis read the wrong way
    assert air[flipped].mean() > 0.15


def test_single_dicom_file_is_refused_as_2d(tmp_path):
    from segforge.image_io import write_dicom_series

    (first, *_) = write_dicom_series(make_image((3, 8, 8), np.int16), tmp_path / "s")
    with pytest.raises(InputError, match="2D"):
        read_volume(first)


def test_folder_without_dicom_says_so(tmp_path):
    with pytest.raises(InputError, match="No DICOM series"):
        read_image(tmp_path)


def test_a_written_series_says_its_slice_spacing_even_after_a_series_was_read(tmp_path):
    """GDCM wrote Spacing Between Slices 1 mm for every slice once any DICOM series had been read
    in the process (a DICOM SEG made from such a series was then built on 1 mm slices); each
    slice is now written as a volume one slice deep, whose spacing GDCM takes."""
    from segforge.image_io import write_dicom_series

    pydicom = pytest.importorskip("pydicom")
    image = Image(np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5), (0.7, 1.3, 2.9))
    write_dicom_series(image, tmp_path / "first")
    read_image(tmp_path / "first")
    for name in ("first", "second"):
        if name == "second":
            write_dicom_series(image, tmp_path / name)
        spacing = [float(pydicom.dcmread(path).SpacingBetweenSlices) for path in (tmp_path / name).glob("*.dcm")]
        assert spacing == pytest.approx([2.9] * 4), name
    assert read_image(tmp_path / "second").spacing == pytest.approx((0.7, 1.3, 2.9))


def test_set_voxels_is_argwhere():
    rng = np.random.default_rng(3)
    for shape in [(5, 7, 9), (1, 4, 3), (6,), (3, 0, 2)]:
        for array in (rng.random(shape) > 0.6, (rng.random(shape) * 3).astype(np.uint32)):
            assert np.array_equal(set_voxels(array), np.argwhere(array))
            assert set_voxels(array).shape == np.argwhere(array).shape


def test_foreground_box_is_the_smallest_box_of_set_voxels():
    rng = np.random.default_rng(5)
    for shape in [(6, 7, 8), (1, 5, 4), (9,), (4, 6), (3, 0, 2)]:
        for density in (0.0, 0.02, 0.5):
            array = (rng.random(shape) < density).astype(np.uint8)
            found = set_voxels(array)
            box = foreground_box(array)
            if not len(found):
                assert box is None
                continue
            assert box == tuple(slice(int(a), int(b) + 1) for a, b in zip(found.min(axis=0), found.max(axis=0)))
            assert foreground_box(array, 1) == grow_box(box, 1, shape)
