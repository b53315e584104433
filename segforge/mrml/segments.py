"""Label arrays <-> named segments of a segmentation node, never touching the user's other segments.

The engine returns label arrays on the grid of the image it segmented; the user sees
segments with names, colours and terminology. Writing is done one segment at a time with
Slicer's own ``SetBinaryLabelmapToSegment`` in replace mode, which moves the written
segment to its own layer when it would overlap a segment sharing its labelmap layer, so
no other segment ever loses a voxel. Segments whose names collide with the user's follow
an explicit policy (``on_existing``), checked before anything is written.

Empty masks: a spec whose label does not occur in the array still gets its segment,
created empty (Slicer keeps empty segments, also in .seg.nrrd files), so a caller who asked
for "Aorta" always finds it and an empty result of an interactive edit clears the
segment. ``skip_empty=True`` leaves such specs out instead (for many-structure models
where most structures are absent).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import slicer
import vtk

from ..errors import InputError, SegForgeError
from ..image import Image, foreground_box, set_voxels
from .convert import array_from_vtk_matrix, array_on_extent, oriented_image, oriented_image_geometry
from .scene import get_scene
from .transforms import node_to_world
from .volumes import volume_grid

logger = logging.getLogger(__name__)

OnExisting = Literal["error", "replace", "rename"]
#: An image, or a volume node whose world grid is meant.
Reference = Union[Image, Any]

BINARY_LABELMAP = "Binary labelmap"
#: Slicer's default terminology contexts (what the Segment Editor writes).
GENERAL_ANATOMY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_REGION_CONTEXT = "Anatomic codes - DICOM master list"
#: A coded concept: (coding scheme designator, code value, code meaning), e.g. ("SCT", "15825003", "Aorta").
Code = tuple[str, str, str]


@dataclass(frozen=True)
class SegmentSpec:
    """What one label value of a label array becomes: a named, coloured segment.

    ``color`` is RGB in 0..1; ``terminology`` is a serialized Slicer terminology entry
    (see :func:`terminology_entry`) or None.
    """

    label: int
    name: str
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    terminology: Optional[str] = None

    def __post_init__(self) -> None:
        if int(self.label) != self.label or self.label <= 0:
            raise ValueError(f"segment label must be a positive integer, got {self.label!r}")
        if not self.name.strip():
            raise ValueError("segment name must not be empty")
        color = tuple(float(c) for c in self.color)
        if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
            raise ValueError(f"segment color must be three values in 0..1, got {self.color!r}")
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "color", color)


def terminology_entry(category: Code, type_: Code, *, type_modifier: Optional[Code] = None,
                      region: Optional[Code] = None, region_modifier: Optional[Code] = None,
                      context: str = GENERAL_ANATOMY_CONTEXT,
                      region_context: str = ANATOMIC_REGION_CONTEXT) -> str:
    """Serialize a terminology entry the way Slicer stores it in a segment's tag.

    Example: ``terminology_entry(("SCT", "123037004", "Anatomical Structure"),
    ("SCT", "15825003", "Aorta"))``.
    """
    def parts(code: Optional[Code]) -> list[str]:
        scheme, value, meaning = code or ("", "", "")
        return [value, scheme, meaning]

    return slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        context, *parts(category), *parts(type_), *parts(type_modifier),
        region_context, *parts(region), *parts(region_modifier))


def new_segmentation_node(reference: Reference, name: str = "Segmentation",
                          scene: Optional[Any] = None) -> Any:
    """A new segmentation node whose labelmaps use the reference's grid (and shows in 2D and 3D)."""
    scene = scene or get_scene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    grid = _grid(reference)
    geometry = oriented_image_geometry(grid.array.shape, grid.ijk_to_ras())
    node.GetSegmentation().SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
        slicer.vtkSegmentationConverter.SerializeImageGeometry(geometry))
    if not isinstance(reference, Image):
        node.SetNodeReferenceID(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole(),
                                reference.GetID())
    return node


