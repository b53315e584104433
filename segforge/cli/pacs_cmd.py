"""``segforge pacs``: find a study, fetch a series, run a workflow on it, store its SEG and SR back.

Thin: the PACS is :class:`segforge.dicom.pacs.Pacs` (DICOMweb), the workflow is the same
command as ``segforge organ|vessel|interactive --dicom``, the files come from its result set.
"""
from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

from .output_folder import add_output_options

EPILOG = """\
The PACS's DICOMweb address and the credentials come from the environment or a config file,
never from the command line:
  export SEGFORGE_PACS_URL=https://pacs.example.org/dicom-web
  export SEGFORGE_PACS_USER=segforge SEGFORGE_PACS_PASSWORD=...      (or ~/.config/segforge/pacs.json,
  {"url": ..., "username": ..., "password": ..., "timeout_s": 30}, chmod 600; SEGFORGE_PACS_CONFIG names another)

examples:
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
    parser = subparsers.add_parser("pacs", help="find, fetch, segment and store back through a PACS (DICOMweb)",
                                   description="Work with a PACS over DICOMweb.", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
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


def run_find(args: argparse.Namespace) -> int:
    from ..dicom.pacs import Pacs

    filters = {key: value for key, value in (("PatientID", args.patient_id), ("AccessionNumber", args.accession),
                                             ("StudyDate", args.date), ("ModalitiesInStudy", args.modality))
               if value}
    studies = Pacs().find_studies(filters)
    for study in studies:
        print("\t".join(study.get(key, "") for key in ("StudyInstanceUID", "StudyDate", "PatientID", "PatientName",
                                                       "ModalitiesInStudy", "StudyDescription")))
    print(f"{len(studies)} {'study' if len(studies) == 1 else 'studies'}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from ..dicom.pacs import Pacs
    from ..output_set import OutputSet

    pacs = Pacs()
    series = pacs.choose_series(args.study, args.series)
    with OutputSet(args.out, overwrite=args.overwrite, parameters={"study": args.study, "series": series},
                   command="pacs fetch", finished_at_commit=True) as outputs:
        paths = pacs.fetch_series(args.study, series, outputs.folder)
        outputs.commit({path.name: path for path in paths})
    print(f"fetched {len(paths)} instances of series {series} into {args.out}")
    return 0


def run_store(args: argparse.Namespace) -> int:
    from ..dicom.pacs import Pacs

    for kind, state in store_result_set(Pacs(), args.folder).items():
        print(f"{state}: {kind}")
    return 0


def store_result_set(pacs, folder: Path) -> dict[str, str]:
    """Store a result folder's seg.dcm and sr.dcm (its manifest checked first: nothing changed)."""
    from ..dicom.results import SEG_FILE, SR_FILE
    from ..errors import InputError
    from ..output_set import MANIFEST, verify_manifest

    files = [folder / SEG_FILE, folder / SR_FILE]
    if not (folder / MANIFEST).is_file() or not all(path.is_file() for path in files):
        raise InputError(f"{folder} holds no DICOM results", f"{SEG_FILE}, {SR_FILE} or {MANIFEST} is missing",
                         "run the workflow with --dicom first (or segforge pacs run)")
    problems = verify_manifest(folder)
    if problems:
        raise InputError(f"The results in {folder} changed since they were written", "; ".join(problems[:3]),
                         "run the workflow again rather than store altered files")
    return {Path(path).name: state for path, state in pacs.store(files).items()}


def run_workflow(args: argparse.Namespace) -> int:
    from ..dicom.pacs import Pacs
    from .main import build_parser

    pacs = Pacs()
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
