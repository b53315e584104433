"""The model catalog: the shipped file, its schema, user catalogs, and clear errors."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from http_fixture import catalog_document, model_record, write_catalog
from segforge.catalog import (CATALOG_ENV, UNVERIFIED, NnunetSpec, load_catalog, read_catalog_file,
                              unverified_warning)
from segforge.catalog.catalog import catalog_problems, parse_catalog, shipped_catalog_path
from segforge.errors import ModelError
from segforge.resources import resource_path

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "Resources" / "Models" / "catalog.schema.json"
BODY = b"weights" * 10
URL = "https://models.example.org/releases/v1/liver.pt"


@pytest.fixture(autouse=True)
def _no_user_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from the shipped catalog alone, whatever the caller's environment."""
    monkeypatch.delenv(CATALOG_ENV, raising=False)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_catalog_validates_against_the_schema(validator):
    document = json.loads(shipped_catalog_path().read_text(encoding="utf-8"))
    errors = [error.message for error in validator.iter_errors(document)]
    assert errors == []
    assert catalog_problems(document) == []


def test_schema_and_catalog_are_found_where_the_wheel_puts_them():
    assert resource_path("Models/catalog.json") == shipped_catalog_path()
    assert resource_path("Models/catalog.schema.json").resolve() == SCHEMA_PATH.resolve()
    assert '"Resources/Models" = "segforge/resources/Models"' in (REPO / "pyproject.toml").read_text()


def test_shipped_default_vessel_model_is_builtin_and_weight_free():
    catalog = load_catalog()
    entry = catalog.get("vesselness-frangi")
    assert (entry.workflow, entry.framework, entry.url, entry.size_bytes, entry.sha256) == \
        ("vessel", "builtin", None, 0, None)
    assert entry.labels == {1: "vessels"}
    assert entry.is_builtin and entry.filename is None and not entry.is_archive
    assert set(entry.input.modality) == {"CT", "MR"}
    assert entry in catalog.for_workflow("vessel")


NNUNET = {"path": "Dataset501_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres", "folds": [0],
          "configuration": "3d_fullres"}


def nnunet(record: dict, **spec: object) -> None:
    """Make ``record`` an nnunetv2 archive with an nnunet spec (``spec`` overrides its fields)."""
    record.update(framework="nnunetv2", url=URL[:-3] + ".zip", nnunet={**copy.deepcopy(NNUNET), **spec})


def composite(record: dict, **overrides: object) -> None:
    """Make ``record`` a composite of two parts (``overrides`` change its fields)."""
    record.update(framework="composite", url=None, sha256=None, size_bytes=0, parts=["part-a", "part-b"])
    record.update(overrides)


