"""Talk to a worker: spawn a local one on first use, or connect to a shared server.

The client never blocks the caller longer than one short request: ``submit`` returns a
:class:`RemoteJob` at once, and ``poll`` / ``cancel`` are single round trips, so a GUI can
drive a job from a timer. If the worker dies, the client says so and starts a fresh one
for the next job.
"""
from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import Cancelled, SegForgeError, WorkerDied, WorkerError
from ..image import Image
from ..progress import ProgressCallback
from .crop import paste_into_grid
from .jobs import CANCELLED, FINISHED_STATES
from .protocol import (MAX_REPLY_HEADER_BYTES, PROTOCOL_VERSION, Message, payload_size, protocol_mismatch,
                       recv_message, send_message,
                       too_large)
from .server import READY_LINE

_ENGINE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands: queued, running, done, failed or cancelled."""

    state: str
    fraction: float
    message: str
    #: For a cancelled job: seconds from the cancel request to the job's end, timed in the worker.
    cancel_latency_s: Optional[float] = None

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> "JobStatus":
        return cls(str(header["state"]), float(header["fraction"]), str(header["message"]),
                   header.get("cancel_latency_s"))

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass
class JobResult:
    """A finished job's outputs (Images or arrays, on their full grid) and small metadata."""

    outputs: dict[str, Any]
    meta: dict[str, Any]


def python_for_worker() -> str:
    """The Python that runs a local worker: Slicer's ``PythonSlicer`` inside Slicer."""
    slicer = sys.modules.get("slicer")
    if slicer is not None and getattr(slicer, "app", None) is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def tls_context(cafile: Optional[str]) -> ssl.SSLContext:
    """A client TLS context trusting ``cafile`` (the server's certificate or its CA; None: the
    system's authorities), with the file's problems as a :class:`WorkerError`."""
    if cafile is not None and not Path(cafile).is_file():
        raise WorkerError(f"The TLS certificate file {cafile} does not exist",
                          "SEGFORGE_TLS_CA names the certificate that proves the server is the right one",
                          "copy the server's certificate (or its CA) to this machine and point SEGFORGE_TLS_CA "
                          "at it, or unset SEGFORGE_TLS_CA for a server without TLS")
    try:
        return ssl.create_default_context(cafile=cafile)
    except (ssl.SSLError, OSError, ValueError) as error:
        raise WorkerError(f"The TLS certificate file {cafile} cannot be used", f"{type(error).__name__}: {error}",
                          "point SEGFORGE_TLS_CA at the server's PEM certificate (or its CA's)") from error


def unreachable(host: Optional[str], port: Optional[int], error: OSError) -> WorkerError:
    """Why a connection could not even be opened, and what to do."""
    if isinstance(error, ConnectionRefusedError):
        why = f"nothing listens on port {port} of {host} (connection refused)"
    elif isinstance(error, socket.gaierror):
        why = f"the host name {host!r} is unknown ({error.strerror or error})"
    elif isinstance(error, socket.timeout):
        why = "it did not answer within 10 s (a firewall, or the wrong address)"
    else:
        why = f"{type(error).__name__}: {error.strerror or error}"
    return WorkerError(f"Cannot reach the SegForge worker at {host}:{port}", why,
                       "check that the server runs (segforge serve) and that host and port are right")


def tls_failure(host: Optional[str], port: Optional[int], error: BaseException) -> WorkerError:
    """A TLS handshake that failed, said for the user: untrusted certificate, wrong name, no TLS."""
    what = f"Cannot open a secure (TLS) connection to the SegForge server {host}:{port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or str(error)
        if "mismatch" in detail.lower():
            why = f"its certificate is not made out to {host!r} ({detail})"
            todo = "connect with the host name or address the certificate names (SEGFORGE_SERVER)"
        else:
            why = f"its certificate is not trusted ({detail})"
            todo = ("set SEGFORGE_TLS_CA to the server's certificate or the CA that signed it (ask the "
                    "server's administrator for the file)")
        return WorkerError(what, why, todo)
    if isinstance(error, socket.timeout):
        return WorkerError(what, "the server did not complete the TLS handshake within the time limit",
                           "check that the server runs with --tls-cert and that host and port are right")
    reason = getattr(error, "reason", None) or type(error).__name__
    return WorkerError(what, f"the server does not speak TLS on this port ({reason})",
                       "start the server with --tls-cert/--tls-key, or, for a server on a trusted network "
                       "without TLS, unset SEGFORGE_TLS_CA and SEGFORGE_TLS")


