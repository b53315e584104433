"""Bad input files: each is refused with what / why / what to do, never read as wrong voxels.

Every file is written here (SimpleITK, pydicom, gzip or raw bytes) and then damaged the way
copies, downloads and exports damage files: cut short, corrupted, padded, mislabelled.
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import REPO, SAMPLE_DATA, SHARED_DATA, make_image
from segforge.errors import InputError
from segforge.image import Image
from segforge.image_io import read_image, read_volume, write_dicom_series, write_image


def refused(path, *words: str, **options) -> InputError:
    """The InputError reading ``path`` raises, with all three parts, ``words`` in its message."""
    with pytest.raises(InputError) as caught:
        read_image(path, **options)
    error = caught.value
    assert error.what and error.why and error.todo, error.to_dict()
    for word in words:
        assert word.lower() in error.message.lower(), error.message
    return error


def written(tmp_path: Path, name: str, shape=(20, 32, 32), dtype=np.int16, compress=False) -> Path:
    return write_image(make_image(shape, dtype), tmp_path / name, compress=compress)


def cut(path: Path, keep: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep if keep >= 0 else len(data) + keep])
    return path


# -- NIfTI -------------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_nii_gz_cut_short_is_refused(tmp_path, fraction):
    path = written(tmp_path, "ct.nii.gz", compress=True)
    cut(path, int(path.stat().st_size * fraction))
    error = refused(path, "ct.nii.gz", "incomplete", "stops short", "again")
    assert "re-" not in error.todo or "copy" in error.todo


def test_nii_gz_missing_only_its_trailer_is_refused(tmp_path):
    path = cut(written(tmp_path, "ct.nii.gz", compress=True), -4)  # CRC kept, length trailer gone
    refused(path, "incomplete")


def test_nii_gz_with_a_wrong_checksum_is_refused(tmp_path):
    path = written(tmp_path, "ct.nii.gz", compress=True)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    path.write_bytes(bytes(data))
    refused(path, "damaged", "checksum")


def test_nii_gz_with_garbage_appended_is_refused(tmp_path):
    path = written(tmp_path, "ct.nii.gz", compress=True)
    path.write_bytes(path.read_bytes() + b"this is not gzip data" * 10)
    refused(path, "damaged", "210 bytes", "not part of the compressed image")


def test_nii_gz_whose_stream_is_whole_but_too_short_is_refused(tmp_path):
    plain = written(tmp_path, "ct.nii")
    data = plain.read_bytes()
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(data[:len(data) - 1000]))  # a valid gzip of too few bytes
    refused(path, "incomplete", f"{len(data) - 1000:,} of the {len(data):,} bytes")


def test_uncompressed_nii_shorter_than_its_header_is_refused(tmp_path):
    path = written(tmp_path, "ct.nii")
    full = path.stat().st_size
    cut(path, full * 3 // 4)
    refused(path, "incomplete", f"{full * 3 // 4:,} of the {full:,} bytes its header promises", "copy")


def test_nifti_header_claiming_huge_dims_is_refused_before_reading(tmp_path):
    path = written(tmp_path, "huge.nii", shape=(4, 5, 6))
    data = bytearray(path.read_bytes())
    data[42:48] = struct.pack("<3h", 30000, 30000, 30000)
    path.write_bytes(bytes(data))
    refused(path, "incomplete", f"{352 + 30000 ** 3 * 2:,} bytes")


# -- NRRD and MetaImage ------------------------------------------------------------------

def test_raw_nrrd_short_is_refused(tmp_path):
    path = cut(written(tmp_path, "ct.nrrd"), -500)
    refused(path, "ct.nrrd", "incomplete", f"of the {20 * 32 * 32 * 2:,} bytes of voxels")


def test_gzip_nrrd_cut_short_is_refused(tmp_path):
    path = written(tmp_path, "ct.nrrd", compress=True)
    refused(cut(path, path.stat().st_size // 2), "incomplete", "stops short")


def test_gzip_nrrd_whose_stream_is_whole_but_too_short_is_refused(tmp_path):
    header = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 8\nspacings: 1 1 1\nencoding: gzip\n\n"
    path = tmp_path / "short.nrrd"
    path.write_bytes(header + gzip.compress(bytes(8 * 8 * 7 * 2)))
    refused(path, "incomplete", "896 of the 1,024 bytes of voxels (decompressed)")


def test_detached_nrrd_without_its_data_file_is_refused(tmp_path):
    path = tmp_path / "ct.nhdr"
    path.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 8\nencoding: raw\ndata file: ct.raw\n\n")
    refused(path, "ct.raw", "missing", "together")


@pytest.mark.parametrize("compress", [False, True])
def test_mha_short_is_refused(tmp_path, compress):
    path = written(tmp_path, "ct.mha", compress=compress)
    refused(cut(path, path.stat().st_size - 300), "ct.mha", "incomplete")


# -- every other data layout NRRD, MetaImage and Analyze allow --------------------------------
# Each of these was read unchecked before: the reader filled what was missing with zeros or
# with header bytes (MetaImage HeaderSize, .img.gz), or refused in its own jargon, or printed
# a dump on stderr. Each file is left exactly as it was.

VOXELS = (np.arange(4 * 5 * 6) % 97 - 40).astype("<i2").reshape(4, 5, 6)  # k, j, i
NRRD_HEAD = "NRRD0004\ntype: short\ndimension: 3\nsizes: 6 5 4\nendian: little\nspacings: 0.5 0.7 2\n"
META_HEAD = "ObjectType = Image\nNDims = 3\nDimSize = 6 5 4\nElementType = MET_SHORT\nElementSpacing = 0.5 0.7 2\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def refused_unchanged(path: Path, *words: str) -> InputError:
    """``refused``, and every file in the folder left as it was (nothing written, nothing removed)."""
    before = snapshot(path.parent)
    error = refused(path, *words)
    assert snapshot(path.parent) == before
    return error


def reads_exactly(path: Path) -> None:
    np.testing.assert_array_equal(read_image(path).array, VOXELS)


def slices(tmp_path: Path, pattern: str, short_last: int = 0, compress=None) -> list[str]:
    """The four k-slices of VOXELS as files named ``pattern % k``; the last one ``short_last`` bytes short."""
    names = []
    for k in range(4):
        data = VOXELS[k].tobytes()
        data = data[:len(data) - short_last] if k == 3 else data
        (tmp_path / (pattern % k)).write_bytes(compress(data) if compress else data)
        names.append(pattern % k)
    return names


def test_ascii_nrrd_with_too_few_values_is_refused(tmp_path):
    path = tmp_path / "ct.nrrd"
    path.write_text(NRRD_HEAD + "encoding: ascii\n\n" + " ".join(map(str, VOXELS.ravel()[:-7])) + "\n")
    refused_unchanged(path, "ct.nrrd", "incomplete", "113 values", "promise 120")


def test_ascii_nrrd_with_more_values_than_its_sizes_is_refused(tmp_path):
    """NrrdIO reads the first 120 and ignores the rest: the sizes are wrong, so the image would be."""
    path = tmp_path / "ct.nrrd"
    path.write_text(NRRD_HEAD + "encoding: ascii\n\n" + " ".join(map(str, VOXELS.ravel())) + "\n1 2 3\n")
    refused_unchanged(path, "inconsistent", "123 values", "sizes are wrong")


def test_ascii_nrrd_with_a_word_among_its_numbers_names_the_value(tmp_path):
    values = [str(v) for v in VOXELS.ravel()]
    values[100] = "n/a"
    path = tmp_path / "ct.nrrd"
    path.write_text(NRRD_HEAD + "encoding: ascii\n\n" + "\n".join(values) + "\n")
    refused_unchanged(path, "damaged", "value 101 is 'n/a', not a number")


def test_hex_nrrd_short_is_refused(tmp_path):
    path = tmp_path / "ct.nrrd"
    path.write_text(NRRD_HEAD + "encoding: hex\n\n" + VOXELS.tobytes()[:-10].hex() + "\n")
    refused_unchanged(path, "incomplete", "230 of the 240 bytes of voxels (written as hex digits)")


@pytest.mark.parametrize("whole", [True, False])
def test_bzip2_nrrd_is_refused_by_name_whole_or_not(tmp_path, whole):
    """ITK's NrrdIO has no bzip2: said plainly, with how to convert it, whatever the stream holds."""
    import bz2

    data = VOXELS.tobytes() if whole else VOXELS.tobytes()[:-50]
    path = tmp_path / "ct.nrrd"
    path.write_bytes((NRRD_HEAD + "encoding: bzip2\n\n").encode() + bz2.compress(data))
    error = refused_unchanged(path, "ct.nrrd", "bzip2", "no bzip2 decoder")
    assert "gzip or raw encoding" in error.todo and "unu save" in error.todo


