"""Errors that tell the user what failed, why, and what to do.

Every error the engine raises on purpose is a :class:`SegForgeError`. It carries three
sentences, so the GUI, the CLI and the worker protocol can all show the same helpful text,
and it survives a trip through the worker as plain JSON (never pickled).
"""
from __future__ import annotations

from typing import Any


class SegForgeError(Exception):
    """A failure with a user-facing explanation: ``what`` failed, ``why``, and ``todo``."""

    code = "error"

    def __init__(self, what: str, why: str = "", todo: str = "") -> None:
        self.what = what
        self.why = why
        self.todo = todo
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return " ".join(_sentence(part) for part in (self.what, self.why, self.todo) if part)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "what": self.what, "why": self.why, "todo": self.todo}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SegForgeError":
        """Rebuild an error received from the worker, keeping its subclass where known."""
        subclass = _BY_CODE.get(str(data.get("code", "error")), SegForgeError)
        error = subclass.__new__(subclass)
        SegForgeError.__init__(error, str(data.get("what", "")), str(data.get("why", "")),
                               str(data.get("todo", "")))
        return error


class InputError(SegForgeError):
    """The user's data cannot be used as given (2D, 4D, empty, wrong modality...)."""

    code = "input"


class ModelError(SegForgeError):
    """A model is missing, corrupt, or cannot be downloaded."""

    code = "model"


class Cancelled(SegForgeError):
    """The user cancelled the job; nothing was written."""

    code = "cancelled"

    def __init__(self, what: str = "The job was cancelled", why: str = "", todo: str = "") -> None:
        super().__init__(what, why, todo)


class WorkerError(SegForgeError):
    """The worker could not be reached or refused the request."""

    code = "worker"


class WorkerDied(WorkerError):
    """The worker process ended in the middle of a job (killed, out of memory, crashed)."""

    code = "worker_died"


class ProtocolMismatch(WorkerError):
    """Client and worker speak different protocol versions."""

    code = "protocol"


class AuthError(WorkerError):
    """The worker refused the request's token."""

    code = "auth"


class WorkerBusy(WorkerError):
    """The worker refused a request because the caller is at one of its limits (jobs, sessions,
    connections); the same request succeeds once the caller's earlier work has finished."""

    code = "busy"


class SessionLost(WorkerError):
    """The worker does not hold the interactive session any more (evicted, or a fresh worker);
    the client sends the image again and replays the prompts."""

    code = "session_lost"


class JobFailed(SegForgeError):
    """A job raised an unexpected exception inside the worker."""

    code = "job_failed"


def _sentence(text: str) -> str:
    """One sentence: a capital first letter unless it starts with a name (a file "ct.nii.gz" is
    not "Ct.nii.gz", which may be another file), one full stop unless it asks or exclaims."""
    text = text.strip().rstrip(".")
    if text.split(" ", 1)[0].isalpha():
        text = text[:1].upper() + text[1:]
    return text if text.endswith(("?", "!")) else text + "."


_BY_CODE = {c.code: c for c in (SegForgeError, InputError, ModelError, Cancelled, WorkerError,
                                WorkerDied, ProtocolMismatch, AuthError, WorkerBusy, SessionLost, JobFailed)}
