"""``segforge interactive``: a lesion from prompts in a file, replayed one interaction each
(:mod:`segforge.interactive.replay`) on the engine's session in this process, so a prompt file
reproduces a segmentation and benchmarks can time each interaction.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..interactive.replay import (check_prompts, lesion_output_bytes, lesion_summary, read_prompt_document,
                                  replay_prompts, write_lesion_outputs)
from .dicom_option import add_dicom_option, check_dicom_request, dicom_source
from .input_options import add_input_options, read_input
from .output_folder import OUTPUT_POLICY, add_output_options, options_of, output_set
from .progress_bar import progress_bar

EPILOG = """\
PROMPTS.json, in millimetres of the patient coordinate system named in it:
  {"coordinateSystem": "LPS",
   "prompts": [{"type": "point", "position": [x, y, z], "positive": true},
               {"type": "box", "min": [x, y, z], "max": [x, y, z]},
               {"type": "box", "min": [x, y, z], "max": [x, y, z], "axes": [[x, y, z], [x, y, z], [x, y, z]]},
               {"type": "scribble", "points": [[x, y, z], ...], "positive": false},
               {"type": "lasso", "points": [[x, y, z], ...], "positive": true}]}
a lasso is a closed contour (the last point joins the first) in one slice of the image: what it
encloses there is the lesion in that slice (positive) or is erased (negative). A box's min and
max are opposite corners; with axes (three perpendicular unit directions) its edges run along
them instead of the patient axes. A key not shown here is an error, not ignored.

writes into --out: lesion.seg.nrrd (one segment, named by --segment-name, on the image's grid),
summary.json (the prompts' coordinate system, backend, the device it ran on, image key, each
interaction's type, sign, seconds and mask voxels, total seconds, lesion volume in mL) and
manifest.json; with --dicom (IMAGE a DICOM
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

    parser = subparsers.add_parser("interactive", help="a lesion from clicks, boxes, scribbles and lassos in a file",
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


def run(args: argparse.Namespace) -> int:
    from ..interactive.session import InteractiveSession

    options = interactive_form(args).session_options()
    prompts, coordinate_system = read_prompt_document(args.prompts)
    check_dicom_request(args)
    with output_set(args, "interactive", INTERACTIVE_SIZE_FACTOR, {"options": options_of(args)}) as outputs:
        started = time.perf_counter()
        image = read_input(args)
        source = dicom_source(args, image, outputs.folder)
        check_prompts(prompts, image)
        session = InteractiveSession(image, options["backend"], options["device"])
        with progress_bar("lesion") as report:
            steps = replay_prompts(session, prompts, report)
        # the device the backend ran on (the random walker: the CPU, whatever --device asked for)
        summary = lesion_summary(session, steps, time.perf_counter() - started, input=str(args.image),
                                 prompts=str(args.prompts), coordinate_system=coordinate_system,
                                 backend=args.backend, device=session.device, device_requested=args.device)
        outputs.require_space(lesion_output_bytes(session.mask))
        written = write_lesion_outputs(image.with_array(session.mask), options["segment_name"], summary,
                                       outputs.folder)
        if source is not None:
            from ..dicom.results import lesion_dicom
            from ..interactive.replay import lesion_segment

            written.update(lesion_dicom(outputs.folder, source, image.with_array(session.mask),
                                        lesion_segment(options["segment_name"]), args.backend))
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
