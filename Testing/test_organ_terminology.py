"""Segment terminology: every structure SegForge segments has a real SNOMED CT term and a colour.

The codes are checked for what a machine can check (SNOMED CT identifier syntax: digits, a
partition identifier and a Verhoeff check digit, which catches any single typo and any swap
of neighbouring digits), the meanings and provenance for consistency, and the serialized
terms against Slicer itself: its own serializer, real segment tags that survive a
.seg.nrrd round trip, and its terminology logic loading SegForge's terms.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from segforge.organ import terminology as T
from segforge.organ.terminology import CodedConcept, StructureTerm

from conftest import SHARED_DATA

DATA_FILE = Path(__file__).resolve().parents[1] / "Resources" / T.TERMINOLOGY_RESOURCE
TS_LABEL_NAMES = SHARED_DATA / "organs" / "ts_ct_abdomen_3mm" / "label_names.json"
ANATOMICAL_STRUCTURE, TISSUE, MORPHOLOGY = "123037004", "85756007", "49755003"
LEFT, RIGHT, BOTH = "7771000", "24028007", "51440002"
CT_TISSUES = {1: "body", 2: "lungs", 3: "airway", 4: "bones", 5: "fat", 6: "muscle"}
#: Structures whose specific concept could not be checked against a public source (see the data file).
UNVERIFIED = {"portal_vein_and_splenic_vein", "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left",
              "autochthon_right", "iliopsoas_left", "iliopsoas_right", "intervertebral_discs"}

# Verhoeff's dihedral-group tables, as SNOMED CT's identifier specification uses them.
_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
      [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def verhoeff_valid(number: str) -> bool:
    check = 0
    for position, digit in enumerate(reversed(number)):
        check = _D[check][_P[position % 8][int(digit)]]
    return check == 0


def assert_sctid(code: str) -> None:
    """A SNOMED CT concept identifier: 6-18 digits, no leading zero, partition 00 (core) or 10
    (extension) concept, and a valid Verhoeff check digit."""
    assert re.fullmatch(r"[1-9][0-9]{5,17}", code), f"{code!r} is not a SNOMED CT identifier"
    assert code[-3:-1] in ("00", "10"), f"{code}: partition {code[-3:-1]} is not a concept's"
    assert verhoeff_valid(code), f"{code}: Verhoeff check digit is wrong (a typo?)"


def concepts_of(term: StructureTerm) -> list[CodedConcept]:
    return [c for c in (term.category, term.type, term.modifier, term.region, term.region_modifier) if c]


def side_of(name: str) -> str | None:
    tokens = set(re.split(r"[^a-z]+", name.lower()))
    sides = {"Left", "Right"} & {t.capitalize() for t in tokens}
    return sides.pop() if len(sides) == 1 else None


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The codes and their provenance
# ---------------------------------------------------------------------------------------------


def test_verhoeff_check_catches_typos():
    for good in ("10200004", "15825003", "123037004", "7771000", "24028007", "900000000000207008"):
        assert verhoeff_valid(good)
    assert not verhoeff_valid("10200005")     # last digit wrong
    assert not verhoeff_valid("12020004")     # neighbouring digits swapped
    assert not verhoeff_valid("15852003")


def test_every_code_is_a_snomed_ct_identifier_with_a_meaning_and_sources(raw):
    assert raw["scheme"] == "SCT" and raw["format"] == "segforge-terminology"
    source_names = set(raw["sources"])
    for code, concept in raw["concepts"].items():
        assert_sctid(code)
        meaning = concept["meaning"]
        assert meaning.strip() == meaning and meaning and not set("~^|") & set(meaning), (code, meaning)
        assert concept["sources"], code
        cited = {source.split(":")[0].split(" ")[0] for source in concept["sources"]}
        assert cited <= source_names, (code, cited - source_names)
        if concept["verified"]:
            # TotalSegmentator's own mapping is a cross-check, never the proof.
            assert cited - {"totalsegmentator"}, f"{code} is marked verified on TotalSegmentator's word alone"
        else:
            assert cited == {"totalsegmentator"} and "no DICOM" in " ".join(concept["sources"]), code


def test_structures_use_known_codes_and_are_verified_only_when_their_codes_are(raw):
    concepts = raw["concepts"]
    for name, entry in raw["structures"].items():
        codes = [entry[k] for k in ("category", "type", "modifier", "region", "region_modifier") if k in entry]
        assert all(code in concepts for code in codes), name
        if entry["verified"]:
            assert all(concepts[code]["verified"] for code in codes), name
        else:
            assert entry.get("note") or not all(concepts[c]["verified"] for c in codes), \
                f"{name} is unverified without saying why"
    assert {n for n, e in raw["structures"].items() if not e["verified"]} == UNVERIFIED


def test_categories_modifiers_and_laterality_codes_are_the_standard_ones(raw):
    concepts = raw["concepts"]
    assert concepts[ANATOMICAL_STRUCTURE]["meaning"] == "Anatomical Structure"
    assert concepts[TISSUE]["meaning"] == "Tissue"
    assert concepts[LEFT]["meaning"] == "Left" and concepts[RIGHT]["meaning"] == "Right"
    categories = {e["category"] for e in raw["structures"].values()}
    assert categories == {ANATOMICAL_STRUCTURE, TISSUE, MORPHOLOGY}
    modifiers = {e.get(k) for e in raw["structures"].values() for k in ("modifier", "region_modifier")}
    assert modifiers <= {None, LEFT, RIGHT, BOTH}


# ---------------------------------------------------------------------------------------------
# Coverage of the models' label names
# ---------------------------------------------------------------------------------------------


def test_the_shipped_label_names_match_totalsegmentators():
    total, total_mr = T.label_set("total"), T.label_set("total_mr")
    assert sorted(total) == list(range(1, 118)) and sorted(total_mr) == list(range(1, 51))
    assert total[1] == "spleen" and total[52] == "aorta" and total[117] == "costal_cartilages"
    if TS_LABEL_NAMES.is_file():   # the team's copy, when it is beside the checkout
        shared = json.loads(TS_LABEL_NAMES.read_text(encoding="utf-8"))
        assert {int(k): v for k, v in shared["total"].items()} == total
        assert {int(k): v for k, v in shared["total_mr"].items()} == total_mr
    with pytest.raises(KeyError, match="known: ct-tissues, total, total_mr, vessel"):
        T.label_set("nope")


@pytest.mark.parametrize("label_set", ["total", "total_mr", "ct-tissues", "vessel"])
def test_every_label_name_has_a_term_with_a_code_category_and_colour(label_set):
    terms = T.load_terms()
    for value, name in T.label_set(label_set).items():
        assert name in terms, f"{label_set} label {value} {name!r} has no terminology"
        term = T.term_for(name)
        assert term.name == name and term.category.scheme == term.type.scheme == "SCT"
        for concept in concepts_of(term):
            assert_sctid(concept.code)
        assert term.category.code in (ANATOMICAL_STRUCTURE, TISSUE, MORPHOLOGY)
        assert len(term.color_rgb) == 3 and all(0.0 <= c <= 1.0 for c in term.color_rgb)
        assert term.verified == (name not in UNVERIFIED)


def test_all_117_total_classes_are_covered_and_most_are_verified():
    names = list(T.label_set("total").values())
    assert len(names) == len(set(names)) == 117
    verified = [n for n in names if T.term_for(n).verified]
    assert len(verified) == 117 - len(UNVERIFIED & set(names)) == 110


def test_left_and_right_names_get_the_right_laterality():
    for name, term in T.load_terms().items():
        side = side_of(name)
        if side is None:
            assert term.laterality is None, name
            continue
        in_concept = side.lower() in term.type.meaning.lower().split()
        assert term.laterality == side or (in_concept and term.laterality is None), name
    kidney = T.term_for("kidney_right")
    assert (kidney.type.code, kidney.modifier) == ("64033007", CodedConcept("SCT", RIGHT, "Right"))
    cyst = T.term_for("kidney_cyst_left")   # a finding: the kidney and its side are the region
    assert cyst.category.code == MORPHOLOGY and cyst.modifier is None
    assert (cyst.region.code, cyst.region_modifier.code) == ("64033007", LEFT)
    assert T.term_for("rib_left_7").type == T.term_for("rib_right_7").type
    assert T.term_for("rib_left_7").modifier.code == LEFT and T.term_for("rib_right_7").modifier.code == RIGHT
    assert T.term_for("lungs").modifier.code == BOTH


def test_each_vertebra_and_rib_has_its_own_concept():
    vertebrae = [f"vertebrae_{p}{n}" for p, count in (("C", 7), ("T", 12), ("L", 5)) for n in range(1, count + 1)]
    vertebrae.append("vertebrae_S1")
    codes = [T.term_for(v).type.code for v in vertebrae]
    assert len(set(codes)) == 25
    for v in vertebrae:
        assert T.term_for(v).type.meaning == f"{v.split('_')[1]} vertebra"
    ribs = {T.term_for(f"rib_left_{n}").type.code for n in range(1, 13)}
    assert len(ribs) == 12 and "113197003" not in ribs   # not the generic "Rib"


def test_ct_tissues_and_the_vessel_segment():
    assert T.label_set("ct-tissues") == CT_TISSUES
    assert T.label_set("vessel") == {1: "vessels"}
    for name in ("fat", "muscle", "bones", "vessels"):
        assert T.term_for(name).category.code == TISSUE, name
    assert T.term_for("body").type.meaning == "Entire body"
    from segforge.vessel.outputs import VESSEL_SEGMENT
    assert T.slicer_terminology_string(T.term_for("vessels")) == VESSEL_SEGMENT.terminology


def test_different_structures_never_share_a_term():
    seen: dict[tuple, str] = {}
    for name, term in T.load_terms().items():
        key = tuple((c.code if c else None) for c in
                    (term.category, term.type, term.modifier, term.region, term.region_modifier))
        assert key not in seen, f"{name} and {seen[key]} have the same terminology"
        seen[key] = name


def test_colours_are_anatomical_and_neighbours_differ():
    terms = T.load_terms()

    def rgb(name: str) -> np.ndarray:
        return np.array(terms[name].color_rgb)

    for artery in ("aorta", "brachiocephalic_trunk", "subclavian_artery_left", "common_carotid_artery_right",
                   "iliac_artery_left"):
        r, g, b = rgb(artery)
        assert r > 0.6 and r > g and r > b, artery
    for vein in ("inferior_vena_cava", "superior_vena_cava", "brachiocephalic_vein_left", "iliac_vena_right",
                 "portal_vein_and_splenic_vein"):
        r, g, b = rgb(vein)
        assert b > r and b > 0.5, vein
    for bone in ("femur_left", "vertebrae_L3", "rib_right_4", "skull", "sternum", "hip_left", "bones"):
        r, g, b = rgb(bone)
        assert r > 0.75 and g > 0.6 and r > b, bone          # ivory / bone yellow
    assert np.allclose(rgb("liver") * 255, (221, 130, 101), atol=0.5)   # Slicer's liver colour
    neighbours = [("vertebrae_T11", "vertebrae_T12"), ("vertebrae_T12", "vertebrae_L1"),
                  ("vertebrae_L5", "vertebrae_S1"), ("vertebrae_S1", "sacrum"), ("rib_left_6", "rib_left_7"),
                  ("lung_upper_lobe_right", "lung_middle_lobe_right"), ("lung_middle_lobe_right",
                                                                        "lung_lower_lobe_right"),
                  ("gluteus_maximus_left", "gluteus_medius_left"), ("gluteus_medius_left", "gluteus_minimus_left"),
                  ("aorta", "brachiocephalic_trunk"), ("subclavian_artery_left", "common_carotid_artery_left"),
                  ("inferior_vena_cava", "iliac_vena_right"), ("kidney_left", "kidney_cyst_left"),
                  ("liver", "gallbladder"), ("stomach", "spleen"), ("pancreas", "duodenum")]
    for a, b in neighbours:
        assert np.abs(rgb(a) - rgb(b)).sum() * 255 >= 30, (a, b)


# ---------------------------------------------------------------------------------------------
# The API: names it does not know, caching, the serialized string
# ---------------------------------------------------------------------------------------------


def test_unknown_names_get_a_generic_unverified_term_and_never_raise():
    for name in ("my tumour", "", "   ", "x~y^z|w", "Lesion 3", "nodule_left"):
        term = T.term_for(name)
        assert term.name == name and not term.verified
        assert (term.category.code, term.type.code) == (TISSUE, TISSUE)
        assert term == T.term_for(name)                       # deterministic, colour included
        assert all(0.0 <= c <= 1.0 for c in term.color_rgb)
        assert T.slicer_terminology_string(term).count("~") == 6
    assert T.term_for("nodule_left").modifier.code == LEFT and T.term_for("my tumour").modifier is None
    assert len({T.palette_color(f"lesion {i}") for i in range(20)}) > 5


def test_known_names_are_found_in_another_spelling():
    term = T.term_for("Kidney Left")
    assert term.name == "Kidney Left" and term.verified and term.type.meaning == "Kidney"
    assert T.term_for("iliac-artery-right").type == T.term_for("iliac_artery_right").type
    assert T.term_for("vertebrae_L1") is T.term_for("vertebrae_L1")   # exact names: the cached term


def test_load_terms_is_cached_and_callers_cannot_change_it():
    terms = T.load_terms()
    terms.clear()
    assert len(T.load_terms()) == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        T.term_for("liver").verified = False


def test_terminology_string_format():
    term = T.term_for("kidney_cyst_right")
    assert T.slicer_terminology_string(term) == (
        "Segmentation category and type - 3D Slicer General Anatomy list"
        "~SCT^49755003^Morphologically Altered Structure~SCT^367643001^Cyst~^^"
        "~Anatomic codes - DICOM master list~SCT^64033007^Kidney~SCT^24028007^Right")
    assert T.slicer_terminology_string(T.term_for("liver")) == (
        "Segmentation category and type - 3D Slicer General Anatomy list"
        "~SCT^123037004^Anatomical Structure~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")


def test_the_module_needs_neither_qt_nor_slicer():
    import ast
    tree = ast.parse((Path(T.__file__)).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not imported & {"slicer", "qt", "ctk", "vtk", "PythonQt"}, imported


# ---------------------------------------------------------------------------------------------
# Against Slicer itself (the slicer-core wheel)
# ---------------------------------------------------------------------------------------------


def test_strings_are_exactly_what_slicers_serializer_writes(mrml_scene):
    import slicer
    from segforge.mrml import segments, terminology_entry
    assert (T.GENERAL_ANATOMY_CONTEXT, T.ANATOMIC_REGION_CONTEXT) == (segments.GENERAL_ANATOMY_CONTEXT,
                                                                      segments.ANATOMIC_REGION_CONTEXT)
    for name, term in T.load_terms().items():
        def code(concept):
            return concept.as_tuple() if concept else None
        expected = terminology_entry(code(term.category), code(term.type), type_modifier=code(term.modifier),
                                     region=code(term.region), region_modifier=code(term.region_modifier))
        string = T.slicer_terminology_string(term)
        assert string == expected, name
        entry = slicer.vtkSlicerTerminologyEntry()
        assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(string, entry), name
        assert entry.GetCategoryObject().GetCodeValue() == term.category.code
        assert entry.GetTypeObject().GetCodeValue() == term.type.code
        assert entry.GetTypeObject().GetCodeMeaning() == term.type.meaning
        assert (entry.GetTypeModifierObject().GetCodeValue() or None) == (term.modifier and term.modifier.code)
        assert (entry.GetRegionObject().GetCodeValue() or None) == (term.region and term.region.code)


def test_terms_round_trip_through_segment_tags_and_a_seg_nrrd_file(mrml_scene, tmp_path):
    from segforge.image import Image
    from segforge.mrml import (SegmentSpec, create_headless_slicer, labels_from_segments, load_segmentation,
                               new_segmentation_node, save_node, write_label_segments)
    names = list(T.load_terms())
    array = np.zeros((6, 6, 6), np.uint8)
    array.reshape(-1)[:len(names)] = np.arange(1, len(names) + 1)
    labels = Image(array, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    specs = [SegmentSpec(value, name, T.term_for(name).color_rgb, T.slicer_terminology_string(T.term_for(name)))
             for value, name in enumerate(names, start=1)]
    node = new_segmentation_node(labels, "Organs")
    write_label_segments(node, labels, specs)
    segmentation = node.GetSegmentation()
    for segment_id in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(segment_id)
        term = T.term_for(segment.GetName())
        assert segment.GetTerminology() == T.slicer_terminology_string(term)
        np.testing.assert_allclose(segment.GetColor(), term.color_rgb)

    path = save_node(node, tmp_path / "organs.seg.nrrd")
    fresh = create_headless_slicer(install=False)
    try:
        loaded = load_segmentation(path, scene=fresh.scene)
        back, back_specs = labels_from_segments(loaded, labels)
        assert np.array_equal(back.array, labels.array)
        assert [(s.label, s.name, s.terminology) for s in back_specs] == \
               [(s.label, s.name, s.terminology) for s in specs]
        for spec, loaded_spec in zip(specs, back_specs):
            np.testing.assert_allclose(loaded_spec.color, spec.color, atol=1e-6)
    finally:
        fresh.close()


def _slicer_index(logic, context: str) -> set[tuple]:
    """(category, type, modifier or None) codes of a terminology loaded in Slicer's logic."""
    import slicer
    index = set()
    for c in range(logic.GetNumberOfCategoriesInTerminology(context)):
        category = slicer.vtkSlicerTerminologyCategory()
        logic.GetNthCategoryInTerminology(context, c, category)
        for t in range(logic.GetNumberOfTypesInTerminologyCategory(context, category)):
            type_ = slicer.vtkSlicerTerminologyType()
            logic.GetNthTypeInTerminologyCategory(context, category, t, type_)
            index.add((category.GetCodeValue(), type_.GetCodeValue(), None))
            if type_.GetHasModifiers():
                for m in range(logic.GetNumberOfTypeModifiersInTerminologyType(context, category, type_)):
                    modifier = slicer.vtkSlicerTerminologyType()
                    logic.GetNthTypeModifierInTerminologyType(context, category, type_, m, modifier)
                    index.add((category.GetCodeValue(), type_.GetCodeValue(), modifier.GetCodeValue()))
    return index


