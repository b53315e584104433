"""The names a label file gives its label values: Slicer's ``.seg.nrrd`` header, TotalSegmentator's
NIfTI header extension, or a ``label_names.json`` beside the file.

A segment is chosen by name far more often than by number ("aorta", not 52), and each tool
keeps its names somewhere else: Slicer writes ``SegmentN_Name`` / ``_LabelValue`` / ``_Layer``
fields into the NRRD header; TotalSegmentator's multi-label output (``--ml``) carries a
CaretExtension XML label table in a NIfTI-1 header extension (``<Label Key="52">aorta</Label>``);
the project's sample data keeps TotalSegmentator's names in ``label_names.json`` beside the
file. These functions only read names; :mod:`segforge.segment_input` picks the segment.
"""
from __future__ import annotations

import gzip
import json
import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

#: A JSON file of label names beside a label map (what TotalSegmentator's examples ship).
LABEL_NAMES_JSON = "label_names.json"
#: NIfTI header extensions are small; a larger one is not a label table worth reading.
_MAX_EXTENSION_BYTES = 4 << 20


@dataclass(frozen=True)
class FileSegment:
    """One segment a file holds: its label value in its layer, its name ("" when none), its ID."""

    value: int
    name: str = ""
    layer: int = 0
    id: str = ""

    def describe(self) -> str:
        """How an error lists it: ``52 aorta``, ``"Aorta" (layer 1, label 1)``, ``label 3``."""
        if self.id:
            return f'"{self.name}"' + (f" (layer {self.layer}, label {self.value})" if self.layer else
                                       f" (label {self.value})")
        return f"{self.value} {self.name}" if self.name else f"label {self.value}"


def seg_nrrd_segments(fields: Mapping[str, str]) -> list[FileSegment]:
    """The segments a ``.seg.nrrd`` header names (``SegmentN_*`` fields), in their order; [] for none."""
    segments = []
    n = 0
    while f"Segment{n}_LabelValue" in fields or f"Segment{n}_Name" in fields:
        name = fields.get(f"Segment{n}_Name", "").strip()
        try:
            value = int(fields.get(f"Segment{n}_LabelValue", "1"))
            layer = int(fields.get(f"Segment{n}_Layer", "0"))
        except ValueError:
            value, layer = n + 1, 0
        segments.append(FileSegment(value, name, layer, fields.get(f"Segment{n}_ID", "").strip() or f"Segment_{n}"))
        n += 1
    return segments


def label_names_of(path: Path) -> dict[int, tuple[str, ...]]:
    """Label value -> its names for a label-map file: its NIfTI label table, else a
    ``label_names.json`` beside it (see :func:`names_from_json`); {} when neither has names."""
    table = nifti_label_table(path) if path.name.lower().endswith((".nii", ".nii.gz")) else {}
    if table:
        return {value: (name,) for value, name in table.items()}
    beside = path.parent / LABEL_NAMES_JSON
    if beside.is_file():
        try:
            return names_from_json(json.loads(beside.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}
    return {}


def names_from_json(data: Any) -> dict[int, tuple[str, ...]]:
    """``{"1": "spleen", ...}``, ``{"spleen": 1, ...}``, or several such schemes by name
    (``{"total": {...}, "total_mr": {...}}``, as TotalSegmentator's tasks number their classes
    differently): the file does not say which scheme it uses, so each value keeps every name
    the schemes give it (a name then picks the one value it names in any scheme)."""
    if not isinstance(data, dict):
        return {}
    if data and all(isinstance(v, dict) for v in data.values()):
        merged: dict[int, tuple[str, ...]] = {}
        for scheme in data.values():
            for value, names in names_from_json(scheme).items():
                merged[value] = merged.get(value, ()) + tuple(n for n in names if n not in merged.get(value, ()))
        return merged
    flat = _flat_names(data)
    return {value: (name,) for value, name in flat.items()}


def _flat_names(data: dict) -> dict[int, str]:
    names: dict[int, str] = {}
    for key, value in data.items():
        if str(key).strip().lstrip("-").isdigit() and isinstance(value, str):
            names[int(key)] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            names[value] = str(key)
    return names


def nifti_label_table(path: Path) -> dict[int, str]:
    """The label table of a NIfTI-1/2 header extension (CaretExtension XML, as TotalSegmentator
    writes it); {} when the file has none or it cannot be read."""
    try:
        with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as stream:
            head = stream.read(544)
            layout = _nifti_layout(head)
            if layout is None:
                return {}
            header_size, data_offset, endian = layout
            if data_offset <= header_size + 4 or data_offset - header_size > _MAX_EXTENSION_BYTES:
                return {}
            rest = head[header_size:] + stream.read(max(0, data_offset - len(head)))
    except (OSError, EOFError, ValueError):
        return {}
    if len(rest) < 4 or rest[0] == 0:  # the extender's first byte: 0 = no extension
        return {}
    names: dict[int, str] = {}
    at = 4
    while at + 8 <= len(rest):
        size, _code = struct.unpack(endian + "ii", rest[at:at + 8])
        if size < 8 or at + size > len(rest):
            break
        names.update(_caret_labels(rest[at + 8:at + size]))
        at += size
    return names


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def _nifti_layout(head: bytes) -> Optional[tuple[int, int, str]]:
    """(header size, data offset, byte order) of a NIfTI-1 or NIfTI-2 header; None otherwise."""
    for endian in ("<", ">"):
        if len(head) >= 352 and struct.unpack(endian + "i", head[:4])[0] == 348:
            return 348, int(struct.unpack(endian + "f", head[108:112])[0]), endian
        if len(head) >= 544 and struct.unpack(endian + "i", head[:4])[0] == 540:
            return 540, int(struct.unpack(endian + "q", head[168:176])[0]), endian
    return None


def _caret_labels(content: bytes) -> dict[int, str]:
    """``<Label Key="N" ...>name</Label>`` entries of a CaretExtension XML block."""
    text = content.rstrip(b"\x00 \n\r\t").decode("utf-8", errors="replace").strip()
    if "<LabelTable" not in text:
        return {}
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return {}
    names = {}
    for label in root.iter("Label"):
        key, name = label.get("Key", ""), (label.text or "").strip()
        if key.strip().lstrip("-").isdigit() and name:
            names[int(key)] = name
    return names
