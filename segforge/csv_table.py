"""Write result rows as a CSV any spreadsheet opens (the CLI's tables)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """One row per dict, ``columns`` in order; None and NaN become empty cells."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row.get(key)) for key in columns})
    return Path(path)


def _cell(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
