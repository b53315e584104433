"""Interactive sessions inside the worker: the image stays here between clicks.

``interactive.open`` receives the image once and keeps an
:class:`~segforge.interactive.session.InteractiveSession` in a process-wide store; each
click then sends only its prompt and gets back the box that changed (before and after),
so a click costs a prompt up and a small box down, never the volume. The store is a small
LRU with a byte budget, so a shared GPU server keeps a bounded number of images; a session
it has dropped answers :class:`~segforge.errors.SessionLost` and the client rebuilds it.

Engine imports happen inside the tasks, like the other tasks of :mod:`.tasks`.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..errors import Cancelled, InputError, SessionLost
from .jobs import Job, TaskBody

if TYPE_CHECKING:
    from ..interactive.prompts import Prompt
    from ..interactive.session import InteractiveSession, MaskChange

#: Sessions a worker keeps at once (the least recently used goes first).
SESSION_CAPACITY = 4
#: Bytes of images and masks a worker keeps for sessions (the newest session is always kept).
SESSION_BUDGET_BYTES = 4 << 30
#: A session unused this long no longer counts against its client's limit: a client that
#: quit without closing its sessions can open new ones (its old ones are dropped for them).
SESSION_IDLE_S = 600.0


class SessionStore:
    """Open interactive sessions by id: least recently used dropped beyond a count or a byte budget.

    Each session remembers its owner (the client that opened it, for the server's per-client
    limit) and when it was last used.
    """

    def __init__(self, capacity: int = SESSION_CAPACITY, budget_bytes: int = SESSION_BUDGET_BYTES) -> None:
        self.capacity = capacity
        self.budget_bytes = budget_bytes
        self._sessions: "OrderedDict[str, InteractiveSession]" = OrderedDict()
        self._owners: dict[str, str] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, session_id: str, session: "InteractiveSession", owner: str = "", owner_limit: int = 0) -> None:
        """Keep a session; beyond ``owner_limit`` sessions of ``owner`` (0: no limit) the owner's
        least recently used ones go first (the server refuses an open while they are all in use)."""
        with self._lock:
            self._sessions[session_id] = session
            self._sessions.move_to_end(session_id)
            self._owners[session_id], self._used[session_id] = owner, time.monotonic()
            if owner_limit > 0:
                mine = [sid for sid in self._sessions if self._owners.get(sid) == owner]
                for sid in mine[:max(len(mine) - owner_limit, 0)]:
                    self._drop(sid)
            while len(self._sessions) > 1 and (len(self._sessions) > self.capacity
                                               or self._bytes() > self.budget_bytes):
                self._drop(next(iter(self._sessions)))

    def get(self, session_id: str) -> "InteractiveSession":
        """The session, now the most recently used; SessionLost when this worker does not hold it."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise SessionLost("The worker does not hold this interactive session",
                                  "it was closed, dropped to make room for newer sessions, or the worker "
                                  "restarted", "open it again: the client sends the image and replays the prompts")
            self._sessions.move_to_end(session_id)
            self._used[session_id] = time.monotonic()
            return session

    def remove(self, session_id: str) -> bool:
        with self._lock:
            return self._drop(session_id)

    def in_use(self, owner: str, idle_s: float = SESSION_IDLE_S) -> int:
        """Sessions of ``owner`` used within the last ``idle_s`` seconds (older ones may be dropped for new ones)."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for sid in self._sessions if self._owners.get(sid) == owner and now - self._used[sid] < idle_s)

    def _drop(self, session_id: str) -> bool:
        self._owners.pop(session_id, None)
        self._used.pop(session_id, None)
        return self._sessions.pop(session_id, None) is not None

    def __len__(self) -> int:
        return len(self._sessions)

    def _bytes(self) -> int:
        return sum(s.image.array.nbytes + s.mask.nbytes for s in self._sessions.values())


#: The worker process's one store: every connection's sessions share the budget.
shared_sessions = SessionStore()


# -- parameters -------------------------------------------------------------------------
def _check_names(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InputError(f"Unknown parameter(s) {', '.join(unknown)}", f"this task takes {sorted(allowed)}",
                         "check the parameter names")


def _text(params: dict[str, Any], name: str, default: Optional[str] = None) -> str:
    value = params.get(name, default)
    if not isinstance(value, str) or not value:
        raise InputError(f"Parameter {name} is {value!r}", "it must be a non-empty string", f"give the {name}")
    return value


def _initial_mask(inputs: dict[str, Any], shape: tuple[int, ...]) -> Optional[np.ndarray]:
    initial = inputs.get("initial")
    if initial is None:
        return None
    array = np.asarray(getattr(initial, "array", initial))
    if array.dtype.kind not in "biu" or array.shape != shape:
        raise InputError("The initial mask cannot be used", f"it is {array.dtype} of shape {array.shape}, the image "
                         f"is of shape {shape}", "send the existing segment as a uint8 mask on the image's grid")
    return array


def _session(params: dict[str, Any]) -> "InteractiveSession":
    """The session the request names, checked to be in the state the client believes it in."""
    session = shared_sessions.get(_text(params, "session"))
    expected = params.get("state")
    if expected is not None and (not isinstance(expected, list) or len(expected) != 2
                                 or not all(type(n) is int for n in expected)):  # exactly int: not bool
        raise InputError(f"Parameter state is {expected!r}", "it must be two integers",
                         "send [prompts applied, prompts undone]")
    if expected is not None and expected != _state(session):
        raise SessionLost("The worker's interactive session is out of step with this client",
                          f"the worker holds {_state(session)} prompts done and undone, the client {expected}",
                          "the client rebuilds the session by itself (sends the image, replays the prompts)")
    return session


def _state(session: "InteractiveSession") -> list[int]:
    """Prompts applied and prompts that redo would apply again."""
    return [len(session.history), session.redo_count]


def _wire_prompt(entry: Any, points: Any) -> "Prompt":
    """A prompt as the client sends it: JSON, a scribble's points possibly as the array ``points``."""
    from ..interactive.prompts import prompt_from_json

    if points is not None:
        points = np.asarray(getattr(points, "array", points))
        if not isinstance(entry, dict) or entry.get("type") != "scribble" or points.ndim != 2 \
                or points.shape[1] != 3 or points.dtype.kind != "f":
            raise InputError("The prompt's points array cannot be used",
                             f"it is {points.dtype} of shape {points.shape} for a {entry!r} prompt",
                             "send a scribble's points as a float (N, 3) array of LPS millimetres")
        entry = {**entry, "points": points}
    return prompt_from_json(entry, "LPS")


