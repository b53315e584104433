"""``segforge batch``: one workflow over a cohort, on Dask (:mod:`segforge.batch`).

The workflow's own options (``--preset``, ``--structures``, ``--backend``...) are read by that
workflow's command parser and turned into parameters by its module form, exactly as
``segforge vessel|organ|interactive`` does: a batch and a single run of the same options
give the same parameters. This file only wires the options to :func:`segforge.batch.run_batch`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import InputError, SegForgeError

EPILOG = """\
INPUTS is a folder of volumes (a case per file; NAME.prompts.json beside a volume is its prompt
file), a CSV/TSV manifest (a header row, then a row per case; columns case_id, image, series_uid,
segment (FILE[:LABEL]), prompts, seeds (x,y,z;x,y,z in LPS mm); paths relative to the manifest)
or a DICOM folder tree (a case per series that --modality and --description select).
Instead of INPUTS, --pacs-query KEY=VALUE (repeated) makes a PACS query the cohort: a case per
image series of the matching studies that --modality and --description select, named by its
Series Instance UID, fetched by the worker that runs it into --out/pacs_cache/ (verified by
SHA-256, fetched again only when the PACS holds other instances), with seg.dcm and sr.dcm in its
folder; --store sends them back to the PACS (what it holds already is never sent twice). The PACS
is the one `segforge pacs` uses (DICOMweb or DIMSE, from the environment or the config file).
--dicom with a DICOM tree writes seg.dcm and sr.dcm per case too.

Options not listed here are the workflow's own, as `segforge WORKFLOW --help` lists them
(--preset, --structures, --backend, --device...); they apply to every case.

writes into --out: cases/CASE/ per case (the single command's files, manifest.json and
run_record.json: inputs with SHA-256, parameters, versions, device, timings, warnings; each
written all or nothing), cohort_WORKFLOW.csv and .parquet (the cohort table, rewritten as cases
finish), failures.csv (what, why, todo per failed case) and batch.json. A rerun skips the cases
whose run record has the same inputs (SHA-256) and parameters. Ctrl-C stops cleanly: every case
folder is whole or absent. Exit status: 0 all cases done or skipped, 1 some failed, 130 interrupted.

examples:
  segforge batch organ cts/ --out results/ --workers 2 --structures lungs,bones
  segforge batch vessel cohort.csv --out results/ --preset mra
  segforge batch vessel segs/ --out results/ --segments --segment-label aorta
  segforge batch organ dicom/ --out results/ --modality CT --description 'abdomen|thorax'
  segforge batch interactive lesions.tsv --out results/ --backend random-walker
  segforge batch organ cts/ --out results/ --scheduler tcp://10.0.0.5:8786
  segforge batch organ cts/ --out results/ --gpus 2 --device cuda
  segforge batch organ dicom/ --out results/ --modality CT --dicom
  segforge batch organ --pacs-query PatientID=12345 --pacs-query StudyDate=20240101- --modality CT \\
      --out results/ --store
