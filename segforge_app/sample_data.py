"""The project's sample data: what the app opens with, and the Data panel's sample list.

Like Slicer's Sample Data module, a user can load a real volume for each workflow with one
click: the abdominal CT for SegOrgan and SegInteractive, the thoracic CTA and the aortic MR
angiography for SegVessel, a DICOM series for the DICOM path. All ship in
``Resources/SampleData`` with their licences (the app runs from a checkout).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The checkout's sample data folder (the app runs from a checkout or an editable install).
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "Resources" / "SampleData"


@dataclass(frozen=True)
class Sample:
    """One sample: ``id`` marks its button, ``path`` is a file or a DICOM folder."""

    id: str
    title: str
    path: Path
    use: str  # which workflow it is for, shown under the title


SAMPLES = (
    Sample("abdomen_ct", "Abdominal CT, 3 mm", SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz",
           "SegOrgan, SegInteractive"),
    Sample("thorax_cta", "Thoracic CTA, 1.5 mm", SAMPLE_DATA / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz",
           "SegVessel"),
    Sample("aorta_mra", "Aorta MR angiography", SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta.mha", "SegVessel"),
    Sample("ct_dicom", "CT DICOM series (20 slices)", SAMPLE_DATA / "ts_ct_dicom_series" / "series", "DICOM loading"),
)

#: What ``make app`` and a bare ``segforge app`` load: the smallest volume (0.5 MB, ready fast).
DEFAULT_SAMPLE = SAMPLES[0].path


def available_samples() -> list[Sample]:
    """The samples present here (none when this is an installed wheel, not a checkout)."""
    return [sample for sample in SAMPLES if sample.path.exists()]


def default_data() -> list[Path]:
    """The default sample volume, or nothing when this is not a checkout (an installed wheel)."""
    return [DEFAULT_SAMPLE] if DEFAULT_SAMPLE.is_file() else []
