"""The IMAGE a workflow command reads, and the options that say how to read a DICOM folder."""
from __future__ import annotations

import argparse

from ..image import Image
from ..volume_input import read_checked_volume


def add_input_options(parser: argparse.ArgumentParser, optional: str = "") -> None:
    """IMAGE, then --series and --allow-gaps (for a folder of DICOM slices). ``optional``: IMAGE may
    be left out, and these words say when (``segforge vessel --segment`` needs no volume)."""
    if optional:
        parser.add_argument("image", nargs="?", default=None,
                            help=f"volume (.nii.gz, .nrrd, .mha) or a DICOM series folder ({optional})")
    else:
        parser.add_argument("image", help="volume (.nii.gz, .nrrd, .mha) or a DICOM series folder")
    parser.add_argument("--series", metavar="UID", default=None,
                        help="the DICOM series to read when the folder holds several (its SeriesInstanceUID)")
    parser.add_argument("--allow-gaps", action="store_true",
                        help="read a DICOM series with missing slices, filled with its lowest value "
                             "(a warning says where); without it such a series is refused")


def read_input(args: argparse.Namespace) -> Image:
    """The command's volume, read and checked (a damaged, short or gapped input is refused;
    :func:`segforge.volume_input.read_checked_volume`).

    What the read warns of (a spacing assumed to be 1 mm, gaps filled) is shown as it happens
    and also appended to ``args.input_warnings`` when the command made that list (its output
    set's manifest keeps them beside the results they concern).
    """
    warnings = args.input_warnings if isinstance(getattr(args, "input_warnings", None), list) else None
    return read_checked_volume(args.image, allow_gaps=args.allow_gaps, series_uid=args.series,
                               warnings=warnings).image
