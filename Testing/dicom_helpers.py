"""Shared by the DICOM tests: a real CT series with proper UIDs written on an oblique,
anisotropic grid, dciodvfy's verdict on a file, the bundled dcmqi CT copied to a folder."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom

from segforge.image import Image
from segforge.image_io import write_dicom_series

DCIODVFY = shutil.which("dciodvfy")


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines dciodvfy (dicom3tools) reports as errors for ``path`` (warnings are not errors)."""
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def write_series(image: Image, folder: Path) -> Path:
    """``image`` as a CT series with fresh UIDs, a patient and a study (what a PACS accepts)."""
    write_dicom_series(image, folder, description="SegForge test CT")
    for path in sorted(folder.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        dataset.PatientName, dataset.PatientID = "Test^Oblique", "SEGFORGE-TEST-1"
        dataset.AccessionNumber, dataset.StudyID = "ACC1", "1"
        dataset.save_as(path)
    return folder


#: The patient of dcmqi's CT (what a PACS search finds it by).
DCMQI_PATIENT = "99000"


def uploaded_dcmqi_ct(orthanc, shared_data: Path, folder: Path) -> dict:
    """dcmqi's CT uploaded into ``orthanc`` (an ``OrthancServer``): its study and series UIDs, and
    the folder of its files."""
    dcmqi_ct(shared_data, folder)
    for path in sorted(folder.glob("*.dcm")):
        assert orthanc.upload(path)["status"] == 200
    first = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    return {"study": str(first.StudyInstanceUID), "series": str(first.SeriesInstanceUID), "folder": folder}


def dcmqi_ct(shared_data: Path, folder: Path) -> Path:
    """The 3-slice CT of dcmqi's data (its SEG left out) in a folder of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((shared_data / "dicom" / "dcmqi_ct3slice_seg").glob("ct-3slice_*.dcm")):
        shutil.copy(path, folder)
    return folder


def ball_labels(grid: Image) -> Image:
    """Two labelled blobs (values 3 and 8, one of them off-centre and touching only some slices)."""
    k, j, i = np.indices(grid.array.shape)
    shape = np.array(grid.array.shape)
    labels = np.zeros(grid.array.shape, np.uint8)
    labels[((k - shape[0] / 2) ** 2 / 4 + (j - shape[1] / 2) ** 2 / 9 + (i - shape[2] / 2) ** 2 / 9) < 1.5] = 3
    labels[1:3, 1:4, -5:-1] = 8
    return grid.with_array(labels)


def one_line(run, expected: str) -> None:
    """A command that failed with one line of stderr holding ``expected``, and no traceback."""
    assert run.returncode == 1, run.stdout + run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
