"""Table nodes from rows and columns: numbers stay numbers, also through CSV."""
from __future__ import annotations

import math

import pytest

from segforge.mrml import load_table, rows_from_table, save_node, table_from_columns, table_from_rows

ROWS = [
    {"branch": "LAD", "length_mm": 112.5, "points": 80, "stenosis": True, "id": 2**40},
    {"branch": "RCA", "length_mm": None, "points": 64, "stenosis": False, "id": 7, "note": "occluded"},
]


def column_types(table_node) -> dict[str, str]:
    table = table_node.GetTable()
    return {table.GetColumn(c).GetName(): table.GetColumn(c).GetDataTypeAsString()
            for c in range(table.GetNumberOfColumns())}


def assert_rows_equal(actual, expected):
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[key])
            else:
                assert got[key] == value and type(got[key]) is type(value), key


EXPECTED = [
    {"branch": "LAD", "length_mm": 112.5, "points": 80, "stenosis": True, "id": 2**40, "note": ""},
    {"branch": "RCA", "length_mm": math.nan, "points": 64, "stenosis": False, "id": 7, "note": "occluded"},
]


def test_rows_become_typed_columns(mrml_scene):
    table = table_from_rows(ROWS, "Branches", units={"length_mm": "mm"})
    assert table.GetName() == "Branches"
    assert column_types(table) == {"branch": "string", "length_mm": "double", "points": "int",
                                   "stenosis": "bit", "id": "long long", "note": "string"}
    assert table.GetColumnUnitLabel("length_mm") == "mm"
    assert_rows_equal(rows_from_table(table), EXPECTED)


def test_column_order_can_be_chosen(mrml_scene):
    table = table_from_rows(ROWS, columns=["points", "branch"])
    assert list(column_types(table)) == ["points", "branch"]


def test_columns_of_different_length_are_refused(mrml_scene):
    with pytest.raises(ValueError, match="differ in length"):
        table_from_columns({"a": [1, 2], "b": [1]})


def test_integer_column_with_a_gap_becomes_floating_point(mrml_scene):
    table = table_from_columns({"count": [1, None, 3]})
    assert column_types(table)["count"] == "double"
    values = [row["count"] for row in rows_from_table(table)]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 3.0


def test_csv_round_trip_keeps_types_and_units(mrml_scene, tmp_path):
    table = table_from_rows(ROWS, "Branches", units={"length_mm": "mm"})
    path = save_node(table, tmp_path / "branches.csv")
    assert (tmp_path / "branches.schema.csv").is_file()
    assert path.read_text().splitlines()[0] == '"branch","length_mm","points","stenosis","id","note"'

    loaded = load_table(path)
    assert loaded.GetName() == "branches"
    assert column_types(loaded) == column_types(table)
    assert loaded.GetColumnUnitLabel("length_mm") == "mm"
    assert_rows_equal(rows_from_table(loaded), EXPECTED)
