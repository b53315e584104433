"""Load files from the server's disk (or from an upload) into the scene.

Every format goes through what :mod:`segforge.mrml` and :mod:`segforge.image_io` already
do for the desktop modules and the CLI (storage nodes, the scene's .mrb reader,
SimpleITK for DICOM series), so a file reads the same everywhere. ``slicer.util.load*``
cannot be used: they need ``slicer.app``.
"""
from __future__ import annotations

import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from segforge.errors import InputError
from segforge.mrml.dicom_source import mark_dicom_origin
from segforge.mrml import (load_markups, load_model, load_scene_bundle, load_segmentation, load_table,
                           load_volume, volume_node_from_image)

logger = logging.getLogger(__name__)

#: File endings this loader reads by kind (the Save panel writes the same ones; its default first).
VOLUME_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".nhdr", ".mha", ".mhd")
MODEL_SUFFIXES = (".vtp", ".vtk", ".stl", ".ply", ".obj")
TABLE_SUFFIXES = (".csv", ".tsv")
#: All of them, ".seg.nrrd" before ".nrrd" (a segmentation is not read as a volume).
SUFFIXES = (".seg.nrrd", ".mrk.json", ".mrb", *VOLUME_SUFFIXES, *MODEL_SUFFIXES, *TABLE_SUFFIXES)


@dataclass
class Loaded:
    """What one load added: the new nodes and, among them, the volumes to show."""

    nodes: list[Any] = field(default_factory=list)

    @property
    def volumes(self) -> list[Any]:
        return [node for node in self.nodes if node.IsA("vtkMRMLScalarVolumeNode")
                and not node.IsA("vtkMRMLLabelMapVolumeNode")]


def load_path(path: str | Path, scene: Any) -> Loaded:
    """Load a file or a DICOM series folder into ``scene``; what was added comes back.

    Raises :class:`~segforge.errors.InputError` saying what to give instead when the path
    does not exist or is not a format SegForge reads.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"Nothing at {path}", "the path does not exist on the server",
                         "give a path on the machine running segforge app (not on your computer), "
                         "or upload the file")
    before = _node_ids(scene)
    if path.is_dir():
        _load_dicom_folder(path, scene)
    else:
        _load_file(path, scene)
    loaded = Loaded([scene.GetNodeByID(node_id) for node_id in _node_ids(scene) if node_id not in before])
    loaded.nodes = [node for node in loaded.nodes if node is not None and _is_data(node)]
    logger.info("loaded %s: %s", path, ", ".join(node.GetName() for node in loaded.nodes))
    return loaded


def load_paths(paths: Iterable[str | Path], scene: Any) -> Loaded:
    """:func:`load_path` for each path, in order, results together."""
    loaded = Loaded()
    for path in paths:
        loaded.nodes += load_path(path, scene).nodes
    return loaded


def load_uploaded_folder(folder: Path, scene: Any, keep_series_in: Optional[Path] = None) -> Loaded:
    """Load what a browser upload wrote into ``folder``: one DICOM series, or files one by one.

    An upload's folder is temporary; a DICOM series is first copied into ``keep_series_in``
    (when given) and loaded from there, so the volume's DICOM SEG and SR can still refer to
    its slices after the upload is gone (Export to DICOM, Send to PACS)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if files and not any(_suffix(p) for p in files):  # no known ending: a DICOM series
        series = files[0].parent if len({p.parent for p in files}) == 1 else folder
        if keep_series_in is None:
            return load_path(series, scene)
        kept = keep_series_in / secrets.token_hex(4) / series.name
        shutil.copytree(series, kept)
        try:
            return load_path(kept, scene)
        except BaseException:
            shutil.rmtree(kept.parent, ignore_errors=True)  # nothing to refer to: not kept
            raise
    return load_paths([p for p in files if _suffix(p)], scene)


def _load_file(path: Path, scene: Any) -> None:
    suffix = _suffix(path)
    if suffix == ".seg.nrrd":
        load_segmentation(path, scene=scene)
    elif suffix == ".mrk.json":
        load_markups(path, scene=scene)
    elif suffix == ".mrb":
        load_scene_bundle(path, scene)
    elif suffix in VOLUME_SUFFIXES:
        _segmentation_if_label_map(load_volume(path, scene=scene), path, scene)
    elif suffix in MODEL_SUFFIXES:
        load_model(path, scene=scene)
    elif suffix in TABLE_SUFFIXES:
        load_table(path, scene=scene)
    else:
        raise InputError(f"SegForge does not read {path.name}", "its file type is not one it knows",
                         "give NIfTI, NRRD, MHA, .seg.nrrd, .mrk.json, .mrb, a model, a table "
                         "or a folder holding one DICOM series")


def _segmentation_if_label_map(volume: Any, path: Path, scene: Any) -> Any:
    """A volume file that is a label map (a mask, TotalSegmentator's output; the rule:
    :func:`segforge.segment_input.label_map_segments`, the CLI's ``--segment FILE`` reader's) as a
    segmentation node, one segment per label, named as the file names them; else the volume.

    What Slicer users expect of a label map (Slicer's "Import labelmap to segmentation", the
    TotalSegmentator extension's result): the modules take segments as their segment input,
    and a label map left as a grey volume could only be refused as "not a CTA".
    """
    from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
    from segforge.mrml.volumes import image_from_volume_node
    from segforge.organ.terminology import palette_color
    from segforge.segment_input import label_map_segments

    image = image_from_volume_node(volume)
    segments = label_map_segments(image.array, path)
    if not segments:
        return volume
    name = volume.GetName()
    specs = [SegmentSpec(s.value, s.name or (name if len(segments) == 1 else f"{name} label {s.value}"),
                         palette_color(s.name or str(s.value))) for s in segments]
    segmentation = new_segmentation_node(image, name, scene=scene)
    write_label_segments(segmentation, image, specs)
    for helper in (volume.GetDisplayNode(), volume.GetStorageNode()):
        if helper is not None:
            scene.RemoveNode(helper)
    scene.RemoveNode(volume)
    segmentation.SetName(name)  # the file's name, now that the volume no longer holds it
    return segmentation


def _load_dicom_folder(folder: Path, scene: Any) -> None:
    from segforge.image_io import read_image

    image = read_image(folder)  # one series per folder; says what to do otherwise
    node = volume_node_from_image(image, folder.name, scene=scene)
    mark_dicom_origin(node, folder)  # what a DICOM SEG / SR of a result on it will refer to
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((suffix for suffix in SUFFIXES if name.endswith(suffix)), "")


def _node_ids(scene: Any) -> list[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def _is_data(node: Any) -> bool:
    """Data nodes the user cares about (not storage, display or hierarchy helpers)."""
    return node.IsA("vtkMRMLDisplayableNode") or node.IsA("vtkMRMLTableNode")