def test_nrrd_line_skip_is_counted(tmp_path):
    whole = tmp_path / "whole.nrrd"
    whole.write_bytes((NRRD_HEAD + "encoding: raw\nline skip: 2\n\n").encode() + b"# one\n# two\n" + VOXELS.tobytes())
    reads_exactly(whole)
    short = tmp_path / "short.nrrd"
    short.write_bytes(whole.read_bytes()[:-20])
    refused_unchanged(short, "incomplete", "220 of the 240 bytes of voxels")


@pytest.mark.parametrize("form", ["LIST", "format"])
def test_detached_nrrd_over_several_files_names_the_short_one(tmp_path, form):
    names = slices(tmp_path, "slice%d.raw", short_last=10)
    data_file = "LIST\n" + "\n".join(names) + "\n" if form == "LIST" else "slice%d.raw 0 3 1\n\n"
    path = tmp_path / "ct.nhdr"
    path.write_text(NRRD_HEAD + "encoding: raw\ndata file: " + data_file)
    error = refused_unchanged(path, "slice3.raw", "incomplete", "50 of the 60 bytes", "30 values a file")
    assert str(tmp_path / "slice3.raw") in error.what


@pytest.mark.parametrize("form", ["LIST", "format"])
def test_detached_nrrd_over_several_gzip_files_reads_whole_and_refuses_short(tmp_path, form):
    import gzip as gz

    names = slices(tmp_path, "s%03d.raw.gz", compress=gz.compress)
    data_file = "LIST\n" + "\n".join(names) + "\n" if form == "LIST" else "s%03d.raw.gz 0 3 1\n\n"
    path = tmp_path / "ct.nhdr"
    path.write_text(NRRD_HEAD + "encoding: gzip\ndata file: " + data_file)
    reads_exactly(path)
    slices(tmp_path, "s%03d.raw.gz", short_last=4, compress=gz.compress)
    refused_unchanged(path, "s003.raw.gz", "56 of the 60 bytes of voxels (30 values a file) (decompressed)")


