"""Benchmark: the size of an interactive session's segment after each click, on a big CT grid.

SegInteractive shows the segment's voxels and mL after every click and undo. Ours:
:func:`segforge.mrml.segments.segment_voxel_count`, which counts in the segment's labelmap
when it lies on the volume's grid. Peer: counting the segment resampled onto the volume's
grid by Slicer's resampler (``mask_from_segment``, what the status did before). Both on one
lesion written into a 512x512x300 grid the way a session writes it (oblique grid, 0.7 x 0.7
x 1.5 mm), in the same run; reports the median of each, the ratio peer / ours, and that
the counts agree.

Run: ``python benchmarks/segment_voxel_count.py [--shape 300 512 512] [--repeats 7] [--json out.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segforge.image import Image
from segforge.mrml import create_headless_slicer, new_segmentation_node, volume_node_from_image
from segforge.mrml.segments import change_segment_voxels, mask_from_segment, segment_voxel_count


def oblique_grid(shape_kji: tuple[int, int, int]) -> Image:
    angle = np.deg2rad(12)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return Image(np.zeros(shape_kji, np.int16), (0.7, 0.7, 1.5), (-180.0, -200.0, -300.0), direction)


def median_ms(call, repeats: int) -> tuple[float, int]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), int(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("K", "J", "I"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    slicer_app = create_headless_slicer(install=True)
    grid = oblique_grid(tuple(args.shape))
    volume = volume_node_from_image(grid, "CT")
    segmentation = new_segmentation_node(volume, "Session")
    segment_id = segmentation.GetSegmentation().AddEmptySegment("", "lesion")
    k, j, i = np.indices((40, 60, 60))
    ball = (k - 20) ** 2 * (1.5 / 0.7) ** 2 + (j - 30) ** 2 + (i - 30) ** 2 < 28 ** 2  # a 40 mm lesion
    centre = np.array(args.shape) // 2
    change_segment_voxels(segmentation, segment_id, tuple(centre - (20, 30, 30)), ball, np.zeros_like(ball),
                          grid.ijk_to_ras())

    ours_ms, ours = median_ms(lambda: segment_voxel_count(segmentation, segment_id, volume), args.repeats)
    peer_ms, peer = median_ms(lambda: np.count_nonzero(mask_from_segment(segmentation, segment_id, volume).array),
                              args.repeats)
    slicer_app.close()
    result = {"shape_kji": list(args.shape), "lesion_voxels": int(ball.sum()), "ours_ms": round(ours_ms, 2),
              "peer_ms": round(peer_ms, 2), "ratio_peer_over_ours": round(peer_ms / ours_ms, 1),
              "counts_agree": ours == peer == int(ball.sum()), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["counts_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
