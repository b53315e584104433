"""A new DICOM series made from a volume file, for DICOM results of a non-DICOM input.

Only when the user asks (``--dicom-derived``): a SEG must refer to images, and a NIfTI or NRRD
file has none. The series gets fresh UIDs and is marked as what it is, so no one takes it for
the scanner's images: Image Type DERIVED\\SECONDARY, patient "SegForge^Derived", a series
description and derivation text naming the file it came from. The slices are written beside
the results (``derived_ct_0001.dcm``...) so the SEG never points at images that are nowhere.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

from ..image import Image
from ..image_io import write_dicom_series
from .source import SourceSeries

DERIVED_PREFIX = "derived_ct_"
DERIVED_DESCRIPTION = "SegForge DERIVED (not original images)"
DERIVED_PATIENT = "SegForge^Derived"


def write_derived_series(image: Image, folder: str | Path, source_name: str,
                         todo: str = "convert the volume to 16-bit integers first") -> SourceSeries:
    """``image`` as a marked CT series in ``folder``; its headers as the SEG's source, slice k at k.
    ``todo``: the advice for a volume DICOM cannot hold (float), in the words of the caller's
    user (an option to drop on the command line, a box to untick in a panel)."""
    folder = Path(folder)
    written = write_dicom_series(image, folder / ".derived", description=DERIVED_DESCRIPTION, todo=todo)
    identifier = "SEGFORGE-DERIVED-" + hashlib.sha256(source_name.encode("utf-8")).hexdigest()[:12]
    datasets = []
    for k, path in enumerate(written):
        dataset = pydicom.dcmread(path)
        dataset.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]  # AXIAL: a cross-section (CT's value 3)
        dataset.PatientName, dataset.PatientID = DERIVED_PATIENT, identifier
        dataset.DerivationDescription = (f"Written by SegForge from the file {source_name}; the UIDs are new and "
                                         "the patient is unknown")[:1024]
        dataset.ImageComments = "Not the original images: converted from a volume file by SegForge"
        # The CT IOD's type 2 attributes, present and empty where unknown (dciodvfy checks them).
        dataset.Manufacturer = "SegForge"
        for keyword in ("PositionReferenceIndicator", "KVP", "AcquisitionNumber", "Laterality", "PatientPosition"):
            setattr(dataset, keyword, None)
        target = folder / f"{DERIVED_PREFIX}{k + 1:04d}.dcm"
        dataset.save_as(target, enforce_file_format=True)
        path.unlink()
        dataset = pydicom.dcmread(target, stop_before_pixels=True)
        datasets.append(dataset)
    (folder / ".derived").rmdir()
    return SourceSeries(folder, tuple(datasets))
