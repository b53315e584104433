"""The app's JobTracker driving real SegVessel worker jobs on an asyncio loop, without a browser.

A real trame server's state (what the page would receive), the desktop module's own Logic
(``app_module_logic("SegVessel")``) and a real worker subprocess: the state key ``job_<key>``
must go queued -> running -> done, a result must reach ``on_done``, Cancel must end in
"cancelled" with nothing written, a failure must show its three sentences in ``app_error``,
and a second job under a busy key must be refused.
"""
from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import pytest

from conftest import OBLIQUE
from segforge.errors import SegForgeError
from segforge.image import Image
from segforge.mrml.segments import mask_from_segment, new_segmentation_node, segment_ids_by_name
from segforge.mrml.volumes import volume_node_from_image
from segforge.vessel import VesselMaskParameters, vessel_mask
from segforge_app.context import ERROR_KEY, AppContext
from segforge_app.jobs import JobTracker, job_state_key
from segforge_app.module_logics import app_module_logic
from worker_helpers import slow_job

KEY = "vessel"
TUBE_PARAMETERS = VesselMaskParameters(1.5, 3.0, 2, threshold=0.2)
_names = itertools.count()


class Recorder:
    """Every value the state key ``job_<key>`` took (as flushed to the browsers), and the callbacks' calls."""

    def __init__(self, state, key: str = KEY) -> None:
        self.values: list[dict] = []
        self.done: list = []
        self.cancelled = 0
        name = job_state_key(key)
        state.change(name)(lambda **values: self.values.append(dict(values[name])))

    def on_done(self, result) -> None:
        self.done.append(result)

    def on_cancelled(self) -> None:
        self.cancelled += 1

    @property
    def states(self) -> list[str]:
        return [value["state"] for value in self.values]


@pytest.fixture
def context(headless_slicer):
    """An AppContext on a fresh trame server (unique name) whose state is ready, as after a browser connects."""
    from trame.app import get_server

    server = get_server(f"segforge-jobs-test-{next(_names)}", client_type="vue3")
    context = AppContext(server, headless_slicer)
    context.jobs = JobTracker(context, interval_s=0.05)
    server.state.ready()  # what trame does once a client connects: from now on changes are flushed
    return context


def tube_volume(shape=(24, 28, 32)):
    k, j, i = np.indices(shape)
    array = np.where(np.hypot(k - shape[0] / 2, j - shape[1] / 2) <= 3, 400, 0).astype(np.int16)
    image = Image(array, (0.8, 0.9, 1.7), (-12.5, 30.0, 101.0), OBLIQUE)
    return image, volume_node_from_image(image, "Oblique tube")


