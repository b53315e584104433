"""Benchmark: our topology-preserving skeleton against Menten et al.'s, forward + backward, in the same run.

The peer is the published implementation of "A skeletonization algorithm for gradient-based
optimization" (Menten et al., ICCV 2023; github.com/martinmenten/skeletonization-for-gradient-based-optimization,
no licence file: it is never copied into this repository). Give the folder (or the file)
holding its ``skeletonize.py`` with ``--menten``; without it, one line says so and ours runs
alone.

Input, the same for both: a binary mask on an n^3 grid as a float tensor that requires
grad. Forward: the skeleton with the same number of thinning iterations for both
(``--iterations``, default 5 at 64^3 and 128^3, 10 at 256^3, as the peer was first measured
on this project's machines); ours also to convergence. Backward: of ``sum(skeleton * w)``
with a fixed random ``w``. Each side is warmed up once on a 24^3 input first; ours runs
``--repeats`` times (the median is reported), the peer once (it takes minutes).

Each (method, case, size) runs in a fresh process so that its peak memory is its own: on
CPU the peak resident set (VmHWM, reset once the input is built; ``resource.getrusage``
where it cannot be reset) less the resident set after the input was built (what the method
added); on CUDA ``torch.cuda.max_memory_allocated``. Both skeletons' Betti numbers
(components, loops, cavities; :func:`segforge.vessel.topology.betti_numbers`) are compared
with each other and with the input's.

Cases (``--cases``): ``tree`` (no loop) and ``rings`` (three tilted rings of vessel: three
components, three loops), so that "the same skeleton" is checked on holes too.

The peer's memory grows with voxels x iterations (3.7 GB at 64^3 with 5 iterations here);
where its expected need is more than the memory available it is skipped with one line
(``--peer-max-gb``), or, with ``--peer-forward-only``, its forward pass alone is run without
autograd (time and Betti numbers, no memory or backward comparison).

Run: ``python benchmarks/skeletonization.py --menten ~/.cache/segforge-peers/menten-skeletonization
[--sizes 128 256] [--device cpu|cuda] [--json out/skeletonization.json]``
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_ITERATIONS = {64: 5, 128: 5, 256: 10}
#: The peer's memory for forward + backward, per voxel and iteration (MB): 3,775 MB at 64^3 with 5
#: iterations on this project's 2-core CPU (Dec 2026). Its autograd graph grows with both.
PEER_MB_PER_VOXEL_ITERATION = 3775 / (64 ** 3 * 5)
CASES = ("tree", "rings")


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Start the peak resident set (VmHWM) again from now (Linux >= 4.0), so the input's own
    construction does not count; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _available_gb() -> float:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 ** 2
    return float("nan")


def vessel_tree(size: int):
    """A binary synthetic vessel tree on a size^3 grid (bool numpy array): no loop."""
    from segforge.vessel.synthetic import make_grid, random_tree
    grid = make_grid((size, size, size), spacing=(1.0, 1.0, 1.0))
    tree = random_tree(grid, generations=5, root_radius_mm=size / 16, root_length_mm=size * 0.5, seed=1)
    return tree.mask.array > 0


def vessel_rings(size: int):
    """Three rings of vessel (tori of tube radius size/24) tilted 0, 30 and 60 degrees out of
    plane, apart from each other: three components and three loops, which a skeleton must keep."""
    import numpy as np
    z, y, x = np.indices((size, size, size), dtype=float)
    mask = np.zeros((size, size, size), bool)
    for (cz, cy, cx), tilt in (((0.27, 0.5, 0.27), 0), ((0.5, 0.5, 0.73), 30), ((0.73, 0.5, 0.27), 60)):
        c, s = np.cos(np.radians(tilt)), np.sin(np.radians(tilt))
        dz, dy, dx = z - cz * size, y - cy * size, x - cx * size
        along, across = c * dz - s * dy, s * dz + c * dy
        mask |= np.hypot(np.hypot(across, dx) - size / 6, along) <= size / 24
    return mask


def case_mask(case: str, size: int):
    return vessel_tree(size) if case == "tree" else vessel_rings(size)


def load_peer(path: Path):
    """Menten et al.'s ``Skeletonize`` module class, loaded from its file (never vendored)."""
    file = path / "skeletonize.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location("menten_skeletonize", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Skeletonize


