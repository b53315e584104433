"""An organ result as the worker sends it: the label map as binary, the rest as small JSON."""
from __future__ import annotations

import math
from typing import Any

from .pipeline import OrganResult
from .statistics import StructureStatistics


def to_wire(result: OrganResult, statistics: list[StructureStatistics]) -> tuple[dict, dict]:
    """(outputs, meta) of the ``organ.segment`` task."""
    meta = {"names": {str(value): name for value, name in result.names.items()}, "model": result.model,
            "device": result.device, "warnings": list(result.warnings), "step_seconds": dict(result.seconds),
            "statistics": [_json_row(s.row()) for s in statistics]}
    return {"labels": result.labels}, meta


def from_wire(outputs: dict[str, Any], meta: dict[str, Any]) -> tuple[OrganResult, list[StructureStatistics]]:
    """The inverse of :func:`to_wire`."""
    result = OrganResult(outputs["labels"], {int(v): n for v, n in meta["names"].items()}, meta.get("step_seconds", {}),
                         meta.get("model", ""), meta.get("device", "cpu"), tuple(meta.get("warnings", ())))
    rows = [StructureStatistics(**{k: (float("nan") if v is None else v) for k, v in row.items()})
            for row in meta.get("statistics", [])]
    return result, rows


def _json_row(row: dict) -> dict:
    """NaN (an absent structure's mean) is not JSON: it travels as null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
