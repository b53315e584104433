"""The worker process: a socket server that runs engine jobs in the background.

The same server runs locally (spawned by a Slicer module on loopback with a random
token) and on a shared GPU machine (``segforge serve --host H --port P --token T``).
Each connection gets a thread; jobs run one at a time on the :class:`JobQueue`.
Every request carries the protocol version and the token, both checked before the
request's arrays are read.

Hardening for a shared server (see :class:`Limits`):

- a connection must deliver its whole first request header, with the right token, within
  ``auth_deadline_s`` (TLS handshake included), however it trickles its bytes;
- connections that have not authenticated yet have their own small cap, in all and per
  address, so strangers never take the places of authenticated clients (those have theirs);
  excess connections are closed at once;
- each client, counted by its IP address (one shared token cannot tell users apart), may
  have a bounded number of unfinished jobs and of interactive sessions in use; more are
  refused with :class:`~segforge.errors.WorkerBusy`;
- ``GET /health`` (plain HTTP, or HTTPS on a TLS server) answers ``200 ok`` without a
  token and without saying anything else, for load balancers; ``--health-port`` answers it
  on a port of its own as well, where no stranger can take its place (:class:`_HealthPort`).
"""
from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from .. import __version__
from ..errors import AuthError, SegForgeError, WorkerBusy, WorkerError
from .crop import crop_to_foreground
from .jobs import FAILED, DONE, Job, JobQueue
from .protocol import (DEFAULT_MAX_PAYLOAD_BYTES, PREFIX, PROTOCOL_VERSION, MalformedMessage, protocol_mismatch,
                       recv_arrays, recv_header, send_message)
from .tasks import TASKS

log = logging.getLogger(__name__)

#: The line a spawned worker prints once it listens; the client reads the port from it.
READY_LINE = "SEGFORGE_WORKER_READY"
#: The request a load balancer's health check sends (plain HTTP; HTTPS on a TLS server).
HEALTH_REQUEST = b"GET /health"
_HEALTH_REPLY = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                 b"Connection: close\r\n\r\nok\n")


@dataclass(frozen=True)
class Limits:
    """What one worker allows; ``segforge serve`` options set them (0: no per-client limit)."""

    #: Authenticated connections served at once; more are refused (WorkerBusy) and closed.
    max_connections: int = 64
    #: Connections that have not authenticated yet, in all and from one IP address; more
    #: are closed at once, so strangers never take the places of authenticated clients.
    max_pending: int = 16
    max_pending_per_address: int = 4
    #: Seconds a connection has, from its accept, for the TLS handshake and its whole first
    #: request header with the right token: a deadline, however slowly the bytes trickle.
    auth_deadline_s: float = 10.0
    #: Jobs one client (one IP address) may have queued or running at once.
    max_jobs_per_client: int = 8
    #: Interactive sessions one client (one IP address) may have in use at once.
    max_sessions_per_client: int = 2


class _Deadline(Exception):
    """A connection missed its authentication deadline."""


