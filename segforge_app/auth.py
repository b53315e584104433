"""Who may connect: loopback needs no set-up, any other address needs a token.

Everything that matters (the scene, the images, uploads, server-side paths) travels over
trame's websocket, and wslink admits a websocket only after the client sends the server's
secret; :func:`secret_gate` also refuses the page, its scripts and the websocket's HTTP
upgrade without it, with a page that says what to do. SegForge always sets that
secret: a random one on loopback (other local users cannot connect by guessing the
well-known default ``wslink-secret``), and one the operator chose, through
``SEGFORGE_APP_TOKEN`` (environment, not the command line, which other users can read),
on any other address. Without one the app refuses to listen beyond loopback.

The browser gets the secret in the URL (``?secret=...``), which trame's client reads and
then removes from the address bar.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import logging
import secrets
import socket
from typing import Any

from segforge.errors import SegForgeError

logger = logging.getLogger(__name__)

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
        raise AppTokenError(f"Refusing to listen on {host or 'every address'} without authentication",
                        "anyone who can reach that address could read and change the loaded data",
                        f"set {TOKEN_ENV} (e.g. export {TOKEN_ENV}=$(openssl rand -hex 24)) "
                        "or listen on 127.0.0.1")
    return secrets.token_urlsafe(24)


# -----------------------------------------------------------------------------
# The HTTP side: nothing is served without the secret
# -----------------------------------------------------------------------------
#
# wslink checks the secret only inside the websocket (its "hello" message); trame serves its
# page and scripts to anyone, and a page opened without the secret used to stop on trame's
# bare "try/catch on connect()". The gate below answers every HTTP request itself first:
#
# - a page (``/``, ``*.html``) needs ``?secret=`` in its URL, checked in constant time. Without
#   it: 401 and a short page saying what to do; with a wrong one: 403 and the same page.
# - everything else (scripts, styles, the websocket ``/ws``) needs the secret in its URL or the
#   cookie the page's answer set. The cookie holds a value derived from the secret, never the
#   secret: browsers send localhost cookies to every port, and that value opens no websocket
#   session (wslink still asks the client for the secret itself).
#
# A reload drops the secret (trame's client removes it from the address bar): the refusal page
# says so.

#: What the refusal page and the refusals of other requests say (tests look for these).
REFUSAL_MISSING = "This link to the SegForge app has no secret"
REFUSAL_WRONG = "This link to the SegForge app has a wrong secret"
REFUSAL_TODO = ("Open the exact URL that `segforge app` printed in its terminal "
                "(SegForge app ready: {base}/index.html?secret=...), secret included")

_COOKIE_LABEL = b"segforge-app-page-v1"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SegForge: {title}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{{font-family:sans-serif;max-width:44em;margin:4em auto;padding:0 1em;line-height:1.5;
background:#1e1e1e;color:#eee}} code{{background:#333;padding:0 .3em}} h1{{font-size:1.4em}}</style>
</head><body>
<h1 data-testid="refusal-title">{what}.</h1>
<p data-testid="refusal-todo">{todo}.</p>
<p>The secret changes every time <code>segforge app</code> starts (on an address other than
127.0.0.1 it is the <code>{env}</code> the app was started with). It goes in the link as
<code>?secret=...</code>; reloading the page drops it from the address bar, so open the printed
URL again. Nothing of the app (views, data, uploads) is served without it.</p>
</body></html>
"""


def cookie_name(port: object) -> str:
    """The cookie of the app on ``port`` (cookies are per host, not per port)."""
    return f"segforge_app_{port or 'default'}"


def cookie_value(secret: str) -> str:
    """A value derived from ``secret`` that opens the app's scripts, not its websocket session."""
    return hmac.new(secret.encode(), _COOKIE_LABEL, hashlib.sha256).hexdigest()


def refusal_text(wrong: bool, base: str = "http://HOST:PORT") -> str:
    """What a refused request is told: the link lacks the secret (or has a ``wrong`` one), and what to do."""
    return f"{REFUSAL_WRONG if wrong else REFUSAL_MISSING}. {REFUSAL_TODO.format(base=base)}."


def refusal_page(wrong: bool, base: str = "http://HOST:PORT") -> str:
    """The HTML shown instead of the app when the link's secret is missing (or ``wrong``)."""
    what = REFUSAL_WRONG if wrong else REFUSAL_MISSING
    title = "wrong secret in the link" if wrong else "the link has no secret"
    return _PAGE.format(title=title, what=html.escape(what), todo=html.escape(REFUSAL_TODO.format(base=base)),
                        env=TOKEN_ENV)


def check_request(secret: str, path: str, query_secret: str | None, cookie: str | None) -> tuple[int, bool]:
    """Whether a request may pass: ``(0, set_cookie)`` if it may, else ``(401 or 403, False)``.

    ``query_secret`` is the URL's ``secret`` parameter (None when absent), ``cookie`` this app's
    cookie (None when absent). A page (``/``, ``*.html``) needs the URL's secret; anything else
    may use the cookie instead.
    """
    if query_secret is not None:
        if hmac.compare_digest(query_secret.encode(), secret.encode()):
            return 0, is_page(path)
        return 403, False
    if not is_page(path) and cookie is not None:
        return (0, False) if hmac.compare_digest(cookie.encode(), cookie_value(secret).encode()) else (403, False)
    return 401, False


def is_page(path: str) -> bool:
    return path in ("", "/") or path.endswith((".html", ".htm"))


def secret_gate(secret: str) -> Any:
    """An aiohttp middleware refusing every request that lacks ``secret`` (see the notes above)."""
    from aiohttp import web

    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        port = request.url.port
        status, set_cookie = check_request(secret, request.path, request.query.get("secret"),
                                           request.cookies.get(cookie_name(port)))
        if status:
            logger.info("refused %s %s without the right secret (%d)", request.method, request.path, status)
            headers = {"Cache-Control": "no-store"}
            base = f"{request.scheme}://{request.host}"
            if is_page(request.path):
                return web.Response(status=status, text=refusal_page(status == 403, base), content_type="text/html",
                                    headers=headers)
            return web.Response(status=status, text=refusal_text(status == 403, base) + "\n", headers=headers)
        response = await handler(request)
        if set_cookie:
            response.set_cookie(cookie_name(port), cookie_value(secret), httponly=True, samesite="Strict", path="/")
            response.headers["Referrer-Policy"] = "same-origin"
        return response

    return gate


def install_secret_gate(web_server: Any, secret: str) -> None:
    """Put :func:`secret_gate` in front of every route of wslink's aiohttp server (before it starts)."""
    web_server.app.middlewares.insert(0, secret_gate(secret))
