"""Benchmark: a 512x512x300 int16 volume to the worker and a uint8 mask back, on loopback.

Ours: :class:`segforge.worker.WorkerClient` (binary frames, arrays read straight into
numpy, mask cropped). Peers, in the same run on the same data:
- ``pickle-pool``: ``concurrent.futures.ProcessPoolExecutor`` (pickled arrays through a pipe),
  the usual way Python code hands work to another process;
- ``http-niigz``: what MONAI Label's Slicer client does: save the volume as .nii.gz, POST it
  over HTTP, the server reads it, writes the mask as .nii.gz and sends it back.
Reports the median round trip of each, the ratio peer / ours, and for ours the peak extra
memory on each side in copies of the volume (target: < 1 s and <= 3 copies).

Run: ``python benchmarks/worker_roundtrip.py [--shape 300 512 512] [--repeats 5]``
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segforge.image import Image
from segforge.image_io import read_image, write_image
from segforge.worker import WorkerClient

LOWER, UPPER = 200, 400


def _mask(array: np.ndarray) -> np.ndarray:
    return ((array >= LOWER) & (array <= UPPER)).astype(np.uint8)


def _vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def bench_ours(image: Image, repeats: int) -> dict:
    with WorkerClient() as client:
        client.hello()
        baseline_kib = _vm_kib(client.pid, "VmRSS")
        times = []
        tracemalloc.start()
        for _ in range(repeats):
            started = time.perf_counter()
            mask = client.run("image.threshold", {"image": image}, {"lower": LOWER, "upper": UPPER},
                              ).outputs["mask"]
            times.append(time.perf_counter() - started)
            del mask
        _, client_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        worker_peak_kib = _vm_kib(client.pid, "VmHWM")
    nbytes = image.array.nbytes
    return {"seconds": statistics.median(times), "all_seconds": times,
            "client_extra_copies": client_peak / nbytes,
            "worker_extra_copies": (worker_peak_kib - baseline_kib) * 1024 / nbytes}


def bench_pickle_pool(image: Image, repeats: int) -> dict:
    with ProcessPoolExecutor(max_workers=1) as pool:
        pool.submit(_mask, np.zeros((2, 2, 2), np.int16)).result()  # start the process first
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            pool.submit(_mask, image.array).result()
            times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "all_seconds": times}


class _NiftiHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            upload = folder / "image.nii.gz"
            upload.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
            image = read_image(upload)
            write_image(image.with_array(_mask(image.array)), folder / "mask.nii.gz")
            body = (folder / "mask.nii.gz").read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def bench_http_niigz(image: Image, repeats: int) -> dict:
    import urllib.request

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NiftiHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/infer"
    times = []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                path = write_image(image, Path(folder) / "image.nii.gz")
                request = urllib.request.Request(url, data=path.read_bytes(), method="POST")
                with urllib.request.urlopen(request) as reply:
                    (Path(folder) / "mask.nii.gz").write_bytes(reply.read())
                read_image(Path(folder) / "mask.nii.gz")
            times.append(time.perf_counter() - started)
    finally:
        server.shutdown()
    return {"seconds": statistics.median(times), "all_seconds": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512], help="k j i")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = Image(rng.integers(-1000, 1500, size=args.shape, dtype=np.int16), (0.7, 0.7, 1.25))
    results = {"ours": bench_ours(image, args.repeats),
               "pickle-pool": bench_pickle_pool(image, args.repeats),
               "http-niigz": bench_http_niigz(image, max(1, args.repeats // 2))}
    ours = results["ours"]["seconds"]
    report = {"benchmark": "worker_roundtrip", "shape_kji": args.shape, "dtype": "int16",
              "volume_mib": image.array.nbytes / 2**20, "machine": f"{platform.node()} {platform.machine()} "
              f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "results": results,
              "ratio_peer_over_ours": {name: r["seconds"] / ours for name, r in results.items() if name != "ours"}}
    print(f"{'method':<12} {'median s':>9} {'peer/ours':>10}")
    for name, result in results.items():
        ratio = result["seconds"] / ours
        print(f"{name:<12} {result['seconds']:9.3f} {ratio:10.2f}")
    print(f"ours: client peak extra {results['ours']['client_extra_copies']:.2f} volume copies, "
          f"worker peak extra {results['ours']['worker_extra_copies']:.2f} volume copies")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
