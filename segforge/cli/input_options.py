"""The IMAGE a workflow command reads, and the options that say how to read a DICOM folder."""
from __future__ import annotations

import argparse
import logging

from ..image import Image, require_finite_voxels
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
    """The command's volume, read and checked (a damaged, short or gapped input is refused).

    What the read warns of (a spacing assumed to be 1 mm, gaps filled) is shown as it happens
    and also appended to ``args.input_warnings`` when the command made that list (its output
    set's manifest keeps them beside the results they concern).
    """
    caught = _Warnings()
    loggers = [logging.getLogger(name) for name in _READ_LOGGERS]
    for logger in loggers:
        logger.addHandler(caught)
    try:
        # Every workflow refuses NaN / infinite voxels (the vessel filter spread them into "no vessel
        # found", the interactive one crashed on them): once, here, for every command.
        return require_finite_voxels(read_volume(args.image, allow_gaps=args.allow_gaps, series_uid=args.series))
    finally:
        for logger in loggers:
            logger.removeHandler(caught)
        if isinstance(getattr(args, "input_warnings", None), list):
            args.input_warnings.extend(caught.messages)


#: The modules whose warnings are about the input file itself.
_READ_LOGGERS = ("segforge.image_checks", "segforge.image_io", "segforge.dicom_series")


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