class _DeadlineReader:
    """The socket as ``recv_header`` reads it before authentication: every read is bounded by
    what is left of one deadline (a per-read timeout alone lets a trickle go on forever), and
    the first bytes are kept, to recognise a health check."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline
        self.first = b""

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _Deadline()
        self._sock.settimeout(left)
        try:
            count = self._sock.recv_into(buffer, nbytes) if nbytes else self._sock.recv_into(buffer)
        except socket.timeout:
            raise _Deadline() from None
        if len(self.first) < PREFIX.size:
            self.first += bytes(memoryview(buffer)[:count])[:PREFIX.size - len(self.first)]
        return count


class _Pending:
    """A connection that has not authenticated yet."""

    def __init__(self, address: str, sock: socket.socket) -> None:
        self.address, self.sock, self.evicted = address, sock, False

    def close_now(self) -> None:
        """Shut the socket down from another thread: its reader wakes up and ends the connection."""
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)  # the plain call, on a TLS socket too
        except OSError:
            pass


class _Admission:
    """Counts connections: pending (not yet authenticated, in all and per address) and authenticated.

    A new connection from an address at its own pending cap is refused. When all pending places
    are taken, a connection from an address with fewer pending connections than the busiest one
    takes the place of that address's oldest: a flood from a few addresses cannot keep a client
    from another address out (one from as many addresses as places could, until its deadlines).
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._pending: dict[str, list[_Pending]] = {}
        self.authenticated = 0

    @property
    def pending(self) -> int:
        return sum(len(entries) for entries in self._pending.values())

    def admit(self, address: str, sock: socket.socket) -> Optional[_Pending]:
        victim = None
        with self._lock:
            mine = len(self._pending.get(address, ()))
            if mine >= self._limits.max_pending_per_address:
                return None
            if self.pending >= self._limits.max_pending:
                busiest = max(self._pending, key=lambda a: len(self._pending[a]), default=None)
                if busiest is None or len(self._pending[busiest]) <= mine:
                    return None
                victim = self._pending[busiest][0]
                self._forget(victim)
                victim.evicted = True
            entry = _Pending(address, sock)
            self._pending.setdefault(address, []).append(entry)
        if victim is not None:
            log.info("closing a connection from %s that waits to authenticate, for one from %s",
                     victim.address, address)
            victim.close_now()
        return entry

    def authenticate(self, entry: _Pending) -> bool:
        """Move a pending connection to the authenticated ones; False when those are full or it was evicted."""
        with self._lock:
            if entry.evicted or self.authenticated >= self._limits.max_connections:
                return False
            self._forget(entry)
            entry.evicted = True  # no longer pending: release must not count it again
            self.authenticated += 1
            return True

    def release(self, entry: _Pending, authenticated: bool) -> None:
        with self._lock:
            if authenticated:
                self.authenticated -= 1
            elif not entry.evicted:
                self._forget(entry)

    def _forget(self, entry: _Pending) -> None:
        entries = self._pending.get(entry.address, [])
        if entry in entries:
            entries.remove(entry)
        if not entries:
            self._pending.pop(entry.address, None)


