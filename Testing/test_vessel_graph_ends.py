"""A free end is placed without cutting across the vessel's own curve.

Found by ``benchmarks/vessel_vmtk.py`` on TotalSegmentator's aorta (root to the cut): the
aortic root's end faces down, and every point of the descending aorta lies beyond that end's
plane, so placing the end dropped them and the root-to-cut line cut straight across 140 mm
of the aorta (5 % of it outside the segment). The same shape, a J whose short limb ends
facing its long limb's far part, on an oblique anisotropic grid with a known axis.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from conftest import rotation
from segforge.vessel.graph import centerline_graph
from segforge.vessel.radius import lps_to_kji
from segforge.vessel.synthetic import TrueBranch, from_centerlines, make_grid


def _j_vessel(turn: np.ndarray, center: np.ndarray) -> tuple[np.ndarray, object]:
    """Axis (LPS) and mask of a J: a curved long limb up, an arch, a short limb down to a rounded end."""
    t = np.linspace(np.pi / 2, 0, 160)
    lower = np.column_stack([-45 + 30 * np.cos(t), np.zeros_like(t), -20 - 30 * np.sin(t)])  # (-45, -50) to (-15, -20)
    up = np.column_stack([np.full(100, -15.0), np.zeros(100), np.linspace(-20, 0, 100)])
    theta = np.linspace(np.pi, 0, 236)
    arch = np.column_stack([15 * np.cos(theta), np.zeros_like(theta), 15 * np.sin(theta)])
    short = np.column_stack([np.full(100, 15.0), np.zeros(100), np.linspace(0, -20, 100)])
    local = np.vstack([lower, up[1:], arch[1:], short[1:]]) + [15.0, 0.0, 17.5]  # centred
    axis = local @ turn.T + center
    grid = make_grid((110, 110, 110), (0.7, 0.9, 1.3), direction_lps=rotation(15, -20, 25), center_lps=center)
    return axis, from_centerlines([TrueBranch(0, None, axis, np.full(len(axis), 5.0))], grid)


def test_the_end_of_a_j_keeps_the_far_part_of_its_own_vessel():
    center = np.array([-31.0, 12.5, 160.0])
    axis, tree = _j_vessel(rotation(10, 35, -15), center)
    mask = np.asarray(tree.mask.array)
    assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
                or mask[..., 0].any() or mask[..., -1].any())  # both ends rounded, inside the grid
    graph = centerline_graph(tree.mask)
    assert len(graph.branches) == 1
    points = graph.branches[0].points_lps
    # every true axis point has our line near it, and none of ours leaves the lumen
    assert cKDTree(points).query(axis)[0].max() < 1.0
    kji = np.round(lps_to_kji(tree.mask, points)).astype(int)
    assert np.all(mask[tuple(kji.T)] != 0)
    true_length = np.linalg.norm(np.diff(axis, axis=0), axis=1).sum()
    assert abs(graph.branches[0].length_mm - true_length) < 5.0
