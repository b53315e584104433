"""``segforge serve``: run the worker as a server that Slicer clients share."""
from __future__ import annotations

import argparse

from ..worker.server import build_parser, serve


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run a worker server (e.g. on a GPU machine) that Slicer clients connect to",
        description="Run a SegForge worker server. Clients connect with host, port and token "
                    "(in Slicer: SEGFORGE_SERVER=host:port and SEGFORGE_TOKEN).")
    build_parser(parser)
    parser.set_defaults(func=serve)
