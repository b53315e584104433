"""Benchmark: the whole vessel workflow on a 256^3 volume, CPU (target: under 10 s).

Vesselness -> mask -> centerline graph -> radii -> stenoses -> surface, through
:func:`segforge.vessel.pipeline.run_vessel_pipeline`, on a synthetic 256^3 CT-like volume
(a 1 mm random vessel tree at 500 HU over 100 HU, Gaussian noise) whose true tree is known.
Reports each stage's time, the total, the process's peak resident memory, and how many of
the true branches came out. (No single peer runs this whole chain; the per-stage peers are
in ``vesselness.py`` and ``centerline.py``.)

Run: ``python benchmarks/vessel_pipeline.py [--size 256] [--device cpu]``
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segforge.image import Image
from segforge.vessel.parameters import VesselMaskParameters
from segforge.vessel.pipeline import VesselPipelineParameters, run_vessel_pipeline
from segforge.vessel.synthetic import make_grid, random_tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tree = random_tree(make_grid((args.size,) * 3, (1.0, 1.0, 1.0)), generations=6, root_radius_mm=9.0, seed=0)
    noise = np.random.default_rng(0).normal(0, 25, tree.mask.array.shape).astype(np.float32)
    image = tree.mask.with_array((tree.mask.array.astype(np.float32) * 400 + 100 + noise).astype(np.int16))
    del noise
    parameters = VesselPipelineParameters(mask=VesselMaskParameters(
        min_radius_mm=1.5, max_radius_mm=9.0, scales=3, threshold=0.3, low_threshold=0.15,
        largest_component=True, device=args.device))
    warm_up = Image(image.array[96:160, 96:160, 96:160].copy(), image.spacing)
    run_vessel_pipeline(warm_up, parameters)  # loads torch and warms the kernels, not timed
    started = time.perf_counter()
    result = run_vessel_pipeline(image, parameters)
    total = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"benchmark": "vessel_pipeline", "size": args.size, "device": args.device,
              "seconds": {**{k: round(v, 3) for k, v in result.seconds.items()}, "total": round(total, 3)},
              "peak_rss_mib": round(peak_mib), "volume_mib": round(image.array.nbytes / 2**20),
              "true_branches": len(tree.branches), "found_branches": len(result.graph.branches),
              "stenoses_reported": len(result.stenoses.findings),
              "machine": f"{platform.machine()} {platform.python_version()}", "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