def test_slicers_default_terminologies_know_the_types_taken_from_them(headless_slicer, raw):
    """Types whose provenance is Slicer's lists are in Slicer's lists, with the modifiers we use.

    Slicer's default terminology files ship with desktop Slicer, not with the slicer-core
    wheel; point SLICER_TERMINOLOGIES_DIR at a folder holding Slicer's ``*.term.json`` files
    (Modules/Loadable/Terminologies/Resources of a Slicer build) to run this check headless.
    """
    import slicer
    import vtk
    folder = os.environ.get("SLICER_TERMINOLOGIES_DIR")
    if not folder:
        pytest.skip("Slicer's default terminology files are not part of the slicer-core wheel "
                    "(set SLICER_TERMINOLOGIES_DIR to a folder with Slicer's *.term.json files)")
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    logic.SetModuleShareDirectory(folder)
    logic.SetMRMLScene(headless_slicer.scene)   # loads the default terminologies
    names = vtk.vtkStringArray()
    logic.GetLoadedTerminologyNames(names)
    loaded = {names.GetValue(i) for i in range(names.GetNumberOfValues())}
    master = "Segmentation category and type - DICOM master list"
    if not {T.GENERAL_ANATOMY_CONTEXT, master} <= loaded:
        pytest.skip(f"Slicer could not load its default terminologies from {folder}")
    slicer_types = _slicer_index(logic, T.GENERAL_ANATOMY_CONTEXT) | _slicer_index(logic, master)
    known = 0
    for name, term in T.load_terms().items():
        sources = " ".join(raw["concepts"][term.type.code]["sources"])
        if "slicer: type in" not in sources or (term.category.code, term.type.code, None) not in slicer_types:
            continue
        known += 1
        key = (term.category.code, term.type.code, term.modifier and term.modifier.code)
        assert key in slicer_types, f"{name}: Slicer lists {term.type.meaning} but not with this modifier"
    assert known >= 60
