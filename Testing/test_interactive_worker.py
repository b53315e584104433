"""Interactive sessions through a real worker: a subprocess, real sockets, kills and cancels.

Every remote mask is compared with the engine's in-process session given the same prompts,
step by step. Cancel and a kill in the middle of an interaction need an interaction that
lasts: the tests start the worker through a small launcher (``WorkerClient(python=...)``)
that adds a test-only backend, "slow-walker", to the worker's registry. It is the random
walker, held back while a marker file exists, reporting progress as it waits. Nothing in
the product knows about it.
"""
from __future__ import annotations

import os
import signal
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import OBLIQUE, ORIGIN_LPS
from segforge.errors import Cancelled, InputError, SegForgeError, SessionLost
from segforge.image import Image
from segforge.interactive.prompts import BoxPrompt, PointPrompt, ScribblePrompt
from segforge.worker.interactive_client import RemoteSession
from segforge.interactive.session import InteractiveSession, MaskChange, image_key
from segforge.worker import WorkerClient
from worker_helpers import wait_until_running

TESTING = Path(__file__).resolve().parent
SLOW_BACKEND = "slow-walker"
SLOW_MARKER = "SEGFORGE_TEST_SLOW_MARKER"
DRIFTING_BACKEND, DRIFT_FILE = "drifting-cube", "SEGFORGE_TEST_DRIFT_FILE"
LESION_A_IJK, LESION_A_MM = (14.3, 19.6, 11.7), 6.0
LESION_B_IJK, LESION_B_MM = (36.2, 22.4, 12.3), 5.0


# -- data ---------------------------------------------------------------------------------
def world_of(image: Image, ijk) -> np.ndarray:
    return (image.ijk_to_lps() @ np.array([*ijk, 1.0]))[:3]


def lesion_image(shape=(24, 40, 48), spacing=(0.8, 1.1, 2.2), seed: int = 0) -> tuple[Image, np.ndarray, np.ndarray]:
    """Two bright balls (200) in noise (0 +- 20) on an oblique, anisotropic grid; returns the
    image and the two true lesion masks (balls in millimetres, not in voxels)."""
    base = Image(np.zeros(shape, np.float32), spacing, ORIGIN_LPS, OBLIQUE)
    k, j, i = np.indices(shape)
    world = np.stack([i, j, k, np.ones_like(i)], -1).astype(float) @ base.ijk_to_lps().T
    a = np.linalg.norm(world[..., :3] - world_of(base, LESION_A_IJK), axis=-1) <= LESION_A_MM
    b = np.linalg.norm(world[..., :3] - world_of(base, LESION_B_IJK), axis=-1) <= LESION_B_MM
    noise = np.random.default_rng(seed).normal(0, 20, shape)
    return base.with_array((noise + 200 * (a | b)).astype(np.float32)), a, b


def prompts_for(image: Image) -> list:
    """Clicks, a box and a scribble around lesion A (and a negative click on B)."""
    a, b = world_of(image, LESION_A_IJK), world_of(image, LESION_B_IJK)
    scribble = np.array([world_of(image, (14 + d, 19, 12)) for d in (-2, -1, 0, 1, 2)])
    return [PointPrompt(tuple(a)),
            PointPrompt(tuple(b), positive=False),
            BoxPrompt(tuple(a - 9), tuple(a + 9)),
            ScribblePrompt(scribble),
            PointPrompt(tuple(world_of(image, (16, 20, 12))))]


def same_change(a: MaskChange, b: MaskChange) -> bool:
    return (a.empty and b.empty) or (tuple(a.offset_kji) == tuple(b.offset_kji)
                                      and np.array_equal(a.before, b.before) and np.array_equal(a.after, b.after))


# -- the test-only slow backend, registered inside the worker by the launcher ---------------
class SlowWalker:
    """The random walker, waiting (with progress reports) while the marker file exists."""

    name = SLOW_BACKEND
    warning = "test backend"

    def __init__(self, image: Image) -> None:
        from segforge.interactive.random_walker import RandomWalkerBackend

        self._inner = RandomWalkerBackend(image)

    def predict(self, prompts, current, progress):
        marker = os.environ.get(SLOW_MARKER, "")
        while marker and os.path.exists(marker):
            progress(0.5, "Held back by the test")
            time.sleep(0.02)
        return self._inner.predict(prompts, current, progress)


