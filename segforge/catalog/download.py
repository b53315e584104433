"""Download a catalog model into the cache: streamed, checked, installed atomically.

Why each step is the way it is:

* Streaming in chunks with a progress callback: models are large, the GUI needs a bar and
  a Cancel (the callback may raise :class:`Cancelled`).
* The bytes go to a hidden temporary file in ``<home>/models/`` (the same file system as
  the model folder) while their SHA-256 is computed on the fly; nothing is installed
  unless the checksum matches the catalog.
* The model folder is assembled in a hidden staging folder (file moved in with
  ``os.replace``, or archive unpacked there, plus the manifest) and then renamed into
  place, so a reader sees either the old folder or the complete new one.
* Whatever goes wrong (wrong checksum, connection dropped, timeout, Cancel, Ctrl-C) the
  temporary file and the staging folder are removed.
* Offline sites: a file copied by hand to ``<home>/models/<id>/<file name>`` is checked
  and installed without any network access. Every network failure says so.
* A download the catalog has no checksum for (the publisher gives none) is installed with
  a warning; its SHA-256 is computed all the same and recorded in the manifest, so
  ``verify`` can later tell whether the files changed since.
* A composite downloads each of its parts.

Only the standard library (urllib) is used, so the engine needs no extra dependency.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Optional

from segforge import __version__
from segforge.catalog import cache
from segforge.catalog.catalog import Catalog, ModelEntry, load_catalog, unverified_warning
from segforge.errors import ModelError
from segforge.output_set import file_sha256
from segforge.progress import ProgressCallback, no_progress, sub_progress

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
STALE_AFTER_S = 3600.0
"""Temporary files untouched this long belong to a download that was killed; removed."""
_DOWNLOAD_SHARE = 0.95
"""Part of the progress bar for the transfer; the rest is checking and unpacking."""


def download(entry: ModelEntry, *, home: Optional[Path] = None,
             progress: Optional[ProgressCallback] = None,
             timeout: float = DEFAULT_TIMEOUT_S, force: bool = False,
             catalog: Optional[Catalog] = None) -> Optional[Path]:
    """Make ``entry`` available in the cache and return the path a runtime loads.

    That is :func:`cache.nnunet_model_folder` for an entry with an ``nnunet`` spec (possibly
    TotalSegmentator's own copy), else :func:`cache.model_path`. Does nothing for builtin
    models (returns None) or models already installed (unless ``force``). A composite
    downloads its parts (found in ``catalog``, default :func:`load_catalog`) and returns
    None. Uses a file copied by hand into the model folder when there is one. Raises
    :class:`ModelError` with what / why / what to do on any failure, leaving no partial
    file behind; re-raises :class:`Cancelled` from the callback after cleaning up.
    """
    report = progress or no_progress
    if entry.is_builtin:
        report(1.0, f"{entry.id} is built in; nothing to download")
        return None
    if entry.is_composite:
        _download_parts(entry, home, report, timeout, force, catalog)
        return None
    if entry.is_bundled:
        problems = cache.verify(entry, home, report).problems
        if problems:
            raise ModelError(f"The bundled model {entry.id} is damaged", "; ".join(problems),
                             "reinstall SegForge (the file ships with it)")
        report(1.0, f"{entry.id} ships with SegForge; nothing to download")
        return cache.model_path(entry, home)
    if not force and cache.is_installed(entry, home):
        report(1.0, f"{entry.id} is already installed")
        return _located(entry, home)
    warning = unverified_warning(entry)
    if warning:
        log.warning("%s", warning)
    root = cache.models_dir(home)
    _make_folder(root)
    _remove_stale_temporaries(root, entry.id)
    hand_copied = cache.model_dir(entry.id, home) / str(entry.filename)
    try:
        if not force and hand_copied.is_file() and cache.read_manifest(hand_copied.parent) is None:
            _install_hand_copy(entry, hand_copied, root, report)
        else:
            _install_from_network(entry, root, report, timeout, offline_todo(entry, home))
    except OSError as error:  # disk full, permissions: the network errors are ModelErrors already
        raise ModelError(f"Could not install model {entry.id!r} in {root}", str(error),
                         f"check the free space and permissions there, or set {cache.HOME_ENV} "
                         "to another folder") from error
    report(1.0, f"Installed {entry.id} in {cache.model_dir(entry.id, home)}")
    log.info("Installed %s in %s", entry.id, cache.model_dir(entry.id, home))
    return _located(entry, home)


def _located(entry: ModelEntry, home: Optional[Path]) -> Optional[Path]:
    """What a runtime loads for an installed entry."""
    if entry.nnunet is not None:
        return cache.nnunet_model_folder(entry, home)
    return cache.model_path(entry, home)


def _download_parts(entry: ModelEntry, home: Optional[Path], report: ProgressCallback,
                    timeout: float, force: bool, catalog: Optional[Catalog]) -> None:
    """Download every part of a composite, each on its share of the progress bar."""
    catalog = catalog if catalog is not None else load_catalog()
    parts = [catalog.get(part_id) for part_id in entry.parts]
    for index, part in enumerate(parts):
        download(part, home=home, timeout=timeout, force=force, catalog=catalog,
                 progress=sub_progress(report, index / len(parts), (index + 1) / len(parts)))
    report(1.0, f"{entry.id}: all {len(parts)} parts are installed")


def _install_hand_copy(entry: ModelEntry, copy: Path, root: Path, report: ProgressCallback) -> None:
    """Install a file someone copied into the model folder (offline sites), if it checks out."""
    log.info("Installing %s from the copy at %s", entry.id, copy)
    digest = file_sha256(copy, sub_progress(report, 0.0, _DOWNLOAD_SHARE))
    _check_digest(entry, digest, str(copy),
                  f"replace it with a good copy of {entry.url}, or delete it to download again")
    _install(entry, copy, root, sub_progress(report, _DOWNLOAD_SHARE, 1.0), digest, copy.stat().st_size)


def _install_from_network(entry: ModelEntry, root: Path, report: ProgressCallback,
                          timeout: float, todo: str) -> None:
    """Download into a hidden temporary file, check it, install it; never leave it behind."""
    if entry.size_bytes is not None:
        _check_free_space(entry, root, entry.size_bytes)
    fd, name = tempfile.mkstemp(prefix=f".{entry.id}.", suffix=".part", dir=root)
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(entry, out, sub_progress(report, 0.0, _DOWNLOAD_SHARE), timeout, todo, root)
        _check_digest(entry, digest, str(entry.url),
                      "download it again; if it keeps failing, the file on the server has "
                      f"changed and the catalog entry in {entry.source} needs updating")
        _install(entry, part, root, sub_progress(report, _DOWNLOAD_SHARE, 1.0), digest, part.stat().st_size)
    finally:
        part.unlink(missing_ok=True)


def offline_todo(entry: ModelEntry, home: Optional[Path] = None) -> str:
    """What to tell a user whose machine cannot reach the model's server."""
    folder = cache.model_dir(entry.id, home)
    return (f"connect to the network and try again, or download {entry.url} on a connected "
            f"machine and copy it to {folder / str(entry.filename)} (the folder {folder}), "
            f"then run `segforge models download {entry.id}` again: it checks the copy and "
            "installs it without the network")


def _fetch(entry: ModelEntry, out: BinaryIO, progress: ProgressCallback, timeout: float,
           todo: str, root: Path) -> str:
    """Stream the URL into ``out``; return the SHA-256 of what arrived.

    ``todo`` is the advice for network failures (it names this cache's folder). With no
    catalog size, the size the server announces (if any) is used for the free-space check
    in ``root`` and for the progress bar; with neither, the free-space check is skipped and
    the bar shows the bytes received.
    """
    what = f"Could not download model {entry.id!r}"
    request = urllib.request.Request(str(entry.url), headers={"User-Agent": f"segforge/{__version__}"})
    log.info("Downloading %s from %s", entry.id, entry.url)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise _http_error(entry, error.code, str(error.reason)) from None
    except urllib.error.URLError as error:
        raise _unreachable(entry, error.reason, todo) from error
    except (OSError, http.client.HTTPException) as error:
        raise _unreachable(entry, error, todo) from error
    with response:
        header = response.headers.get("Content-Length")
        announced = int(header) if header is not None and header.isdigit() else None
        if announced is not None and entry.size_bytes is not None and announced != entry.size_bytes:
            raise ModelError(what, f"{entry.url} offers {announced} bytes but the catalog "
                             f"expects {entry.size_bytes}, so it is not the catalogued file",
                             f"check the url and size_bytes of {entry.id!r} in {entry.source}")
        if entry.size_bytes is None and announced is not None:
            _check_free_space(entry, root, announced)
        total = entry.size_bytes if entry.size_bytes is not None else announced
        digest = hashlib.sha256()
        received = 0
        progress(0.0, f"Downloading {entry.id}: {_amount(0, total)}")
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise _interrupted(entry, received, total, error, todo) from error
            if not chunk:
                break
            received += len(chunk)
            if entry.size_bytes is not None and received > entry.size_bytes:
                raise ModelError(what, f"{entry.url} sent more than the {total} bytes the catalog "
                                 "expects, so it is not the catalogued file",
                                 f"check the url and size_bytes of {entry.id!r} in {entry.source}")
            digest.update(chunk)
            out.write(chunk)
            progress(received / total if total else 0.0, f"Downloading {entry.id}: {_amount(received, total)}")
        if total is not None and received < total:
            raise _interrupted(entry, received, total, None, todo)
    return digest.hexdigest()


def _amount(received: int, total: Optional[int]) -> str:
    return f"{human_size(received)} of {human_size(total)}" if total else human_size(received)


def _check_digest(entry: ModelEntry, digest: str, source: str, todo: str) -> None:
    if entry.sha256 is None:
        log.warning("%s from %s has SHA-256 %s; the catalog names none to compare with "
                    "(recorded for later verification)", entry.id, source, digest)
        return
    if digest != entry.sha256:
        raise ModelError(f"The file for model {entry.id!r} from {source} is not the expected one",
                         f"its SHA-256 is {digest} but the catalog expects {entry.sha256}; "
                         "it may be damaged, incomplete or a different version; nothing was installed",
                         todo)


def _install(entry: ModelEntry, source: Path, root: Path, progress: ProgressCallback,
             digest: str, size: int) -> None:
    """Build the model folder from ``source`` in a staging folder, then swap it in.

    ``digest`` and ``size`` are those of ``source`` (checked against the catalog if it has
    a checksum); the manifest records them.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.id}.", suffix=".staging", dir=root))
    try:
        if entry.is_archive:
            files = _extract_zip(entry, source, staging, progress)
        else:
            os.replace(source, staging / str(entry.filename))
            files = {str(entry.filename): digest}
        _check_nnunet_folder(entry, staging)
        cache.write_manifest(staging, entry, files, digest, size)
        swap_into_place(staging, root / entry.id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_nnunet_folder(entry: ModelEntry, staging: Path) -> None:
    """Refuse an archive that lacks the nnU-Net folder the catalog names (nothing installed)."""
    if entry.nnunet is None:
        return
    folder = staging / entry.nnunet.path
    missing = [name for name in cache.NNUNET_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelError(f"The archive for model {entry.id!r} is not the nnU-Net model the catalog describes",
                         f"it has no {' or '.join(missing)} in {entry.nnunet.path}; nothing was installed",
                         f"check nnunet.path of {entry.id!r} in {entry.source} against the archive "
                         f"from {entry.url}")


def _extract_zip(entry: ModelEntry, archive: Path, staging: Path,
                 progress: ProgressCallback) -> dict[str, str]:
    """Unpack into ``staging``, refusing names that would escape it; return file hashes."""
    def bad(why: str) -> ModelError:
        return ModelError(f"The archive for model {entry.id!r} could not be unpacked", why,
                          f"report this to whoever publishes {entry.url}")

    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            total = max(sum(m.file_size for m in members), 1)
            done = 0
            files: dict[str, str] = {}
            for member in members:
                relative = _safe_member_name(member.filename)
                if relative is None or relative == cache.MANIFEST_NAME:
                    raise bad(f"it contains the unsafe or reserved file name {member.filename!r}")
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(member) as src, open(target, "wb") as dst:
                    for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
                        digest.update(chunk)
                        dst.write(chunk)
                        done += len(chunk)
                        progress(done / total, f"Unpacking {entry.id}: {relative}")
                files[relative] = digest.hexdigest()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, NotImplementedError) as error:
        # RuntimeError: encrypted member; NotImplementedError: unsupported compression.
        raise bad(f"it is not a readable .zip file ({error})") from error
    if not files:
        raise bad("it contains no files")
    return files


def _safe_member_name(name: str) -> Optional[str]:
    """The member's path relative to the model folder, or None if it would escape it."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or not path.parts or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path.as_posix()


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an older ``target`` is moved aside then deleted."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        raise
    finally:
        if old is not None and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        elif old is not None:
            old.unlink(missing_ok=True)


def _make_folder(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f"Could not create the model cache folder {root}", str(error),
                         f"make it writable, or set {cache.HOME_ENV} to a writable folder") from error


def _check_free_space(entry: ModelEntry, root: Path, size: int) -> None:
    """Refuse a download of ``size`` bytes (twice that for an archive: it is unpacked
    next to itself) when the disk cannot hold it."""
    needed = size * (2 if entry.is_archive else 1)
    free = shutil.disk_usage(root).free
    if free < needed:
        raise ModelError(f"Not enough disk space to download model {entry.id!r}",
                         f"it needs about {human_size(needed)} in {root}, which has {human_size(free)} free",
                         f"free some space there, or set {cache.HOME_ENV} to a folder on a larger disk")


def _remove_stale_temporaries(root: Path, model_id: str) -> None:
    """Remove leftovers of killed downloads of this model (not those still being written)."""
    now = time.time()
    for path in root.glob(f".{model_id}.*"):
        try:
            if now - path.stat().st_mtime > STALE_AFTER_S:
                log.info("Removing the leftover %s", path)
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        except OSError:
            pass


def _http_error(entry: ModelEntry, code: int, reason: str) -> ModelError:
    todo = ("the file may have moved or been removed: check the url of "
            f"{entry.id!r} in {entry.source}") if code in (404, 410) else (
        "try again later; if it keeps failing, check the url and whether the server needs access rights")
    return ModelError(f"Could not download model {entry.id!r}",
                      f"the server answered HTTP {code} {reason} for {entry.url}", todo)


def _unreachable(entry: ModelEntry, reason: object, todo: str) -> ModelError:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        why = f"the server did not answer in time ({entry.url})"
    elif isinstance(reason, ConnectionRefusedError):
        why = f"the connection to {entry.url} was refused (the server is down or unreachable)"
    elif isinstance(reason, socket.gaierror):
        why = f"the server name in {entry.url} could not be looked up (this machine seems to be offline)"
    else:
        why = f"{entry.url} could not be reached ({reason})"
    return ModelError(f"Could not download model {entry.id!r}", why, todo)


def _interrupted(entry: ModelEntry, received: int, total: Optional[int],
                 error: Optional[BaseException], todo: str) -> ModelError:
    cause = "the server stopped answering" if isinstance(error, (TimeoutError, socket.timeout)) else (
        "the connection was closed")
    of = f" of {total}" if total is not None else ""
    return ModelError(f"The download of model {entry.id!r} was interrupted",
                      f"{cause} after {received}{of} bytes from {entry.url}; "
                      "nothing was installed", todo)


def human_size(size: float) -> str:
    """A byte count for people: ``"0 B"``, ``"12.3 MB"`` (decimal units, as disks are sold)."""
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
