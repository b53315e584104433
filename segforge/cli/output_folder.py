"""The ``--out`` folder of a workflow command: the options, and the output-set policy behind them
(``segforge.output_set``: checked before any work, written beside it, moved in whole)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping

from ..output_set import OutputSet, estimate_bytes

#: What ``--out`` and ``--overwrite`` promise, for each command's --help.
OUTPUT_POLICY = """\
--out is written all or nothing: the files go into a hidden folder beside it and are moved in
only when all are complete, with manifest.json (each file's size and SHA-256, the input, the
parameters, the SegForge version, the date). A folder that already holds results is refused
before any work unless --overwrite is given, which replaces the whole set (never part of it).
Ctrl-C, a full disk or an error leave the previous results as they were and no partial files;
once the new set is in place the run is finished (a Ctrl-C then is ignored)."""


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for the results (created; written all or nothing, with manifest.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results already in --out (the whole set; without it such a folder "
                             "is refused before any work)")


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's options, as the manifest records them."""
    return {key: value for key, value in vars(args).items() if key not in ("func", "input_warnings")}


def output_set(args: argparse.Namespace, command: str, size_factor: float,
               parameters: Mapping[str, Any], input_path: Any = None) -> OutputSet:
    """The command's result set at ``--out``: enter it before the work (problems are said then).
    ``input_path``: the file the results are sized by and the manifest names (default: IMAGE)."""
    source = input_path if input_path is not None else args.image
    args.input_warnings = getattr(args, "input_warnings", None) or []  # filled by read_input, kept in the manifest
    return OutputSet(args.out, overwrite=args.overwrite, expected_bytes=estimate_bytes(source, size_factor),
                     input_path=source, parameters=parameters, command=command,
                     input_warnings=args.input_warnings, finished_at_commit=True)
