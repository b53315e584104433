"""Can the app listen where it was asked to? Checked before anything is built.

Building the scene and loading the data takes seconds; a busy port or an address that is not
this machine's should be said at once, in one line, as ``segforge serve`` does (pick another
``--port``, or check ``--host``). The same words are used if the port is taken between this
check and trame's own bind (:func:`listen_error`).
"""
from __future__ import annotations

import errno
import socket

from segforge.errors import InputError


def check_can_listen(host: str, port: int) -> None:
    """Raise :class:`InputError` saying what to do unless ``host:port`` can be bound now.

    Binds (without listening) every address ``host`` names, as the server will, then lets go.
    """
    if not 0 <= port <= 65535:
        raise InputError(f"Cannot listen on port {port}", "a port is a number from 0 to 65535",
                         "pick another port with --port (e.g. --port 8081, or --port 0 for any free one)")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as error:
        raise InputError(f"Cannot listen on {host}:{port}", f"{host!r} is not an address or a known host name "
                         f"({error})", "check --host (the default, 127.0.0.1, is this machine only)") from error
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as error:
            raise listen_error(host, port, error) from error


def listen_error(host: str, port: int, error: OSError) -> InputError:
    """The user-facing error for a failed bind of ``host:port``."""
    where = f"Cannot listen on {host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return InputError(where, "the port is already in use (another segforge app or another program listens "
                          "there)", "pick another port with --port (e.g. --port 8081, or --port 0 for any free one)")
    if error.errno == errno.EACCES:
        return InputError(where, "ports below 1024 need administrator rights",
                          "pick another port with --port (e.g. --port 8080, or --port 0 for any free one)")
    if error.errno == errno.EADDRNOTAVAIL:
        return InputError(where, f"{host} is not an address of this machine",
                          "check --host (the default, 127.0.0.1, is this machine only; 0.0.0.0 is all of them)")
    return InputError(where, str(error.strerror or error), "pick another --port, or check --host")
