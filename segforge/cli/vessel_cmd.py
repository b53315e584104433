"""``segforge vessel``: the vessel workflow on a file, results into a folder."""
from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from .dicom_option import add_dicom_option, check_dicom_request, dicom_source
from .input_options import add_input_options, read_input
from .output_folder import OUTPUT_POLICY, add_output_options, options_of, output_set
from .progress_bar import progress_bar

if TYPE_CHECKING:
    from SegVesselLib.form import VesselForm

EPILOG = """\
writes into --out: vessels.seg.nrrd (one segment, 'Vessels' or --segment-name, on the image's
grid), centerlines.vtp (a polyline per branch, point array Radius in mm, cell array BranchId),
surface.vtp (both LPS, tagged for Slicer), branches.csv, stenoses.csv, summary.json and
manifest.json; with --dicom (IMAGE a DICOM series folder) also seg.dcm (DICOM SEG) and sr.dcm
(DICOM SR: branch lengths and diameters, stenoses and dilatations with their places,
landmark diameters, all tied to the vessel segment).

--segment starts from a segment you already have (it is the vessel mask; IMAGE, when given too,
must share its grid and sharpens the lumen edge): FILE is a Slicer .seg.nrrd (a segment by name,
ID or label value), a label map (.nii.gz, .nrrd: a label value) or TotalSegmentator's output (a
label name, e.g. aorta); a file holding one segment needs no :LABEL.

examples:
  segforge vessel cta.nii.gz --out results/ --preset cta
  segforge vessel --segment totalseg.nii.gz:aorta --out results/
  segforge vessel cta.nii.gz --segment vessels.seg.nrrd:Aorta --out results/ --source=10,150,-30 \\
      --target=5,160,-250 --landmark=12,155,-80
  segforge vessel mra.nrrd --out results/ --preset mra --seed=-12.5,30,101 --no-surface
  segforge vessel mra.nrrd --out results/ --preset mra --roi=-239,-181,13,-205,-98,35
  segforge models download ID && segforge vessel cta.nii.gz --out results/ --model ID
  segforge vessel cta.nii.gz --out results/ --overwrite       replace the results of an earlier run
  segforge vessel cta_series/ --out results/ --preset cta --dicom     + seg.dcm and sr.dcm for the PACS

""" + OUTPUT_POLICY


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


