"""``segforge models list | info ID | download ID | verify``: the catalog and cache from a terminal.

Each sub-command returns an exit code (0 success, 1 failure), so scripts and server admins
can rely on it. Failures are raised as :class:`SegForgeError` and the root parser
(``segforge.cli.main``) prints them as one line (or a traceback with ``--debug``); the
progress bar is closed first so that line stands alone.

Models whose publisher gives no checksum are marked "unverified" with the same sentence
the GUI shows (:func:`segforge.catalog.unverified_warning`), so nobody mistakes them for
checked downloads.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any, Optional

from segforge.catalog import cache
from segforge.catalog.catalog import UNVERIFIED, Catalog, ModelEntry, load_catalog, unverified_warning
from segforge.catalog.download import DEFAULT_TIMEOUT_S, download, human_size


def register(subparsers: "argparse._SubParsersAction[Any]") -> argparse.ArgumentParser:
    """Add the ``models`` command (with list / download / verify) to a root parser."""
    models = subparsers.add_parser(
        "models", help="list, download and verify models",
        description="List the models of the catalog, download them into the cache "
                    f"(${cache.HOME_ENV}/models, default ~/.segforge/models) and verify them.")
    commands = models.add_subparsers(dest="models_command", metavar="{list,info,download,verify}",
                                     required=True)

    listing = commands.add_parser("list", help="show every model and whether it is installed")
    listing.set_defaults(func=list_models)

    info = commands.add_parser("info", help="show everything the catalog says about one model")
    info.add_argument("model_id", metavar="ID", help="model id, as shown by `segforge models list`")
    info.set_defaults(func=model_info)

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
    """Print a table: id, workflow, framework, size, checksum, installed; then a note on
    what "unverified" means when any model is."""
    catalog = load_catalog()
    rows = [("ID", "WORKFLOW", "FRAMEWORK", "SIZE", "CHECKSUM", "INSTALLED")]
    for entry in catalog:
        rows.append((entry.id, entry.workflow, entry.framework, _size(entry, catalog),
                     _checksum(entry, catalog), "yes" if cache.is_installed(entry, catalog=catalog) else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if any(row[4] == "unverified" for row in rows[1:]):
        print(f"\n{UNVERIFIED} (the models marked unverified above); SegForge records the SHA-256 "
              "of what it downloads, and `segforge models verify` checks the files against that.")
    return 0


def _size(entry: ModelEntry, catalog: Catalog) -> str:
    """The download size for people: "-" for builtin, "unknown", or a composite's parts summed."""
    if entry.is_builtin:
        return "-"
    sizes = [catalog.get(p).size_bytes for p in entry.parts] if entry.is_composite else [entry.size_bytes]
    return "unknown" if any(size is None for size in sizes) else human_size(sum(sizes))


def _checksum(entry: ModelEntry, catalog: Catalog) -> str:
    if entry.is_builtin:
        return "-"
    return "unverified" if unverified_warning(entry, catalog) else "sha256"


def model_info(args: argparse.Namespace) -> int:
    """Print one model's catalog entry for people, where it is installed, and its labels."""
    catalog = load_catalog()
    entry = catalog.get(args.model_id)
    lines = [f"{entry.id}: {entry.workflow} model, {entry.framework}",
             *textwrap.wrap(entry.description, 88, initial_indent="  ", subsequent_indent="  "),
             f"licence: {entry.licence}"]
    if entry.url:
        lines.append(f"url: {entry.url}")
    if not entry.is_builtin:
        lines.append(f"size: {_size(entry, catalog)}")
    warning = unverified_warning(entry, catalog)
    if warning:
        lines.append(f"checksum: {warning}")
    elif entry.sha256:
        lines.append(f"checksum: sha256 {entry.sha256}")
    if entry.parts:
        lines.append(f"parts: {', '.join(entry.parts)} (outputs merged by structure name)")
    if entry.fast_variant:
        lines.append(f"fast variant: {entry.fast_variant}")
    if entry.nnunet is not None:
        folds = ", ".join(str(f) for f in entry.nnunet.folds)
        lines.append(f"nnU-Net: {entry.nnunet.configuration}, folds {folds}, folder {entry.nnunet.path}")
    spacing = "any" if entry.input.spacing_mm is None else " x ".join(f"{s:g}" for s in entry.input.spacing_mm) + " mm"
    lines.append(f"input: {', '.join(entry.input.modality)}, spacing {spacing}"
                 + (f", oriented {entry.input.orientation}" if entry.input.orientation else ""))
    lines.append(f"GPU memory: {entry.min_gpu_memory_gb:g} GB or more")
    lines.append("installed: " + _where(entry, catalog))
    lines.append(f"labels ({len(entry.labels)}):")
    lines += textwrap.wrap(", ".join(f"{v}:{entry.labels[v]}" for v in sorted(entry.labels)), 88,
                           initial_indent="  ", subsequent_indent="  ")
    print("\n".join(lines))
    return 0


def _where(entry: ModelEntry, catalog: Catalog) -> str:
    if entry.is_builtin:
        return "yes (built in)"
    if not cache.is_installed(entry, catalog=catalog):
        missing = [p for p in entry.parts if not cache.is_installed(catalog.get(p))]
        parts = f"; parts missing: {', '.join(missing)}" if missing else ""
        return f"no (`segforge models download {entry.id}` fetches it{parts})"
    if entry.is_composite:
        return "yes (all parts)"
    folder = cache.nnunet_model_folder(entry) if entry.nnunet is not None else cache.model_path(entry)
    return f"yes, in {folder}"


def download_model(args: argparse.Namespace) -> int:
    """Download one model (a composite: each part) with a progress bar on stderr."""
    catalog = load_catalog()
    entry = catalog.get(args.model_id)
    warning = unverified_warning(entry, catalog)
    if warning and (args.force or not cache.is_installed(entry, catalog=catalog)):
        print(f"segforge: warning: {warning}.", file=sys.stderr)
    bar = _ProgressBar()
    try:
        path = download(entry, progress=bar, timeout=args.timeout, force=args.force, catalog=catalog)
    finally:
        bar.close()
    if entry.is_composite:
        print(f"{entry.id} is installed (parts: {', '.join(entry.parts)}).")
    elif path is None:
        print(f"{entry.id} is built in; nothing to download.")
    else:
        print(f"{entry.id} is installed in {path}")
    return 0


def verify_models(args: argparse.Namespace) -> int:
    """Check the model files that ship with SegForge and every model folder in the cache; exit 1
    if any is damaged."""
    catalog = load_catalog()
    bundled_bad = 0
    for entry in (entry for entry in catalog if entry.is_bundled):
        result = cache.verify(entry)
        if result.ok:
            print(f"{entry.id}: ok (ships with SegForge)")
        else:
            bundled_bad += 1
            print(f"{entry.id}: BAD: {'; '.join(result.problems)}. Reinstall SegForge: the file ships with it.")
    if bundled_bad:
        print(f"segforge: error: {bundled_bad} model file(s) shipped with SegForge failed verification.",
              file=sys.stderr)
    folders = cache.installed_ids()
    if not folders:
        print(f"No downloaded models in {cache.models_dir()}; nothing to verify there.")
        return 1 if bundled_bad else 0
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
    return 1 if bad or bundled_bad else 0


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
