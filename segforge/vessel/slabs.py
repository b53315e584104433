"""Run the multi-scale Hessian filter over a volume slab by slab, in bounded memory.

Why it is built this way:

- Slabs along k, each read with the halo its largest Gaussian needs: memory stays at
  the input, the float32 response and the slabs in flight (a few volume copies at most,
  never one per scale or Hessian component). On CPU a slab's temporaries fit the
  caches, which is most of the speed.
- On CPU, one worker thread per core, each running whole slabs with single-threaded
  torch (see :func:`_device_settings` for the measured reason).
- Progress goes to the caller's callback from the calling thread, several times a
  second; a callback that raises ``Cancelled`` stops the workers between scales.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from ..image import Image
from ..progress import ProgressCallback
from ..runtime.device import choose_device
from .filters import MEASURES
from .hessian import SlabSmoother, hessian_from_smoothed, symmetric_eigenvalues
from .parameters import VesselMaskParameters

#: Output voxels per slab on CPU: the slab's temporaries (~20 of them) stay in the caches.
CPU_CHUNK_VOXELS = 1 << 19
#: Output voxels per slab at most on CUDA: one scale of a slab takes well under a second
#: (about 25 ms on an H100), so progress and Cancel stay responsive on huge volumes.
CUDA_MAX_CHUNK_VOXELS = 1 << 26
#: Seconds between progress reports while worker threads run slabs.
_REPORT_EVERY_S = 0.1
#: Bytes of device memory one output voxel needs at most while its slab is processed.
_BYTES_PER_VOXEL = 4 * 24


def filter_volume(image: Image, parameters: VesselMaskParameters, gamma: float, floor: float,
                  report: ProgressCallback, chunk_voxels: Optional[int] = None) -> np.ndarray:
    """The float32 response of ``image`` (max over scales); see :func:`segforge.vessel.vesselness`."""
    device = torch.device(choose_device(parameters.device)[0])  # the one rule of every torch path
    response = np.zeros(image.array.shape, dtype=np.float32)
    depth = _slab_depth(image.array.shape, device, chunk_voxels)
    ranges = [(k0, min(k0 + depth, image.array.shape[0])) for k0 in range(0, image.array.shape[0], depth)]
    with _device_settings(device) as workers:
        try:
            slabs = _SlabFilter(image, parameters, device, gamma, floor)
            _run(slabs, ranges, min(workers, len(ranges)), response, report)
        except RuntimeError as error:  # torch's allocators and thread starts say "RuntimeError"
            if _out_of_memory(error):
                raise MemoryError(f"vesselness on {image.array.shape} voxels: {error}") from error
            raise
    report(1.0, "Vesselness done")
    return response


def _out_of_memory(error: RuntimeError) -> bool:
    """True for torch's CPU/CUDA allocation failures and a thread that could not start."""
    text = str(error).lower()
    return (isinstance(error, getattr(torch.cuda, "OutOfMemoryError", ())) or "out of memory" in text
            or "can't allocate memory" in text or "bad_alloc" in text or "can't start new thread" in text)


class _SlabFilter:
    """The multi-scale filter of one volume, one slab ``[k0, k1)`` at a time."""

    def __init__(self, image: Image, parameters: VesselMaskParameters, device: torch.device, gamma: float,
                 floor: float) -> None:
        self.array = image.array
        self.device = device
        self.spacing_kji = tuple(reversed(image.spacing))
        self.sigmas = parameters.sigmas_mm()
        self.smoothers = [SlabSmoother(image.array.shape, [s / d for d in self.spacing_kji], device)
                          for s in self.sigmas]
        self.measure = MEASURES[parameters.measure]
        self.bright = parameters.bright_vessels
        self.options = ({"alpha": parameters.alpha, "beta": parameters.beta, "gamma": gamma, "floor": floor}
                        if parameters.measure == "frangi" else {"floor": floor})
        radii = parameters.radii_mm()
        self.label = (f"Vesselness, {len(radii)} scales (radius {radii[0]:.2f}-{radii[-1]:.2f} mm)"
                      if len(radii) > 1 else f"Vesselness, radius {radii[0]:.2f} mm")

    def slab(self, k0: int, k1: int, after_scale: Callable[[], None]) -> torch.Tensor:
        """The response of slices ``k0..k1-1`` on the device; ``after_scale`` runs after
        each scale (progress, and the place where a stop request lands)."""
        lo = min(s.input_range(k0, k1)[0] for s in self.smoothers)
        hi = max(s.input_range(k0, k1)[1] for s in self.smoothers)
        source = _to_device(self.array[lo:hi], self.device)
        best: Optional[torch.Tensor] = None
        for smoother, sigma in zip(self.smoothers, self.sigmas):
            hessian = hessian_from_smoothed(smoother.smooth(source, lo, k0, k1), self.spacing_kji, sigma)
            eigenvalues = symmetric_eigenvalues(*hessian)
            del hessian
            response = self.measure(*eigenvalues, bright=self.bright, **self.options)
            best = response if best is None else torch.maximum(best, response, out=best)
            after_scale()
        assert best is not None
        return best