def measure(method: str, case: str, size: int, iterations: Optional[int], device: str, peer: Optional[str]) -> dict:
    """One run in this process: seconds forward and backward, memory, Betti numbers."""
    import torch

    from segforge.training.skeleton import topological_skeleton
    from segforge.vessel.topology import betti_numbers

    forward_only = method == "menten-forward"
    mask = case_mask(case, size)
    x = torch.from_numpy(mask).float()[None, None].to(device).requires_grad_(not forward_only)
    weights = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)).to(device)
    if method.startswith("menten"):
        operator = load_peer(Path(peer))(probabilistic=False, simple_point_detection="Boolean", num_iter=iterations)
        skeletonize = operator
    else:
        def skeletonize(values):
            return topological_skeleton(values, iterations)
    warm = torch.from_numpy(vessel_rings(24)).float()[None, None].to(device).requires_grad_(True)
    skeletonize(warm).sum().backward()  # first calls of each torch kernel, outside the timing
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reset = _reset_peak()
    baseline = _status_mb("VmRSS")
    clock = time.perf_counter()
    with torch.set_grad_enabled(not forward_only):
        skeleton = skeletonize(x)
    if device == "cuda":
        torch.cuda.synchronize()
    forward = time.perf_counter() - clock
    backward = None
    if not forward_only:
        clock = time.perf_counter()
        (skeleton * weights).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        backward = time.perf_counter() - clock
    if device == "cuda":
        memory = torch.cuda.max_memory_allocated() / 1024 ** 2
    else:
        peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory = peak - baseline
    binary = skeleton.detach().cpu().numpy()[0, 0] > 0.5
    return {"method": method, "case": case, "size": size, "iterations": iterations, "device": device,
            "forward_s": forward, "backward_s": backward, "memory_mb": memory,
            "grad_finite": None if forward_only else bool(torch.isfinite(x.grad).all()),
            "grad_nonzero": None if forward_only else int((x.grad != 0).sum()),
            "skeleton_voxels": int(binary.sum()), "betti_skeleton": list(betti_numbers(binary)),
            "betti_input": list(betti_numbers(mask)), "input_voxels": int(mask.sum())}


