"""Shared pieces of the worker tests: a real server subprocess and raw protocol calls."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running_server(token: str = "test-token", *extra: str,
                   memory_limit_bytes: int | None = None) -> Iterator[tuple[int, subprocess.Popen]]:
    """``segforge serve`` as a real subprocess on a free loopback port (optionally memory-capped)."""
    def cap_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "segforge.cli.main", "serve", "--port", "0",
                                "--token", token, *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=cap_memory if memory_limit_bytes else None)
    try:
        line = process.stdout.readline()
        assert line.startswith("SEGFORGE_WORKER_READY"), (line, process.stderr.read() if process.poll() else "")
        port = int(dict(part.split("=") for part in line.split()[1:])["port"])
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw_exchange(port: int, data: bytes) -> dict:
    """Send raw bytes, return the decoded reply header (or {} if the server closed without one)."""
    from segforge.worker.protocol import recv_message

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            return recv_message(sock).header
        except (EOFError, ConnectionError):
            return {}


def frame(header: dict, payload: bytes = b"", header_bytes: bytes | None = None) -> bytes:
    """A hand-made message, so tests can break any part of it."""
    from segforge.worker.protocol import MAGIC, PREFIX

    body = header_bytes if header_bytes is not None else json.dumps(header).encode()
    return PREFIX.pack(MAGIC, len(body), len(payload)) + body + payload


def slow_job() -> tuple:
    """Inputs and parameters of a vessel.mask job that runs for several seconds, for cancel and kill tests."""
    import numpy as np

    from segforge.image import Image

    array = np.random.default_rng(1).normal(0, 100, (192, 256, 256)).astype(np.float32)
    return Image(array), {"min_radius_mm": 1.0, "max_radius_mm": 8.0, "scales": 20}


def wait_until_running(job, timeout: float = 60.0):
    """Poll until the job reports progress; fail (never hang) if it does not."""
    import time

    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = job.poll()
        assert not status.finished, f"the job ended before the test could act on it: {status}"
        if status.state == "running" and status.fraction > 0:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job never started running: {status}")
