"""Who may connect: loopback needs no set-up, any other address needs a token.

trame serves the page itself to anyone, but everything that matters (the scene, the
images, uploads, server-side paths) travels over its websocket, and wslink admits a
websocket only after the client sends the server's secret. SegForge always sets that
secret: a random one on loopback (other local users cannot connect by guessing the
well-known default ``wslink-secret``), and one the operator chose, through
``SEGFORGE_APP_TOKEN`` (environment, not the command line, which other users can read),
on any other address. Without one the app refuses to listen beyond loopback.

The browser gets the secret in the URL (``?secret=...``), which trame's client reads and
then removes from the address bar.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket

from segforge.errors import SegForgeError

#: The environment variable holding the token for non-loopback listening.
TOKEN_ENV = "SEGFORGE_APP_TOKEN"

#: Shortest token accepted for a non-loopback address (a guessable one protects nothing).
MIN_TOKEN_LENGTH = 16


class AppTokenError(SegForgeError):
    """The app would listen beyond loopback without a usable token."""

    code = "app_token"


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name: loopback only if all its addresses are
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def resolve_token(host: str, token: str | None) -> str:
    """The websocket secret for ``host``: ``token`` if given, else random on loopback.

    Raises :class:`AppTokenError` for a non-loopback host without a token or with a short one.
    """
    if token:
        if not is_loopback(host) and len(token) < MIN_TOKEN_LENGTH:
            raise AppTokenError(f"The token is too short to listen on {host}",
                            f"it has {len(token)} characters; anyone who can reach the port could guess it",
                            f"use at least {MIN_TOKEN_LENGTH}, e.g. {TOKEN_ENV}=$(openssl rand -hex 24)")
        return token
    if not is_loopback(host):
        raise AppTokenError(f"Refusing to listen on {host} without authentication",
                        "anyone who can reach that address could read and change the loaded data",
                        f"set {TOKEN_ENV} (e.g. export {TOKEN_ENV}=$(openssl rand -hex 24)) "
                        "or listen on 127.0.0.1")
    return secrets.token_urlsafe(24)