def write_label_segments(segmentation_node: Any, labels: Union[Image, np.ndarray],
                         specs: Sequence[SegmentSpec], *, reference: Optional[Reference] = None,
                         on_existing: OnExisting = "error", skip_empty: bool = False) -> list[str]:
    """Write each spec's label of ``labels`` as a segment; return the segment IDs in spec order.

    ``labels`` is an :class:`Image`, or an array on the grid of ``reference``. A spec whose
    name is already a segment's name: ``"error"`` raises InputError before anything is
    written; ``"replace"`` replaces that segment's voxels and colour, and its terminology
    when the spec has one (its ID stays); ``"rename"`` adds a new segment named "<name> 2" (or 3...). Segments not
    named by a spec are never touched.
    """
    label_image = _label_image(labels, reference)
    _check_specs(specs)
    require_labelmap_source(segmentation_node)
    targets = _resolve_targets(segmentation_node, specs, on_existing)
    boxes = _label_boxes(label_image.array, [spec.label for spec in specs])
    segmentation = segmentation_node.GetSegmentation()
    segment_ids = []
    for spec, (existing_id, name) in zip(specs, targets):
        box = boxes.get(spec.label)
        if box is None and skip_empty:
            logger.info("label %d (%s) is absent: no segment written", spec.label, spec.name)
            continue
        segment_id = existing_id or segmentation.AddEmptySegment("", name, list(spec.color))
        segment = segmentation.GetSegment(segment_id)
        segment.SetColor(*spec.color)
        # Chosen, not generated: Slicer must not rename or recolour them from their terminology.
        segment.SetNameAutoGenerated(False)
        segment.SetColorAutoGenerated(False)
        if spec.terminology:
            segment.SetTerminology(spec.terminology)
        if box is None:
            logger.warning("label %d (%s) is absent: segment '%s' is empty", spec.label, spec.name, name)
            _write_cropped_mask(segmentation_node, segment_id, np.zeros((1, 1, 1), np.uint8), (0, 0, 0),
                                label_image.ijk_to_ras())
        else:
            cropped = (label_image.array[box] == spec.label).astype(np.uint8)
            offset = (box[2].start, box[1].start, box[0].start)
            _write_cropped_mask(segmentation_node, segment_id, cropped, offset, label_image.ijk_to_ras())
        segment_ids.append(segment_id)
    return segment_ids


def existing_segment(segmentation_node: Any, segment_id: str, why: str = "it may have been deleted",
                     todo: str = "choose an existing segment") -> Any:
    """The segment ``segment_id`` of the node; an InputError saying so when it has none, listing
    the segments it holds (a name given for an ID is told apart from a deleted segment)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        named = segment_ids_by_name(segmentation_node).get(segment_id, [])
        if named:
            why = (f"'{segment_id}' is the name of {len(named)} segments, not an ID" if len(named) > 1 else
                   f"'{segment_id}' is the name of the segment '{named[0]}', not its ID")
        raise InputError(f"Segmentation '{segmentation_node.GetName()}' has no segment '{segment_id}'",
                         f"{why}; it holds {_segment_listing(segmentation_node)}", todo)
    return segment


def segment_id_of(segmentation_node: Any, id_or_name: str) -> str:
    """The ID of the segment ``id_or_name`` names: its ID, or its name when one segment has it
    (what a console user types: "Aorta", not "Segment_1"). Else :func:`existing_segment`'s error."""
    if segmentation_node.GetSegmentation().GetSegment(id_or_name) is not None:
        return id_or_name
    named = segment_ids_by_name(segmentation_node).get(id_or_name, [])
    if len(named) == 1:
        return named[0]
    existing_segment(segmentation_node, id_or_name, todo="give the segment's ID")
    raise AssertionError("unreachable: existing_segment raised")


