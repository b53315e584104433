"""A local cluster's GPU placement: worker N sees only GPU N % gpus.

Set as a Dask worker plugin, so it runs in each worker process before any case initialises
CUDA, and again in a worker the nanny restarts (it keeps its name, so its GPU). An existing
cluster places its own GPUs (``dask cuda worker`` does this per GPU).
"""
from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class OneGpuEach(WorkerPlugin):
    name = "segforge-one-gpu-each"

    def __init__(self, gpus: int) -> None:
        self.gpus = gpus

    def setup(self, worker: Any) -> None:
        try:
            index = int(worker.name) % self.gpus
        except (TypeError, ValueError):
            return  # a worker not named by its number: not ours to place
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
