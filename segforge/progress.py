"""Progress reporting shared by the engine, the worker and the CLI.

Long functions take an optional ``progress(fraction, message)`` callback. A callback may
raise :class:`segforge.errors.Cancelled` to stop the work; that is how Cancel reaches
the engine, so every long loop must report often (at least once a second).
"""
from __future__ import annotations

from typing import Callable, Optional

ProgressCallback = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A callback that ignores progress."""


def sub_progress(progress: Optional[ProgressCallback], start: float, stop: float) -> ProgressCallback:
    """Map a step's own 0..1 progress onto the ``start..stop`` part of its caller's bar."""
    report = progress or no_progress
    span = stop - start

    def _report(fraction: float, message: str) -> None:
        report(start + span * min(max(fraction, 0.0), 1.0), message)

    return _report
