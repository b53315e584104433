"""The DICOM series a result was computed on: its files' headers, in the engine grid's slice order.

A DICOM SEG or SR refers to its source images by their UIDs and must lie in their Frame of
Reference, with one frame per source slice. So the series is read again here with pydicom
(headers only) and checked against the :class:`~segforge.image.Image` the engine segmented:
the same number of slices, each slice's position and orientation on that grid. Anything
else (a volume file, a series with empty UIDs, a grid changed since) is refused with what to
do, never written as a SEG that would point at the wrong images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..errors import InputError
from ..image import Image

#: The UIDs a PACS needs to file an object (and a SEG to refer to its source).
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")
#: How far (mm) a slice's position may lie from the grid's before the two are called different.
POSITION_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class SourceSeries:
    """The headers of a series' slices (no pixel data), ``datasets[k]`` being the grid's slice k."""

    folder: Path
    datasets: tuple[Dataset, ...]

    @property
    def first(self) -> Dataset:
        return self.datasets[0]


def not_dicom_error(path: str | os.PathLike) -> InputError:
    """The message for a DICOM export asked of an input that is no DICOM series."""
    return InputError(f"Cannot write DICOM SEG or SR for {path}", "the input is not a DICOM series, so there "
                      "are no patient, study and image UIDs to refer the results to",
                      "give the folder of the DICOM series the volume came from (as exported by the scanner or "
                      "PACS), or drop --dicom and keep the .seg.nrrd and CSV results")


def read_source_series(folder: str | os.PathLike, image: Image, series_uid: Optional[str] = None) -> SourceSeries:
    """The headers of the series in ``folder`` that ``image`` was read from, slice k first at k.

    InputError when the folder is not a DICOM series, its UIDs are missing or empty, or its
    slices are not the image's grid (a gap filled, slices added or moved since).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise not_dicom_error(folder)
    return read_source_files(sorted(p for p in folder.iterdir() if p.is_file()), image, series_uid, folder)


def _common_folder(paths: Sequence[str | os.PathLike]) -> Path:
    """The folder the files share, for messages (their first one's where they share none:
    other drives, relative and absolute paths mixed)."""
    try:
        return Path(os.path.commonpath([str(p) for p in paths])) if paths else Path(".")
    except ValueError:
        return Path(paths[0]).parent


def read_source_files(paths: Sequence[str | os.PathLike], image: Image, series_uid: Optional[str] = None,
                      folder: Optional[Path] = None) -> SourceSeries:
    """:func:`read_source_series` for the series' files wherever they lie (Slicer's DICOM database
    keeps a series' files in folders of its own); ``folder`` names them in messages."""
    folder = Path(folder) if folder is not None else _common_folder(paths)
    datasets = []
    for path in paths:
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue  # not a slice (a README, a DICOMDIR...): the series reader judged the folder already
        if "ImagePositionPatient" in dataset and "SeriesInstanceUID" in dataset:
            if "SpecificCharacterSet" in dataset and not dataset.SpecificCharacterSet:
                del dataset.SpecificCharacterSet  # empty: the default repertoire, which an absent tag says
            datasets.append(dataset)
    if series_uid is not None:
        datasets = [d for d in datasets if d.SeriesInstanceUID == series_uid]
    if not datasets:
        raise not_dicom_error(folder)
    _require_uids(folder, datasets)
    series = {str(d.SeriesInstanceUID) for d in datasets}
    if len(series) > 1:
        raise InputError(f"{folder} holds {len(series)} DICOM series", "a SEG refers to one source series",
                         "choose one with --series UID, or keep one series per folder")
    return SourceSeries(folder, tuple(_on_grid(folder, datasets, image)))


def _require_uids(folder: Path, datasets: list[Dataset]) -> None:
    for dataset in datasets:
        empty = [name for name in REQUIRED_UIDS if not str(dataset.get(name, "") or "").strip()]
        if empty:
            raise InputError(f"The DICOM series in {folder} cannot be referred to",
                             f"its slices have empty or missing {', '.join(empty)} (a PACS refuses such files, and "
                             "a SEG or SR could not say which images it describes)",
                             "export the series again from the scanner or PACS with its UIDs; SegForge does not "
                             "invent UIDs for images it did not make")


def _on_grid(folder: Path, datasets: list[Dataset], image: Image) -> list[Dataset]:
    """The slices ordered along the grid's k axis, each checked to be the grid's slice."""
    matrix = image.ijk_to_lps()
    normal = image.direction_lps[:, 2]
    ordered = sorted(datasets, key=lambda d: float(np.asarray(d.ImagePositionPatient, float) @ normal))
    depth = image.array.shape[0]
    if len(ordered) != depth:
        raise InputError(f"The DICOM series in {folder} is not the image that was segmented",
                         f"it holds {len(ordered)} slices and the segmented volume {depth} (slices missing, or "
                         "gaps filled with --allow-gaps)", "write DICOM results only for a complete series; "
                         "copy the series again with all its slices")
    spacing = np.asarray(ordered[0].get("PixelSpacing", [1.0, 1.0]), float)  # row (j), column (i) spacing
    if not np.allclose(spacing, (image.spacing[1], image.spacing[0]), rtol=1e-4, atol=1e-5):
        raise InputError(f"The DICOM series in {folder} is not on the segmented volume's grid",
                         f"its pixels are {spacing[1]:g} x {spacing[0]:g} mm, the volume's voxels "
                         f"{image.spacing[0]:g} x {image.spacing[1]:g} mm", "segment the series as it is (no "
                         "resampling) before writing DICOM results")
    for k, dataset in enumerate(ordered):
        expected = (matrix @ np.array([0.0, 0.0, k, 1.0]))[:3]
        position = np.asarray(dataset.ImagePositionPatient, float)
        orientation = np.asarray(dataset.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
        if (np.abs(position - expected).max() > POSITION_TOLERANCE_MM + 1e-4 * float(np.abs(expected).max())
                or not np.allclose(orientation, image.direction_lps[:, :2].T.ravel(), atol=1e-4)):
            raise InputError(f"The DICOM series in {folder} is not on the segmented volume's grid",
                             f"slice {k + 1} lies at {np.round(position, 3).tolist()} mm, the grid puts it at "
                             f"{np.round(expected, 3).tolist()} mm", "segment the series as it is (no resampling) "
                             "before writing DICOM results")
    return ordered
