"""``segforge interactive``: a lesion from prompts in a file, replayed one interaction each.

The prompts a user placed in Slicer (or a script wrote) are replayed in order on the
engine's session in this process, exactly as the module applies them, so a prompt file
reproduces a segmentation and benchmarks can time each interaction.
"""
from __future__ import annotations

import argparse
import json
import stat
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..image import Image
from .dicom_option import add_dicom_option, check_dicom_request, dicom_source
from .input_options import add_input_options, read_input
from .output_folder import OUTPUT_POLICY, add_output_options, options_of, output_set
from .progress_bar import progress_bar

EPILOG = """\
PROMPTS.json, in millimetres of the patient coordinate system named in it:
  {"coordinateSystem": "LPS",
   "prompts": [{"type": "point", "position": [x, y, z], "positive": true},
               {"type": "box", "min": [x, y, z], "max": [x, y, z]},
               {"type": "scribble", "points": [[x, y, z], ...], "positive": false}]}

writes into --out: lesion.seg.nrrd (one segment, named by --segment-name, on the image's grid),
summary.json (backend, device, image key, each interaction's type, sign, seconds and mask
voxels, total seconds, lesion volume in mL) and manifest.json; with --dicom (IMAGE a DICOM
series folder) also seg.dcm (DICOM SEG, semi-automatic) and sr.dcm (its volume, DICOM SR).

examples:
  segforge interactive ct.nii.gz --prompts clicks.json --out results/
  segforge interactive ct.nii.gz --prompts clicks.json --out results/ --overwrite

""" + OUTPUT_POLICY

#: The results take about this many times the input's size on disk (checked free before the work).
INTERACTIVE_SIZE_FACTOR = 0.5


def register(subparsers: argparse._SubParsersAction) -> None:
    from SegInteractiveLib.form import InteractiveForm

    from ..forms import DEVICE_TITLES

    parser = subparsers.add_parser("interactive", help="a lesion from clicks, boxes and scribbles in a file",
                                   description="Segment a lesion of IMAGE from the prompts in PROMPTS.json.",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(parser)
    parser.add_argument("--prompts", required=True, type=Path, help="the prompt file (format below)")
    add_output_options(parser)
    add_dicom_option(parser)
    parser.add_argument("--backend", default=InteractiveForm.backend,
                        help=f"the interactive backend (default {InteractiveForm.backend}, which needs no weights)")
    parser.add_argument("--device", default=InteractiveForm.device, choices=tuple(DEVICE_TITLES),
                        help="where the backend runs (default auto)")
    parser.add_argument("--segment-name", default=InteractiveForm.new_segment_name,
                        help=f"the segment's name (default {InteractiveForm.new_segment_name})")
    parser.set_defaults(func=run)


#: The lesion segment's colour (RGB 0..1) in every file written.
LESION_COLOR = (0.85, 0.35, 0.25)

#: A prompt file larger than this is not one (a volume or a log given to --prompts by mistake).
MAX_PROMPT_FILE_BYTES = 64 << 20


def read_prompt_file(path: Path) -> list:
    """The prompts of a PROMPTS.json file in LPS millimetres; any problem is one InputError."""
    from ..interactive.prompts import prompts_from_json

    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO would block, /dev/zero never end
            raise InputError(f"Cannot read the prompt file {path}", "it is a folder, a named pipe or a device, "
                             "not a file", "give a JSON file as described in `segforge interactive --help`")
        if status.st_size > MAX_PROMPT_FILE_BYTES:
            raise InputError(f"The prompt file {path} is too large", f"it holds {status.st_size:,} bytes; a prompt "
                             f"file of clicks, boxes and scribbles holds far less than {MAX_PROMPT_FILE_BYTES:,}",
                             "check that --prompts names the prompt file")
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
    check_dicom_request(args)
    with output_set(args, "interactive", INTERACTIVE_SIZE_FACTOR, {"options": options_of(args)}) as outputs:
        started = time.perf_counter()
        image = read_input(args)
        source = dicom_source(args, image, outputs.folder)
        check_prompts(prompts, image)
        session = InteractiveSession(image, options["backend"], options["device"])
        steps = []
        with progress_bar("lesion") as report:
            for n, prompt in enumerate(prompts):
                began = time.perf_counter()
                session.interact(prompt, lambda f, m, n=n: report((n + f) / len(prompts), f"prompt {n + 1}: {m}"))
                steps.append({"type": _kind(prompt), "positive": prompt.positive,
                              "seconds": time.perf_counter() - began,
                              "voxels": int(np.count_nonzero(session.mask))})
            report(1.0, "done")
        summary = _summary(args, session, steps, time.perf_counter() - started)
        outputs.require_space(session.mask.size // 4 + 64 * 1024)
        written = _write_outputs(image.with_array(session.mask), options["segment_name"], summary, outputs.folder)
        if source is not None:
            from ..dicom.results import lesion_dicom
            from ..segmentation_file import SegmentInfo

            written.update(lesion_dicom(outputs.folder, source, image.with_array(session.mask),
                                        SegmentInfo(1, options["segment_name"], LESION_COLOR), args.backend))
        files = outputs.commit(written)
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


def _write_outputs(mask: Image, segment_name: str, summary: dict, folder: Path) -> dict[str, Path]:
    """Both files into ``folder`` (the output set's temporary folder, moved into place whole)."""
    from ..segmentation_file import SegmentInfo, write_seg_nrrd

    seg, table = folder / "lesion.seg.nrrd", folder / "summary.json"
    write_seg_nrrd(mask, [SegmentInfo(1, segment_name, LESION_COLOR)], seg)
    table.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return {"segmentation": seg, "summary": table}