# (name, change to a valid downloadable record, still valid?)
_CASES = [
    ("valid", lambda r: None, True),
    ("valid zip, no spacing",
     lambda r: r.update(url=URL[:-3] + ".zip", input={"modality": ["CT", "MR"], "spacing_mm": None}), True),
    ("valid file url", lambda r: r.update(url="file:///srv/models/liver.pt"), True),
    ("valid builtin", lambda r: r.update(framework="builtin", url=None, sha256=None, size_bytes=0), True),
    ("builtin with url", lambda r: r.update(framework="builtin", sha256=None, size_bytes=0), False),
    ("builtin with size", lambda r: r.update(framework="builtin", url=None, sha256=None), False),
    ("download without url", lambda r: r.update(url=None), False),
    ("unverified download", lambda r: r.update(sha256=None), True),
    ("unverified download of unknown size", lambda r: r.update(sha256=None, size_bytes=None), True),
    ("unverified download of size 0", lambda r: r.update(sha256=None, size_bytes=0), False),
    ("verified download of unknown size", lambda r: r.update(size_bytes=None), False),
    ("builtin of unknown size", lambda r: r.update(framework="builtin", url=None, sha256=None, size_bytes=None), False),
    ("unverified download without url", lambda r: r.update(sha256=None, url=None), False),
    ("download of size 0", lambda r: r.update(size_bytes=0), False),
    ("size is a string", lambda r: r.update(size_bytes="70"), False),
    ("size is a boolean", lambda r: r.update(size_bytes=True), False),
    ("upper-case checksum", lambda r: r.update(sha256=r["sha256"].upper()), False),
    ("short checksum", lambda r: r.update(sha256=r["sha256"][:63]), False),
    ("url without file name", lambda r: r.update(url="https://models.example.org/"), False),
    ("url to hidden file", lambda r: r.update(url="https://models.example.org/.secret"), False),
    ("ftp url", lambda r: r.update(url="ftp://models.example.org/liver.pt"), False),
    ("id with slash", lambda r: r.update(id="../liver"), False),
    ("id with capital", lambda r: r.update(id="Liver"), False),
    ("id starting with dot", lambda r: r.update(id=".liver"), False),
    ("unknown workflow", lambda r: r.update(workflow="brain"), False),
    ("unknown framework", lambda r: r.update(framework="onnx"), False),
    ("empty licence", lambda r: r.update(licence=""), False),
    ("label 0", lambda r: r["labels"].update({"0": "background"}), False),
    ("label not a number", lambda r: r["labels"].update({"x": "lung"}), False),
    ("empty label name", lambda r: r["labels"].update({"3": ""}), False),
    ("no labels", lambda r: r.update(labels={}), False),
    ("lower-case modality", lambda r: r["input"].update(modality=["ct"]), False),
    ("no modality", lambda r: r["input"].update(modality=[]), False),
    ("modality twice", lambda r: r["input"].update(modality=["CT", "CT"]), False),
    ("two spacings", lambda r: r["input"].update(spacing_mm=[1, 1]), False),
    ("zero spacing", lambda r: r["input"].update(spacing_mm=[1, 0, 1]), False),
    ("extra input field", lambda r: r["input"].update(axes="RAS"), False),
    ("orientation RAS", lambda r: r["input"].update(orientation="RAS"), True),
    ("orientation null", lambda r: r["input"].update(orientation=None), True),
    ("orientation LPS", lambda r: r["input"].update(orientation="LPS"), False),
    ("orientation lower case", lambda r: r["input"].update(orientation="ras"), False),
    ("nnunet spec", nnunet, True),
    ("nnunet, unverified, unknown size", lambda r: (nnunet(r), r.update(sha256=None, size_bytes=None)), True),
    ("nnunet path is the folder", lambda r: nnunet(r, path="."), True),
    ("nnunet folds all and 1", lambda r: nnunet(r, folds=["all", 1]), True),
    ("nnunet fold 2.0", lambda r: nnunet(r, folds=[2.0]), True),
    ("nnunet on torchscript", lambda r: (nnunet(r), r.update(framework="torchscript")), False),
    ("nnunet null", lambda r: (nnunet(r), r.update(nnunet=None)), False),
    ("nnunet not an object", lambda r: (nnunet(r), r.update(nnunet="Dataset501")), False),
    ("nnunet absolute path", lambda r: nnunet(r, path="/opt/Dataset501_Liver"), False),
    ("nnunet path going up", lambda r: nnunet(r, path="Dataset501_Liver/../../etc"), False),
    ("nnunet path is ..", lambda r: nnunet(r, path=".."), False),
    ("nnunet path ending in /", lambda r: nnunet(r, path="Dataset501_Liver/"), False),
    ("nnunet path with backslash", lambda r: nnunet(r, path="Dataset501_Liver\\fold_0"), False),
    ("nnunet empty path", lambda r: nnunet(r, path=""), False),
    ("nnunet no folds", lambda r: nnunet(r, folds=[]), False),
    ("nnunet negative fold", lambda r: nnunet(r, folds=[-1]), False),
    ("nnunet fold twice", lambda r: nnunet(r, folds=[0, 0.0]), False),
    ("nnunet fold 1.5", lambda r: nnunet(r, folds=[1.5]), False),
    ("nnunet fold boolean", lambda r: nnunet(r, folds=[True]), False),
    ("nnunet fold ALL", lambda r: nnunet(r, folds=["ALL"]), False),
    ("nnunet folds not a list", lambda r: nnunet(r, folds=0), False),
    ("nnunet fold a list", lambda r: nnunet(r, folds=[[0]]), False),
    ("nnunet configuration with slash", lambda r: nnunet(r, configuration="3d/fullres"), False),
    ("nnunet missing configuration", lambda r: (nnunet(r), r["nnunet"].pop("configuration")), False),
    ("nnunet unknown field", lambda r: nnunet(r, trainer="nnUNetTrainer"), False),
    ("nnunet tile step 0.8", lambda r: nnunet(r, tile_step=0.8), True),
    ("nnunet tile step 1", lambda r: nnunet(r, tile_step=1), True),
    ("nnunet tile step 0", lambda r: nnunet(r, tile_step=0), False),
    ("nnunet tile step above 1", lambda r: nnunet(r, tile_step=1.5), False),
    ("nnunet tile step as text", lambda r: nnunet(r, tile_step="0.8"), False),
    ("nnunet tile step boolean", lambda r: nnunet(r, tile_step=True), False),
    ("composite", composite, True),
    ("composite with fast variant", lambda r: composite(r, fast_variant="liver-fast"), True),
    ("composite without parts", lambda r: (composite(r), r.pop("parts")), False),
    ("composite with url", lambda r: composite(r, url=URL), False),
    ("composite with checksum", lambda r: composite(r, sha256="0" * 64), False),
    ("composite of size 1", lambda r: composite(r, size_bytes=1), False),
    ("composite of unknown size", lambda r: composite(r, size_bytes=None), False),
    ("composite with no parts", lambda r: composite(r, parts=[]), False),
    ("composite with a part twice", lambda r: composite(r, parts=["part-a", "part-a"]), False),
    ("composite with a bad part id", lambda r: composite(r, parts=["Part A"]), False),
    ("composite with nnunet", lambda r: composite(r, nnunet=copy.deepcopy(NNUNET)), False),
    ("parts on a download", lambda r: r.update(parts=["part-a"]), False),
    ("parts on a builtin", lambda r: r.update(framework="builtin", url=None, sha256=None, size_bytes=0,
                                              parts=["part-a"]), False),
    ("fast variant", lambda r: r.update(fast_variant="liver-fast"), True),
    ("fast variant null", lambda r: r.update(fast_variant=None), True),
    ("fast variant bad id", lambda r: r.update(fast_variant="Liver Fast"), False),
    ("fast variant a number", lambda r: r.update(fast_variant=3), False),
    ("bundled file", lambda r: r.update(url="bundled://Models/liver.pt"), True),
    ("bundled file without checksum", lambda r: r.update(url="bundled://Models/liver.pt", sha256=None), False),
    ("bundled file going up", lambda r: r.update(url="bundled://Models/../liver.pt"), False),
    ("bundled file in a sub-folder", lambda r: r.update(url="bundled://Models/a/liver.pt"), False),
    ("bundled file outside Models", lambda r: r.update(url="bundled://Terminology/liver.pt"), False),
    ("bundled file with backslash", lambda r: r.update(url="bundled://Models/a\\liver.pt"), False),
    ("auto false", lambda r: r.update(auto=False), True),
    ("auto true", lambda r: r.update(auto=True), True),
    ("auto as text", lambda r: r.update(auto="no"), False),
    ("auto null", lambda r: r.update(auto=None), False),
    ("negative GPU memory", lambda r: r.update(min_gpu_memory_gb=-1), False),
    ("unknown field", lambda r: r.update(checksum="x"), False),
    ("missing description", lambda r: r.pop("description"), False),
    ("missing input", lambda r: r.pop("input"), False),
]


