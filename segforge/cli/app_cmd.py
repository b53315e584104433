"""``segforge app``: the web app (trame-slicer) on this machine, with data loaded at start.

The app lives in the optional ``segforge_app`` package (``pip install "segforge[app]"``);
it is imported only when this command runs, so the rest of the CLI works without trame.
Authentication is checked before anything is imported or built, so a refusal is immediate.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import InputError, SegForgeError

TOKEN_ENV = "SEGFORGE_APP_TOKEN"  # kept equal to segforge_app.auth.TOKEN_ENV (checked by a test)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app", help="start the web app (views, data loading, module panels) in a browser",
        description="Start SegForge's web app and print its URL. On 127.0.0.1 (the default) a random "
                    f"secret is put in the URL; on any other address set {TOKEN_ENV} (at least 16 "
                    "characters) or it refuses to start.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080; 0: any free)")
    parser.add_argument("--data", nargs="*", default=None, metavar="PATH",
                        help="files or DICOM folders on this machine to load at start (default: the "
                             "project's sample CT; --data with no path: start empty)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV) or None
    try:
        from segforge_app.auth import resolve_token
        from segforge_app.listen import check_can_listen
    except ImportError as error:
        raise _missing_extra(error) from error
    # Refused now, before the heavy imports and the loading: an address this machine cannot
    # listen on (a busy port), an unsafe one, a --data path that is not there.
    check_can_listen(args.host, args.port)
    resolve_token(args.host, token)
    _check_data(args.data)
    try:
        import trame_slicer  # noqa: F401  (the app extra; segforge_app imports it only when building)

        from segforge_app.app import run as run_app
    except ImportError as error:
        raise _missing_extra(error) from error
    print(f"segforge app: starting on {args.host}:{args.port} ...", file=sys.stderr, flush=True)
    if not args.debug:  # a server says what it did: loads, jobs and their times (errors also reach the page)
        logging.getLogger("segforge_app").setLevel(logging.INFO)
    run_app(host=args.host, port=args.port, data=args.data, token=token)
    return 0


def _check_data(paths: list[str] | None) -> None:
    for path in paths or ():
        if not os.path.exists(os.path.expanduser(path)):
            raise InputError(f"Nothing at {path}", "a path given to --data does not exist on this machine",
                             f"check it (a relative path is read from {os.getcwd()}), or start without it")


def _missing_extra(error: ImportError) -> SegForgeError:
    return SegForgeError("The web app is not installed", f"a package it needs is missing ({error.name or error})",
                         'install it with: pip install "segforge[app]" (in a checkout: make app)')
