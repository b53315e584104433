"""Progress reporting shared by the engine, the worker and the CLI.

Long functions take an optional ``progress(fraction, message)`` callback. A callback may
raise :class:`segforge.errors.Cancelled` to stop the work; that is how Cancel reaches
the engine, so every long loop must report often (at least once a second).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, TypeVar

ProgressCallback = Callable[[float, str], None]
T = TypeVar("T")


def no_progress(fraction: float, message: str) -> None:
    """A callback that ignores progress."""


def sub_progress(progress: Optional[ProgressCallback], start: float, stop: float) -> ProgressCallback:
    """Map a step's own 0..1 progress onto the ``start..stop`` part of its caller's bar."""
    report = progress or no_progress
    span = stop - start

    def _report(fraction: float, message: str) -> None:
        report(start + span * min(max(fraction, 0.0), 1.0), message)

    return _report


def report_while(work: Callable[[ProgressCallback], T], report: ProgressCallback) -> T:
    """Run ``work(stage)`` in a helper thread while this thread reports its latest stage
    every 0.2 s, so Cancel lands within a second even while one numpy or scipy call
    takes several (labelling a 512^3 mask does; they release the GIL).

    On Cancel the helper is abandoned: it finishes its current call in the background
    and its result is dropped; it writes nothing anyone reads.
    """
    state: list = [0.0, ""]
    outcome: dict = {}

    def stage(fraction: float, message: str) -> None:
        state[:] = [fraction, message]

    def run() -> None:
        try:
            outcome["value"] = work(stage)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    helper = threading.Thread(target=run, name="segforge-work", daemon=True)
    helper.start()
    while helper.is_alive():
        if state[1]:
            report(state[0], state[1])
        helper.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
