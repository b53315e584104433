"""The worker process: a socket server that runs engine jobs in the background.

The same server runs locally (spawned by a Slicer module on loopback with a random
token) and on a shared GPU machine (``segforge serve --host H --port P --token T``).
Each connection gets a thread; jobs run one at a time on the :class:`JobQueue`.
Every request carries the protocol version and the token, both checked before the
request's arrays are read.
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
from typing import Any, Optional

from .. import __version__
from ..errors import AuthError, SegForgeError
from .crop import crop_to_foreground
from .jobs import FAILED, DONE, Job, JobQueue
from .protocol import (DEFAULT_MAX_PAYLOAD_BYTES, PROTOCOL_VERSION, MalformedMessage, protocol_mismatch,
                       recv_arrays, recv_header, send_message)
from .tasks import TASKS

log = logging.getLogger(__name__)

#: The line a spawned worker prints once it listens; the client reads the port from it.
READY_LINE = "SEGFORGE_WORKER_READY"
#: Connections served at once; more are closed at once (a shared server stays up).
MAX_CONNECTIONS = 64
#: Seconds a connection may take to send its first, authenticated request.
UNAUTHENTICATED_TIMEOUT_S = 30.0


class WorkerServer:
    """Accepts connections and answers requests: hello, submit, status, cancel, result, shutdown."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = "",
                 max_payload: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        if not token:
            raise ValueError("a worker needs a token")
        self.token = token
        self.max_payload = max_payload
        self.jobs = JobQueue()
        self._tls = tls
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.address = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def serve_forever(self) -> None:
        self._listener.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                connection, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as error:  # e.g. out of file descriptors: wait, never exit
                log.warning("accept failed: %s", error)
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("refusing %s: %d connections are open already", peer, MAX_CONNECTIONS)
                connection.close()
                continue
            threading.Thread(target=self._serve_connection, args=(connection, peer),
                             name=f"segforge-conn-{peer}", daemon=True).start()
        self._listener.close()
        self.jobs.stop()

    def stop(self) -> None:
        self._stopping.set()

    # -- one connection ---------------------------------------------------------------
    def _serve_connection(self, connection: socket.socket, peer: Any) -> None:
        try:
            connection.settimeout(UNAUTHENTICATED_TIMEOUT_S)  # strangers cannot hold a slot for long
            if self._tls is not None:
                connection = self._tls.wrap_socket(connection, server_side=True)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while not self._stopping.is_set():
                if not self._answer_one(connection):
                    break
        except (ConnectionError, OSError, ssl.SSLError) as error:
            log.info("connection from %s ended: %s", peer, error)
        finally:
            connection.close()
            self._slots.release()

    def _answer_one(self, connection: socket.socket) -> bool:
        """Answer one request; False when the connection must close."""
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
        connection.settimeout(None)  # a known client may stay connected, idle, between jobs
        try:
            arrays = recv_arrays(connection, header, payload_size)
        except MalformedMessage as error:
            _reply_error(connection, error)
            return False
        except SegForgeError as error:  # a refused image, or no memory for it: all bytes were read
            _reply_error(connection, error)
            return True
        try:
            reply, reply_arrays = self._dispatch(header, arrays)
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
    def _dispatch(self, header: dict[str, Any], arrays: dict[str, Any]) -> tuple[dict, dict]:
        op = header.get("op")
        if op == "hello":
            return {"protocol": PROTOCOL_VERSION, "version": __version__, "pid": os.getpid(),
                    "tasks": sorted(TASKS), "max_request_bytes": self.max_payload}, {}
        if op == "submit":
            task = str(header.get("task"))
            if task not in TASKS:
                raise SegForgeError(f"The worker has no task {task!r}", f"it knows {', '.join(sorted(TASKS))}",
                                    "update the worker to the client's SegForge version")
            params = header.get("params") or {}
            if not isinstance(params, dict):
                raise MalformedMessage("The job's parameters are malformed", "'params' is not an object")
            job = self.jobs.submit(Job(task, TASKS[task], arrays, params))
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
    try:
        send_message(connection, {"ok": False, "error": error.to_dict()})
    except OSError:
        pass


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
        server = WorkerServer(args.host, args.port, token, int(args.max_request_mb * 2**20),
                              _tls_context(args.tls_cert, args.tls_key))
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
    print(f"{READY_LINE} host={host} port={port} pid={os.getpid()}", flush=True)
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