class DriftingCube:
    """A cube around the last click, its half-size read from a file at each prediction: a
    backend whose replay on a fresh worker can differ from the first run."""

    name = DRIFTING_BACKEND

    def __init__(self, image: Image) -> None:
        self._shape = np.array(image.array.shape)

    def predict(self, prompts, current, progress):
        half = int(Path(os.environ[DRIFT_FILE]).read_text())
        centre = np.array(prompts[-1].kji)
        lo, hi = np.maximum(centre - half, 0), np.minimum(centre + half + 1, self._shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), np.ones(hi - lo, np.uint8)


def register_slow_backend() -> None:
    from segforge.interactive.backends import BACKENDS

    BACKENDS[SLOW_BACKEND] = lambda image, device: SlowWalker(image)
    BACKENDS[DRIFTING_BACKEND] = lambda image, device: DriftingCube(image)


def slow_worker_python(folder: Path) -> str:
    """A launcher the client runs as its 'python': it registers the slow backend, then runs the worker."""
    launcher = folder / "python-with-slow-backend"
    launcher.write_text(f"#!{sys.executable}\n"
                        "import runpy, sys\n"
                        f"sys.path.insert(0, {str(TESTING)!r})\n"
                        "from test_interactive_worker import register_slow_backend\n"
                        "register_slow_backend()\n"
                        "sys.argv = [sys.argv[0], *sys.argv[3:]]  # drop '-m segforge.worker.server'\n"
                        "runpy.run_module('segforge.worker.server', run_name='__main__')\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    return str(launcher)


@pytest.fixture
def client():
    with WorkerClient() as worker_client:
        yield worker_client


@pytest.fixture
def slow(tmp_path, monkeypatch):
    """A worker with the slow backend, and the marker that holds it back (present at first)."""
    marker = tmp_path / "hold"
    marker.touch()
    monkeypatch.setenv(SLOW_MARKER, str(marker))
    from segforge.interactive.backends import BACKENDS

    drift = tmp_path / "drift"
    drift.write_text("1")
    monkeypatch.setenv(DRIFT_FILE, str(drift))
    monkeypatch.setitem(BACKENDS, SLOW_BACKEND, lambda image, device: SlowWalker(image))  # the reference sessions
    monkeypatch.setitem(BACKENDS, DRIFTING_BACKEND, lambda image, device: DriftingCube(image))
    with WorkerClient(python=slow_worker_python(tmp_path)) as worker_client:
        yield worker_client, marker


# -- through the worker, equal to the engine --------------------------------------------------
def test_every_step_through_the_worker_equals_the_engine_session(client):
    image, _, _ = lesion_image()
    remote, local = RemoteSession(client, image), InteractiveSession(image)
    assert remote.key == local.key == image_key(image)
    steps = [("interact", p) for p in prompts_for(image)]
    steps[3:3] = [("undo", None), ("undo", None), ("redo", None)]
    steps += [("undo", None), ("reset", None), ("undo", None), ("redo", None)]
    for op, prompt in steps:
        expected = getattr(local, op)(*([prompt] if prompt is not None else []))
        got = getattr(remote, op)(*([prompt] if prompt is not None else []))
        assert (got is None) == (expected is None), op
        if expected is not None:
            assert same_change(got, expected), op
        np.testing.assert_array_equal(remote.mask, local.mask, err_msg=op)
        assert remote.history == local.history
        assert (remote.can_undo, remote.can_redo) == (local.can_undo, local.can_redo)
    assert remote.opens == 1 and remote.image_bytes_sent == image.array.nbytes
    assert remote.mask.sum() == 0  # reset, then nothing to undo


def test_the_image_travels_once_and_clicks_carry_only_prompts(client, monkeypatch):
    import segforge.worker.client as client_module

    sent: list[int] = []

    class CountingSocket:
        def __init__(self, sock):
            self._sock = sock

        def sendall(self, data) -> None:
            sent[-1] += memoryview(data).nbytes
            self._sock.sendall(data)

    real_send = client_module.send_message

    def counting_send(sock, header, arrays=None):
        sent.append(0)
        real_send(CountingSocket(sock), header, arrays)

    monkeypatch.setattr(client_module, "send_message", counting_send)
    image, _, _ = lesion_image()
    remote = RemoteSession(client, image)
    assert max(sent) > image.array.nbytes  # the open request carried the volume
    prompts = prompts_for(image)
    for prompt in prompts[:4]:
        sent.clear()
        remote.interact(prompt)
        assert remote.image_bytes_sent == image.array.nbytes and remote.opens == 1
        assert sum(sent) < 4096, f"an interaction sent {sum(sent)} bytes in {len(sent)} requests"


def test_a_killed_worker_is_rebuilt_and_no_prompt_is_lost(client):
    image, _, _ = lesion_image()
    prompts = prompts_for(image)
    remote, local = RemoteSession(client, image), InteractiveSession(image)
    for prompt in prompts[:4]:
        remote.interact(prompt)
        local.interact(prompt)
    remote.undo(), local.undo()
    remote.undo(), local.undo()
    first = client.pid
    os.kill(first, signal.SIGKILL)
    assert same_change(remote.redo(), local.redo())  # rebuilt: image sent again, 4 prompts replayed, 1 undone
    assert client.pid != first and remote.opens == 2 and remote.image_bytes_sent == 2 * image.array.nbytes
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.can_redo and same_change(remote.redo(), local.redo())  # the undone prompt is still there
    os.kill(client.pid, signal.SIGKILL)
    assert same_change(remote.interact(prompts[4]), local.interact(prompts[4]))
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.history == local.history and remote.opens == 3


def test_withdrawing_the_last_prompt_equals_the_engine_session_even_after_a_kill(client):
    """What the Logic does with a change the scene refused: the prompt leaves the worker's
    session and this client's, and the redo list it cleared comes back; with the worker killed
    first, the rebuild replays what is left."""
    image, _, _ = lesion_image()
    prompts = prompts_for(image)
    remote, local = RemoteSession(client, image), InteractiveSession(image)
    for kill in (False, True):
        for prompt in prompts[:2]:
            remote.interact(prompt), local.interact(prompt)
        remote.undo(), local.undo()
        remote.interact(prompts[3]), local.interact(prompts[3])
        if kill:
            os.kill(client.pid, signal.SIGKILL)
        assert same_change(remote.withdraw_last(), local.withdraw_last())
        np.testing.assert_array_equal(remote.mask, local.mask)
        assert remote.history == local.history == prompts[:1] and remote.redo_count == local.redo_count == 1
        assert same_change(remote.redo(), local.redo())  # the prompt undone before, in the worker too
        np.testing.assert_array_equal(remote.mask, local.mask)
        remote.reset(), local.reset()
    assert remote.opens == 2


def test_a_withdraw_the_worker_refuses_rebuilds_the_session_without_the_prompt(client, monkeypatch):
    """A worker that refuses ``interactive.withdraw`` (one without the task) still holds the
    prompt: the client leaves that session and rebuilds one without it. Before, only a lost
    session was rebuilt; any other refusal left this client's history holding the prompt
    while the Logic had put the segment back."""
    image, _, _ = lesion_image()
    prompts = prompts_for(image)
    remote, local = RemoteSession(client, image), InteractiveSession(image)
    real = RemoteSession._run

    def without_withdraw(self, task, *args, **kwargs):
        if task == "interactive.withdraw":
            raise SegForgeError(f"The worker has no task {task!r}", "it is older", "update the worker")
        return real(self, task, *args, **kwargs)

    monkeypatch.setattr(RemoteSession, "_run", without_withdraw)
    for prompt in prompts[:2]:
        remote.interact(prompt), local.interact(prompt)
    assert same_change(remote.withdraw_last(), local.withdraw_last())
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.history == local.history == prompts[:1] and remote.opens == 2
    assert same_change(remote.interact(prompts[2]), local.interact(prompts[2]))  # the worker agrees
    np.testing.assert_array_equal(remote.mask, local.mask)


def test_a_session_the_worker_dropped_is_rebuilt(client):
    image, _, _ = lesion_image()
    prompts = prompts_for(image)
    remote, local = RemoteSession(client, image), InteractiveSession(image)
    for prompt in prompts[:2]:
        remote.interact(prompt), local.interact(prompt)
    # Four newer sessions push it out of the worker's store (it keeps four).
    others = [RemoteSession(client, lesion_image(seed=n)[0]) for n in range(1, 5)]
    with pytest.raises(SessionLost):
        client.run("interactive.undo", {}, {"session": remote._session_id})
    assert same_change(remote.interact(prompts[2]), local.interact(prompts[2]))
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.opens == 2
    # A session changed behind the client's back is out of step: refused, then rebuilt.
    client.run("interactive.undo", {}, {"session": remote._session_id})
    assert same_change(remote.undo(), local.undo())
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.opens == 3 and remote.can_redo
    closed = others[0]._session_id
    for other in others:
        other.close()
    with pytest.raises(SessionLost):  # closing freed the worker's copy
        client.run("interactive.undo", {}, {"session": closed})


def test_a_point_outside_the_image_is_the_users_error_and_changes_nothing(client):
    image, _, _ = lesion_image()
    remote = RemoteSession(client, image)
    first = prompts_for(image)[0]
    remote.interact(first)
    mask = remote.mask.copy()
    with pytest.raises(InputError, match="outside the image"):
        remote.interact(PointPrompt((500.0, 500.0, 500.0)))
    np.testing.assert_array_equal(remote.mask, mask)
    assert remote.history == [first]
    remote.undo()  # the worker agrees: no rebuild was needed
    assert remote.opens == 1 and remote.mask.sum() == 0
    with pytest.raises(InputError, match="negative"):
        remote.interact(PointPrompt(first.position_lps, positive=False))
    assert remote.opens == 1 and not remote.can_undo


def test_an_image_that_does_not_match_its_key_is_refused(client):
    image, _, _ = lesion_image()
    with pytest.raises(InputError, match="not the one the session names"):
        client.run("interactive.open", {"image": image}, {"key": "0" * 32})
    with pytest.raises(InputError, match="Unknown interactive backend"):
        client.run("interactive.open", {"image": image}, {"key": image_key(image), "backend": "nope"})
    with pytest.raises(SessionLost):
        client.run("interactive.interact", {}, {"session": "unknown", "prompt": {"type": "point",
                                                                                 "position": [0, 0, 0]}})


def test_an_initial_segment_is_the_state_undo_and_reset_go_back_to(client):
    image, a, b = lesion_image()
    initial = b.astype(np.uint8)  # an existing segment, elsewhere in the volume
    remote = RemoteSession(client, image, initial=initial)
    local = InteractiveSession(image, initial=initial)
    np.testing.assert_array_equal(remote.mask, initial)
    prompt = prompts_for(image)[0]
    assert same_change(remote.interact(prompt), local.interact(prompt))
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert same_change(remote.undo(), local.undo())
    np.testing.assert_array_equal(remote.mask, initial)
    remote.redo(), local.redo()
    os.kill(client.pid, signal.SIGKILL)  # the rebuild sends the initial mask again
    assert same_change(remote.reset(), local.reset())
    np.testing.assert_array_equal(remote.mask, initial)
    assert remote.image_bytes_sent == 2 * (image.array.nbytes + initial.nbytes)


def test_a_negative_first_prompt_refines_an_initial_segment(monkeypatch):
    from segforge.interactive import backends

    class Eraser:
        name = "eraser"

        def predict(self, prompts, current, progress):
            patch = current.copy()
            patch[prompts[-1].kji] = 0
            return (slice(0, current.shape[0]), slice(0, current.shape[1]), slice(0, current.shape[2])), patch

    monkeypatch.setitem(backends.BACKENDS, "eraser", lambda image, device: Eraser())
    image, _, b = lesion_image()
    session = InteractiveSession(image, "eraser", initial=b)
    centre = tuple(int(round(v)) for v in LESION_B_IJK[::-1])
    assert session.mask[centre] == 1
    session.interact(PointPrompt(tuple(world_of(image, LESION_B_IJK)), positive=False))
    assert session.mask[centre] == 0 and session.mask.sum() == b.sum() - 1
    with pytest.raises(InputError, match="negative"):
        InteractiveSession(image, "eraser").interact(PointPrompt(tuple(world_of(image, LESION_B_IJK)), False))


# -- cancel and a kill in the middle of an interaction ----------------------------------
def test_cancel_of_an_interaction_leaves_both_sides_unchanged(slow):
    client, marker = slow
    image, _, _ = lesion_image()
    prompts = prompts_for(image)
    remote, local = RemoteSession(client, image, SLOW_BACKEND), InteractiveSession(image, SLOW_BACKEND)
    assert remote.warning == "test backend"
    marker.unlink()
    remote.interact(prompts[0]), local.interact(prompts[0])
    remote.interact(prompts[2]), local.interact(prompts[2])
    remote.undo(), local.undo()
    mask = remote.mask.copy()
    marker.touch()
    job = remote.submit_interact(prompts[3])
    wait_until_running(job, timeout=30)
    job.cancel()
    deadline = time.monotonic() + 10
    while not (status := job.poll()).finished:
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    assert status.state == "cancelled"
    with pytest.raises(Cancelled):
        job.finish()
    np.testing.assert_array_equal(remote.mask, mask)
    assert remote.history == [prompts[0]] and remote.can_redo
    marker.unlink()
    assert same_change(remote.redo(), local.redo())  # the worker kept its redo too: no rebuild
    assert same_change(remote.interact(prompts[4]), local.interact(prompts[4]))
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.opens == 1


def test_cancel_from_the_progress_callback_of_a_blocking_interaction(slow):
    client, marker = slow
    image, _, _ = lesion_image()
    remote = RemoteSession(client, image, SLOW_BACKEND)

    def cancel_when_running(fraction: float, message: str) -> None:
        if fraction > 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        remote.interact(prompts_for(image)[0], cancel_when_running)
    assert not remote.history and remote.mask.sum() == 0
    marker.unlink()
    remote.interact(prompts_for(image)[0])
    assert remote.mask.sum() > 0 and remote.opens == 1


def test_a_worker_killed_during_an_interaction_is_rebuilt_and_the_interaction_retried(slow):
    client, marker = slow
    image, lesion, _ = lesion_image()
    prompts = prompts_for(image)
    remote, local = RemoteSession(client, image, SLOW_BACKEND), InteractiveSession(image, SLOW_BACKEND)
    marker.unlink()
    remote.interact(prompts[0]), local.interact(prompts[0])
    marker.touch()
    job = remote.submit_interact(prompts[2])
    wait_until_running(job, timeout=30)
    os.kill(client.pid, signal.SIGKILL)
    marker.unlink()
    change = job.wait()
    assert same_change(change, local.interact(prompts[2]))
    np.testing.assert_array_equal(remote.mask, local.mask)
    assert remote.opens == 2 and remote.history == local.history


def test_a_cancel_after_the_backend_finished_is_taken_back_in_the_worker(monkeypatch):
    """The race the worker closes: Cancel asked after the backend's last progress report."""
    from segforge.interactive import backends
    from segforge.interactive.prompts import prompt_to_json
    from segforge.worker import interactive_tasks
    from segforge.worker.jobs import Job

    monkeypatch.setattr(interactive_tasks, "shared_sessions", interactive_tasks.SessionStore())
    job = Job("interactive.interact", interactive_tasks.interact_task, {}, {})
    armed = []

    class CancelledLate:
        name = "late"

        def __init__(self, image):
            from segforge.interactive.random_walker import RandomWalkerBackend

            self._inner = RandomWalkerBackend(image)

        def predict(self, prompts, current, progress):
            patch = self._inner.predict(prompts, current, progress)
            if armed:
                job._cancel.set()  # the client's Cancel lands now, after the last progress report
            return patch

    monkeypatch.setitem(backends.BACKENDS, "late", lambda image, device: CancelledLate(image))
    image, _, _ = lesion_image()
    prompts = prompts_for(image)
    _, meta = interactive_tasks.open_task({"image": image}, {"backend": "late", "key": image_key(image)}, job)
    session = interactive_tasks.shared_sessions.get(meta["session"])
    for prompt in prompts[:3]:
        interactive_tasks.interact_task({}, {"session": meta["session"], "prompt": prompt_to_json(prompt)}, job)
    interactive_tasks.undo_task({}, {"session": meta["session"]}, job)
    mask, history = session.mask.copy(), list(session.history)
    armed.append(True)
    with pytest.raises(Cancelled):
        interactive_tasks.interact_task({}, {"session": meta["session"], "prompt": prompt_to_json(prompts[4])}, job)
    np.testing.assert_array_equal(session.mask, mask)
    assert session.history == history and session.can_redo and session._undone[-1][0] == prompts[2]


def test_a_rebuild_that_replays_differently_brings_the_local_mask_to_the_workers(slow, caplog):
    client, _ = slow
    image, _, _ = lesion_image()
    drift = Path(os.environ[DRIFT_FILE])
    clicks = [PointPrompt(tuple(world_of(image, ijk))) for ijk in ((10, 10, 10), (30, 20, 12))]
    remote = RemoteSession(client, image, DRIFTING_BACKEND)
    for click in clicks:
        remote.interact(click)
    remote.undo()
    before = remote.mask.copy()
    drift.write_text("2")  # the fresh worker's replay gives bigger cubes
    os.kill(client.pid, signal.SIGKILL)
    change = remote.redo()
    expected = InteractiveSession(image, DRIFTING_BACKEND)
    for click in clicks:
        expected.interact(click)
    np.testing.assert_array_equal(remote.mask, expected.mask)  # the worker's mask, taken
    before[change.slices] = change.after  # and the change returned says so, whole
    np.testing.assert_array_equal(before, expected.mask)
    assert "differs from this client's" in caplog.text and remote.opens == 2
    assert same_change(remote.undo(), expected.undo())  # both sides in step again
