"""``segforge vessel``: the vessel workflow on a file, results into a folder."""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from ..errors import InputError
from ..image_io import read_volume
from .output_folder import require_output_folder
from .progress_bar import progress_bar

EPILOG = """\
writes into --out: vessels.seg.nrrd (segment 'vessels', the image's grid), centerlines.vtp
(a polyline per branch, point array Radius in mm, cell array BranchId), surface.vtp (both
LPS, tagged for Slicer), branches.csv, stenoses.csv and summary.json.

examples:
  segforge vessel cta.nii.gz --out results/ --preset cta
  segforge vessel mra.nrrd --out results/ --preset mra --seed=-12.5,30,101 --no-surface
  segforge vessel mra.nrrd --out results/ --preset mra --roi=-239,-181,13,-205,-98,35
  segforge models download ID && segforge vessel cta.nii.gz --out results/ --model ID
"""


def lps_point(text: str) -> tuple[float, float, float]:
    """argparse type: ``x,y,z`` in LPS millimetres."""
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not x,y,z in millimetres (LPS)") from None
    return (x, y, z)


def lps_box(text: str) -> tuple[float, ...]:
    """argparse type: ``xmin,ymin,zmin,xmax,ymax,zmax`` in LPS millimetres."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 6:
        raise argparse.ArgumentTypeError(f"{text!r} is not xmin,ymin,zmin,xmax,ymax,zmax in millimetres (LPS)")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..vessel.pipeline import PRESETS

    parser = subparsers.add_parser("vessel", help="vessel tree of a CTA / MRA: mask, centerlines, radius, "
                                                  "stenoses, surface",
                                   description="Segment the vessels of IMAGE and measure them.", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="volume (.nii.gz, .nrrd, .mha) or a DICOM series folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for the results (created)")
    parser.add_argument("--preset", choices=PRESETS, default="cta",
                        help="cta (contrast CT), mra (bright-lumen MR angiography) or dark (dark vessels)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--model", default="auto", metavar="ID|auto|vesselness-frangi",
                        help="what makes the mask: auto (an installed deep vessel model, else the builtin "
                             "filter), vesselness-frangi (the builtin filter) or a vessel model's catalog id "
                             "(install it with 'segforge models download ID')")
    parser.add_argument("--threshold", type=float, default=None, help="relative vesselness threshold, 0..1")
    parser.add_argument("--min-radius", type=float, default=None, help="smallest vessel radius, mm")
    parser.add_argument("--max-radius", type=float, default=None, help="largest vessel radius, mm")
    parser.add_argument("--seed", type=lps_point, action="append", default=[], metavar="X,Y,Z",
                        help="keep the vessels touching this LPS point (mm); repeat for more")
    parser.add_argument("--roi", type=lps_box, default=None, metavar="XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX",
                        help="work only inside this LPS box (mm)")
    parser.add_argument("--stenosis-threshold", type=float, default=50.0,
                        help="report narrowings of at least this %% diameter stenosis")
    parser.add_argument("--no-centerlines", action="store_true", help="mask (and surface) only")
    parser.add_argument("--no-stenoses", action="store_true", help="skip the stenosis analysis")
    parser.add_argument("--no-surface", action="store_true", help="skip the surface mesh")
    parser.set_defaults(func=run)


def pipeline_parameters(args: argparse.Namespace) -> "VesselPipelineParameters":  # noqa: F821
    """The pipeline parameters the options ask for (checked before any volume is read)."""
    from ..vessel.pipeline import VesselOutputs, VesselPipelineParameters, preset
    from ..vessel.stenosis import StenosisParameters

    overrides = {name: value for name, value in (("threshold", args.threshold), ("min_radius_mm", args.min_radius),
                                                 ("max_radius_mm", args.max_radius)) if value is not None}
    if args.seed:
        overrides["seeds_lps"] = tuple(args.seed)
    if args.roi is not None:
        overrides["roi_lps"] = args.roi
    if "threshold" in overrides:
        overrides["low_threshold"] = overrides["threshold"] / 2
    mask = dataclasses.replace(preset(args.preset), device=args.device, model=args.model, **overrides)
    if not 0 < args.stenosis_threshold < 100:
        raise InputError("The stenosis threshold is invalid", f"it is {args.stenosis_threshold} %",
                         "give a percentage between 0 and 100")
    outputs = VesselOutputs(centerlines=not args.no_centerlines, stenoses=not (args.no_stenoses or args.no_centerlines),
                            surface=not args.no_surface)
    return VesselPipelineParameters(mask=mask, stenosis=StenosisParameters(threshold_percent=args.stenosis_threshold),
                                    outputs=outputs)


def run(args: argparse.Namespace) -> int:
    from ..vessel.mask_step import resolve_vessel_model
    from ..vessel.outputs import write_vessel_outputs
    from ..vessel.pipeline import run_vessel_pipeline
    from ..vessel.tree import tree_from_result

    parameters = pipeline_parameters(args)
    resolve_vessel_model(parameters.mask.model)  # a model that is not installed: say so before the work
    require_output_folder(args.out)
    started = time.perf_counter()
    image = read_volume(args.image)
    with progress_bar("vessels") as report:
        result = run_vessel_pipeline(image, parameters, report)
    tree = tree_from_result(result)
    files = write_vessel_outputs(tree, args.out, {"input": str(args.image), "preset": args.preset,
                                                  "total_seconds": time.perf_counter() - started})
    summary = tree.summary
    print(f"{summary['mask_voxels']} vessel voxels (model {summary['mask_model']}), {summary['branches']} branches, "
          f"{summary['stenoses']} stenoses >= {args.stenosis_threshold:g} %")
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return 0