async def wait_for_progress(context, key: str = KEY, timeout_s: float = 120.0) -> dict:
    """Until the job under ``key`` reports running with some progress (never hangs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = context.state[job_state_key(key)]
        assert value["state"] in ("queued", "running"), f"the job ended first: {value}"
        if value["state"] == "running" and value["fraction"] > 0:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"the job never ran: {context.state[job_state_key(key)]}")


def segmentation_count(scene) -> int:
    return scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")


def test_a_job_runs_to_its_result(context):
    recorder = Recorder(context.state)
    image, volume = tube_volume((48, 56, 64))  # big enough to be seen running at 50 ms polls
    started = time.perf_counter()

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, parameters=TUBE_PARAMETERS)
        await context.jobs.start(KEY, job, recorder.on_done, recorder.on_cancelled)

    asyncio.run(main())
    print(f"\nvessel mask job through JobTracker: {time.perf_counter() - started:.2f} s, "
          f"{len(recorder.values)} state updates: {recorder.states}")
    assert recorder.states[0] == "queued" and recorder.values[0]["running"]
    assert "running" in recorder.states, recorder.values
    assert recorder.states[-1] == "done" and not recorder.values[-1]["running"]
    assert recorder.values[-1]["fraction"] == 1.0
    running = [value for value in recorder.values if value["state"] == "running"]
    assert all(value["message"] for value in running), running
    fractions = [value["fraction"] for value in recorder.values]
    assert fractions == sorted(fractions), fractions
    assert not context.jobs.is_running(KEY) and recorder.cancelled == 0
    assert context.state[ERROR_KEY] is None
    [segmentation] = recorder.done
    assert segmentation.IsA("vtkMRMLSegmentationNode") and segmentation.GetScene() is context.scene
    [segment_id] = segment_ids_by_name(segmentation)["Vessels"]
    mask = mask_from_segment(segmentation, segment_id, image).array > 0
    np.testing.assert_array_equal(mask, vessel_mask(image, TUBE_PARAMETERS).array > 0)
    assert mask.any()



def test_a_long_job_says_its_result_is_being_written(context):
    """Past ``writing_notice_after_s`` the page hears that the result is being written (it waits
    meanwhile), then the job ends "done" as any other."""
    from segforge_app.jobs import WRITING_MESSAGE

    context.jobs = JobTracker(context, interval_s=0.05, writing_notice_after_s=0.0)
    recorder = Recorder(context.state)
    _, volume = tube_volume()

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, parameters=TUBE_PARAMETERS)
        await context.jobs.start(KEY, job, recorder.on_done, recorder.on_cancelled)

    asyncio.run(main())
    assert recorder.states[-2:] == ["writing", "done"], recorder.values
    assert recorder.values[-2]["message"] == WRITING_MESSAGE and recorder.values[-2]["running"]
    assert not recorder.values[-1]["running"] and len(recorder.done) == 1

def test_cancel_ends_cancelled_and_writes_nothing(context):
    recorder = Recorder(context.state)
    big, params = slow_job()
    volume = volume_node_from_image(big, "Noise")
    target = new_segmentation_node(volume, "Target")
    before = segmentation_count(context.scene)

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, target, VesselMaskParameters(**params))
        task = context.jobs.start(KEY, job, recorder.on_done, recorder.on_cancelled)
        await wait_for_progress(context)
        cancelled = time.perf_counter()
        context.jobs.cancel(KEY)
        await task
        return time.perf_counter() - cancelled

    latency = asyncio.run(main())
    print(f"\ncancel -> state 'cancelled' in {latency:.2f} s; states {recorder.states}")
    assert recorder.states[-1] == "cancelled" and not recorder.values[-1]["running"]
    assert recorder.values[-1]["message"] == "Cancelled"
    assert recorder.cancelled == 1 and recorder.done == []
    assert target.GetSegmentation().GetNumberOfSegments() == 0
    assert segmentation_count(context.scene) == before
    assert context.state[ERROR_KEY] is None and not context.jobs.is_running(KEY)


def test_a_cancelled_job_never_says_its_result_is_being_written(context):
    """A job cancelled after ``writing_notice_after_s`` has no result to write: once the page
    says "Cancelled", the progress bar and Cancel must not come back with the writing notice
    (they did, for a moment: the browser test saw the bar after "Cancelled")."""
    context.jobs = JobTracker(context, interval_s=0.05, writing_notice_after_s=0.0)
    recorder = Recorder(context.state)
    big, params = slow_job()
    volume = volume_node_from_image(big, "Noise")

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, parameters=VesselMaskParameters(**params))
        task = context.jobs.start(KEY, job, recorder.on_done, recorder.on_cancelled)
        await wait_for_progress(context)
        context.jobs.cancel(KEY)
        await task

    asyncio.run(main())
    first = recorder.states.index("cancelled")
    assert all(not value["running"] and value["state"] == "cancelled" for value in recorder.values[first:]), \
        recorder.values
    assert "writing" not in recorder.states and recorder.cancelled == 1


def test_a_job_failing_in_the_worker_shows_its_error(context):
    recorder = Recorder(context.state)
    flat = Image(np.zeros((20, 24, 28), np.int16), (0.8, 0.9, 1.7), (-12.5, 30.0, 101.0), OBLIQUE)
    volume = volume_node_from_image(flat, "Flat")
    before = segmentation_count(context.scene)

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, parameters=TUBE_PARAMETERS)
        await context.jobs.start(KEY, job, recorder.on_done, recorder.on_cancelled)

    asyncio.run(main())
    error = context.state[ERROR_KEY]
    print(f"\nworker failure shown as: {error}")
    assert recorder.states[-1] == "failed" and not recorder.values[-1]["running"]
    assert error is not None and error["what"] == "No vessel-like structure was found"
    assert error["why"] and error["todo"]
    assert error["what"] in recorder.values[-1]["message"]
    assert recorder.done == [] and recorder.cancelled == 0
    assert segmentation_count(context.scene) == before and not context.jobs.is_running(KEY)


def test_a_job_failing_in_finish_shows_its_error(context):
    """While the job runs the user imports a surface segment into the target: finish refuses to
    convert it to voxels, and says what to do."""
    import slicer

    recorder = Recorder(context.state)
    _, volume = tube_volume()
    target = new_segmentation_node(volume, "Target")

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, target, TUBE_PARAMETERS)
        task = context.jobs.start(KEY, job, recorder.on_done, recorder.on_cancelled)
        segmentation = target.GetSegmentation()  # meanwhile, as importing a model would do
        segmentation.SetSourceRepresentationName(slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName())
        segmentation.AddEmptySegment("", "Imported surface")
        await task

    asyncio.run(main())
    error = context.state[ERROR_KEY]
    print(f"\nfinish failure shown as: {error}")
    assert recorder.states[-1] == "failed", recorder.values
    assert error is not None and "keeps its segments as closed surfaces" in error["what"], error
    assert "binary labelmap" in error["todo"]
    assert recorder.done == [] and recorder.cancelled == 0
    assert list(segment_ids_by_name(target)) == ["Imported surface"], "the job wrote into the segmentation"
    assert not context.jobs.is_running(KEY)


def test_a_second_job_under_the_same_key_is_refused(context):
    recorder = Recorder(context.state)
    big, params = slow_job()
    volume = volume_node_from_image(big, "Noise")
    _, small = tube_volume()
    logic = app_module_logic("SegVessel")

    async def main():
        first = logic.start_vessel_mask(volume, parameters=VesselMaskParameters(**params))
        task = context.jobs.start(KEY, first, recorder.on_done, recorder.on_cancelled)
        await wait_for_progress(context)
        second = logic.start_vessel_mask(small, parameters=TUBE_PARAMETERS)
        with pytest.raises(SegForgeError, match="already running"):
            context.jobs.start(KEY, second, recorder.on_done, recorder.on_cancelled)
        # The refused job is stopped in the worker; the first one goes on, still followed.
        deadline = time.monotonic() + 30
        while not (status := second.poll()).finished:
            assert time.monotonic() < deadline, "the refused job was never stopped"
            await asyncio.sleep(0.05)
        assert status.state == "cancelled", status
        assert context.jobs.is_running(KEY) and context.state[job_state_key(KEY)]["running"]
        context.jobs.cancel(KEY)
        await task

    asyncio.run(main())
    assert recorder.states[-1] == "cancelled" and recorder.cancelled == 1 and recorder.done == []


def test_a_failing_panel_callback_is_shown(context):
    """What the panel's on_done / on_cancelled raise reaches the UI, like the job's own errors."""
    from segforge.errors import InputError

    def failing(*_):
        raise InputError("The panel could not show the result", "a test callback", "nothing")

    image, volume = tube_volume()

    async def main():
        job = app_module_logic("SegVessel").start_vessel_mask(volume, parameters=TUBE_PARAMETERS)
        await context.jobs.start(KEY, job, failing)
        assert context.state[ERROR_KEY]["what"] == "The panel could not show the result"
        context.clear_error()
        big, params = slow_job()
        slow = app_module_logic("SegVessel").start_vessel_mask(volume_node_from_image(big, "Noise"),
                                                           parameters=VesselMaskParameters(**params))
        task = context.jobs.start(KEY, slow, lambda _: None, failing)
        await wait_for_progress(context)
        context.jobs.cancel(KEY)
        await task

    asyncio.run(main())
    assert context.state[ERROR_KEY]["what"] == "The panel could not show the result"
    assert not context.jobs.is_running(KEY)