@pytest.mark.parametrize("name, change, valid", _CASES, ids=[c[0] for c in _CASES])
def test_runtime_checks_agree_with_the_schema(validator, name, change, valid):
    record = model_record("liver-test", URL, BODY)
    change(record)
    document = catalog_document([record])
    assert validator.is_valid(document) is valid
    problems = catalog_problems(document)
    assert (problems == []) is valid, problems


@pytest.mark.parametrize("document, valid", [
    ({"schema_version": 1, "models": []}, True),
    ({"models": []}, False),
    ({"schema_version": 2, "models": []}, False),
    ({"schema_version": 1, "models": {}}, False),
    ({"schema_version": 1, "models": [], "extra": 1}, False),
    ([], False),
])
def test_top_level_checks_agree_with_the_schema(validator, document, valid):
    assert validator.is_valid(document) is valid
    assert (catalog_problems(document) == []) is valid


def test_parsed_new_fields_are_typed():
    record = model_record("liver-test", URL, BODY, sha256=None, size_bytes=None, fast_variant="liver-fast")
    nnunet(record, folds=[0, "all", 2.0])
    record["input"]["orientation"] = "RAS"
    entry = parse_catalog(catalog_document([record]), "test")[0]
    assert entry.nnunet == NnunetSpec(NNUNET["path"], (0, "all", 2), "3d_fullres")
    assert isinstance(entry.nnunet.folds[2], int)
    assert entry.size_bytes is None and entry.sha256 is None and not entry.verified
    assert entry.input.orientation == "RAS" and entry.fast_variant == "liver-fast" and entry.parts == ()
    old = parse_catalog(catalog_document([model_record("old-style", URL, BODY)]), "test")[0]
    assert old.verified and old.nnunet is None and old.input.orientation is None and old.fast_variant is None
    mixed = model_record("mixed", None, b"")
    composite(mixed)
    entry = parse_catalog(catalog_document([mixed]), "test")[0]
    assert entry.parts == ("part-a", "part-b") and entry.is_composite and not entry.is_builtin


