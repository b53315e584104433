"""An exclusive lock on a file, so that SegForge processes on one machine take turns (or learn
that another holds it) where a rename alone cannot keep them apart.

POSIX ``flock``: released by the kernel when the holder dies, so a killed process never leaves
a lock behind. Where there is no ``flock`` (Windows) no lock is taken and the caller's own
guarantees (whole files by rename, checks before work) still hold.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True, optional: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs; yields
    whether it is held. ``wait=False``: yields False at once when another process holds it.
    ``optional``: a lock file that cannot be opened (another user's) means no lock, not an error."""
    try:
        import fcntl
    except ImportError:  # no flock here
        yield True
        return
    try:
        handle = open(path, "a")
    except OSError:
        if not optional:
            raise
        yield True
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
