"""``segforge organ``: organs / tissues of a CT or MR file, results into a folder."""
from __future__ import annotations

import argparse
import time

from .dicom_option import add_dicom_option, check_dicom_request, dicom_source
from .input_options import add_input_options, read_input
from .output_folder import OUTPUT_POLICY, add_output_options, options_of, output_set
from .progress_bar import progress_bar

EPILOG = """\
writes into --out: organs.seg.nrrd (a segment per structure, named as the model names it,
with terminology and colour, on the image's grid), statistics.csv (voxels, volume_ml, mean
and sd of the image per structure), summary.json (model, device, warnings, seconds) and
manifest.json; with --dicom also seg.dcm (DICOM SEG) and sr.dcm (DICOM SR: volume, mean and
SD per structure, each tied to its segment).

examples:
  segforge organ ct.nii.gz --out results/                              ct-tissues, no weights needed
  segforge organ ct.nii.gz --out results/ --structures lungs,bones
  segforge models download totalseg-total-fast
  segforge organ ct.nii.gz --out results/ --model totalseg-total --fast --structures liver,spleen
  segforge organ ct.nii.gz --out results/ --overwrite                  replace an earlier run's results
  segforge organ ct_series/ --out results/ --dicom                     + seg.dcm and sr.dcm for the PACS

""" + OUTPUT_POLICY

#: The results take about this many times the input's size on disk (checked free before the work).
ORGAN_SIZE_FACTOR = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    from SegOrganLib.form import OrganForm

    parser = subparsers.add_parser("organ", help="many labelled structures of a CT / MR, with statistics",
                                   description="Segment the organs or tissues of IMAGE.", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(parser)
    add_output_options(parser)
    add_dicom_option(parser)
    parser.add_argument("--model", default=OrganForm.model,
                        help=f"an organ model's catalog id (default {OrganForm.model}, which needs no weights; "
                             "`segforge models list` shows the others)")
    parser.add_argument("--structures", default=None, metavar="A,B,C",
                        help="only these structures, comma-separated, as the model names them (default: all)")
    parser.add_argument("--fast", action="store_true", help="the model's fast, low-resolution variant")
    parser.add_argument("--device", default="auto", help="auto (a GPU with enough memory, else CPU), cpu, cuda "
                                                        "or cuda:N")
    parser.add_argument("--no-statistics", dest="statistics", action="store_false",
                        help="do not measure the structures (no statistics.csv)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..organ.models import organ_models
    from ..organ.outputs import organ_output_bytes, write_organ_outputs
    from ..organ.pipeline import check_request, segment_organs
    from ..organ.statistics import structure_statistics

    form = organ_form(args)
    parameters = form.parameters(organ_models())
    check_request(parameters)  # an unknown model or structure, or missing weights: said before any work
    check_dicom_request(args)
    with output_set(args, "organ", ORGAN_SIZE_FACTOR, {"options": options_of(args)}) as outputs:
        started = time.perf_counter()
        image = read_input(args)
        source = dicom_source(args, image, outputs.folder)
        with progress_bar("organs") as report:
            result = segment_organs(image, parameters, report)
        statistics = (structure_statistics(image, result.labels.array, result.names) if form.create_statistics
                      else None)
        outputs.require_space(organ_output_bytes(result))
        extra = {"input": str(args.image), "total_seconds": time.perf_counter() - started}
        written = write_organ_outputs(result, statistics, outputs.folder, extra)
        if source is not None:
            from ..dicom.results import organ_dicom
            from ..organ.outputs import organ_segments

            written.update(organ_dicom(outputs.folder, source, image, result.labels, organ_segments(result.names),
                                       result.model, statistics))
        files = outputs.commit(written)
    for warning in result.warnings:
        print(f"warning: {warning}")
    if statistics:
        found = sum(1 for s in statistics if s.voxels)
        print(f"{found} of {len(statistics)} structures found (model {result.model}, {result.device})")
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return 0


def organ_form(args: argparse.Namespace):
    """The SegOrgan form of the options (no --structures: every structure of the model)."""
    from SegOrganLib.form import OrganForm, split_names

    return OrganForm(model=args.model, structures=None if args.structures is None else tuple(
        split_names(args.structures)), fast=args.fast, device=args.device, create_statistics=args.statistics,
        create_surfaces=False)
