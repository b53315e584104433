"""One interactive session: an image, its prompts so far, its mask, undo and redo.

Each interaction asks the backend for the new mask and records only what changed (a box
and its voxels before and after), so the caller writes back only that region and undo and
redo restore it exactly without running the backend again. Lassos are rules as well as
evidence: each one's inside is stamped onto the backend's answer (:mod:`.lasso`), so undo,
redo and replay include them like any prompt. The session is named by its
image's content (:func:`image_key`), which lets a worker keep the image between clicks and
a client notice when the worker has lost it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..image import Image, foreground_box, require_3d_volume, require_finite_voxels
from ..progress import ProgressCallback, no_progress
from .backends import DEFAULT_BACKEND, Backend, MaskPatch, make_backend
from .lasso import backend_prompts, lasso_box, stamp_lassos
from .prompts import Prompt, VoxelLasso, VoxelPrompt, prompt_noun, to_voxels


def image_key(image: Image) -> str:
    """A name for the image's content: the same voxels on the same grid give the same key."""
    digest = hashlib.sha256()
    array = np.ascontiguousarray(image.array)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.asarray(image.ijk_to_lps(), dtype=np.float64).round(6).tobytes())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:32]


@dataclass(frozen=True, eq=False)
class MaskChange:
    """What one step changed: a box (k, j, i offset and size) and its voxels before and after.

    An empty change (nothing differs) has a zero-size box.
    """

    offset_kji: tuple[int, int, int]
    before: np.ndarray
    after: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + n) for o, n in zip(self.offset_kji, self.after.shape))  # type: ignore[return-value]

    @property
    def empty(self) -> bool:
        return self.after.size == 0

    def inverse(self) -> "MaskChange":
        return MaskChange(self.offset_kji, self.after, self.before)

    @classmethod
    def between(cls, old: np.ndarray, new: np.ndarray) -> "MaskChange":
        """The change that turns mask ``old`` into ``new`` (an empty one when they are equal)."""
        box = _changed_box(old, new)
        if box is None:
            empty = np.zeros((0, 0, 0), np.uint8)
            return cls((0, 0, 0), empty, empty)
        return cls(tuple(s.start for s in box), old[box].copy(), new[box].copy())  # type: ignore[arg-type]


def _box_union(a: Optional[tuple[slice, ...]], b: Optional[tuple[slice, ...]]) -> Optional[tuple[slice, ...]]:
    if a is None or b is None:
        return a or b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def _initial_patch(initial: Optional[np.ndarray], shape: tuple[int, ...]
                   ) -> Optional[tuple[tuple[slice, ...], np.ndarray]]:
    """An initial mask as its box and the 0/1 voxels inside it (None when absent or empty),
    so a session refining a small segment keeps no second full-size copy."""
    if initial is None:
        return None
    initial = np.asarray(initial)
    if initial.shape != tuple(shape):
        raise InputError("The initial mask is not on the image's grid", f"its shape is {initial.shape} (k, j, i), "
                         f"the image's is {tuple(shape)}", "give the existing segment as a mask on the same volume")
    box = foreground_box(initial)
    return None if box is None else (box, (initial[box] != 0).astype(np.uint8))


def _changed_box(before: np.ndarray, after: np.ndarray) -> Optional[tuple[slice, ...]]:
    return foreground_box(before != after)


