"""The nnInteractive backend against the nnInteractive package itself, on a tiny model folder
built here (Testing/nninteractive_helpers.py), on an oblique, anisotropic, non-cubic image.

The reference is the package called the way its README shows: the image written to a file,
read back with SimpleITK (``GetArrayFromImage(...)[None]``), prompts turned into that array's
indices by hand (SimpleITK's physical-point-to-index, reversed to the array's axis order).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nnInteractive.inference.inference_session")
torch = pytest.importorskip("torch")
sitk = pytest.importorskip("SimpleITK")

from nninteractive_helpers import build_tiny_model_folder  # noqa: E402

from segforge.errors import Cancelled, InputError, ModelError  # noqa: E402
from segforge.image import Image  # noqa: E402
from segforge.interactive import nninteractive_backend as nni  # noqa: E402
from segforge.interactive.prompts import (BoxPrompt, PointPrompt, ScribblePrompt, VoxelBox,  # noqa: E402
                                          VoxelPoint)
from segforge.interactive.session import InteractiveSession  # noqa: E402
from segforge.progress import no_progress  # noqa: E402

SHAPE_KJI = (40, 70, 50)
SPACING = (0.8, 0.7, 2.5)  # i, j, k


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    return build_tiny_model_folder(tmp_path_factory.mktemp("nninteractive") / "nnInteractive_v1.0")


@pytest.fixture(scope="module")
def image() -> Image:
    rng = np.random.default_rng(0)
    array = rng.normal(0.0, 1.0, SHAPE_KJI).astype(np.float32) * 40 + 100
    array[8:30, 12:55, 10:42] += 120  # a bright lesion-like block
    angle = np.deg2rad(20)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return Image(array, spacing=SPACING, origin_lps=(-30.0, 12.0, 40.0), direction_lps=direction)


@pytest.fixture
def use_model(model_folder, monkeypatch):
    monkeypatch.setenv(nni.MODEL_ENV, str(model_folder))
    return model_folder


def lps(image: Image, kji) -> tuple[float, float, float]:
    """The LPS position of a voxel centre (how Slicer's markups would give it)."""
    ijk = np.append(np.asarray(kji, float)[::-1], 1.0)
    return tuple(float(v) for v in (image.ijk_to_lps() @ ijk)[:3])


def prompts_for(image: Image) -> list:
    """Positive click, negative click, a box that makes nnInteractive zoom out and refine, a scribble."""
    scribble = np.array([lps(image, (20, j, 30)) for j in range(20, 40)] + [lps(image, (21, 40, 31))])
    return [PointPrompt(lps(image, (18, 30, 20))),
            PointPrompt(lps(image, (19, 33, 23)), positive=False),
            BoxPrompt(*_box_lps(image, (10, 4, 6), (26, 66, 46))),
            ScribblePrompt(scribble)]


def _box_lps(image: Image, lo_kji, hi_kji):
    """An LPS box whose voxel box is lo..hi (exclusive); on this image (rotated about z) by its corners."""
    corners = np.array([lps(image, (k, j, i)) for k in (lo_kji[0], hi_kji[0] - 1)
                        for j in (lo_kji[1], hi_kji[1] - 1) for i in (lo_kji[2], hi_kji[2] - 1)])
    return tuple(corners.min(axis=0) - 1e-3), tuple(corners.max(axis=0) + 1e-3)


# -- the reference: the package called by hand -----------------------------------------------
class Reference:
    """nnInteractive's session, used as its README shows, on the image read back by SimpleITK."""

    def __init__(self, folder: Path, image: Image, tmp_path: Path) -> None:
        from nnInteractive.inference.inference_session import nnInteractiveInferenceSession

        stored = sitk.GetImageFromArray(image.array)
        stored.SetSpacing(image.spacing)
        stored.SetOrigin(image.origin_lps)
        stored.SetDirection(np.asarray(image.direction_lps).ravel().tolist())
        sitk.WriteImage(stored, str(tmp_path / "image.nrrd"))
        self.sitk_image = sitk.ReadImage(str(tmp_path / "image.nrrd"))
        array = sitk.GetArrayFromImage(self.sitk_image)[None]
        self.session = nnInteractiveInferenceSession(device=torch.device("cpu"),
                                                     torch_n_threads=torch.get_num_threads())
        self.session.initialize_from_trained_model_folder(str(folder), 0)
        self.session.set_image(array)
        self.target = np.zeros(array.shape[1:], np.uint8)
        self.session.set_target_buffer(self.target)

    def index(self, point_lps) -> tuple[int, int, int]:
        """The array index of a physical point: SimpleITK's (x, y, z) index, reversed."""
        return tuple(self.sitk_image.TransformPhysicalPointToIndex(tuple(point_lps)))[::-1]

    def add(self, prompt) -> np.ndarray:
        if isinstance(prompt, PointPrompt):
            self.session.add_point_interaction(self.index(prompt.position_lps), prompt.positive)
        elif isinstance(prompt, BoxPrompt):
            corners = np.array([self.sitk_image.TransformPhysicalPointToContinuousIndex(tuple(c)) for c in (
                [(x, y, z) for x in (prompt.min_lps[0], prompt.max_lps[0])
                 for y in (prompt.min_lps[1], prompt.max_lps[1]) for z in (prompt.min_lps[2], prompt.max_lps[2])])])
            lo = np.maximum(np.ceil(corners.min(axis=0)), 0).astype(int)[::-1]
            hi = np.minimum(np.floor(corners.max(axis=0)) + 1, self.sitk_image.GetSize()).astype(int)[::-1]
            # v1.0 takes 2D boxes: the middle slice across the thinnest axis
            axis = int(np.argmin(hi - lo))
            middle = (lo[axis] + hi[axis] - 1) // 2
            lo[axis], hi[axis] = middle, middle + 1
            self.session.add_bbox_interaction([[int(a), int(b)] for a, b in zip(lo, hi)], prompt.positive)
        else:
            painted = np.zeros(self.target.shape, np.uint8)
            for point in prompt.points_lps:
                painted[self.index(point)] = 1
            self.session.add_scribble_interaction(painted, prompt.positive)
        return self.target.copy()


# -- tests ------------------------------------------------------------------------------------
def test_masks_equal_the_packages_own_after_every_prompt(use_model, image, tmp_path):
    reference = Reference(use_model, image, tmp_path)
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    sizes = []
    for number, prompt in enumerate(prompts_for(image), start=1):
        session.interact(prompt)
        expected = reference.add(prompt)
        differing = int(np.count_nonzero(session.mask != expected))
        assert differing == 0, f"prompt {number}: {differing} voxels differ from the package's mask"
        sizes.append(int(session.mask.sum()))
    # the prompts did something: each mask differs from the one before, none is empty or full
    assert all(0 < s < session.mask.size // 2 for s in sizes), sizes
    assert len(set(sizes)) == len(sizes), sizes


def test_a_click_lands_on_the_voxel_it_was_placed_on(use_model, image):
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    kji = (18, 30, 20)
    session.interact(PointPrompt(lps(image, kji)))
    backend = session._backend
    positive_points = np.asarray(backend._session.interactions[backend._session.channel_mapping["points"][0]],
                                 dtype=np.float32)
    assert np.unravel_index(np.argmax(positive_points), positive_points.shape) == kji
    assert session.mask[kji] == 1
    centre = np.argwhere(session.mask).mean(axis=0)
    assert np.abs(centre - kji).max() < 1.5, centre


def test_the_image_is_sent_once_and_later_clicks_add_only_themselves(use_model, image, monkeypatch):
    from nnInteractive.inference.inference_session import nnInteractiveInferenceSession as Session

    calls = {"set_image": 0, "preprocess": 0, "reset": 0}
    for method, name in (("set_image", "set_image"), ("_background_set_image", "preprocess"),
                         ("reset_interactions", "reset")):
        original = getattr(Session, method)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Session, method, counted)
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    for prompt in prompts_for(image):
        session.interact(prompt)
    assert calls == {"set_image": 1, "preprocess": 1, "reset": 0}
    assert session._backend.steps == 4


def _fresh_mask(image: Image, prompts) -> np.ndarray:
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    for prompt in prompts:
        session.interact(prompt)
    return session.mask.copy()


def test_after_undo_the_mask_is_what_a_fresh_session_gives(use_model, image):
    a, b, box, scribble = prompts_for(image)
    c = PointPrompt(lps(image, (22, 40, 28)))
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    for prompt in (a, b, box):
        session.interact(prompt)
    backend = session._backend

    session.undo()  # one step back: the package's own undo, then only the new click runs
    steps = backend.steps
    session.interact(c)
    assert backend.steps == steps + 1
    assert np.array_equal(session.mask, _fresh_mask(image, [a, b, c]))

    session.undo()
    session.undo()  # two steps back: a reset and a replay of what is left
    steps = backend.steps
    session.interact(scribble)
    assert backend.steps == steps + 2
    assert np.array_equal(session.mask, _fresh_mask(image, [a, scribble]))


class _SlowNetwork:
    def __init__(self, network, seconds: float) -> None:
        self.network, self.seconds, self.passes = network, seconds, 0

    def __call__(self, *args, **kwargs):
        self.passes += 1
        time.sleep(self.seconds)
        return self.network(*args, **kwargs)


def test_cancel_stops_a_slow_step_within_a_second_and_the_backend_goes_on(use_model, image):
    a, b, box, _scribble = prompts_for(image)
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    session.interact(a)
    backend = session._backend
    before = session.mask.copy()
    guard = backend._session.network
    slow = _SlowNetwork(guard.network, 0.4)
    guard.network = slow

    def cancel(fraction: float, message: str) -> None:
        raise Cancelled()

    started = time.monotonic()
    with pytest.raises(Cancelled):
        session.interact(box, cancel)  # the box zooms out: several network passes
    assert time.monotonic() - started < 1.0
    assert np.array_equal(session.mask, before) and len(session.history) == 1
    backend._helper.join(5.0)
    cancelled_passes = slow.passes
    assert np.array_equal(backend._target, before), "the package did not roll the step back"

    slow.passes, slow.seconds = 0, 0.0
    steps = backend.steps
    session.interact(box)
    assert backend.steps == steps + 1  # the rolled-back state was reused, nothing replayed
    assert cancelled_passes <= 1 < slow.passes, "the step went on after the cancel"
    guard.network = slow.network
    session.interact(b)
    assert np.array_equal(session.mask, _fresh_mask(image, [a, box, b]))


def test_cancel_while_the_previous_cancelled_step_still_runs(use_model, image):
    a, b, _box, _scribble = prompts_for(image)
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    backend = session._backend
    guard = backend._session.network
    guard.network = _SlowNetwork(guard.network, 0.8)
    calls = []

    def cancel_second_report(fraction: float, message: str) -> None:
        calls.append(message)
        if len(calls) >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        session.interact(a, cancel_second_report)
    guard.network = guard.network.network
    session.interact(a)  # waits for the stopped step, then runs (the first pass may have finished it)
    session.interact(b)
    assert np.array_equal(session.mask, _fresh_mask(image, [a, b]))


def test_a_session_that_starts_from_a_mask_refines_it(use_model, image):
    start = np.zeros(SHAPE_KJI, np.uint8)
    start[14:22, 25:36, 15:26] = 1
    backend = nni.NnInteractiveBackend(image, "cpu")
    box, patch = backend.predict([VoxelPoint((18, 30, 20))], start, no_progress)
    reference = nni.NnInteractiveBackend(image, "cpu")._session
    target = np.zeros(SHAPE_KJI, np.uint8)
    reference.set_target_buffer(target)
    reference.add_initial_seg_interaction(start, run_prediction=False)
    reference.add_point_interaction((18, 30, 20), True)
    result = np.zeros(SHAPE_KJI, np.uint8)
    result[box] = patch
    assert np.array_equal(result, target) and result.sum() > 0


def test_3d_boxes_go_to_v1_as_the_middle_slice_across_the_thinnest_axis():
    assert nni.package_box(VoxelBox((2, 10, 4), (9, 30, 40)), boxes_3d=False) == [[5, 6], [10, 30], [4, 40]]
    assert nni.package_box(VoxelBox((2, 10, 4), (30, 30, 12)), boxes_3d=False) == [[2, 30], [10, 30], [7, 8]]
    assert nni.package_box(VoxelBox((2, 10, 4), (9, 30, 40)), boxes_3d=True) == [[2, 9], [10, 30], [4, 40]]
    assert nni.package_box(VoxelBox((5, 10, 4), (6, 30, 40)), boxes_3d=False) == [[5, 6], [10, 30], [4, 40]]


def test_a_missing_model_says_how_to_get_it(image, tmp_path, monkeypatch):
    monkeypatch.delenv(nni.MODEL_ENV, raising=False)
    monkeypatch.delenv("SEGFORGE_CATALOG", raising=False)
    monkeypatch.setenv("SEGFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NNINTERACTIVE_MODEL_DIR", str(tmp_path / "nothing"))
    with pytest.raises(ModelError) as raised:
        InteractiveSession(image, backend="nninteractive")
    error = raised.value
    assert "not installed" in error.what and str(tmp_path / "nothing") in error.why
    assert "nninteractive-download-model nnInteractive_v1.0" in error.todo and nni.MODEL_ENV in error.todo
    assert "CC BY-NC-SA 4.0" in error.todo

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "plans.json").write_text("{}")
    monkeypatch.setenv(nni.MODEL_ENV, str(broken))
    with pytest.raises(ModelError) as raised:
        InteractiveSession(image, backend="nninteractive")
    assert "dataset.json" in raised.value.why and "checkpoint_final.pth" in raised.value.why


