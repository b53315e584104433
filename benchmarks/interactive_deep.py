"""Benchmark: seconds per interaction of SegForge's nnInteractive backend vs the nnInteractive
package called directly, same weights, same image, same prompts, in the same run.

Ours: :class:`segforge.interactive.session.InteractiveSession` with ``backend="nninteractive"``
(prompts in LPS mm turned into voxels, the package fed through the adapter on a helper thread
with Cancel polling, the changed box diffed for undo). Peer: ``nnInteractiveInferenceSession``
used as its README shows (array in, voxel prompts, target buffer read back). Both sessions
are built and given the image before the clock starts; each interaction is timed alone.
Reported: median and per-prompt seconds for each, the ratio ours / package (the adapter's
overhead; 1.0 is none), and the voxels where the two masks differ (expected 0).

Weights: ``--model FOLDER`` (e.g. the published ``nnInteractive_v1.0`` folder on a GPU
machine), else a model folder built here with random weights and the published network's
scale cut down to what a CPU runs in seconds (PlainConvUNet, ``--features``, ``--patch``).
Image: a synthetic CT-like volume of ``--shape`` (k j i) voxels at 0.8 x 0.8 x 2.5 mm.

Run: ``python benchmarks/interactive_deep.py [--device cpu|cuda] [--model DIR] [--repeats 3]``
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "Testing"))

from nninteractive_helpers import build_tiny_model_folder  # noqa: E402

from segforge.image import Image  # noqa: E402
from segforge.interactive import nninteractive_backend as nni  # noqa: E402
from segforge.interactive.prompts import BoxPrompt, PointPrompt, ScribblePrompt, to_voxels  # noqa: E402
from segforge.interactive.session import InteractiveSession  # noqa: E402


def make_image(shape: tuple[int, int, int]) -> Image:
    rng = np.random.default_rng(0)
    array = (rng.normal(0, 30, shape) + 40).astype(np.float32)
    k, j, i = (np.asarray(shape) // 2)
    kk, jj, ii = np.ogrid[:shape[0], :shape[1], :shape[2]]
    lesion = ((kk - k) * 2.5 / 20) ** 2 + ((jj - j) * 0.8 / 25) ** 2 + ((ii - i) * 0.8 / 22) ** 2 <= 1
    array[lesion] += 80
    return Image(array, spacing=(0.8, 0.8, 2.5), origin_lps=(-100.0, -120.0, 30.0))


def prompts(image: Image) -> list:
    shape = np.asarray(image.array.shape)
    centre = shape // 2

    def at(kji) -> tuple[float, float, float]:
        ijk = np.append(np.asarray(kji, float)[::-1], 1.0)
        return tuple(float(v) for v in (image.ijk_to_lps() @ ijk)[:3])

    half = np.maximum(shape // 5, 2)
    lo, hi = at(centre - half), at(centre + half)
    rows = range(centre[1] - half[1] // 2, centre[1] + half[1] // 2)
    stroke = np.array([at((centre[0], j, centre[2] + 2)) for j in rows])
    return [PointPrompt(at(centre)),
            PointPrompt(at(centre + [0, half[1] // 2, half[2] // 2]), positive=False),
            BoxPrompt(tuple(np.minimum(lo, hi)), tuple(np.maximum(lo, hi))),
            ScribblePrompt(stroke),
            PointPrompt(at(centre + [1, -half[1] // 3, 0]))]


def run_ours(image: Image, device: str, chosen: list) -> tuple[list[float], np.ndarray]:
    session = InteractiveSession(image, backend="nninteractive", device=device)
    session._backend._session._finish_preprocessing_and_initialize_interactions()  # image ready, as for the peer
    times = []
    for prompt in chosen:
        start = time.perf_counter()
        session.interact(prompt)
        times.append(time.perf_counter() - start)
    return times, session.mask.copy()


def run_package(folder: Path, image: Image, device: str, chosen: list) -> tuple[list[float], np.ndarray]:
    import torch

    session_class = nni._package()
    session = session_class(device=torch.device(device), torch_n_threads=torch.get_num_threads())
    session.initialize_from_trained_model_folder(str(folder), None)
    session.set_image(image.array[None])
    target = np.zeros(image.array.shape, np.uint8)
    session.set_target_buffer(target)
    session._finish_preprocessing_and_initialize_interactions()
    times = []
    for prompt in chosen:
        voxels = to_voxels(prompt, image)
        start = time.perf_counter()
        if isinstance(prompt, PointPrompt):
            session.add_point_interaction(voxels.kji, voxels.positive)
        elif isinstance(prompt, BoxPrompt):
            session.add_bbox_interaction(nni.package_box(voxels, bool(session.supported_interactions.get("bbox3d"))),
                                         voxels.positive)
        else:
            painted, bounds = nni.scribble_patch(voxels)
            session.add_scribble_interaction(painted, voxels.positive, interaction_bbox=bounds)
        times.append(time.perf_counter() - start)
    return times, target.copy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--model", type=Path, help="an nnInteractive model folder (default: built here)")
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 160, 160), help="image size, k j i")
    parser.add_argument("--patch", type=int, nargs=3, default=(64, 96, 96), help="patch of the built model")
    parser.add_argument("--features", type=int, nargs="+", default=(16, 32, 64, 128, 160))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model or build_tiny_model_folder(Path(scratch) / "nnInteractive_bench", args.patch,
                                                       args.features)
        os.environ[nni.MODEL_ENV] = str(folder)
        image = make_image(tuple(args.shape))
        chosen = prompts(image)
        device = nni._torch_device(args.device)[0]
        run_ours(image, device, chosen[:1])  # warm-up: loads the model, first passes
        run_package(folder, image, device, chosen[:1])
        ours_runs, package_runs, differing = [], [], []
        for _ in range(args.repeats):  # alternate, so drift hits both alike
            ours_times, ours_mask = run_ours(image, device, chosen)
            package_times, package_mask = run_package(folder, image, device, chosen)
            ours_runs.append(ours_times)
            package_runs.append(package_times)
            differing.append(int(np.count_nonzero(ours_mask != package_mask)))
    per_prompt_ours = [statistics.median(r[n] for r in ours_runs) for n in range(len(chosen))]
    per_prompt_package = [statistics.median(r[n] for r in package_runs) for n in range(len(chosen))]
    ours_s = statistics.median(t for r in ours_runs for t in r)
    package_s = statistics.median(t for r in package_runs for t in r)
    result = {
        "benchmark": "interactive_deep", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "model": str(args.model) if args.model
        else f"built: PlainConvUNet {list(args.features)}, patch {list(args.patch)}",
        "image_kji": list(args.shape), "prompts": [type(p).__name__ for p in chosen], "repeats": args.repeats,
        "ours_s_per_interaction": round(ours_s, 4), "package_s_per_interaction": round(package_s, 4),
        "ratio_ours_over_package": round(ours_s / package_s, 3),
        "ours_s_per_prompt": [round(t, 4) for t in per_prompt_ours],
        "package_s_per_prompt": [round(t, 4) for t in per_prompt_package],
        "voxels_differing_per_repeat": differing,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