def test_detached_nrrd_format_naming_more_files_than_exist_says_which(tmp_path):
    slices(tmp_path, "slice%d.raw")
    path = tmp_path / "ct.nhdr"
    path.write_text(NRRD_HEAD + "encoding: raw\ndata file: slice%d.raw 0 5 1\n\n")
    refused_unchanged(path, "slice4.raw and 1 more data files are missing", "names 6 data files")


def test_meta_header_size_of_local_data_is_counted(tmp_path):
    """With LOCAL data, HeaderSize is where the data begin, from the file's start (MetaIO's rule):
    a file short by some bytes, or a HeaderSize inside the text header, was read with wrong
    bytes as voxels, silently."""
    head = (META_HEAD + "HeaderSize = 400\nElementDataFile = LOCAL\n").encode()
    whole = tmp_path / "whole.mha"
    whole.write_bytes(head + bytes(400 - len(head)) + VOXELS.tobytes())
    reads_exactly(whole)
    short = tmp_path / "short.mha"
    short.write_bytes(whole.read_bytes()[:-30])
    refused_unchanged(short, "short.mha", "incomplete", "210 of the 240 bytes of voxels")
    inside = tmp_path / "inside.mha"
    inside.write_bytes((META_HEAD + "HeaderSize = 40\nElementDataFile = LOCAL\n").encode() + VOXELS.tobytes())
    refused_unchanged(inside, "inside.mha is damaged", "HeaderSize (40) puts the data inside its own text header")


@pytest.mark.parametrize("header_size", ["100", "-1"])
def test_meta_header_size_of_a_detached_data_file(tmp_path, header_size):
    """-1: the data are the file's last bytes. A data file shorter than the data is refused
    (one cut at its start is indistinguishable from one with a longer header: no reader can tell)."""
    (tmp_path / "ct.raw").write_bytes(bytes(100) + VOXELS.tobytes())
    path = tmp_path / "ct.mhd"
    path.write_text(META_HEAD + f"HeaderSize = {header_size}\nElementDataFile = ct.raw\n")
    reads_exactly(path)
    keep = 310 if header_size == "100" else 200
    (tmp_path / "ct.raw").write_bytes((bytes(100) + VOXELS.tobytes())[:keep])
    refused_unchanged(path, "ct.raw", "incomplete", f"{keep - 100 if header_size == '100' else keep} of the 240 bytes")


@pytest.mark.parametrize("form", ["LIST", "LIST 2D", "format"])
def test_meta_data_over_several_files_names_the_short_one(tmp_path, form):
    """MetaIO said 'No such file or directory' (and printed a dump on stderr) for a short slice file."""
    names = slices(tmp_path, "slice%d.raw")
    data_file = (f"{form}\n" + "\n".join(names) + "\n") if form.startswith("LIST") else "slice%d.raw 0 3 1\n"
    path = tmp_path / "ct.mhd"
    path.write_text(META_HEAD + "ElementDataFile = " + data_file)
    reads_exactly(path)
    slices(tmp_path, "slice%d.raw", short_last=10)
    refused_unchanged(path, "slice3.raw", "incomplete", "50 of the 60 bytes")


def analyze_pair(tmp_path: Path, image_bytes: bytes, gz: bool) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(VOXELS), str(tmp_path / "ct.hdr"))
    (tmp_path / "ct.img").unlink()
    (tmp_path / ("ct.img.gz" if gz else "ct.img")).write_bytes(gzip.compress(image_bytes) if gz else image_bytes)
    return tmp_path / "ct.hdr"


@pytest.mark.parametrize("given", ["ct.hdr", "ct.img.gz"])
def test_gzipped_analyze_pair_reads_whole_and_refuses_short(tmp_path, given):
    """A .hdr with a .img.gz short by 40 bytes was read with zeros in their place."""
    analyze_pair(tmp_path, VOXELS.tobytes(), gz=True)
    reads_exactly(tmp_path / given)
    analyze_pair(tmp_path, VOXELS.tobytes()[:-40], gz=True)
    refused_unchanged(tmp_path / given, "ct.img.gz", "incomplete", "200 of the 240 bytes (decompressed)")


def test_gzipped_analyze_image_cut_short_is_refused(tmp_path):
    header = analyze_pair(tmp_path, VOXELS.tobytes(), gz=True)
    cut(tmp_path / "ct.img.gz", -30)
    refused_unchanged(header, "ct.img.gz", "stops short")


