"""Cohort tables: one table per workflow across the cases, as CSV and Parquet.

A case's rows are read back from the files its result folder holds (the single command's
``statistics.csv``, ``branches.csv`` + ``stenoses.csv``, ``summary.json``), so a case done in
this run and one skipped because an earlier run did it give the same rows. A case with no
rows (no branch found, statistics turned off) still has one row with its id, so no case is
missing from the table. The tables are rewritten whole, atomically (a temporary file renamed
over the old one), as cases finish: a reader never sees half a table.

- organ: a row per structure: voxels, volume (mL), mean and SD of the image;
- vessel: a row per branch: length, mean / min / max diameter (twice the radius), tortuosity,
  and its findings (stenoses, the worst stenosis %, dilatations; empty when the analysis did not run);
- interactive: a row per case: the lesion's voxels and volume (mL), prompts, backend.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..csv_table import write_csv
from ..output_set import replace_file

#: Column -> type (str, int, float), per workflow; the Parquet schema follows it.
COLUMNS: dict[str, dict[str, type]] = {
    "organ": {"case_id": str, "structure": str, "label": int, "voxels": int, "volume_ml": float, "mean": float,
              "sd": float},
    "vessel": {"case_id": str, "branch": int, "parent": int, "length_mm": float, "mean_diameter_mm": float,
               "min_diameter_mm": float, "max_diameter_mm": float, "tortuosity": float, "stenoses": int,
               "max_stenosis_percent": float, "dilatations": int},
    "interactive": {"case_id": str, "voxels": int, "volume_ml": float, "prompts": int, "backend": str},
}
#: The table files in the batch's --out: ``cohort_<workflow>.csv`` and ``.parquet``.
TABLE_STEM = "cohort_{workflow}"


def case_rows(workflow: str, case_id: str, folder: Path) -> list[dict[str, Any]]:
    """The case's rows of the cohort table, typed, read from its result folder."""
    rows = _READERS[workflow](Path(folder))
    columns = COLUMNS[workflow]
    typed = [{name: _typed(row.get(name), kind) for name, kind in columns.items() if name != "case_id"}
             for row in rows] or [{}]
    return [{"case_id": case_id, **{name: row.get(name) for name in columns if name != "case_id"}} for row in typed]


def _organ_rows(folder: Path) -> list[dict]:
    return _read_csv(folder / "statistics.csv")


def _vessel_rows(folder: Path) -> list[dict]:
    """A row per branch; the findings' cells are empty, not 0, when the stenosis analysis did not
    run (``--no-stenoses``: no stenoses.csv), since "none found" and "not looked for" differ."""
    analysed = (folder / "stenoses.csv").is_file()
    findings = _read_csv(folder / "stenoses.csv")
    rows = []
    for branch in _read_csv(folder / "branches.csv"):
        own = [f for f in findings if f.get("branch") == branch.get("id")]
        stenoses = [f for f in own if f.get("kind") == "stenosis"]
        percents = [p for p in (_typed(f.get("stenosis_percent"), float) for f in stenoses) if p is not None]
        rows.append({"branch": branch.get("id"), "parent": branch.get("parent"),
                     "length_mm": branch.get("length_mm"), "tortuosity": branch.get("tortuosity"),
                     **{f"{kind}_diameter_mm": _twice(branch.get(f"{kind}_radius_mm"))
                        for kind in ("mean", "min", "max")},
                     "stenoses": len(stenoses) if analysed else None,
                     "max_stenosis_percent": max(percents) if percents else None,
                     "dilatations": sum(1 for f in own if f.get("kind") == "dilatation") if analysed else None})
    return rows


def _interactive_rows(folder: Path) -> list[dict]:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [{"voxels": summary.get("voxels"), "volume_ml": summary.get("volume_ml"),
             "prompts": len(summary.get("interactions", [])), "backend": summary.get("backend")}]


_READERS: dict[str, Callable[[Path], list[dict]]] = {"organ": _organ_rows, "vessel": _vessel_rows,
                                                      "interactive": _interactive_rows}


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _twice(value: Any) -> Optional[float]:
    radius = _typed(value, float)
    return None if radius is None else 2.0 * radius


def _typed(value: Any, kind: type) -> Any:
    """A cell as its column's type; empty, unreadable or NaN cells are None (an empty cell)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if kind is int:
            number = float(value)
            return int(number) if math.isfinite(number) else None
        if kind is float:
            number = float(value)
            return number if math.isfinite(number) else None
    except (TypeError, ValueError):
        return None
    return str(value)


class CohortTables:
    """The cohort's rows by case, written to ``<out>/cohort_<workflow>.csv`` and ``.parquet``."""

    def __init__(self, workflow: str, out: Path) -> None:
        self.workflow = workflow
        stem = TABLE_STEM.format(workflow=workflow)
        self.csv_path, self.parquet_path = Path(out) / f"{stem}.csv", Path(out) / f"{stem}.parquet"
        self._rows: dict[str, list[dict]] = {}

    def add(self, case_id: str, rows: Sequence[dict]) -> None:
        self._rows[case_id] = list(rows)

    def rows(self) -> list[dict]:
        return [row for case_id in sorted(self._rows) for row in self._rows[case_id]]

    def write(self) -> list[Path]:
        """Both files, each replaced whole; the paths written."""
        rows, columns = self.rows(), COLUMNS[self.workflow]
        replace_file(self.csv_path, lambda path: write_csv(path, list(columns), rows))
        replace_file(self.parquet_path, lambda path: _write_parquet(path, columns, rows))
        return [self.csv_path, self.parquet_path]


def _write_parquet(path: Path, columns: dict[str, type], rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {str: pa.string(), int: pa.int64(), float: pa.float64()}
    schema = pa.schema([(name, types[kind]) for name, kind in columns.items()])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