def test_parsed_entry_has_typed_fields():
    record = model_record("liver-test", URL.replace(".pt", "%20v2.zip"), BODY)
    entry = parse_catalog(catalog_document([record]), "test")[0]
    assert entry.labels == {1: "liver", 2: "spleen"}
    assert entry.input.spacing_mm == (1.5, 1.5, 2.0)
    assert entry.min_gpu_memory_gb == 4.0 and isinstance(entry.min_gpu_memory_gb, float)
    assert entry.filename == "liver v2.zip" and entry.is_archive
    assert entry.sha256 == record["sha256"] and entry.size_bytes == len(BODY)


def test_user_catalog_from_environment_is_merged(tmp_path, monkeypatch):
    path = write_catalog(tmp_path / "site.json", [model_record("liver-test", URL, BODY)])
    monkeypatch.setenv(CATALOG_ENV, str(path))
    catalog = load_catalog()
    shipped = load_catalog(extra=[]).ids()
    assert catalog.ids() == shipped + ["liver-test"]
    assert catalog.get("liver-test").source == str(path)
    assert [e.id for e in catalog.for_workflow("organ")][-1] == "liver-test"


def test_user_catalog_can_replace_a_downloadable_model_but_not_a_builtin(tmp_path):
    shipped = write_catalog(tmp_path / "shipped.json", [
        model_record("liver-test", URL, BODY),
        model_record("frangi", None, b"", framework="builtin", size_bytes=0, sha256=None)])
    mirror = URL.replace("models.example.org", "mirror.hospital.local")
    site = write_catalog(tmp_path / "site.json", [model_record("liver-test", mirror, BODY)])
    assert load_catalog(shipped, [site]).get("liver-test").url == mirror

    hijack = write_catalog(tmp_path / "hijack.json", [model_record("frangi", URL, BODY)])
    with pytest.raises(ModelError, match="builtin model 'frangi'"):
        load_catalog(shipped, [hijack])


def test_malformed_json_names_file_and_line(tmp_path, monkeypatch):
    path = tmp_path / "site.json"
    path.write_text('{"schema_version": 1,\n "models": [\n  {"id": "a",}\n ]\n}', encoding="utf-8")
    monkeypatch.setenv(CATALOG_ENV, str(path))
    with pytest.raises(ModelError) as caught:
        load_catalog()
    message = str(caught.value)
    assert str(path) in message and "not valid JSON" in message
    assert "line 3, column" in caught.value.why


def test_invalid_entry_names_file_entry_and_field(tmp_path, monkeypatch):
    good = model_record("good-model", URL, BODY)
    bad = model_record("bad-model", URL, BODY, sha256="abc")
    del bad["licence"]
    path = write_catalog(tmp_path / "site.json", [good, bad])
    monkeypatch.setenv(CATALOG_ENV, str(path))
    with pytest.raises(ModelError) as caught:
        load_catalog()
    error = caught.value
    assert str(path) in error.what
    assert "models[1] (bad-model): missing field 'licence'" in error.why
    assert "models[1] (bad-model): 'sha256' must be 64 lowercase hexadecimal digits" in error.why
    assert "good-model" not in error.why
    assert "catalog.schema.json" in error.todo


def test_many_problems_are_summarised(tmp_path):
    records = [model_record(f"m{i}", URL, BODY, sha256="bad") for i in range(8)]
    with pytest.raises(ModelError) as caught:
        read_catalog_file(write_catalog(tmp_path / "c.json", records))
    assert caught.value.why.count("'sha256'") == 5
    assert "and 3 more problem(s)" in caught.value.why


def test_duplicate_id_in_one_file_is_an_error(tmp_path):
    path = write_catalog(tmp_path / "c.json", [model_record("twice", URL, BODY)] * 2)
    with pytest.raises(ModelError, match="twice.*used twice"):
        read_catalog_file(path)


def test_missing_user_catalog_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.json"
    monkeypatch.setenv(CATALOG_ENV, str(missing))
    with pytest.raises(ModelError) as caught:
        load_catalog()
    assert str(missing) in caught.value.what and CATALOG_ENV in caught.value.todo


