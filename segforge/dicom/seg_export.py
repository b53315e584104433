"""A label array as a DICOM Segmentation (SEG) referred to the series it was computed on.

The SEG is built by highdicom from the source series' headers (:mod:`.source`), so the
patient, study, Frame of Reference and the referenced images are copied from them, never
typed again. One segment per label with its name, SNOMED CT codes (:mod:`.codes`), display
colour and the algorithm that made it (SegForge's version and the model's id); binary
frames, empty frames left out. Label values become segment numbers 1..N in the order given:
:attr:`SegExport.segment_numbers` keeps the mapping for the SR that measures them.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from .. import __version__
from ..errors import InputError
from ..image import Image
from ..segmentation_file import SegmentInfo
from .codes import codes_of_segment
from .source import SourceSeries

#: The series numbers SegForge's objects take in a study (the source's are usually small).
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902


@dataclass(frozen=True)
class Algorithm:
    """What made the segments: the workflow, the model's id and version, whether a person guided it."""

    workflow: str
    model: str
    model_version: str = ""
    interactive: bool = False

    def identification(self) -> hd.AlgorithmIdentificationSequence:
        parameters = {"workflow": self.workflow, "model": self.model}
        if self.model_version:
            parameters["model_version"] = self.model_version
        return hd.AlgorithmIdentificationSequence(name=f"SegForge {self.workflow} ({self.model})",
                                                  family=codes.cid7162.ArtificialIntelligence,
                                                  version=__version__, source="SegForge", parameters=parameters)


@dataclass(frozen=True)
class SegExport:
    """A SEG ready to write, and the segment number each label value got."""

    dataset: hd.seg.Segmentation
    segment_numbers: dict[int, int] = field(default_factory=dict)

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        self.dataset.save_as(path, enforce_file_format=True)
        return path


def build_segmentation(labels: Image, segments: Sequence[SegmentInfo], source: SourceSeries,
                       algorithm: Algorithm, uids: Optional[tuple[str, str]] = None) -> SegExport:
    """The SEG of ``labels`` (on the grid ``source`` was checked against), one segment per entry
    of ``segments`` whose label occurs; labels not listed are refused (they would be lost).
    ``uids``: its (Series, SOP) Instance UIDs; new ones by default."""
    array = np.asarray(labels.array)
    if array.shape[0] != len(source.datasets):
        raise ValueError(f"labels have {array.shape[0]} slices, the source series {len(source.datasets)}")
    present = [int(v) for v in np.unique(array) if v != 0]
    listed = {s.label for s in segments}
    unnamed = sorted(set(present) - listed)
    if unnamed:
        raise InputError("Cannot write the DICOM SEG", f"label values {unnamed[:10]} have no segment name",
                         "name every label value of the result")
    kept = [s for s in segments if s.label in present]
    if not kept:
        raise InputError("Cannot write the DICOM SEG", "the result holds no segmented voxel (a DICOM SEG "
                         "needs at least one non-empty segment)", "check the result; nothing was found to file")
    numbers = {s.label: n for n, s in enumerate(kept, start=1)}
    lookup = np.zeros(max(present) + 1, dtype=np.uint16)
    for value, number in numbers.items():
        lookup[value] = number
    pixel_array = lookup[array] if array.dtype != bool else array.astype(np.uint16)
    identification = algorithm.identification()
    kind = (hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if algorithm.interactive
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC)
    descriptions = []
    for segment, label in zip(kept, segment_labels([s.name for s in kept])):
        coded = codes_of_segment(segment.name, segment.terminology)
        description = hd.seg.SegmentDescription(
            segment_number=numbers[segment.label], segment_label=label,
            segmented_property_category=coded.category, segmented_property_type=coded.type,
            algorithm_type=kind, algorithm_identification=identification, tracking_uid=hd.UID(),
            tracking_id=segment.name,
            anatomic_regions=[coded.region] if coded.region is not None else None,
            display_color=hd.color.CIELabColor.from_rgb(*(round(255 * c) for c in segment.color)))
        if coded.type_modifier is not None:
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(coded.type_modifier)]
        if coded.region_modifier is not None and coded.region is not None:
            description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [
                hd.sr.CodedConcept.from_code(coded.region_modifier)]
        descriptions.append(description)
    first = source.first
    with warnings.catch_warnings():
        # highdicom's remarks on the source's own attributes (a one-part patient name): the SEG
        # copies them as the standard asks, and the source is not ours to correct.
        warnings.simplefilter("ignore", UserWarning)
        dataset = _segmentation(source, pixel_array, descriptions, algorithm, uids or (hd.UID(), hd.UID()),
                                character_set(source, [s.name for s in kept]))
    if len(source.datasets) > 1:
        # The distance between slices from the checked grid, not the source's Spacing Between
        # Slices, which highdicom copies and readers trust: a source can carry a wrong one (GDCM
        # wrote 1 mm for 5 mm slices), and highdicom then read its own SEG onto 1 mm slices.
        measures = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        measures.SpacingBetweenSlices = _decimal(labels.spacing[2])
    if "AccessionNumber" in first and "AccessionNumber" not in dataset:
        dataset.AccessionNumber = first.AccessionNumber
    return SegExport(dataset, numbers)


def segment_labels(names: Sequence[str]) -> list[str]:
    """Each name as a Segment Label (LO: at most 64 characters), unique: names that only differ
    after the 64th character would otherwise become the same label, and a reader could not tell
    the segments apart. A clashing label is cut shorter and numbered (" (2)"); the Tracking ID
    (UT, no limit) keeps the whole name."""
    labels: list[str] = []
    for number, name in enumerate(names, start=1):
        label = name[:64]
        if label in labels:
            suffix = f" ({number})"
            label = name[:64 - len(suffix)] + suffix
        labels.append(label)
    return labels


def character_set(source: SourceSeries, texts: Sequence[str]) -> Optional[str]:
    """The SEG's Specific Character Set: UTF-8 ("ISO_IR 192") when a text SegForge writes (a
    segment name) is not ASCII, the source's otherwise (highdicom's default). Without it the
    repertoire is ASCII: readers show '?' and dciodvfy calls the file invalid. The SR copies the
    SEG's, so this is the one place for both; the source's own texts are re-encoded on writing."""
    if all(text.isascii() for text in texts):
        return source.first.get("SpecificCharacterSet")
    return "ISO_IR 192"


def _decimal(value: float) -> str:
    """A DICOM DS value (at most 16 characters)."""
    return next(text for text in (f"{value:.{n}g}" for n in range(15, 5, -1)) if len(text) <= 16)


def _segmentation(source: SourceSeries, pixel_array: np.ndarray, descriptions: list,
                  algorithm: Algorithm, uids: tuple[str, str], characters: Optional[str]) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=list(source.datasets), pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=uids[0], series_number=SEG_SERIES_NUMBER, sop_instance_uid=uids[1],
        instance_number=1, manufacturer="SegForge", manufacturer_model_name=f"SegForge {algorithm.workflow}",
        software_versions=__version__, device_serial_number="none",
        series_description=f"SegForge {algorithm.workflow} segmentation"[:64],
        content_label="SEGFORGE", content_description=f"SegForge {algorithm.workflow}, model {algorithm.model}"[:64],
        content_creator_name="SegForge^Automatic" if not algorithm.interactive else None,
        omit_empty_frames=True, specific_character_set=characters)
