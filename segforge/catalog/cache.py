"""Where downloaded models live, and whether they are still intact.

Layout: ``<home>/models/<id>/`` holds one model: the downloaded file, or the unpacked
contents of a .zip, plus a small manifest (``.segforge-install.json``) written last, as
part of the same atomic folder swap. The manifest records the catalog checksum the folder
was installed from and the SHA-256 of every file, so

* :func:`is_installed` is cheap (read one small JSON file, no hashing) and notices when
  the catalog now points at a different version;
* :func:`verify` can recompute every file's SHA-256 and name the one that changed,
  even for unpacked archives whose original .zip is no longer kept.

``<home>`` is ``$SEGFORGE_HOME`` or ``~/.segforge``. Names starting with '.' under
``models/`` are temporary (downloads in progress, folders being swapped); model ids never
start with '.', so they cannot clash.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from segforge.catalog.catalog import ModelEntry
from segforge.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

HOME_ENV = "SEGFORGE_HOME"
MANIFEST_NAME = ".segforge-install.json"
MANIFEST_FORMAT = 1
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`: ``ok`` or the ``problems`` found, one phrase each."""

    model_id: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def cache_home() -> Path:
    """SegForge's data folder: ``$SEGFORGE_HOME`` if set, else ``~/.segforge``."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".segforge"


def models_dir(home: Optional[Path] = None) -> Path:
    """The folder that holds one sub-folder per downloaded model."""
    return Path(home or cache_home()) / "models"


def model_dir(model_id: str, home: Optional[Path] = None) -> Path:
    """The folder of one model (whether or not it is installed)."""
    return models_dir(home) / model_id


def model_path(entry: ModelEntry, home: Optional[Path] = None) -> Optional[Path]:
    """What a runtime loads: the file for a single-file model, the folder for an archive.

    None for builtin models, which have nothing on disk.
    """
    if entry.is_builtin:
        return None
    folder = model_dir(entry.id, home)
    return folder if entry.is_archive else folder / str(entry.filename)


def read_manifest(folder: Path) -> Optional[dict[str, Any]]:
    """The install manifest of a model folder, or None if absent or unreadable."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    return data


def write_manifest(folder: Path, entry: ModelEntry, files: dict[str, str]) -> None:
    """Record what was installed in ``folder`` (called on the staging folder, before the swap)."""
    manifest = {"format": MANIFEST_FORMAT, "id": entry.id, "url": entry.url,
                "sha256": entry.sha256, "size_bytes": entry.size_bytes, "files": files}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True),
                                        encoding="utf-8")


def is_installed(entry: ModelEntry, home: Optional[Path] = None) -> bool:
    """True if the model can be used without a download (cheap: no hashing).

    Builtin models are always installed. A downloaded one is installed when its folder has
    a manifest for the checksum the catalog names now.
    """
    if entry.is_builtin:
        return True
    manifest = read_manifest(model_dir(entry.id, home))
    return manifest is not None and manifest.get("sha256") == entry.sha256


def installed_ids(home: Optional[Path] = None) -> list[str]:
    """Ids of the model folders in the cache (complete or not), sorted."""
    root = models_dir(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def verify(entry: ModelEntry, home: Optional[Path] = None,
           progress: Optional[ProgressCallback] = None) -> Verification:
    """Recompute the SHA-256 of every installed file of ``entry`` and compare.

    Checks the manifest against the catalog's checksum too, so a folder left from an older
    catalog version is reported rather than silently used.
    """
    if entry.is_builtin:
        return Verification(entry.id)
    problems = list(_folder_problems(model_dir(entry.id, home), progress))
    manifest = read_manifest(model_dir(entry.id, home))
    if manifest is not None and manifest.get("sha256") != entry.sha256:
        problems.append(f"it was installed from a file with SHA-256 {manifest.get('sha256')}, "
                        f"but the catalog now names {entry.sha256}")
    return Verification(entry.id, tuple(problems))


def verify_folder(model_id: str, home: Optional[Path] = None,
                  progress: Optional[ProgressCallback] = None) -> Verification:
    """Check a model folder against its own manifest (for models no longer in the catalog)."""
    return Verification(model_id, tuple(_folder_problems(model_dir(model_id, home), progress)))


def sha256_file(path: Path, progress: Optional[ProgressCallback] = None) -> str:
    """SHA-256 of a file, read in chunks (models can be gigabytes)."""
    report = progress or no_progress
    total = max(path.stat().st_size, 1)
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
            done += len(chunk)
            report(done / total, f"Checking {path.name}")
    return digest.hexdigest()


def _folder_problems(folder: Path, progress: Optional[ProgressCallback]) -> list[str]:
    if not folder.is_dir():
        return [f"it is not installed (no folder {folder})"]
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"its install is incomplete or damaged: {folder / MANIFEST_NAME} is missing or unreadable"]
    files: dict[str, str] = manifest["files"]
    if not files:
        return [f"its manifest {folder / MANIFEST_NAME} lists no files"]
    report = progress or no_progress
    problems = []
    for index, (relative, expected) in enumerate(sorted(files.items())):
        path = folder / relative
        report(index / len(files), f"Checking {relative}")
        if not path.is_file():
            problems.append(f"file {path} is missing")
            continue
        actual = sha256_file(path)
        if actual != expected:
            problems.append(f"file {path} is corrupted (SHA-256 {actual}, expected {expected})")
    report(1.0, "Checked")
    log.debug("Verified %s: %d problem(s)", folder, len(problems))
    return problems
