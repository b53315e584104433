"""Test helpers for model downloads: a real HTTP server on 127.0.0.1, catalog records.

Tests never reach the internet: they put bytes on this server and point a catalog entry
at it. Besides plain files it can misbehave on purpose, the ways real servers and
networks do: announce more bytes than it sends then hang up, or never answer.
Import the ``http_server`` fixture into a test module to use it (there is no conftest
for it, by design: another part of the suite owns Testing/conftest.py).
"""
from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@dataclass
class Route:
    """What the server does for one path."""

    body: bytes
    behaviour: str = "ok"
    """"ok"; "truncate": announce the full length, send ``cut`` bytes and close;
    "hang": accept the request and never answer (until the server stops)."""
    cut: int = 0


class LocalServer:
    """A threaded HTTP server serving :class:`Route` objects; unknown paths get 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        self._stopping = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests[self.path] += 1
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                if route.behaviour == "hang":
                    server._stopping.wait(60)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if route.behaviour == "truncate":
                    self.wfile.write(route.body[:route.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(route.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def add(self, path: str, body: bytes, behaviour: str = "ok", cut: int = 0) -> str:
        """Serve ``body`` at ``path``; return its full URL."""
        self.routes[path] = Route(body, behaviour, cut)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> "LocalServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """A running :class:`LocalServer`; proxies are switched off so loopback stays local."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    server = LocalServer().start()
    try:
        yield server
    finally:
        server.stop()


def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused: bound, never listening, held open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


closed_port = pytest.fixture(refused_port)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- catalog records for the models the server serves --------------------------------

def model_record(model_id: str, url: str, body: bytes, **overrides: object) -> dict:
    """A valid downloadable catalog entry for ``body`` served at ``url``."""
    record: dict = {
        "id": model_id, "workflow": "organ", "framework": "torchscript", "url": url,
        "size_bytes": len(body), "sha256": sha256(body), "licence": "CC-BY-4.0",
        "labels": {"1": "liver", "2": "spleen"},
        "input": {"modality": ["CT"], "spacing_mm": [1.5, 1.5, 2.0]},
        "min_gpu_memory_gb": 4, "description": "A test model served from loopback.",
    }
    record.update(overrides)
    return record


def catalog_document(records: list) -> dict:
    return {"schema_version": 1, "models": records}


def write_catalog(path: Path, records: list) -> Path:
    """Write a catalog file holding ``records``; return its path."""
    path.write_text(json.dumps(catalog_document(records), indent=2), encoding="utf-8")
    return path
