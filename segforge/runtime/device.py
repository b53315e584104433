"""Which torch device a model runs on, decided before any work: the one rule of every torch
path (vesselness, deep vessel models, organ models, nnInteractive, the worker's TorchScript task).

A GPU without enough free memory would fail minutes into a job, so "auto" falls back to the
CPU and an explicit GPU request is refused with the figures.
"""
from __future__ import annotations

from typing import Optional

from ..errors import InputError

GIB = float(1 << 30)


def free_gpu_memory_gb(device: str) -> float:
    """Free memory of a CUDA device in GiB, as the driver reports it now."""
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return free / GIB


def choose_device(requested: str = "auto", needed_gb: float = 0.0) -> tuple[str, Optional[str]]:
    """The torch device to use and a warning for the user (None when nothing to say).

    "auto": a GPU when torch sees one with ``needed_gb`` free, else the CPU (with a warning
    saying why when a GPU was there). "cuda"/"cuda:N": that GPU, or InputError when torch
    sees none or it has too little free memory. "cpu": the CPU. With ``needed_gb`` 0 (the
    default) the free memory is not asked for: any GPU torch sees will do.
    """
    if requested == "cpu":
        return "cpu", None
    import torch

    if not torch.cuda.is_available():
        if requested == "auto":
            return "cpu", None
        raise InputError("A GPU was asked for but none is usable",
                         "torch sees no CUDA device (no GPU, no driver, or a CPU-only torch)",
                         "choose the CPU or auto device, or run on a machine with a GPU")
    device = "cuda" if requested == "auto" else requested
    if needed_gb <= 0:
        return device, None
    free = free_gpu_memory_gb(device)
    if free >= needed_gb:
        return device, None
    why = f"the GPU has {free:.1f} GiB free and the model needs about {needed_gb:.1f} GiB"
    if requested == "auto":
        return "cpu", f"Running on the CPU (slower): {why}"
    raise InputError("Not enough GPU memory for this model", why,
                     "close other programs using the GPU, choose the fast (low-resolution) variant, "
                     "or choose the CPU or auto device")
