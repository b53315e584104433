"""The IMAGE a workflow command reads, and the options that say how to read a DICOM folder."""
from __future__ import annotations

import argparse

from ..image import Image
from ..image_io import read_volume


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
    """The command's volume, read and checked (a damaged, short or gapped input is refused)."""
    return read_volume(args.image, allow_gaps=args.allow_gaps, series_uid=args.series)
