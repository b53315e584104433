"""Benchmark: training throughput of `segforge train vessel` (patches per second), with and
without the skeleton-recall term, on domain-randomised synthetic volumes.

No peer runs here: the figure is what a user can expect per step on this machine. Steps
are timed after two warm-up steps; validation is left out of the timing (it runs once at
the end).

Run: ``python benchmarks/training_throughput.py [--steps 10] [--patch 64] [--batch 2] [--device cpu]``
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from segforge.training.synthetic_data import randomised_case
from segforge.training.train import TrainingConfig, prepare_pair, train


def _clock(times: list[float]):
    """A progress callback that notes when each step ended."""
    def report(fraction: float, message: str) -> None:
        times.append(time.perf_counter())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cases = [randomised_case(seed, extent_mm=(64.0,) * 3) for seed in range(3)]
    pairs = [prepare_pair(c.image, c.label) for c in cases]
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}, device {args.device}; volumes {[p.image.shape for p in pairs]}")
    for weight in (0.0, 1.0):
        times: list[float] = []
        clock = _clock(times)

        config = TrainingConfig(steps=args.steps + 2, patch_size=(args.patch,) * 3, batch_size=args.batch,
                                skeleton_recall_weight=weight, validate_every=10 ** 6, checkpoint_every=10 ** 6,
                                device=args.device)
        with tempfile.TemporaryDirectory() as folder:
            train(pairs[:2], pairs[2:], config, Path(folder), clock)
        steps = times[-2] - times[1]  # steps 3 .. last-1 (the last one includes validation)
        per_second = (len(times) - 3) * args.batch / steps
        print(f"patch {args.patch}^3, batch {args.batch}, skeleton recall weight {weight}: "
              f"{per_second:.2f} patches/s ({steps / (len(times) - 3):.2f} s per step)")


if __name__ == "__main__":
    main()
