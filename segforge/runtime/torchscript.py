"""TorchScript networks: loaded once per process (through :mod:`.model_cache`), and the
volume turned into the normalised tensor they take.

The worker's ``segment.torchscript`` task (:mod:`segforge.worker.torchscript`) and the
deep vessel mask (:mod:`segforge.vessel.deep_model`) run their networks with these.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..errors import ModelError
from .model_cache import ModelCache, shared_models

if TYPE_CHECKING:
    import torch


def load_torchscript(path: str, device: str) -> Any:
    """The TorchScript network in ``path`` on ``device``, in eval mode; ModelError if unreadable."""
    import torch

    try:
        model = torch.jit.load(path, map_location=device)
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"Could not load the TorchScript model {path}", str(error).splitlines()[0],
                         "re-download the model; it may be corrupt or made by a newer torch") from error
    model.eval()
    return model


def cached_torchscript(path: str, device: str, cache: ModelCache = shared_models) -> tuple[Any, bool]:
    """The network in ``path`` on ``device`` from the process's model cache (loaded on a miss),
    and whether it was already loaded."""
    return cache.get((*ModelCache.file_key(path), device), lambda: load_torchscript(path, device))


def normalised_tensor(values: "np.ndarray | torch.Tensor", window: Optional[Sequence[float]],
                      device: str) -> "torch.Tensor":
    """The volume as a (1, 1, ...) float tensor on ``device``, normalised there (fast on a GPU):
    an intensity ``window`` (low, high) is clamped and scaled to 0..1 (CT in HU), without one
    the values are z-scored (MR, whose intensities have no fixed scale)."""
    import torch

    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values))
    values = values.to(device).float()
    if window is not None:
        low, high = float(window[0]), float(window[1])
        values = (values.clamp(low, high) - low) / max(high - low, 1e-6)
    else:
        values = (values - values.mean()) / values.std().clamp_min(1e-6)
    return values[None, None]
