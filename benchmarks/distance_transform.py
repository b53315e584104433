"""Benchmark: the exact distance transform SegForge uses (``edt``) against scipy's, in the same run.

The case is what made it matter: the interactive backend's shell around a 40 mm lesion's
piece on a 0.7 x 0.7 x 2.5 mm grid (a 36 x 130 x 130 box), transformed dozens of times per
click. Reported: median seconds of each over ``--repeats`` runs, the ratio, and the largest
difference between the two (float32 against float64 distances).

Run: ``python benchmarks/distance_transform.py [--repeats 20]``
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segforge.distance import distance_mm


def lesion_box(radius_mm: float = 40.0, spacing_kji=(2.5, 0.7, 0.7), pad_mm: float = 6.0) -> np.ndarray:
    """A ball of ``radius_mm`` in its bounding box grown by ``pad_mm`` (True inside)."""
    reach = [int(np.ceil((radius_mm + pad_mm) / s)) for s in spacing_kji]
    axes = [(np.arange(-r, r + 1) * s) for r, s in zip(reach, spacing_kji)]
    k, j, i = np.meshgrid(*axes, indexing="ij")
    return k ** 2 + j ** 2 + i ** 2 <= radius_mm ** 2


def median_seconds(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        call()
        times.append(time.perf_counter() - clock)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    spacing = (2.5, 0.7, 0.7)
    outside = ~lesion_box(spacing_kji=spacing)
    ours = median_seconds(lambda: distance_mm(outside, spacing), args.repeats)
    peer = median_seconds(lambda: ndimage.distance_transform_edt(outside, sampling=spacing), args.repeats)
    difference = float(np.abs(distance_mm(outside, spacing) - ndimage.distance_transform_edt(outside, sampling=spacing)
                              ).max())
    print(f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; box {outside.shape} ({outside.size:,} voxels)")
    print(f"segforge.distance (edt): {ours * 1e3:.1f} ms; scipy distance_transform_edt: {peer * 1e3:.1f} ms; "
          f"{peer / ours:.1f}x; largest difference {difference:.1e} mm")


if __name__ == "__main__":
    main()
