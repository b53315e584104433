"""The interactive engine: prompts land on the voxels pointed at (oblique, anisotropic, LPS and
RAS), the session's undo and redo restore masks exactly, and bad prompts are refused with the
session unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import OBLIQUE, make_image
from segforge.errors import InputError
from segforge.image import LPS_TO_RAS, Image
from segforge.interactive.prompts import (BoxPrompt, PointPrompt, ScribblePrompt, VoxelBox, VoxelPoint, box_to_voxels,
                                          point_to_voxels, prompt_from_json, prompt_to_json, prompts_from_json,
                                          scribble_to_voxels)
from segforge.interactive.replay import read_prompt_file
from segforge.interactive.session import InteractiveSession, image_key
from segforge.interactive.simulation import voxel_center_lps

SPACING = (0.8, 1.1, 3.0)


def blobs_image(direction=OBLIQUE) -> tuple[Image, np.ndarray, np.ndarray]:
    """Two bright ellipsoids (round in millimetres) in noise on an oblique anisotropic grid."""
    rng = np.random.default_rng(3)
    k, j, i = np.mgrid[:24, :48, :56].astype(float)

    def mm(a, b, c):
        return ((k - a) * SPACING[2]) ** 2 + ((j - b) * SPACING[1]) ** 2 + ((i - c) * SPACING[0]) ** 2

    first, second = mm(10, 20, 18) <= 8.0 ** 2, mm(14, 26, 42) <= 6.0 ** 2
    array = (rng.normal(0, 15, first.shape) + 220 * (first | second)).astype(np.float32)
    return Image(array, SPACING, (-30.0, 12.5, 7.0), direction), first, second


def centre_lps(image: Image, mask: np.ndarray) -> tuple[float, float, float]:
    return voxel_center_lps(image, tuple(int(round(v)) for v in np.argwhere(mask).mean(axis=0)))


def test_a_point_lands_on_its_voxel_on_an_oblique_anisotropic_grid():
    image = make_image((9, 12, 16))
    for kji in [(0, 0, 0), (8, 11, 15), (4, 7, 3)]:
        assert point_to_voxels(PointPrompt(voxel_center_lps(image, kji)), image).kji == kji
        nudged = np.asarray(voxel_center_lps(image, kji)) + OBLIQUE @ (0.4 * np.asarray(SPACING) * [1, -1, 1])
        assert point_to_voxels(PointPrompt(tuple(nudged)), image).kji == kji  # within the voxel, not off by one


def test_ras_and_lps_files_give_the_same_prompts():
    lps = {"coordinateSystem": "LPS", "prompts": [
        {"type": "point", "position": [10.0, -20.0, 5.0], "positive": False},
        {"type": "box", "min": [1, 2, 3], "max": [4, 6, 8]},
        {"type": "scribble", "points": [[1, 2, 3], [4, 5, 6]]}]}
    flip = np.diag(LPS_TO_RAS)[:3]
    ras = {"coordinateSystem": "RAS", "prompts": [
        {"type": "point", "position": list(flip * [10.0, -20.0, 5.0]), "positive": False},
        {"type": "box", "min": list(flip * [1, 2, 3]), "max": list(flip * [4, 6, 8])},
        {"type": "scribble", "points": (np.array([[1, 2, 3], [4, 5, 6]]) * flip).tolist()}]}
    assert prompts_from_json(lps) == prompts_from_json(ras)
    for prompt in prompts_from_json(lps):
        assert prompt_from_json(prompt_to_json(prompt)) == prompt


@pytest.mark.parametrize("entry, words", [
    ({"type": "point"}, "no 'position'"),
    ({"type": "point", "position": [1, 2]}, "three finite numbers"),
    ({"type": "point", "position": [1, 2, 3], "positive": "yes"}, "true or false"),
    ({"type": "circle", "position": [1, 2, 3]}, "Unknown prompt type"),
])
def test_malformed_prompts_say_what_is_wrong(entry, words):
    with pytest.raises(InputError, match=words):
        prompt_from_json(entry)


def test_a_box_holds_the_voxels_whose_centres_it_holds():
    image = Image(np.zeros((10, 20, 30), np.float32), (0.5, 1.0, 2.0), (5.0, -3.0, 1.0))
    box = box_to_voxels(BoxPrompt((5.0 + 0.5 * 3 - 0.1, -3.0 + 4 - 0.1, 1.0 + 2 * 2 - 0.1),
                                  (5.0 + 0.5 * 9 + 0.1, -3.0 + 11 + 0.1, 1.0 + 2 * 6 + 0.1)), image)
    assert (box.lo_kji, box.hi_kji) == ((2, 4, 3), (7, 12, 10))
    with pytest.raises(InputError, match="no volume"):
        box_to_voxels(BoxPrompt((1.0, 1.0, 1.0), (1.0, 5.0, 5.0)), image)
    with pytest.raises(InputError, match="outside the image"):
        box_to_voxels(BoxPrompt((500.0, 500.0, 500.0), (510.0, 510.0, 510.0)), image)


def test_scribble_points_outside_the_image_are_dropped_and_all_outside_is_refused():
    image = make_image((9, 12, 16))
    inside = [voxel_center_lps(image, (1, 2, 3)), voxel_center_lps(image, (1, 2, 3)),
              voxel_center_lps(image, (4, 5, 6))]
    scribble = scribble_to_voxels(ScribblePrompt(np.array(inside + [(900.0, 0.0, 0.0)])), image)
    assert scribble.kji.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(InputError, match="outside the image"):
        scribble_to_voxels(ScribblePrompt(np.array([(900.0, 0.0, 0.0)])), image)


def test_a_click_segments_the_lesion_it_is_on_and_not_the_other():
    image, first, second = blobs_image()
    session = InteractiveSession(image)
    change = session.interact(PointPrompt(centre_lps(image, first)))
    mask = session.mask.astype(bool)
    assert 2 * np.count_nonzero(mask & first) / (mask.sum() + first.sum()) > 0.9
    assert not np.any(mask & second)
    assert np.array_equal(session.mask[change.slices], change.after)


def test_undo_and_redo_round_trip_exactly():
    image, first, second = blobs_image()
    session = InteractiveSession(image)
    masks = [session.mask.copy()]
    for prompt in [PointPrompt(centre_lps(image, first)), PointPrompt(centre_lps(image, second)),
                   PointPrompt(centre_lps(image, second), positive=False)]:
        session.interact(prompt)
        masks.append(session.mask.copy())
    assert not np.array_equal(masks[2], masks[3])  # the negative click changed something
    for expected in reversed(masks[:-1]):
        change = session.undo()
        assert np.array_equal(session.mask, expected)
        assert change is not None
    assert session.undo() is None and not session.can_undo
    for expected in masks[1:]:
        session.redo()
        assert np.array_equal(session.mask, expected)
    assert session.redo() is None
    session.undo()
    session.interact(PointPrompt(centre_lps(image, second)))  # a new interaction clears redo
    assert not session.can_redo and len(session.history) == 3
    change = session.reset()
    assert not session.mask.any() and not session.history and not change.empty


def test_changes_cover_exactly_the_voxels_that_changed():
    image, first, second = blobs_image()
    session = InteractiveSession(image)
    before = session.mask.copy()
    session.interact(PointPrompt(centre_lps(image, first)))
    before2 = session.mask.copy()
    change = session.interact(PointPrompt(centre_lps(image, second)))
    differs = before2 != session.mask
    outside = np.ones(differs.shape, bool)
    outside[change.slices] = False
    assert differs.any() and not np.any(differs & outside)
    assert np.array_equal(change.before, before2[change.slices])
    assert np.array_equal(before, np.zeros_like(before))
    # the change box is tight: every face holds a changed voxel
    box = differs[change.slices]
    for axis in range(3):
        assert box.take(0, axis=axis).any() and box.take(-1, axis=axis).any()


def test_bad_prompts_are_refused_and_leave_the_session_as_it_was():
    image, first, _ = blobs_image()
    session = InteractiveSession(image)
    with pytest.raises(InputError, match="first prompt is a negative click"):
        session.interact(PointPrompt(centre_lps(image, first), positive=False))
    session.interact(PointPrompt(centre_lps(image, first)))
    mask, history = session.mask.copy(), list(session.history)
    with pytest.raises(InputError, match="outside the image"):
        session.interact(PointPrompt((900.0, 900.0, 900.0)))
    with pytest.raises(InputError, match="no volume"):
        session.interact(BoxPrompt((0.0, 0.0, 0.0), (0.0, 10.0, 10.0)))
    assert np.array_equal(session.mask, mask) and session.history == history


def test_a_2d_image_is_refused():
    with pytest.raises(InputError):
        InteractiveSession(Image(np.zeros((1, 32, 32), np.float32)))


def test_a_box_alone_segments_the_lesion_inside_it():
    image, first, second = blobs_image(direction=np.eye(3))
    corners = np.array([voxel_center_lps(image, tuple(v)) for v in np.argwhere(first)])
    session = InteractiveSession(image)
    session.interact(BoxPrompt(tuple(corners.min(axis=0) - 2.0), tuple(corners.max(axis=0) + 2.0)))
    mask = session.mask.astype(bool)
    assert 2 * np.count_nonzero(mask & first) / (mask.sum() + first.sum()) > 0.85
    assert not np.any(mask & second)


def test_a_positive_scribble_segments_the_lesion():
    image, first, _ = blobs_image()
    k, j, i = np.argwhere(first).mean(axis=0).round().astype(int)
    stroke = [voxel_center_lps(image, (k, j, i + d)) for d in range(-3, 4)]
    session = InteractiveSession(image)
    session.interact(ScribblePrompt(np.array(stroke)))
    mask = session.mask.astype(bool)
    assert 2 * np.count_nonzero(mask & first) / (mask.sum() + first.sum()) > 0.9


def test_the_image_key_names_content_and_grid():
    image = make_image((9, 12, 16))
    assert image_key(image) == image_key(Image(image.array.copy(), image.spacing, image.origin_lps,
                                               image.direction_lps))
    changed = image.array.copy()
    changed[0, 0, 0] += 1
    assert image_key(image) != image_key(image.with_array(changed))
    assert image_key(image) != image_key(Image(image.array, image.spacing, (0.0, 0.0, 0.0), image.direction_lps))


def test_the_voxel_prompt_of_a_click_keeps_its_sign():
    image = make_image((9, 12, 16))
    prompt = PointPrompt(voxel_center_lps(image, (2, 3, 4)), False)
    assert point_to_voxels(prompt, image) == VoxelPoint((2, 3, 4), False)


def test_refining_an_existing_mask_keeps_it_where_the_backend_did_not_work():
    image, first, second = blobs_image()
    existing = np.zeros(first.shape, np.uint8)
    existing[2:4, 40:46, 2:8] = 1  # a segment far from both blobs
    session = InteractiveSession(image, initial=existing)
    change = session.interact(PointPrompt(centre_lps(image, second)))
    assert np.array_equal(session.mask[2:4, 40:46, 2:8], existing[2:4, 40:46, 2:8])
    assert np.count_nonzero(session.mask.astype(bool) & second) > 0.9 * second.sum()
    session.undo()
    assert np.array_equal(session.mask, existing) and not change.empty
    with pytest.raises(InputError, match="needs a positive prompt first"):
        session.interact(PointPrompt(centre_lps(image, second), positive=False))
    assert np.array_equal(session.mask, existing)


def test_withdrawing_the_last_interaction_brings_its_redo_list_back():
    image, first, second = blobs_image()
    session = InteractiveSession(image)
    session.interact(PointPrompt(centre_lps(image, first)))
    session.interact(PointPrompt(centre_lps(image, second)))
    session.undo()
    before = session.mask.copy()
    session.interact(PointPrompt(centre_lps(image, second), positive=False))
    assert session.redo_count == 0
    session.withdraw_last()
    assert np.array_equal(session.mask, before) and session.redo_count == 1 and len(session.history) == 1
    session.redo()
    assert np.count_nonzero(session.mask.astype(bool) & second) > 0.9 * second.sum()


def test_a_negative_click_on_the_only_positive_one_empties_the_segment():
    """Found by the server load test: every positive prompt taken back left nothing to segment
    around, and the random walker raised a TypeError. The segment is empty instead, and undo
    brings it back."""
    array = np.random.default_rng(0).normal(0, 5, (20, 30, 30)).astype(np.float32)
    array[8:12, 10:20, 10:20] += 200
    image = Image(array, (0.8, 1.0, 2.0))
    session = InteractiveSession(image, "random-walker", "cpu")
    click = voxel_center_lps(image, (10, 15, 15))
    session.interact(PointPrompt(click, True))
    lesion = session.mask.copy()
    assert lesion.sum() > 0
    session.interact(PointPrompt(click, False))
    assert session.mask.sum() == 0
    session.undo()
    np.testing.assert_array_equal(session.mask, lesion)


@pytest.mark.parametrize("document, words", [
    ({"coordinate_system": "RAS", "prompts": [{"type": "point", "position": [1, 2, 3]}]},
     "The prompt file has an unknown key 'coordinate_system'"),
    ({"coordinateSystem": "RAS", "prompts": [{"type": "point", "position": [1, 2, 3], "is_positive": False}]},
     "A point prompt has an unknown key 'is_positive'"),
    ({"prompts": [{"type": "box", "min": [1, 2, 3], "max": [4, 5, 6], "postive": False}]},
     "A box prompt has an unknown key 'postive'"),
    ({"prompts": [{"type": "scribble", "points": [[1, 2, 3]], "position": [1, 2, 3]}]},
     "A scribble prompt has an unknown key 'position'"),
    ({"prompts": [{"type": "lasso", "points": [[0, 0, 0], [9, 0, 0], [0, 9, 0]], "close": True}]},
     "A lasso prompt has an unknown key 'close'"),
])
def test_a_misspelt_key_is_refused_not_ignored(document, words):
    """A misspelt "coordinate_system": "RAS" was dropped and the clicks read as LPS (mirrored to
    the other side of the patient); "is_positive": false was dropped and the click was positive."""
    with pytest.raises(InputError) as raised:
        prompts_from_json(document)
    assert raised.value.what == words, raised.value.message
    assert "'positive'" in raised.value.why or "'coordinateSystem'" in raised.value.why
    assert "\n" not in raised.value.message and raised.value.todo


@pytest.mark.parametrize("entry, words", [
    ({"type": "point", "position": [True, 36, 50]}, "A prompt position is [true, 36, 50]"),
    ({"type": "point", "position": [26, "36", 50]}, "A prompt position is [26, '36', 50]"),
    ({"type": "point", "position": [10 ** 400, 36, 50]}, "A prompt position is [100000... (401 digits), 36, 50]"),
    ({"type": "point", "position": [[26], [36], [50]]}, "A prompt position is [[26], [36], [50]]"),
    ({"type": "box", "min": [0, 0, 0], "max": [10 ** 400, 1, 1]}, "A prompt position is [100000..."),
    ({"type": "scribble", "points": [[1, 2, 3], [1, 2, 10 ** 400]]}, "Point 2 of a scribble is [1, 2, 100000..."),
    ({"type": "scribble", "points": [[1, 2, False]]}, "Point 1 of a scribble is [1, 2, false]"),
    ({"type": "lasso", "points": [[0, 0, 0], [9, 0, 0], [0, 10 ** 400, 0]]}, "Point 3 of a lasso is [0, 100000..."),
    ({"type": "lasso", "points": "x"}, "A lasso's points are 'x'"),
])
def test_coordinates_that_are_not_json_numbers_are_refused_as_given(entry, words):
    """true was read as 1.0 and "36" as 36.0 (the wrong voxel, no word said); an integer too large
    for a float was an OverflowError traceback; a nested position was shown flattened as the
    valid [26, 36, 50] the message said it was not."""
    with pytest.raises(InputError) as raised:
        prompt_from_json(entry)
    assert raised.value.what.startswith(words), raised.value.message
    assert "numbers" in raised.value.why or "list of positions" in raised.value.why


def test_a_negative_first_prompt_is_named_by_its_kind():
    """A negative box, scribble or lasso as the first prompt was called "a negative click"."""
    from segforge.interactive.lasso import lasso_prompt

    image, first, _ = blobs_image(direction=np.eye(3))
    k, j, i = np.argwhere(first).mean(axis=0).round().astype(int)
    corners = [voxel_center_lps(image, (k, j + dj, i + di)) for dj, di in ((-3, -3), (-3, 3), (3, 3), (3, -3))]
    low, high = np.min(corners, axis=0) - 1.0, np.max(corners, axis=0) + 1.0
    session = InteractiveSession(image)
    for prompt, noun in [(PointPrompt(corners[0], False), "click"),
                         (BoxPrompt(tuple(low), tuple(high), False), "box"),
                         (ScribblePrompt(np.array(corners), False), "scribble"),
                         (lasso_prompt(np.array(corners), False), "lasso")]:
        with pytest.raises(InputError) as raised:
            session.interact(prompt)
        assert raised.value.what == f"The first prompt is a negative {noun}"
    assert not session.history and not session.mask.any()


def test_a_box_along_an_oblique_anisotropic_volumes_axes_holds_exactly_its_voxels():
    """A box drawn in an oblique volume's own slices (the web app's two clicks) or an ROI turned
    with the volume went to the engine as the patient-axis box around it, and box_to_voxels
    widened that again to the voxel axes: 1.8 to 19.5 times the voxels."""
    image = Image(np.zeros((24, 48, 56), np.float32), SPACING, (-30.0, 12.5, 7.0), OBLIQUE)
    lo, hi = np.array([5, 10, 12]), np.array([11, 30, 40])  # k, j, i; inclusive
    ijk_to_lps = image.ijk_to_lps()
    a, b = ((ijk_to_lps @ [*(corner[::-1] + d), 1.0])[:3] for corner, d in ((lo, -0.5), (hi, 0.5)))
    axes = tuple(tuple(float(v) for v in axis) for axis in image.direction_lps.T)  # i, j, k directions
    turned = BoxPrompt(tuple(a), tuple(b), True, axes)
    assert box_to_voxels(turned, image) == VoxelBox(tuple(lo), tuple(hi + 1), True)
    plain = box_to_voxels(BoxPrompt(tuple(np.minimum(a, b)), tuple(np.maximum(a, b))), image)
    assert np.prod(np.subtract(plain.hi_kji, plain.lo_kji)) > 2 * np.prod(hi + 1 - lo)  # what it was (clipped)
    assert prompt_from_json(prompt_to_json(turned)) == turned
    flip = np.diag(LPS_TO_RAS)[:3]
    ras = {"coordinateSystem": "RAS", "prompts": [{"type": "box", "min": (a * flip).tolist(),
                                                   "max": (b * flip).tolist(),
                                                   "axes": (image.direction_lps.T * flip).tolist()}]}
    (from_ras,) = prompts_from_json(ras)
    assert box_to_voxels(from_ras, image) == VoxelBox(tuple(lo), tuple(hi + 1), True)
    with pytest.raises(InputError, match="perpendicular unit directions"):
        prompt_from_json({"type": "box", "min": [0, 0, 0], "max": [5, 5, 5], "axes": [[1, 0, 0], [1, 0, 0], [0, 0, 1]]})
    with pytest.raises(InputError, match="perpendicular unit directions"):
        prompt_from_json({"type": "box", "min": [0, 0, 0], "max": [5, 5, 5], "axes": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]})


def test_a_key_given_twice_in_a_prompt_file_is_refused(tmp_path):
    """json keeps the last of two equal keys silently: "positive": false, "positive": true read
    as a positive click, and a second "coordinateSystem" overrode the first."""
    path = tmp_path / "twice.json"
    path.write_text('{"coordinateSystem": "RAS", "prompts": [{"type": "point", "position": [1, 2, 3], '
                    '"positive": false, "positive": true}]}', encoding="utf-8")
    with pytest.raises(InputError, match="Cannot read the prompt file") as raised:
        read_prompt_file(path)
    assert "'positive' is given twice" in raised.value.why and "\n" not in raised.value.message
    path.write_text('{"coordinateSystem": "RAS", "prompts": [{"type": "point", "position": [1, 2, 3]}]}',
                    encoding="utf-8")
    assert len(read_prompt_file(path)) == 1
