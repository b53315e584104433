"""SNOMED CT terminology and display colours of the structures SegForge segments.

Slicer describes a segment by a *terminology entry*: a category (Anatomical Structure,
Tissue...), a type (Liver, T4 vertebra...), an optional type modifier (Left, Right) and an
optional anatomic region with its modifier, each a coded concept of SNOMED CT (coding
scheme designator ``SCT``). With it a segment is "Kidney, Right" to Slicer, to DICOM SEG
export and to any other reader, whatever the user renamed it to.

The data is ``Resources/Terminology/structures.json``: every code once, with the public
sources its value and meaning were checked against, and for each structure name its
concepts, a colour (RGB 0-255, after Slicer's GenericAnatomyColors) and ``verified``.
A structure is verified only when all its codes are and the type is the structure itself,
not a generic stand-in; the few that are not say why in the data file. The file also keeps
the label names of the models it covers (TotalSegmentator ``total`` and ``total_mr``,
SegForge ``ct-tissues``), so a label value can be named without the model installed.

Pure Python: no Qt and no ``slicer`` import. :func:`slicer_terminology_string` writes the
very string Slicer's ``vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry``
writes (a test checks it against Slicer's own logic), ready for
:class:`segforge.mrml.SegmentSpec` or :class:`segforge.segmentation_file.SegmentInfo`.
"""
from __future__ import annotations

import functools
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import SegForgeError
from ..resources import resource_path

#: The data file, relative to Resources/.
TERMINOLOGY_RESOURCE = "Terminology/structures.json"
#: Slicer's default terminology contexts (the same values as :mod:`segforge.mrml.segments`).
GENERAL_ANATOMY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_REGION_CONTEXT = "Anatomic codes - DICOM master list"
SCHEME = "SCT"
#: Separators of Slicer's serialization; no code or meaning may contain them.
_RESERVED = ("~", "^", "|")

_SIDE_TOKENS = {"left": "Left", "right": "Right"}
#: Colours (0..1) for names the data file does not know: distinct hues, none of them grey.
_PALETTE: tuple[tuple[float, float, float], ...] = tuple(
    (r / 255.0, g / 255.0, b / 255.0) for r, g, b in (
        (128, 174, 128), (241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79),
        (221, 130, 101), (144, 238, 144), (192, 104, 88), (220, 245, 20), (78, 63, 0),
        (255, 250, 220), (230, 220, 70), (200, 200, 235), (250, 250, 210), (244, 214, 49),
        (0, 151, 206), (183, 156, 220), (183, 214, 211), (152, 189, 207), (178, 212, 242)))


@dataclass(frozen=True)
class CodedConcept:
    """One coded concept: coding scheme designator, code value and code meaning."""

    scheme: str
    code: str
    meaning: str

    def __post_init__(self) -> None:
        for part in (self.scheme, self.code, self.meaning):
            if not isinstance(part, str) or not part.strip() or any(c in part for c in _RESERVED):
                raise ValueError(f"invalid coded concept part {part!r} in {self!r}")

    def as_tuple(self) -> tuple[str, str, str]:
        """(scheme, code, meaning): the ``Code`` tuple of :func:`segforge.mrml.terminology_entry`."""
        return (self.scheme, self.code, self.meaning)


@dataclass(frozen=True)
class StructureTerm:
    """The terminology of one structure name, and its display colour (RGB in 0..1).

    ``verified`` is False for names the data file does not know (a generic term) and for
    the few entries whose specific concept could not be checked against a public source.
    """

    name: str
    category: CodedConcept
    type: CodedConcept
    modifier: Optional[CodedConcept]
    color_rgb: tuple[float, float, float]
    verified: bool
    region: Optional[CodedConcept] = None
    region_modifier: Optional[CodedConcept] = None
    note: str = ""

    @property
    def laterality(self) -> Optional[str]:
        """The side, "Left" or "Right", when a modifier (of the type or of the region) says so."""
        for modifier in (self.modifier, self.region_modifier):
            if modifier is not None and modifier.meaning in ("Left", "Right"):
                return modifier.meaning
        return None


@dataclass(frozen=True)
class _Data:
    terms: Mapping[str, StructureTerm]
    label_sets: Mapping[str, Mapping[int, str]]


def _bad_data(why: str) -> SegForgeError:
    return SegForgeError(f"SegForge's terminology file {TERMINOLOGY_RESOURCE} cannot be read", why,
                         "Reinstall SegForge; if you edited the file, fix the entry named here.")


def _color(value: Any, name: str) -> tuple[float, float, float]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)):
        raise _bad_data(f"structure {name!r}: color must be three integers 0-255, got {value!r}")
    return (value[0] / 255.0, value[1] / 255.0, value[2] / 255.0)


