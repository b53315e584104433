"""A DICOM SEG (SegForge's or another tool's, e.g. dcmqi's) back to masks on the right grid.

With a reference image (the source series as the engine reads it) each frame is placed by
its own Image Position on that grid, voxel for voxel, or refused when it does not lie on it:
no volume geometry is guessed (highdicom's, from the frames present, once took a series of
5 mm slices for 1 mm ones). Without a reference highdicom builds the SEG's own volume (the
frames present, in the SEG's slice order, which may run the other way than the source's).
Names, colours (CIELab in the file) and codes come back as
:class:`~segforge.segmentation_file.SegmentInfo`, the codes as Slicer's terminology string.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ..errors import InputError
from ..image import Image
from ..organ.terminology import term_for
from ..segmentation_file import SegmentInfo
from .codes import SegmentCodes, terminology_of_codes

#: SOP Class UID of DICOM Segmentation Storage.
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass(frozen=True)
class ImportedSegmentation:
    """Each segment's mask on one grid; ``segments[n].label`` is the SEG's segment number."""

    grid: Image
    segments: tuple[SegmentInfo, ...]
    masks: dict[int, np.ndarray]

    def label_image(self) -> Image:
        """All segments in one label array (values = segment numbers); overlapping segments refused."""
        labels = np.zeros(self.grid.array.shape, dtype=np.uint16)
        for segment in self.segments:
            mask = self.masks[segment.label]
            clash = np.unique(labels[mask & (labels > 0)])
            if clash.size:
                other = next(s.name for s in self.segments if s.label == int(clash[0]))
                raise InputError("The DICOM SEG's segments overlap", f"'{segment.name}' shares voxels with '{other}', "
                                 "which one label map cannot hold", "load it into a Slicer segmentation node "
                                 "(each segment keeps its voxels) instead of a label map")
            labels[mask] = segment.label
        return self.grid.with_array(labels)


def read_dicom_seg(path: str | os.PathLike, reference: Optional[Image] = None) -> ImportedSegmentation:
    """The SEG at ``path`` as masks, on ``reference``'s grid when given (see the module's text)."""
    path = Path(path)
    seg = _read(path)
    numbers = [int(n) for n in seg.get_segment_numbers()]
    segments = tuple(_segment_info(seg.get_segment_description(n)) for n in numbers)
    if reference is not None:
        grid = reference.with_array(np.zeros(reference.array.shape, dtype=np.uint8))
        return ImportedSegmentation(grid, segments, _frames_onto(path, seg, numbers, reference))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's remarks on the source's own attributes
        volume = seg.get_volume(combine_segments=False)
    own = _image_of_volume(volume.affine, np.zeros(volume.spatial_shape, dtype=np.uint8))
    masks = {number: np.asarray(volume.array[..., channel]) > 0 for channel, number in enumerate(numbers)}
    return ImportedSegmentation(own, segments, masks)


def _read(path: Path) -> hd.seg.Segmentation:
    try:
        dataset = pydicom.dcmread(path)
    except FileNotFoundError:
        raise InputError(f"No file {path}", "it does not exist", "check the path of the DICOM SEG") from None
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise InputError(f"Cannot read {path}", f"it is not a readable DICOM file ({error})",
                         "give a DICOM Segmentation (.dcm) file") from None
    if str(dataset.get("SOPClassUID", "")) != SEGMENTATION_STORAGE:
        raise InputError(f"{path} is not a DICOM SEG", f"its SOP Class is {dataset.get('SOPClassUID', 'missing')} "
                         f"({dataset.get('Modality', 'no modality')}), not Segmentation Storage",
                         "give the segmentation object of the study (Modality SEG)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except (ValueError, AttributeError, KeyError, TypeError) as error:
        raise InputError(f"Cannot read the DICOM SEG {path}", f"it breaks the standard: {error}",
                         "export it again from the tool that made it") from None
    _check_whole(path, seg)
    return seg


def _check_whole(path: Path, seg: hd.seg.Segmentation) -> None:
    """Every read verified before any mask is made: the pixel data decodes to the frames the
    header promises (a file cut short raised a bare ValueError deep in the reader), and each
    frame's segment is one the file describes (else a KeyError)."""
    try:
        seg.convert_pixel_data()  # decoded once and kept: the masks are made from it
    except (ValueError, AttributeError, KeyError, TypeError, EOFError) as error:
        raise InputError(f"The DICOM SEG {path} is damaged", f"its pixel data cannot be read ({error})",
                         "copy the file again, or export it again from the tool that made it") from None
    described = {int(n) for n in seg.get_segment_numbers()}
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    for frame, item in enumerate(seg.get("PerFrameFunctionalGroupsSequence", []), start=1):
        number = int(_functional(item, shared, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        if number not in described:
            raise InputError(f"The DICOM SEG {path} is damaged", f"frame {frame} refers to segment {number}, which "
                             "the file does not describe", "export the SEG again from the tool that made it")


def _image_of_volume(affine: np.ndarray, array: np.ndarray) -> Image:
    """highdicom's volume (array [slice, row, column], affine of those indices) as an engine Image,
    whose (i, j, k) are (column, row, slice): the same voxels, the axes named the other way round."""
    columns = np.asarray(affine, float)[:3, :3][:, ::-1]
    spacing = np.linalg.norm(columns, axis=0)
    return Image(array, tuple(spacing), tuple(np.asarray(affine, float)[:3, 3]), columns / spacing)


def _frames_onto(path: Path, seg: hd.seg.Segmentation, numbers: list[int], reference: Image) -> dict:
    """Each segment's frames placed on the reference grid by their positions (see the module's text)."""
    masks = {number: np.zeros(reference.array.shape, dtype=bool) for number in numbers}
    pixels = np.asarray(seg.pixel_array)
    pixels = pixels[None] if pixels.ndim == 2 else pixels
    if seg.SegmentationType == "FRACTIONAL":
        pixels = pixels >= max(1, int(seg.MaximumFractionalValue) // 2)
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    to_index = np.linalg.inv(reference.ijk_to_lps())
    depth, rows, columns = reference.array.shape
    if pixels.shape[1:] != (rows, columns):
        raise _off_grid(path, f"its frames are {pixels.shape[2]} x {pixels.shape[1]} pixels, the image's slices "
                        f"{columns} x {rows}")
    for frame, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        orientation = np.asarray(_functional(item, shared, "PlaneOrientationSequence").ImageOrientationPatient, float)
        spacing = np.asarray(_functional(item, shared, "PixelMeasuresSequence").PixelSpacing, float)
        if (not np.allclose(orientation, reference.direction_lps[:, :2].T.ravel(), atol=1e-4)
                or not np.allclose(spacing, (reference.spacing[1], reference.spacing[0]), rtol=1e-4)):
            raise _off_grid(path, "its frames' orientation or pixel spacing differ from the image's")
        position = np.asarray(_functional(item, None, "PlanePositionSequence").ImagePositionPatient, float)
        i, j, k = (to_index @ np.append(position, 1.0))[:3]
        slice_index = int(round(k))
        if abs(i) > 1e-2 or abs(j) > 1e-2 or abs(k - slice_index) > 1e-2:
            raise _off_grid(path, f"frame {frame + 1} lies at {np.round(position, 3).tolist()} mm, between the "
                            "image's slices or beside them")
        if not 0 <= slice_index < depth:
            raise InputError(f"The DICOM SEG {path} reaches outside the image", f"frame {frame + 1} lies beyond "
                             "the image's slices", "load the SEG with the complete series it refers to")
        number = int(_functional(item, shared, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        masks[number][slice_index] |= pixels[frame] > 0
    return masks


def _functional(item: Any, shared: Any, name: str) -> Any:
    """A functional group's first item, from the frame's own groups or else the shared ones."""
    if name in item:
        return item[name][0]
    if shared is not None and name in shared:
        return shared[name][0]
    raise InputError("The DICOM SEG lacks its geometry", f"a frame has no {name}",
                     "export the SEG again from the tool that made it")


def _off_grid(path: Path, why: str) -> InputError:
    return InputError(f"The DICOM SEG {path} does not lie on the image's grid", why,
                      "load the SEG with the series it refers to (its Referenced Series), or without an image")


def _segment_info(description: Any) -> SegmentInfo:
    name = str(description.segment_label)
    color = term_for(name).color_rgb
    if "RecommendedDisplayCIELabValue" in description:
        rgb = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue).to_rgb(clip=True)
        color = tuple(c / 255.0 for c in rgb)
    type_item = description.SegmentedPropertyTypeCodeSequence[0]
    modifier = type_item.get("SegmentedPropertyTypeModifierCodeSequence")
    regions = description.get("AnatomicRegionSequence")
    region_modifier = regions[0].get("AnatomicRegionModifierSequence") if regions else None
    codes = SegmentCodes(_code(description.SegmentedPropertyCategoryCodeSequence[0]), _code(type_item),
                         _code(modifier[0]) if modifier else None, _code(regions[0]) if regions else None,
                         _code(region_modifier[0]) if region_modifier else None)
    return SegmentInfo(int(description.segment_number), name, color, terminology_of_codes(name, codes, color))


def _code(item: Any) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


def load_into_segmentation_node(path: str | os.PathLike, reference: Any, name: str = "DICOM SEG",
                                scene: Optional[Any] = None) -> Any:
    """A new Slicer segmentation node holding the SEG's segments (names, colours, terminology),
    on ``reference``'s grid (an :class:`Image` or a volume node); overlapping segments stay whole."""
    from ..mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
    from ..mrml.volumes import volume_grid

    grid = reference if isinstance(reference, Image) else volume_grid(reference)
    imported = read_dicom_seg(path, grid)
    node = new_segmentation_node(reference, name, scene)
    for segment in imported.segments:
        mask = imported.masks[segment.label].astype(np.uint8)  # one at a time: overlaps stay whole
        write_label_segments(node, grid.with_array(mask), [SegmentSpec(1, segment.name, segment.color,
                                                                       segment.terminology)])
    return node