def test_unknown_model_id_lists_the_known_ones():
    with pytest.raises(ModelError) as caught:
        load_catalog().get("vesselnes-frangi")
    assert "'vesselnes-frangi'" in caught.value.what
    assert "vesselness-frangi" in caught.value.why


def test_records_are_not_modified_by_parsing():
    document = catalog_document([model_record("liver-test", URL, BODY)])
    before = copy.deepcopy(document)
    parse_catalog(document, "test")
    assert document == before


# --- links between entries: composite parts and fast variants (checked after merging) ----

def part_record(model_id: str, labels: dict, **overrides: object) -> dict:
    record = model_record(model_id, URL[:-3] + f"{model_id}.zip", BODY, sha256=None, size_bytes=None,
                          labels=labels, **overrides)
    nnunet(record)
    return record


def composite_record(model_id: str, labels: dict, parts: list, **overrides: object) -> dict:
    record = model_record(model_id, None, b"", labels=labels)
    composite(record, parts=parts, **overrides)
    return record


ORGANS = {"1": "liver", "2": "spleen"}
KIDNEYS = {"1": "kidney_left", "2": "kidney_right"}
ALL = {"1": "liver", "2": "spleen", "3": "kidney_left", "4": "kidney_right"}


def catalog_of(tmp_path: Path, records: list):
    shipped = write_catalog(tmp_path / "shipped.json", records)
    return load_catalog(shipped, [])


def test_composite_links_its_parts_by_name(tmp_path):
    catalog = catalog_of(tmp_path, [part_record("part-a", ORGANS), part_record("part-b", KIDNEYS),
                                    composite_record("whole", {"4": "kidney_right", "1": "liver", "2": "spleen",
                                                               "3": "kidney_left"}, ["part-a", "part-b"],
                                                     fast_variant="part-a")])
    whole = catalog.get("whole")
    assert whole.parts == ("part-a", "part-b") and whole.fast_variant == "part-a" and whole.verified
    assert "unverified" in unverified_warning(whole, catalog) and "part-a, part-b" in unverified_warning(whole, catalog)


@pytest.mark.parametrize("records, message", [
    ([part_record("part-a", {**ORGANS, "3": "pancreas"}), part_record("part-b", KIDNEYS),
      composite_record("whole", ALL, ["part-a", "part-b"])],
     "whole (from {shipped}): its part 'part-a' labels pancreas, which the composite does not list"),
    ([part_record("part-a", ORGANS), composite_record("whole", ALL, ["part-a"])],
     "no part labels kidney_left, kidney_right"),
    ([part_record("part-a", ORGANS), composite_record("whole", ALL, ["part-a", "part-c"])],
     "its part 'part-c' is not another model of the catalog"),
    ([part_record("part-a", ORGANS), model_record("part-b", URL, BODY, labels=KIDNEYS),
      composite_record("whole", ALL, ["part-a", "part-b"])],
     "its part 'part-b' is a torchscript model; parts must be nnunetv2"),
    ([part_record("part-a", ORGANS), part_record("part-b", KIDNEYS),
      composite_record("whole", {**ALL, "5": "liver"}, ["part-a", "part-b"])],
     "the label name 'liver' is used twice"),
    ([composite_record("whole", ALL, ["whole"])], "its part 'whole' is not another model"),
    ([part_record("part-a", ORGANS, fast_variant="part-fast")],
     "part-a (from {shipped}): its fast_variant 'part-fast' is not another model of the catalog"),
    ([part_record("part-a", ORGANS, fast_variant="part-a")], "its fast_variant 'part-a' is not another model"),
    ([part_record("part-a", ORGANS, fast_variant="vessels"),
      model_record("vessels", URL, BODY, workflow="vessel")],
     "its fast_variant 'vessels' is of the vessel workflow, not organ"),
])
def test_broken_links_are_clear_errors(tmp_path, records, message):
    shipped = tmp_path / "shipped.json"
    assert catalog_problems(catalog_document(records)) == []  # each entry alone is valid
    with pytest.raises(ModelError) as caught:
        catalog_of(tmp_path, records)
    assert message.format(shipped=shipped) in caught.value.why
    assert "do not fit together" in caught.value.what and str(shipped) in caught.value.todo


def test_links_are_checked_after_merging_a_user_catalog(tmp_path):
    shipped = write_catalog(tmp_path / "shipped.json", [
        part_record("part-a", ORGANS), part_record("part-b", KIDNEYS),
        composite_record("whole", ALL, ["part-a", "part-b"])])
    assert load_catalog(shipped, []).get("whole").parts == ("part-a", "part-b")
    renamed = write_catalog(tmp_path / "site.json", [part_record("part-b", {"1": "kidney"})])
    with pytest.raises(ModelError) as caught:
        load_catalog(shipped, [renamed])
    assert "its part 'part-b' labels kidney, which the composite does not list" in caught.value.why
    assert "no part labels kidney_left, kidney_right" in caught.value.why