def test_analyze_image_given_itself_is_checked_against_its_header(tmp_path):
    analyze_pair(tmp_path, VOXELS.tobytes()[:-40], gz=False)
    refused_unchanged(tmp_path / "ct.img", "ct.img", "200 of the 240 bytes")


def test_analyze_half_without_its_other_half_is_refused(tmp_path):
    header = analyze_pair(tmp_path, VOXELS.tobytes(), gz=False)
    (tmp_path / "ct.img").unlink()
    refused_unchanged(header, "ct.img is missing", "together")
    (tmp_path / "lone.img").write_bytes(VOXELS.tobytes())
    refused_unchanged(tmp_path / "lone.img", "lone.hdr is missing")


def test_analyze_pair_whose_name_has_dots_finds_its_image(tmp_path):
    """'ct.v2.hdr' pairs with 'ct.v2.img', not 'ct.img'."""
    header = analyze_pair(tmp_path, VOXELS.tobytes(), gz=False)
    for path in (header, tmp_path / "ct.img"):
        path.rename(tmp_path / path.name.replace("ct.", "ct.v2."))
    reads_exactly(tmp_path / "ct.v2.hdr")


@pytest.mark.parametrize("header, words", [
    (NRRD_HEAD.replace("sizes: 6 5 4", "sizes: 6 five 4") + "encoding: raw\n\n", "sizes field (6 five 4)"),
    (NRRD_HEAD.replace("sizes: 6 5 4", "sizes: 6 -5 4") + "encoding: raw\n\n", "whole numbers of at least 1"),
    (NRRD_HEAD + "encoding: raw\ndata file: LIST\n", "LIST, but no file names follow"),
    (NRRD_HEAD + "encoding: raw\ndata file: s%d%d.raw 0 3 1\n\n", "not a valid file name pattern"),
    (NRRD_HEAD + "encoding: raw\ndata file: s%d.raw 0 999999999 1\n\n", "names 1,000,000,000 files"),
    (NRRD_HEAD + "encoding: raw\nbyte skip: lots\n\n", "byte skip field (lots)"),
    (NRRD_HEAD.replace("type: short", "type: block") + "encoding: raw\n\n", "voxel type 'block'"),
    (NRRD_HEAD + "encoding: zstd\n\n", "encoding 'zstd' is not a NRRD data encoding"),
    (NRRD_HEAD.replace("spacings: 0.5 0.7 2", "spacings: 0.5 x 2") + "encoding: raw\n\n", "malformed"),
], ids=["sizes-word", "sizes-negative", "empty-list", "bad-format", "huge-format", "byte-skip-word",
        "block-type", "unknown-encoding", "spacing-word"])
def test_nrrd_header_fields_that_make_no_sense_are_refused_by_name(tmp_path, header, words):
    path = tmp_path / "ct.nhdr" if "data file" in header else tmp_path / "ct.nrrd"
    path.write_bytes(header.encode() + (b"" if "data file" in header else VOXELS.tobytes()))
    refused_unchanged(path, words)


@pytest.mark.parametrize("name, head, words", [
    ("ct.mha", META_HEAD + "HeaderSize = lots\nElementDataFile = LOCAL\n", "HeaderSize field (lots)"),
    ("ct.mhd", META_HEAD + "ElementDataFile = LIST\n", "LIST, but no file names follow"),
    ("ct.mha", META_HEAD.replace("MET_SHORT", "MET_STRING") + "ElementDataFile = LOCAL\n",
     "ElementType 'MET_STRING' is not one SegForge reads"),
], ids=["header-size-word", "empty-list", "string-type"])
def test_meta_header_fields_that_make_no_sense_are_refused_by_name(tmp_path, name, head, words):
    path = tmp_path / name
    path.write_bytes(head.encode() + (VOXELS.tobytes() if name.endswith(".mha") else b""))
    refused_unchanged(path, words)


@pytest.mark.parametrize("name, field", [
    ("zero.nrrd", "spacings: 0.5 0 2"),
    ("infinite.nrrd", "spacings: 0.5 inf 2"),
    ("collinear.nrrd", "space: left-posterior-superior\nspace directions: (1,0,0) (2,0,0) (0,0,1)"),
    ("flat.nrrd", "space: left-posterior-superior\nspace directions: (1,0,0) (0,0,0) (0,0,1)"),
    ("nan.nrrd", "space: left-posterior-superior\nspace directions: (1,0,0) (0,nan,0) (0,0,1)"),
    ("zero.mha", "ElementSpacing = 0.5 0 2"),
    ("collinear.mha", "TransformMatrix = 1 0 0 1 0 0 0 0 1"),
])
def test_voxel_geometry_no_reader_can_use_is_refused_naming_the_field(tmp_path, name, field):
    """ITK refused these in its own words ("Bad direction, determinant is 0 ... 0 0 1",
    "Refusing to change spacing"), after a warning that 1 mm would be assumed."""
    path = tmp_path / name
    if name.endswith(".nrrd"):
        head = NRRD_HEAD.replace("spacings: 0.5 0.7 2\n", "") + field + "\nencoding: raw\n\n"
    else:
        head = META_HEAD.replace("ElementSpacing = 0.5 0.7 2\n", "") + field + "\nElementDataFile = LOCAL\n"
    path.write_bytes(head.encode() + VOXELS.tobytes())
    error = refused_unchanged(path, name, "no usable voxel geometry", field.split("\n")[-1].split(" =")[0]
                              .split(":")[0])
    assert "fix the spacing and directions" in error.todo


