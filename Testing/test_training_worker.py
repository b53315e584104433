"""Training in the worker (``train.vessel``): a real worker subprocess trains on tiny synthetic
pairs with progress, Cancel lands within a step and keeps the checkpoint, a run resumes from it,
the model is listed (panel model list, ``--model ID``) the moment the job is done, and every bad
input is one line with no model installed and the worker still serving the next job."""
from __future__ import annotations

import csv
import re
import time

import numpy as np
import pytest

from segforge.errors import Cancelled, InputError, SegForgeError
from segforge.image import Image
from segforge.training.synthetic_data import randomised_case
from segforge.worker import WorkerClient

CONFIG = {"steps": 3, "patch_size": [16, 16, 16], "batch_size": 1, "channels": [4, 8], "validate_every": 3,
          "checkpoint_every": 1}
PROGRESS = re.compile(r"step (\d+)/(\d+), loss \d+\.\d+(, validation Dice \d\.\d+)?, about \d+ s left")


@pytest.fixture(scope="module")
def worker(home):
    """A worker spawned inside this module's data folder (conftest's ``home``)."""
    with WorkerClient() as client:
        yield client


@pytest.fixture(scope="module")
def cases():
    return [randomised_case(seed, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
            for seed in range(3)]


def scene_inputs(pairs) -> dict:
    inputs = {}
    for n, (image, label) in enumerate(pairs):
        inputs[f"image_{n}"], inputs[f"label_{n}"] = image, label
    return inputs


def listed_models() -> list[str]:
    from SegVesselLib.form import model_choices

    return [value for value, _ in model_choices()]


def run_and_watch(worker, inputs: dict, params: dict, timeout_s: float = 120.0):
    job = worker.submit("train.vessel", inputs, params)
    messages = []
    deadline = time.monotonic() + timeout_s
    while True:
        status = job.poll()
        messages.append(status.message)
        if status.finished:
            return job, status, messages
        assert time.monotonic() < deadline, messages[-3:]
        time.sleep(0.02)


def test_the_worker_trains_with_progress_and_the_model_is_listed_at_once(worker, home, cases):
    pairs = [(c.image, c.label) for c in cases]
    job, status, messages = run_and_watch(worker, scene_inputs(pairs), {"model_id": "worker-vessels",
                                                                       "config": {**CONFIG, "steps": 6}})
    assert status.state == "done", status.message
    seen = [PROGRESS.search(m) for m in messages]
    steps = sorted({int(m.group(1)) for m in seen if m})
    assert steps and steps[-1] == 6 and any(m and m.group(3) for m in seen), messages  # step, loss, Dice, ETA
    meta = job.result().meta
    assert meta["model_id"] == "worker-vessels" and meta["steps"] == 6 and 0 <= meta["validation_dice"] <= 1
    assert "worker-vessels" in listed_models()  # the panels' model list, in this (the client's) process
    with open(meta["curve_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 7)) and rows[-1]["validation_dice"]
    assert open(meta["curve_png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # --model ID in the worker: the vessel mask job runs the new network at once
    mask = worker.run("vessel.mask", {"image": cases[0].image}, {"model": "worker-vessels"})
    assert mask.meta["model"] == "worker-vessels" and mask.outputs["mask"].same_grid(cases[0].image)


def test_cancel_lands_within_a_step_keeps_the_checkpoint_and_the_worker_goes_on(worker, home, cases):
    pairs = [(c.image, c.label) for c in cases]
    long_run = {**CONFIG, "steps": 100_000, "validate_every": 100_000}
    job = worker.submit("train.vessel", scene_inputs(pairs), {"model_id": "cancelled", "config": long_run})
    deadline = time.monotonic() + 120
    while not (match := PROGRESS.search(job.poll().message)) or int(match.group(1)) < 3:
        assert time.monotonic() < deadline and not job.poll().finished
        time.sleep(0.02)
    job.cancel()
    while not (status := job.poll()).finished:
        time.sleep(0.02)
    assert status.state == "cancelled" and status.cancel_latency_s < 1.0, status
    with pytest.raises(Cancelled):
        job.result()
    from segforge.training.train import read_checkpoint

    checkpoint = read_checkpoint(home / "training" / "cancelled" / "checkpoint.pt")
    assert checkpoint["step"] >= 3
    assert "cancelled" not in listed_models()
    hello = worker.hello()
    volume = Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    assert worker.run("image.threshold", {"image": volume}, {"lower": 12}).meta["voxels"] == 12
    assert worker.hello()["pid"] == hello["pid"]  # the same worker, still serving


def test_a_cancelled_run_resumes_from_its_checkpoint_in_the_worker(worker, home, cases):
    from segforge.training.config import TrainingConfig
    from segforge.training.run import train_vessel_model

    def cancel_at_step_two(fraction: float, message: str) -> None:
        if "step 2/" in message:
            raise Cancelled()

    pairs = [(c.image, c.label) for c in cases]
    with pytest.raises(Cancelled, match="step 2 of 3"):  # the Python API, the call the task makes
        train_vessel_model(pairs, "resumed", config=TrainingConfig.from_dict(CONFIG), progress=cancel_at_step_two)
    assert "resumed" not in listed_models()
    job, status, _ = run_and_watch(worker, scene_inputs(pairs), {"model_id": "resumed", "config": CONFIG,
                                                                "resume": True})
    assert status.state == "done", status.message
    assert job.result().meta["steps"] == 3  # 2 before the Cancel, 1 after: not 3 more
    with open(home / "training" / "resumed" / "curve.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3]
    assert "resumed" in listed_models()


def _blob(case) -> Image:
    grid = np.indices(case.label.array.shape)
    centre = np.asarray(case.label.array.shape)[:, None, None, None] / 2
    return case.label.with_array((((grid - centre) ** 2).sum(0) < 36).astype(np.uint8))


def _thin_line(case) -> Image:
    """15 voxels in a row: a vessel's shape, too few voxels for a validation Dice to mean anything."""
    array = np.zeros_like(case.label.array)
    axis = int(np.argmax(array.shape))
    index = [n // 2 for n in array.shape]
    index[axis] = slice(0, 15)
    array[tuple(index)] = 1
    return case.label.with_array(array)


BAD_INPUTS = {
    "off its grid": (lambda c: [(c[0].image, c[0].label.crop((slice(1, None), slice(None), slice(None)))),
                                (c[1].image, c[1].label)], {}, "is not on its image's grid"),
    "empty": (lambda c: [(c[0].image, c[0].label.with_array(np.zeros_like(c[0].label.array))),
                         (c[1].image, c[1].label)], {}, "is empty"),
    "a blob": (lambda c: [(c[0].image, _blob(c[0])), (c[1].image, c[1].label)], {}, "does not look like vessels"),
    "one pair": (lambda c: [(c[0].image, c[0].label)], {}, "Too little data"),
    "a tiny validation label": (lambda c: [(c[0].image, c[0].label), (c[1].image, _thin_line(c[1]))], {},
                                "Too little data to validate"),
    "a loss that becomes NaN": (lambda c: [(c[0].image, c[0].label), (c[1].image, c[1].label)],
                                {"learning_rate": 1e30, "steps": 6}, "diverged"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_no_model_and_the_worker_stays_usable(worker, home, cases, case):
    make_pairs, settings, words = BAD_INPUTS[case]
    model_id = "bad-" + re.sub(r"[^a-z]+", "-", case)
    job, status, _ = run_and_watch(worker, scene_inputs(make_pairs(cases)),
                                   {"model_id": model_id, "config": {**CONFIG, **settings}})
    assert status.state == "failed" and words in status.message, status.message
    with pytest.raises(InputError) as raised:
        job.result()
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
    assert model_id not in listed_models() and not (home / "models" / model_id).exists()
    volume = Image(np.ones((2, 3, 4), np.int16))
    assert worker.run("image.threshold", {"image": volume}, {"lower": 1}).meta["voxels"] == 24


def test_pairs_from_a_folder_and_a_manifest_are_read_where_the_worker_runs(worker, home, cases, tmp_path):
    from segforge.image_io import write_image

    for folder in ("images", "labels"):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
    rows = ["image,segment"]
    for n, case in enumerate(cases[:2]):
        write_image(case.image, tmp_path / "pairs" / "images" / f"case{n}_0000.nii.gz")
        write_image(case.label, tmp_path / "pairs" / "labels" / f"case{n}.nii.gz")
        rows.append(f"pairs/images/case{n}_0000.nii.gz,pairs/labels/case{n}.nii.gz")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    for source, model_id in (({"folder": str(tmp_path / "pairs")}, "from-folder"),
                             ({"manifest": str(tmp_path / "train.csv")}, "from-manifest")):
        _, status, _ = run_and_watch(worker, {}, {"model_id": model_id, "config": CONFIG, **source})
        assert status.state == "done", status.message
        assert model_id in listed_models()
    write_image(cases[2].image, tmp_path / "pairs" / "images" / "lonely_0000.nii.gz")
    _, status, _ = run_and_watch(worker, {}, {"model_id": "lonely", "config": CONFIG,
                                              "folder": str(tmp_path / "pairs")})
    assert status.state == "failed" and "have no partner" in status.message and "lonely" in status.message


def test_running_out_of_memory_is_one_line_and_the_worker_lives_on(home, cases):
    """A real worker capped at 2.5 GB of address space; a batch of 128^3 patches does not fit."""
    from worker_helpers import running_server

    with running_server("t", memory_limit_bytes=2500 << 20) as (port, process):
        with WorkerClient("127.0.0.1", port, "t") as remote:
            greedy = {**CONFIG, "patch_size": [128, 128, 128], "batch_size": 8}
            job = remote.submit("train.vessel", scene_inputs([(c.image, c.label) for c in cases[:2]]),
                                {"model_id": "greedy", "config": greedy})
            with pytest.raises(SegForgeError) as raised:
                job.wait()
            assert "ran out of memory" in str(raised.value) and "Lower the batch size" in str(raised.value)
            assert "\n" not in str(raised.value)
            volume = Image(np.ones((2, 3, 4), np.int16))
            assert remote.run("image.threshold", {"image": volume}, {"lower": 1}).meta["voxels"] == 24
        assert process.poll() is None
    assert "greedy" not in listed_models()


def test_cancel_while_the_pairs_are_read_writes_nothing(home, cases, tmp_path):
    """Cancel during the preparation (reading, label checks, skeletons): no run folder, no model."""
    from segforge.training.run import train_vessel_model

    def cancel_while_preparing(fraction: float, message: str) -> None:
        if message.startswith("Preparing pair 2"):
            raise Cancelled()

    pairs = [(c.image, c.label) for c in cases]
    with pytest.raises(Cancelled):
        train_vessel_model(pairs, "never-prepared", tmp_path / "run", progress=cancel_while_preparing)
    assert not (tmp_path / "run").exists() and "never-prepared" not in listed_models()


def test_a_model_id_that_is_not_a_catalog_id_names_no_folder(worker, home, cases):
    """The id names the run folder: '../x' or 'A B' is refused before anything is written."""
    for model_id in ("../escape", "Has Spaces"):
        _, status, _ = run_and_watch(worker, scene_inputs([(c.image, c.label) for c in cases[:2]]),
                                     {"model_id": model_id, "config": CONFIG})
        assert status.state == "failed" and "model id is not valid" in status.message, status.message
    assert not (home / "escape").exists() and not (home / "training" / "Has Spaces").exists()
    _, status, _ = run_and_watch(worker, {}, {"model_id": "x", "run_dir": "/tmp/elsewhere"})
    assert status.state == "failed" and "Unknown parameter(s) run_dir" in status.message


def test_a_client_names_the_model_to_start_from_by_id_never_by_file(worker, home, cases, tmp_path):
    """A file on the worker's machine is not loaded for a client (on a shared server it could be anything)."""
    planted = tmp_path / "model.pt"
    planted.write_bytes(b"not a model")
    for base in (str(planted), "../models/x/model.pt"):
        _, status, _ = run_and_watch(worker, scene_inputs([(c.image, c.label) for c in cases[:2]]),
                                     {"model_id": "from-a-file", "config": CONFIG, "base_model": base})
        assert status.state == "failed" and "fine-tunes from an installed model" in status.message, status.message
    assert "from-a-file" not in listed_models()
