"""A segment from a file, ``FILE[:LABEL|NAME]``, as a binary mask on the file's own grid.

Users start vessel analysis from a segment they already have: a Slicer ``.seg.nrrd`` (a
segment by name, ID or label value; segments that overlap are in separate layers), a label
map (NIfTI / NRRD / MHA, a label value), or TotalSegmentator's multi-label output (a label
name, from its NIfTI header extension or a ``label_names.json`` beside it). Every file is
read through the project's verified read (:func:`segforge.image_io.read_verified_file`: a
truncated or damaged file is refused). A label or name the file does not hold is refused
with a list of what it does hold, so the user can pick instead of guessing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .image import Image
from .image_io import from_sitk, read_verified_file
from .label_names import FileSegment, label_names_of, seg_nrrd_segments

#: How many of a file's segments an error lists before "and N more".
LISTED = 40
#: More distinct values than this, without names, is a grey image rather than a label map
#: (TotalSegmentator's largest task has 117 classes; a CT or MR holds thousands of values).
MAX_UNNAMED_LABELS = 1000
#: At most this many distinct values (background included) in an integer image: a mask or label
#: map, not a CT or MR (which hold thousands). The vessel engine refuses such an image as its grey
#: input and the web app loads such a file as a segmentation: one rule, :func:`few_values`.
FEW_VALUES = 8


@dataclass(frozen=True)
class SegmentMask:
    """The chosen segment: a uint8 0/1 mask on the file's grid, and what it was (for summaries)."""

    mask: Image
    name: str
    path: Path


def split_segment_spec(text: str | os.PathLike) -> tuple[Path, Optional[str]]:
    """``FILE[:LABEL|NAME]`` -> (file, selector or None). A path that exists as given is a file
    (a colon in its name, or a Windows drive, stays part of it); else the text after the last
    colon is the selector."""
    text = os.fspath(text)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    head, _, selector = text.rpartition(":")
    if not head or (len(head) == 1 and head.isalpha() and selector.startswith(("\\", "/"))):
        return Path(text), None  # "C:\\scans\\seg.nii.gz"
    return Path(head), selector.strip() or None


def read_segment(spec: str | os.PathLike, selector: Optional[str] = None) -> SegmentMask:
    """The segment ``spec`` (``FILE[:LABEL|NAME]``, or a file with ``selector``) names, as a mask.

    Without a selector the file must hold one segment (a binary mask, a label map with one
    label, a ``.seg.nrrd`` with one segment). Raises :class:`InputError` for a missing or damaged
    file, a selector it does not hold (listing what it holds), or an empty segment.
    """
    path, given = split_segment_spec(spec)
    selector = selector if selector is not None else given
    if not path.exists():
        raise InputError(f"No segment file at {path}", "the path does not exist",
                         "give a .seg.nrrd, a label map (.nii.gz, .nrrd) or a mask file, as FILE or FILE:LABEL")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a segment file", "a segment is read from one file",
                         "give a .seg.nrrd, a label map (.nii.gz, .nrrd) or a mask file")
    source = read_verified_file(path)
    layers = _layers(source, path)
    segments = _segments_of(source, path, layers)
    chosen = _choose(segments, selector, path)
    mask = layers[chosen.layer] == chosen.value
    if not mask.any():
        raise InputError(f"The segment {chosen.describe()} of the file {path.name} is empty",
                         "none of its voxels is set",
                         "choose a segment that holds the vessel")
    geometry = from_sitk(_first_layer(source))
    return SegmentMask(geometry.with_array(mask.astype(np.uint8)), chosen.name or f"label {chosen.value}", path)


def file_segments(path: str | os.PathLike) -> list[FileSegment]:
    """What a segment file holds (its segments, or its label values with their names)."""
    path = Path(path)
    source = read_verified_file(path)
    return _segments_of(source, path, _layers(source, path))


# -- what the file holds ----------------------------------------------------------------------------


def _layers(source: sitk.Image, path: Path) -> list[np.ndarray]:
    """The file's label layers as integer arrays (k, j, i): one, or one per component of a
    multi-layer ``.seg.nrrd``."""
    array = sitk.GetArrayFromImage(source)
    if source.GetDimension() != 3:
        raise InputError(f"The file {path.name} is not a 3D segment file", f"it has {source.GetDimension()} dimensions",
                         "give a 3D label map or segmentation")
    if np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        if finite.size and not np.array_equal(finite, np.round(finite)):
            raise InputError(f"The file {path.name} is not a label map", "it holds fractional values (a grey image?)",
                             "give the segmentation or mask file, not the image")
        array = np.nan_to_num(array).astype(np.int64)
    components = source.GetNumberOfComponentsPerPixel()
    if components == 1:
        return [np.asarray(array)]
    return [np.asarray(array[..., n]) for n in range(components)]


def _first_layer(source: sitk.Image) -> sitk.Image:
    """A scalar image with the file's geometry (the engine's Image refuses vector images)."""
    if source.GetNumberOfComponentsPerPixel() == 1:
        return source
    return sitk.VectorIndexSelectionCast(source, 0)


