"""Background jobs of the module panels: progress and Cancel in the UI, never a frozen page.

A module Logic's ``start_...`` returns a :class:`segforge.worker.ModuleJob` (``poll``,
``cancel``, ``finish``), the same object the desktop widget polls from a QTimer. Here an
asyncio task on trame's event loop polls it instead, mirrors its status into the state
key ``job_<key>`` (``{"state", "fraction", "message", "running"}``) and, when it is done,
calls ``finish()`` on the loop's thread (VTK and the scene are not thread-safe) and hands
the result to the panel. :func:`job_progress` draws the progress bar, message and Cancel.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from segforge.errors import Cancelled, SegForgeError
from segforge.worker.jobs import DONE

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)


#: What the page shows while a long job's result is put into the scene (the page waits meanwhile).
WRITING_MESSAGE = "Putting the result into the scene..."
#: Time given to the event loop to send that message before the writing starts.
NOTICE_SEND_S = 0.05


def job_state_key(key: str) -> str:
    return f"job_{key}"


class JobTracker:
    """Follows at most one job per key (a panel) from trame's asyncio loop."""

    def __init__(self, context: "AppContext", interval_s: float = 0.2,
                 first_interval_s: Optional[float] = None, writing_notice_after_s: Optional[float] = 1.0) -> None:
        """Polls ``interval_s`` apart; with ``first_interval_s`` the first poll comes that soon and the
        next ones twice as late each time, up to ``interval_s`` (for jobs of a few hundred ms).

        A job that ran longer than ``writing_notice_after_s`` says so in the page before its result
        is written (seconds for a big vessel tree, during which the page cannot be answered);
        None: never. A click's result (well under a second) is written at once.
        """
        self.context = context
        self.interval_s = interval_s
        self.first_interval_s = interval_s if first_interval_s is None else first_interval_s
        self.writing_notice_after_s = writing_notice_after_s
        self._jobs: dict[str, Any] = {}

    def start(self, key: str, job: Any, on_done: Callable[[Any], None],
              on_cancelled: Optional[Callable[[], None]] = None) -> "asyncio.Task":
        """Follow ``job`` under ``key``; ``on_done(result)`` runs with what ``finish()`` returned."""
        if key in self._jobs:
            job.cancel()
            raise SegForgeError("A job is already running here", "one job per panel at a time",
                                "wait for it to finish or cancel it")
        self._jobs[key] = job
        self._set(key, {"state": "queued", "fraction": 0.0, "message": "Starting...", "running": True})
        from trame_server.utils.asynchronous import create_task

        return create_task(self._follow(key, job, on_done, on_cancelled))

    def cancel(self, key: str) -> None:
        """Ask the worker to stop the job under ``key`` (the next poll shows it cancelled)."""
        job = self._jobs.get(key)
        if job is not None:
            job.cancel()

    def is_running(self, key: str) -> bool:
        return key in self._jobs

    async def _follow(self, key: str, job: Any, on_done: Callable[[Any], None],
                      on_cancelled: Optional[Callable[[], None]]) -> None:
        started = time.perf_counter()
        delay = self.first_interval_s
        try:
            while True:
                status = job.poll()
                self._set(key, {"state": status.state, "fraction": float(status.fraction),
                                "message": status.message, "running": not status.finished})
                if status.finished:
                    break
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.interval_s)
            ended = time.perf_counter()
            final = self.context.state[job_state_key(key)]
            # only a job that is done has a result to write: a cancelled or failed one, told so
            # already, must not show its progress bar and Cancel again with the notice
            notice = (status.state == DONE and self.writing_notice_after_s is not None
                      and ended - started > self.writing_notice_after_s)
            if notice:
                self._set(key, {**final, "state": "writing", "message": WRITING_MESSAGE, "running": True})
                await asyncio.sleep(NOTICE_SEND_S)  # the loop sends it before it is busy writing
            result = job.finish()
            if notice:
                self._set(key, final)
            logger.info("job %s: %.2f s in the worker, %.2f s to write its result", key, ended - started,
                        time.perf_counter() - ended)
        except Cancelled:
            self._set(key, {"state": "cancelled", "fraction": 0.0, "message": "Cancelled", "running": False})
            self._call(on_cancelled)
            return
        except Exception as error:  # noqa: BLE001 - the user sees it with what to do
            self._set(key, {"state": "failed", "fraction": 0.0, "message": str(error), "running": False})
            self.context.report_error(error)
            return
        finally:
            self._jobs.pop(key, None)
        self._call(on_done, result)

    def _call(self, callback: Optional[Callable[..., None]], *args: Any) -> None:
        """A panel's callback; what it raises is shown in the UI like the job's own errors."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as error:  # noqa: BLE001
            self.context.report_error(error)

    def _set(self, key: str, value: dict) -> None:
        self.context.set_state(**{job_state_key(key): value})


def job_progress(state: Any, key: str, on_cancel: Callable[[], None]) -> None:
    """Progress bar, status message and Cancel button for the job under ``key`` (call while laying out).

    The state key is created here: the page only follows keys that exist when it is built.
    """
    from trame.widgets import html, vuetify3 as v3

    name = job_state_key(key)
    state.setdefault(name, None)
    with html.Div(v_if=(f"{name} && {name}.running",), classes="d-flex align-center my-2",
                  raw_attrs=[f'data-testid="{key}-progress"']):
        v3.VProgressLinear(model_value=(f"100 * {name}.fraction",), height=8, classes="flex-grow-1 mr-2")
        v3.VBtn("Cancel", size="small", variant="outlined", click=on_cancel, raw_attrs=[f'data-testid="{key}-cancel"'])
    html.Div(f"{{{{ {name} && {name}.message }}}}", v_if=(f"{name}",), classes="text-caption")
