"""Read and write volumes (NIfTI, NRRD, MHA, DICOM series) through SimpleITK.

Files keep their geometry exactly: the :class:`~segforge.image.Image` gets the file's
LPS origin, spacing and direction, and writing it back gives the same header.
"""
from __future__ import annotations

import contextlib
import locale
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import SimpleITK as sitk

from .dicom_series import read_dicom_series
from .errors import InputError
from .image import Image, check_volume_array, require_3d_volume
from .image_checks import verify_volume_file

logger = logging.getLogger(__name__)

#: File endings SimpleITK writes for us (DICOM series: :func:`write_dicom_series`).
WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".mhd")
#: Endings of volume files (a folder named so is a mistake, not a DICOM series).
_FILE_SUFFIXES = (*WRITABLE_SUFFIXES, ".nhdr", ".hdr", ".img", ".gz")


def to_sitk(image: Image) -> sitk.Image:
    """An ``sitk.Image`` sharing the engine image's geometry (the voxels are copied)."""
    result = sitk.GetImageFromArray(np.ascontiguousarray(image.array), isVector=False)
    result.SetSpacing(image.spacing)
    result.SetOrigin(image.origin_lps)
    result.SetDirection(tuple(image.direction_lps.ravel()))
    return result


def from_sitk(source: sitk.Image) -> Image:
    """The engine image of an ``sitk.Image``; 2D, 4D and vector images are refused.

    A zero or missing spacing becomes 1 mm, with a logged warning saying so.
    """
    if source.GetNumberOfComponentsPerPixel() > 1:
        raise InputError("This is a multi-component (colour or vector) image",
                         f"each voxel has {source.GetNumberOfComponentsPerPixel()} values",
                         "convert it to a scalar volume first (Vector to Scalar Volume module)")
    if source.GetDimension() != 3:
        # The array (k, j, i, ...) order gives the same 2D / 4D message as Image itself.
        check_volume_array(np.broadcast_to(np.uint8(0), tuple(reversed(source.GetSize()))))
    array = sitk.GetArrayFromImage(source)
    spacing = tuple(s if np.isfinite(s) and s > 0 else 1.0 for s in source.GetSpacing())
    if spacing != tuple(source.GetSpacing()):
        logger.warning("voxel spacing %s is not usable; 1 mm is assumed for the zero values, so sizes and "
                       "distances may be wrong", source.GetSpacing())
    return Image(array, spacing, source.GetOrigin(), np.asarray(source.GetDirection()).reshape(3, 3))


def read_volume(path: str | os.PathLike, *, allow_gaps: bool = False, series_uid: Optional[str] = None) -> Image:
    """Read a 3D volume for a workflow: like :func:`read_image`, single slices refused."""
    return require_3d_volume(read_image(path, allow_gaps=allow_gaps, series_uid=series_uid))


