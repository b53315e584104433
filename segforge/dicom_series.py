"""Read one DICOM series from a folder, refusing what SimpleITK would silently get wrong.

GDCM's scanner leaves out a file it cannot parse, and ITK's series reader then spreads the
remaining slices evenly over the series' length, so a damaged or missing slice gives a
volume with fewer slices at the wrong spacing and no error. Here a series is read only when
every DICOM file in the folder is readable, the folder holds one series (or the caller
names one), all slices share one orientation, and the slices lie one step apart. A gap can
be accepted (``allow_gaps=True``): the missing slices are then filled with the volume's
lowest value so every slice stays at its true position, and a warning says so.
"""
from __future__ import annotations

import logging
import os
import re
import struct
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from .errors import InputError

logger = logging.getLogger(__name__)

_POSITION, _ORIENTATION, _PIXEL_SPACING = "0020|0032", "0020|0037", "0028|0030"
_RECOPY = "copy the series again from the scanner or PACS"


def read_dicom_series(folder: Path, allow_gaps: bool = False, series_uid: Optional[str] = None) -> sitk.Image:
    """The one series in ``folder`` (or the one named ``series_uid``) as a checked ``sitk.Image``."""
    _refuse_system_folder(folder)
    series = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    files = {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in series}
    _refuse_damaged_files(folder, {Path(name).name for names in files.values() for name in names})
    if not series:
        raise InputError(f"No DICOM series in {folder}", "the folder holds no readable DICOM images",
                         "point at the folder that holds the series' .dcm files")
    if series_uid is not None:
        if series_uid not in files:
            raise InputError(f"{folder} holds no series {series_uid}", f"it holds {_describe(files)}",
                             "give one of those series UIDs")
        series = [series_uid]
    if len(series) > 1:
        raise InputError(f"{folder} holds {len(series)} DICOM series", f"SegForge reads one series at a time; "
                         f"it holds {_describe(files)}", "choose one with --series UID (series_uid= in "
                         "Python), move each series into its own folder, or load it through Slicer's DICOM module")
    _refuse_multi_frame(folder, files[series[0]][0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files[series[0]])
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        volume = reader.Execute()
    except RuntimeError as error:
        _refuse_unreadable(files[series[0]])
        raise InputError(f"Could not read the DICOM series in {folder}", str(error).strip().splitlines()[-1],
                         _RECOPY) from error
    names = [Path(name).name for name in files[series[0]]]
    tags = [{key: reader.GetMetaData(i, key) if reader.HasMetaDataKey(i, key) else ""
             for key in (_POSITION, _ORIENTATION, _PIXEL_SPACING)} for i in range(len(names))]
    if not tags[0][_PIXEL_SPACING]:
        logger.warning("%s: the series gives no Pixel Spacing (0028,0030); 1 mm is assumed, so sizes and "
                       "distances may be wrong", folder)
    _check_orientation(folder, names, tags)
    return _check_slice_steps(folder, volume, names, tags, allow_gaps)


#: Number of Frames (0028,0008): more than one in a file is an enhanced (multi-frame) image.
_FRAMES = "0028|0008"


def _refuse_multi_frame(folder: Path, first: str) -> None:
    """An enhanced (multi-frame) image keeps its slices' geometry in functional groups the series
    reader does not read: it was taken for one slice with no Pixel Spacing (a false "1 mm is
    assumed") and then refused as "4D or multi-component". Said first, in one line, from the
    first file's header (a series does not mix single- and multi-frame files)."""
    info = sitk.ImageFileReader()
    info.SetFileName(first)
    try:
        info.ReadImageInformation()
        frames = info.GetMetaData(_FRAMES).strip() if info.HasMetaDataKey(_FRAMES) else ""
    except RuntimeError:
        return  # unreadable: the series reader says so
    if frames.isdigit() and int(frames) > 1:
        raise InputError(f"Cannot read the DICOM series in {folder}", f"{Path(first).name} holds {int(frames)} frames: "
                         "enhanced (multi-frame) DICOM is not supported yet",
                         "convert it to single-frame slices (e.g. with dcm2niix or Slicer) first")


#: File systems of the kernel's own (no images; some of their files block a reader forever).
_SYSTEM_FILE_SYSTEMS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "debugfs", "tracefs", "securityfs",
                                  "cgroup", "cgroup2", "pstore", "bpf", "configfs", "fusectl", "mqueue",
                                  "hugetlbfs", "efivarfs", "binfmt_misc", "autofs", "rpc_pipefs", "nsfs"})


