"""Benchmark: seconds per interaction of SegInteractive's default backend, and what a click sends.

1. **Engine, by region size** — synthetic round lesions of radius 5 to 40 mm in a
   256x256x64 CT-like volume (0.7x0.7x2.5 mm), five simulated clicks each, seconds per
   click of ``random-walker``; the peer is scikit-image's ``random_walker`` (mode ``cg_j``,
   the library implementation of the same family) solving one click's region with the
   same seeds: a lesion model-free walker, as a yardstick for the solver's cost.
2. **Real lesions** — the pyradiomics lung nodule (CT) and brain lesion (MR), full images
   from ``../shared/data`` when present (else the test crops), ten simulated clicks.
3. **Through the worker** — a :class:`~segforge.worker.interactive_client.RemoteSession` on a real
   worker process: seconds per click as the GUI sees it (submit, poll, result), and image
   bytes sent at the first and at the second click. Peer: sending the image with every
   click (what MONAI Label's and SegmentWithSAM's Slicer clients do): a new session per click.

Run: ``python benchmarks/interactive_latency.py [--json out.json]``
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segforge.image import Image  # noqa: E402
from segforge.image_io import read_image  # noqa: E402
from segforge.interactive.prompts import PointPrompt  # noqa: E402
from segforge.interactive.simulation import simulate_clicks, voxel_center_lps  # noqa: E402

SPACING = (0.7, 0.7, 2.5)
SHARED = REPO.parent / "shared" / "data" / "lesions" / "pyradiomics"
CROPS = REPO / "Testing" / "Data" / "lesions"


def synthetic_lesion(radius_mm: float, seed: int = 0) -> tuple[Image, np.ndarray]:
    """A soft-tissue sphere (40 HU) in lung-like noise (-800 +- 60 HU) with a rib-like slab nearby."""
    rng = np.random.default_rng(seed)
    shape = (64, 256, 256)
    k, j, i = np.ogrid[:shape[0], :shape[1], :shape[2]]
    centre = np.array(shape) / 2
    distance = np.sqrt(((k - centre[0]) * SPACING[2]) ** 2 + ((j - centre[1]) * SPACING[1]) ** 2
                       + ((i - centre[2]) * SPACING[0]) ** 2)
    lesion = distance <= radius_mm
    array = rng.normal(-800, 60, shape).astype(np.float32)
    array[lesion] = rng.normal(40, 30, int(lesion.sum()))
    array[:, :, 10:20] = 700.0
    return Image(array, SPACING), lesion


def skimage_peer_seconds(image: Image, reference: np.ndarray) -> float:
    """scikit-image's random walker on the region our backend solved at the first click, seeded
    with the click's voxel and the region's faces (no intensity model: the solver's cost alone)."""
    from skimage.segmentation import random_walker

    from segforge.interactive.random_walker import RandomWalkerBackend
    from segforge.interactive.prompts import to_voxels

    centre = tuple(int(v) for v in np.argwhere(reference).mean(axis=0).round())
    click = to_voxels(PointPrompt(voxel_center_lps(image, centre)), image)
    box, _ = RandomWalkerBackend(image).predict([click], np.zeros(reference.shape, np.uint8), lambda f, m: None)
    region = image.array[box].astype(np.float32)
    seeds = np.zeros(region.shape, np.int32)
    faces = np.ones(region.shape, bool)
    faces[1:-1, 1:-1, 1:-1] = False
    seeds[faces] = 2
    seeds[tuple(c - s.start for c, s in zip(centre, box))] = 1
    spacing = np.asarray(image.spacing[::-1])
    started = time.perf_counter()
    random_walker(region, seeds, beta=130, mode="cg_j", tol=1e-3, spacing=spacing / spacing.min())
    return time.perf_counter() - started


def by_region_size(radii: list[float]) -> list[dict]:
    rows = []
    for radius in radii:
        image, lesion = synthetic_lesion(radius)
        result = simulate_clicks(image, lesion, clicks=5)
        peer = skimage_peer_seconds(image, lesion)
        rows.append({"radius_mm": radius, "lesion_voxels": int(lesion.sum()),
                     "median_s": statistics.median(result.seconds), "max_s": max(result.seconds),
                     "dice_after_5": result.dice_after(5), "skimage_first_click_s": peer,
                     "ratio_skimage_over_ours": peer / result.seconds[0]})
        print(f"radius {radius:5.1f} mm: median {rows[-1]['median_s']:.3f} s, max {rows[-1]['max_s']:.3f} s, "
              f"Dice@5 {rows[-1]['dice_after_5']:.3f}; skimage walker {peer:.3f} s "
              f"({rows[-1]['ratio_skimage_over_ours']:.1f}x ours)", flush=True)
    return rows


def real_lesions() -> list[dict]:
    rows = []
    for name in ("lung1", "brain1"):
        folder = SHARED if (SHARED / f"{name}_image.nrrd").exists() else CROPS
        image, label = read_image(folder / f"{name}_image.nrrd"), read_image(folder / f"{name}_label.nrrd")
        result = simulate_clicks(image, label.array != 0, clicks=10)
        rows.append({"lesion": name, "source": "full image" if folder == SHARED else "test crop",
                     "shape_kji": list(image.array.shape), "dice": result.dice,
                     "clicks_to_85": result.clicks_to(0.85), "clicks_to_90": result.clicks_to(0.90),
                     "median_s": statistics.median(result.seconds), "max_s": max(result.seconds)})
        print(f"{name} ({rows[-1]['source']}): Dice after 1/3/5/10 clicks "
              + "/".join(f"{result.dice_after(n):.3f}" for n in (1, 3, 5, 10))
              + f", clicks to 85 % {result.clicks_to(0.85)}, to 90 % {result.clicks_to(0.90)}; "
              f"median {rows[-1]['median_s']:.3f} s, max {rows[-1]['max_s']:.3f} s per click", flush=True)
    return rows


def through_worker(clicks: int = 5) -> dict:
    from segforge.worker.interactive_client import RemoteSession
    from segforge.worker import WorkerClient

    image, lesion = synthetic_lesion(10.0)
    centre = voxel_center_lps(image, tuple(int(v) for v in np.argwhere(lesion).mean(axis=0).round()))
    prompts = [PointPrompt(centre)] + [PointPrompt(tuple(np.add(centre, (0.0, 0.0, 0.5 * n))))
                                       for n in range(1, clicks)]
    with WorkerClient() as worker:
        worker.hello()
        started = time.perf_counter()
        session = RemoteSession(worker, image)
        open_s = time.perf_counter() - started
        seconds, sent = [], []
        for prompt in prompts:
            before = session.image_bytes_sent
            started = time.perf_counter()
            session.interact(prompt)
            seconds.append(time.perf_counter() - started)
            sent.append(session.image_bytes_sent - before)
        session.close()
        peer = []
        history: list = []
        for prompt in prompts:  # the image with every click: a fresh session that replays the clicks
            history.append(prompt)
            started = time.perf_counter()
            fresh = RemoteSession(worker, image)
            fresh.interact(prompt)
            peer.append(time.perf_counter() - started)
            fresh.close()
    row = {"image_mib": image.array.nbytes / 2**20, "open_s": open_s, "click_s": seconds,
           "image_bytes_per_click": sent, "opens": session.opens,
           "peer_image_every_click_s": peer,
           "ratio_peer_over_ours": statistics.median(peer) / statistics.median(seconds[1:])}
    print(f"worker: open (image {row['image_mib']:.0f} MiB sent once) {open_s:.3f} s; clicks "
          + ", ".join(f"{s:.3f}" for s in seconds) + " s; image bytes per click " + str(sent)
          + f"; image with every click: median {statistics.median(peer):.3f} s "
          f"({row['ratio_peer_over_ours']:.1f}x ours)", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--radii", type=float, nargs="+", default=[5.0, 10.0, 20.0, 40.0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                         f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d"),
              "by_region_size": by_region_size(args.radii), "real_lesions": real_lesions(),
              "through_worker": through_worker()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
