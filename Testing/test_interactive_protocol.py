"""The honest protocol of issue 17 (segforge.interactive.evaluation): no click wrecks the mask
on real lesions from ../shared/data/lesions, and leave-one-case-out never looks at the case it
reports when choosing its parameters."""
from __future__ import annotations

import pytest

from segforge.interactive.evaluation import (CASES, CaseResult, leave_one_case_out, load_case, parameter_grid,
                                             random_walker_factory, shared_lesions_root)
from segforge.interactive.random_walker import RandomWalkerParameters
from segforge.interactive.simulation import simulate_clicks

ROOT = shared_lesions_root()


@pytest.mark.parametrize("name", [
    "sts001_pet",  # a negative click took Dice from 0.71 to 0.09
    "ms07_flair",  # from 0.88 to 0.70
])
def test_no_click_lowers_dice_by_more_than_005(name):
    if not ROOT.is_dir():
        pytest.skip(f"the shared lesions are not at {ROOT} (issue 17's data; ../shared/data/lesions)")
    folder = dict((case, folder) for folder, case in CASES)[name]
    image, reference = load_case(ROOT, folder, name)
    result = simulate_clicks(image, reference, clicks=8,
                             session_factory=random_walker_factory(RandomWalkerParameters()))
    drops = [round(a - b, 3) for a, b in zip(result.dice, result.dice[1:])]
    print(f"\n{name}: Dice {[round(d, 3) for d in result.dice]}")
    assert max(drops) <= 0.05, (result.dice, drops)


def test_leave_one_case_out_never_chooses_by_the_held_out_case():
    def result(case, after_5):
        return CaseResult(case, [after_5] * 5)
    # set "a" is best on every case but "x", where "b" is far better: "x" must still get "a"
    results = {"a": {"x": result("x", 0.1), "y": result("y", 0.9), "z": result("z", 0.9)},
               "b": {"x": result("x", 1.0), "y": result("y", 0.5), "z": result("z", 0.5)}}
    chosen = leave_one_case_out(results)
    assert chosen["x"][0] == "a" and chosen["x"][1].dice_after(5) == 0.1
    assert chosen["y"][0] == "b"  # on x and z, b's mean (0.75) beats a's (0.5)


def test_a_drop_counts_against_a_parameter_set():
    steady = CaseResult("x", [0.8, 0.8, 0.8, 0.8, 0.8])
    wrecking = CaseResult("x", [0.9, 0.2, 0.9, 0.9, 0.85])
    assert steady.largest_drop == 0 and wrecking.largest_drop == pytest.approx(0.7)
    results = {"steady": {"x": steady, "y": steady}, "wrecking": {"x": wrecking, "y": wrecking}}
    assert leave_one_case_out(results)["x"][0] == "steady"


def test_the_grid_names_each_combination():
    grid = parameter_grid(RandomWalkerParameters(), {"beta": [2.0, 4.0], "prior_weight": [0.3]})
    assert list(grid) == ["beta=2.0,prior_weight=0.3", "beta=4.0,prior_weight=0.3"]
    assert grid["beta=2.0,prior_weight=0.3"].beta == 2.0
    assert list(parameter_grid(RandomWalkerParameters(), {})) == ["default"]