def test_an_unknown_nrrd_spacing_warns_and_a_negative_one_is_a_flip(tmp_path, caplog):
    unknown = tmp_path / "unknown.nrrd"
    unknown.write_bytes((NRRD_HEAD.replace("0.7", "nan") + "encoding: raw\n\n").encode() + VOXELS.tobytes())
    flipped = tmp_path / "flipped.nrrd"
    flipped.write_bytes((NRRD_HEAD.replace("0.7", "-0.7") + "encoding: raw\n\n").encode() + VOXELS.tobytes())
    with caplog.at_level(logging.WARNING):
        assert read_image(unknown).spacing == (0.5, 1.0, 2.0)
        assert "unknown.nrrd" in caplog.text and "1 mm is assumed" in caplog.text
        caplog.clear()
        image = read_image(flipped)
    assert image.spacing == (0.5, 0.7, 2.0) and image.direction_lps[1, 1] == -1
    assert not caplog.records


def test_the_readers_own_refusal_is_its_sentence_not_its_last_line():
    """ITK's message ends with a matrix row ('0 0 1'); the person reads the sentence."""
    from segforge.image_io import native_reason

    itk = RuntimeError("Exception thrown in SimpleITK ImageFileReader_Execute: /x/itkImageBase.hxx:145:\n"
                       "ITK ERROR: Image(0x55e88ef55580): Bad direction, determinant is 0. Refusing to change "
                       "direction from 1 0 0\n0 1 0\n0 0 1\n to 1 1 0\n0 0 0\n0 0 1\n")
    assert native_reason(itk).startswith("Bad direction, determinant is 0")
    teem = RuntimeError("Exception thrown: /x/itkNrrdImageIO.cxx:410:\nitk::ERROR: NrrdImageIO(0x5): Error reading "
                        "a.nrrd:\n[nrrd] nrrdLoad: trouble reading \"a.nrrd\"\n[nrrd] _nrrdFieldCheck_spacings: "
                        "axis 1 spacing (0) invalid\n")
    assert native_reason(teem) == "axis 1 spacing (0) invalid"


# -- not a volume at all -------------------------------------------------------------------

def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.touch()
    refused(path, "empty.nii.gz", "empty", "0 bytes")


@pytest.mark.parametrize("name, kind", [("notes.nii", "NIfTI"), ("notes.nrrd", "NRRD"), ("notes.mha", "MetaImage")])
def test_text_file_with_an_image_suffix_is_refused(tmp_path, name, kind):
    path = tmp_path / name
    path.write_text("Patient notes, not an image.\n" * 40)
    refused(path, name, f"not start with a {kind} header")


def test_text_file_named_nii_gz_is_refused(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("Patient notes, not an image.\n" * 40)
    refused(path, "notes.nii.gz", "NIfTI header")


def test_folder_named_like_a_volume_is_refused(tmp_path):
    (tmp_path / "ct.nii.gz").mkdir()
    refused(tmp_path / "ct.nii.gz", "is a folder, not a file", "volume file itself")


def test_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    """Opening a FIFO would block until something writes into it: refused from its type alone."""
    pipe = tmp_path / "ct.nii.gz"
    os.mkfifo(pipe)
    refused(pipe, "not a regular file", "save the volume to a file")


def test_device_is_refused(tmp_path):
    """/dev/zero would be read forever (its size says 0, its data never ends)."""
    link = tmp_path / "zeros.nii"
    link.symlink_to("/dev/zero")
    refused(link, "not a regular file", "named pipe, a socket or a device")


# -- shapes the engine does not take (the messages of test_image_io stay) -------------------

def test_two_d_image_is_refused(tmp_path):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkInt16), str(path))
    assert "2D" in refused(path, "whole series").what


def test_four_d_image_is_refused(tmp_path):
    path = tmp_path / "series.nrrd"
    sitk.WriteImage(sitk.JoinSeries([sitk.Image(6, 5, 4, sitk.sitkInt16)] * 3), str(path))
    assert "4D" in refused(path, "time point").what


def test_vector_image_is_refused(tmp_path):
    path = tmp_path / "rgb.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True), str(path))
    refused(path, "multi-component", "Vector to Scalar")


@pytest.mark.parametrize("name", ["nan.nii.gz", "nan.nrrd"])
def test_nan_filled_volume_still_reads(tmp_path, name):
    """Reads without a crash. NRRD keeps the NaNs; ITK's NIfTI reader turns them into 0 (its
    behaviour, not ours: the file holds NaN)."""
    path = write_image(Image(np.full((4, 5, 6), np.nan, np.float32)), tmp_path / name)
    array = read_volume(path).array
    assert array.shape == (4, 5, 6)
    assert np.isnan(array).all() if name.endswith(".nrrd") else (np.isnan(array) | (array == 0)).all()


# -- spacing --------------------------------------------------------------------------------

