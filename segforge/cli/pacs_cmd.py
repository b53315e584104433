"""``segforge pacs``: find a study, fetch a series, run a workflow on it, store its SEG and SR back.

Thin: the PACS is :func:`segforge.dicom.pacs.open_pacs` (DICOMweb or DIMSE, as the settings
say), the workflow is the same
command as ``segforge organ|vessel|interactive --dicom``, the files come from its result set.
"""
from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

from .output_folder import add_output_options

EPILOG = """\
The PACS's address and the credentials come from the environment or a config file, never from
the command line. DICOMweb:
  export SEGFORGE_PACS_URL=https://pacs.example.org/dicom-web
  export SEGFORGE_PACS_USER=segforge SEGFORGE_PACS_PASSWORD=...      (or ~/.config/segforge/pacs.json,
  {"url": ..., "username": ..., "password": ..., "timeout_s": 30}, chmod 600; SEGFORGE_PACS_CONFIG names another)
DIMSE (C-ECHO, C-FIND, C-GET or C-MOVE, C-STORE; the PACS must know our AE title):
  export SEGFORGE_PACS_PROTOCOL=dimse SEGFORGE_PACS_HOST=pacs.example.org SEGFORGE_PACS_PORT=104
  export SEGFORGE_PACS_AET=PACS SEGFORGE_PACS_CALLING_AET=SEGFORGE     (or protocol, host, port, called_ae,
  calling_ae in the config file)
  a PACS without C-GET: fetch by C-MOVE to our own Storage SCP, listening only while it fetches, on the
  port the PACS's modality entry for our AE title names (fetch, move_port, move_ae, move_bind in the file):
  export SEGFORGE_PACS_FETCH=move SEGFORGE_PACS_MOVE_PORT=11112       [SEGFORGE_PACS_MOVE_AET=SEGFORGE
  SEGFORGE_PACS_MOVE_BIND=0.0.0.0]

examples:
  segforge pacs echo                                                   is the PACS there, does it accept us?
  segforge pacs find --patient-id 12345
  segforge pacs fetch --study 1.2.3 --out ct_series/
  segforge pacs run organ --study 1.2.3 --out results/                 fetch, segment, store seg.dcm + sr.dcm
  segforge pacs run vessel --study 1.2.3 --series 1.2.3.4 --out results/ --options '--preset cta'
  segforge pacs store results/                                          (again) store a result set's SEG and SR

A store sends seg.dcm and sr.dcm one at a time; an object the PACS already holds is not sent
again, so after a failure the same command completes the set without duplicates.
"""

WORKFLOWS = ("organ", "vessel", "interactive")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pacs", help="find, fetch, segment and store back through a PACS "
                                                "(DICOMweb or DIMSE)",
                                   description="Work with a PACS over DICOMweb or DIMSE.", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    echo = commands.add_parser("echo", help="check that the PACS answers and accepts us (C-ECHO on DIMSE)")
    echo.set_defaults(func=run_echo)
    find = commands.add_parser("find", help="list the studies matching the filters")
    find.add_argument("--patient-id", default=None)
    find.add_argument("--accession", default=None)
    find.add_argument("--date", default=None, metavar="YYYYMMDD[-YYYYMMDD]", help="study date or range")
    find.add_argument("--modality", default=None, help="a modality in the study (CT, MR...)")
    find.set_defaults(func=run_find)
    fetch = commands.add_parser("fetch", help="download a series into a folder (written all or nothing)")
    _add_study_options(fetch)
    add_output_options(fetch)
    fetch.set_defaults(func=run_fetch)
    store = commands.add_parser("store", help="store the seg.dcm and sr.dcm of a result folder")
    store.add_argument("folder", type=Path, help="a result folder written with --dicom (its manifest is checked)")
    store.set_defaults(func=run_store)
    workflow = commands.add_parser("run", help="fetch a series, run a workflow with --dicom, store SEG and SR",
                                   description="Fetch, segment, store. --options go to the workflow command "
                                               "(segforge WORKFLOW --help).")
    workflow.add_argument("workflow", choices=WORKFLOWS)
    _add_study_options(workflow)
    add_output_options(workflow)
    workflow.add_argument("--no-store", dest="store", action="store_false",
                          help="keep the results in --out only (store later with segforge pacs store)")
    workflow.add_argument("--options", default="", metavar="'OPTIONS'",
                          help="the workflow's own options, quoted as one argument (e.g. '--preset cta')")
    workflow.set_defaults(func=run_workflow)


def _add_study_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, metavar="UID", help="the Study Instance UID")
    parser.add_argument("--series", default=None, metavar="UID",
                        help="the Series Instance UID (default: the study's one image series)")


def run_echo(args: argparse.Namespace) -> int:
    from ..dicom.pacs import open_pacs

    pacs = open_pacs()
    pacs.echo()
    print(f"the PACS at {pacs.config.address} answers ({pacs.config.protocol})")
    return 0


def run_find(args: argparse.Namespace) -> int:
    from ..dicom.pacs import open_pacs

    filters = {key: value for key, value in (("PatientID", args.patient_id), ("AccessionNumber", args.accession),
                                             ("StudyDate", args.date), ("ModalitiesInStudy", args.modality))
               if value}
    studies = open_pacs().find_studies(filters)
    for study in studies:
        print("\t".join(study.get(key, "") for key in ("StudyInstanceUID", "StudyDate", "PatientID", "PatientName",
                                                       "ModalitiesInStudy", "StudyDescription")))
    print(f"{len(studies)} {'study' if len(studies) == 1 else 'studies'}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from ..dicom.pacs import open_pacs
    from ..output_set import OutputSet

    pacs = open_pacs()
    series = pacs.choose_series(args.study, args.series)
    with OutputSet(args.out, overwrite=args.overwrite, parameters={"study": args.study, "series": series},
                   command="pacs fetch", finished_at_commit=True) as outputs:
        paths = pacs.fetch_series(args.study, series, outputs.folder)
        outputs.commit({path.name: path for path in paths})
    print(f"fetched {len(paths)} instances of series {series} into {args.out}")
    return 0


def run_store(args: argparse.Namespace) -> int:
    from ..dicom.pacs import open_pacs
    from ..dicom.store_results import store_result_set

    for kind, state in store_result_set(open_pacs(), args.folder).items():
        print(f"{state}: {kind}")
    return 0


def run_workflow(args: argparse.Namespace) -> int:
    from ..dicom.pacs import open_pacs
    from ..dicom.store_results import store_result_set
    from .main import build_parser

    pacs = open_pacs()
    series = pacs.choose_series(args.study, args.series)
    options = shlex.split(args.options)
    with tempfile.TemporaryDirectory(prefix="segforge-pacs-") as temporary:
        folder = Path(temporary) / "series"
        pacs.fetch_series(args.study, series, folder)
        argv = [args.workflow, str(folder), "--out", str(args.out), "--dicom", *options]
        if args.overwrite:
            argv.append("--overwrite")
        workflow = build_parser().parse_args(argv)
        code = int(workflow.func(workflow) or 0)
    if code == 0 and args.store:
        for kind, state in store_result_set(pacs, args.out).items():
            print(f"{state}: {kind} (study {args.study})")
    return code
