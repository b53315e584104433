"""Where training pairs come from when they are files: pairs named one by one, a folder, or a
batch manifest; each pair read into (image, vessel label) on their own grids.

Why here, below the CLI and the worker: both read the same folders and manifests the same
way. A manifest is read by the batch's own reader (:func:`segforge.batch.cases.read_manifest`),
so a training manifest is a cohort manifest whose rows have an ``image`` and a ``segment``
(``FILE[:LABEL|NAME]``); there is one CSV parser in SegForge, not two.

A folder holds ``images/`` and ``labels/`` (or nnU-Net's ``imagesTr/`` and ``labelsTr/``, an
image's ``_0000`` channel suffix dropped): an image and the label of the same file name are a
pair. An image without a label, or a label without an image, is refused by name, never
skipped silently.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..image import Image

FOLDER_LAYOUTS = (("images", "labels"), ("imagesTr", "labelsTr"))
_CHANNEL_SUFFIX = "_0000"


@dataclass(frozen=True)
class PairFiles:
    """An image file and its vessel label (``FILE[:LABEL|NAME]``), and a name for messages."""

    image: str
    label: str
    name: str


def pairs_from_folder(folder: str | os.PathLike) -> list[PairFiles]:
    """The pairs of a folder laid out as the module docstring says, in file-name order."""
    from ..batch.cases import folder_cases

    folder = Path(folder)
    layout = next(((folder / a, folder / b) for a, b in FOLDER_LAYOUTS
                   if (folder / a).is_dir() and (folder / b).is_dir()), None)
    if layout is None:
        raise InputError(f"{folder} is not a folder of training pairs",
                         "it has no images/ and labels/ (or imagesTr/ and labelsTr/) folders",
                         "put each volume in images/ and its vessel label, under the same file name, in labels/")
    images = {_without_channel(c.case_id): c.image for c in folder_cases(layout[0])}
    labels = {c.case_id: c.image for c in folder_cases(layout[1])}
    alone = sorted(set(images) ^ set(labels))
    if alone:
        raise InputError(f"Some files of {folder} have no partner", f"only one of {layout[0].name}/ and "
                         f"{layout[1].name}/ holds {', '.join(alone[:5])}{' and more' if len(alone) > 5 else ''}",
                         "give every image its label under the same file name, or move it out")
    return [PairFiles(str(images[name]), str(labels[name]), name) for name in sorted(images)]


def _without_channel(case_id: str) -> str:
    return case_id[: -len(_CHANNEL_SUFFIX)] if case_id.endswith(_CHANNEL_SUFFIX) else case_id


def pairs_from_manifest(path: str | os.PathLike, segment_label: Optional[str] = None) -> list[PairFiles]:
    """The pairs of a batch manifest: every row needs an ``image`` and a ``segment``."""
    from ..batch.cases import read_manifest

    pairs = []
    for case in read_manifest(Path(path), segment_label=segment_label):
        if not case.image or not case.segment:
            raise InputError(f"The manifest's {case.origin} is not a training pair",
                             "training needs an image and its vessel segment in every row",
                             "fill both the image and the segment cells (FILE or FILE:LABEL)")
        pairs.append(PairFiles(case.image, case.segment, case.case_id))
    return pairs


def read_pair(files: PairFiles) -> tuple[Image, Image]:
    """The image and its label (a 0/1 mask on the label file's grid) of one pair of files."""
    from ..image_io import read_image
    from ..segment_input import read_segment

    return read_image(files.image), read_segment(files.label).mask