def _segment_listing(segmentation_node: Any, shown: int = 20) -> str:
    """The node's segments as an error lists them: ``"Aorta" (ID Segment_1), ...``."""
    segmentation = segmentation_node.GetSegmentation()
    ids = list(segmentation.GetSegmentIDs())
    if not ids:
        return "no segment"
    listed = ", ".join(f'"{segmentation.GetSegment(i).GetName()}" (ID {i})' for i in ids[:shown])
    return listed + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def set_segment_mask(segmentation_node: Any, segment_id: str, mask: Image) -> None:
    """Replace one existing segment's voxels by ``mask`` (non-zero = inside); nothing else changes."""
    existing_segment(segmentation_node, segment_id, todo="choose an existing segment, or add one first")
    require_labelmap_source(segmentation_node)
    box = foreground_box(mask.array)
    if box is None:
        cropped, offset = np.zeros((1, 1, 1), np.uint8), (0, 0, 0)
    else:
        cropped = (mask.array[box] != 0).astype(np.uint8)
        offset = (box[2].start, box[1].start, box[0].start)
    _write_cropped_mask(segmentation_node, segment_id, cropped, offset, mask.ijk_to_ras())


def mask_from_segment(segmentation_node: Any, segment_id: str, reference: Reference) -> Image:
    """The segment as a uint8 0/1 image on the reference's (world) grid."""
    grid = _grid(reference)
    segment = existing_segment(segmentation_node, segment_id)
    layer = _layer_on_grid(segmentation_node, segment_id, grid)
    return grid.with_array((layer == segment.GetLabelValue()).view(np.uint8))


def mask_on_segment_grid(segmentation_node: Any, segment_id: str, margin_mm: float = 0.0) -> Image:
    """The segment as a uint8 0/1 image on its own labelmap's grid (world coordinates), cut to
    its voxels plus background on each side, ``margin_mm`` of it and two voxels more: what a
    segment is analysed on when no volume is chosen (no resampling, so nothing of its shape
    changes). The margin keeps points the user may place beside the segment on the grid (a
    target clicked just past a cut end was "outside the image" two voxels past it).

    An empty segment is refused (:class:`InputError`)."""
    segment = existing_segment(segmentation_node, segment_id)
    _ensure_labelmap(segmentation_node)
    layer = segment.GetRepresentation(BINARY_LABELMAP)
    empty = InputError(f"The segment '{segment.GetName()}' of '{segmentation_node.GetName()}' is empty",
                       "none of its voxels is set", "choose a segment that holds the vessel")
    if layer is None or _is_empty(layer) or layer.GetPointData().GetScalars() is None:
        raise empty
    extent = layer.GetExtent()
    inside = array_on_extent(layer, extent) == segment.GetLabelValue()
    box = foreground_box(inside)
    if box is None:
        raise empty
    image_to_local = vtk.vtkMatrix4x4()
    layer.GetImageToWorldMatrix(image_to_local)
    ijk_to_ras = node_to_world(segmentation_node) @ array_from_vtk_matrix(image_to_local)
    spacing_ijk = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    margin = np.ceil(margin_mm / np.maximum(spacing_ijk, 1e-9)).astype(int) + 2  # i, j, k
    cropped = np.pad(inside[box], [(int(m), int(m)) for m in margin[::-1]]).astype(np.uint8)
    start_ijk = [extent[2 * axis] + box[2 - axis].start - int(margin[axis]) for axis in range(3)]
    shifted = ijk_to_ras.copy()
    shifted[:3, 3] = (ijk_to_ras @ np.array([*start_ijk, 1.0]))[:3]
    return Image.from_ijk_to_ras(cropped, shifted)


def share_outside(segmentation_node: Any, segment_id: str, reference: Reference) -> float:
    """The share (0..1) of the segment's voxels, on its own labelmap grid, whose centres lie
    outside the reference grid: what resampling the segment onto that grid would drop.

    A centre up to half a reference voxel past the grid's edge counts as inside (the edge voxel
    covers it up to its border, and resampling between grids rounds there): only a segment that
    really reaches past the volume counts, not one made on it.
    """
    own = mask_on_segment_grid(segmentation_node, segment_id)
    ijk = set_voxels(own.array)[:, ::-1]
    grid = _grid(reference)
    world = own.ijk_to_ras() @ np.c_[ijk, np.ones(len(ijk))].T
    on_grid = (np.linalg.inv(grid.ijk_to_ras()) @ world)[:3].T
    size_ijk = np.array(grid.array.shape[::-1], float)
    outside = np.any((on_grid < -1.0) | (on_grid > size_ijk), axis=1)  # half a voxel past the edge's border
    return float(outside.mean()) if len(outside) else 0.0