def _refuse_system_folder(folder: Path) -> None:
    """GDCM reads every file of the folder: in /proc one of them (kmsg) blocks the read forever,
    deaf to Ctrl-C. Refused from the mount table before anything is opened (Linux; elsewhere
    nothing is checked)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    where, kind = Path(os.path.realpath(folder)), ""
    best = -1
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount = Path(fields[4].replace("\\040", " "))
        if (mount == where or mount in where.parents) and len(mount.parts) > best:
            best, kind = len(mount.parts), line.split(" - ", 1)[1].split()[0]
    if kind in _SYSTEM_FILE_SYSTEMS:
        raise InputError(f"{folder} is not a folder of images", f"it lies on the kernel's {kind} file system",
                         "give the folder that holds the DICOM series' files")


def _describe(files: dict[str, list[str]]) -> str:
    parts = []
    for uid, names in files.items():
        info = sitk.ImageFileReader()
        info.SetFileName(names[0])
        info.ReadImageInformation()
        description = info.GetMetaData("0008|103e").strip() if info.HasMetaDataKey("0008|103e") else ""
        parts.append(f"{uid or '(no UID)'} ({description + ', ' if description else ''}{len(names)} files)")
    return "; ".join(parts)


_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")


def _refuse_damaged_files(folder: Path, listed: set[str]) -> None:
    """A file GDCM left out that was meant as a slice but cannot be read is damaged: the series
    would silently miss it (a last or first slice leaves no gap to see).

    Meant as a slice: it has the 'DICM' mark, or a DICOM file name ending, or it starts like a
    DICOM data set without the 128-byte preamble (group 0002 or 0008 first), or its name is
    shaped like the series' slices (the same name but for its digits, e.g. IM0007 beside IM0006).
    A README or a DICOMDIR beside the slices is none of these.
    """
    shapes = {_shape(name) for name in listed}
    for path in sorted(p for p in folder.iterdir() if p.is_symlink() and not p.exists()):
        if path.name.lower().endswith(_DICOM_SUFFIXES) or _shape(path.name) in shapes:
            raise InputError(f"{path} leads nowhere", "it is a symbolic link to a slice that is not there (moved, "
                             "deleted, or a link that loops), so the series would miss a slice",
                             f"{_RECOPY} as files rather than links, or remove that link if the slice is not needed")
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name not in listed):
        if path.name.upper() == "DICOMDIR":
            continue
        with open(path, "rb") as stream:
            head = stream.read(132)
        marked = head[128:132] == b"DICM"
        if not (marked or path.name.lower().endswith(_DICOM_SUFFIXES) or _starts_like_dicom(head)
                or _shape(path.name) in shapes):
            continue  # not DICOM (a README, notes...): not ours to judge
        if _is_non_image_object(path):
            continue  # a structured report or key object beside the slices (SegForge's sr.dcm): no slice
        if not head:
            raise InputError(f"{path} is damaged", "it is empty (0 bytes) where a slice of the series should be",
                             f"{_RECOPY}, or remove that file if the slice is not needed")
        info = sitk.ImageFileReader()
        info.SetFileName(str(path))
        try:
            info.ReadImageInformation()
        except RuntimeError:
            how = "starts as a DICOM file" if marked or _starts_like_dicom(head) else "is named like the slices"
            raise InputError(f"{path} is damaged", f"it {how} but cannot be read (cut short or corrupted), so "
                             "the series would miss a slice", f"{_RECOPY}, or remove that file if the slice "
                             "is not needed") from None


#: SOP Class UIDs of DICOM objects that hold no image: structured reports, key object selections
#: (1.2.840.10008.5.1.4.1.1.88.*) and presentation states (...1.1.11.*).
_NON_IMAGE_CLASSES = (b"1.2.840.10008.5.1.4.1.1.88.", b"1.2.840.10008.5.1.4.1.1.11.")


def _is_non_image_object(path: Path) -> bool:
    """Whether the file names a non-image SOP Class in its first 4 KiB (the file meta header
    holds it): such a file is whole and no slice, however GDCM's image reader fails on it."""
    with open(path, "rb") as stream:
        head = stream.read(4096)
    return head[128:132] == b"DICM" and any(uid in head for uid in _NON_IMAGE_CLASSES)


