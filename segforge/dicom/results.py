"""Each workflow's result as ``seg.dcm`` and ``sr.dcm``: the one place the CLI, batch and the
Logic ask for them, so all three file the same objects for the same result.

The SEG is written first; its segment numbers tie the SR's groups to it. Both go into the
folder given (an output set's temporary folder: they appear with the other results or not at
all).

The objects' UIDs are derived from what they hold (source series, voxels, segments, numbers,
SegForge's version) instead of drawn at random, for every front end (CLI, batch, panels): storing
the same result again (a second Send to PACS, a rerun of ``segforge pacs run --overwrite``, a
second ``pacs store``) finds it on the PACS ("already stored") and a retry after a failure
completes the set without a second copy; a changed result gets new UIDs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from .. import __version__
from ..image import Image
from ..organ.statistics import StructureStatistics, structure_statistics
from ..segmentation_file import SegmentInfo
from .measurements import lesion_groups, organ_groups, vessel_groups
from .seg_export import Algorithm, SegExport, build_segmentation
from .source import SourceSeries
from .sr_export import MeasurementGroup, build_report

SEG_FILE, SR_FILE = "seg.dcm", "sr.dcm"


def write_seg_and_sr(folder: str | os.PathLike, source: SourceSeries, labels: Image, segments: Sequence[SegmentInfo],
                     algorithm: Algorithm, groups: Callable[[SegExport], list[MeasurementGroup]]) -> dict[str, Path]:
    """``seg.dcm`` of ``labels`` and ``sr.dcm`` of the groups made for it; the files by kind."""
    folder = Path(folder)
    seed = _digest("seg", __version__, repr(algorithm), str(source.first.SeriesInstanceUID),
                   str(labels.array.shape), str(labels.array.dtype), labels.array.tobytes(), repr(list(segments)))
    seg = build_segmentation(labels, segments, source, algorithm,
                             (_uid(seed, "seg series"), _uid(seed, "seg instance")))
    made = groups(seg)
    report_seed = _digest("sr", seed, repr(made))
    report = build_report(seg, source, made, algorithm.workflow,
                          (_uid(report_seed, "sr series"), _uid(report_seed, "sr instance")))
    seg_path = seg.write(folder / SEG_FILE)
    report.save_as(folder / SR_FILE, enforce_file_format=True)
    return {"dicom_seg": seg_path, "dicom_sr": folder / SR_FILE}


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _uid(seed: str, role: str) -> str:
    """A DICOM UID under the UUID-derived root 2.25 (128 bits of the seed's and role's hash)."""
    return f"2.25.{int(_digest(seed, role)[:32], 16)}"


def organ_dicom(folder: str | os.PathLike, source: SourceSeries, image: Image, labels: Image,
                segments: Sequence[SegmentInfo], model: str,
                statistics: Optional[Sequence[StructureStatistics]] = None) -> dict[str, Path]:
    """The organ result: a segment per structure found; volume, mean and SD per structure."""
    names = {s.label: s.name for s in segments}
    rows = statistics if statistics is not None else structure_statistics(image, labels.array, names)
    terminology: Mapping[int, str] = {s.label: s.terminology or "" for s in segments}
    modality = str(source.first.get("Modality", ""))
    return write_seg_and_sr(folder, source, labels, segments, Algorithm("organ", model),
                            lambda seg: organ_groups(rows, seg.segment_numbers, terminology, modality))


def vessel_dicom(folder: str | os.PathLike, source: SourceSeries, tree, segment: SegmentInfo,
                 model: str) -> dict[str, Path]:
    """The vessel result: one segment; branch, finding and landmark measurements on it."""
    mask = tree.mask.with_array((tree.mask.array > 0).astype("uint8"))
    segment = dataclasses.replace(segment, label=1)
    return write_seg_and_sr(folder, source, mask, [segment], Algorithm("vessel", model),
                            lambda seg: vessel_groups(tree, seg.segment_numbers[1]))


def lesion_dicom(folder: str | os.PathLike, source: SourceSeries, mask: Image, segment: SegmentInfo,
                 backend: str) -> dict[str, Path]:
    """The interactive result: one lesion segment (semi-automatic) and its volume."""
    mask = mask.with_array((mask.array > 0).astype("uint8"))
    segment = dataclasses.replace(segment, label=1)
    return write_seg_and_sr(folder, source, mask, [segment], Algorithm("interactive", backend, interactive=True),
                            lambda seg: lesion_groups(mask, seg.segment_numbers[1]))