def _parse(raw: Any) -> _Data:
    if not isinstance(raw, dict) or raw.get("format") != "segforge-terminology" or raw.get("version") != 1:
        raise _bad_data("it is not a version 1 segforge-terminology file")
    scheme = raw.get("scheme", SCHEME)
    concepts: dict[str, CodedConcept] = {}
    for code, entry in dict(raw.get("concepts", {})).items():
        if not re.fullmatch(r"[0-9]{6,18}", str(code)) or not isinstance(entry, dict):
            raise _bad_data(f"concept {code!r} is not a SNOMED CT identifier with a meaning")
        try:
            concepts[code] = CodedConcept(scheme, code, entry.get("meaning"))
        except ValueError as error:
            raise _bad_data(str(error)) from None
    unverified = {code for code, entry in raw["concepts"].items() if not entry.get("verified")}

    def concept(name: str, entry: dict[str, Any], key: str, required: bool) -> Optional[CodedConcept]:
        code = entry.get(key)
        if code is None and not required:
            return None
        if code not in concepts:
            raise _bad_data(f"structure {name!r}: {key} {code!r} is not in 'concepts'")
        return concepts[code]

    terms: dict[str, StructureTerm] = {}
    for name, entry in dict(raw.get("structures", {})).items():
        if not isinstance(entry, dict):
            raise _bad_data(f"structure {name!r} is not an object")
        term = StructureTerm(
            name=name, category=concept(name, entry, "category", True), type=concept(name, entry, "type", True),
            modifier=concept(name, entry, "modifier", False), color_rgb=_color(entry.get("color"), name),
            verified=bool(entry.get("verified")), region=concept(name, entry, "region", False),
            region_modifier=concept(name, entry, "region_modifier", False), note=str(entry.get("note", "")))
        codes = [c.code for c in (term.category, term.type, term.modifier, term.region, term.region_modifier) if c]
        if term.verified and unverified.intersection(codes):
            raise _bad_data(f"structure {name!r} is marked verified but uses unverified codes "
                            f"{sorted(unverified.intersection(codes))}")
        terms[name] = term

    label_sets: dict[str, dict[int, str]] = {}
    for set_name, label_set in dict(raw.get("label_sets", {})).items():
        labels = {int(value): str(label) for value, label in dict(label_set.get("labels", {})).items()}
        missing = sorted(set(labels.values()) - set(terms))
        if missing:
            raise _bad_data(f"label set {set_name!r} names structures without terminology: {missing}")
        label_sets[set_name] = labels
    return _Data(terms, label_sets)


@functools.lru_cache(maxsize=1)
def _data() -> _Data:
    path = resource_path(TERMINOLOGY_RESOURCE)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _bad_data(str(error)) from None
    return _parse(raw)


def load_terms() -> dict[str, StructureTerm]:
    """Every structure name the data file knows, with its term (read once, then cached)."""
    return dict(_data().terms)


def label_set(name: str) -> dict[int, str]:
    """Label value -> structure name of a model the data file covers ("total", "total_mr",
    "ct-tissues", "vessel"); KeyError naming the known sets otherwise."""
    sets = _data().label_sets
    if name not in sets:
        raise KeyError(f"no label set {name!r}; known: {', '.join(sorted(sets))}")
    return dict(sets[name])


def normalize_name(name: str) -> str:
    """The data file's spelling of a structure name: lower case, words joined by "_"."""
    return "_".join(re.split(r"[\s\-]+", name.strip().lower()))


def palette_color(name: str) -> tuple[float, float, float]:
    """A colour for a name the data file does not know: the same name always gets the same colour."""
    return _PALETTE[zlib.crc32(normalize_name(name).encode("utf-8")) % len(_PALETTE)]


def term_for(name: str) -> StructureTerm:
    """The term of a structure name; never raises.

    Known names (also in another case or with spaces or hyphens for "_") get their term from
    the data file. Any other name gets Slicer's generic "Tissue / Tissue", a Left or Right
    modifier when the name says so, a palette colour and ``verified=False``.
    """
    terms = _data().terms
    term = terms.get(name) or terms.get(normalize_name(name))
    if term is not None:
        return term if term.name == name else _renamed(term, name)
    return _generic(name)


def _renamed(term: StructureTerm, name: str) -> StructureTerm:
    return StructureTerm(name, term.category, term.type, term.modifier, term.color_rgb, term.verified,
                         term.region, term.region_modifier, term.note)


def _generic(name: str) -> StructureTerm:
    tissue = CodedConcept(SCHEME, "85756007", "Tissue")
    sides = {_SIDE_TOKENS[token] for token in re.split(r"[^a-z]+", name.lower()) if token in _SIDE_TOKENS}
    modifier = None
    if len(sides) == 1:
        side = sides.pop()
        modifier = CodedConcept(SCHEME, "7771000" if side == "Left" else "24028007", side)
    return StructureTerm(name, tissue, tissue, modifier, palette_color(name), False,
                         note="Not in SegForge's terminology: a generic term.")


def _parts(concept: Optional[CodedConcept]) -> str:
    return "^".join(concept.as_tuple()) if concept is not None else "^^"


def slicer_terminology_string(term: StructureTerm, *, context: str = GENERAL_ANATOMY_CONTEXT,
                              region_context: str = ANATOMIC_REGION_CONTEXT) -> str:
    """The segment tag value ``TerminologyEntry`` Slicer writes for this term.

    Same format as ``SerializeTerminologyEntry`` (and :func:`segforge.mrml.terminology_entry`):
    ``context~category~type~type modifier~region context~region~region modifier``, each
    concept as ``scheme^code^meaning`` (``^^`` when absent).
    """
    return "~".join((context, _parts(term.category), _parts(term.type), _parts(term.modifier),
                     region_context, _parts(term.region), _parts(term.region_modifier)))
