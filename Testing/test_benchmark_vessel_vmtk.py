"""The VMTK benchmark's own logic, so it does not rot between the runs that time it.

``benchmarks/vessel_vmtk.py`` is run by hand (it times things, and its VMTK peer needs a
Python 3.12 venv). What can silently go wrong without a run is tested here, fast and with no
timing asserts: the endpoint rule (ends of the longest geodesic, wider end first) on an
oblique, anisotropic grid and on the real CE-MRA mask; reading the source and targets of
VMTK's reference file (RAS in the file); the synthetic thick tube; the JSON the benchmark
writes when it runs ours alone. The peer itself is run on the CE-MRA case only where its venv
already exists (it is made by the benchmark, not by the tests).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, rotation
from segforge.image_io import read_image
from segforge.vessel.radius import lps_to_kji
from segforge.vessel.synthetic import BranchSpec, build_tree, make_grid

sys.path.insert(0, str(REPO / "benchmarks"))
import vessel_vmtk as bench


def _tapered_tube():
    """A bent tube, radius 4 mm at its start and 2 mm at its end, on an oblique 0.6 x 0.8 x 1.4 mm grid."""
    center = (12.5, -30.0, 47.0)
    grid = make_grid((64, 40, 40), (0.6, 0.8, 1.4), direction_lps=rotation(20, -15, 30), center_lps=center)
    spec = BranchSpec((-24.0, 0.0, 0.0), (0.0, 8.0, 3.0), (24.0, 0.0, 0.0), 4.0, 2.0)
    return build_tree([spec], grid, rotation=rotation(20, -5, 35), center_lps=center)


def test_longest_geodesic_ends_are_the_tube_ends_wider_end_first():
    tree = _tapered_tube()
    axis = tree.branches[0].points_lps
    source, target, length = bench.longest_geodesic_ends(tree.mask)
    # the geodesic runs cap to cap: each end lies beyond its axis end by at most that end's radius
    assert np.linalg.norm(source - axis[0]) <= 4.0 + 1.5
    assert np.linalg.norm(target - axis[-1]) <= 2.0 + 1.5
    axis_length = np.linalg.norm(np.diff(axis, axis=0), axis=1).sum()
    # a path along 26-neighbour voxel steps is up to ~10-15 % longer than the straight line it follows
    assert axis_length < length < 1.25 * (axis_length + 4.0 + 2.0)
    inside = np.round(lps_to_kji(tree.mask, np.array([source, target]))).astype(int)
    assert np.all(np.asarray(tree.mask.array)[tuple(inside.T)] == 1)


def test_longest_geodesic_ends_keep_the_largest_component():
    tree = _tapered_tube()
    array = np.asarray(tree.mask.array).copy()
    array[:3, :3, :3] = 1  # a speck far from the tube
    source, target, _ = bench.longest_geodesic_ends(tree.mask.with_array(array))
    axis = tree.branches[0].points_lps
    assert np.linalg.norm(source - axis[0]) <= 5.5 and np.linalg.norm(target - axis[-1]) <= 3.5


def test_reference_ends_and_the_rule_on_the_real_cemra_mask():
    source, targets = bench.reference_ends(bench.CEMRA_REFERENCE)
    assert targets.shape == (2, 3)
    mask = read_image(bench.CEMRA_MASK)
    kji = np.round(lps_to_kji(mask, np.vstack([source, targets]))).astype(int)
    assert np.all(np.asarray(mask.array)[tuple(kji.T)] != 0)  # RAS in the file, LPS here: inside the mask
    picked_source, picked_target, _ = bench.longest_geodesic_ends(mask)
    # the rule picks the aorta (wider) as the source and one iliac as the target, as VMTK's reference
    # does; the picks lie on the lumen's rim, the reference's ends on the axis: within a radius
    ends = np.vstack([source, targets])
    assert np.argmin(np.linalg.norm(ends - picked_source, axis=1)) == 0
    assert np.argmin(np.linalg.norm(ends - picked_target, axis=1)) in (1, 2)
    assert np.linalg.norm(picked_source - source) < 10.0
    assert min(np.linalg.norm(targets - picked_target, axis=1)) < 10.0


def test_outside_fraction_tells_a_chord_from_the_axis():
    tree = _tapered_tube()
    axis = tree.branches[0].points_lps
    assert bench.outside_fraction(tree.mask, axis) == 0.0
    # the chord of the bent tube leaves it in the middle (the bend's sagitta, 4 mm, beats the radius there)
    chord = axis[0] + np.linspace(0, 1, 101)[:, None] * (axis[-1] - axis[0])
    far = axis + 50.0 * tree.mask.direction_lps[:, 0]  # outside the grid: counted as outside
    assert bench.outside_fraction(tree.mask, far) == 1.0
    assert 0.05 < bench.outside_fraction(tree.mask, chord) < 0.9
    assert bench.outside_fraction(tree.mask, np.zeros((0, 3))) is None


def test_thick_tube_is_the_size_asked_with_its_axis_inside():
    mask, axis, radii = bench.thick_tube(spacing_mm=1.0)
    count = int(np.asarray(mask.array).sum())
    volume = np.pi * radii[0] ** 2 * np.linalg.norm(np.diff(axis, axis=0), axis=1).sum() + 4 / 3 * np.pi * radii[0] ** 3
    assert abs(count - volume) / volume < 0.02  # 1 mm voxels: the count is the tube's volume in mm^3
    kji = np.round(lps_to_kji(mask, axis)).astype(int)
    assert np.all(np.asarray(mask.array)[tuple(kji.T)] == 1)
    array = np.asarray(mask.array)
    assert not (array[0].any() or array[-1].any() or array[:, 0].any() or array[:, -1].any()
                or array[:, :, 0].any() or array[:, :, -1].any())  # closed: the surface needs no padding


def test_ours_alone_writes_the_json(tmp_path: Path):
    out = tmp_path / "report.json"
    report = bench.main(["--no-vmtk", "--cases", "cemra", "--repeats", "0", "--json", str(out)])
    written = json.loads(out.read_text())
    assert written == report
    assert written["vmtk_skipped"] == "--no-vmtk given" and written["machine"] and written["date"]
    case = written["cases"]["cemra"]
    assert case["vmtk"] is None and case["voxels"] == 11590
    assert case["ours"]["median_s"]["total"] > 0 and case["ours"]["branches"] >= 3
    assert case["accuracy"]["reference_to_ours"]["mean_distance_mm"] < 1.0
    assert case["accuracy"]["ours_outside_mask"] < 0.02
    assert len(case["targets_lps"]) == 2


def _peer_python():
    venv = bench.default_vmtk_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no VMTK venv at {venv} (benchmarks/vessel_vmtk.py makes it on its first run)")
    return python


def test_vmtk_peer_reproduces_the_reference_on_the_cemra_mask(tmp_path: Path):
    """The peer's coordinates end to end: mask to RAS, VMTK, back to LPS lands on VMTK's reference."""
    python = _peer_python()
    case = bench.make_cases(["cemra"])[0]
    answer = bench.run_vmtk(python, case, 0, tmp_path)
    assert answer["branches"] == 3 and len(answer["length_mm"]) == 2
    assert answer["decimation"].startswith("FastQuadric") and answer["decimated_points"] <= 5050
    against = bench.compare(case.reference, answer["dense"], case.reference_keep)
    assert against["mean_distance_mm"] < 0.5 and against["radius_median_abs_diff_mm"] < 0.2