def read_image(path: str | os.PathLike, *, allow_gaps: bool = False, series_uid: Optional[str] = None) -> Image:
    """Read a volume file, or a folder holding one DICOM series, after checking its data are all there.

    Files: :func:`~segforge.image_checks.verify_volume_file` first (truncated, corrupted or
    short data refused), then SimpleITK, whose element count must match the header's.
    Folders: :func:`~segforge.dicom_series.read_dicom_series` (damaged slices, gaps, mixed
    orientations and several series refused; ``allow_gaps`` fills gaps, ``series_uid`` picks
    a series). Missing or zero spacing gives a logged warning naming the 1 mm assumed.
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():  # a link that loops, or whose target is gone
            raise InputError(f"Cannot read {path}", "it is a symbolic link that leads to nothing (it loops, or "
                             "what it points to was moved or deleted)", "give the volume file or folder itself")
        raise InputError(f"No file or folder at {path}", "the path does not exist",
                         "check the path and try again")
    if path.is_dir() and path.name.lower().endswith(_FILE_SUFFIXES):
        raise InputError(f"{path} is a folder, not a file", "its name ends like a volume file, but a folder "
                         "can only hold a DICOM series", "give the volume file itself")
    if path.is_dir():
        try:
            with quiet_native_output():
                return _plausible(path, from_sitk(read_dicom_series(path, allow_gaps, series_uid)))
        except RuntimeError as error:  # SimpleITK's own reader errors
            raise InputError(f"Could not read {path}", native_reason(error),
                             "give a NIfTI, NRRD, MHA file or a folder of one DICOM series") from error
    return _plausible(path, from_sitk(read_verified_file(path)))


def read_verified_file(path: Path) -> sitk.Image:
    """A volume file as SimpleITK reads it (vector images too), after
    :func:`~segforge.image_checks.verify_volume_file`, its value count checked against the header's.

    What :func:`read_image` and the segment reader (:mod:`segforge.segment_input`, whose
    multi-layer ``.seg.nrrd`` files are vector images) share."""
    try:
        with quiet_native_output():
            facts = verify_volume_file(path)
            source = sitk.ReadImage(str(path))
    except RuntimeError as error:  # SimpleITK's own reader errors
        raise InputError(f"Could not read {path}", native_reason(error),
                         "give a NIfTI, NRRD, MHA file or a folder of one DICOM series") from error
    except OSError as error:  # the input cannot be opened: said about the input, not about --out
        where = error.filename or path
        raise InputError(f"Could not read {where}", error.strerror or str(error),
                         "check that the file is there and readable by this user") from error
    got = source.GetNumberOfPixels() * source.GetNumberOfComponentsPerPixel()
    if facts.element_count is not None and got != facts.element_count:
        raise InputError(f"{path} was not read whole", f"its header promises {facts.element_count:,} values "
                         f"but {got:,} were read", "export the file again (or convert it with another tool)")
    return source


#: Voxel sizes no scanner makes (1 nm, 1 km): a header in other units or a damaged one. Beyond them
#: filters asked for a width in millimetres fail (a kernel of 1e30 voxels) and volumes overflow.
PLAUSIBLE_SPACING_MM = (1e-6, 1e6)


def _plausible(path: Path, image: Image) -> Image:
    low, high = PLAUSIBLE_SPACING_MM
    if not all(low <= s <= high for s in image.spacing):
        raise InputError(f"{path} has an implausible voxel size",
                         f"its header gives a spacing of {', '.join(f'{s:g}' for s in image.spacing)} mm, outside "
                         f"{low:g} to {high:g} mm", "fix the spacing in the header (a value in metres or micrometres "
                         "instead of millimetres?), or export the volume again")
    return image


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: list[Any] = []


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """ITK's warnings, VTK's log on stderr and VTK's output window off while a file is read.

    Their readers print a dump on stderr (source file, line, object address, a pipeline
    request) before the error reaches Python, where it becomes a SegForge error that says the
    same thing in one line; a person saw both. Slicer's storage nodes still collect VTK's
    errors through their observers (that is where our messages come from). VTK's global
    warning switch is not the way: with it off, VTK readers stop reporting errors at all and
    a storage node takes a failed read for a good one. Its log's stderr level is turned off and
    its output window (where a program such as the web app set a classic one) is swapped for a
    string window, whose text goes to this module's debug log (``--debug``). VTK is
    handled only where it is already loaded (the Slicer bridge, the web app). The settings are
    process-wide: nested and concurrent reads share one count, and the last to leave puts back
    what was there.
    """
    global _quiet_depth
    with _quiet_lock:
        if _quiet_depth == 0:
            core = sys.modules.get("vtkmodules.vtkCommonCore")
            window = core.vtkStringOutputWindow() if core is not None else None
            _quiet_saved[:] = [sitk.ProcessObject.GetGlobalWarningDisplay(), core,
                               core.vtkLogger.GetCurrentVerbosityCutoff() if core else None,
                               core.vtkOutputWindow.GetInstance() if core else None, window]
            sitk.ProcessObject.SetGlobalWarningDisplay(False)
            if core is not None:
                core.vtkLogger.SetStderrVerbosity(core.vtkLogger.VERBOSITY_OFF)
                core.vtkOutputWindow.SetInstance(window)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                itk_display, core, verbosity, previous, window = _quiet_saved
                sitk.ProcessObject.SetGlobalWarningDisplay(itk_display)
                if core is not None:
                    core.vtkLogger.SetStderrVerbosity(verbosity)
                    core.vtkOutputWindow.SetInstance(previous)
                    if window.GetOutput().strip():
                        logger.debug("VTK, while reading: %s", window.GetOutput().strip())
                _quiet_saved.clear()


def native_reason(error: Exception) -> str:
    """The sentence of an ITK / SimpleITK exception a person can read, without the source file,
    line and object address ITK puts around it (its last line is often a matrix row)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    teem = [line for line in lines if line.startswith("[nrrd]")]
    if teem:  # NrrdIO's chain of callers: the last says what was wrong
        return teem[-1].split(":", 1)[-1].strip()
    for line in lines:
        found = re.search(r"(?:ITK ERROR|itk::ERROR|Description): (?:\w+\(0x[0-9a-f]+\): )?(.+)", line)
        if found:
            return found.group(1).strip()
    useful = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")
              and not re.search(r"\.(cxx|hxx|h|cpp):\d+:?$", line)]
    return (useful or lines or ["the reader gave no reason"])[0]