def test_zero_spacing_in_a_nifti_header_warns_naming_the_assumption(tmp_path, caplog):
    path = written(tmp_path, "flat.nii")
    data = bytearray(path.read_bytes())
    data[80:92] = struct.pack("<3f", 0.0, 0.0, 0.0)  # pixdim[1..3]
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        image = read_image(path)
    assert image.spacing == (1.0, 1.0, 1.0)
    assert "flat.nii" in caplog.text and "1 mm is assumed" in caplog.text


def test_missing_spacing_in_an_nrrd_header_warns(tmp_path, caplog):
    path = tmp_path / "bare.nrrd"
    path.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n\n" + bytes(64))
    with caplog.at_level(logging.WARNING):
        assert read_image(path).spacing == (1.0, 1.0, 1.0)
    assert "no voxel spacing; 1 mm is assumed" in caplog.text


# -- DICOM series ---------------------------------------------------------------------------

@pytest.fixture
def series(tmp_path) -> tuple[Image, list[Path]]:
    image = make_image((6, 10, 12), np.int16, spacing=(0.7, 0.8, 2.5))
    return image, write_dicom_series(image, tmp_path / "series")


def test_dicom_series_with_a_missing_slice_is_refused_with_the_positions(series):
    image, files = series
    files[3].unlink()
    error = refused(files[0].parent, "gap", "2.5 mm apart", "slice_0003.dcm", "slice_0005.dcm", "allow_gaps")
    assert "missing" in error.what


def test_dicom_gap_can_be_accepted_and_keeps_every_slice_in_place(series, caplog):
    image, files = series
    files[3].unlink()
    with caplog.at_level(logging.WARNING):
        back = read_volume(files[0].parent, allow_gaps=True)
    assert "filled" in caplog.text
    np.testing.assert_allclose(back.ijk_to_lps(), image.ijk_to_lps(), atol=1e-4)
    np.testing.assert_array_equal(back.array[[0, 1, 2, 4, 5]], image.array[[0, 1, 2, 4, 5]])
    assert (back.array[3] == image.array.min()).all() or (back.array[3] == back.array.min()).all()


def test_dicom_series_with_a_damaged_slice_names_the_file(series):
    _, files = series
    cut(files[2], files[2].stat().st_size // 2)
    refused(files[0].parent, "slice_0003.dcm", "damaged", "copy the series again")


def without_preamble(files: list[Path]) -> list[Path]:
    """The slices rewritten as bare data sets (no 128-byte preamble, no 'DICM', no file meta),
    as old scanners and some exports write them; named without a suffix, like IM0001."""
    pydicom = pytest.importorskip("pydicom")
    bare = []
    for path in files:
        data = pydicom.dcmread(path)
        data.file_meta, data.preamble = pydicom.dataset.FileMetaDataset(), None
        target = path.with_suffix("")
        pydicom.dcmwrite(target, data, enforce_file_format=False, little_endian=True, implicit_vr=True)
        path.unlink()
        bare.append(target)
    return bare


@pytest.mark.parametrize("which", [2, 5])
@pytest.mark.parametrize("keep", [0.5, 60])
def test_a_damaged_slice_without_the_dicm_mark_is_named(series, which, keep):
    """GDCM leaves such a file out; a last slice left out shortened the volume silently (5 of 6
    slices, exit 0), a middle one was reported as a gap without saying which file."""
    image, files = series
    bare = without_preamble(files)
    assert read_volume(bare[0].parent).array.shape == image.array.shape
    data = bare[which].read_bytes()
    cut(bare[which], int(len(data) * keep) if keep < 1 else keep)
    before = snapshot(bare[0].parent)
    error = refused(bare[0].parent, bare[which].name, "damaged", "starts as a DICOM file", "would miss a slice")
    assert str(bare[which]) in error.what and snapshot(bare[0].parent) == before


@pytest.mark.parametrize("content", [b"", b"garbage, not DICOM" * 3])
def test_a_slice_named_like_the_others_that_is_not_dicom_is_named(series, content):
    """An empty or overwritten last slice (slice_0006.dcm) has no mark to go by: its name does."""
    _, files = series
    files[-1].write_bytes(content)
    refused(files[0].parent, "slice_0006.dcm is damaged", "empty" if not content else "named like the slices")


def test_notes_beside_a_series_are_not_taken_for_slices(series):
    image, files = series
    (files[0].parent / "README.txt").write_text("Exported from PACS on Monday.\n")
    (files[0].parent / "notes").write_bytes(b"\x00\x01 binary notes")
    assert read_volume(files[0].parent).array.shape == image.array.shape


def test_folder_with_two_dicom_series_lists_them_and_one_can_be_chosen(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        for path in write_dicom_series(make_image((3, 8, 8), np.int16, seed=seed), tmp_path / name,
                                       description=f"series {name}"):
            shutil.move(path, folder / f"{name}_{path.name}")
    error = refused(folder, "2 DICOM series", "series a", "series b", "3 files", "own folder")
    uid = error.why.split("it holds ")[1].split(" (")[0]
    assert read_image(folder, series_uid=uid).array.shape == (3, 8, 8)


def test_dicom_series_with_mixed_orientation_is_refused(series):
    pydicom = pytest.importorskip("pydicom")
    _, files = series
    data = pydicom.dcmread(files[4])
    data.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # a sagittal slice among oblique ones
    data.save_as(files[4])
    refused(files[0].parent, "orientation", "slice_0005.dcm", "one series")


def test_dicom_series_without_pixel_spacing_warns(series, caplog):
    pydicom = pytest.importorskip("pydicom")
    _, files = series
    for path in files:
        data = pydicom.dcmread(path)
        del data.PixelSpacing
        data.save_as(path)
    with caplog.at_level(logging.WARNING):
        read_volume(files[0].parent)
    assert "no Pixel Spacing" in caplog.text and "1 mm is assumed" in caplog.text


def test_slicer_volume_loading_checks_the_file_too(tmp_path, mrml_scene):
    from segforge.mrml import load_volume

    path = written(tmp_path, "ct.nii.gz", compress=True)
    assert load_volume(path, scene=mrml_scene) is not None
    with pytest.raises(InputError, match="incomplete"):
        load_volume(cut(path, path.stat().st_size // 2), scene=mrml_scene)


# -- no false alarms --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["image.nii.gz", "image.nii", "image.nrrd", "image.seg.nrrd", "image.mha",
                                  "image.mhd"])
@pytest.mark.parametrize("compress", [False, True])
def test_whole_files_read_without_warnings(tmp_path, caplog, name, compress):
    image = make_image((5, 7, 9), np.float32)
    with caplog.at_level(logging.WARNING):
        back = read_image(write_image(image, tmp_path / name, compress=compress))
    np.testing.assert_array_equal(back.array, image.array)
    assert not caplog.records


def test_multi_member_gzip_and_zero_padding_are_accepted(tmp_path):
    data = written(tmp_path, "ct.nii").read_bytes()
    path = tmp_path / "pieces.nii.gz"
    path.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]) + bytes(16))
    assert read_image(path).array.shape == (20, 32, 32)