def segment_voxel_count(segmentation_node: Any, segment_id: str, reference: Reference) -> int:
    """Voxels of the segment on the reference grid: what ``mask_from_segment`` would hold, without making it.

    A segment kept on the reference's own grid (what editing on a volume leaves) is counted in
    its labelmap, over the part inside the grid: milliseconds, where resampling it onto a
    512x512x300 CT takes hundreds. Any other segment is resampled as by ``mask_from_segment``.
    """
    grid = _grid(reference)
    segment = existing_segment(segmentation_node, segment_id)
    layer = segment.GetRepresentation(BINARY_LABELMAP)
    if layer is not None and (_is_empty(layer) or layer.GetPointData().GetScalars() is None):
        return 0
    if layer is not None:
        image_to_local = vtk.vtkMatrix4x4()
        layer.GetImageToWorldMatrix(image_to_local)
        local_ijk_to_ras = np.linalg.inv(node_to_world(segmentation_node)) @ grid.ijk_to_ras()
        layer_to_grid = np.linalg.inv(local_ijk_to_ras) @ array_from_vtk_matrix(image_to_local)
        shift = np.round(layer_to_grid[:3, 3]).astype(int)
        if np.allclose(layer_to_grid[:3, :3], np.eye(3), atol=1e-6) and np.allclose(layer_to_grid[:3, 3], shift,
                                                                                       atol=1e-4):
            # The grid's voxels in the layer's indices, cut to the layer's extent.
            k, j, i = grid.array.shape
            have = layer.GetExtent()
            extent = [0] * 6
            for axis, size in enumerate((i, j, k)):
                extent[2 * axis] = max(have[2 * axis], -shift[axis])
                extent[2 * axis + 1] = min(have[2 * axis + 1], size - 1 - shift[axis])
            if any(extent[2 * a + 1] < extent[2 * a] for a in range(3)):
                return 0
            return int(np.count_nonzero(array_on_extent(layer, tuple(extent)) == segment.GetLabelValue()))
    return int(np.count_nonzero(mask_from_segment(segmentation_node, segment_id, grid).array))


def labels_from_segments(segmentation_node: Any, reference: Reference,
                         segment_ids: Optional[Sequence[str]] = None) -> tuple[Image, list[SegmentSpec]]:
    """Segments (default: all) as one label image on the reference grid, with their specs.

    Labels are 1, 2... in ``segment_ids`` order; where segments overlap the later one wins.
    """
    grid = _grid(reference)
    segmentation = segmentation_node.GetSegmentation()
    if segment_ids is None:
        segment_ids = list(segmentation.GetSegmentIDs())
    dtype = np.uint8 if len(segment_ids) < 256 else np.uint16
    labels = np.zeros(grid.array.shape, dtype)
    specs = []
    layers: dict[int, np.ndarray] = {}  # each shared layer is resampled once, not once per segment
    for label, segment_id in enumerate(segment_ids, start=1):
        segment = existing_segment(segmentation_node, segment_id, todo="choose existing segments")
        layer_index = segmentation.GetLayerIndex(segment_id)
        if layer_index not in layers:
            layers[layer_index] = _layer_on_grid(segmentation_node, segment_id, grid)
        labels[layers[layer_index] == segment.GetLabelValue()] = label
        specs.append(SegmentSpec(label, segment.GetName(), tuple(segment.GetColor()),
                                 segment.GetTerminology() or None))
    return grid.with_array(labels), specs


def segment_ids_by_name(segmentation_node: Any) -> dict[str, list[str]]:
    """Segment IDs under each segment name (names need not be unique in Slicer)."""
    segmentation = segmentation_node.GetSegmentation()
    result: dict[str, list[str]] = {}
    for segment_id in segmentation.GetSegmentIDs():
        result.setdefault(segmentation.GetSegment(segment_id).GetName(), []).append(segment_id)
    return result


