"""Prompts: what the user placed, in millimetres, and the same in the image's voxels.

Points, boxes, scribbles and lassos arrive in patient coordinates (LPS or RAS millimetres), the way
Slicer's markups and the CLI's prompt files give them, and are turned into voxel indices
of the session's image here, in the worker, so an oblique or anisotropic volume gets the
voxels the user pointed at. A prompt outside the image, or a box with no volume, is the
user's input error with what to do.
"""
from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

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
    """A box around the lesion, given by two opposite corners (LPS mm).

    Without ``axes`` its faces are along the patient axes (a prompt file's box, a markups ROI
    not turned), and ``min_lps`` and ``max_lps`` are its lowest and highest corners. With
    ``axes`` (three perpendicular unit directions in LPS) its edges run along them: a box drawn
    in an oblique or tilted volume's own slices, or an ROI turned with the volume, is that box
    and not the larger patient-axis box around it (which held up to 20 times the voxels)."""

    min_lps: tuple[float, float, float]
    max_lps: tuple[float, float, float]
    positive: bool = True
    axes: Optional[tuple[tuple[float, float, float], ...]] = None


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


def shown_value(value: object, limit: int = 80) -> str:
    """A position as the file gave it ([nan, 0, 0], [[26], [36], [50]], [true, 36, 50]), not as
    numpy spells its values, nested lists kept nested (flattened, [[26], [36], [50]] would read as
    the valid [26, 36, 50] the message says it is not) and cut at ``limit`` characters."""
    def text(v: object, depth: int = 0) -> str:
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, (list, tuple)):  # three levels say what is wrong; a deeper one is cut
            return "[...]" if depth == 3 else "[" + ", ".join(text(x, depth + 1) for x in v[:8]) + (
                ", ...]" if len(v) > 8 else "]")
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, numbers.Integral):
            digits = str(int(v))
            return digits if len(digits) <= 15 else f"{digits[:6]}... ({len(digits)} digits)"
        if isinstance(v, numbers.Real):
            return f"{float(v):g}"
        shown = repr(v)
        return shown if len(shown) <= limit else shown[:limit - 3] + "..."

    shown = text(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def _number(value: object) -> float:
    """A coordinate as a float, or ValueError: only JSON numbers count. A boolean (``true`` would
    be 1.0) or a string (``"36"``) is a mistake in the file that float() would hide, and an integer
    too large for a float has no position."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(value)
    try:
        return float(value)
    except OverflowError:
        raise ValueError(value) from None


def _position(value: object, finite: bool = True) -> np.ndarray:
    """Three numbers (x, y, z), finite unless ``finite`` is False, or ValueError; one level of
    list only (a prompt's position is never nested). A scribble's or a lasso's points leave NaN
    to their own checks, which say what an invalid point means for them."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(value)
    point = np.array([_number(v) for v in value], dtype=np.float64)
    if finite and not np.all(np.isfinite(point)):
        raise ValueError(value)
    return point


def _in_lps(values: np.ndarray, coordinate_system: str) -> np.ndarray:
    """Positions or directions (..., 3) given in ``coordinate_system``, in LPS (RAS: x and y
    change sign)."""
    return values * np.diag(LPS_TO_RAS)[:3] if coordinate_system == "RAS" else values


def _lps(position: Sequence[float], coordinate_system: str) -> np.ndarray:
    try:
        point = _position(position)
    except ValueError:
        raise InputError(f"A prompt position is {shown_value(position)}", "it must be three finite numbers",
                         "give x, y, z in millimetres") from None
    return _in_lps(point, coordinate_system)


def _points(value: object, kind: str, coordinate_system: str) -> np.ndarray:
    """A scribble's or a lasso's points (N x 3, LPS): a list of positions as the file gives them,
    or a float array as the worker's client sends a scribble's (already checked there)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim == 2 and value.shape[1] == 3:
        points = value.astype(np.float64)
    else:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"A {kind}'s points are {shown_value(value)}", "they must be a list of positions",
                             "give the points as [[x, y, z], ...] in millimetres")
        rows = []
        for n, row in enumerate(value):
            try:
                rows.append(_position(row, finite=False))
            except ValueError:
                raise InputError(f"Point {n + 1} of a {kind} is {shown_value(row)}", "it must be three numbers",
                                 "give the points as [[x, y, z], ...] in millimetres") from None
        points = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return _in_lps(points, coordinate_system)


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


#: How far from perpendicular unit vectors a box's axes may be (rounding in a JSON file or an ROI).
AXES_TOLERANCE = 1e-4


def box_axes(axes: Any) -> np.ndarray:
    """A box's ``axes`` as a matrix whose columns are the edge directions (LPS); InputError unless
    they are three perpendicular unit vectors (a box is not sheared or scaled)."""
    try:
        rows = np.array([_position(axis) for axis in axes], dtype=np.float64) if isinstance(
            axes, (list, tuple, np.ndarray)) else None
    except ValueError:
        rows = None
    if rows is None or rows.shape != (3, 3) or not np.allclose(rows @ rows.T, np.eye(3), atol=AXES_TOLERANCE):
        raise InputError(f"A box's axes are {shown_value(axes)}", "they must be three perpendicular unit "
                         "directions [[x, y, z], [x, y, z], [x, y, z]], along which the box's edges run",
                         "give the volume's axes (or leave axes out for a box along the patient axes)")
    return rows.T


def box_to_voxels(prompt: BoxPrompt, image: Image) -> VoxelBox:
    """The voxels whose centres the box holds: those inside the voxel-axis box around its eight
    corners, clipped to the image. A box along the volume's own axes (``axes``) is exactly its
    voxels; a box along other axes (the patient's, on an oblique image) the voxel box around it."""
    axes = np.eye(3) if prompt.axes is None else box_axes(prompt.axes)
    ends = axes.T @ np.array([prompt.min_lps, prompt.max_lps], dtype=np.float64).T  # along the box's axes
    low, high = ends.min(axis=1), ends.max(axis=1)
    if np.any(high - low <= 0):
        raise InputError("The box has no volume", f"its size is {np.round(high - low, 2).tolist()} mm",
                         "drag the box so it has a width, a height and a depth around the lesion")
    corners = np.array(list(itertools.product(*zip(low, high)))) @ axes.T
    kji = _continuous_kji(image, corners)
    lo = np.maximum(np.ceil(kji.min(axis=0) - 1e-6), 0).astype(int)
    hi = np.minimum(np.floor(kji.max(axis=0) + 1e-6) + 1, image.array.shape).astype(int)
    if np.any(hi <= lo):
        raise _outside_error("box", corners.mean(axis=0), image) if np.any(hi <= 0) or np.any(
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


def prompt_noun(prompt: Union[Prompt, VoxelPrompt]) -> str:
    """What a prompt is called in a message to the user: a click, a box, a scribble, a lasso."""
    if isinstance(prompt, (PointPrompt, VoxelPoint)):
        return "click"
    if isinstance(prompt, (BoxPrompt, VoxelBox)):
        return "box"
    return "lasso" if isinstance(prompt, (LassoPrompt, VoxelLasso)) else "scribble"


#: The keys each prompt type may have. Any other is refused, not ignored: a misspelt key
#: ("is_positive": false) would otherwise leave the prompt as the default says (positive).
PROMPT_KEYS = {"point": ("type", "position", "positive"), "box": ("type", "min", "max", "positive", "axes"),
               "scribble": ("type", "points", "positive"), "lasso": ("type", "points", "positive", "closed")}
#: The keys of a prompt file. A misspelt "coordinate_system": "RAS" ignored would read RAS
#: millimetres as LPS and put every prompt on the other side of the patient.
DOCUMENT_KEYS = ("coordinateSystem", "prompts")


def _unknown_key(entry: dict, allowed: Sequence[str], where: str) -> None:
    unknown = [key for key in entry if key not in allowed]
    if unknown:
        raise InputError(f"{where} has an unknown key {shown_value(unknown[0])}",
                         f"the keys it may have are {', '.join(repr(k) for k in allowed)}; a misspelt key is not "
                         "ignored, as that would leave the default in force (LPS, positive)",
                         "correct the key's spelling or remove it (PROMPTS.json format: docs/interactive.md)")


def prompt_from_json(entry: Any, coordinate_system: str = "LPS") -> Prompt:
    """One prompt of a PROMPTS.json file (or of the wire): a point, a box, a scribble or a lasso.
    Strict, because a file is the user's record of what they placed: unknown keys, and
    coordinates that are not JSON numbers (true, "36", an integer too large for a float), are
    refused rather than read as something else."""
    if not isinstance(coordinate_system, str) or coordinate_system not in COORDINATE_SYSTEMS:
        raise InputError(f"Unknown coordinate system {coordinate_system!r}", "prompts are in LPS or RAS millimetres",
                         'set "coordinateSystem" to "LPS" or "RAS"')
    if not isinstance(entry, dict):
        raise InputError("A prompt is not a JSON object", f"it is {shown_value(entry)}",
                         'write prompts like {"type": "point", "position": [x, y, z], "positive": true}')
    kind, positive = entry.get("type"), entry.get("positive", True)
    if not isinstance(kind, str) or kind not in PROMPT_KEYS:
        raise InputError(f"Unknown prompt type {shown_value(kind)}", "prompt types are point, box, scribble and lasso",
                         'set "type" to "point", "box", "scribble" or "lasso"')
    _unknown_key(entry, PROMPT_KEYS[kind], f"A {kind} prompt")
    if not isinstance(positive, bool):
        raise InputError(f"A prompt's 'positive' is {shown_value(positive)}", "it must be true or false",
                         "write true or false")
    try:
        if kind == "point":
            return PointPrompt(tuple(_lps(entry["position"], coordinate_system)), positive)  # type: ignore[arg-type]
        if kind == "box":
            a, b = _lps(entry["min"], coordinate_system), _lps(entry["max"], coordinate_system)
            if entry.get("axes") is None:
                return BoxPrompt(tuple(np.minimum(a, b)), tuple(np.maximum(a, b)), positive)  # type: ignore[arg-type]
            # turned: min and max are opposite corners along the axes (as given, not sorted)
            axes = _in_lps(box_axes(entry["axes"]).T, coordinate_system)  # one direction per row
            return BoxPrompt(tuple(a), tuple(b), positive, tuple(tuple(float(v) for v in axis) for axis in axes))
        if kind == "scribble":
            return ScribblePrompt(_points(entry["points"], kind, coordinate_system), positive)
        from .lasso import lasso_prompt

        closed = entry.get("closed", True)
        if not isinstance(closed, bool):
            raise InputError(f"A lasso's 'closed' is {shown_value(closed)}", "it must be true or false",
                             "leave it out (a lasso is closed) or write true")
        return lasso_prompt(_points(entry["points"], kind, coordinate_system), positive, closed)
    except KeyError as error:
        raise InputError(f"A {kind} prompt has no {error.args[0]!r}", f"the prompt is {shown_value(entry)}",
                         "see the PROMPTS.json format in docs/interactive.md") from error


def prompt_to_json(prompt: Prompt) -> dict[str, Any]:
    """A prompt as JSON in LPS millimetres (the inverse of :func:`prompt_from_json`)."""
    if isinstance(prompt, PointPrompt):
        return {"type": "point", "position": list(prompt.position_lps), "positive": prompt.positive}
    if isinstance(prompt, BoxPrompt):
        box = {"type": "box", "min": list(prompt.min_lps), "max": list(prompt.max_lps), "positive": prompt.positive}
        return box if prompt.axes is None else {**box, "axes": [list(axis) for axis in prompt.axes]}
    if isinstance(prompt, LassoPrompt):
        return {"type": "lasso", "points": np.asarray(prompt.points_lps).tolist(), "positive": prompt.positive}
    return {"type": "scribble", "points": np.asarray(prompt.points_lps).tolist(), "positive": prompt.positive}


def prompts_from_json(document: Any) -> list[Prompt]:
    """The prompts of a PROMPTS.json document, in order."""
    if not isinstance(document, dict) or not isinstance(document.get("prompts"), list):
        raise InputError("The prompt file has no list of prompts",
                         'it must be an object like {"coordinateSystem": "LPS", "prompts": [...]}',
                         "see the PROMPTS.json format in docs/interactive.md")
    _unknown_key(document, DOCUMENT_KEYS, "The prompt file")
    system = document_coordinate_system(document)
    return [prompt_from_json(entry, system) for entry in document["prompts"]]


def document_coordinate_system(document: dict) -> str:
    """The coordinate system a PROMPTS.json document's millimetres are in (LPS when it names none)."""
    return document.get("coordinateSystem", "LPS")