@pytest.mark.parametrize("path", sorted(p.relative_to(SAMPLE_DATA).as_posix() for p in SAMPLE_DATA.rglob("*")
                                         if p.name.endswith((".nii.gz", ".mha")) or p.name == "series"))
def test_sample_data_reads_without_warnings(caplog, path):
    with caplog.at_level(logging.WARNING):
        assert read_image(SAMPLE_DATA / path).array.size > 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "segforge" in r.name]


def test_shared_uncompressed_ct_series_reads(tmp_path):
    """Three real GE CT slices; their folder also holds a DICOM SEG, a second series, refused by name."""
    folder = SHARED_DATA / "dicom" / "dcmqi_ct3slice_seg"
    if not folder.is_dir():
        pytest.skip("the shared data are not beside this checkout")
    refused(folder, "2 DICOM series", "Liver Segmentation", "3 files")
    for path in folder.glob("ct-3slice_*.dcm"):
        shutil.copy(path, tmp_path / path.name)
    assert read_volume(tmp_path).array.shape == (3, 512, 512)


def test_the_cli_reads_a_gapped_series_only_when_told_and_picks_a_series(series, tmp_path):
    """segforge organ on a DICOM folder: a gap is refused naming --allow-gaps, then read with it;
    a folder of two series names --series, then reads the one given."""
    import subprocess
    import sys

    from conftest import REPO

    def organ(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "segforge.cli.main", "organ", *args], capture_output=True,
                              encoding="utf-8", errors="replace", env=dict(os.environ, PYTHONPATH=str(REPO)),
                              timeout=300)

    _, files = series
    files[3].unlink()
    refusal = organ(str(files[0].parent), "--out", str(tmp_path / "refused"))
    assert refusal.returncode == 1 and "--allow-gaps" in refusal.stderr and "Traceback" not in refusal.stderr
    assert not (tmp_path / "refused").exists()
    accepted = organ(str(files[0].parent), "--out", str(tmp_path / "gapped"), "--allow-gaps")
    assert accepted.returncode == 0, accepted.stderr
    assert "filled" in accepted.stderr and (tmp_path / "gapped" / "organs.seg.nrrd").is_file()
    # ITK's series reader printed its own dump on stderr ("WARNING: In .../itkImageSeriesReader.hxx,
    # line 502 ... Non uniform sampling or missing slices detected") beside our warning
    assert "WARNING: In" not in accepted.stderr and "(0x" not in accepted.stderr, accepted.stderr

    folder = tmp_path / "two"
    folder.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        for path in write_dicom_series(make_image((3, 8, 8), np.int16, seed=seed), tmp_path / f"s{name}",
                                       description=f"series {name}"):
            shutil.move(path, folder / f"{name}_{path.name}")
    two = organ(str(folder), "--out", str(tmp_path / "two_out"))
    assert two.returncode == 1 and "--series UID" in two.stderr
    uid = two.stderr.split("it holds ")[1].split(" (")[0]
    chosen = organ(str(folder), "--out", str(tmp_path / "one_out"), "--series", uid)
    assert chosen.returncode == 0, chosen.stderr


# -- hostile tries, second round ---------------------------------------------------------------