"""

WORKFLOW_COMMANDS = ("vessel", "organ", "interactive")
#: Workflow options that make no sense for a cohort (the batch sets them per case).
_REFUSED = {"--out": "the batch's --out", "--overwrite": "a rerun redoes changed cases itself",
            "--series": "a DICOM tree gives each case its series (or the manifest's series_uid column)",
            "--segment": "give segments per case: the manifest's segment column, or --segments with a folder",
            "--dicom-derived": "a batch writes DICOM results for DICOM series only (--dicom)"}
_PLACEHOLDER = "<each case>"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("batch", help="one workflow over a cohort (folder, manifest or DICOM tree), "
                                                 "on Dask, resumable, with a cohort table",
                                   description="Run WORKFLOW on every case of INPUTS, each into its own folder.",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", choices=WORKFLOW_COMMANDS, help="the workflow each case runs")
    parser.add_argument("inputs", type=Path, nargs="?", default=None,
                        help="a folder of volumes, a .csv/.tsv manifest or a DICOM tree (or --pacs-query)")
    parser.add_argument("--out", required=True, type=Path, help="the cohort's results folder (created)")
    parser.add_argument("--kind", choices=("auto", "folder", "manifest", "dicom"), default="auto",
                        help="what INPUTS is (default: a .csv/.tsv is a manifest, a folder with volume files a "
                             "folder of volumes, any other folder a DICOM tree)")
    parser.add_argument("--modality", default=None, help="DICOM tree: only series of this modality (CT, MR...)")
    parser.add_argument("--description", default=None, metavar="REGEX",
                        help="DICOM tree: only series whose description matches (case-insensitive)")
    parser.add_argument("--pacs-query", action="append", default=[], metavar="KEY=VALUE",
                        help="the cohort is the PACS's studies matching these DICOM keyword filters (repeat: "
                             "PatientID=..., StudyDate=20240101-20241231, AccessionNumber=..., "
                             "ModalitiesInStudy=CT); --modality / --description choose their series")
    parser.add_argument("--store", action="store_true",
                        help="with --pacs-query: store each case's seg.dcm and sr.dcm back in the PACS")
    parser.add_argument("--segments", action="store_true",
                        help="vessel: the folder's files are segments (label maps, .seg.nrrd), not images")
    parser.add_argument("--segment-label", default=None, metavar="LABEL|NAME",
                        help="vessel: the segment to read from each segment file that names none")
    parser.add_argument("--prompts", type=Path, default=None,
                        help="interactive: the prompt file of every case that has none of its own")
    cluster = parser.add_argument_group("cluster (Dask distributed)")
    cluster.add_argument("--workers", type=int, default=None,
                         help="worker processes of the local cluster (default 1, or one per GPU)")
    cluster.add_argument("--threads-per-worker", type=int, default=1, help="threads of each worker (default 1)")
    cluster.add_argument("--memory-limit", default="auto",
                         help="memory of each worker, e.g. 4GB (default auto: the machine's memory shared out)")
    cluster.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                         help="use this existing Dask cluster instead of a local one (dask-jobqueue, "
                              "dask-kubernetes, `dask scheduler`)")
    cluster.add_argument("--gpus", type=int, default=0,
                         help="one case per GPU: each case asks the Dask resource GPU=1 (a local cluster gets a "
                              "worker per GPU)")
    cluster.add_argument("--allowed-failures", type=int, default=2,
                         help="times a case may lose its worker (killed, out of memory) before it is recorded as "
                              "failed (local cluster; an existing scheduler keeps its own setting)")
    parser.set_defaults(func=run, takes_workflow_options=True)


def workflow_arguments(workflow: str, extra: list[str]) -> argparse.Namespace:
    """The workflow's options, read by that workflow's own command parser."""
    from . import interactive_cmd, organ_cmd, vessel_cmd

    for option in extra:
        name = option.split("=", 1)[0]
        if name in _REFUSED:
            raise InputError(f"{name} is not a batch option", _REFUSED[name], f"remove {name}")
    parser = argparse.ArgumentParser(prog="segforge batch")
    subparsers = parser.add_subparsers(dest="command")
    {"vessel": vessel_cmd, "organ": organ_cmd, "interactive": interactive_cmd}[workflow].register(subparsers)
    fillers = ["--out", _PLACEHOLDER]
    if workflow == "interactive" and not any(o.split("=", 1)[0] == "--prompts" for o in extra):
        fillers += ["--prompts", _PLACEHOLDER]
    return parser.parse_args([workflow, _PLACEHOLDER, *fillers, *extra])


def workflow_parameters(workflow: str, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(the engine parameters, the options every case shares), through the module's form."""
    options: dict[str, Any] = {"allow_gaps": args.allow_gaps}
    if getattr(args, "dicom", False):
        options["dicom"] = True
    if workflow == "vessel":
        from .vessel_cmd import vessel_form

        form = vessel_form(args)
        if not form.segment_name:
            raise InputError("No segment name", "--segment-name is empty", "give the vessel segment a name")
        options.update(segment_name=form.segment_name, preset=form.shown_preset())
        return form.pipeline_parameters(), options
    if workflow == "organ":
        from ..organ.models import organ_models
        from ..organ.pipeline import check_request
        from .organ_cmd import organ_form

        form = organ_form(args)
        parameters = form.parameters(organ_models())
        check_request(parameters)  # an unknown model or structure, or missing weights: said before any case
        options["statistics"] = form.create_statistics
        return parameters, options
    from .interactive_cmd import interactive_form

    session = interactive_form(args).session_options()
    return {key: session[key] for key in ("backend", "device", "segment_name")}, options


