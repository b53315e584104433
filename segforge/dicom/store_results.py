"""Store a result folder's ``seg.dcm`` and ``sr.dcm`` in a PACS: the one rule the CLI, the batch
and the panels share.

Only a whole, unchanged result set is sent: the folder's manifest is checked first, so a file
edited or damaged since it was written never reaches the patient's record. Storing is the
PACS client's idempotent store (an instance the PACS holds is not sent again), so a rerun or
a resumed batch completes a half-stored set without duplicates.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..output_set import MANIFEST, verify_manifest
from .pacs_base import PacsClient
from .results import SEG_FILE, SR_FILE


def store_result_set(pacs: PacsClient, folder: Path) -> dict[str, str]:
    """Store ``folder``'s seg.dcm and sr.dcm; file name -> "stored" or "already stored"."""
    folder = Path(folder)
    files = [folder / SEG_FILE, folder / SR_FILE]
    if not (folder / MANIFEST).is_file() or not all(path.is_file() for path in files):
        raise InputError(f"{folder} holds no DICOM results", f"{SEG_FILE}, {SR_FILE} or {MANIFEST} is missing",
                         "run the workflow with --dicom first (or segforge pacs run)")
    problems = verify_manifest(folder)
    if problems:
        raise InputError(f"The results in {folder} changed since they were written", "; ".join(problems[:3]),
                         "run the workflow again rather than store altered files")
    return {Path(path).name: state for path, state in pacs.store(files).items()}
