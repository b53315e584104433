"""A cohort on Dask distributed: a case is a task, the results come back as cases finish.

No scheduling of our own: a :class:`distributed.LocalCluster` of worker processes on this
machine, or the scheduler of an existing cluster (``scheduler="tcp://host:8786"``; so
dask-jobqueue on Slurm/PBS and dask-kubernetes work unchanged). Each worker process runs
:func:`~segforge.batch.run_case.run_case` case after case and keeps what it loaded between
them. GPUs are Dask resources: with ``gpus=N`` a case asks for one ``GPU`` so one case runs
per GPU (a local cluster gets one worker per GPU, each shown only its own GPU).

What the batch promises:

- a failing case is recorded (``failures.csv``: what, why, todo) and the others go on;
- a worker lost mid-case (killed, out of memory) has its case rerun on another worker by the
  scheduler, up to ``allowed_failures`` times, then the case is recorded as failed;
- Ctrl-C (KeyboardInterrupt, or SIGTERM through :func:`segforge.output_set.terminate_raises`)
  cancels what has not finished and stops a local cluster; every case folder is whole or
  absent (each is an all-or-nothing output set; a temporary folder left by a worker stopped
  mid-write is removed), and the tables hold the finished cases;
- the cohort tables, ``failures.csv`` and ``batch.json`` are rewritten whole as cases finish.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from ..csv_table import write_csv
from ..errors import Cancelled, InputError, SegForgeError
from ..file_lock import file_lock
from ..output_set import replace_file, signals_held
from ..progress import ProgressCallback, no_progress
from .cases import Case
from .pacs_cases import PACS_CACHE, cache_name
from .run_case import CaseJob, case_folder, peak_rss_mb, run_case
from .table import CohortTables

WORKFLOWS = ("vessel", "organ", "interactive")
CASES_FOLDER, FAILURES, BATCH_RECORD = "cases", "failures.csv", "batch.json"
#: Held by the batch writing into an --out folder (see _only_batch_on).
LOCK_FILE = ".segforge-batch.lock"
FAILURE_COLUMNS = ("case_id", "input", "what", "why", "todo")
#: Seconds between rewrites of the tables while cases finish (and once at the end).
TABLE_INTERVAL_S = 2.0
#: How often (s) a batch waiting for its cases reports (and so the longest a Cancel waits).
POLL_S = 0.2
#: How long to wait for an existing cluster's first worker.
WORKER_WAIT_S = 60.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cases run: a local cluster (``workers`` processes of ``threads_per_worker``
    threads, each held to ``memory_limit``, e.g. "4GB" or "auto") or ``scheduler``'s cluster."""

    workers: Optional[int] = None  # None: 1, or one per GPU
    threads_per_worker: int = 1
    memory_limit: Optional[str] = "auto"
    scheduler: Optional[str] = None
    gpus: int = 0
    #: Times a case may lose its worker before it is recorded as failed (a local cluster's
    #: scheduler; an existing scheduler keeps its own ``distributed.scheduler.allowed-failures``).
    allowed_failures: int = 2

    def __post_init__(self) -> None:
        """Settings Dask would refuse with a traceback, or run wrongly, are refused here, before
        any work (InputError: what, why, what to do)."""
        for value, name in ((self.workers, "workers"), (self.threads_per_worker, "threads per worker")):
            if value is not None and value < 1:
                raise InputError(f"The {name} setting is {value}", "a cluster needs at least one",
                                 f"give {name} 1 or more (--{name.replace(' ', '-')})")
        if self.gpus and self.workers is not None and self.workers != self.gpus:
            raise InputError(f"--workers {self.workers} with --gpus {self.gpus}",
                             "a local cluster runs one worker per GPU, each shown its own GPU; other counts would "
                             "run several cases on one GPU or leave GPUs idle", "leave --workers out with --gpus")
        if self.memory_limit not in (None, "auto"):
            _check_memory_limit(str(self.memory_limit))
        if self.scheduler:
            _check_scheduler(self.scheduler)