def intensity_window(text: str) -> tuple[float, float]:
    """argparse type: ``min,max`` intensities (HU on CT)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not min,max (two numbers)") from None
    return (low, high)


#: The results take about this many times the input's size on disk (checked free before the work).
VESSEL_SIZE_FACTOR = 1.0

#: Form field <- option dest, for the options that give a field as it is (None: not given).
FIELD_OPTIONS = {"close_holes_mm": "close_holes", "min_radius_mm": "min_radius", "max_radius_mm": "max_radius",
                 "scales": "scales",
                 "threshold": "threshold", "bright_vessels": "bright_vessels", "hysteresis": "hysteresis",
                 "largest_component": "largest_component", "refine_lumen": "refine_lumen", "model": "model",
                 "device": "device", "segment_name": "segment_name", "stenosis_threshold_percent": "stenosis_threshold",
                 "dilatation_ratio": "dilatation_ratio"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from SegVesselLib.form import PRESET_CHOICES, VesselForm

    defaults = VesselForm()
    parser = subparsers.add_parser("vessel", help="vessel tree of a CTA / MRA: mask, centerlines, radius, "
                                                  "stenoses, surface",
                                   description="Segment the vessels of IMAGE and measure them. A preset fills "
                                               "the fields; each option given replaces its field.",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(parser, optional="may be left out with --segment")
    parser.add_argument("--segment", default=None, metavar="FILE[:LABEL|NAME]",
                        help="the vessel segment to analyse (a .seg.nrrd segment, a label of a label map or of "
                             "TotalSegmentator's output): it is the mask, so no vessel filter runs")
    add_output_options(parser)
    add_dicom_option(parser)
    parser.add_argument("--preset", choices=[c for c in PRESET_CHOICES if c != "custom"], default=defaults.preset,
                        help="cta (contrast CT), mra (bright-lumen MR angiography) or dark (dark vessels)")
    parser.add_argument("--device", default=None, help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--model", default=None, metavar="ID|auto|vesselness-frangi",
                        help="what makes the mask: auto (an installed deep vessel model, else the builtin "
                             "filter), vesselness-frangi (the builtin filter) or a vessel model's catalog id "
                             "(install it with 'segforge models download ID')")
    parser.add_argument("--threshold", type=float, default=None, help="relative vesselness threshold, 0..1")
    parser.add_argument("--hysteresis", action=argparse.BooleanOptionalAction, default=None,
                        help="grow the mask into voxels above half the threshold that touch it")
    parser.add_argument("--min-radius", type=float, default=None, help="smallest vessel radius, mm")
    parser.add_argument("--max-radius", type=float, default=None, help="largest vessel radius, mm")
    parser.add_argument("--scales", type=int, default=None, help="number of radii between the two, 1..20")
    parser.add_argument("--bright-vessels", action=argparse.BooleanOptionalAction, default=None,
                        help="vessels brighter than their surroundings (--no-bright-vessels: darker)")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--intensity-window", type=intensity_window, default=None, metavar="MIN,MAX",
                        help="voxels outside these intensities are never vessel (e.g. 150,700 HU on CTA)")
    window.add_argument("--no-intensity-window", action="store_true", help="no intensity limit")
    parser.add_argument("--largest-component", action=argparse.BooleanOptionalAction, default=None,
                        help="keep only the largest connected vessel tree (ignored with seeds)")
    parser.add_argument("--refine-lumen", action=argparse.BooleanOptionalAction, default=None,
                        help="move the mask's edge onto the lumen edge of the intensities")
    parser.add_argument("--seed", type=lps_point, action="append", default=[], metavar="X,Y,Z",
                        help="keep the vessels touching this LPS point (mm); repeat for more")
    parser.add_argument("--roi", type=lps_box, default=None, metavar="XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX",
                        help="work only inside this LPS box (mm)")
    parser.add_argument("--source", type=lps_point, default=None, metavar="X,Y,Z",
                        help="the centerlines start at this LPS point (mm); without it the tree is rooted at "
                             "its widest end")
    parser.add_argument("--target", type=lps_point, action="append", default=[], metavar="X,Y,Z",
                        help="a centerline runs from the source to this LPS point (mm); repeat for more "
                             "(without targets: the whole tree)")
    parser.add_argument("--landmark", type=lps_point, action="append", default=[], metavar="X,Y,Z",
                        help="measure the diameters in the plane perpendicular to the centerline nearest this "
                             "LPS point (mm); repeat for more (landmarks.csv)")
    parser.add_argument("--close-holes", type=float, default=None, metavar="MM",
                        help=f"close tunnels and cavities of the mask smaller than this before the centerlines "
                             f"(default {defaults.close_holes_mm:g}; 0: off)")
    parser.add_argument("--segment-name", default=None, help=f"the vessel segment's name (default "
                                                             f"{defaults.segment_name})")
    parser.add_argument("--stenosis-threshold", type=float, default=None,
                        help=f"report narrowings of at least this %% diameter stenosis (default "
                             f"{defaults.stenosis_threshold_percent:g})")
    parser.add_argument("--dilatation-ratio", type=float, default=None,
                        help=f"report widenings to at least this many times the healthy reference diameter "
                             f"(default {defaults.dilatation_ratio:g})")
    parser.add_argument("--no-centerlines", action="store_true", help="mask (and surface) only")
    parser.add_argument("--no-stenoses", action="store_true", help="skip the stenosis analysis")
    parser.add_argument("--no-surface", action="store_true", help="skip the surface mesh")
    parser.set_defaults(func=run)


def vessel_form(args: argparse.Namespace) -> VesselForm:
    """The SegVessel form the options fill: the preset's fields, then each option given."""
    from SegVesselLib.form import VesselForm

    values = {field: getattr(args, dest) for field, dest in FIELD_OPTIONS.items() if getattr(args, dest) is not None}
    if args.intensity_window is not None:
        values.update(limit_intensity=True, min_intensity=args.intensity_window[0],
                      max_intensity=args.intensity_window[1])
    elif args.no_intensity_window:
        values["limit_intensity"] = False
    if args.seed:
        values["seeds_lps"] = tuple(args.seed)
    if args.roi is not None:
        values["roi_lps"] = args.roi
    if args.segment:
        values.update(segment=args.segment, input_kind="both" if args.image else "segment")
    values.update(source_lps=args.source, targets_lps=tuple(args.target), landmarks_lps=tuple(args.landmark))
    values.update(create_centerlines=not args.no_centerlines, create_stenoses=not args.no_stenoses,
                  create_surface=not args.no_surface)
    return VesselForm.from_values(values, VesselForm().with_preset(args.preset))


