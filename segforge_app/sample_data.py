"""The project's sample data the app opens with when no ``--data`` is given.

The abdominal CT (122x101x30 voxels at 3 mm, 0.5 MB, Apache-2.0, TotalSegmentator's test
file) is the smallest real volume in ``Resources/SampleData``: it loads in well under a
second, so the page is ready quickly, and it is real anatomy to try every workflow on.
"""
from __future__ import annotations

from pathlib import Path

#: The checkout's sample data folder (the app runs from a checkout or an editable install).
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "Resources" / "SampleData"

#: What ``make app`` and a bare ``segforge app`` load.
DEFAULT_SAMPLE = SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_ct_sm.nii.gz"


def default_data() -> list[Path]:
    """The default sample volume, or nothing when this is not a checkout (an installed wheel)."""
    return [DEFAULT_SAMPLE] if DEFAULT_SAMPLE.is_file() else []