# -- replies ----------------------------------------------------------------------------
def _reply(change: Optional["MaskChange"], session: "InteractiveSession", changed: bool,
           backend_seconds: float = 0.0) -> tuple[dict, dict]:
    """The change as plain arrays (never Images: the server would crop them) and the session's state."""
    if change is None:
        empty = np.zeros((0, 0, 0), np.uint8)
        offset, before, after = (0, 0, 0), empty, empty
    else:
        offset, before, after = change.offset_kji, change.before, change.after
    history, redo = _state(session)
    return ({"before": np.ascontiguousarray(before, np.uint8), "after": np.ascontiguousarray(after, np.uint8)},
            {"offset_kji": [int(v) for v in offset], "changed": changed, "history_length": history,
             "redo_length": redo, "backend_seconds": backend_seconds})


# -- tasks ------------------------------------------------------------------------------
def open_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Keep the image (and an existing segment to refine) for the clicks that follow."""
    from ..interactive.backends import DEFAULT_BACKEND
    from ..interactive.session import InteractiveSession, image_key
    from .tasks import _input_image

    _check_names(params, {"backend", "device", "key"})
    image = _input_image(inputs)
    backend, device, key = _text(params, "backend", DEFAULT_BACKEND), _text(params, "device", "auto"), \
        _text(params, "key")
    job.progress(0.0, "Receiving the image")
    actual = image_key(image)
    if actual != key:
        raise InputError("The image the worker received is not the one the session names",
                         f"its content key is {actual}, the client sent {key}",
                         "open the session again; if this repeats, the network or a proxy alters the volume")
    session = InteractiveSession(image, backend, device, key, _initial_mask(inputs, image.array.shape))
    session_id = f"{key}-{backend}-{device}-{uuid.uuid4().hex[:12]}"  # one per client: never shared
    shared_sessions.add(session_id, session, job.owner, job.session_limit)
    return {}, {"session": session_id, "warning": session.warning}


def interact_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """One prompt: the backend runs here, on the kept image; only the changed box goes back."""
    _check_names(params, {"session", "state", "prompt"})
    session = _session(params)
    prompt = _wire_prompt(params.get("prompt"), inputs.get("points"))
    started = time.perf_counter()
    change = session.interact(prompt, job.progress)  # an invalid prompt or a cancel leaves it as it was
    seconds = time.perf_counter() - started
    if job.cancel_requested:  # asked after the backend's last progress report: take it back
        session.withdraw_last()
        raise Cancelled()
    return _reply(change, session, True, seconds)


def undo_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Take back the last prompt (no backend run)."""
    _check_names(params, {"session", "state"})
    session = _session(params)
    change = session.undo()
    return _reply(change, session, change is not None)


def redo_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Apply the last undone prompt again (no backend run)."""
    _check_names(params, {"session", "state"})
    session = _session(params)
    change = session.redo()
    return _reply(change, session, change is not None)


def withdraw_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Take back the last prompt as if it was never given (its redo list comes back): for a
    client that could not use the change (the scene refused to be written), so the session
    holds no prompt the user's segment does not show."""
    _check_names(params, {"session", "state"})
    session = _session(params)
    change = session.withdraw_last()
    return _reply(change, session, change is not None)


def reset_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Forget every prompt: back to the initial mask (empty without one)."""
    _check_names(params, {"session", "state"})
    session = _session(params)
    changed = session.can_undo or session.can_redo
    change = session.reset()
    return _reply(change, session, changed or not change.empty)


def close_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Forget a session and free its image (closing an unknown session is no error)."""
    _check_names(params, {"session"})
    return {}, {"closed": shared_sessions.remove(_text(params, "session"))}


INTERACTIVE_TASKS: dict[str, TaskBody] = {
    "interactive.open": open_task,
    "interactive.interact": interact_task,
    "interactive.undo": undo_task,
    "interactive.redo": redo_task,
    "interactive.reset": reset_task,
    "interactive.withdraw": withdraw_task,
    "interactive.close": close_task,
}
