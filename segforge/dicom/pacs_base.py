"""What every PACS connection does the same way, whatever the protocol (DICOMweb or DIMSE):
choosing a study's image series, and storing files so that a retry never duplicates.

A protocol supplies four calls (find studies, find series, fetch a series, look one instance
up, send one instance); the rules on top of them live here once, so ``segforge pacs``, the
batch and the panels behave alike on either protocol.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional

import pydicom

from ..errors import InputError
from .pacs_config import PacsConfig

#: Series a workflow does not segment (results and other derived objects).
DERIVED_MODALITIES = ("SEG", "SR", "PR", "KO", "REG", "RTSTRUCT")


class PacsClient:
    """A connection to one PACS; subclasses speak the protocol."""

    config: PacsConfig

    # -- what a protocol provides --------------------------------------------------------------
    def echo(self) -> None:
        """Check that the PACS answers and accepts us; InputError saying why not."""
        raise NotImplementedError

    def find_studies(self, filters: Optional[Mapping[str, str]] = None) -> list[dict[str, str]]:
        """Studies matching DICOM attribute filters (PatientID, StudyDate, ...), keyword -> text."""
        raise NotImplementedError

    def find_series(self, study_uid: str) -> list[dict[str, str]]:
        """The series of a study; InputError when the PACS does not hold the study."""
        raise NotImplementedError

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        """The SOP Instance UIDs of a series (empty when the PACS holds none)."""
        raise NotImplementedError

    def fetch_series(self, study_uid: str, series_uid: str, folder: str | os.PathLike) -> list[Path]:
        """Every instance of the series written into ``folder`` as ``<SOP Instance UID>.dcm``."""
        raise NotImplementedError

    def holds_instance(self, dataset: pydicom.Dataset) -> bool:
        raise NotImplementedError

    def _send(self, path: str, dataset: pydicom.Dataset) -> None:
        """Send one instance (raise InputError when the PACS refuses it)."""
        raise NotImplementedError

    # -- the shared rules ------------------------------------------------------------------------
    def choose_series(self, study_uid: str, series_uid: Optional[str] = None) -> str:
        """``series_uid`` when the study holds it, else the study's one image series (SEG, SR and
        other derived objects aside); InputError naming the choices otherwise."""
        series = self.find_series(study_uid)
        if series_uid is not None:
            if not any(s.get("SeriesInstanceUID") == series_uid for s in series):
                raise InputError(f"Study {study_uid} holds no series {series_uid}", f"it holds {describe(series)}",
                                 "give one of those series UIDs")
            return series_uid
        images = [s for s in series if s.get("Modality") not in DERIVED_MODALITIES]
        if len(images) != 1:
            raise InputError(f"Study {study_uid} holds {len(images)} image series", f"they are {describe(images)}",
                             "choose one with --series UID")
        return images[0]["SeriesInstanceUID"]

    def store(self, paths: Iterable[str | os.PathLike]) -> dict[str, str]:
        """Store each file (SEG, SR...) unless the PACS already holds it; path -> "stored" or
        "already stored". Each file is checked readable before the first is sent, and each sent
        one is looked up afterwards (a PACS that answered but did not keep it is an error)."""
        datasets = {}
        for path in paths:
            try:
                datasets[str(path)] = pydicom.dcmread(path)
            except (OSError, pydicom.errors.InvalidDicomError) as error:
                raise InputError(f"Cannot store {path}", f"it is not a readable DICOM file ({error})",
                                 "give the seg.dcm / sr.dcm SegForge wrote") from None
        outcome = {}
        for path, dataset in datasets.items():
            if self.holds_instance(dataset):
                outcome[path] = "already stored"
                continue
            self._send(path, dataset)
            if not self.holds_instance(dataset):
                raise InputError(f"The PACS did not keep {Path(path).name}", "it answered the store request but "
                                 "does not list the instance (a PACS whose storage is full, or one that filters what "
                                 "it keeps, does this)", "check the PACS's log (and its free space); run the store "
                                 "again")
            outcome[path] = "stored"
        return outcome


def describe(series: list[dict[str, str]]) -> str:
    """Series as a person reads them in a message."""
    if not series:
        return "none"
    return "; ".join(f"{s.get('SeriesInstanceUID')} ({s.get('Modality', '?')}, {s.get('SeriesDescription', '')})"
                     for s in series)