class WorkerServer:
    """Accepts connections and answers requests: hello, submit, status, cancel, result, shutdown."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = "",
                 max_payload: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 tls: Optional[ssl.SSLContext] = None, limits: Optional[Limits] = None,
                 health_port: Optional[int] = None) -> None:
        if not token:
            raise ValueError("a worker needs a token")
        self.token = token
        self.max_payload = max_payload
        self.limits = limits or Limits()
        self.jobs = JobQueue()
        self._tls = tls
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.address = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._admission = _Admission(self.limits)
        try:
            self._health = _HealthPort(host, health_port) if health_port is not None else None
        except (OSError, OverflowError) as error:
            self._listener.close()
            raise HealthPortError(f"cannot listen for health checks on {host}:{health_port}: {error} "
                                  "(pick another --health-port)") from error
        self.health_address = self._health.address if self._health is not None else None

    def serve_forever(self) -> None:
        if self._health is not None:
            self._health.start()
        self._listener.settimeout(0.5)
        refused, last_report = 0, -1e9
        while not self._stopping.is_set():
            try:
                connection, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as error:  # e.g. out of file descriptors: wait, never exit
                log.warning("accept failed: %s", error)
                time.sleep(0.1)
                continue
            entry = self._admission.admit(peer[0], connection)
            if entry is None:
                connection.close()
                refused += 1
                if time.monotonic() - last_report > 10.0:  # a flood must not flood the log too
                    log.warning("refused %d connection(s), the last from %s: %d connections wait to "
                                "authenticate already", refused, peer[0], self._admission.pending)
                    refused, last_report = 0, time.monotonic()
                continue
            deadline = time.monotonic() + self.limits.auth_deadline_s  # from the accept, handshake included
            threading.Thread(target=self._serve_connection, args=(connection, peer, entry, deadline),
                             name=f"segforge-conn-{peer}", daemon=True).start()
        self._listener.close()
        if self._health is not None:
            self._health.stop()
        self.jobs.stop()

    def stop(self) -> None:
        self._stopping.set()

    # -- one connection ---------------------------------------------------------------
    def _serve_connection(self, connection: socket.socket, peer: Any, entry: _Pending, deadline: float) -> None:
        address, authenticated = peer[0], False
        try:
            if self._tls is not None:
                wrapped = self._handshake(connection, entry, deadline)
                if wrapped is None:
                    return
                connection = entry.sock = wrapped
                if entry.evicted:
                    return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first = self._first_request(connection, entry, deadline)
            if first is None:
                return
            authenticated = True
            connection.settimeout(None)  # a known client may stay connected, idle, between jobs
            keep_open = self._answer_one(connection, address, first)
            while keep_open and not self._stopping.is_set():
                keep_open = self._answer_one(connection, address)
        except (ConnectionError, OSError, ssl.SSLError) as error:
            log.info("connection from %s ended: %s", peer, error)
        finally:
            connection.close()
            self._admission.release(entry, authenticated)

    def _handshake(self, connection: socket.socket, entry: _Pending, deadline: float) -> Optional[ssl.SSLSocket]:
        """The TLS handshake within what is left of the authentication deadline; None when it
        did not finish in time. CPython's ``do_handshake`` turns a socket timeout into one
        deadline for all of the handshake's reads (not a timeout per read), so a client
        trickling its ClientHello is dropped at the deadline too (tested)."""
        connection.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            return self._tls.wrap_socket(connection, server_side=True)  # type: ignore[union-attr]
        except socket.timeout:
            log.info("dropping %s: no TLS handshake within %.0f s", entry.address, self.limits.auth_deadline_s)
            return None

    def _first_request(self, connection: socket.socket, entry: _Pending,
                       deadline: float) -> Optional[tuple[dict[str, Any], int]]:
        """The first request's header, read and checked within the deadline; None when the
        connection must close (a reply, if any, is sent)."""
        reader = _DeadlineReader(connection, deadline)
        try:
            header, payload_size = recv_header(reader, self.max_payload)  # type: ignore[arg-type]
            self._check_caller(header)
        except (EOFError, _Deadline) as error:
            if isinstance(error, _Deadline):
                log.info("dropping %s: no authenticated request within %.0f s", entry.address,
                         self.limits.auth_deadline_s)
                _reply_error(connection, WorkerError(
                    "The worker closed the connection",
                    f"its first request did not arrive within {self.limits.auth_deadline_s:g} s",
                    "connect with a SegForge client; check the network between client and server"))
            return None
        except SegForgeError as error:
            if reader.first.startswith(HEALTH_REQUEST):
                _answer_health(connection)
            else:
                _reply_error(connection, error)
            return None  # never read the arrays of a stranger
        if not self._admission.authenticate(entry):
            _reply_error(connection, WorkerBusy(
                "The worker is serving as many clients as it can",
                f"{self.limits.max_connections} clients are connected", "try again in a minute"))
            return None
        return header, payload_size

    def _answer_one(self, connection: socket.socket, owner: str,
                    first: Optional[tuple[dict[str, Any], int]] = None) -> bool:
        """Answer one request (``first``: its header, already read and checked); False when the
        connection must close."""
        if first is not None:
            header, payload_size = first
        else:
            try:
                header, payload_size = recv_header(connection, self.max_payload)
            except EOFError:
                return False
            except MalformedMessage as error:
                _reply_error(connection, error)
                return False
            try:
                self._check_caller(header)
            except SegForgeError as error:
                _reply_error(connection, error)
                return False  # never read the arrays of a stranger
        try:
            arrays = recv_arrays(connection, header, payload_size)
        except MalformedMessage as error:
            _reply_error(connection, error)
            return False
        except SegForgeError as error:  # a refused image, or no memory for it: all bytes were read
            _reply_error(connection, error)
            return True
        try:
            reply, reply_arrays = self._dispatch(header, arrays, owner)
        except SegForgeError as error:
            _reply_error(connection, error)
            return True
        send_message(connection, {"ok": True, **reply}, reply_arrays)
        return header.get("op") != "shutdown"

    def _check_caller(self, header: dict[str, Any]) -> None:
        version = header.get("protocol")
        if type(version) is not int or version != PROTOCOL_VERSION:  # exactly an int: True and 1.0 are not 1
            raise protocol_mismatch(__version__, PROTOCOL_VERSION, version)
        if not hmac.compare_digest(str(header.get("token", "")).encode(), self.token.encode()):
            raise AuthError("The worker refused the request", "its token is wrong or missing",
                            "use the token the server was started with (--token or SEGFORGE_TOKEN)")

    # -- requests ---------------------------------------------------------------------
    def _dispatch(self, header: dict[str, Any], arrays: dict[str, Any], owner: str = "") -> tuple[dict, dict]:
        op = header.get("op")
        if op == "hello":
            from .interactive_tasks import shared_sessions

            return {"protocol": PROTOCOL_VERSION, "version": __version__, "pid": os.getpid(),
                    "tasks": sorted(TASKS), "max_request_bytes": self.max_payload,
                    "load": {"connections": self._admission.authenticated, "jobs": len(self.jobs),
                             "sessions": len(shared_sessions)}}, {}
        if op == "submit":
            task = str(header.get("task"))
            if task not in TASKS:
                raise SegForgeError(f"The worker has no task {task!r}", f"it knows {', '.join(sorted(TASKS))}",
                                    "update the worker to the client's SegForge version")
            params = header.get("params") or {}
            if not isinstance(params, dict):
                raise MalformedMessage("The job's parameters are malformed", "'params' is not an object")
            self._check_client_limits(owner, task)
            job = self.jobs.submit(Job(task, TASKS[task], arrays, params, owner=owner,
                                       session_limit=self.limits.max_sessions_per_client))
            return job.status(), {}
        if op == "status":
            return self.jobs.get(str(header.get("job"))).status(), {}
        if op == "cancel":
            return self.jobs.cancel(str(header.get("job"))).status(), {}
        if op == "result":
            return self._result(str(header.get("job")))
        if op == "shutdown":
            self.stop()
            return {"stopping": True}, {}
        raise MalformedMessage(f"Unknown request {op!r}",
                               "known requests: hello, submit, status, cancel, result, shutdown")

    def _check_client_limits(self, owner: str, task: str) -> None:
        """Refuse a job beyond the client's share: unfinished jobs, interactive sessions in use."""
        limit = self.limits.max_jobs_per_client
        if limit and self.jobs.unfinished(owner) >= limit:
            raise WorkerBusy("The worker refused the job",
                             f"this client ({owner}) has {limit} jobs queued or running already, "
                             "the most the server allows one client",
                             "wait for a job to finish (or cancel one), then submit again")
        limit = self.limits.max_sessions_per_client
        if task == "interactive.open" and limit:
            from .interactive_tasks import shared_sessions

            in_use = shared_sessions.in_use(owner) + self.jobs.unfinished(owner, "interactive.open")
            if in_use >= limit:
                raise WorkerBusy("The worker refused a new interactive session",
                                 f"this client ({owner}) has {in_use} sessions in use, the most the server "
                                 f"allows one client is {limit}",
                                 "close an interactive session you no longer need and try again (sessions unused "
                                 "for 10 minutes make room by themselves)")

    def _result(self, job_id: str) -> tuple[dict, dict]:
        job = self.jobs.pop_finished(job_id)
        if job.state == FAILED and job.error is not None:
            raise job.error
        if job.state != DONE:
            return {**job.status(), "outputs": {}, "meta": {}}, {}
        arrays, cropped = {}, {}
        for name, value in job.outputs.items():
            if hasattr(value, "ijk_to_lps") and value.array.dtype.kind in "biu":
                box, offset = crop_to_foreground(value)
                if box.array.size < value.array.size:
                    arrays[name] = box
                    cropped[name] = {"offset_kji": list(offset), "shape_kji": list(value.array.shape),
                                     "origin_lps": list(value.origin_lps)}
                    continue
            arrays[name] = value
        return {**job.status(), "meta": job.meta, "cropped": cropped}, arrays


