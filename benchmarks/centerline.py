"""Benchmark: centerline graph with radii, ours vs kimimaro's TEASAR, in the same run.

Two inputs:
- a synthetic 256^3 vessel tree at 1 mm (``random_tree``: 2^6 - 1 branches planned, root
  radius 9 mm) whose true centerlines and radii are known: time and accuracy;
- VMTK's real CE-MRA aorto-iliac mask (``Resources/SampleData/vmtk_aorta_cemra``): accuracy
  against VMTK's reference centerline and ``MaximumInscribedSphereRadius`` (issue 3's targets:
  mean distance <= 1 mm, >= 95 % within 2 mm, radius median error <= 0.5 mm).

Ours: :func:`segforge.vessel.graph.centerline_graph` (skeleton, graph, pruning, radii).
Peer: ``kimimaro.skeletonize`` (TEASAR with its distance transform; GPL-3.0, so a benchmark
peer only: never imported by ``segforge``). Reported: median wall time over ``--repeats``
runs after one warm-up, the first call's time, the ratio peer / ours (target >= 3), and
accuracy. If kimimaro is not installed, ours runs alone and the script says so.

Run: ``python benchmarks/centerline.py [--repeats 3] [--size 256]``
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "Testing"))

from segforge.image import Image  # noqa: E402
from segforge.image_io import read_image  # noqa: E402
from segforge.vessel.graph import centerline_graph  # noqa: E402
from segforge.vessel.synthetic import make_grid, random_tree  # noqa: E402
from test_vessel_vmtk_accuracy import CENTERLINE, MASK, _box, _inside, _reference, densify  # noqa: E402

#: TEASAR parameters for vessels in mm: invalidation radius = scale * radius + const (mm).
#: kimimaro's defaults (const 300) are nanometres for electron microscopy; these were the
#: most accurate of scale 1.0-2.0 x const 0.5-4 mm against the VMTK reference.
TEASAR = {"scale": 1.5, "const": 1.0, "pdrf_scale": 100000, "pdrf_exponent": 4}

Centerline = tuple[np.ndarray, np.ndarray, int]  # dense points (LPS mm), radii (mm), branch count


def ours(mask: Image) -> Centerline:
    graph = centerline_graph(mask)
    points, radii = densify([(b.points_lps, b.radii_mm) for b in graph.branches])
    return points, radii, len(graph.branches)


def kimimaro_centerline(mask: Image) -> Centerline:
    import kimimaro
    labels = np.ascontiguousarray(np.transpose(np.asarray(mask.array) != 0, (2, 1, 0))).astype(np.uint32)
    skeletons = kimimaro.skeletonize(labels, teasar_params=TEASAR, anisotropy=mask.spacing, dust_threshold=0,
                                     fix_branching=True, fix_borders=True, progress=False, parallel=1)
    segments = []
    branches = 0
    matrix = mask.ijk_to_lps()
    for skeleton in skeletons.values():
        ijk = skeleton.vertices / np.asarray(mask.spacing)
        lps = ijk @ matrix[:3, :3].T + matrix[:3, 3]
        for a, b in skeleton.edges:
            segments.append((lps[[a, b]], skeleton.radius[[a, b]].astype(float)))
        degree = np.bincount(skeleton.edges.ravel(), minlength=len(lps))
        nodes = int(np.sum(degree != 2))
        branches += max(len(skeleton.edges) - (len(lps) - nodes), 0)  # edges between nodes, chains merged
    points, radii = densify(segments)
    return points, radii, branches




def accuracy(result: Centerline, truth: np.ndarray, truth_radii: np.ndarray,
             keep: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> dict:
    points, radii, branches = result
    if keep is not None:
        points, radii = points[keep(points)], radii[keep(points)]
    distance, nearest = cKDTree(points).query(truth)
    back = cKDTree(truth).query(points)[0]
    return {"mean_distance_mm": float(distance.mean()), "within_2mm": float(np.mean(distance <= 2.0)),
            "within_1mm": float(np.mean(distance <= 1.0)), "spurious_p95_mm": float(np.percentile(back, 95)),
            "radius_median_abs_error_mm": float(np.median(np.abs(radii[nearest] - truth_radii))),
            "branches": branches}


def timed(function: Callable[[Image], Centerline], mask: Image, repeats: int) -> tuple[Centerline, dict]:
    started = time.perf_counter()
    result = function(mask)
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(mask)
        times.append(time.perf_counter() - started)
    return result, {"first_s": first, "median_s": statistics.median(times), "all_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    try:
        import kimimaro  # noqa: F401
        peers = {"ours": ours, "kimimaro": kimimaro_centerline}
    except ImportError:
        print("kimimaro is not installed (pip install kimimaro): running ours alone")
        peers = {"ours": ours}

    tree = random_tree(make_grid((args.size,) * 3, (1.0, 1.0, 1.0)), generations=6, seed=2,
                       root_radius_mm=9.0, root_length_mm=80.0, shrink=0.75)
    truth = np.concatenate([b.points_lps for b in tree.branches])
    truth_radii = np.concatenate([b.radii_mm for b in tree.branches])
    mask = read_image(MASK)
    reference, reference_radii = _reference(CENTERLINE)
    box = _box(mask, 3.0)
    keep_ref = _inside(reference, box)

    report = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
                         f"Python {platform.python_version()}",
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "synthetic": {"shape": list(tree.mask.array.shape), "voxels_set": int(tree.mask.array.sum()),
                            "true_branches": len(tree.branches)},
              "teasar_params": TEASAR}
    for name, function in peers.items():
        result, times = timed(function, tree.mask, args.repeats)
        vmtk, vmtk_times = timed(function, mask, args.repeats)
        report[name] = {"synthetic_256": {**times, **accuracy(result, truth, truth_radii)},
                        "vmtk_aorta": {**vmtk_times, **accuracy(vmtk, reference[keep_ref], reference_radii[keep_ref],
                                                                  lambda p: _inside(p, box))}}
    print(json.dumps(report, indent=1))
    print()
    print(f"{'':<10} {'256^3 s':>8} {'first s':>8} {'mean mm':>8} {'<=1mm':>6} {'r err':>6} {'branches':>9}"
          f" | {'VMTK mm':>8} {'<=2mm':>6} {'r err':>6}")
    for name in peers:
        s, v = report[name]["synthetic_256"], report[name]["vmtk_aorta"]
        print(f"{name:<10} {s['median_s']:8.2f} {s['first_s']:8.2f} {s['mean_distance_mm']:8.3f} "
              f"{100 * s['within_1mm']:5.1f}% {s['radius_median_abs_error_mm']:6.3f} "
              f"{s['branches']:>4}/{len(tree.branches):<4} | {v['mean_distance_mm']:8.3f} "
              f"{100 * v['within_2mm']:5.1f}% {v['radius_median_abs_error_mm']:6.3f}")
    if "kimimaro" in report:
        ratio = report["kimimaro"]["synthetic_256"]["median_s"] / report["ours"]["synthetic_256"]["median_s"]
        print(f"kimimaro / ours on 256^3: {ratio:.1f}x (target >= 3x)")


if __name__ == "__main__":
    main()