def pacs_filters(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as query filters (the keywords are checked by the PACS client)."""
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--pacs-query {pair!r} is not KEY=VALUE", "a query filter names a DICOM keyword and "
                             "its value", "write it as e.g. --pacs-query PatientID=12345")
        filters[key.strip()] = value.strip()
    return filters


def _cohort(args: argparse.Namespace, prompts: Any) -> Any:
    """The cases: INPUTS as found on disk, or the PACS query's series."""
    from ..batch import SeriesRule, discover, pacs_cohort

    rule = SeriesRule(args.modality, args.description)
    if args.pacs_query:
        if args.inputs is not None:
            raise InputError("Both INPUTS and --pacs-query are given", "a cohort is one or the other",
                             "give a folder/manifest/DICOM tree, or --pacs-query, not both")
        cohort = pacs_cohort(pacs_filters(args.pacs_query), rule)
        if prompts is not None:
            from dataclasses import replace

            given = str(Path(prompts).absolute())
            cohort.cases = [replace(case, prompts=given) for case in cohort.cases]
        return cohort
    if args.inputs is None:
        raise InputError("No cohort given", "INPUTS and --pacs-query are both missing",
                         "give a folder of volumes, a manifest or a DICOM tree, or --pacs-query KEY=VALUE")
    if args.store:
        raise InputError("--store is for a PACS cohort", "INPUTS are files on this machine",
                         "use --pacs-query KEY=VALUE as the cohort, or store a result with segforge pacs store")
    return discover(args.inputs, args.kind, rule=rule, segment_label=args.segment_label, segments=args.segments,
                    prompts=prompts)


def run(args: argparse.Namespace) -> int:
    from ..batch import ClusterSettings, run_batch

    if not args.debug:  # Dask's own start/stop chatter (INFO on stderr) would bury the progress bar
        import distributed  # noqa: F401 - its import sets its loggers' levels, so it comes first

        logging.getLogger("distributed").setLevel(logging.ERROR)
    workflow_args = workflow_arguments(args.workflow, list(getattr(args, "extra", [])))
    parameters, options = workflow_parameters(args.workflow, workflow_args)
    prompts = getattr(workflow_args, "prompts", None)
    prompts = args.prompts or (None if prompts is None or str(prompts) == _PLACEHOLDER else prompts)
    # the cluster's settings are checked (ClusterSettings refuses what Dask cannot use) before any work
    cluster = ClusterSettings(workers=args.workers, threads_per_worker=args.threads_per_worker,
                              memory_limit=None if args.memory_limit in ("0", "none") else args.memory_limit,
                              scheduler=args.scheduler, gpus=max(0, args.gpus),
                              allowed_failures=max(0, args.allowed_failures))
    cohort = _cohort(args, prompts)
    where = args.inputs if args.inputs is not None else "the PACS"
    for count, what in ((len(cohort.cases), "cases"), (len(cohort.left_out), "left out (listed in batch.json)")):
        if count or what == "cases":
            print(f"{count} {what} in {where} ({cohort.kind})")
    summary = run_batch(args.workflow, cohort.cases, args.out, parameters, options, cluster=cluster,
                        left_out=cohort.left_out, store=args.store)
    for failure in summary.failed[:10]:
        print(f"failed {failure['case_id']}: {SegForgeError(failure['what'], failure['why'], failure['todo']).message}")
    if len(summary.failed) > 10:
        print(f"... and {len(summary.failed) - 10} more failures")
    print(f"cohort table: {', '.join(str(p) for p in summary.tables)}")
    print(summary.line())
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0
