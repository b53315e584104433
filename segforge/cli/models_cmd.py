"""``segforge models list | download ID | verify``: the catalog and cache from a terminal.

Each sub-command returns an exit code (0 success, 1 failure), so scripts and server admins
can rely on it. Failures are raised as :class:`SegForgeError` and the root parser
(``segforge.cli.main``) prints them as one line (or a traceback with ``--debug``); the
progress bar is closed first so that line stands alone.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from segforge.catalog import cache
from segforge.catalog.catalog import load_catalog
from segforge.catalog.download import DEFAULT_TIMEOUT_S, download, human_size


def register(subparsers: "argparse._SubParsersAction[Any]") -> argparse.ArgumentParser:
    """Add the ``models`` command (with list / download / verify) to a root parser."""
    models = subparsers.add_parser(
        "models", help="list, download and verify models",
        description="List the models of the catalog, download them into the cache "
                    f"(${cache.HOME_ENV}/models, default ~/.segforge/models) and verify them.")
    commands = models.add_subparsers(dest="models_command", metavar="{list,download,verify}",
                                     required=True)

    listing = commands.add_parser("list", help="show every model and whether it is installed")
    listing.set_defaults(func=list_models)

    fetch = commands.add_parser("download", help="download a model, check it and install it")
    fetch.add_argument("model_id", metavar="ID", help="model id, as shown by `segforge models list`")
    fetch.add_argument("--force", action="store_true",
                       help="download again even if the model is installed (repairs a bad copy)")
    fetch.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help="give up when the server is silent this long (default %(default)s)")
    fetch.set_defaults(func=download_model)

    check = commands.add_parser("verify", help="recompute the SHA-256 of every installed model")
    check.set_defaults(func=verify_models)
    return models


def list_models(args: argparse.Namespace) -> int:
    """Print a table: id, workflow, framework, size, installed."""
    catalog = load_catalog()
    rows = [("ID", "WORKFLOW", "FRAMEWORK", "SIZE", "INSTALLED")]
    for entry in catalog:
        size = "-" if entry.is_builtin else human_size(entry.size_bytes)
        rows.append((entry.id, entry.workflow, entry.framework, size,
                     "yes" if cache.is_installed(entry) else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def download_model(args: argparse.Namespace) -> int:
    """Download one model with a progress bar on stderr."""
    entry = load_catalog().get(args.model_id)
    bar = _ProgressBar()
    try:
        path = download(entry, progress=bar, timeout=args.timeout, force=args.force)
    finally:
        bar.close()
    if path is None:
        print(f"{entry.id} is built in; nothing to download.")
    else:
        print(f"{entry.id} is installed in {path}")
    return 0


def verify_models(args: argparse.Namespace) -> int:
    """Check every model folder in the cache; exit 1 if any is damaged."""
    catalog = load_catalog()
    folders = cache.installed_ids()
    if not folders:
        print(f"No downloaded models in {cache.models_dir()}; nothing to verify.")
        return 0
    bad = 0
    for model_id in folders:
        if model_id in catalog:
            result = cache.verify(catalog.get(model_id))
        else:
            result = cache.verify_folder(model_id)
        if result.ok:
            print(f"{model_id}: ok")
        else:
            bad += 1
            print(f"{model_id}: BAD: {'; '.join(result.problems)}. "
                  f"Repair it with `segforge models download {model_id} --force`.")
    if bad:
        print(f"segforge: error: {bad} of {len(folders)} installed model(s) failed verification.",
              file=sys.stderr)
        return 1
    return 0


class _ProgressBar:
    """A tqdm bar (on stderr) driven by engine progress callbacks ``(fraction, message)``."""

    def __init__(self) -> None:
        self._bar: Optional[Any] = None

    def __call__(self, fraction: float, message: str) -> None:
        if self._bar is None:
            from tqdm import tqdm  # only when there is something to show
            # delay: no bar flashes up for a model that is already there or fails at once.
            self._bar = tqdm(total=1000, file=sys.stderr, leave=False, delay=0.5,
                             bar_format="{percentage:3.0f}%|{bar:30}| {desc}")
        self._bar.set_description_str(message, refresh=False)
        self._bar.update(max(0, round(fraction * 1000) - self._bar.n))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
