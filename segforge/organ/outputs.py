"""Write an organ result as files that open in 3D Slicer and in any spreadsheet.

``organs.seg.nrrd`` (a segment per structure, named as the model names it, with its
SNOMED CT terminology and colour, on the image's grid), ``statistics.csv`` (volume and
intensity per structure) and ``summary.json`` (model, device, warnings, times, files).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..csv_table import write_csv
from ..segmentation_file import SegmentInfo, write_seg_nrrd
from .pipeline import OrganResult
from .statistics import COLUMNS, StructureStatistics
from .terminology import slicer_terminology_string, term_for


def organ_segments(names: Mapping[int, str]) -> list[SegmentInfo]:
    """A segment per label, with the structure's terminology and anatomical colour."""
    segments = []
    for value, name in sorted(names.items()):
        term = term_for(name)
        segments.append(SegmentInfo(value, name, term.color_rgb, slicer_terminology_string(term)))
    return segments


def organ_output_bytes(result: OrganResult) -> int:
    """A generous estimate of the files' size, to check free space before writing: the label
    volume compressed (at most about half a byte per voxel) and the tables."""
    return int(result.labels.array.size // 2 + 64 * 1024 + 400 * len(result.names))


def write_organ_outputs(result: OrganResult, statistics: Optional[Sequence[StructureStatistics]],
                        folder: str | os.PathLike, extra_summary: Optional[dict[str, Any]] = None) -> dict[str, Path]:
    """Write the segmentation, the statistics (none asked: no statistics.csv) and the summary
    into ``folder``; the files by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"segmentation": write_seg_nrrd(result.labels, organ_segments(result.names), folder / "organs.seg.nrrd")}
    if statistics is not None:
        files["statistics"] = write_csv(folder / "statistics.csv", COLUMNS, [s.row() for s in statistics])
    statistics = statistics or []
    summary = {"model": result.model, "device": result.device, "warnings": list(result.warnings),
               "structures": [s.structure for s in statistics] or list(result.names.values()),
               "empty_structures": [s.structure for s in statistics if s.voxels == 0],
               "seconds": dict(result.seconds), **(extra_summary or {}),
               "files": {kind: path.name for kind, path in files.items()}}
    files["summary"] = folder / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2))
    return files
