"""The model catalog: the shipped file, its schema, user catalogs, and clear errors."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from http_fixture import catalog_document, model_record, write_catalog
from segforge.catalog import CATALOG_ENV, load_catalog, read_catalog_file
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


# (name, change to a valid downloadable record, still valid?)
_CASES = [
    ("valid", lambda r: None, True),
    ("valid zip, no spacing", lambda r: r.update(url=URL[:-3] + ".zip", input={"modality": ["CT", "MR"], "spacing_mm": None}), True),
    ("valid file url", lambda r: r.update(url="file:///srv/models/liver.pt"), True),
    ("valid builtin", lambda r: r.update(framework="builtin", url=None, sha256=None, size_bytes=0), True),
    ("builtin with url", lambda r: r.update(framework="builtin", sha256=None, size_bytes=0), False),
    ("builtin with size", lambda r: r.update(framework="builtin", url=None, sha256=None), False),
    ("download without url", lambda r: r.update(url=None), False),
    ("download without checksum", lambda r: r.update(sha256=None), False),
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
    ("extra input field", lambda r: r["input"].update(orientation="RAS"), False),
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
    assert catalog.ids() == ["vesselness-frangi", "liver-test"]
    assert catalog.get("liver-test").source == str(path)
    assert [e.id for e in catalog.for_workflow("organ")] == ["liver-test"]


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
