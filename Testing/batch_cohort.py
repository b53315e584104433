"""Small cohorts for the batch tests, built from the project's sample data: copies with small
changes (a shift of the intensities, a crop), a truncated file, a scan of the wrong modality,
DICOM series written from the sample CT, prompt files on a real lesion."""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import SimpleITK as sitk

from segforge.image_io import read_image, to_sitk, write_dicom_series, write_image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "Resources" / "SampleData"
CT = SAMPLE / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz"
CT_SEG = SAMPLE / "ts_ct_abdomen_3mm" / "example_seg.nii.gz"
LESIONS = ROOT / "Testing" / "Data" / "lesions"
MR = LESIONS / "brain1_image.nrrd"  # an MR: the ct-tissues model refuses it
SEGFORGE = Path(sys.executable).with_name("segforge")


def small_ct(shift: int = 0, step: int = 2):
    """The sample CT at half resolution in-plane (61x51x30), its intensities shifted by ``shift`` HU."""
    from segforge.image_io import from_sitk

    image = sitk.ReadImage(str(CT))[::step, ::step, :]
    return from_sitk(sitk.Cast(image, sitk.sitkInt16) + shift)


def organ_folder(folder: Path, copies: int = 3, bad: bool = True) -> Path:
    """``copies`` CTs (shifted by 0, 5, 10... HU) and, with ``bad``, one truncated .nii.gz and one MR."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(copies):
        write_image(small_ct(5 * n), folder / f"ct{n}.nii.gz")
    if not bad:
        return folder
    data = (folder / "ct0.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(data[: len(data) // 3])
    write_image(read_image(MR), folder / "wrong_modality_mr.nrrd")
    return folder


def dicom_tree(root: Path) -> Path:
    """patient1/ct, patient2/ct (CT series), patient2/mr (an MR series), patient3/ (a damaged file only)."""
    write_dicom_series(_right_handed(to_sitk(small_ct())), root / "patient1" / "ct", modality="CT",
                       description="ABDOMEN 3mm")
    write_dicom_series(_right_handed(to_sitk(small_ct(7))), root / "patient2" / "ct", modality="CT",
                       description="Abdomen 3mm")
    write_dicom_series(_right_handed(sitk.ReadImage(str(MR))), root / "patient2" / "mr", modality="MR",
                       description="brain t1")
    (root / "patient3").mkdir(parents=True)
    (root / "patient3" / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 40)
    return root


def _right_handed(image: sitk.Image):
    """A 16-bit volume in LPS axis order (DICOM's slices follow row x column)."""
    from segforge.image_io import from_sitk

    return from_sitk(sitk.DICOMOrient(sitk.Cast(image, sitk.sitkInt16), "LPS"))


def lesion_prompts(image_path: Path, label_path: Path, out: Path) -> Path:
    """A prompt file with one positive click at the centre of the lesion's label (LPS mm)."""
    label = sitk.ReadImage(str(label_path))
    array = sitk.GetArrayFromImage(label)
    k, j, i = (int(round(v)) for v in np.argwhere(array > 0).mean(axis=0))
    position = label.TransformIndexToPhysicalPoint((i, j, k))
    out.write_text(json.dumps({"coordinateSystem": "LPS",
                               "prompts": [{"type": "point", "position": list(position), "positive": True}]}))
    return out


def interactive_folder(folder: Path) -> Path:
    """Two lung lesion images (one a copy) with their prompt files beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("lung_a", "lung_b"):
        shutil.copy(LESIONS / "lung1_image.nrrd", folder / f"{name}.nrrd")
        lesion_prompts(LESIONS / "lung1_image.nrrd", LESIONS / "lung1_label.nrrd", folder / f"{name}.prompts.json")
    return folder


def vessel_manifest(folder: Path) -> Path:
    """A TSV manifest of two cases from TotalSegmentator's aorta segment (one a copy), by label name."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CT_SEG, folder / "seg_a.nii.gz")
    shutil.copy(CT_SEG, folder / "seg_b.nii.gz")
    shutil.copy(CT_SEG.with_name("label_names.json"), folder / "label_names.json")
    manifest = folder / "cohort.tsv"
    manifest.write_text("case_id\tsegment\nA-1\tseg_a.nii.gz:aorta\nB 2\tseg_b.nii.gz\n")
    return manifest


def run_segforge(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(SEGFORGE), *args], capture_output=True, encoding="utf-8", timeout=timeout)


@contextlib.contextmanager
def local_client(workers: int) -> Iterator[Any]:
    """A client of a real Dask LocalCluster of ``workers`` one-thread processes on loopback,
    Dask's own logging kept to errors; closed with the cluster on exit."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client
