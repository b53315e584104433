"""Read and write volumes (NIfTI, NRRD, MHA, DICOM series) through SimpleITK.

Files keep their geometry exactly: the :class:`~segforge.image.Image` gets the file's
LPS origin, spacing and direction, and writing it back gives the same header.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .image import Image, check_volume_array, require_3d_volume

#: File endings SimpleITK writes for us; anything else is refused before any work is done.
WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".mhd")


def to_sitk(image: Image) -> sitk.Image:
    """An ``sitk.Image`` sharing the engine image's geometry (the voxels are copied)."""
    result = sitk.GetImageFromArray(np.ascontiguousarray(image.array), isVector=False)
    result.SetSpacing(image.spacing)
    result.SetOrigin(image.origin_lps)
    result.SetDirection(tuple(image.direction_lps.ravel()))
    return result


def from_sitk(source: sitk.Image) -> Image:
    """The engine image of an ``sitk.Image``; 2D, 4D and vector images are refused."""
    if source.GetNumberOfComponentsPerPixel() > 1:
        raise InputError("This is a multi-component (colour or vector) image",
                         f"each voxel has {source.GetNumberOfComponentsPerPixel()} values",
                         "convert it to a scalar volume first (Vector to Scalar Volume module)")
    if source.GetDimension() != 3:
        # The array (k, j, i, ...) order gives the same 2D / 4D message as Image itself.
        check_volume_array(np.broadcast_to(np.uint8(0), tuple(reversed(source.GetSize()))))
    array = sitk.GetArrayFromImage(source)
    return Image(array, source.GetSpacing(), source.GetOrigin(),
                 np.asarray(source.GetDirection()).reshape(3, 3))


def read_volume(path: str | os.PathLike) -> Image:
    """Read a 3D volume for a workflow: like :func:`read_image`, single slices refused."""
    return require_3d_volume(read_image(path))


def read_image(path: str | os.PathLike) -> Image:
    """Read a volume file, or a folder holding one DICOM series."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"No file or folder at {path}", "the path does not exist",
                         "check the path and try again")
    try:
        if path.is_dir():
            return from_sitk(_read_dicom_series(path))
        return from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as error:  # SimpleITK's own reader errors
        raise InputError(f"Could not read {path}", str(error).strip().splitlines()[-1],
                         "give a NIfTI, NRRD, MHA file or a folder of one DICOM series") from error


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(f"No DICOM series in {folder}", "the folder holds no readable DICOM images",
                         "point at the folder that holds the series' .dcm files")
    if len(series) > 1:
        raise InputError(f"{folder} holds {len(series)} DICOM series", "SegForge reads one series at a time",
                         "move each series into its own folder, or load it through Slicer's DICOM module")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return reader.Execute()


def write_image(image: Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write a volume; the suffix picks the format (.nii.gz, .nrrd, .mha...)."""
    path = Path(path)
    if not path.name.lower().endswith(WRITABLE_SUFFIXES):
        raise InputError(f"Cannot write {path.name}", "its suffix names no volume format SegForge writes",
                         f"use one of {', '.join(WRITABLE_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk(image), str(path), useCompression=compress)
    return path
