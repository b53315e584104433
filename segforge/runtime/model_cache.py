"""Loaded models kept between jobs, so a second job skips the load (in the worker: between
the jobs of every connection; in a script: between calls).

Keyed by what identifies the weights on disk (path, size and modification time), so a
replaced file is loaded afresh. One model is loaded at a time under a lock.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable


class ModelCache:
    """A small least-recently-used cache of loaded models."""

    def __init__(self, capacity: int = 4) -> None:
        self._capacity = capacity
        self._models: "OrderedDict[tuple, Any]" = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    @staticmethod
    def file_key(path: str | os.PathLike) -> tuple:
        stat = os.stat(path)
        return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)

    def get(self, key: tuple, load: Callable[[], Any]) -> tuple[Any, bool]:
        """The model for ``key`` and whether it was already loaded; ``load`` runs on a miss."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], True
            model = load()
            self.loads += 1
            self._models[key] = model
            while len(self._models) > self._capacity:
                self._models.popitem(last=False)
            return model, False


#: The process's one cache: in the worker, every job of every connection shares it.
shared_models = ModelCache()