def run(args: argparse.Namespace) -> int:
    from ..vessel.mask_step import resolve_vessel_model
    from ..vessel.outputs import vessel_output_bytes, write_vessel_outputs
    from ..vessel.pipeline import run_vessel_pipeline
    from ..vessel.tree import dropped_pieces_text, tree_from_result

    from ..errors import InputError
    from ..segment_input import read_segment, split_segment_spec

    if args.image is None and not args.segment:
        raise InputError("No input", "neither IMAGE nor --segment is given",
                         "give the volume (IMAGE), a segment (--segment FILE[:LABEL|NAME]), or both")
    form = vessel_form(args)
    inputs = form.job().inputs  # the options are checked before any volume is read
    parameters = form.pipeline_parameters()
    if "segment" not in inputs:
        resolve_vessel_model(parameters.mask.model)  # a model that is not installed: say so before the work
    check_dicom_request(args)
    segment_file = split_segment_spec(args.segment)[0] if args.segment else None
    with output_set(args, "vessel", VESSEL_SIZE_FACTOR, {"options": options_of(args), "form": form.values()},
                    input_path=args.image if args.image is not None else segment_file) as outputs:
        started = time.perf_counter()
        segment = read_segment(args.segment) if "segment" in inputs else None
        image = read_input(args) if "image" in inputs else None
        source = dicom_source(args, image, outputs.folder) if image is not None else None
        with progress_bar("vessels") as report:
            result = run_vessel_pipeline(image, parameters, report, segment=None if segment is None else segment.mask)
        tree = tree_from_result(result)
        outputs.require_space(vessel_output_bytes(tree))
        extra = {"input": None if args.image is None else str(args.image),
                 "preset": None if "segment" in inputs else form.shown_preset(),
                 "total_seconds": time.perf_counter() - started}
        if segment is not None:
            extra["segment"] = {"file": str(segment.path), "name": segment.name}
        written = write_vessel_outputs(tree, outputs.folder, extra, segment_name=form.segment_name)
        if source is not None:
            import dataclasses

            from ..dicom.results import vessel_dicom
            from ..vessel.outputs import VESSEL_SEGMENT

            written.update(vessel_dicom(outputs.folder, source, tree, dataclasses.replace(
                VESSEL_SEGMENT, name=form.segment_name), str(tree.summary.get("mask_model", "vessel"))))
        files = outputs.commit(written)
    summary = tree.summary
    dilatations = f", {summary['dilatations']} dilatations" if summary.get("dilatations") else ""
    counted = {key: "-" if summary.get(key) is None else summary[key] for key in ("branches", "stenoses")}
    dropped = dropped_pieces_text(summary.get("dropped_pieces"))
    print(f"{summary['mask_voxels']} vessel voxels (model {summary['mask_model']}), {counted['branches']} branches"
          f"{f' ({dropped})' if dropped else ''}, "
          f"{counted['stenoses']} stenoses >= {form.stenosis_threshold_percent:g} %{dilatations}")
    for row in tree.landmark_rows:
        print(landmark_line(row))
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return 0


def landmark_line(row: dict) -> str:
    """One landmark's diameters for the terminal (landmarks.csv has every value)."""
    def mm(key: str) -> str:
        return "-" if row.get(key) is None else f"{row[key]:.1f}"

    return (f"landmark {row['landmark']}: max {mm('max_diameter_mm')} mm, min {mm('min_diameter_mm')} mm, "
            f"area {mm('area_mm2')} mm2 (branch {row['branch']}, {row['arc_mm']:.1f} mm along, "
            f"{row['distance_mm']:.1f} mm from the point)")
