"""``segforge vessel``: the vessel workflow on files."""
from __future__ import annotations

import argparse

from ..image_io import check_writable, read_volume, write_image
from ..vessel import VesselMaskParameters
from .progress_bar import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("vessel", help="vessel workflow (CTA / MRA)")
    commands = parser.add_subparsers(dest="vessel_command", metavar="STEP", required=True)
    mask = commands.add_parser("mask", help="multi-scale vesselness thresholded into a vessel mask",
                               description="Write a uint8 vessel mask (1 = vessel) on the input's grid.")
    mask.add_argument("input", help="CTA / MRA volume (.nii.gz, .nrrd, .mha) or a DICOM series folder")
    mask.add_argument("output", help="mask file to write (.nii.gz, .nrrd, .seg.nrrd, .mha)")
    defaults = VesselMaskParameters()
    mask.add_argument("--min-radius", type=float, default=defaults.min_radius_mm, help="smallest vessel radius, mm")
    mask.add_argument("--max-radius", type=float, default=defaults.max_radius_mm, help="largest vessel radius, mm")
    mask.add_argument("--scales", type=int, default=defaults.scales, help="number of radii between them")
    mask.add_argument("--threshold", type=float, default=defaults.threshold,
                      help="relative vesselness threshold, 0..1 (higher: fewer, surer voxels)")
    mask.add_argument("--dark-vessels", action="store_true", help="vessels darker than the background")
    mask.add_argument("--min-intensity", type=float, default=None, help="ignore voxels below (e.g. 150 HU)")
    mask.add_argument("--max-intensity", type=float, default=None, help="ignore voxels above (e.g. 700 HU)")
    mask.set_defaults(func=run_mask)


def parameters_from_args(args: argparse.Namespace) -> VesselMaskParameters:
    return VesselMaskParameters(min_radius_mm=args.min_radius, max_radius_mm=args.max_radius, scales=args.scales,
                                bright_vessels=not args.dark_vessels, threshold=args.threshold,
                                min_intensity=args.min_intensity, max_intensity=args.max_intensity)


def run_mask(args: argparse.Namespace) -> int:
    from ..vessel import vessel_mask

    parameters = parameters_from_args(args)  # bad options fail before a big volume is read
    check_writable(args.output)
    image = read_volume(args.input)
    with progress_bar("vessel mask") as report:
        mask = vessel_mask(image, parameters, report)
    write_image(mask, args.output)
    print(f"wrote {args.output}: {int(mask.array.sum())} vessel voxels")
    return 0

