"""Result tables (branch metrics, findings, organ statistics) as table nodes, types kept.

Each column gets one VTK type from its values: numbers stay numbers (so Slicer sorts and
plots them and the CSV's schema file records them), text stays text, and missing values
are NaN in number columns and "" in text columns.
"""
from __future__ import annotations

import logging
import math
import numbers
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import vtk

from .scene import get_scene

logger = logging.getLogger(__name__)

_INT32 = (-2**31, 2**31 - 1)


def table_from_rows(rows: Sequence[Mapping[str, Any]], name: str = "Table", *,
                    columns: Optional[Sequence[str]] = None, units: Optional[Mapping[str, str]] = None,
                    scene: Optional[Any] = None) -> Any:
    """A new table node, one row per dict; columns in first-seen order unless given."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    return table_from_columns({c: [row.get(c) for row in rows] for c in columns}, name, units=units, scene=scene)


def table_from_columns(columns: Mapping[str, Sequence[Any]], name: str = "Table", *,
                       units: Optional[Mapping[str, str]] = None, scene: Optional[Any] = None) -> Any:
    """A new table node from named columns of equal length."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"table columns differ in length: {sorted(lengths)}")
    scene = scene or get_scene()
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table = node.GetTable()
    for column_name, values in columns.items():
        table.AddColumn(_vtk_column(str(column_name), list(values)))
    for column_name, unit in (units or {}).items():
        node.SetColumnUnitLabel(column_name, unit)
    node.Modified()
    logger.debug("table '%s': %d columns", node.GetName(), len(columns))
    return node


def rows_from_table(table_node: Any) -> list[dict[str, Any]]:
    """The table as dict rows with Python values (int, float, bool, str)."""
    table = table_node.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    readers = [_reader(column) for column in columns]
    return [{column.GetName(): read(column, r) for column, read in zip(columns, readers)}
            for r in range(table.GetNumberOfRows())]


def _vtk_column(name: str, values: list[Any]) -> vtk.vtkAbstractArray:
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present) and len(present) == len(values):
        column, convert, missing = vtk.vtkBitArray(), int, 0
    elif present and all(isinstance(v, numbers.Integral) for v in present) and len(present) == len(values):
        small = all(_INT32[0] <= int(v) <= _INT32[1] for v in present)
        column, convert, missing = (vtk.vtkIntArray() if small else vtk.vtkLongLongArray()), int, 0
    elif all(isinstance(v, numbers.Real) for v in present):
        column, convert, missing = vtk.vtkDoubleArray(), float, math.nan
    else:
        column, convert, missing = vtk.vtkStringArray(), str, ""
    column.SetName(name)
    column.SetNumberOfValues(len(values))
    for index, value in enumerate(values):
        column.SetValue(index, missing if value is None else convert(value))
    return column


def _reader(column: vtk.vtkAbstractArray):
    if isinstance(column, vtk.vtkBitArray):
        return lambda c, r: bool(c.GetValue(r))
    if isinstance(column, vtk.vtkStringArray):
        return lambda c, r: c.GetValue(r)
    if isinstance(column, vtk.vtkDataArray) and column.GetDataType() in (vtk.VTK_FLOAT, vtk.VTK_DOUBLE):
        return lambda c, r: float(c.GetValue(r))
    return lambda c, r: int(c.GetValue(r))