def check_writable(path: str | os.PathLike) -> Path:
    """Refuse an output path SegForge cannot write, before any work is done."""
    path = Path(path)
    if not path.name.lower().endswith(WRITABLE_SUFFIXES):
        raise InputError(f"Cannot write {path.name}", "its suffix names no volume format SegForge writes",
                         f"use one of {', '.join(WRITABLE_SUFFIXES)}")
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise InputError(f"Cannot write {path}", f"{folder} is not a writable folder",
                         "choose an output path in a folder you can write to")
    return path


def write_image(image: Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write a volume; the suffix picks the format (.nii.gz, .nrrd, .mha...)."""
    path = check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk(image), str(path), useCompression=compress)
    return path


#: CT Image Storage: what a plain scalar series is written as (SimpleITK / GDCM fill the pixel module).
_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _decimal_string(value: float) -> str:
    """A DICOM DS value: at most 16 characters, as precise as they allow."""
    for digits in range(15, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6g}"


def write_dicom_series(image: Image, folder: str | os.PathLike, modality: str = "CT",
                       description: str = "SegForge", todo: str = "write it as NIfTI or NRRD instead") -> list[Path]:
    """Write an integer volume as a DICOM series, one file per slice, geometry in the tags.

    Each slice gets its Image Position (Patient) and the series the Image Orientation
    (Patient) of the volume, so oblique volumes stay oblique. The slice axis must follow the
    right-hand rule (DICOM orders slices along row x column); a left-handed volume is
    refused, since a reader would silently flip it. ``todo``: what the caller's user can do
    about a volume that is not 8- or 16-bit integers (the caller knows how it was asked).
    """
    if not np.issubdtype(image.array.dtype, np.integer) or image.array.dtype.itemsize > 2:
        raise InputError("DICOM series are written for 8- or 16-bit integer volumes",
                         f"this volume holds {image.array.dtype}", todo)
    if np.linalg.det(image.direction_lps) < 0:
        raise InputError("This volume's slice axis is left-handed", "DICOM readers would flip its slices",
                         "write it as NIfTI or NRRD, or reorient it first")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    volume = to_sitk(image)
    row, column = image.direction_lps[:, 0], image.direction_lps[:, 1]
    orientation = "\\".join(_decimal_string(v) for v in (*row, *column))
    # One Frame of Reference for the series: objects derived from it (a DICOM SEG) must name it.
    study, series, frame = _new_dicom_uid(), _new_dicom_uid(), _new_dicom_uid()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(volume.GetDepth()):
        plane = volume[:, :, k:k + 1]  # depth one: GDCM takes its spacing for Spacing Between Slices
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {"0008|0016": _CT_IMAGE_STORAGE, "0008|0018": _new_dicom_uid(), "0008|0060": modality,
                "0008|103e": description, "0020|000d": study, "0020|000e": series, "0020|0052": frame,
                "0020|0013": str(k + 1), "0020|0032": "\\".join(_decimal_string(v) for v in position),
                "0020|0037": orientation, "0018|0050": _decimal_string(image.spacing[2]),
                # GDCM writes a slice's own (2D) spacing here, 1 mm, unless told: readers of the series
                # (highdicom, a DICOM SEG made from it) take that for the distance between slices.
                "0018|0088": _decimal_string(image.spacing[2]),
                "0028|0030": f"{_decimal_string(image.spacing[1])}\\{_decimal_string(image.spacing[0])}"}
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        path = folder / f"slice_{k + 1:04d}.dcm"
        writer.SetFileName(str(path))
        with _locale_kept():
            writer.Execute(plane)
        paths.append(path)
    return paths


@contextlib.contextmanager
def _locale_kept() -> Iterator[None]:
    """GDCM's DICOM writer sets the C locale for the whole process and leaves it so; put back
    what the process had (text decoding of subprocess output, number formats elsewhere)."""
    before = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != before:
            locale.setlocale(locale.LC_ALL, before)


def _new_dicom_uid() -> str:
    """A unique DICOM UID under the UUID-derived 2.25 root (no registered root needed)."""
    import uuid

    return f"2.25.{uuid.uuid4().int}"