def _check_memory_limit(text: str) -> None:
    from dask.utils import parse_bytes

    try:
        limit = parse_bytes(text)
    except (ValueError, TypeError):
        limit = None
    if limit is None or limit <= 0:
        raise InputError(f"The memory limit {text!r} cannot be read", "it is no amount of memory Dask knows",
                         "give one such as 4GB, 8 GiB or 512MB (or auto, or none for no limit)")


def _check_scheduler(address: str) -> None:
    """A scheduler address Dask can connect to: [tcp|tls|ucx|ws|wss|inproc://]HOST:PORT."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    todo = "give the scheduler's address as tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786; the dashboard's http:// " \
           "address is not it)"
    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"{scheme}:// is not a Dask address scheme (those are {', '.join(sorted(backends))})")
        if scheme != "inproc":
            _host, port = parse_host_port(location)
            if not 0 < int(port) < 65536:
                raise ValueError(f"its port {port} is not between 1 and 65535")
    except (ValueError, TypeError) as error:
        raise InputError(f"The Dask scheduler address {address!r} cannot be used", str(error), todo) from None


@dataclass
class BatchSummary:
    out: Path
    succeeded: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    interrupted: bool = False
    dashboard: Optional[str] = None
    tables: list[Path] = field(default_factory=list)
    workers_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: A PACS cohort with ``store``: case id -> {"seg.dcm": "stored" | "already stored", ...}.
    stored: dict[str, dict] = field(default_factory=dict)

    @property
    def failures_file(self) -> Path:
        return self.out / FAILURES

    def line(self) -> str:
        """The final line: how many cases succeeded, failed, were skipped, and where failures are listed."""
        stored = ""
        if self.stored:
            sent = sum(1 for files in self.stored.values() for state in files.values() if state == "stored")
            stored = f" ({len(self.stored)} stored in the PACS, {sent} objects sent)"
        text = (f"{len(self.succeeded)} succeeded, {len(self.failed)} failed, {len(self.skipped)} skipped{stored}; "
                f"failures listed in {self.failures_file}")
        return f"interrupted ({len(self.not_run)} not run): {text}" if self.interrupted else text


def run_batch(workflow: str, cases: Sequence[Case], out: str | os.PathLike, parameters: Any,
              options: Optional[Mapping[str, Any]] = None, *, cluster: ClusterSettings = ClusterSettings(),
              client: Any = None, progress: bool = True, say: Callable[[str], None] = print,
              left_out: Sequence[dict] = (), report: Optional[ProgressCallback] = None, pacs: Any = None,
              store: bool = False) -> BatchSummary:
    """Run ``workflow`` on every case into ``out`` (``out/cases/<case id>/`` each, plus the tables).

    ``parameters``: the workflow's engine parameters (``VesselPipelineParameters``,
    ``OrganParameters``, or the interactive session's ``{"backend", "device", "segment_name"}``);
    ``options``: the batch's other settings the cases share (``allow_gaps``, vessel
    ``segment_name``, organ ``statistics``). ``client``: an existing ``distributed.Client`` to use
    (``cluster`` is then ignored). ``report(fraction, message)`` hears of every case finished
    and, while cases run, a few times a second; a :class:`~segforge.errors.Cancelled` it raises
    stops the batch as Ctrl-C does (how a background job's Cancel lands: :mod:`.background`).
    Returns the summary; Ctrl-C or Cancel return it with ``interrupted``.

    PACS cases (:func:`~segforge.batch.pacs_cases.pacs_cohort`) are fetched by the worker that
    runs them into ``out/pacs_cache/``, from the PACS ``pacs`` names (a
    :class:`~segforge.dicom.pacs_config.PacsConfig`; default: the environment or config file
    here), and get seg.dcm and sr.dcm; ``store`` sends those back (never twice).
    """
    if workflow not in WORKFLOWS:
        raise InputError(f"Unknown workflow {workflow!r}", f"segforge batch runs {', '.join(WORKFLOWS)}",
                         "choose one of those")
    if not cases:
        raise InputError("No case to run", "the cohort is empty", "give a folder, manifest or DICOM tree with cases")
    out = Path(out)
    cases_folder = _prepare_out(out, workflow, cases)
    cases, pacs, options = _pacs_settings(cases, out, pacs, store, dict(options or {}))
    summary = BatchSummary(out)
    started = time.perf_counter()
    began = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    tables = CohortTables(workflow, out)
    state = _State(workflow, out, cases, summary, tables, left_out, cluster)
    with _only_batch_on(out), contextlib.ExitStack() as stack:
        own = client is None
        if own:
            client = stack.enter_context(_client(cluster))
        summary.dashboard = _dashboard(client)
        if summary.dashboard:
            say(f"Dask dashboard: {summary.dashboard}")
        resources = _gpu_resources(client, cluster.gpus)
        jobs = [CaseJob(workflow, case, parameters, str(cases_folder), options, pacs if case.pacs_series else None,
                        store and case.pacs_series is not None) for case in cases]
        futures: dict = {}
        try:
            _collect(client, jobs, futures, resources, state, progress, report or no_progress)
        except (KeyboardInterrupt, Cancelled):
            with signals_held(replay=False):  # a second Ctrl-C waits for the clean-up, then is dropped
                summary.interrupted = True
                client.cancel(list(futures))
                if own:
                    stack.close()  # the local workers stop here, before their temporary folders are swept
                    _sweep_partials(cases_folder, cases)
                _recover_finished(state, jobs, began)
                finished = {c for c in (*summary.succeeded, *summary.skipped, *(f["case_id"] for f in summary.failed))}
                summary.not_run = [case.case_id for case in cases if case.case_id not in finished]
        else:
            try:
                summary.workers_peak_rss_mb = _workers_peak(client)
            except KeyboardInterrupt:  # after the last case: nothing is left to run, the end is still written
                summary.interrupted = True
            finally:
                with signals_held(replay=False):
                    _sweep_partials(cases_folder, cases)
        finally:  # the final tables, failures.csv and batch.json, whatever happened (a second Ctrl-C waits)
            with signals_held(replay=False):
                summary.seconds = time.perf_counter() - started
                state.write_all()
    return summary


def _pacs_settings(cases: Sequence[Case], out: Path, pacs: Any, store: bool,
                   options: dict[str, Any]) -> tuple[list[Case], Any, dict[str, Any]]:
    """PACS cases get their cache folder and DICOM results; the PACS settings are read here once
    (a missing or wrong setting stops the batch before any case)."""
    if not any(case.pacs_series for case in cases):
        if store:
            raise InputError("Nothing to store", "store sends the results of PACS cases, and the cohort has none",
                             "use a PACS query as the cohort (--pacs-query), or leave --store out")
        return list(cases), None, options
    from ..dicom.pacs_config import pacs_config
    from .pacs_cases import with_cache

    (out / PACS_CACHE).mkdir(exist_ok=True)
    return with_cache(cases, out), pacs or pacs_config(), {**options, "dicom": True}


@dataclass
class _State:
    workflow: str
    out: Path
    cases: Sequence[Case]
    summary: BatchSummary
    tables: CohortTables
    left_out: Sequence[dict]
    cluster: ClusterSettings
    traces: dict[str, str] = field(default_factory=dict)
    workers: dict[str, dict] = field(default_factory=dict)

    def add(self, outcome: dict) -> None:
        case_id = outcome["case_id"]
        status = outcome.get("status")
        if status == "failed":
            error = outcome.get("error", {})
            self.summary.failed.append({"case_id": case_id, "input": outcome.get("input"),
                                        **{k: error.get(k, "") for k in ("what", "why", "todo")}})
            if outcome.get("trace"):
                self.traces[case_id] = outcome["trace"]
        else:
            (self.summary.skipped if status == "skipped" else self.summary.succeeded).append(case_id)
            self.tables.add(case_id, outcome.get("rows", []))
        if outcome.get("stored"):
            self.summary.stored[case_id] = outcome["stored"]
        worker = outcome.get("worker") or {}
        if worker.get("pid") is not None:
            self.workers[f"{worker.get('host')}:{worker.get('pid')}"] = worker

    def write_all(self) -> None:
        self.summary.tables = self.tables.write()
        failed = sorted(self.summary.failed, key=lambda f: f["case_id"])
        replace_file(self.out / FAILURES, lambda path: write_csv(path, FAILURE_COLUMNS, failed))
        record = {"workflow": self.workflow, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  "cases": len(self.cases), "succeeded": sorted(self.summary.succeeded),
                  "skipped": sorted(self.summary.skipped), "failed": failed, "not_run": self.summary.not_run,
                  "interrupted": self.summary.interrupted, "left_out": list(self.left_out),
                  "traces": self.traces, "seconds": self.summary.seconds,
                  "cluster": {"scheduler": self.cluster.scheduler, "workers": self.cluster.workers,
                              "threads_per_worker": self.cluster.threads_per_worker,
                              "memory_limit": self.cluster.memory_limit, "gpus": self.cluster.gpus,
                              "allowed_failures": self.cluster.allowed_failures},
                  "dashboard": self.summary.dashboard, "worker_processes": self.workers,
                  "workers_peak_rss_mb": self.summary.workers_peak_rss_mb, "stored": self.summary.stored}
        text = json.dumps(record, indent=2, default=str) + "\n"
        replace_file(self.out / BATCH_RECORD, lambda path: path.write_text(text, encoding="utf-8"))


def _collect(client: Any, jobs: Sequence[CaseJob], futures: dict, resources: Optional[dict], state: _State,
             progress: bool, report: ProgressCallback) -> None:
    """Submit the cases, at most one per free worker thread (or GPU) at a time, and take the
    outcomes as they come, with a progress bar (done / failed / skipped, ETA) and ``report``.

    Dask would hand every case to a worker at once (a few independent tasks are never held back
    in its queue), so a worker killed mid-case would take the cases queued behind it down with
    it, each counted as a failure. Submitting as slots free up keeps each worker at its running
    cases; the cluster still chooses the worker (and scales: the slots are counted each time).
    """
    from distributed import TimeoutError as WaitedEnough
    from distributed import wait
    from tqdm import tqdm

    summary, last_write = state.summary, time.monotonic()
    waiting = list(jobs)
    running: set = set()

    def submit(count: int) -> None:
        for job in waiting[:count]:
            key = f"segforge-case-{job.case.case_id}-{uuid.uuid4().hex[:8]}"
            future = client.submit(run_case, job, key=key, pure=False, resources=resources)
            futures[future] = job.case
            running.add(future)
        del waiting[:count]

    def counts() -> str:
        return (f"done {len(summary.succeeded)}, failed {len(summary.failed)}, "
                f"skipped {len(summary.skipped)}")

    submit(_slots(client, resources))
    finished = 0
    with tqdm(total=len(jobs), desc="cases", unit="case", disable=not progress, dynamic_ncols=True) as bar:
        while running:
            report(finished / len(jobs), f"{finished} of {len(jobs)} cases ({counts()})")
            try:  # back as soon as a case ends, or after POLL_S to report (and let a Cancel land)
                done = wait(list(running), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except WaitedEnough:
                continue
            for future in done:
                running.discard(future)
                state.add(_outcome(future, futures[future], state.cluster))
                finished += 1
                bar.set_postfix_str(counts(), refresh=False)
                bar.update(1)
            if waiting:  # none when fewer slots than running cases are left (workers lost meanwhile)
                submit(max(0, _slots(client, resources) - len(running)))
            if time.monotonic() - last_write >= TABLE_INTERVAL_S:
                with signals_held():  # a Ctrl-C during the rewrite lands after it
                    state.write_all()
                last_write = time.monotonic()
    report(1.0, f"{len(jobs)} cases ({counts()})")


def _recover_finished(state: _State, jobs: Sequence[CaseJob], began: str) -> None:
    """After Ctrl-C: a case whose folder a worker moved in before its outcome reached us is
    finished all the same (its folder is whole); count it and put its rows in the table, by
    the resume rule, so the tables never miss a case folder that is there."""
    from .resume import fingerprint, input_digests, reusable
    from .table import case_rows

    summary = state.summary
    known = {*summary.succeeded, *summary.skipped, *(f["case_id"] for f in summary.failed)}
    for job in jobs:
        folder = case_folder(job.cases_folder, job.case.case_id)
        if job.case.case_id in known or not (folder / "manifest.json").is_file():
            continue
        try:
            record = reusable(folder, input_digests(job.case), fingerprint(job.workflow, job.parameters, job.options,
                                                                          job.case))
        except (OSError, SegForgeError):  # a model that no longer resolves: not counted as finished
            record = None
        if record is not None:
            status = "done" if str(record.get("started", "")) >= began else "skipped"
            state.add({"case_id": job.case.case_id, "status": status,
                       "rows": case_rows(job.workflow, job.case.case_id, folder)})


def _slots(client: Any, resources: Optional[dict]) -> int:
    """Cases the cluster can run at once now: its worker threads, or its GPUs (at least one)."""
    if resources:
        workers = client.scheduler_info().get("workers", {}).values()
        return max(1, int(sum(info.get("resources", {}).get("GPU", 0) for info in workers)))
    return max(1, sum(client.nthreads().values()))


def _outcome(future: Any, case: Case, cluster: ClusterSettings) -> dict:
    """The task's outcome; a task that raised (a lost worker, a case that could not be sent) as a failure."""
    from distributed import KilledWorker

    if future.status == "finished":
        return future.result()
    try:
        error = future.exception()
    except Exception as raised:  # noqa: BLE001 - whatever the future says is the reason recorded
        error = raised
    if error is None:  # cancelled or lost (by the scheduler, or another client): Dask gives no exception
        reason = {"what": f"The case {case.case_id} did not finish on the cluster",
                  "why": f"its Dask task was {future.status}: cancelled, or dropped with its worker or by the "
                         "scheduler, before it ended",
                  "todo": "run the batch again (the cases done are skipped); if it recurs, look at the "
                          "scheduler's and workers' logs"}
    elif isinstance(error, KilledWorker):
        limit = (f"{cluster.allowed_failures} retries (allowed_failures)" if cluster.scheduler is None
                 else "the scheduler's distributed.scheduler.allowed-failures retries")
        reason = {"what": f"The case {case.case_id} was lost with its worker every time it ran",
                  "why": f"the Dask worker running it died (killed, out of memory or crashed) after {limit}",
                  "todo": "give the workers more memory (--memory-limit) or fewer threads, or run the case alone "
                          "to see why it ends its process"}
    else:
        reason = {"what": f"The case {case.case_id} could not run on the cluster",
                  "why": f"{type(error).__name__}: {error}".strip(),
                  "todo": "check that every worker has this SegForge installed and sees the input and --out paths"}
    return {"case_id": case.case_id, "input": case.input_path, "status": "failed", "error": reason}


# -- the cluster ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _client(settings: ClusterSettings) -> Iterator[Any]:
    """A client of a new local cluster, or of the scheduler named; closed (a local cluster stopped) on exit."""
    import dask
    from distributed import Client, LocalCluster

    if settings.scheduler:
        try:
            client = Client(settings.scheduler, timeout="20s")
        except (ValueError, TypeError) as error:  # e.g. tls:// without the TLS settings
            raise InputError(f"Cannot connect to the Dask scheduler at {settings.scheduler}", str(error),
                             "check the address and, for tls://, Dask's distributed.comm.tls settings") from None
        except (OSError, TimeoutError) as error:
            raise InputError(f"Cannot reach the Dask scheduler at {settings.scheduler}", str(error) or "timed out",
                             "start the scheduler (and its workers) first, or leave --scheduler out to run on "
                             "this machine") from None
        try:
            _wait_for_workers(client, settings.scheduler)
            yield client
        finally:
            with _shutdown_quiet():
                client.close()
        return
    workers = settings.workers or max(1, settings.gpus)
    config = {"distributed.scheduler.allowed-failures": settings.allowed_failures,
              # a case is long: a worker takes the next one when it is free, none waits queued behind another
              "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(config):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=settings.threads_per_worker,
                               memory_limit=settings.memory_limit, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                               resources={"GPU": 1} if settings.gpus else None)
    try:
        client = Client(cluster)
        try:
            if settings.gpus:
                from .gpu_plugin import OneGpuEach

                client.register_plugin(OneGpuEach(settings.gpus))
            yield client
        finally:
            with _shutdown_quiet():
                client.close()
    finally:
        with _shutdown_quiet():
            cluster.close()


@contextlib.contextmanager
def _shutdown_quiet() -> Iterator[None]:
    """Dask logs the comms its own close breaks (``CommClosedError`` tracebacks, at ERROR) when
    the cluster goes down mid-case, as after Ctrl-C; they say nothing about the cases."""
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        quiet.setLevel(level)


def _wait_for_workers(client: Any, scheduler: str) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise InputError(f"The Dask cluster at {scheduler} has no worker", f"none joined in {WORKER_WAIT_S:g} s",
                         "start workers (`dask worker " + scheduler + "`) or leave --scheduler out") from None


def _dashboard(client: Any) -> Optional[str]:
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a cluster without a dashboard (no bokeh there) still runs the batch
        return None


def _gpu_resources(client: Any, gpus: int) -> Optional[dict[str, int]]:
    """``{"GPU": 1}`` per case when GPUs are asked for; refused when no worker declares one (the
    cases would wait forever)."""
    if not gpus:
        return None
    workers = client.scheduler_info().get("workers", {})
    if not any(info.get("resources", {}).get("GPU") for info in workers.values()):
        raise InputError("No Dask worker declares a GPU", "--gpus asks one GPU per case, and no worker of the "
                         "cluster has the resource GPU", "start the workers with `--resources GPU=1` (one per "
                         "GPU), or leave --gpus out")
    return {"GPU": 1}


def _workers_peak(client: Any) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in client.run(peak_rss_mb).items()}
    except Exception:  # noqa: BLE001 - a measurement only: a worker gone meanwhile leaves it out
        return {}


