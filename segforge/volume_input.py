"""The one read of a workflow's input volume: read, checked, and what the read warned of.

Every front end that runs a workflow on a file (``segforge vessel|organ|interactive``,
``segforge batch``) reads its volume here, so a damaged, short or gapped input is refused
the same way everywhere, NaN / infinite voxels are refused once (the vessel filter spread
them into "no vessel found", the interactive one crashed on them), and the warnings of the
read (a spacing assumed to be 1 mm, gaps filled) are returned for the results' manifest,
beside the results they concern.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple, Optional

from .image import Image, require_finite_voxels
from .image_io import read_volume

#: The modules whose warnings are about the input file itself.
READ_LOGGERS = ("segforge.image_checks", "segforge.image_io", "segforge.dicom_series")


class CheckedVolume(NamedTuple):
    image: Image
    warnings: list[str]


def read_checked_volume(path: str | os.PathLike, *, allow_gaps: bool = False,
                        series_uid: Optional[str] = None, warnings: Optional[list[str]] = None) -> CheckedVolume:
    """The volume at ``path`` (a file or a DICOM series folder), checked, with the read's warnings.

    The warnings are still logged as they happen (the command line shows them); they are also
    appended to ``warnings`` when given, even when the read fails half-way.
    """
    caught = _Warnings()
    loggers = [logging.getLogger(name) for name in READ_LOGGERS]
    for logger in loggers:
        logger.addHandler(caught)
    try:
        image = require_finite_voxels(read_volume(path, allow_gaps=allow_gaps, series_uid=series_uid))
    finally:
        for logger in loggers:
            logger.removeHandler(caught)
        if warnings is not None:
            warnings.extend(caught.messages)
    return CheckedVolume(image, caught.messages)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
