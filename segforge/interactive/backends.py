"""The algorithms that turn a session's prompts into a mask, by name.

A backend is made once per session with the session's image (so it can prepare the
image, or keep a network's embedding of it, for every later interaction) and then asked,
at each interaction, for the new mask given every prompt so far (the newest last) and the
mask before it. It answers with the box it worked in and the mask inside it; outside the box
the session keeps the mask it started from (empty, or the existing segment being refined).
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from ..errors import InputError
from ..image import Image
from ..progress import ProgressCallback
from .prompts import VoxelPrompt

#: A new mask: the box it was computed in (k, j, i slices) and the uint8 mask inside it
#: (outside the box: the session's initial mask).
MaskPatch = tuple[tuple[slice, slice, slice], np.ndarray]

#: The default backend: needs no weights, runs on any CPU.
DEFAULT_BACKEND = "random-walker"


class Backend(Protocol):
    """One session's algorithm; ``predict`` may raise Cancelled through ``progress``."""

    name: str

    def predict(self, prompts: Sequence[VoxelPrompt], current: np.ndarray,
                progress: ProgressCallback) -> MaskPatch:
        """The mask after the last of ``prompts``; ``current`` is the mask before it."""
        ...


BackendFactory = Callable[[Image, str], Backend]


def _random_walker(image: Image, device: str) -> Backend:
    from .random_walker import RandomWalkerBackend

    return RandomWalkerBackend(image)


def _nninteractive(image: Image, device: str) -> Backend:
    from .nninteractive_backend import make

    return make(image, device)


#: Backends by the name users pick them by (widget, CLI --backend, console).
BACKENDS: dict[str, BackendFactory] = {
    DEFAULT_BACKEND: _random_walker,
    "nninteractive": _nninteractive,
}


def require_backend(name: str) -> None:
    """Refuse an unknown backend name (before any image is read or sent)."""
    if name not in BACKENDS:
        raise InputError(f"Unknown interactive backend {name!r}", f"the backends are {', '.join(sorted(BACKENDS))}",
                         f"pick one of them (the default, {DEFAULT_BACKEND}, needs no model)")


def make_backend(name: str, image: Image, device: str = "auto") -> Backend:
    """The backend called ``name`` for a session on ``image``."""
    require_backend(name)
    return BACKENDS[name](image, device)