class InteractiveSession:
    """A lesion mask built from prompts on one image; the engine's (and the console's) session."""

    def __init__(self, image: Image, backend: str = DEFAULT_BACKEND, device: str = "auto",
                 key: Optional[str] = None, initial: Optional[np.ndarray] = None) -> None:
        """``initial``: an existing mask on the image's grid to refine (the state before the
        first prompt, which undo and reset go back to); empty when None."""
        self.image = require_finite_voxels(require_3d_volume(image))
        self.key = key or image_key(image)
        self.backend_name = backend
        self._initial = _initial_patch(initial, image.array.shape)
        self._backend: Backend = make_backend(backend, image, device)
        #: Where the backend runs, not only what was asked: the random walker is always on the
        #: CPU, nnInteractive settles "auto" (or a GPU it cannot use) on a device; results
        #: record this one.
        self.device = str(getattr(self._backend, "device", device))
        self.mask = np.zeros(image.array.shape, dtype=np.uint8)
        self._mask_box: Optional[tuple[slice, ...]] = None
        if self._initial is not None:
            self.mask[self._initial[0]] = self._initial[1]
            self._mask_box = self._initial[0]
        self.history: list[Prompt] = []
        self._voxels: list[VoxelPrompt] = []
        self._undone: list[tuple[Prompt, VoxelPrompt, MaskChange]] = []
        self._undone_before_last: list[tuple[Prompt, VoxelPrompt, MaskChange]] = []
        self._changes: list[MaskChange] = []

    @property
    def can_undo(self) -> bool:
        return bool(self.history)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def redo_count(self) -> int:
        """Prompts that redo would apply again."""
        return len(self._undone)

    @property
    def warning(self) -> Optional[str]:
        """What the backend wants the user to know (a deep backend on the CPU is slow...)."""
        return getattr(self._backend, "warning", None)

    def interact(self, prompt: Prompt, progress: ProgressCallback = no_progress) -> MaskChange:
        """Apply one prompt: the backend's new mask replaces the current one; redo is cleared."""
        voxels = to_voxels(prompt, self.image)
        if not self.history and not voxels.positive and self._initial is None:
            raise InputError(f"The first prompt is a negative {prompt_noun(prompt)}",
                             "there is no lesion yet to take voxels away from",
                             "start with a positive click or a box on the lesion; press T to switch to positive")
        prompts = [*self._voxels, voxels]
        box, patch = self._predict(prompts, progress)
        change = self._apply_patch(box, patch, prompts)
        self.history.append(prompt)
        self._voxels.append(voxels)
        self._changes.append(change)
        self._undone_before_last = self._undone[:]
        self._undone.clear()
        return change

    def withdraw_last(self) -> Optional[MaskChange]:
        """Take back the last interaction as if it never happened (its redo list comes back):
        for a Cancel that arrived after the backend had finished."""
        change = self.undo()
        if change is not None:
            self._undone[:] = self._undone_before_last
        return change

    def undo(self) -> Optional[MaskChange]:
        """Take back the last interaction (None when there is none)."""
        if not self.history:
            return None
        change = self._changes.pop()
        self._undone.append((self.history.pop(), self._voxels.pop(), change))
        return self._restore(change.inverse())

    def redo(self) -> Optional[MaskChange]:
        """Apply the last undone interaction again, exactly (the backend does not run)."""
        if not self._undone:
            return None
        prompt, voxels, change = self._undone.pop()
        self.history.append(prompt)
        self._voxels.append(voxels)
        self._changes.append(change)
        return self._restore(change)

    def reset(self) -> MaskChange:
        """Forget every prompt and go back to the initial mask (empty without one); undo and
        redo are cleared too."""
        box, patch = self._initial or ((slice(0, 0),) * 3, np.zeros((0, 0, 0), np.uint8))
        change = self._apply_patch(box, patch)
        self.history.clear()
        self._voxels.clear()
        self._changes.clear()
        self._undone.clear()
        return change

    # -- mask bookkeeping ---------------------------------------------------------------
    def _predict(self, prompts: list[VoxelPrompt], progress: ProgressCallback) -> MaskPatch:
        """The backend's answer to ``prompts`` (lassos handed on as scribbles). Prompts that are
        only negative lassos (erasing from the segment being refined) need no backend: nothing
        beyond the initial mask, which the lassos are then stamped onto."""
        if all(isinstance(prompt, VoxelLasso) and not prompt.positive for prompt in prompts):
            return (slice(0, 0),) * 3, np.zeros((0, 0, 0), np.uint8)  # type: ignore[return-value]
        return self._backend.predict(backend_prompts(prompts, self.image.array.shape), self.mask, progress)

    def _apply_patch(self, box: tuple[slice, ...], patch: np.ndarray,
                     prompts: Sequence[VoxelPrompt] = ()) -> MaskChange:
        """Make the mask ``patch`` inside ``box`` and the initial mask (empty without one) outside
        it, so refining an existing segment keeps it where the backend did not work, with the
        lassos among ``prompts`` stamped on; return what changed."""
        initial_box = self._initial[0] if self._initial is not None else None
        region = _box_union(_box_union(self._mask_box, box if patch.size else None), initial_box)
        region = _box_union(region, lasso_box(prompts))
        if region is None:
            return self._empty_change()
        new = np.zeros(tuple(s.stop - s.start for s in region), dtype=np.uint8)
        if self._initial is not None:
            initial_in_region = tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(initial_box, region))
            new[initial_in_region] = self._initial[1]
        if patch.size:
            new[tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))] = patch != 0
        stamp_lassos(new, [r.start for r in region], prompts)
        old = self.mask[region]
        inner = _changed_box(old, new)
        if inner is None:
            return self._empty_change()
        offset = tuple(r.start + i.start for r, i in zip(region, inner))
        change = MaskChange(offset, old[inner].copy(), new[inner])  # type: ignore[arg-type]
        self._restore(change)
        return change

    def _restore(self, change: MaskChange) -> MaskChange:
        if not change.empty:
            self.mask[change.slices] = change.after
            self._mask_box = _box_union(self._mask_box, change.slices)
        return change

    @staticmethod
    def _empty_change() -> MaskChange:
        empty = np.zeros((0, 0, 0), np.uint8)
        return MaskChange((0, 0, 0), empty, empty)
