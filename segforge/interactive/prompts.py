"""Prompts: what the user placed, in millimetres, and the same in the image's voxels.

Points, boxes, scribbles and lassos arrive in patient coordinates (LPS or RAS millimetres), the way
Slicer's markups and the CLI's prompt files give them, and are turned into voxel indices
of the session's image here, in the worker, so an oblique or anisotropic volume gets the
voxels the user pointed at. A prompt outside the image, or a box with no volume, is the
user's input error with what to do.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np

from ..errors import InputError
from ..image import LPS_TO_RAS, Image

#: Coordinate systems a prompt's millimetres may be given in.
COORDINATE_SYSTEMS = ("LPS", "RAS")


@dataclass(frozen=True)
class PointPrompt:
    """A click: inside the lesion (positive) or outside it (negative)."""

    position_lps: tuple[float, float, float]
    positive: bool = True


@dataclass(frozen=True)
class BoxPrompt:
    """A box around the lesion, its faces along the patient axes (a markups ROI)."""

    min_lps: tuple[float, float, float]
    max_lps: tuple[float, float, float]
    positive: bool = True


@dataclass(frozen=True, eq=False)
class ScribblePrompt:
    """Painted strokes: the centres of the painted voxels, in LPS millimetres (N x 3)."""

    points_lps: np.ndarray
    positive: bool = True

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ScribblePrompt) and self.positive == other.positive
                and np.array_equal(self.points_lps, other.points_lps))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class LassoPrompt:
    """A closed contour drawn in one slice, its corners in LPS millimetres (N x 3, the last
    joined to the first): inside it is the object in that slice (positive), or is erased
    (negative). Made and checked by :func:`.lasso.lasso_prompt`."""

    points_lps: np.ndarray
    positive: bool = True

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LassoPrompt) and self.positive == other.positive
                and np.array_equal(self.points_lps, other.points_lps))

    __hash__ = None  # type: ignore[assignment]


Prompt = Union[PointPrompt, BoxPrompt, ScribblePrompt, LassoPrompt]


@dataclass(frozen=True)
class VoxelPoint:
    """A click on voxel ``kji`` of the session's image."""

    kji: tuple[int, int, int]
    positive: bool = True


@dataclass(frozen=True)
class VoxelBox:
    """Voxels ``lo_kji`` (inclusive) to ``hi_kji`` (exclusive) of the session's image."""

    lo_kji: tuple[int, int, int]
    hi_kji: tuple[int, int, int]
    positive: bool = True

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(lo, hi) for lo, hi in zip(self.lo_kji, self.hi_kji))  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class VoxelScribble:
    """Painted voxels of the session's image, as a (N, 3) array of k, j, i indices."""

    kji: np.ndarray
    positive: bool = True


@dataclass(frozen=True, eq=False)
class VoxelLasso:
    """A lasso in the session's image: the voxels it encloses (``inside``) and a band of the
    same slice just outside it (``band``), each (N, 3) k, j, i; the slice is index ``index``
    along array axis ``axis`` (0: k, 1: j, 2: i)."""

    inside: np.ndarray
    band: np.ndarray
    axis: int
    index: int
    positive: bool = True


VoxelPrompt = Union[VoxelPoint, VoxelBox, VoxelScribble, VoxelLasso]


def _shown(position: object) -> str:
    """A position as the file gave it ([nan, 0, 0]), not as numpy spells its values."""
    try:
        return "[" + ", ".join(f"{float(v):g}" for v in np.ravel(np.asarray(position, dtype=np.float64))) + "]"
    except (TypeError, ValueError):
        return repr(position)


def _lps(position: Sequence[float], coordinate_system: str) -> np.ndarray:
    point = np.asarray(position, dtype=np.float64)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise InputError(f"A prompt position is {_shown(position)}", "it must be three finite numbers",
                         "give x, y, z in millimetres")
    return point * np.diag(LPS_TO_RAS)[:3] if coordinate_system == "RAS" else point