def refuse_before_writing(segmentation_node: Optional[Any], names: Sequence[str], on_existing: OnExisting) -> None:
    """What would stop the results being written into ``segmentation_node``, said before any
    work (it was said after the whole job had run): segments kept as surfaces
    (:func:`require_labelmap_source`, here without changing anything), and with
    ``on_existing="error"`` a segment of one of ``names`` already there (SegForge never
    overwrites without asking)."""
    if segmentation_node is None:
        return
    if segmentation_node.GetSegmentation().GetNumberOfSegments():
        _refuse_surface_source(segmentation_node)
    if on_existing != "error":
        return
    existing = segment_ids_by_name(segmentation_node)
    clashes = [name for name in names if name in existing]
    if clashes:
        listed = ", ".join(f"'{name}'" for name in clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        raise InputError(f"Segment{'s' if len(clashes) > 1 else ''} {listed} already exist"
                         f"{'' if len(clashes) > 1 else 's'} in '{segmentation_node.GetName()}'",
                         "SegForge never overwrites a segment without asking",
                         "choose replace or keep both, or pick other names or another segmentation")


def policy_at_finish(segmentation_node: Any, names: Sequence[str], on_existing: OnExisting) -> OnExisting:
    """The policy to write a finished job's segments with: "error" was checked before the
    job, so a segment of such a name that the user made while it ran keeps both ("rename")
    rather than losing the job's result or the user's segment."""
    if on_existing != "error":
        return on_existing
    appeared = sorted(set(names) & set(segment_ids_by_name(segmentation_node)))
    if appeared:
        logger.warning("segments %s appeared during the job; the results get other names", appeared)
        return "rename"
    return on_existing


def unused_segment_name(segmentation_node: Any, name: str) -> str:
    """``name``, or "<name> 2" (3...) when a segment already has it: a new segment never
    takes the name of one of the user's (the "rename" policy of :func:`write_label_segments`)."""
    existing = segment_ids_by_name(segmentation_node)
    if name not in existing:
        return name
    number = 2
    while f"{name} {number}" in existing:
        number += 1
    return f"{name} {number}"


def isolate_segment_layer(segmentation_node: Any, segment_id: str) -> None:
    """Move a segment that shares its labelmap layer into a layer of its own.

    Slicer merges an edit into the segment's whole layer, resampled onto the edit's grid:
    on a shared layer that would move the other segments' voxels too. Alone in its layer,
    the segment can be edited and no other segment's labelmap is touched.
    """
    segmentation = segmentation_node.GetSegmentation()
    shared: list[str] = []
    segmentation.GetSegmentIDsSharingBinaryLabelmapRepresentation(segment_id, shared, False)
    if shared:
        segmentation.SeparateSegmentLabelmap(segment_id)


def change_segment_voxels(segmentation_node: Any, segment_id: str, offset_kji: Sequence[int],
                          add: np.ndarray, remove: np.ndarray, world_ijk_to_ras: np.ndarray) -> None:
    """Set the ``add`` voxels and clear the ``remove`` voxels of one segment inside a box.

    ``add`` and ``remove`` (same shape) cover the box at ``offset_kji`` of the grid
    ``world_ijk_to_ras``. Voxels outside the box and every other segment stay as they were
    (the segment is first given a layer of its own, see :func:`isolate_segment_layer`); a
    segment kept on another grid is moved onto this one, its voxels there unchanged.
    """
    existing_segment(segmentation_node, segment_id, todo="choose an existing segment, or add one first")
    add, remove = np.asarray(add) != 0, np.asarray(remove) != 0
    if add.shape != remove.shape or add.ndim != 3:
        raise ValueError(f"add and remove must be 3D arrays of one shape, got {add.shape} and {remove.shape}")
    if add.size == 0 or not (add.any() or remove.any()):
        return
    require_labelmap_source(segmentation_node)
    isolate_segment_layer(segmentation_node, segment_id)
    local_ijk_to_ras = np.linalg.inv(node_to_world(segmentation_node)) @ world_ijk_to_ras
    offset_ijk = (int(offset_kji[2]), int(offset_kji[1]), int(offset_kji[0]))
    k, j, i = add.shape
    extent = (offset_ijk[0], offset_ijk[0] + i - 1, offset_ijk[1], offset_ijk[1] + j - 1,
              offset_ijk[2], offset_ijk[2] + k - 1)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    # Within the extent only: MAX adds the "add" voxels, MIN with 0 on "remove" clears those.
    for values, mode in ((add, logic.MODE_MERGE_MAX), (~remove, logic.MODE_MERGE_MIN)):
        if mode == logic.MODE_MERGE_MAX and not add.any() or mode == logic.MODE_MERGE_MIN and not remove.any():
            continue
        labelmap = oriented_image(values.astype(np.uint8), local_ijk_to_ras, offset_ijk)
        if not logic.SetBinaryLabelmapToSegment(labelmap, segmentation_node, segment_id, mode, extent):
            raise SegForgeError(f"Could not edit segment '{segment_id}' of '{segmentation_node.GetName()}'",
                                "Slicer refused the labelmap", "check the log for the reason")


def copy_segment_labelmap(segmentation_node: Any, segment_id: str) -> Any:
    """A deep copy of the segment's own labelmap (its layer, after :func:`isolate_segment_layer`),
    to put back exactly with :func:`restore_segment_labelmap`."""
    isolate_segment_layer(segmentation_node, segment_id)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    copy = slicer.vtkOrientedImageData()
    layer = segment.GetRepresentation(BINARY_LABELMAP)
    if layer is not None:
        copy.DeepCopy(layer)
    return copy


def restore_segment_labelmap(segmentation_node: Any, segment_id: str, copy: Any) -> None:
    """Make the segment exactly the labelmap copied by :func:`copy_segment_labelmap`, on its grid."""
    existing_segment(segmentation_node, segment_id, why="it was deleted", todo="nothing to restore")
    isolate_segment_layer(segmentation_node, segment_id)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if _is_empty(copy) or copy.GetPointData().GetScalars() is None:
        empty = oriented_image(np.zeros((1, 1, 1), np.uint8), np.eye(4))
        ok = logic.SetBinaryLabelmapToSegment(empty, segmentation_node, segment_id, logic.MODE_REPLACE)
    else:
        ok = logic.SetBinaryLabelmapToSegment(copy, segmentation_node, segment_id, logic.MODE_REPLACE)
    if not ok:
        raise SegForgeError(f"Could not restore segment '{segment_id}' of '{segmentation_node.GetName()}'",
                            "Slicer refused the labelmap", "check the log for the reason")


def create_closed_surfaces(segmentation_node: Any) -> None:
    """Make the 3D surface of every segment (shown in 3D views, exportable as models)."""
    if not segmentation_node.CreateClosedSurfaceRepresentation():
        raise SegForgeError(f"Could not make 3D surfaces for '{segmentation_node.GetName()}'",
                            "the segmentation has no conversion path to a closed surface "
                            "(headless: the Segmentations logic was given the scene after the node was made)",
                            "create the scene with segforge.mrml.create_headless_slicer() before any node")


def closed_surface(segmentation_node: Any, segment_id: str) -> vtk.vtkPolyData:
    """A copy of a segment's closed surface, in the segmentation node's own RAS coordinates."""
    polydata = vtk.vtkPolyData()
    if not segmentation_node.GetClosedSurfaceRepresentation(segment_id, polydata):
        raise SegForgeError(f"Segment '{segment_id}' has no closed surface",
                            "closed surfaces have not been created", "call create_closed_surfaces first")
    return polydata


# --- helpers ---------------------------------------------------------------------------

def _grid(reference: Reference) -> Image:
    return reference if isinstance(reference, Image) else volume_grid(reference)


def _label_image(labels: Union[Image, np.ndarray], reference: Optional[Reference]) -> Image:
    if isinstance(labels, Image):
        if reference is not None and not labels.same_grid(_grid(reference)):
            raise InputError("The label image is not on the reference image's grid",
                             "their size, spacing, origin or direction differ",
                             "resample the labels onto the reference first")
        return labels
    if reference is None:
        raise ValueError("a label array needs a reference image or volume node for its geometry")
    grid = _grid(reference)
    if np.shape(labels) != grid.array.shape:
        raise InputError("The label array does not fit the reference volume",
                         f"its shape is {np.shape(labels)}, the volume's is {grid.array.shape}",
                         "give labels computed on this volume's grid")
    return grid.with_array(np.asarray(labels))


def _check_specs(specs: Sequence[SegmentSpec]) -> None:
    for what, values in (("label", [s.label for s in specs]), ("name", [s.name for s in specs])):
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"segment specs repeat the {what}(s) {', '.join(duplicates)}")


