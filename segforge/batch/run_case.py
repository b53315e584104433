"""Run one case into its own result folder: the task a Dask worker runs.

The case's folder is an :class:`~segforge.output_set.OutputSet` (written beside, moved in
whole, with its manifest), so a case that fails, or a worker killed in the middle, leaves
no partial results, and the results of an earlier run stay as they were. Beside the
workflow's files it holds ``run_record.json``: the inputs and their SHA-256, the parameters
and their fingerprint, the versions, the device, the timings and the warnings.

:func:`run_case` never raises for a case's own failure: a :class:`SegForgeError` becomes its
what/why/todo, anything else a "SegForge failed" with the exception (a bug to report); so one
bad case never stops the cohort. It returns a small plain dict (the outcome), with the
case's rows for the cohort table. The worker process keeps what it loaded (Python modules,
torch, models in :data:`segforge.runtime.model_cache.shared_models`) for its next case.
"""
from __future__ import annotations

import datetime
import os
import platform
import resource
import socket
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Optional

from .. import __version__
from ..errors import SegForgeError
from ..output_set import OutputSet
from .cases import Case
from .resume import RECORD, fingerprint, input_digests, models_used, plain, refuse_other_workflow, reusable
from .table import case_rows
from .workflows import RUNNERS

#: Packages whose versions each run record keeps.
VERSIONED = ("numpy", "SimpleITK", "scipy", "torch", "vtk", "dask", "distributed")
#: Cases this process has run (a Dask worker keeps its imports and models between them).
_CASES_IN_PROCESS = [0]


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker needs for one case (plain values: it travels to the worker)."""

    workflow: str
    case: Case
    parameters: Any
    cases_folder: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: A PACS cohort: where to fetch each case's series from (never written into a record: it may
    #: hold a password) and whether to store the case's seg.dcm and sr.dcm back.
    pacs: Optional[Any] = None
    store: bool = False


def case_folder(cases_folder: str | os.PathLike, case_id: str) -> Path:
    return Path(cases_folder) / case_id


def run_case(job: CaseJob) -> dict[str, Any]:
    """Run (or skip) one case; its outcome: case_id, status (done, skipped, failed), folder, rows,
    error (what/why/todo), seconds, worker."""
    started = time.perf_counter()
    case, folder = job.case, case_folder(job.cases_folder, job.case.case_id)
    outcome: dict[str, Any] = {"case_id": case.case_id, "input": case.input_path, "folder": str(folder),
                               "rows": [], "worker": _worker()}
    try:
        if case.pacs_series is not None:
            from .pacs_cases import fetch_into_cache

            outcome["fetch"] = fetch_into_cache(case, job.pacs)
        refuse_other_workflow(Path(job.cases_folder).parent, job.workflow, [folder])  # never replace its results
        inputs = input_digests(case)
        models = models_used(job.workflow, job.parameters, case)
        print_ = fingerprint(job.workflow, job.parameters, job.options, case, models)
        record = reusable(folder, inputs, print_)
        if record is not None:
            outcome.update(status="skipped", rows=case_rows(job.workflow, case.case_id, folder))
        else:
            _run(job, folder, inputs, print_, started, models)
            outcome.update(status="done", rows=case_rows(job.workflow, case.case_id, folder))
        if job.store:
            outcome["stored"] = _store(job, folder)
    except SegForgeError as error:
        outcome.update(status="failed", error=error.to_dict())
    except Exception as error:  # noqa: BLE001 - a bug in one case must not stop the cohort: recorded with its trace
        outcome.update(status="failed", error={
            "code": "unexpected", "what": f"SegForge failed on the case {case.case_id}",
            "why": f"{type(error).__name__}: {error}".strip(),
            "todo": "report it with the case's input and the trace in batch.json; the other cases go on"},
            trace=traceback.format_exc())
    outcome["seconds"] = time.perf_counter() - started
    _CASES_IN_PROCESS[0] += 1
    outcome["worker"].update(cases_run=_CASES_IN_PROCESS[0], peak_rss_mb=peak_rss_mb())
    return outcome


def _run(job: CaseJob, folder: Path, inputs: list[dict], print_: str, started: float,
         models: list[dict[str, Any]]) -> None:
    """The workflow into the case's output set, with the run record; moved in whole, or nothing."""
    case = job.case
    warnings: list[str] = []
    began = datetime.datetime.now(datetime.timezone.utc)
    with OutputSet(folder, overwrite=True, input_path=case.input_path and _file_of(case.input_path),
                   parameters={"workflow": job.workflow, "parameters": plain(job.parameters),
                               "options": plain(dict(job.options)), "case": plain(case)},
                   command=f"batch {job.workflow}", input_warnings=warnings) as outputs:
        prepared = time.perf_counter()
        run = RUNNERS[job.workflow](case, job.parameters, job.options, outputs, warnings)
        worked = time.perf_counter()
        record = {"case_id": case.case_id, "workflow": job.workflow, "origin": case.origin,
                  "inputs": inputs, "fingerprint": print_, "models": models, "parameters": plain(job.parameters),
                  "options": plain(dict(job.options)), "case_options": {"seeds_lps": plain(case.seeds_lps),
                                                                        "series_uid": case.series_uid,
                                                                        "segment": case.segment,
                                                                        "prompts": case.prompts},
                  "versions": versions(), "device": run.device, "worker": _worker(),
                  "started": began.isoformat(timespec="seconds"),
                  "timings": {"hash_and_check_s": prepared - started, "workflow_s": worked - prepared},
                  "warnings": [*warnings, *run.warnings]}
        assert outputs.folder is not None
        record["timings"]["total_s"] = time.perf_counter() - started
        (outputs.folder / RECORD).write_text(_json(record), encoding="utf-8")
        outputs.commit({**run.files, "record": outputs.folder / RECORD})


def _store(job: CaseJob, folder: Path) -> dict[str, str]:
    """The case's seg.dcm and sr.dcm into the PACS (what it holds already is not sent again, so
    a rerun completes a half-stored case); a failure says the results are kept."""
    from ..dicom.pacs import open_pacs
    from ..dicom.store_results import store_result_set

    try:
        return store_result_set(open_pacs(job.pacs), folder)
    except SegForgeError as error:
        why = f"{error.what.rstrip('.')}: {error.why}" if error.why else error.what
        todo = (f"{error.todo.rstrip('.')}; then " if error.todo else "") + \
            "run the batch again with --store (the case is not redone, only stored)"
        raise type(error)(f"The results of {job.case.case_id} were written but not stored", why, todo) from None


def _file_of(path: str) -> str:
    from ..segment_input import split_segment_spec

    return str(split_segment_spec(path)[0])


def versions() -> dict[str, Optional[str]]:
    """SegForge's, Python's and the main libraries' versions (from the installed metadata: no import)."""
    found: dict[str, Optional[str]] = {"segforge": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if platform.system() == "Darwin" else peak / 1024, 1)


def _worker() -> dict[str, Any]:
    """Where the case ran: host, process and the GPU it was shown (``CUDA_VISIBLE_DEVICES``; None: all)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _json(document: Any) -> str:
    import json

    return json.dumps(document, indent=2, default=str) + "\n"