def run_child(method: str, case: str, size: int, iterations: Optional[int], device: str, peer: Optional[str]) -> dict:
    command = [sys.executable, __file__, "--child", method, "--cases", case, "--sizes", str(size), "--device", device,
               "--iterations", "none" if iterations is None else str(iterations)]
    if peer:
        command += ["--menten", peer]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"method": method, "case": case, "size": size, "iterations": iterations,
                "error": done.stderr.strip()[-400:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(result: dict) -> str:
    if "error" in result:
        return (f"{result['method']:>6} {result['case']:>5} {result['size']}^3 it={result['iterations']}: failed: "
                f"{result['error']}")
    backward = "   (none)" if result["backward_s"] is None else f"{result['backward_s']:7.2f} s"
    gradient = ("no backward: forward only, without autograd" if result["grad_finite"] is None else
                f"grad finite {result['grad_finite']}, non-zero at {result['grad_nonzero']} voxels")
    return (f"{result['method']:>6} {result['case']:>5} {result['size']}^3 it={str(result['iterations']):>4}: forward "
            f"{result['forward_s']:8.2f} s, backward {backward}, memory {result['memory_mb']:9.0f} MB; skeleton "
            f"{result['skeleton_voxels']} voxels, Betti {tuple(result['betti_skeleton'])} (input "
            f"{tuple(result['betti_input'])}); {gradient}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--menten", default=os.environ.get("SEGFORGE_MENTEN_SKELETONIZE"),
                        help="folder (or file) of Menten et al.'s skeletonize.py")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--iterations", default=None,
                        help="thinning iterations for both (default 5 at 128^3, 10 at 256^3); 'none' = to the end")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--peer-max-gb", type=float, default=None,
                        help="skip the peer where its expected memory exceeds this (default: memory available now)")
    parser.add_argument("--peer-forward-only", action="store_true",
                        help="where the peer's forward + backward does not fit, run its forward alone without autograd "
                             "(time and Betti numbers; it still takes minutes at 128^3 on a CPU)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of ours with the peer's iterations, the median reported (the peer runs once)")
    parser.add_argument("--peer-max-size", type=int, default=128,
                        help="the largest n^3 the peer runs at (256^3 takes it over ten minutes even forward only)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    def iterations_for(size: int) -> Optional[int]:
        if args.iterations is None:
            return DEFAULT_ITERATIONS.get(size, max(5, size // 25))
        return None if args.iterations == "none" else int(args.iterations)

    if args.child:
        size = args.sizes[0]
        print(json.dumps(measure(args.child, args.cases[0], size, iterations_for(size), args.device, args.menten)))
        return

    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, {_available_gb():.1f} GB available, "
          f"device {args.device}")
    peer = None
    if args.menten:
        path = Path(args.menten).expanduser()
        if (path / "skeletonize.py").is_file() or path.is_file():
            peer = str(path)
        else:
            print(f"Menten et al.'s skeletonize.py is not at {path}: the peer is skipped")
    else:
        print("Menten et al.'s code was not given (--menten PATH or SEGFORGE_MENTEN_SKELETONIZE): the peer is "
              "skipped; fetch github.com/martinmenten/skeletonization-for-gradient-based-optimization outside "
              "this repository and point --menten at it")
    results = []
    for size, case in itertools.product(args.sizes, args.cases):
        iterations = iterations_for(size)
        runs = [run_child("ours", case, size, iterations, args.device, None) for _ in range(args.repeats)]
        timed = [r for r in runs if "error" not in r]
        rows = [sorted(timed, key=lambda r: r["forward_s"] + r["backward_s"])[len(timed) // 2] if timed else runs[0]]
        print(_row(rows[-1]) + (f" (median of {len(timed)} runs)" if len(timed) > 1 else ""), flush=True)
        rows.append(run_child("ours", case, size, None, args.device, None))
        print(_row(rows[-1]), flush=True)
        if peer and size > args.peer_max_size:
            print(f"  menten {case:>5} {size}^3: skipped (--peer-max-size {args.peer_max_size})")
        elif peer:
            expected = PEER_MB_PER_VOXEL_ITERATION * size ** 3 * iterations / 1024
            limit = args.peer_max_gb if args.peer_max_gb is not None else _available_gb()
            too_big = args.device == "cpu" and expected > limit
            if too_big:
                print(f"  menten {case:>5} {size}^3: forward + backward skipped: it would need about {expected:.0f} GB "
                      f"(3.7 GB at 64^3 with 5 iterations, growing with voxels x iterations), {limit:.0f} GB available")
            if too_big and args.peer_forward_only:
                rows.append(run_child("menten-forward", case, size, iterations, args.device, peer))
                print(_row(rows[-1]), flush=True)
                ours, theirs = rows[0], rows[-1]
                if "error" not in ours and "error" not in theirs:
                    speed = theirs["forward_s"] / ours["forward_s"]
                    print(f"   {case} {size}^3, {iterations} iterations, forward only: ours is {speed:.0f}x faster; "
                          f"same components, loops and cavities: {ours['betti_skeleton'] == theirs['betti_skeleton']}")
            elif not too_big:
                rows.append(run_child("menten", case, size, iterations, args.device, peer))
                print(_row(rows[-1]), flush=True)
                ours, theirs = rows[0], rows[-1]
                if "error" not in ours and "error" not in theirs:
                    same = ours["betti_skeleton"] == theirs["betti_skeleton"]
                    speed = (theirs["forward_s"] + theirs["backward_s"]) / (ours["forward_s"] + ours["backward_s"])
                    print(f"   {case} {size}^3, {iterations} iterations: ours is {speed:.0f}x faster (forward + "
                          f"backward), with {ours['memory_mb'] / max(theirs['memory_mb'], 1e-9):.3f} of the peer's "
                          f"memory; same components, loops and cavities: {same}")
        results.extend(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