class WorkerClient:
    """A connection to one worker; local (spawned on demand) unless a host is given."""

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None, token: Optional[str] = None,
                 tls: Optional[ssl.SSLContext] = None, python: Optional[str] = None,
                 start_timeout_s: float = 60.0, request_timeout_s: float = 60.0) -> None:
        self.local = host is None
        self._host, self._port = host, port
        self._token = token if token is not None else (secrets.token_urlsafe(32) if self.local else "")
        self._tls = tls
        self._python = python
        self._start_timeout_s = start_timeout_s
        self._request_timeout_s = request_timeout_s
        self._process: Optional[subprocess.Popen] = None
        self._log_path: Optional[str] = None
        self._sock: Optional[socket.socket] = None
        self._lock = threading.RLock()
        #: Counts the distinct workers this client has talked to; a job knows its own.
        self.generation = 0
        self._identity: Optional[tuple] = None
        self._max_request_bytes = 0
        #: Why the last local worker ended, for jobs that ask about it later.
        self.last_death: Optional[WorkerDied] = None

    @classmethod
    def from_environment(cls) -> "WorkerClient":
        """A shared server from ``SEGFORGE_SERVER=host:port`` and ``SEGFORGE_TOKEN``, else a local worker.

        ``SEGFORGE_TLS_CA=/path/ca.pem`` (the server's certificate or its CA) turns on TLS;
        ``SEGFORGE_TLS=1`` does too, trusting the system's certificate authorities.
        """
        server = os.environ.get("SEGFORGE_SERVER")
        if not server:
            return cls()
        host, _, port = server.rpartition(":")
        if not port.isdigit():
            raise WorkerError(f"SEGFORGE_SERVER is {server!r}", "it does not end in :PORT",
                              "set it to host:port, e.g. gpu-server:8765")
        tls = None
        if os.environ.get("SEGFORGE_TLS_CA") or os.environ.get("SEGFORGE_TLS") == "1":
            tls = tls_context(os.environ.get("SEGFORGE_TLS_CA") or None)
        return cls(host or "127.0.0.1", int(port), os.environ.get("SEGFORGE_TOKEN", ""), tls=tls)

    # -- connection -------------------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        """The local worker's process id (None before it starts, or for a remote server)."""
        return self._process.pid if self._process is not None else None

    def _ensure_connected(self) -> socket.socket:
        self._notice_local_death()  # one that died while idle: the next job simply gets a fresh one
        if self._sock is not None:
            return self._sock
        if self.local:
            self._spawn()
        try:
            sock = socket.create_connection((self._host, self._port), timeout=10)
        except OSError as error:
            raise unreachable(self._host, self._port, error) from error
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except (OSError, ValueError) as error:  # ssl.SSLError, a reset, a timeout, a bad server name
                sock.close()
                raise tls_failure(self._host, self._port, error) from error
        # Every socket operation is bounded: a hung worker or a silent network becomes an
        # error the GUI can show, never a frozen timer callback.
        sock.settimeout(self._request_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        try:
            hello = self._request({"op": "hello"}).header  # the worker checks our version and token...
        except SegForgeError:
            self._drop_connection()  # e.g. refused as one client too many: the server closes it
            raise
        if hello.get("protocol") != PROTOCOL_VERSION:  # ...and we check its version
            self._drop_connection()
            raise protocol_mismatch(hello.get("version"), hello.get("protocol"), PROTOCOL_VERSION)
        self._max_request_bytes = int(hello.get("max_request_bytes") or 0)
        identity = (self._host, self._port, hello.get("pid"))
        if identity != self._identity:
            self._identity = identity
            self.generation += 1
        return sock

    def _spawn(self) -> None:
        log = tempfile.NamedTemporaryFile(prefix="segforge-worker-", suffix=".log", delete=False)
        self._log_path = log.name
        env = dict(os.environ, SEGFORGE_TOKEN=self._token, SEGFORGE_ALLOW_MODEL_PATHS="1",
                   PYTHONPATH=os.pathsep.join(p for p in (_ENGINE_ROOT, os.environ.get("PYTHONPATH")) if p))
        command = [self._python or python_for_worker(), "-m", "segforge.worker.server",
                   "--host", "127.0.0.1", "--port", "0", "--parent-pid", str(os.getpid()),
                   # its one client is this process: no per-client shares to keep
                   "--max-jobs-per-client", "0", "--max-sessions-per-client", "0"]
        # cwd: `python -m` imports from the working folder first; ours holds the engine we mean.
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                         env=env, text=True, cwd=_ENGINE_ROOT)
        log.close()
        self._host, self._port = "127.0.0.1", self._read_port()

    def _read_port(self) -> int:
        """The port from the worker's ready line (read on a thread: pipes cannot be polled on Windows)."""
        assert self._process is not None and self._process.stdout is not None
        lines: "queue.Queue[str]" = queue.Queue()
        stdout = self._process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self._start_timeout_s)
        except queue.Empty:
            line = ""
        if line.startswith(READY_LINE):
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            return int(fields["port"])
        self._process.kill()
        self._process.wait()
        raise WorkerError("The SegForge worker did not start", self._log_tail() or "it printed nothing",
                          f"see the worker log {self._log_path}; check that the Python dependencies are installed")

    def _forget_process(self, keep_log: bool = False) -> None:
        """Let go of the local worker process; its log is deleted unless it explains a failure."""
        self._process = None
        if self._log_path and not keep_log:
            Path(self._log_path).unlink(missing_ok=True)
            self._log_path = None

    def _log_tail(self) -> str:
        try:
            lines = Path(self._log_path or "").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _request(self, header: dict[str, Any], arrays: Optional[dict[str, Any]] = None,
                 generation: Optional[int] = None) -> Message:
        """One request and its reply; with ``generation``, only to that worker (a job's own)."""
        with self._lock:
            sock = self._ensure_connected()
            if generation is not None and generation != self.generation:
                raise self.last_death or WorkerDied(
                    "The worker that ran this job has stopped",
                    "a fresh worker was started since, and it does not know the job", "run the job again")
            size = payload_size(arrays)
            if self._max_request_bytes and size > self._max_request_bytes:
                raise too_large(size, self._max_request_bytes)  # say so before sending gigabytes
            try:
                send_message(sock, {**header, "protocol": PROTOCOL_VERSION, "token": self._token}, arrays)
                reply = recv_message(sock, max_header=MAX_REPLY_HEADER_BYTES)
            except (OSError, EOFError) as error:
                reply = self._refusal_after_send_failure(sock)
                if reply is None:
                    self._drop_connection()
                    raise self._lost_worker(error) from error
        if not reply.header.get("ok"):
            error = SegForgeError.from_dict(reply.header.get("error") or {})
            if self._closes_connection(error):
                self._drop_connection()
            raise error
        return reply

    @staticmethod
    def _refusal_after_send_failure(sock: socket.socket) -> Optional[Message]:
        """The error reply a worker may have sent before closing on us mid-request."""
        try:
            sock.settimeout(1.0)
            return recv_message(sock, max_header=MAX_REPLY_HEADER_BYTES)
        except (OSError, EOFError):
            return None

    @staticmethod
    def _closes_connection(error: SegForgeError) -> bool:
        return error.code in {"auth", "protocol", "malformed"}

    def _drop_connection(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def _notice_local_death(self) -> Optional[WorkerDied]:
        """If the local worker process has ended, forget it and return why (also kept in ``last_death``)."""
        if not self.local or self._process is None or self._process.poll() is None:
            return None
        self._drop_connection()
        self.last_death = self._death(self._process.returncode)
        self._forget_process(keep_log=True)
        return self.last_death

    def _death(self, code: Optional[int], why: str = "") -> WorkerDied:
        if code is not None and code < 0:
            why = f"its process was ended by signal {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                why += " (killed; the system does this when memory runs out)"
        elif code is not None:
            why = f"its process exited with code {code}; last log line: {self._log_tail() or 'none'}"
        return WorkerDied("The SegForge worker stopped in the middle of the job", why,
                          "run the job again: a fresh worker starts by itself. If it happens again, "
                          "crop the volume or close other programs to free memory")

    def _lost_worker(self, error: BaseException) -> WorkerDied:
        timed_out = isinstance(error, socket.timeout)
        if not self.local:
            if timed_out:
                why = f"it did not answer for {self._request_timeout_s:.0f} s"
            elif isinstance(error, (ConnectionError, EOFError, ssl.SSLEOFError)):
                why = "the server closed the connection in the middle of the exchange (it stopped or restarted)"
            else:
                why = f"{type(error).__name__}: {error}"
            return WorkerDied(f"Lost the connection to the SegForge server {self._host}:{self._port}", why,
                              "check the server and the network, then run the job again (a server "
                              "started with --tls-cert needs SEGFORGE_TLS_CA on this side)")
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(timeout=0 if timed_out else 2)
            except subprocess.TimeoutExpired:
                self._process.kill()  # alive but hung, or lost its socket: end it
                self._process.wait()
        self._forget_process(keep_log=True)
        why = (f"it did not answer for {self._request_timeout_s:.0f} s and was stopped" if timed_out
               else f"the connection broke ({type(error).__name__}) and the worker was stopped")
        self.last_death = self._death(code, why)
        return self.last_death

    # -- jobs -------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        """The worker's version, protocol, pid and task names."""
        return self._request({"op": "hello"}).header

    def submit(self, task: str, inputs: dict[str, Any], params: Optional[dict[str, Any]] = None) -> "RemoteJob":
        """Send a job and return at once; the inputs travel as binary with their geometry."""
        reply = self._request({"op": "submit", "task": task, "params": params or {}}, inputs)
        return RemoteJob(self, str(reply.header["job"]), self.generation)

    def run(self, task: str, inputs: dict[str, Any], params: Optional[dict[str, Any]] = None,
            progress: Optional[ProgressCallback] = None) -> JobResult:
        """Submit and wait: the blocking call for scripts and the command line."""
        return self.submit(task, inputs, params).wait(progress)

    def close(self) -> None:
        """Disconnect; a local worker is asked to stop, and killed if it does not."""
        with self._lock:
            if self.local and self._process is not None and self._process.poll() is None:
                try:
                    if self._sock is not None:
                        send_message(self._sock, {"op": "shutdown", "protocol": PROTOCOL_VERSION,
                                                  "token": self._token})
                    self._process.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self._process.kill()
                    self._process.wait()
            self._drop_connection()
            self._forget_process()

    def __enter__(self) -> "WorkerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RemoteJob:
    """A handle on a submitted job: poll, cancel, collect the result."""

    def __init__(self, client: WorkerClient, job_id: str, generation: int) -> None:
        self.client, self.id, self._generation = client, job_id, generation

    def _call(self, op: str) -> Message:
        with self.client._lock:
            death = self.client._notice_local_death()
            if death is not None and self.client.generation == self._generation:
                raise death  # our worker died: say why, without starting a new one
            return self.client._request({"op": op, "job": self.id}, generation=self._generation)

    def poll(self) -> JobStatus:
        """One short round trip: state, fraction and message."""
        return JobStatus.from_header(self._call("status").header)

    def cancel(self) -> JobStatus:
        """Ask the worker to stop this job; it stops at its next progress report (within a second)."""
        return JobStatus.from_header(self._call("cancel").header)

    def result(self) -> JobResult:
        """Collect a finished job's outputs; raises its error, or Cancelled."""
        reply = self._call("result")
        if reply.header.get("state") == CANCELLED:
            raise Cancelled()
        outputs = dict(reply.arrays)
        for name, crop in (reply.header.get("cropped") or {}).items():
            box = outputs[name]
            full = paste_into_grid(box.array, tuple(crop["offset_kji"]), tuple(crop["shape_kji"]))
            outputs[name] = Image(full, box.spacing, tuple(crop["origin_lps"]), box.direction_lps)
        return JobResult(outputs, dict(reply.header.get("meta") or {}))

    def wait(self, progress: Optional[ProgressCallback] = None, interval_s: float = 0.1) -> JobResult:
        """Poll until the job ends, then collect its result (see :func:`poll_until_finished`)."""
        poll_until_finished(self.poll, self.cancel, progress, interval_s)
        return self.result()


def poll_until_finished(poll: Callable[[], JobStatus], cancel: Callable[[], Any],
                        progress: Optional[ProgressCallback] = None, interval_s: float = 0.1) -> JobStatus:
    """Poll until a job has finished, reporting progress; ``Cancelled`` raised by ``progress`` cancels it.

    Polls every 5 ms at first, slowing to ``interval_s``, so short jobs return promptly.
    """
    delay = min(0.005, interval_s)
    while not (status := poll()).finished:
        if progress is not None:
            try:
                progress(status.fraction, status.message)
            except Cancelled:
                cancel()
                raise
        time.sleep(delay)
        delay = min(delay * 2, interval_s)
    return status

_shared: Optional[WorkerClient] = None
_shared_lock = threading.Lock()


def shared_worker() -> WorkerClient:
    """The one worker the modules of a Slicer session share (created on first use).

    ``SEGFORGE_SERVER`` / ``SEGFORGE_TOKEN`` point it at a shared server; otherwise a local
    worker is spawned on the first job and stopped when Python exits.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = WorkerClient.from_environment()
            atexit.register(_shared.close)
        return _shared