def test_a_link_that_loops_is_not_called_missing(tmp_path):
    loop = tmp_path / "ct.nii.gz"
    loop.symlink_to(loop)
    error = refused(loop, "symbolic link that leads to nothing", "loops")
    assert "does not exist" not in error.message


def test_a_slice_that_is_a_broken_link_is_named(series):
    """A series copied as links whose targets are gone: GDCM skipped the link, so a first or last
    slice went missing silently."""
    _, files = series
    files[-1].unlink()
    files[-1].symlink_to(files[-1].parent / "gone" / files[-1].name)
    refused(files[0].parent, "slice_0006.dcm leads nowhere", "symbolic link to a slice that is not there")


def test_a_folder_on_the_kernels_file_systems_is_refused_without_reading_it():
    """/proc as a DICOM folder: GDCM read /proc/kmsg and blocked forever, deaf to Ctrl-C (or
    failed with EPERM, reported as an output problem)."""
    if not Path("/proc/self/mountinfo").is_file():
        pytest.skip("no /proc here")
    for folder in ("/proc", "/sys/kernel"):
        if Path(folder).is_dir():
            refused(Path(folder), "is not a folder of images", "kernel's")


@pytest.mark.parametrize("spacing", [1e30, 1e-30])
def test_an_implausible_voxel_size_is_refused(tmp_path, spacing):
    """1e30 mm gave volumes of 4.9e89 mL in statistics.csv, silently; 1e-30 mm a raw traceback
    (a Gaussian kernel too large to allocate)."""
    path = written(tmp_path, "ct.nii")
    data = bytearray(path.read_bytes())
    data[80:92] = struct.pack("<3f", spacing, spacing, spacing)
    path.write_bytes(bytes(data))
    refused(path, "implausible voxel size", f"{spacing:g}", "metres or micrometres")


@pytest.mark.parametrize("shape, words", [((1, 1, 1), "a single voxel"), ((1, 1, 9), "a line of voxels")])
def test_a_single_voxel_or_a_line_is_not_called_a_2d_image(tmp_path, shape, words):
    path = write_image(Image(np.zeros(shape, np.int16)), tmp_path / "tiny.nii.gz")
    with pytest.raises(InputError) as caught:
        read_volume(path)
    assert words in caught.value.what and "2D" not in caught.value.message


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segforge.cli.main", *args], capture_output=True, encoding="utf-8",
                          errors="replace", env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)


def one_line(run, *words: str) -> str:
    line = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and line.startswith("segforge: error:"), run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "RuntimeWarning" not in run.stderr, run.stderr[-2000:]
    for word in words:
        assert word in line, line
    return line


def test_infinite_voxels_are_refused_by_every_command(tmp_path):
    """organ refused them; interactive crashed (ValueError: cannot convert float NaN to integer)
    and vessel printed numpy warnings, then 'no vessel-like structure was found'."""
    path = write_image(Image(np.full((6, 8, 8), np.inf, np.float32)), tmp_path / "inf.nrrd")
    prompts = tmp_path / "p.json"
    prompts.write_text('{"coordinateSystem": "LPS", "prompts": [{"type": "point", "position": [0, 0, 0]}]}')
    for command in (("organ",), ("vessel",), ("interactive", "--prompts", str(prompts))):
        one_line(cli(command[0], str(path), *command[1:], "--out", str(tmp_path / command[0])),
                 "NaN or infinite voxels", "384 of its 384 voxels")
        assert not (tmp_path / command[0]).exists()


def test_a_prompt_file_that_never_ends_or_blocks_is_refused_at_once(tmp_path):
    """--prompts /dev/zero filled the memory until the process was killed; a named pipe blocked forever."""
    ct = write_image(make_image((6, 8, 8)), tmp_path / "ct.nrrd")
    (tmp_path / "zeros.json").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.json")
    for name in ("zeros.json", "pipe.json"):
        one_line(cli("interactive", str(ct), "--prompts", str(tmp_path / name), "--out", str(tmp_path / "out")),
                 "Cannot read the prompt file", "named pipe or a device")
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(65 << 20)  # sparse: 65 MiB of zeros, no disk used
    one_line(cli("interactive", str(ct), "--prompts", str(big), "--out", str(tmp_path / "out")), "is too large")
    nan = tmp_path / "nan.json"  # json reads NaN; the message showed it as np.float64(nan)
    nan.write_text('{"coordinateSystem": "LPS", "prompts": [{"type": "point", "position": [NaN, 0, 0]}]}')
    line = one_line(cli("interactive", str(ct), "--prompts", str(nan), "--out", str(tmp_path / "out")),
                    "A prompt position is [nan, 0, 0]", "three finite numbers")
    assert "np." not in line
    assert not (tmp_path / "out").exists()


def test_messages_keep_file_names_as_they_are():
    """'ct.nii.gz is incomplete' was shown as 'Ct.nii.gz is incomplete', another file's name on
    a case-sensitive disk; a question kept a full stop after its question mark."""
    error = InputError("ct.nii.gz is incomplete", "was it placed on another volume?", "copy it again")
    assert error.message == "ct.nii.gz is incomplete. Was it placed on another volume? Copy it again."