def _segments_of(source: sitk.Image, path: Path, layers: Sequence[np.ndarray]) -> list[FileSegment]:
    fields = {key: source.GetMetaData(key) for key in source.GetMetaDataKeys()}
    named = seg_nrrd_segments(fields)
    if named:
        for segment in named:
            if not 0 <= segment.layer < len(layers):
                raise InputError(f"The file {path.name} names a segment in layer {segment.layer}",
                                 f"the file holds {len(layers)} layer(s)", "save the segmentation again from Slicer")
        return named
    present = _label_values(layers[0])
    names = label_names_of(path)
    if len(present) and (present[0] < 0 or (len(present) > MAX_UNNAMED_LABELS and not names)):
        why = ("it holds negative values" if present[0] < 0 else f"it holds {len(present):,} distinct values")
        raise InputError(f"The file {path.name} does not look like a label map or mask", f"{why} (a grey image?)",
                         "give the segmentation or mask file, not the image")
    return [FileSegment(int(v), " or ".join(names.get(int(v), ()))) for v in present]


def _label_values(array: np.ndarray) -> np.ndarray:
    """The non-zero values of a label array, in order (bincount for small non-negative labels)."""
    if array.size == 0:
        return np.zeros(0, np.int64)
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high < (1 << 16):
        counts = np.bincount(array.ravel().astype(np.int64, copy=False), minlength=1)
        values = np.flatnonzero(counts)
    else:
        values = np.unique(array)
    return values[values != 0]


# -- a volume file that is a label map --------------------------------------------------------------


def few_values(array: np.ndarray) -> Optional[np.ndarray]:
    """The distinct values of an integer (or boolean) image holding at most :data:`FEW_VALUES` of
    them, background included: a mask or label map; None for a grey image.

    A large image is first looked at on a strided sample (a CT rejects in milliseconds), then
    counted whole, so a label held by a few voxels only is not missed.
    """
    if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
        return None
    if array.size > 1 << 22 and len(np.unique(array[:: max(1, array.shape[0] // 16), ::4, ::4])) > FEW_VALUES:
        return None
    values = np.unique(array)
    return values if len(values) <= FEW_VALUES else None


def label_map_segments(array: np.ndarray, path: Optional[Path] = None) -> list[FileSegment]:
    """The segments of a volume file's voxels when the file is a label map, else [] (a grey image,
    or nothing set).

    A label map is an integer image of :func:`few_values`, or one whose every label value is named
    by the file (TotalSegmentator's multi-label output: up to 117 named classes; see
    :func:`segforge.label_names.label_names_of`). Names come from the file where it gives them.
    """
    names = label_names_of(path) if path is not None else {}
    values = few_values(array)
    if values is None and names and np.issubdtype(array.dtype, np.integer):
        present = _label_values(array)
        if len(present) <= MAX_UNNAMED_LABELS and all(int(v) in names for v in present):
            values = present
    if values is None or (len(values) and values.min() < 0):
        return []
    return [FileSegment(int(v), " or ".join(names.get(int(v), ()))) for v in values if v != 0]


# -- the choice -------------------------------------------------------------------------------------


def _choose(segments: list[FileSegment], selector: Optional[str], path: Path) -> FileSegment:
    if not segments:
        raise InputError(f"The file {path.name} holds no segment", "every voxel is 0 and its header names none",
                         "give a file with the vessel segmented")
    if selector is None:
        if len(segments) == 1:
            return segments[0]
        raise InputError(f"The file {path.name} holds {len(segments)} segments", f"it holds {_listing(segments)}",
                         f"name the one to use, as {path.name}:LABEL or {path.name}:NAME")
    matches = _matching(segments, selector)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        ids = [m.id for m in matches if m.id]
        raise InputError(f"{selector!r} names {len(matches)} segments of {path.name}",
                         f"it matches {_listing(matches)}",
                         f"use the segment's ID instead ({', '.join(ids)})" if len(ids) == len(matches)
                         else "use the segment's label value or name instead, whichever is its own")
    named = _named_but_absent(path, selector)
    why = f"it holds {_listing(segments)}"
    if named:
        why = f"its label table names {selector!r} (label {named}) but no voxel holds it; " + why
    raise InputError(f"The file {path.name} has no segment {selector!r}", why, "choose one of those, as FILE:LABEL or "
                     "FILE:NAME")


def _matching(segments: list[FileSegment], selector: str) -> list[FileSegment]:
    """Segments a selector names: a label value or an exact name or ID (digits may be either, and
    naming two segments so is ambiguous), else a name in any case."""
    exact = [s for s in segments if selector in _names(s) or selector == s.id]
    if selector.lstrip("-").isdigit():
        by_value = [s for s in segments if s.value == int(selector)]
        return by_value + [s for s in exact if s not in by_value]
    if exact:
        return exact
    folded = selector.casefold()
    return [s for s in segments if folded in (n.casefold() for n in _names(s))]


def _names(segment: FileSegment) -> tuple[str, ...]:
    return tuple(n for n in segment.name.split(" or ") if n) if not segment.id else (segment.name,)


def _named_but_absent(path: Path, selector: str) -> Optional[int]:
    """The label value the file's label table gives ``selector`` although no voxel holds it."""
    for value, names in label_names_of(path).items():
        if selector in names or selector.casefold() in (n.casefold() for n in names):
            return value
    return None


def _listing(segments: Sequence[FileSegment]) -> str:
    shown = ", ".join(s.describe() for s in segments[:LISTED])
    more = len(segments) - LISTED
    return shown + (f" and {more} more" if more > 0 else "")
