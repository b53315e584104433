"""Benchmark: a TorchScript segmentation network through the worker vs in-process MONAI.

The worker's ``segment.torchscript`` task (model kept loaded, tiles with progress and
Cancel, GPU when present with the CPU as fallback) against its peer, MONAI's
``sliding_window_inference`` called directly in the same process on the same weights.
Reports medians, the ratio, and whether both give the same labels. Builds its own small
random-weight 3D CNN (no download).

Run: ``python benchmarks/torchscript_inference.py [--size 192] [--device auto|cpu|cuda]``
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segforge.image import Image
from segforge.worker import WorkerClient


def build_model(path: Path, channels: int = 16, classes: int = 3) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(channels, channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(channels, classes, 1))
    torch.jit.script(net.eval()).save(str(path))


def in_process(image: Image, model_path: Path, roi: list[int], device: str) -> tuple[float, np.ndarray]:
    import torch
    from monai.inferers import sliding_window_inference

    model = torch.jit.load(str(model_path), map_location=device).eval()
    started = time.perf_counter()
    with torch.inference_mode():
        tensor = torch.from_numpy(image.array).to(device).float()
        tensor = ((tensor - tensor.mean()) / tensor.std())[None, None]
        logits = sliding_window_inference(tensor, roi, 1, model, overlap=0.25, mode="gaussian")
        labels = torch.argmax(logits[0], dim=0).to(torch.uint8).cpu().numpy()
    return time.perf_counter() - started, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--roi", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    rng = np.random.default_rng(0)
    image = Image(rng.normal(0, 100, (args.size,) * 3).astype(np.float32), (0.8, 0.8, 1.5))
    roi = [args.roi] * 3
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "net.pt"
        build_model(model)
        with WorkerClient() as client:
            params = {"model_path": str(model), "roi_size": roi, "device": device}
            ours, labels = [], None
            for _ in range(args.repeats + 1):  # the first run loads the model
                started = time.perf_counter()
                result = client.run("segment.torchscript", {"image": image}, params)
                ours.append(time.perf_counter() - started)
                labels = result.outputs["labels"].array
            peer = [in_process(image, model, roi, device) for _ in range(args.repeats + 1)]
    ours_s = statistics.median(ours[1:])
    peer_s = statistics.median(t for t, _ in peer[1:])
    agreement = float(np.mean(labels == peer[-1][1]))
    report = {"benchmark": "torchscript_inference", "size": args.size, "roi": args.roi, "device": device,
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
              "machine": f"{platform.node()} {platform.machine()}", "date": time.strftime("%Y-%m-%d"),
              "ours_first_s": ours[0], "ours_median_s": ours_s, "peer_median_s": peer_s,
              "ratio_peer_over_ours": peer_s / ours_s, "label_agreement": agreement}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