# -- the --out folder -------------------------------------------------------------------------------


def _prepare_out(out: Path, workflow: str, cohort: Sequence[Case]) -> Path:
    """The cases folder of ``out`` (created); refused before any work when ``out`` is a file or
    holds another workflow's results (:func:`~.resume.refuse_other_workflow`)."""
    from .resume import refuse_other_workflow

    if out.exists() and not out.is_dir():
        raise InputError(f"Cannot write into {out}", "it is a file, not a folder", "give a folder for --out")
    cases = out / CASES_FOLDER
    refuse_other_workflow(out, workflow, [case_folder(cases, case.case_id) for case in cohort])
    try:
        cases.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"Cannot write into {out}", error.strerror or str(error),
                         "choose a folder you may write to for --out") from None
    return cases


@contextlib.contextmanager
def _only_batch_on(out: Path) -> Iterator[None]:
    """Refuse a second batch on ``out`` while one runs there (a lock file in ``out``, released by
    the kernel when the holder dies): each would replace the other's case folders and tables, and
    sweep the other's temporary folders as its own."""
    with file_lock(out / LOCK_FILE, wait=False) as held:
        if not held:
            raise InputError(f"Another segforge batch is writing into {out}", "two batches on one --out would "
                             "replace each other's case folders and tables", "wait for it to finish (or stop it), "
                             "or give this batch another --out")
        yield


def _sweep_partials(cases_folder: Path, cases: Sequence[Case]) -> None:
    """Remove the temporary folders of this cohort's cases (``.<case>.partial-*``) that a worker
    stopped mid-write left behind; only when no worker of ours can still be writing them."""
    ids = {case.case_id for case in cases}
    for path in cases_folder.glob(".*.partial-*"):
        if path.is_dir() and path.name[1:].rsplit(".partial-", 1)[0] in ids:
            shutil.rmtree(path, ignore_errors=True)
    series = {cache_name(case.pacs_series) for case in cases if case.pacs_series}
    for path in (cases_folder.parent / PACS_CACHE).glob(".*.partial-*"):  # a fetch stopped mid-way
        if path.is_dir() and path.name[1:].rsplit(".partial-", 1)[0] in series:
            shutil.rmtree(path, ignore_errors=True)


__all__ = ["BatchSummary", "ClusterSettings", "WORKFLOWS", "case_folder", "run_batch"]