def _resolve_targets(node: Any, specs: Sequence[SegmentSpec],
                     on_existing: OnExisting) -> list[tuple[Optional[str], str]]:
    """(ID of the segment to replace or None for a new one, name) per spec; raises before any change."""
    if on_existing not in ("error", "replace", "rename"):
        raise ValueError(f"on_existing must be 'error', 'replace' or 'rename', not {on_existing!r}")
    existing = segment_ids_by_name(node)
    clashes = [spec.name for spec in specs if spec.name in existing]
    if clashes and on_existing == "error":
        raise InputError(
            f"Segmentation '{node.GetName()}' already has segment(s) named {', '.join(clashes)}",
            "SegForge does not overwrite existing segments unless asked",
            "rename or delete those segments, choose another segmentation, "
            "or choose to replace them or to keep both")
    taken = set(existing) | {spec.name for spec in specs}
    targets: list[tuple[Optional[str], str]] = []
    for spec in specs:
        if spec.name not in existing:
            targets.append((None, spec.name))
        elif on_existing == "replace":
            if len(existing[spec.name]) > 1:
                raise InputError(f"Segmentation '{node.GetName()}' has {len(existing[spec.name])} segments named "
                                 f"'{spec.name}'", "it is unclear which one to replace",
                                 "rename all but one of them")
            targets.append((existing[spec.name][0], spec.name))
        else:
            number = 2
            while f"{spec.name} {number}" in taken:
                number += 1
            taken.add(f"{spec.name} {number}")
            targets.append((None, f"{spec.name} {number}"))
    return targets


