"""``--dicom`` on the workflow commands: seg.dcm and sr.dcm beside the other results.

Checked before any work: IMAGE must be a folder holding one DICOM series with its UIDs (the
objects refer to its images), on the grid the workflow segments. The files themselves come
from :mod:`segforge.dicom.results`, the same for every front end.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from ..image import Image

HELP = ("also write seg.dcm (DICOM SEG) and sr.dcm (DICOM SR, TID 1500 measurements), referred to IMAGE's "
        "patient, study and images: IMAGE must be the folder of a DICOM series with its UIDs")


def add_dicom_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dicom", action="store_true", help=HELP)


def check_dicom_request(args: argparse.Namespace) -> None:
    """A volume file (or no IMAGE) with --dicom: refused before anything is read or written."""
    from ..dicom.source import not_dicom_error

    if args.dicom and (args.image is None or not Path(args.image).is_dir()):
        raise not_dicom_error(args.image if args.image is not None else "this input (no IMAGE given)")


def dicom_source(args: argparse.Namespace, image: Image) -> Optional[Any]:
    """The source series' headers, checked against the image read (None without --dicom): read
    before the work, so empty UIDs or a changed grid are said before minutes of computing."""
    if not args.dicom:
        return None
    from ..dicom.source import read_source_series

    return read_source_series(args.image, image, args.series)