#: Voxel types sent to the device as they are and made float32 there.
_NATIVE = (np.dtype(np.float32), np.dtype(np.int16), np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32))


def _to_device(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """``values`` as float32 on ``device``: sent in their own type where torch has it
    (fewer bytes to move), and never writable into the caller's array."""
    if values.dtype in _NATIVE and values.flags.writeable:  # torch warns on read-only buffers
        return torch.from_numpy(np.ascontiguousarray(values)).to(device).to(torch.float32)
    return torch.from_numpy(np.array(values, dtype=np.float32)).to(device)


class _Stop(Exception):
    """Raised inside a slab worker when the caller asked to stop."""


def _run(slabs: _SlabFilter, ranges: list[tuple[int, int]], workers: int, response: np.ndarray,
         report: ProgressCallback) -> None:
    """Fill ``response`` slab by slab: in this thread, or with ``workers`` threads that
    each run whole slabs with single-threaded torch (see :func:`_device_settings`).

    Progress is always reported from the calling thread, so a callback that raises
    ``Cancelled`` stops the workers (between scales) and re-raises here.
    """
    steps = len(ranges) * len(slabs.sigmas)
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()
    output = torch.from_numpy(response)

    if workers <= 1:
        def tick() -> None:
            done[0] += 1
            report(done[0] / steps, slabs.label)

        report(0.0, slabs.label)
        for k0, k1 in ranges:
            output[k0:k1].copy_(slabs.slab(k0, k1, tick))
        return

    def counted() -> None:
        with lock:
            done[0] += 1
        if stop.is_set():
            raise _Stop()

    def work(k0: int, k1: int) -> None:
        if stop.is_set():
            return
        if slabs.device.type == "cpu":
            torch.set_flush_denormal(True)  # a per-thread CPU flag: set it in each worker
        try:
            output[k0:k1].copy_(slabs.slab(k0, k1, counted))
        except _Stop:
            pass

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vesselness")
    try:
        futures = [pool.submit(work, k0, k1) for k0, k1 in ranges]
        report(0.0, slabs.label)
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=_REPORT_EVERY_S)
            report(done[0] / steps, slabs.label)
        for future in futures:
            future.result()  # a worker's error surfaces here
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _slab_depth(shape: tuple[int, ...], device: torch.device, chunk_voxels: Optional[int]) -> int:
    """Slices per slab: ``chunk_voxels`` output voxels, or what the device holds."""
    plane = shape[1] * shape[2]
    if chunk_voxels is None:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            chunk_voxels = min(CUDA_MAX_CHUNK_VOXELS, max(plane, int(0.5 * free) // _BYTES_PER_VOXEL))
        else:
            chunk_voxels = CPU_CHUNK_VOXELS
    return max(1, min(shape[0], int(chunk_voxels) // plane))


@contextmanager
def _device_settings(device: torch.device) -> Iterator[int]:
    """How many slab workers to run, with torch set up for them; restored afterwards.

    On a GPU: one (the slabs are large), with TF32 matrix products off.

    On CPU: one worker per core this process may use (torch may count the host's cores
    in a container), each running torch single-threaded. torch's own intra-op threads
    meet at a barrier after every operation, thousands per volume: when another process
    holds one of the cores, each barrier waits for a time slice and the filter ran 20-40x
    slower on our 2-core machine (measured); independent slabs per thread degrade
    gracefully instead. Denormal floats are flushed to zero in this thread (workers set
    it in theirs): the exponentials of far-from-vessel voxels underflow into denormals,
    which x86 computes tens of times slower.
    """
    if device.type != "cpu":
        # TF32 matrix products (an opt-in on NVIDIA GPUs) round the smoothed volume to
        # ~1e-3, and second differences of it would be mostly rounding: full fp32 here.
        matmul = torch.backends.cuda.matmul
        tf32 = bool(matmul.allow_tf32)
        matmul.allow_tf32 = False
        try:
            yield 1
        finally:
            matmul.allow_tf32 = tf32
        return
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(1)
    flushing = torch.set_flush_denormal(True)
    try:
        yield max(1, min(before, cores))
    finally:
        torch.set_num_threads(before)
        if flushing:
            torch.set_flush_denormal(False)