def _label_boxes(array: np.ndarray, labels: Sequence[int]) -> dict[int, tuple[slice, slice, slice]]:
    """Bounding box (as slices of ``array``) of each wanted label that occurs; one sort, no per-label pass."""
    flat = array.ravel()
    indices = np.flatnonzero(flat)
    values = flat[indices]
    order = np.argsort(values, kind="stable")
    values, indices = values[order], indices[order]
    boxes = {}
    for label in labels:
        start, stop = np.searchsorted(values, label, "left"), np.searchsorted(values, label, "right")
        if stop > start:
            kji = np.unravel_index(indices[start:stop], array.shape)
            boxes[label] = tuple(slice(int(axis.min()), int(axis.max()) + 1) for axis in kji)
    return boxes


def _write_cropped_mask(node: Any, segment_id: str, cropped: np.ndarray, offset_ijk: tuple[int, int, int],
                        world_ijk_to_ras: np.ndarray) -> None:
    local_ijk_to_ras = np.linalg.inv(node_to_world(node)) @ world_ijk_to_ras
    labelmap = oriented_image(cropped, local_ijk_to_ras, offset_ijk)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(labelmap, node, segment_id, logic.MODE_REPLACE):
        raise SegForgeError(f"Could not write segment '{segment_id}' of '{node.GetName()}'",
                            "Slicer refused the labelmap", "check the log for the reason")


def require_labelmap_source(node: Any) -> None:
    """Refuse to write voxels into a segmentation whose segments are kept as surfaces (the
    writers here, and a tool about to edit one, e.g. an interactive session as it opens).

    Writing a labelmap would make every one of the user's segments a labelmap (Slicer's
    Segment Editor asks before doing that); an empty segmentation is simply switched.
    """
    segmentation = node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0 and segmentation.GetSourceRepresentationName() != BINARY_LABELMAP:
        segmentation.SetSourceRepresentationName(BINARY_LABELMAP)
    _refuse_surface_source(node)


def _refuse_surface_source(node: Any) -> None:
    """InputError when the segmentation keeps its segments as anything but voxels."""
    segmentation = node.GetSegmentation()
    if segmentation.GetSourceRepresentationName() == BINARY_LABELMAP:
        return
    raise InputError(f"Segmentation '{node.GetName()}' keeps its segments as "
                     f"{segmentation.GetSourceRepresentationName().lower()}s, not voxels",
                     "writing voxel masks into it would convert all of its segments",
                     "make binary labelmap its source representation (Segmentations module, "
                     "Representations section) or choose another segmentation")