def test_unverified_warning_is_one_sentence_for_every_front_end():
    entry = parse_catalog(catalog_document([model_record("liver-test", URL, BODY, sha256=None)]), "t")[0]
    assert UNVERIFIED == "unverified: the publisher gives no checksum"
    assert unverified_warning(entry).startswith(f"liver-test is {UNVERIFIED}")
    checked = parse_catalog(catalog_document([model_record("liver-test", URL, BODY)]), "t")[0]
    assert unverified_warning(checked) is None
    assert unverified_warning(load_catalog().get("vesselness-frangi")) is None


# --- the TotalSegmentator entries ------------------------------------------------------

TS_RELEASE = "https://github.com/wasserth/TotalSegmentator/releases/download/v2.0.0-weights/"
TS_PARTS = {  # id suffix: (dataset folder, number of labels)
    "part1-organs": ("Dataset291_TotalSegmentator_part1_organs_1559subj", 24),
    "part2-vertebrae": ("Dataset292_TotalSegmentator_part2_vertebrae_1532subj", 26),
    "part3-cardiac": ("Dataset293_TotalSegmentator_part3_cardiac_1559subj", 18),
    "part4-muscles": ("Dataset294_TotalSegmentator_part4_muscles_1559subj", 23),
    "part5-ribs": ("Dataset295_TotalSegmentator_part5_ribs_1559subj", 26),
}


def test_totalsegmentator_total_labels_are_segforges_terminology():
    from segforge.organ.terminology import label_set

    catalog = load_catalog()
    total = catalog.get("totalseg-total")
    assert dict(total.labels) == label_set("total") and len(total.labels) == 117
    assert dict(catalog.get("totalseg-total-fast").labels) == label_set("total")


def test_totalsegmentator_parts_number_the_total_labels_in_order():
    """TotalSegmentator's class_map["total"] is its five parts' maps one after the other."""
    catalog = load_catalog()
    total = catalog.get("totalseg-total")
    assert total.parts == tuple(f"totalseg-total-{suffix}" for suffix in TS_PARTS)
    names = []
    for part_id in total.parts:
        part = catalog.get(part_id)
        assert sorted(part.labels) == list(range(1, len(part.labels) + 1))
        names += [part.labels[v] for v in sorted(part.labels)]
    assert names == [total.labels[v] for v in sorted(total.labels)]


def test_totalsegmentator_entries_describe_their_weights():
    catalog = load_catalog()
    total = catalog.get("totalseg-total")
    assert (total.framework, total.workflow, total.url, total.sha256, total.size_bytes) == \
        ("composite", "organ", None, None, 0)
    assert total.fast_variant == "totalseg-total-fast" and total.licence == "Apache-2.0"
    assert total.input.orientation == "RAS" and total.input.spacing_mm == (1.5, 1.5, 1.5)
    assert total.input.modality == ("CT",)
    fast = catalog.get("totalseg-total-fast")
    assert fast.url == TS_RELEASE + "Dataset297_TotalSegmentator_total_3mm_1559subj.zip"
    assert fast.nnunet == NnunetSpec("Dataset297_TotalSegmentator_total_3mm_1559subj/"
                                     "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres",
                                     (0,), "3d_fullres", 0.8)  # TotalSegmentator's step for total
    assert fast.input.spacing_mm == (3.0, 3.0, 3.0) and fast.input.orientation == "RAS"
    for suffix, (dataset, count) in TS_PARTS.items():
        part = catalog.get(f"totalseg-total-{suffix}")
        assert part.framework == "nnunetv2" and part.url == TS_RELEASE + dataset + ".zip"
        assert part.nnunet == NnunetSpec(f"{dataset}/nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres", (0,),
                                         "3d_fullres", 0.8)
        assert len(part.labels) == count and part.input.spacing_mm == (1.5, 1.5, 1.5)
        assert part.input.orientation == "RAS" and part.licence == "Apache-2.0"
    for model_id in ["totalseg-total-fast", *total.parts]:
        entry = catalog.get(model_id)
        assert entry.sha256 is None and not entry.verified and entry.is_archive
        assert UNVERIFIED in unverified_warning(entry)
    assert UNVERIFIED in unverified_warning(total)
