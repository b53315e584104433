"""All-or-nothing result folders: the one policy every command that writes an ``--out`` follows.

A set of results is written into a hidden temporary folder beside the target (the same file
system: ``.<name>.partial-<random>``) and moved into place only when every file is complete,
with a ``manifest.json`` naming each file, its size and SHA-256, the input (and what reading
it warned of), the parameters, the SegForge version and the date. So:

* a folder that already holds results is refused before any work, unless ``overwrite``; an
  overwrite replaces the whole set (the old folder is renamed aside, the new one moved in,
  the old one deleted; if the move fails the old one is put back), never part of it;
* problems with the target are found before the work: a file in the way, a parent that is a
  file, a folder that cannot be written, too little free space for a rough size estimate, a
  target that is the input or holds it;
* an exception, Ctrl-C, SIGTERM (see :func:`terminate_raises`) or a full disk leave the
  previous results exactly as they were and no temporary files.

Use::

    with OutputSet(out, overwrite=..., expected_bytes=..., input_path=..., parameters=...) as outputs:
        ...the work...
        write the files into outputs.folder
        files = outputs.commit(files)   # {kind: final path}
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from .errors import InputError

MANIFEST = "manifest.json"
#: Slack kept free beyond an estimate (file system metadata, the manifest, rounding).
SPACE_MARGIN_BYTES = 1 << 20
#: Names SegForge itself has written into a result folder, by any command or version: an
#: ``--overwrite`` may replace a folder holding only these (or those its manifest names).
KNOWN_RESULT_NAMES = frozenset({
    MANIFEST, "summary.json", "vessels.seg.nrrd", "centerlines.vtp", "surface.vtp", "branches.csv",
    "stenoses.csv", "organs.seg.nrrd", "statistics.csv", "lesion.seg.nrrd", "segforge_demo.mrb", "vessels.png",
    "cross_sections.csv", "landmarks.csv", "diameters.png", "straightened.nrrd", "centerline_model_vmtk.vtp",
    "seg.dcm", "sr.dcm",
    # what the interactive command of earlier versions left behind on a full disk
    ".lesion.partial.seg.nrrd", ".summary.partial.json"})
#: errno values that mean "this place cannot be written", with the reason shown to the user.
_NOT_WRITABLE = {errno.EACCES: "permission is denied", errno.EPERM: "the operation is not permitted there",
                 errno.EROFS: "the file system is read-only"}
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def estimate_bytes(input_path: str | os.PathLike, factor: float) -> int:
    """A rough size of a result set: the input's size on disk (a file, or a DICOM folder's
    files) times ``factor``; 0 when the input cannot be measured (it is read later, and any
    problem with it is said then)."""
    path = Path(input_path)
    try:
        if path.is_dir():
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        else:
            size = path.stat().st_size
    except OSError:
        return 0
    return int(size * factor)


def require_space(folder: str | os.PathLike, nbytes: int, what: str = "the results") -> None:
    """InputError when the file system of ``folder`` has less than ``nbytes`` (plus a margin) free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # not measurable here: the write itself will say
    needed = int(nbytes) + SPACE_MARGIN_BYTES
    if free < needed:
        raise InputError(f"Not enough free space for {what} in {folder}",
                         f"about {_megabytes(needed)} are needed and {_megabytes(free)} are free",
                         "free some space on that disk or choose another --out; nothing was written or changed")


def disk_error(error: OSError, out: Path) -> Optional[InputError]:
    """The SegForge error for a write that failed because the disk is full or cannot be written."""
    if error.errno in _DISK_FULL:
        return InputError(f"Cannot write the results into {out}", "the disk is full (no space left on the device)",
                          "free some space or choose another --out; the previous results, if any, are unchanged "
                          "and no partial file was left")
    if error.errno in _NOT_WRITABLE:
        return InputError(f"Cannot write the results into {out}", _NOT_WRITABLE[error.errno],
                          "choose a folder you may write to for --out")
    return None