def _reply_error(connection: socket.socket, error: SegForgeError) -> None:
    previous = connection.gettimeout()
    try:
        connection.settimeout(2.0)  # a peer that reads nothing cannot hold the thread
        send_message(connection, {"ok": False, "error": error.to_dict()})
    except OSError:
        pass
    finally:
        try:
            connection.settimeout(previous)  # an authenticated client may idle on after a refusal
        except OSError:
            pass


def _answer_health(connection: socket.socket) -> None:
    """``200 ok`` to a health check, after reading the rest of its request (closing on unread
    bytes would reset the connection before the prober reads the answer)."""
    try:
        connection.settimeout(1.0)
        seen = b""
        while b"\r\n\r\n" not in seen and len(seen) < 8192:
            chunk = connection.recv(4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    try:
        connection.settimeout(2.0)
        connection.sendall(_HEALTH_REPLY)
    except OSError:
        pass


class HealthPortError(OSError):
    """The ``--health-port`` listener could not be opened (said apart from the worker's port)."""


class _HealthPort:
    """``--health-port``: a listener of its own that answers every connection ``200 ok``.

    On the worker's port a health check is one more connection waiting to authenticate: it
    shares the pending places, 4 per address, with strangers. Behind a proxy or a NAT every
    client has the proxy's address, so a few hostile sockets through it fill that address's
    places and the prober's checks are closed unanswered: the load balancer takes a healthy
    server out. Here nothing is shared and nothing waits on the client: one thread with a
    selector accepts, writes the answer at once (it fits in the socket's buffer), then reads
    whatever request came (so closing does not reset the connection before the prober reads)
    for at most 2 s. At most 256 such sockets stay open; beyond that the oldest, long
    answered, is closed. Plain HTTP whatever the worker's TLS: the answer holds no secret.
    """

    LINGER_S = 2.0
    MAX_OPEN = 256

    def __init__(self, host: str, port: int) -> None:
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.setblocking(False)
        self.address = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segforge-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        import selectors

        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        open_since: dict[socket.socket, float] = {}  # in accept order: the first is the oldest
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.25):
                    if key.fileobj is self._listener:
                        self._accept(selector, open_since)
                    else:
                        self._drain(selector, open_since, key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                for sock in [s for s, since in open_since.items() if now - since > self.LINGER_S]:
                    self._close(selector, open_since, sock)
        finally:
            for sock in list(open_since):
                self._close(selector, open_since, sock)
            selector.close()
            self._listener.close()

    def _accept(self, selector: Any, open_since: dict[socket.socket, float]) -> None:
        import selectors

        for _ in range(64):  # what waits in the backlog, a bounded number per turn
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. out of file descriptors: the oldest make room
                log.warning("health check: accept failed: %s", error)
                if open_since:
                    self._close(selector, open_since, next(iter(open_since)))
                return
            connection.setblocking(False)
            try:
                connection.send(_HEALTH_REPLY)
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                connection.close()
                continue
            if len(open_since) >= self.MAX_OPEN:
                self._close(selector, open_since, next(iter(open_since)))
            open_since[connection] = time.monotonic()
            selector.register(connection, selectors.EVENT_READ)

    def _drain(self, selector: Any, open_since: dict[socket.socket, float], sock: socket.socket) -> None:
        try:
            if sock.recv(8192):
                return  # more may come; the linger time bounds it
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close(selector, open_since, sock)

    @staticmethod
    def _close(selector: Any, open_since: dict[socket.socket, float], sock: socket.socket) -> None:
        open_since.pop(sock, None)
        try:
            selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


def _tls_context(cert: Optional[str], key: Optional[str]) -> Optional[ssl.SSLContext]:
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The worker's options, shared by ``segforge serve`` and ``python -m segforge.worker.server``."""
    parser = parser or argparse.ArgumentParser(prog="segforge serve")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 to serve other machines)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0 picks a free one)")
    parser.add_argument("--token", default=None,
                        help="shared secret clients must send; prefer $SEGFORGE_TOKEN (other users "
                             "can read command lines)")
    parser.add_argument("--max-request-mb", type=float, default=DEFAULT_MAX_PAYLOAD_BYTES / 2**20,
                        help="largest request accepted, in MiB")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: serve over TLS")
    parser.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    defaults = Limits()
    parser.add_argument("--auth-deadline-s", type=float, default=defaults.auth_deadline_s,
                        help="seconds a new connection has for its whole first, authenticated request "
                             f"(default {defaults.auth_deadline_s:g})")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        help=f"authenticated connections at once (default {defaults.max_connections})")
    parser.add_argument("--max-pending", type=int, default=defaults.max_pending,
                        help="connections waiting to authenticate, in all (default "
                             f"{defaults.max_pending}); more are closed at once")
    parser.add_argument("--max-pending-per-address", type=int, default=defaults.max_pending_per_address,
                        help="connections waiting to authenticate from one IP address (default "
                             f"{defaults.max_pending_per_address})")
    parser.add_argument("--max-jobs-per-client", type=int, default=defaults.max_jobs_per_client,
                        help="jobs one client (IP address) may have queued or running; 0: no limit "
                             f"(default {defaults.max_jobs_per_client})")
    parser.add_argument("--max-sessions-per-client", type=int, default=defaults.max_sessions_per_client,
                        help="interactive sessions one client (IP address) may have in use; 0: no limit "
                             f"(default {defaults.max_sessions_per_client})")
    parser.add_argument("--health-port", type=int, default=None,
                        help="also answer health checks (HTTP 200 ok to any request, plain HTTP) on this "
                             "port, apart from the worker's connections: a load balancer's probe is answered "
                             "however many strangers wait on the worker's port (0 picks a free one)")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _stop_with_parent(server: WorkerServer, parent_pid: int) -> None:
    """A spawned worker ends when the program that spawned it is gone (no orphans)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            if server._stopping.wait(1.0):
                return
        server.stop()

    threading.Thread(target=watch, name="segforge-parent-watch", daemon=True).start()


def serve(args: argparse.Namespace) -> int:
    """Run a worker until it is shut down or interrupted."""
    token = args.token or os.environ.get("SEGFORGE_TOKEN", "")
    if not token:
        print("segforge serve: no token: pass --token or set SEGFORGE_TOKEN", file=sys.stderr)
        return 2
    try:
        limits = Limits(max_connections=args.max_connections, max_pending=args.max_pending,
                        max_pending_per_address=args.max_pending_per_address, auth_deadline_s=args.auth_deadline_s,
                        max_jobs_per_client=args.max_jobs_per_client,
                        max_sessions_per_client=args.max_sessions_per_client)
        server = WorkerServer(args.host, args.port, token, int(args.max_request_mb * 2**20),
                              _tls_context(args.tls_cert, args.tls_key), limits, args.health_port)
    except HealthPortError as error:
        print(f"segforge serve: {error}", file=sys.stderr)
        return 1
    except (OSError, OverflowError, ssl.SSLError) as error:
        print(f"segforge serve: cannot listen on {args.host}:{args.port}: {error} "
              "(pick another --port, or check --host and the TLS files)", file=sys.stderr)
        return 1
    if not args.tls_cert and not ipaddress.ip_address(server.address[0]).is_loopback:
        log.warning("serving %s without TLS: volumes and the token cross the network in clear; "
                    "use --tls-cert/--tls-key outside a trusted network", args.host)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    if args.parent_pid:
        _stop_with_parent(server, args.parent_pid)
    host, port = server.address
    health = f" health_port={server.health_address[1]}" if server.health_address else ""
    print(f"{READY_LINE} host={host} port={port} pid={os.getpid()}{health}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=os.environ.get("SEGFORGE_LOG", "WARNING"))
    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