def test_a_catalog_entry_installs_and_finds_the_model(model_folder, image, tmp_path, monkeypatch):
    """A site's catalog entry for an archive of the folder: downloaded, then found in the cache."""
    from segforge.catalog import load_catalog
    from segforge.catalog.download import download

    archive = tmp_path / "nnInteractive_v1.0.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in model_folder.rglob("*"):
            if path.is_file():
                zipped.write(path, Path("nnInteractive_v1.0") / path.relative_to(model_folder))
    entry = {"id": nni.CATALOG_ID, "workflow": "interactive", "framework": "nnunetv2",
             "url": archive.as_uri(), "size_bytes": None, "sha256": None, "licence": "CC-BY-NC-SA-4.0",
             "labels": {"1": "lesion"}, "input": {"modality": ["CT", "MR"], "spacing_mm": None},
             "min_gpu_memory_gb": 10, "description": "test archive",
             "nnunet": {"path": "nnInteractive_v1.0", "folds": [0], "configuration": "3d_fullres"}}
    (tmp_path / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    monkeypatch.setenv("SEGFORGE_CATALOG", str(tmp_path / "catalog.json"))
    monkeypatch.setenv("SEGFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NNINTERACTIVE_MODEL_DIR", str(tmp_path / "nothing"))
    monkeypatch.delenv(nni.MODEL_ENV, raising=False)
    with pytest.raises(ModelError) as raised:
        nni.find_model_folder()
    assert f"segforge models download {nni.CATALOG_ID}" in raised.value.todo
    download(load_catalog().get(nni.CATALOG_ID))
    folder, fold = nni.find_model_folder()
    assert folder == tmp_path / "home" / "models" / nni.CATALOG_ID / "nnInteractive_v1.0" and fold == 0
    box, patch = nni.make(image, "cpu").predict([VoxelPoint((18, 30, 20))], np.zeros(SHAPE_KJI, np.uint8),
                                                no_progress)
    assert patch.sum() > 0


def test_the_cpu_is_used_with_a_warning_when_there_is_no_gpu(use_model, image, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger=nni.__name__):
        session = InteractiveSession(image, backend="nninteractive", device="auto")
    backend = session._backend
    assert backend.device == "cpu"
    assert backend.warning and "CPU" in backend.warning and "seconds" in backend.warning
    assert any(backend.warning in record.getMessage() for record in caplog.records)
    with pytest.raises(InputError):
        InteractiveSession(image, backend="nninteractive", device="cuda")


def test_the_packages_chatter_stays_off_stdout(use_model, image, capfd):
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    session.interact(prompts_for(image)[0])
    assert capfd.readouterr().out == ""


def test_no_helper_thread_is_left_behind(use_model, image):
    before = {t for t in threading.enumerate() if t.name == "segforge-nninteractive"}
    session = InteractiveSession(image, backend="nninteractive", device="cpu")
    session.interact(prompts_for(image)[0])
    after = {t for t in threading.enumerate() if t.name == "segforge-nninteractive" and t.is_alive()}
    assert after <= before
