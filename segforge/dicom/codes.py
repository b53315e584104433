"""Slicer terminology strings <-> DICOM coded concepts, so a segment keeps its meaning both ways.

A segment in SegForge carries its terminology as the string Slicer stores in a segment's tag
(``context~category~type~type modifier~region context~region~region modifier``, each concept
``scheme^code^meaning``, see :func:`segforge.organ.terminology.slicer_terminology_string`).
A DICOM SEG carries the same concepts as code sequences. Both directions live here, and the
string is always written by the organ terminology's one writer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pydicom.sr.coding import Code

from ..organ.terminology import CodedConcept, StructureTerm, slicer_terminology_string, term_for


@dataclass(frozen=True)
class SegmentCodes:
    """The coded concepts of one segment, as a DICOM SEG's segment description holds them."""

    category: Code
    type: Code
    type_modifier: Optional[Code] = None
    region: Optional[Code] = None
    region_modifier: Optional[Code] = None


def _code(part: str) -> Optional[Code]:
    fields = part.split("^")
    if len(fields) != 3 or not all(f.strip() for f in fields):
        return None
    scheme, value, meaning = fields
    return Code(value=value, scheme_designator=scheme, meaning=meaning)


def codes_of_segment(name: str, terminology: Optional[str]) -> SegmentCodes:
    """The segment's codes from its Slicer terminology string; without one (or an unreadable
    one), the term SegForge's terminology gives the name (a generic "Tissue" for unknown names)."""
    if terminology:
        parts = terminology.split("~")
        if len(parts) == 7:
            category, type_ = _code(parts[1]), _code(parts[2])
            if category is not None and type_ is not None:
                return SegmentCodes(category, type_, _code(parts[3]), _code(parts[5]), _code(parts[6]))
    term = term_for(name)
    return SegmentCodes(_as_code(term.category), _as_code(term.type), _optional(term.modifier),
                        _optional(term.region), _optional(term.region_modifier))


def _as_code(concept: CodedConcept) -> Code:
    return Code(value=concept.code, scheme_designator=concept.scheme, meaning=concept.meaning)


def _optional(concept: Optional[CodedConcept]) -> Optional[Code]:
    return None if concept is None else _as_code(concept)


def _concept(code: Optional[Code]) -> Optional[CodedConcept]:
    if code is None:
        return None
    return CodedConcept(str(code.scheme_designator), str(code.value), str(code.meaning))


def terminology_of_codes(name: str, codes: SegmentCodes, color: tuple[float, float, float]) -> str:
    """The Slicer terminology string of a segment read from a DICOM SEG (its codes kept as they are)."""
    term = StructureTerm(name, _concept(codes.category), _concept(codes.type), _concept(codes.type_modifier),
                         color, verified=False, region=_concept(codes.region),
                         region_modifier=_concept(codes.region_modifier))
    return slicer_terminology_string(term)