class OutputSet:
    """The results of one run, written beside ``out`` and moved in whole (see the module's text)."""

    def __init__(self, out: str | os.PathLike, *, overwrite: bool = False, expected_bytes: int = 0,
                 input_path: str | os.PathLike | None = None, parameters: Optional[Mapping[str, Any]] = None,
                 command: str = "", input_warnings: Optional[list[str]] = None,
                 finished_at_commit: bool = False) -> None:
        self.shown = Path(out)  # as the user gave it, for messages and the paths printed
        self.target = Path(os.path.abspath(out))
        if self.target.is_symlink() and self.target.resolve().is_dir():
            self.target = self.target.resolve()  # a link to a folder: the folder is replaced, the link stays
        self.overwrite = overwrite
        self.expected_bytes = int(expected_bytes)
        self.input_path = None if input_path is None else os.path.abspath(input_path)
        self.parameters = dict(parameters or {})
        self.command = command
        #: What reading the input warned of (an assumed spacing, gaps filled): the manifest keeps it
        #: beside the results it concerns. The caller may fill the list after creating the set.
        self.input_warnings = input_warnings if input_warnings is not None else []
        #: A command whose run ends with the commit: from the moment the set is in place, Ctrl-C and
        #: SIGTERM are ignored, so a run is either interrupted with nothing written or finished (exit 0)
        #: with its results, never "interrupted" with its results in place.
        self.finished_at_commit = finished_at_commit
        self.folder: Optional[Path] = None  # the temporary folder the files are written into
        self._seen: Optional[tuple[int, int, int]] = None
        self.committed = False
        self._created_parents: list[Path] = []

    # -- before the work -------------------------------------------------------------------

    def __enter__(self) -> "OutputSet":
        try:
            self.prepare()
        except BaseException:  # Ctrl-C while preparing: __exit__ is not called for a failed __enter__
            self.abort()
            raise
        return self

    def prepare(self) -> Path:
        """Check the target and make the temporary folder; InputError for anything in the way."""
        target = self.target
        self._refuse_input_inside(target)
        if target.exists() and not target.is_dir():
            raise InputError(f"Cannot write into {self.shown}", "it is a file, not a folder",
                             "give a folder for --out (a new one is created)")
        if target.is_dir():
            self._check_existing(target)
        self._seen = _state(target)  # what --out was when the work began (see _swap)
        self._make_parents(target.parent)
        name = f".{target.name}.partial-{secrets.token_hex(4)}"
        try:
            with signals_held():  # made and remembered at once, so a Ctrl-C cannot leave it behind
                (target.parent / name).mkdir()  # the real test of "may I write there"
                self.folder = target.parent / name
        except OSError as error:
            self._remove_created_parents()
            raise self._not_writable(error, target.parent) from error
        try:
            require_space(target.parent, self.expected_bytes)
        except BaseException:
            self.abort()
            raise
        return self.folder

    def _refuse_input_inside(self, target: Path) -> None:
        """--out is the input, or a folder holding it: the set would be written over what it reads
        (an overwrite would delete it; without one the input's files were called "results")."""
        if self.input_path is None:
            return
        source, folder = Path(os.path.realpath(self.input_path)), Path(os.path.realpath(target))
        if source == folder or folder in source.parents:
            raise InputError(f"Cannot write the results into {self.shown}",
                             f"it {'is' if source == folder else 'holds'} the input {self.input_path}",
                             "choose an --out outside the input (a new folder beside it, for example); "
                             "nothing was written or changed")

    def _check_existing(self, target: Path) -> None:
        try:
            present = sorted(p.name for p in target.iterdir())
        except OSError as error:
            raise self._not_writable(error, target) from error
        if not present:
            return
        if not self.overwrite:
            raise InputError(f"The folder {self.shown} already holds results ({', '.join(present[:4])}"
                             f"{', ...' if len(present) > 4 else ''})",
                             "SegForge does not mix the files of two runs",
                             "add --overwrite to replace the whole folder, or choose another --out")
        foreign = [name for name in present if name not in KNOWN_RESULT_NAMES | _manifest_names(target)]
        if foreign:
            raise InputError(f"Cannot overwrite {self.shown}",
                             f"it holds files SegForge did not write ({', '.join(foreign[:4])}), which an "
                             "overwrite would delete", "move them away or choose another --out")

    def _make_parents(self, parent: Path) -> None:
        missing = []
        for folder in (parent, *parent.parents):
            if folder.is_dir():
                break
            if folder.is_symlink() and not folder.exists():
                raise InputError(f"Cannot write into {self.shown}", f"{folder} is a symbolic link that leads "
                                 "nowhere (it loops, or what it points to is gone)",
                                 "give an --out whose parent folders are folders")
            if folder.exists():
                raise InputError(f"Cannot write into {self.shown}", f"{folder} is a file, not a folder",
                                 "give an --out whose parent folders are folders")
            missing.append(folder)
        for folder in reversed(missing):
            try:
                with signals_held():
                    folder.mkdir()
                    self._created_parents.append(folder)
            except FileExistsError:
                continue
            except OSError as error:
                self._remove_created_parents()
                raise self._not_writable(error, folder.parent) from error

    def _not_writable(self, error: OSError, where: Path) -> InputError:
        if error.errno in _DISK_FULL:
            reason = "the disk is full"
        else:
            reason = _NOT_WRITABLE.get(error.errno or 0, error.strerror or str(error))
        return InputError(f"Cannot write into {self.shown}", f"{where}: {reason}",
                          "choose a folder you may write to for --out; nothing was written or changed")

    # -- after the work --------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """Where to write the file ``name`` of the set (inside the temporary folder)."""
        if self.folder is None:
            raise RuntimeError("OutputSet.prepare() first")
        return self.folder / name

    def require_space(self, nbytes: int) -> None:
        """InputError (nothing changed) when the files about to be written cannot fit."""
        require_space(self.folder or self.target.parent, nbytes)

    def commit(self, files: Mapping[str, os.PathLike | str]) -> dict[str, Path]:
        """Write the manifest and move the complete set into place; the files by kind at their final paths."""
        if self.folder is None:
            raise RuntimeError("OutputSet.prepare() first")
        entries = []
        for name in sorted(p.name for p in self.folder.iterdir()):
            entries.append({"name": name, "bytes": (self.folder / name).stat().st_size,
                            "sha256": file_sha256(self.folder / name)})
        from . import __version__

        manifest = {"segforge_version": __version__, "command": self.command, "input": self.input_path,
                    "input_warnings": list(self.input_warnings), "parameters": self.parameters,
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "files": entries}
        _write_synced(self.folder / MANIFEST, (json.dumps(manifest, indent=2, default=str) + "\n").encode("utf-8"))
        _sync_folder(self.folder)
        with signals_held():
            self._swap()
            if self.finished_at_commit:
                _ignore_interrupts()  # before the held signals are let through (then dropped)
        self.committed = True
        return {kind: self.shown / Path(path).name for kind, path in files.items()}

    def _swap(self) -> None:
        """Move the set in. Another run may have written into --out meanwhile (two runs started
        on one --out): its results are never replaced unasked, and this run says so rather than
        report files that are not there. Without an overwrite the rename itself is the test (it
        fails on a folder that is not empty, atomically); with one, --out must be as it was
        when the work began."""
        assert self.folder is not None
        target, aside = self.target, None
        if _state(target) != self._seen:
            raise self._changed_meanwhile()
        if target.exists() and self.overwrite:
            aside = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
            os.rename(target, aside)
        try:
            os.rename(self.folder, target)
        except OSError as error:
            if aside is not None:
                os.rename(aside, target)  # the previous results, back as they were
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise self._changed_meanwhile() from None
            raise
        except BaseException:
            if aside is not None:
                os.rename(aside, target)
            raise
        self.folder = None
        _sync_folder(target.parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def _changed_meanwhile(self) -> InputError:
        return InputError(f"Did not write the results into {self.shown}",
                          "another run wrote into that folder while this one worked (two runs on one --out); "
                          "the other run's results are there, untouched, and this run's were not moved in",
                          "run again with another --out (or with --overwrite once the other run has finished)")

    def __exit__(self, kind, error, trace) -> None:
        self.abort()
        if isinstance(error, OSError) and self._about_the_output(error):
            converted = disk_error(error, self.shown)
            if converted is not None:
                raise converted from error

    def _about_the_output(self, error: OSError) -> bool:
        """Whether a failed call was about writing the set (a full disk while reading an input
        is not; an error without a file name, from a native writer, is taken to be)."""
        if not error.filename:
            return True
        failed = Path(os.path.abspath(error.filename))
        return any(place == failed or place in failed.parents for place in (self.target.parent,)) \
            and not (self.input_path and Path(self.input_path) in (failed, *failed.parents))

    def abort(self) -> None:
        """Remove the temporary folder (and parents made for it); the target is left as it was."""
        with signals_held():  # a second Ctrl-C does not cut the clean-up short
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None
            if not self.committed:
                self._remove_created_parents()

    def _remove_created_parents(self) -> None:
        for folder in reversed(self._created_parents):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created_parents = []


def _state(folder: Path) -> Optional[tuple[int, int, int]]:
    """A folder's identity and last change (device, inode, mtime); None when absent. Any file
    added, removed or renamed in it, or the folder replaced, changes it."""
    try:
        status = folder.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_mtime_ns


def file_sha256(path: str | os.PathLike, progress: Optional[Callable[[float, str], None]] = None) -> str:
    """SHA-256 of a file, read a mebibyte at a time (models can be gigabytes); ``progress``
    hears the share read so far."""
    path = Path(path)
    total = max(path.stat().st_size, 1) if progress is not None else 1
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            if progress is not None:
                done += len(block)
                progress(done / total, f"Checking {path.name}")
    return digest.hexdigest()


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """The problems of a result folder against its manifest (missing, extra, changed files); empty when whole."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    problems = []
    listed = {entry["name"]: entry for entry in manifest["files"]}
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
            problems.append(f"{name}: changed")
    problems += [f"{p.name}: not in the manifest" for p in folder.iterdir() if p.name not in listed | {MANIFEST: 0}]
    return problems


def replace_file(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write one file whole or not at all: ``write`` fills a temporary file beside ``path``
    (named for this writer alone, so two processes never share one), which then takes
    ``path``'s place in one rename; on any failure or Ctrl-C it is removed and ``path`` is as
    it was. For a single file kept up to date in place (a table, a checkpoint, a catalog);
    a set of files goes through :class:`OutputSet`."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` through a Python file, so a full disk is an OSError (ENOSPC), never a native crash."""
    path = Path(path)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (see :func:`terminate_raises`)."""


def terminate_raises() -> None:
    """From now on SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread, so
    ``finally`` blocks and :class:`OutputSet` clean up as after Ctrl-C (call it in a command-line
    entry point)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(number: int, frame: Any) -> None:
        raise Terminated(f"signal {number}")

    signal.signal(signal.SIGTERM, interrupt)


def _manifest_names(folder: Path) -> frozenset[str]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return frozenset(str(entry["name"]) for entry in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """fsync the files of ``folder`` and the folder itself, so a set that was moved in is on the disk."""
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.is_file():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def signals_held(replay: bool = True) -> Iterator[None]:
    """Ctrl-C / SIGTERM arriving inside wait until it is done (one set, never half), then act as
    they would have (``replay``; a handler set inside, SIG_IGN at a commit, is the one that acts),
    or are dropped (``replay=False``: a second Ctrl-C while an interrupted run tidies up).
    Python-level handlers, not a thread's signal mask: the kernel may hand the signal to any other
    thread (a progress bar's, a native library's), whose C handler would still trip the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def remember(number: int, frame: Any) -> None:
        arrived.append(number)

    previous = {number: signal.signal(number, remember) for number in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(number) is not None}
    try:
        yield
    finally:
        for number, handler in previous.items():
            if signal.getsignal(number) is remember:
                signal.signal(number, handler)
        if arrived and replay:
            signal.raise_signal(arrived[0])


def _ignore_interrupts() -> None:
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"