@pytest.mark.parametrize("name, before, least", [
    ("ms07_flair", 0.571, 0.65),  # before: the box's central third
    # the brain around the lesion is likelier inside the box than around it only because the
    # skull is around it: the likelier part was nearly the whole box (0.439); followed out of the
    # box it runs on, the lesion's two parts at a higher ratio do not (measured 0.803)
    ("brain1", 0.439, 0.75),
    # the GTV holds a cold necrotic core ringed by uptake, and the ring opens to the outside in
    # 3D: a box's answer fills the holes of every plane (measured 0.830; 0.705 with 3D holes only)
    ("sts001_pet", 0.705, 0.75),
    # isointense with muscle: no piece of the box's inside is clearly the lesion's, so its likelier
    # part is bounded by the ellipsoid inscribed in the box (measured 0.772 and 0.755); before: the
    # likelier part of the box, nearly all of its inside, corners too
    ("sts001_ct", 0.637, 0.72),
    ("sts001_mr", 0.636, 0.72),
])
def test_a_box_alone_finds_the_lesion(name, before, least):
    """A box alone: the lesion against the box's rim, or the boxed ellipsoid where intensity
    tells them apart nowhere."""
    if not ROOT.is_dir():
        pytest.skip(f"the shared lesions are not at {ROOT} (issue 17's data; ../shared/data/lesions)")
    from segforge.interactive.evaluation import box_prompt
    from segforge.interactive.session import InteractiveSession
    from segforge.interactive.simulation import dice

    folder = dict((case, folder) for folder, case in CASES)[name]
    image, reference = load_case(ROOT, folder, name)
    session = InteractiveSession(image, "random-walker")
    session.interact(box_prompt(image, reference))
    score = dice(session.mask, reference)
    print(f"\n{name}: box alone Dice {score:.3f} (was {before})")
    assert score >= least


def test_clicks_on_an_isointense_lesion_take_chunks_as_large_as_their_distance():
    """On the sarcoma's CT every later click leaks at every level; a 20 mm chunk per click left
    Dice at 0.614 after 5 clicks (the lesion is 365 mL). Sized by each click's distance to what
    the earlier ones found: 0.796, and no click lowers it."""
    if not ROOT.is_dir():
        pytest.skip(f"the shared lesions are not at {ROOT} (issue 17's data; ../shared/data/lesions)")
    folder = dict((case, folder) for folder, case in CASES)["sts001_ct"]
    image, reference = load_case(ROOT, folder, "sts001_ct")
    result = simulate_clicks(image, reference, clicks=5,
                             session_factory=random_walker_factory(RandomWalkerParameters()))
    print(f"\nsts001_ct: Dice {[round(d, 3) for d in result.dice]}")
    assert result.dice_after(5) >= 0.75
    assert all(b >= a - 0.05 for a, b in zip(result.dice, result.dice[1:])), result.dice


def test_a_box_parameter_is_chosen_by_the_box_alone_on_the_other_cases():
    from segforge.interactive.evaluation import box_score

    def result(case, box):
        return CaseResult(case, [0.5] * 5, box_dice=box)
    results = {"a": {"x": result("x", 0.1), "y": result("y", 0.9), "z": result("z", 0.9)},
               "b": {"x": result("x", 1.0), "y": result("y", 0.5), "z": result("z", 0.5)}}
    chosen = leave_one_case_out(results, box_score)
    assert chosen["x"][0] == "a" and chosen["x"][1].box_dice == 0.1
    assert chosen["y"][0] == "b"


def test_no_click_after_a_box_wrecks_ms07_flair():
    """Box, then 5 simulated clicks on ms07_flair (210 voxels): the first, positive click on a
    dim voxel at the lesion's rim took the tissue darker than the box's median as its piece and
    the walker filled the box (0.892 -> 0.451); now no click lowers Dice by more than 0.05 and
    the fifth ends at least where the box was."""
    if not ROOT.is_dir():
        pytest.skip(f"the shared lesions are not at {ROOT} (issue 17's data; ../shared/data/lesions)")
    from segforge.interactive.evaluation import box_prompt

    folder = dict((case, folder) for folder, case in CASES)["ms07_flair"]
    image, reference = load_case(ROOT, folder, "ms07_flair")
    result = simulate_clicks(image, reference, clicks=5, first=box_prompt(image, reference),
                             session_factory=random_walker_factory(RandomWalkerParameters()))
    print(f"\nms07_flair, box then clicks: Dice {[round(d, 3) for d in result.dice]}")
    assert all(b >= a - 0.05 for a, b in zip(result.dice, result.dice[1:])), result.dice
    assert result.dice[-1] >= result.dice[0]
