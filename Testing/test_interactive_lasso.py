"""Lasso prompts in the engine: a contour drawn in one slice fills exactly what it encloses there.

The image is oblique (a real rotation) and anisotropic (0.7 x 1.3 x 2.9 mm), and the
contour is given in world millimetres as a slice view would give it. What "inside" means is
checked here independently of the engine's voxel arithmetic: each voxel centre of the slice
and the contour are projected onto the slice's plane in millimetres and tested by ray
casting. Replay, undo and redo must treat a lasso like any other prompt.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import OBLIQUE
from segforge.errors import InputError
from segforge.image import LPS_TO_RAS, Image
from segforge.interactive.lasso import lasso_prompt
from segforge.interactive.prompts import (LassoPrompt, PointPrompt, prompt_from_json, prompt_to_json,
                                          prompts_from_json, to_voxels)
from segforge.interactive.session import InteractiveSession

SPACING = (0.7, 1.3, 2.9)  # i, j, k
SHAPE = (13, 40, 60)       # k, j, i
CENTRE = np.array((6.0, 20.0, 30.0))  # k, j, i
SLICE = 6
#: A concave contour (an arrow head) in (j, i) voxel coordinates of slice SLICE, corners off the voxel centres.
ARROW_JI = np.array([(11.3, 18.6), (28.7, 22.2), (20.4, 29.1), (29.2, 41.3), (10.6, 40.8), (16.2, 30.4)])


def ball_image() -> tuple[Image, np.ndarray]:
    """A bright ball (radius 9 mm, round in millimetres) in mild noise, on an oblique anisotropic grid."""
    mm = (np.indices(SHAPE).transpose(1, 2, 3, 0) - CENTRE) * np.asarray(SPACING)[::-1]
    ball = np.sum(mm ** 2, axis=-1) < 9.0 ** 2
    noise = np.random.default_rng(3).normal(0, 15, SHAPE)
    return Image((noise + 200 * ball).astype(np.int16), SPACING, (-12.5, 40.25, 7.125), OBLIQUE), ball


def lps_of(image: Image, kji: np.ndarray) -> np.ndarray:
    kji = np.atleast_2d(np.asarray(kji, float))
    ijk1 = np.c_[kji[:, ::-1], np.ones(len(kji))]
    return (ijk1 @ image.ijk_to_lps().T)[:, :3]


def contour(image: Image, ji: np.ndarray, k: float = SLICE) -> np.ndarray:
    """The contour's corners in LPS mm: (j, i) of slice ``k`` through the image's geometry."""
    return lps_of(image, np.c_[np.full(len(ji), k), ji])


def expected_slice(image: Image, points_lps: np.ndarray, k: int = SLICE) -> np.ndarray:
    """Slice ``k``'s voxels whose centres the contour encloses, by ray casting in the slice's plane (mm)."""
    ijk_to_lps = image.ijk_to_lps()
    u, v = ijk_to_lps[:3, 0], ijk_to_lps[:3, 1]  # the plane's axes: along i and along j, in LPS
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    polygon = np.c_[points_lps @ u, points_lps @ v]
    j, i = np.indices(SHAPE[1:])
    centres = lps_of(image, np.c_[np.full(j.size, k), j.ravel(), i.ravel()])
    x, y = centres @ u, centres @ v
    inside = np.zeros(x.shape, bool)
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return inside.reshape(SHAPE[1:])


@pytest.fixture(scope="module")
def ball():
    return ball_image()


def test_a_lasso_in_an_axial_slice_of_an_oblique_anisotropic_image_fills_exactly_the_polygon(ball):
    image, truth = ball
    points = contour(image, ARROW_JI)
    expected = expected_slice(image, points)
    # its two notches reach to j = 16.2 and 20.4 at i = 30: only the strip between them is inside there
    assert 150 < expected.sum() < 400 and expected[18, 30] and not expected[12, 30] and not expected[25, 30], \
        "the test's arrow head is not the shape meant"
    session = InteractiveSession(image)
    change = session.interact(lasso_prompt(points))
    np.testing.assert_array_equal(session.mask[SLICE] != 0, expected)
    # the backend grew the object into the neighbouring slices from what the lasso showed it
    assert session.mask[SLICE - 1].any() and session.mask[SLICE + 1].any()
    outside = session.mask.astype(bool) & ~truth
    outside[SLICE] = False  # there the lasso says what the object is
    assert outside.sum() < 0.1 * truth.sum(), f"the mask leaked {outside.sum()} voxels out of the ball"
    assert change.offset_kji[0] <= SLICE < change.offset_kji[0] + change.after.shape[0]


def test_a_lasso_in_another_orientation_and_in_ras_gives_the_same_voxels(ball):
    """A contour in a slice of constant j (the image's coronal, here), read from RAS as from LPS."""
    image, _ = ball
    jk = np.array([(3.2, 22.4), (9.6, 24.1), (8.7, 38.2), (3.4, 36.6)])  # (k, i) corners at j = 21
    points = lps_of(image, np.c_[jk[:, 0], np.full(len(jk), 21.0), jk[:, 1]])
    lps = to_voxels(lasso_prompt(points), image)
    ras = prompt_from_json({"type": "lasso", "points": (points * np.diag(LPS_TO_RAS)[:3]).tolist()}, "RAS")
    ras_voxels = to_voxels(ras, image)
    assert lps.axis == 1 and lps.index == 21
    np.testing.assert_array_equal(lps.inside, ras_voxels.inside)
    assert set(lps.inside[:, 0]) == {4, 5, 6, 7, 8, 9} and len(lps.inside) > 40


def test_undo_redo_and_replay_include_the_lasso(ball):
    image, _ = ball
    lasso = lasso_prompt(contour(image, ARROW_JI))
    click = PointPrompt(tuple(lps_of(image, CENTRE + (2, 0, 0))[0]))
    erase = lasso_prompt(contour(image, np.array([(14.5, 24.5), (24.5, 24.5), (24.5, 34.5), (14.5, 34.5)]), SLICE + 1),
                         positive=False)
    session = InteractiveSession(image)
    masks = []
    for prompt in (click, lasso, erase):
        session.interact(prompt)
        masks.append(session.mask.copy())
    assert not masks[2][SLICE + 1, 15:25, 25:35].any(), "the negative lasso left voxels it encloses"
    assert masks[1][SLICE + 1, 15:25, 25:35].any(), "the negative lasso's test erased nothing"
    np.testing.assert_array_equal(masks[2][SLICE] != 0, expected_slice(image, lasso.points_lps))
    session.undo()
    np.testing.assert_array_equal(session.mask, masks[1])
    session.undo()
    np.testing.assert_array_equal(session.mask, masks[0])
    session.redo()
    session.redo()
    np.testing.assert_array_equal(session.mask, masks[2])
    # a prompt file written from the history replays to the same mask, bit for bit
    written = {"coordinateSystem": "LPS", "prompts": [prompt_to_json(p) for p in session.history]}
    document = json.loads(json.dumps(written))
    replayed = InteractiveSession(image)
    for prompt in prompts_from_json(document):
        replayed.interact(prompt)
    assert replayed.history == session.history
    np.testing.assert_array_equal(replayed.mask, masks[2])


def test_two_lassos_in_one_slice_keep_both_and_a_later_one_wins(ball):
    image, _ = ball
    left = lasso_prompt(contour(image, np.array([(12.5, 21.5), (27.5, 21.5), (27.5, 29.5), (12.5, 29.5)])))
    right = lasso_prompt(contour(image, np.array([(12.5, 30.5), (27.5, 30.5), (27.5, 38.5), (12.5, 38.5)])))
    session = InteractiveSession(image)
    session.interact(left)
    session.interact(right)
    both = expected_slice(image, left.points_lps) | expected_slice(image, right.points_lps)
    np.testing.assert_array_equal(session.mask[SLICE] != 0, both)
    hole = lasso_prompt(contour(image, np.array([(18.5, 26.5), (22.5, 26.5), (22.5, 33.5), (18.5, 33.5)])), False)
    session.interact(hole)
    np.testing.assert_array_equal(session.mask[SLICE] != 0, both & ~expected_slice(image, hole.points_lps))


def test_a_negative_lasso_alone_erases_from_the_segment_being_refined(ball):
    image, truth = ball
    session = InteractiveSession(image, initial=truth.astype(np.uint8))
    cut = lasso_prompt(contour(image, np.array([(10.5, 20.5), (20.5, 20.5), (20.5, 40.5), (10.5, 40.5)])), False)
    change = session.interact(cut)
    gone = expected_slice(image, cut.points_lps)
    expected = truth.copy()
    expected[SLICE][gone] = False
    np.testing.assert_array_equal(session.mask != 0, expected)
    assert change.after.shape[0] == 1, "only the lasso's slice changed"
    # only the negative lassos skip the backend: a negative click after them is the backend's to refuse
    with pytest.raises(InputError, match="positive prompt first"):
        session.interact(PointPrompt(tuple(lps_of(image, CENTRE)[0]), positive=False))
    np.testing.assert_array_equal(session.mask != 0, expected)


@pytest.mark.parametrize("entry, what", [
    ({"type": "lasso", "points": [[0, 0, 0], [10, 0, 0], [0, 10, 0]], "closed": False}, "not closed"),
    ({"type": "lasso", "points": [[0, 0, 0], [10, 0, 0], [0, 0, 0]]}, "fewer than 3 points"),
    ({"type": "lasso", "points": [[0, 0, 0], [10, 0, 0]]}, "fewer than 3 points"),
    ({"type": "lasso", "points": [[0, 0], [10, 0], [0, 10]]}, "Point 1 of a lasso is [0, 0]"),
    ({"type": "lasso", "points": [[0, 0, 0], [10, 0, float("nan")], [0, 10, 0]]}, "not a finite number"),
    ({"type": "lasso", "closed": "yes", "points": [[0, 0, 0], [10, 0, 0], [0, 10, 0]]}, "'closed'"),
])
def test_a_bad_lasso_in_a_prompt_file_says_what_to_do(entry, what):
    with pytest.raises(InputError) as raised:
        prompt_from_json(entry)
    assert what in raised.value.what and raised.value.why and raised.value.todo, raised.value.message


def test_a_lasso_across_slices_off_the_image_or_smaller_than_a_voxel_is_refused(ball):
    image, _ = ball
    tilted = lps_of(image, np.array([(4.0, 12.0, 20.0), (6.0, 28.0, 22.0), (8.0, 20.0, 40.0)]))
    with pytest.raises(InputError, match="spans several slices") as raised:
        to_voxels(lasso_prompt(tilted), image)
    assert "Rotate to volume plane" in raised.value.todo
    off = contour(image, ARROW_JI + (0, 200))
    with pytest.raises(InputError, match="outside the image"):
        to_voxels(lasso_prompt(off), image)
    tiny = contour(image, np.array([(20.1, 30.1), (20.4, 30.2), (20.2, 30.4)]))
    with pytest.raises(InputError, match="encloses no voxel"):
        to_voxels(lasso_prompt(tiny), image)
    session = InteractiveSession(image)
    with pytest.raises(InputError, match="spans several slices"):
        session.interact(LassoPrompt(tilted))  # made without lasso_prompt: checked all the same
    assert not session.history and not session.mask.any()


def test_a_prompt_file_with_lassos_in_ras_runs_through_the_cli_and_a_bad_one_says_what_to_do(ball, tmp_path):
    """``segforge interactive --prompts`` as a user runs it (a subprocess): the lasso's slice of
    the written segmentation is exactly the polygon; an open lasso stops it with the message."""
    from segforge.image_io import read_image, write_image
    from test_cli import segforge

    image, _ = ball
    source = write_image(image, tmp_path / "ball.nrrd")
    points = contour(image, ARROW_JI)
    ras = (points * np.diag(LPS_TO_RAS)[:3]).tolist()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"coordinateSystem": "RAS", "prompts": [{"type": "lasso", "points": ras}]}))
    run = segforge("interactive", str(source), "--prompts", str(good), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    written = read_image(tmp_path / "out" / "lesion.seg.nrrd")
    assert written.same_grid(image)
    np.testing.assert_array_equal(written.array[SLICE] != 0, expected_slice(image, points))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(s["type"], s["positive"]) for s in summary["interactions"]] == [("lasso", True)]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prompts": [{"type": "lasso", "points": points.tolist(), "closed": False}]}))
    run = segforge("interactive", str(source), "--prompts", str(bad), "--out", str(tmp_path / "bad"))
    assert run.returncode != 0 and "The lasso is not closed" in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_a_killed_worker_replays_the_lassos_to_the_same_mask(ball):
    """Through a real worker subprocess: each step equals the engine's own session, and after a
    SIGKILL the rebuilt session (image sent again, prompts replayed) still does."""
    import os
    import signal

    from segforge.worker import WorkerClient
    from segforge.worker.interactive_client import RemoteSession

    image, _ = ball
    prompts = [lasso_prompt(contour(image, ARROW_JI)),
               PointPrompt(tuple(lps_of(image, CENTRE + (2, 0, 0))[0])),
               lasso_prompt(contour(image, np.array([(14.5, 24.5), (24.5, 24.5), (24.5, 34.5), (14.5, 34.5)]),
                                    SLICE + 1), positive=False)]
    with WorkerClient() as client:
        remote, local = RemoteSession(client, image), InteractiveSession(image)
        for prompt in prompts:
            remote.interact(prompt)
            local.interact(prompt)
            np.testing.assert_array_equal(remote.mask, local.mask)
        remote.undo(), local.undo()
        first = client.pid
        os.kill(first, signal.SIGKILL)
        remote.redo(), local.redo()  # rebuilt: the image again, three prompts replayed, one undone
        assert client.pid != first and remote.opens == 2
        np.testing.assert_array_equal(remote.mask, local.mask)
        assert remote.history == local.history == prompts
