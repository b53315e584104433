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

A download without a catalog checksum (the publisher gives none) is installed too: the
manifest then records the SHA-256 SegForge computed, and the URL stands for the catalog
version. A composite is installed when all its parts are. An nnU-Net entry whose folder is
an nnU-Net dataset folder may also be found in TotalSegmentator's own weights folder, so
users who already have TotalSegmentator's weights need no second download
(:func:`nnunet_model_folder`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from segforge.catalog.catalog import BUNDLED_PREFIX, Catalog, ModelEntry, load_catalog
from segforge.output_set import file_sha256
from segforge.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

HOME_ENV = "SEGFORGE_HOME"
MANIFEST_NAME = ".segforge-install.json"
MANIFEST_FORMAT = 1
TOTALSEG_WEIGHTS_ENV = "TOTALSEG_WEIGHTS_PATH"
TOTALSEG_HOME_ENV = "TOTALSEG_HOME_DIR"
NNUNET_DATASET_FOLDER = r"Dataset\d{3}_[A-Za-z0-9_.-]+"
"""How nnU-Net v2 names a dataset folder (``Dataset297_TotalSegmentator_total_3mm_1559subj``);
only such folders are looked for in TotalSegmentator's weights folder."""
NNUNET_FILES = ("plans.json", "dataset.json")


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
    if entry.is_bundled:
        return bundled_path(entry)
    folder = model_dir(entry.id, home)
    return folder if entry.is_archive else folder / str(entry.filename)


def bundled_path(entry: ModelEntry) -> Path:
    """Where a bundled model's file lies (``Resources/Models/`` of the checkout or the install),
    whether or not it is there."""
    from segforge.resources import resource_path

    relative = str(entry.url)[len(BUNDLED_PREFIX):]
    try:
        return resource_path(relative)
    except FileNotFoundError:
        return resource_path("Models/catalog.json").parent / posixpath.basename(relative)


def read_manifest(folder: Path) -> Optional[dict[str, Any]]:
    """The install manifest of a model folder, or None if absent or unreadable."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    return data


def write_manifest(folder: Path, entry: ModelEntry, files: dict[str, str],
                   sha256: Optional[str] = None, size_bytes: Optional[int] = None) -> None:
    """Record what was installed in ``folder`` (called on the staging folder, before the swap).

    ``sha256`` and ``size_bytes`` are those of the file actually downloaded (default: the
    catalog's); ``catalog_sha256`` keeps what the catalog named (null when unverified).
    """
    manifest = {"format": MANIFEST_FORMAT, "id": entry.id, "url": entry.url,
                "sha256": sha256 or entry.sha256, "catalog_sha256": entry.sha256,
                "verified": entry.sha256 is not None,
                "size_bytes": entry.size_bytes if size_bytes is None else size_bytes, "files": files}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True),
                                        encoding="utf-8")


def is_installed(entry: ModelEntry, home: Optional[Path] = None,
                 catalog: Optional[Catalog] = None) -> bool:
    """True if the model can be used without a download (cheap: no hashing).

    Builtin models are always installed; a composite when all its parts are (``catalog``
    finds them, default :func:`load_catalog`); an entry with an ``nnunet`` spec when
    :func:`nnunet_model_folder` finds its folder. Any other downloaded model when its
    folder has a manifest for the version the catalog names now.
    """
    if entry.is_builtin:
        return True
    if entry.is_composite:
        catalog = catalog if catalog is not None else load_catalog()
        return all(part in catalog and is_installed(catalog.get(part), home) for part in entry.parts)
    if entry.nnunet is not None:
        return nnunet_model_folder(entry, home) is not None
    if entry.is_bundled:  # cheap, as for a cached model: the size, not the checksum (verify() hashes)
        path = bundled_path(entry)
        return path.is_file() and (entry.size_bytes is None or path.stat().st_size == entry.size_bytes)
    return _in_cache(entry, home)


def nnunet_model_folder(entry: ModelEntry, home: Optional[Path] = None) -> Optional[Path]:
    """The folder holding plans.json and dataset.json of an installed nnunetv2 entry, or None.

    First SegForge's cache (``model_dir(id) / nnunet.path``, installed for the catalog's
    version). Else, when the first part of ``nnunet.path`` is an nnU-Net dataset folder
    name, TotalSegmentator's weights folder (:func:`totalsegmentator_weights_dir`) joined
    with ``nnunet.path``, so weights TotalSegmentator already downloaded are used as they
    are. An nnunetv2 entry without an ``nnunet`` spec uses its model folder itself, in the
    cache only. None for other frameworks.
    """
    if entry.framework != "nnunetv2":
        return None
    relative = entry.nnunet.path if entry.nnunet is not None else "."
    own = model_dir(entry.id, home) / relative
    if _in_cache(entry, home) and _has_nnunet_files(own):
        return own
    first = relative.split("/")[0]
    if entry.nnunet is not None and re.fullmatch(NNUNET_DATASET_FOLDER, first):
        theirs = totalsegmentator_weights_dir() / relative
        if _has_nnunet_files(theirs):
            return theirs
    return None


def totalsegmentator_weights_dir() -> Path:
    """Where TotalSegmentator keeps its nnU-Net weights, found the way its config.py does.

    ``$TOTALSEG_WEIGHTS_PATH``, else ``$TOTALSEG_HOME_DIR/nnunet/results``, else
    ``~/.totalsegmentator/nnunet/results`` (``/tmp/.totalsegmentator`` when the home folder
    is ``/``, as in some containers). An empty variable counts as unset here.
    """
    weights = os.environ.get(TOTALSEG_WEIGHTS_ENV, "").strip()
    if weights:
        return Path(weights).expanduser()
    totalseg_home = os.environ.get(TOTALSEG_HOME_ENV, "").strip()
    if totalseg_home:
        return Path(totalseg_home).expanduser() / "nnunet" / "results"
    user_home = Path("/tmp") if str(Path.home()) == "/" else Path.home()
    return user_home / ".totalsegmentator" / "nnunet" / "results"


def _has_nnunet_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in NNUNET_FILES)


def _in_cache(entry: ModelEntry, home: Optional[Path]) -> bool:
    """True when SegForge's cache holds this entry, installed for the catalog's version."""
    manifest = read_manifest(model_dir(entry.id, home))
    return manifest is not None and _version_problem(manifest, entry) is None


def _version_problem(manifest: dict[str, Any], entry: ModelEntry) -> Optional[str]:
    """Why an install is not of the version the catalog names now; None if it is.

    With a catalog checksum, the checksum names the version. Without one, the URL does (a
    new release has a new URL); the SHA-256 recorded at install then guards the files.
    """
    if entry.sha256 is not None:
        if manifest.get("sha256") != entry.sha256:
            return (f"it was installed from a file with SHA-256 {manifest.get('sha256')}, "
                    f"but the catalog now names {entry.sha256}")
        return None
    if manifest.get("url") != entry.url or not isinstance(manifest.get("sha256"), str):
        return f"it was installed from {manifest.get('url')}, but the catalog now names {entry.url}"
    return None


def installed_ids(home: Optional[Path] = None) -> list[str]:
    """Ids of the model folders in the cache (complete or not), sorted."""
    root = models_dir(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def verify(entry: ModelEntry, home: Optional[Path] = None,
           progress: Optional[ProgressCallback] = None,
           catalog: Optional[Catalog] = None) -> Verification:
    """Recompute the SHA-256 of every installed file of ``entry`` and compare.

    Checks the manifest against the catalog's version too, so a folder left from an older
    catalog version is reported rather than silently used. For a download without a catalog
    checksum the files are checked against the SHA-256 recorded when it was installed. A
    composite is verified part by part. A copy found only in TotalSegmentator's weights
    folder is reported: SegForge did not install it and has nothing to check it against.
    """
    if entry.is_builtin:
        return Verification(entry.id)
    if entry.is_composite:
        catalog = catalog if catalog is not None else load_catalog()
        problems = [f"part {part}: {problem}" for part in entry.parts
                    for problem in verify(catalog.get(part), home, progress).problems]
        return Verification(entry.id, tuple(problems))
    if entry.is_bundled:
        path = bundled_path(entry)
        if not path.is_file():
            return Verification(entry.id, (f"its bundled file {path} is missing",))
        digest = file_sha256(path, progress)
        return Verification(entry.id, () if digest == entry.sha256 else
                            (f"its bundled file {path} has SHA-256 {digest}, the catalog names {entry.sha256}",))
    folder = model_dir(entry.id, home)
    outside = nnunet_model_folder(entry, home)
    if not folder.is_dir() and outside is not None:
        return Verification(entry.id, (f"it is used from {outside}, which SegForge did not install, "
                                       "so there is no record to check it against",))
    problems = list(_folder_problems(folder, progress))
    manifest = read_manifest(folder)
    version = None if manifest is None else _version_problem(manifest, entry)
    if version is not None:
        problems.append(version)
    return Verification(entry.id, tuple(problems))


def verify_folder(model_id: str, home: Optional[Path] = None,
                  progress: Optional[ProgressCallback] = None) -> Verification:
    """Check a model folder against its own manifest (for models no longer in the catalog)."""
    return Verification(model_id, tuple(_folder_problems(model_dir(model_id, home), progress)))


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
        actual = file_sha256(path)
        if actual != expected:
            problems.append(f"file {path} is corrupted (SHA-256 {actual}, expected {expected})")
    report(1.0, "Checked")
    log.debug("Verified %s: %d problem(s)", folder, len(problems))
    return problems


def weights_sha256(entry: ModelEntry, home: Optional[Path] = None, catalog: Optional[Catalog] = None) -> Optional[str]:
    """The SHA-256 that names the weights ``entry`` runs with here; None for a builtin model
    (its code is the model) or one that is not installed.

    A model in SegForge's cache: the SHA-256 its install manifest records (the catalog's
    checksum, or the one SegForge computed for a download the publisher gives none for): no
    hashing, and it changes whenever other weights are installed. A composite: one SHA-256 over
    its parts'. An nnU-Net folder found in TotalSegmentator's weights folder (no manifest):
    :func:`folder_sha256` of that folder. What a batch's resume rule keeps, so results made with
    other weights are never reused."""
    if entry.is_builtin:
        return None
    if entry.is_composite:
        catalog = catalog if catalog is not None else load_catalog()
        parts = [f"{part}:{weights_sha256(catalog.get(part), home, catalog)}" for part in entry.parts]
        return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
    manifest = read_manifest(model_dir(entry.id, home))
    if manifest is not None and _version_problem(manifest, entry) is None:
        return str(manifest["sha256"])
    outside = nnunet_model_folder(entry, home)
    return None if outside is None else folder_sha256(outside)


_FOLDER_HASHES: dict[tuple, str] = {}


def folder_sha256(folder: Path) -> str:
    """One SHA-256 over a model folder's files (relative names and contents; hidden files
    aside), for weights SegForge did not install and so has no manifest of. Kept per process by
    each file's size and modification time, so a worker hashes a folder of several hundred MB
    once, not once per case."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    key = (str(folder), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key not in _FOLDER_HASHES:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0" +
                          file_sha256(path).encode("ascii"))
        _FOLDER_HASHES[key] = digest.hexdigest()
    return _FOLDER_HASHES[key]
