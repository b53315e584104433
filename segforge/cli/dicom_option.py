"""``--dicom`` on the workflow commands: seg.dcm and sr.dcm beside the other results.

Checked before any work: IMAGE must be a folder holding one DICOM series with its UIDs (the
objects refer to its images), on the grid the workflow segments. ``--dicom-derived`` is the
explicit way for a volume file: the volume is written as a new, marked DICOM series beside the
results (:mod:`segforge.dicom.derived`) and the objects refer to it. The files themselves come
from :mod:`segforge.dicom.results`, the same for every front end.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from ..image import Image

HELP = ("also write seg.dcm (DICOM SEG) and sr.dcm (DICOM SR, TID 1500 measurements), referred to IMAGE's "
        "patient, study and images: IMAGE must be the folder of a DICOM series with its UIDs")


DERIVED_HELP = ("with a volume file as IMAGE (NIfTI, NRRD): also write it as a new DICOM series (fresh UIDs, "
                "marked DERIVED, patient 'SegForge^Derived', derived_ct_*.dcm) and refer seg.dcm and sr.dcm to it; "
                "for 8- or 16-bit integer volumes")


def add_dicom_option(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--dicom", action="store_true", help=HELP)
    group.add_argument("--dicom-derived", action="store_true", help=DERIVED_HELP)


def check_dicom_request(args: argparse.Namespace) -> None:
    """A volume file (or no IMAGE) with --dicom: refused before anything is read or written."""
    from ..dicom.source import not_dicom_error
    from ..errors import InputError

    if args.dicom and (args.image is None or not Path(args.image).is_dir()):
        raise not_dicom_error(args.image if args.image is not None else "this input (no IMAGE given)")
    if args.dicom_derived and (args.image is None or Path(args.image).is_dir()):
        raise InputError("--dicom-derived is for a volume file", "IMAGE is a DICOM series folder" if args.image
                         else "no IMAGE is given", "use --dicom: the results then refer to the original images"
                         if args.image else "give the volume file as IMAGE")
    if args.dicom or args.dicom_derived:
        # The DICOM writers' native modules load now, before the result set opens: a Ctrl-C
        # landing inside a native module's import can crash the interpreter mid-write.
        from ..dicom import results  # noqa: F401


def dicom_source(args: argparse.Namespace, image: Image, folder: Path) -> Optional[Any]:
    """The source series' headers, checked against the image read (None without --dicom): read
    before the work, so empty UIDs or a changed grid are said before minutes of computing. With
    --dicom-derived the derived series is written into ``folder`` (the result set) first."""
    if args.dicom_derived:
        from ..dicom.derived import write_derived_series

        return write_derived_series(image, folder, Path(args.image).name, todo="drop --dicom-derived (the other "
                                    "results do not need it), or convert the volume to 16-bit integers first")
    if not args.dicom:
        return None
    from ..dicom.source import read_source_series

    return read_source_series(args.image, image, args.series)