def _continuous_kji(image: Image, points_lps: np.ndarray) -> np.ndarray:
    """Fractional voxel indices (k, j, i) of LPS points, (N, 3)."""
    lps_to_ijk = np.linalg.inv(image.ijk_to_lps())
    ijk = points_lps @ lps_to_ijk[:3, :3].T + lps_to_ijk[:3, 3]
    return ijk[:, ::-1]


def _inside(kji: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return np.all((kji >= 0) & (kji < np.asarray(shape)), axis=1)


def _outside_error(what: str, position_lps: np.ndarray, image: Image) -> InputError:
    x, y, z = (float(v) for v in position_lps)
    return InputError(f"The {what} at LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm is outside the image",
                      f"the image covers voxels 0 to {image.array.shape[::-1]} (i, j, k) and this point falls "
                      "outside them; was it placed on another volume?",
                      "place it on the volume being segmented")


def point_to_voxels(prompt: PointPrompt, image: Image) -> VoxelPoint:
    """The voxel a click falls in (the nearest voxel centre)."""
    point = np.asarray(prompt.position_lps, dtype=np.float64)
    kji = np.rint(_continuous_kji(image, point[None]))
    if not _inside(kji, image.array.shape)[0]:
        raise _outside_error("positive click" if prompt.positive else "negative click", point, image)
    return VoxelPoint(tuple(int(v) for v in kji[0]), prompt.positive)  # type: ignore[arg-type]


def box_to_voxels(prompt: BoxPrompt, image: Image) -> VoxelBox:
    """The voxels whose centres the box holds; on an oblique image, those inside the voxel-axis
    box around its eight corners, clipped to the image."""
    low, high = np.asarray(prompt.min_lps, float), np.asarray(prompt.max_lps, float)
    if np.any(high - low <= 0):
        raise InputError("The box has no volume", f"its size is {np.round(high - low, 2).tolist()} mm",
                         "drag the box so it has a width, a height and a depth around the lesion")
    corners = np.array(list(itertools.product(*zip(low, high))))
    kji = _continuous_kji(image, corners)
    lo = np.maximum(np.ceil(kji.min(axis=0) - 1e-6), 0).astype(int)
    hi = np.minimum(np.floor(kji.max(axis=0) + 1e-6) + 1, image.array.shape).astype(int)
    if np.any(hi <= lo):
        raise _outside_error("box", (low + high) / 2, image) if np.any(hi <= 0) or np.any(
            lo >= image.array.shape) else InputError(
            "The box holds no voxel centre", f"it is thinner than a voxel ({np.round(high - low, 2).tolist()} mm)",
            "make the box at least one voxel deep along every axis")
    return VoxelBox(tuple(int(v) for v in lo), tuple(int(v) for v in hi), prompt.positive)  # type: ignore[arg-type]


def scribble_to_voxels(prompt: ScribblePrompt, image: Image) -> VoxelScribble:
    """The voxels painted, each once; painted points outside the image are dropped, all of
    them outside is an error."""
    points = np.asarray(prompt.points_lps, dtype=np.float64).reshape(-1, 3)
    if points.shape[0] == 0 or not np.all(np.isfinite(points)):
        raise InputError("The scribble is empty or holds invalid points", f"{points.shape[0]} points",
                         "paint at least one stroke on the lesion")
    kji = np.rint(_continuous_kji(image, points)).astype(np.int64)
    inside = _inside(kji, image.array.shape)
    if not inside.any():
        raise _outside_error("scribble", points.mean(axis=0), image)
    return VoxelScribble(np.unique(kji[inside], axis=0), prompt.positive)


def to_voxels(prompt: Prompt, image: Image) -> VoxelPrompt:
    """Any prompt in the image's voxels."""
    if isinstance(prompt, PointPrompt):
        return point_to_voxels(prompt, image)
    if isinstance(prompt, BoxPrompt):
        return box_to_voxels(prompt, image)
    if isinstance(prompt, ScribblePrompt):
        return scribble_to_voxels(prompt, image)
    if isinstance(prompt, LassoPrompt):
        from .lasso import lasso_to_voxels

        return lasso_to_voxels(prompt, image)
    raise InputError(f"Unknown prompt {type(prompt).__name__}", "prompts are points, boxes, scribbles and lassos")


def prompt_from_json(entry: Any, coordinate_system: str = "LPS") -> Prompt:
    """One prompt of a PROMPTS.json file (or of the wire): a point, a box, a scribble or a lasso."""
    if coordinate_system not in COORDINATE_SYSTEMS:
        raise InputError(f"Unknown coordinate system {coordinate_system!r}", "prompts are in LPS or RAS millimetres",
                         'set "coordinateSystem" to "LPS" or "RAS"')
    if not isinstance(entry, dict):
        raise InputError("A prompt is not a JSON object", f"it is {entry!r}",
                         'write prompts like {"type": "point", "position": [x, y, z], "positive": true}')
    kind, positive = entry.get("type"), entry.get("positive", True)
    if not isinstance(positive, bool):
        raise InputError(f"A prompt's 'positive' is {positive!r}", "it must be true or false", "write true or false")
    try:
        if kind == "point":
            return PointPrompt(tuple(_lps(entry["position"], coordinate_system)), positive)  # type: ignore[arg-type]
        if kind == "box":
            a, b = _lps(entry["min"], coordinate_system), _lps(entry["max"], coordinate_system)
            return BoxPrompt(tuple(np.minimum(a, b)), tuple(np.maximum(a, b)), positive)  # type: ignore[arg-type]
        if kind == "scribble":
            points = np.asarray(entry["points"], dtype=np.float64).reshape(-1, 3)
            return ScribblePrompt(points * np.diag(LPS_TO_RAS)[:3] if coordinate_system == "RAS" else points, positive)
        if kind == "lasso":
            from .lasso import lasso_prompt

            closed = entry.get("closed", True)
            if not isinstance(closed, bool):
                raise InputError(f"A lasso's 'closed' is {closed!r}", "it must be true or false",
                                 "leave it out (a lasso is closed) or write true")
            points = np.asarray(entry["points"], dtype=np.float64)
            if points.ndim != 2 or points.shape[1:] != (3,):
                raise ValueError(f"its points have the shape {points.shape}, not (N, 3)")
            return lasso_prompt(points * np.diag(LPS_TO_RAS)[:3] if coordinate_system == "RAS" else points,
                                positive, closed)
    except KeyError as error:
        raise InputError(f"A {kind} prompt has no {error.args[0]!r}", f"the prompt is {entry!r}",
                         "see the PROMPTS.json format in docs/interactive.md") from error
    except (TypeError, ValueError) as error:
        raise InputError(f"A {kind} prompt is malformed", str(error),
                         "give coordinates as three numbers in millimetres") from error
    raise InputError(f"Unknown prompt type {kind!r}", "prompt types are point, box, scribble and lasso",
                     'set "type" to "point", "box", "scribble" or "lasso"')


def prompt_to_json(prompt: Prompt) -> dict[str, Any]:
    """A prompt as JSON in LPS millimetres (the inverse of :func:`prompt_from_json`)."""
    if isinstance(prompt, PointPrompt):
        return {"type": "point", "position": list(prompt.position_lps), "positive": prompt.positive}
    if isinstance(prompt, BoxPrompt):
        return {"type": "box", "min": list(prompt.min_lps), "max": list(prompt.max_lps), "positive": prompt.positive}
    if isinstance(prompt, LassoPrompt):
        return {"type": "lasso", "points": np.asarray(prompt.points_lps).tolist(), "positive": prompt.positive}
    return {"type": "scribble", "points": np.asarray(prompt.points_lps).tolist(), "positive": prompt.positive}


def prompts_from_json(document: Any) -> list[Prompt]:
    """The prompts of a PROMPTS.json document, in order."""
    if not isinstance(document, dict) or not isinstance(document.get("prompts"), list):
        raise InputError("The prompt file has no list of prompts",
                         'it must be an object like {"coordinateSystem": "LPS", "prompts": [...]}',
                         "see the PROMPTS.json format in docs/interactive.md")
    system = document.get("coordinateSystem", "LPS")
    return [prompt_from_json(entry, system) for entry in document["prompts"]]
