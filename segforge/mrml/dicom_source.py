"""Which DICOM series a volume node was loaded from, kept on the node as attributes.

A DICOM SEG or SR must refer to the very images the result was computed on, so the node has
to remember them from the moment it is loaded. Slicer's DICOM module writes the series'
SOP Instance UIDs into the attribute ``DICOM.instanceUIDs`` (space-separated; the files are
then found through Slicer's DICOM database). SegForge's own loaders (the web app's Data
panel, a folder given to a script) set the same attribute, so Slicer's tools see it too,
and add the folder the series was read from and its Series Instance UID, which need no
database. Attributes are saved with the scene (.mrb, .mrml), so a reloaded scene still knows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

#: Slicer's DICOM plugins' attribute: the SOP Instance UIDs of the slices, space-separated.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
#: SegForge's: the folder the series was read from, and which series of it.
FOLDER_ATTRIBUTE = "SegForge.DICOMSeriesFolder"
SERIES_UID_ATTRIBUTE = "SegForge.DICOMSeriesInstanceUID"


@dataclass(frozen=True)
class DicomOrigin:
    """What a volume node says about the DICOM series it came from (empty: it says nothing)."""

    folder: Optional[Path] = None
    series_uid: Optional[str] = None
    instance_uids: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.folder is not None or bool(self.instance_uids)


def mark_dicom_origin(volume_node: Any, folder: str | os.PathLike, series_uid: Optional[str] = None) -> DicomOrigin:
    """Record on ``volume_node`` that it was read from the series in ``folder`` (its one series,
    or ``series_uid``): the folder, the series UID and the slices' SOP Instance UIDs."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(os.path.abspath(folder))
    uids: list[str] = []
    found_series: Optional[str] = series_uid
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True,
                                     specific_tags=["SOPInstanceUID", "SeriesInstanceUID"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue  # not a slice: the series reader has judged the folder already
        series = str(header.get("SeriesInstanceUID", "") or "")
        if series_uid is not None and series != series_uid:
            continue
        found_series = found_series or series or None
        uid = str(header.get("SOPInstanceUID", "") or "").strip()
        if uid:
            uids.append(uid)
    volume_node.SetAttribute(FOLDER_ATTRIBUTE, str(folder))
    if found_series:
        volume_node.SetAttribute(SERIES_UID_ATTRIBUTE, found_series)
    if uids:
        volume_node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(uids))
    return dicom_origin(volume_node)


def dicom_origin(volume_node: Any) -> DicomOrigin:
    """What ``volume_node``'s attributes say about its DICOM series (nothing for a volume file)."""
    folder = volume_node.GetAttribute(FOLDER_ATTRIBUTE)
    series = volume_node.GetAttribute(SERIES_UID_ATTRIBUTE)
    uids = tuple((volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split())
    return DicomOrigin(Path(folder) if folder else None, series or None, uids)