def _layer_on_grid(node: Any, segment_id: str, grid: Image) -> np.ndarray:
    """The labelmap layer holding the segment, resampled exactly onto ``grid`` (nearest neighbour).

    A layer may be shared by several segments, each with its own label value in it.
    """
    segmentation = node.GetSegmentation()
    _ensure_labelmap(node, grid)
    layer = segmentation.GetSegment(segment_id).GetRepresentation(BINARY_LABELMAP)
    if layer is None or _is_empty(layer) or layer.GetPointData().GetScalars() is None:
        return np.zeros(grid.array.shape, np.uint8)
    # The layer is in the node's own coordinates, so the target grid is made local too.
    local_ijk_to_ras = np.linalg.inv(node_to_world(node)) @ grid.ijk_to_ras()
    target = oriented_image_geometry(grid.array.shape, local_ijk_to_ras)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            layer, target, resampled, False, False):
        raise SegForgeError(f"Could not resample segment '{segment_id}' of '{node.GetName()}'",
                            "Slicer's resampler failed", "check the log for the reason")
    return array_on_extent(resampled, target.GetExtent())


#: Voxels a segmentation kept as surfaces is turned into when no volume gives the grid.
SURFACE_VOXELS = 1_500_000


def _ensure_labelmap(node: Any, grid: Optional[Image] = None) -> None:
    """The segmentation's segments as voxels too, for one kept as surfaces (an imported model).

    Why a grid is chosen here: with none set, Slicer's conversion takes one fine enough for
    the surface's detail (a 24 x 200 mm vessel became 16.6 million voxels of 0.195 mm, and
    meshing it again took 225 s). With a volume the segment goes onto its grid anyway, so it is
    made there directly; without one, an isotropic grid over the surfaces' bounds of about
    ``SURFACE_VOXELS`` (0.43 mm for that vessel: 16 s), unless the user set one (the Segment
    Editor's "Specify geometry"). The node's own conversion setting is put back afterwards."""
    segmentation = node.GetSegmentation()
    if segmentation.ContainsRepresentation(BINARY_LABELMAP):
        return
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    before = segmentation.GetConversionParameter(name)
    geometry = None
    if grid is not None:
        geometry = oriented_image_geometry(grid.array.shape, np.linalg.inv(node_to_world(node)) @ grid.ijk_to_ras())
    elif not before:
        geometry = _surface_grid(segmentation)
    if geometry is not None:
        segmentation.SetConversionParameter(name, slicer.vtkSegmentationConverter.SerializeImageGeometry(geometry))
    try:
        segmentation.CreateRepresentation(BINARY_LABELMAP)
    finally:
        segmentation.SetConversionParameter(name, before)


def _surface_grid(segmentation: Any) -> Optional[Any]:
    """An isotropic grid (the node's own axes) over every segment's surface, of about
    ``SURFACE_VOXELS``; None when there is no surface to bound."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for index in range(segmentation.GetNumberOfSegments()):
        surface = segmentation.GetNthSegment(index).GetRepresentation(
            slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName())
        if surface is None or surface.GetNumberOfPoints() == 0:
            continue
        bounds = np.asarray(surface.GetBounds(), float)
        low, high = np.minimum(low, bounds[0::2]), np.maximum(high, bounds[1::2])
    if not np.all(np.isfinite(low)):
        return None
    size = np.maximum(high - low, 1e-3)
    spacing = float(np.cbrt(np.prod(size) / SURFACE_VOXELS))
    shape_ijk = np.ceil(size / spacing).astype(int) + 3  # a voxel of background beyond each side
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] *= spacing
    ijk_to_ras[:3, 3] = low - spacing
    return oriented_image_geometry(tuple(int(n) for n in shape_ijk[::-1]), ijk_to_ras)


def _is_empty(image: Any) -> bool:
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    return x1 < x0 or y1 < y0 or z1 < z0