def _shape(name: str) -> str:
    """A file name with its digits taken out: the slices of one series share it."""
    return re.sub(r"\d+", "#", name.lower())


def _starts_like_dicom(head: bytes) -> bool:
    """A DICOM data set written without its preamble: a little-endian tag of group 0002 or 0008,
    then an explicit VR (two capital letters) or an implicit 32-bit length."""
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008) or element > 0x1000:
        return False
    return head[4:6].isalpha() and head[4:6].isupper() or struct.unpack("<I", head[4:8])[0] < 1 << 16


def _refuse_unreadable(files: list[str]) -> None:
    for name in files:
        try:
            sitk.ReadImage(name)
        except RuntimeError:
            raise InputError(f"{name} is damaged", "its pixel data cannot be read", _RECOPY) from None


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split("\\")]) if text.strip() else np.array([])


def _check_orientation(folder: Path, names: list[str], tags: list[dict[str, str]]) -> None:
    first = _floats(tags[0][_ORIENTATION])
    for name, tag in zip(names, tags):
        other = _floats(tag[_ORIENTATION])
        if other.shape != first.shape or not np.allclose(other, first, atol=1e-4):
            raise InputError(f"The slices in {folder} do not share one orientation",
                             f"{names[0]} has Image Orientation {tags[0][_ORIENTATION] or '(none)'} but "
                             f"{name} has {tag[_ORIENTATION] or '(none)'}",
                             "the folder mixes series or stacks: keep one series of parallel slices per folder")


def _check_slice_steps(folder: Path, volume: sitk.Image, names: list[str], tags: list[dict[str, str]],
                       allow_gaps: bool) -> sitk.Image:
    positions = [_floats(tag[_POSITION]) for tag in tags]
    if len(names) < 2 or any(p.shape != (3,) for p in positions):
        return volume
    normal = np.asarray(volume.GetDirection()).reshape(3, 3)[:, 2]
    heights = np.array([float(p @ normal) for p in positions])
    steps = np.diff(heights)
    step = float(np.median(steps))
    if abs(step) < 1e-3 or np.any(np.abs(steps) < 1e-3):
        raise InputError(f"The series in {folder} has two slices at one position",
                         "slices repeat (a series exported twice, or two acquisitions in one series)",
                         "keep one copy of each slice in the folder")
    counts = np.rint(steps / step)
    uneven = np.abs(steps - counts * step) > 0.05 * abs(step) + 1e-3
    jumps = [f"from {heights[i]:.2f} mm ({names[i]}) to {heights[i + 1]:.2f} mm ({names[i + 1]})"
             for i in np.flatnonzero(uneven | (counts != 1))]
    if not jumps:
        return volume
    if np.any(uneven) or np.any(counts < 1) or not allow_gaps:
        raise InputError(f"The series in {folder} has a gap: slices are missing",
                         f"the slices are {abs(step):.3g} mm apart, but jump {'; '.join(jumps[:5])}",
                         f"{_RECOPY} with all its slices (or give --allow-gaps, allow_gaps=True in "
                         "Python, to read it with empty slices in the gaps)" if not np.any(uneven)
                         else f"{_RECOPY}; its slices are not evenly spaced")
    logger.warning("%s: slices missing %s; filled with the lowest value (allow_gaps)", folder, "; ".join(jumps))
    array = sitk.GetArrayFromImage(volume)
    index = np.concatenate([[0], np.cumsum(counts).astype(int)])
    full = np.full((index[-1] + 1, *array.shape[1:]), array.min(), dtype=array.dtype)
    full[index] = array
    result = sitk.GetImageFromArray(full)
    result.SetOrigin(volume.GetOrigin())
    result.SetDirection(volume.GetDirection())
    result.SetSpacing((*volume.GetSpacing()[:2], abs(step)))
    return result
