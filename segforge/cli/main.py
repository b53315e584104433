"""``segforge``: the command-line entry point.

Each subcommand lives in its own module with a ``register(subparsers)`` function that
sets ``func`` (returning an exit code). Failures print one line saying what went wrong
and what to do, and exit non-zero; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(number: int, frame: object) -> None:
    print("segforge: interrupted", file=sys.stderr)
    raise SystemExit(130)


# Run as the command (not imported by a program): Ctrl-C while Python imports what follows is
# one line, not a traceback. main() puts back Python's own handling (KeyboardInterrupt) once
# its try block is in place, so the work below cleans up as usual.
_RUN_AS_COMMAND = __name__ == "__main__" or os.path.basename(sys.argv[0] if sys.argv else "") in ("segforge",
                                                                                                "segforge.exe")
if _RUN_AS_COMMAND:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import argparse  # noqa: E402
import errno  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import SegForgeError  # noqa: E402
from ..output_set import Terminated, disk_error, terminate_raises  # noqa: E402

DESCRIPTION = """\
SegForge segments medical volumes: vessel trees (mask, centerlines, radius, stenoses,
surface), organs and tissues with statistics, and, as they arrive, interactive lesions. It
runs the same engine as the 3D Slicer extension.

examples:
  segforge vessel cta.nii.gz --out results/            vessel tree of a CTA: mask, centerlines, stenoses
  segforge organ ct.nii.gz --out results/             body, lungs, airway, bones, fat, muscle + statistics
  segforge interactive ct.nii.gz --prompts clicks.json --out results/   a lesion from clicks / boxes
  segforge batch organ cts/ --out results/ --workers 2   a cohort on Dask: case folders + a cohort table
  segforge train vessel --synthetic 8 --out models/ --model-id my-vessels   train a vessel U-Net (a catalog model)
  segforge models list                                 the models SegForge knows
  segforge models download ID                          fetch and verify a model
  segforge serve --host 0.0.0.0 --port 8765 --token T  share this GPU machine's worker
  segforge app --port 8080 --data ct.nii.gz            the web app in a browser (prints its URL)
  segforge pacs run organ --study UID --out results/   fetch from a PACS, segment, store DICOM SEG + SR back
"""


def build_parser() -> argparse.ArgumentParser:
    from . import (app_cmd, batch_cmd, interactive_cmd, models_cmd, organ_cmd, pacs_cmd, serve_cmd, train_cmd,
                   vessel_cmd)

    parser = argparse.ArgumentParser(prog="segforge", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"segforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (vessel_cmd, organ_cmd, interactive_cmd, batch_cmd, train_cmd, models_cmd, serve_cmd, app_cmd,
                   pacs_cmd):
        module.register(subparsers)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(argv)
    finally:
        # The results' commit ignores Ctrl-C from then on (the run is finished); a program that
        # called main() gets its own handling back. The command itself exits with it ignored.
        if not _RUN_AS_COMMAND and threading.current_thread() is threading.main_thread():
            for number, handler in handlers.items():
                signal.signal(number, handler)


def _main(argv: Optional[list[str]]) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # building the parser imports every command (a second or so): Ctrl-C there is no traceback either
        parser = build_parser()
        # A command that takes another command's options (`segforge batch` passes the workflow's
        # own options to that workflow's parser) gets what this parser does not know as args.extra.
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "takes_workflow_options", False):
            args.extra = extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except KeyboardInterrupt:
        print("segforge: interrupted", file=sys.stderr)
        return 130
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    terminate_raises()  # SIGTERM cleans up as Ctrl-C does: no partial results are left
    try:
        return int(args.func(args) or 0)
    except SegForgeError as error:
        if args.debug:
            raise
        print(f"segforge: error: {' '.join(error.message.splitlines())}", file=sys.stderr)  # one line
        return 1
    except OSError as error:  # files and sockets: one line, not a traceback
        if args.debug:
            raise
        # A full disk is about writing; "permission denied" may be a read as well: said as it is.
        known = disk_error(error, Path(error.filename or "")) if error.errno in (errno.ENOSPC, errno.EDQUOT) else None
        plain = f"{error.filename}: {error.strerror}" if error.filename and error.strerror else str(error)
        print(f"segforge: error: {known.message if known else plain}", file=sys.stderr)
        return 1
    except Terminated:
        print("segforge: terminated; nothing partial was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("segforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
