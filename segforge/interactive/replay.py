"""A prompt file replayed on an interactive session, and the lesion's result files.

The prompts a user placed in Slicer (or a script wrote) are replayed in order, one
interaction each, exactly as the module applies them, so a prompt file reproduces a
segmentation: ``segforge interactive`` replays one file, ``segforge batch interactive``
one per case. Both read, check, replay and write through these functions.
"""
from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError
from ..image import Image
from ..segmentation_file import SegmentInfo
from ..progress import ProgressCallback
from .prompts import document_coordinate_system, prompt_noun, prompts_from_json, to_voxels

#: A prompt file larger than this is not one (a volume or a log given to --prompts by mistake).
MAX_PROMPT_FILE_BYTES = 64 << 20
#: The files a lesion result holds.
LESION_FILE, SUMMARY_FILE = "lesion.seg.nrrd", "summary.json"
_TODO_FORMAT = "give a JSON file as described in `segforge interactive --help`"


#: The lesion segment's colour (RGB 0..1) in every file written.
LESION_COLOR = (0.85, 0.35, 0.25)
#: What the lesion segment is: Morphologically Altered Structure / Lesion (SNOMED CT), the same
#: concept as the SR's finding type, serialised as Slicer writes it (a workflow does not import
#: the organ terminology, so written out as the vessel segment's is). Without it a segment fell
#: back to the generic Tissue / Tissue of a name SegForge does not know, and the SEG and SR
#: contradicted each other.
LESION_TERMINOLOGY = ("Segmentation category and type - 3D Slicer General Anatomy list"
                      "~SCT^49755003^Morphologically Altered Structure~SCT^52988006^Lesion~^^~"
                      "Anatomic codes - DICOM master list~^^~^^")
#: The type Slicer gives every new segment ("Tissue"), which says nothing about it.
_GENERIC_TYPE = "SCT^85756007^"


def lesion_segment(name: str, color: tuple[float, float, float] = LESION_COLOR,
                   terminology: Optional[str] = None) -> SegmentInfo:
    """The interactive result's segment, as every front end files it (CLI, batch, the module's
    Logic, the web panel): a segment with no terminology, or only the generic Tissue / Tissue
    Slicer gives every new segment, is the lesion; a specific one the user chose is kept."""
    parts = (terminology or "").split("~")
    generic = len(parts) != 7 or parts[2].startswith(_GENERIC_TYPE)
    return SegmentInfo(1, name, color, LESION_TERMINOLOGY if generic else terminology)


class _RepeatedKey(ValueError):
    """A key given twice in one object of a prompt file."""


def _without_repeats(pairs: list) -> dict:
    """A JSON object, refused when a key repeats: json keeps the last silently, and
    ``"positive": false, "positive": true`` would read as a positive click."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _RepeatedKey(f"the key {', '.join(repr(k) for k in repeated)} is given twice in one object")
    return dict(pairs)


def read_prompt_file(path: Path) -> list:
    """The prompts of a PROMPTS.json file in LPS millimetres; any problem is one InputError."""
    return read_prompt_document(path)[0]


def read_prompt_document(path: Path) -> tuple[list, str]:
    """The prompts of a PROMPTS.json file in LPS millimetres and the coordinate system the file
    gave them in (which summary.json records: a result is only as right as that reading of the
    file); any problem is one InputError."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO would block, /dev/zero never end
            raise InputError(f"Cannot read the prompt file {path}", "it is a folder, a named pipe or a device, "
                             "not a file", _TODO_FORMAT)
        if status.st_size > MAX_PROMPT_FILE_BYTES:
            raise InputError(f"The prompt file {path} is too large", f"it holds {status.st_size:,} bytes; a prompt "
                             f"file of clicks, boxes and scribbles holds far less than {MAX_PROMPT_FILE_BYTES:,}",
                             "check that --prompts names the prompt file")
        # utf-8-sig: a BOM, which Windows editors write, is read as no character, not refused
        document = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_without_repeats)
    except FileNotFoundError:
        raise InputError(f"No prompt file {path}", "it does not exist", "check the path of --prompts") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, _RepeatedKey) as error:
        raise InputError(f"Cannot read the prompt file {path}", str(error), _TODO_FORMAT) from error
    except RecursionError:  # json's parser recurses once per level of [ or {
        raise InputError(f"Cannot read the prompt file {path}", "its lists or objects are nested too deep for a "
                         "prompt file, whose deepest values (a scribble's points) are four levels down",
                         _TODO_FORMAT) from None
    prompts = prompts_from_json(document)
    if not prompts:
        raise InputError(f"The prompt file {path} holds no prompts", "its list of prompts is empty",
                         "add at least one positive click or a box on the lesion")
    return prompts, document_coordinate_system(document)


def check_prompts(prompts: list, image: Image) -> None:
    """Every prompt lands on the image and the first is positive, before any interaction runs."""
    for prompt in prompts:
        to_voxels(prompt, image)
    if not prompts[0].positive:
        raise InputError(f"The first prompt is a negative {prompt_noun(prompts[0])}",
                         "there is no lesion yet to take voxels away from",
                         "start the prompt file with a positive click or a box on the lesion")


def replay_prompts(session: Any, prompts: list, report: Optional[ProgressCallback] = None) -> list[dict]:
    """Apply ``prompts`` to ``session`` in order; each interaction's type, sign, seconds and mask voxels."""
    steps = []
    for n, prompt in enumerate(prompts):
        began = time.perf_counter()
        progress = ((lambda f, m: None) if report is None else
                    (lambda f, m, n=n: report((n + f) / len(prompts), f"prompt {n + 1}: {m}")))
        session.interact(prompt, progress)
        steps.append({"type": prompt_kind(prompt), "positive": prompt.positive,
                      "seconds": time.perf_counter() - began, "voxels": int(np.count_nonzero(session.mask))})
    if report is not None:
        report(1.0, "done")
    return steps


def prompt_kind(prompt: Any) -> str:
    return type(prompt).__name__.removesuffix("Prompt").lower()


def lesion_summary(session: Any, steps: list, seconds: float, **fields: Any) -> dict:
    """The summary.json of a lesion: ``fields`` (input, prompts, coordinate_system, backend, device
    the backend ran on, device_requested), the image key, each interaction, the total seconds
    and the lesion's voxels and volume in mL."""
    voxel_ml = float(np.prod(session.image.spacing)) / 1000.0
    voxels = int(np.count_nonzero(session.mask))
    return {**fields, "image_key": session.key, "interactions": steps, "total_seconds": seconds,
            "voxels": voxels, "volume_ml": voxels * voxel_ml}


def lesion_output_bytes(mask: np.ndarray) -> int:
    """A generous estimate of the files' size (the compressed mask and the summary)."""
    return int(mask.size // 4 + 64 * 1024)


def write_lesion_outputs(mask: Image, segment_name: str, summary: dict, folder: Path) -> dict[str, Path]:
    """Both files into ``folder`` (an output set's temporary folder, moved into place whole)."""
    from ..segmentation_file import write_seg_nrrd

    seg, table = Path(folder) / LESION_FILE, Path(folder) / SUMMARY_FILE
    write_seg_nrrd(mask, [lesion_segment(segment_name)], seg)
    table.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return {"segmentation": seg, "summary": table}
