"""``segforge interactive``: a lesion from prompts in a file, replayed one interaction each.

The prompts a user placed in Slicer (or a script wrote) are replayed in order on the
engine's session in this process, exactly as the module applies them, so a prompt file
reproduces a segmentation and benchmarks can time each interaction.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..image import Image
from ..image_io import read_volume
from .output_folder import require_output_folder
from .progress_bar import progress_bar

EPILOG = """\
PROMPTS.json, in millimetres of the patient coordinate system named in it:
  {"coordinateSystem": "LPS",
   "prompts": [{"type": "point", "position": [x, y, z], "positive": true},
               {"type": "box", "min": [x, y, z], "max": [x, y, z]},
               {"type": "scribble", "points": [[x, y, z], ...], "positive": false}]}

writes into --out: lesion.seg.nrrd (one segment, named by --segment-name, on the image's grid) and
summary.json (backend, device, image key, each interaction's type, sign, seconds and mask
voxels, total seconds, lesion volume in mL).

example:
  segforge interactive ct.nii.gz --prompts clicks.json --out results/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from SegInteractiveLib.form import InteractiveForm

    from ..forms import DEVICE_TITLES

    parser = subparsers.add_parser("interactive", help="a lesion from clicks, boxes and scribbles in a file",
                                   description="Segment a lesion of IMAGE from the prompts in PROMPTS.json.",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="volume (.nii.gz, .nrrd, .mha) or a DICOM series folder")
    parser.add_argument("--prompts", required=True, type=Path, help="the prompt file (format below)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the results (created)")
    parser.add_argument("--backend", default=InteractiveForm.backend,
                        help=f"the interactive backend (default {InteractiveForm.backend}, which needs no weights)")
    parser.add_argument("--device", default=InteractiveForm.device, choices=tuple(DEVICE_TITLES),
                        help="where the backend runs (default auto)")
    parser.add_argument("--segment-name", default=InteractiveForm.new_segment_name,
                        help=f"the segment's name (default {InteractiveForm.new_segment_name})")
    parser.set_defaults(func=run)


def read_prompt_file(path: Path) -> list:
    """The prompts of a PROMPTS.json file in LPS millimetres; any problem is one InputError."""
    from ..interactive.prompts import prompts_from_json

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"No prompt file {path}", "it does not exist", "check the path of --prompts") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"Cannot read the prompt file {path}", str(error),
                         "give a JSON file as described in `segforge interactive --help`") from error
    prompts = prompts_from_json(document)
    if not prompts:
        raise InputError(f"The prompt file {path} holds no prompts", "its list of prompts is empty",
                         "add at least one positive click or a box on the lesion")
    return prompts


def check_prompts(prompts: list, image: Image) -> None:
    """Every prompt lands on the image and the first is positive, before any interaction runs."""
    from ..interactive.prompts import to_voxels

    for prompt in prompts:
        to_voxels(prompt, image)
    if not prompts[0].positive:
        raise InputError("The first prompt is negative", "there is no lesion yet to take voxels away from",
                         "start the prompt file with a positive click or a box on the lesion")


def run(args: argparse.Namespace) -> int:
    from ..interactive.session import InteractiveSession

    options = interactive_form(args).session_options()
    prompts = read_prompt_file(args.prompts)
    require_output_folder(args.out)
    started = time.perf_counter()
    image = read_volume(args.image)
    check_prompts(prompts, image)
    session = InteractiveSession(image, options["backend"], options["device"])
    steps = []
    with progress_bar("lesion") as report:
        for n, prompt in enumerate(prompts):
            began = time.perf_counter()
            session.interact(prompt, lambda f, m, n=n: report((n + f) / len(prompts), f"prompt {n + 1}: {m}"))
            steps.append({"type": _kind(prompt), "positive": prompt.positive,
                          "seconds": time.perf_counter() - began, "voxels": int(np.count_nonzero(session.mask))})
        report(1.0, "done")
    summary = _summary(args, session, steps, time.perf_counter() - started)
    files = _write_outputs(image.with_array(session.mask), options["segment_name"], summary, args.out)
    print(f"lesion: {summary['voxels']} voxels, {summary['volume_ml']:.2f} mL after {len(prompts)} prompts "
          f"({args.backend})")
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return 0


def interactive_form(args: argparse.Namespace) -> Any:
    """The SegInteractive form of the options: a new segment, as the CLI writes one."""
    from SegInteractiveLib.form import InteractiveForm

    return InteractiveForm(backend=args.backend, device=args.device, new_segment_name=args.segment_name.strip())


def _kind(prompt: Any) -> str:
    return type(prompt).__name__.removesuffix("Prompt").lower()


def _summary(args: argparse.Namespace, session: Any, steps: list, seconds: float) -> dict:
    voxel_ml = float(np.prod(session.image.spacing)) / 1000.0
    voxels = int(np.count_nonzero(session.mask))
    return {"input": str(args.image), "prompts": str(args.prompts), "backend": args.backend, "device": args.device,
            "image_key": session.key, "interactions": steps, "total_seconds": seconds,
            "voxels": voxels, "volume_ml": voxels * voxel_ml}


def _write_outputs(mask: Image, segment_name: str, summary: dict, out: Path) -> dict[str, Path]:
    """Both files, each written under a temporary name and renamed: none is ever half-written."""
    from ..segmentation_file import SegmentInfo, write_seg_nrrd

    out.mkdir(parents=True, exist_ok=True)
    seg, table = out / "lesion.seg.nrrd", out / "summary.json"
    seg_tmp, table_tmp = out / ".lesion.partial.seg.nrrd", out / ".summary.partial.json"
    write_seg_nrrd(mask, [SegmentInfo(1, segment_name, (0.85, 0.35, 0.25))], seg_tmp)
    table_tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(seg_tmp, seg)
    os.replace(table_tmp, table)
    return {"segmentation": seg, "summary": table}
