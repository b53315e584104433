"""Save and load nodes and whole scenes through MRML storage nodes.

``slicer.util.saveNode`` / ``loadVolume`` / ``loadSegmentation`` need ``slicer.app``;
storage nodes and the scene's own .mrb reader and writer do not, so the same code saves
results in desktop Slicer, in the web app and in tests. Formats are Slicer's: .seg.nrrd
keeps segment names, colours and terminology; .mrk.json keeps measurements; models are
written in LPS with the ``SPACE`` marker; tables get a schema file keeping column types.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import slicer

from ..errors import InputError, SegForgeError
from ..image_checks import verify_volume_file
from ..image_io import quiet_native_output
from .scene import get_scene

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


def save_node(node: Any, path: PathLike) -> Path:
    """Write a storable node (volume, segmentation, markups, model, table) to ``path``.

    The file suffix picks the format; the node keeps the storage node, as after saving in Slicer.
    """
    path = Path(path).absolute()
    if not node.IsA("vtkMRMLStorableNode"):
        raise InputError(f"'{node.GetName()}' cannot be saved", f"a {node.GetClassName()} has no file format",
                         "save a volume, segmentation, markups, model or table")
    storage = node.GetStorageNode()
    if storage is None or not storage.SupportedFileType(str(path)):
        storage = node.CreateDefaultStorageNode()
        node.GetScene().AddNode(storage)
        node.SetAndObserveStorageNodeID(storage.GetID())
        if not storage.SupportedFileType(str(path)):
            raise InputError(f"Cannot save '{node.GetName()}' as {path.name}",
                             f"a {node.GetClassName()} cannot be written in that format",
                             f"use a {storage.GetDefaultWriteFileExtension()} file")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        storage.SetFileName(str(temporary))
        if not storage.WriteData(node):
            raise SegForgeError(f"Could not save '{node.GetName()}' to {path}", _messages(storage),
                                "check that the folder is writable and the disk is not full")

    try:
        _write_beside(path, write)
    finally:
        storage.SetFileName(str(path))
    logger.info("saved '%s' to %s", node.GetName(), path)
    return path


def _write_beside(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` the file into a hidden folder beside ``path``, then move what it made (the
    file and any companion, such as a table's schema) into place: a failed or interrupted
    save leaves the file that was there before and no partial file."""
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    except OSError as error:
        raise SegForgeError(f"Could not save {path}", f"{path.parent} cannot be written: {error.strerror}",
                            "choose a folder you can write to") from None
    try:
        write(folder / path.name)
        made = sorted(folder.iterdir(), key=lambda f: f.name == path.name)  # the file itself last
        for file in made:
            os.replace(file, path.parent / file.name)
    except OSError as error:
        raise SegForgeError(f"Could not save {path}", error.strerror or str(error),
                            "check that the folder is writable and the disk is not full") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def load_volume(path: PathLike, name: Optional[str] = None, *, labelmap: bool = False,
                scene: Optional[Any] = None) -> Any:
    """A new scalar (or labelmap) volume node read from .nrrd, .nii(.gz), .mha...

    The file is first checked against its header (:func:`~segforge.image_checks.verify_volume_file`):
    Slicer's readers, like SimpleITK's, fill a file cut short with zeros.
    """
    verify_volume_file(_existing(path))
    node_class = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    return _read(path, node_class, "vtkMRMLVolumeArchetypeStorageNode", name, scene)


def load_segmentation(path: PathLike, name: Optional[str] = None, *, scene: Optional[Any] = None) -> Any:
    """A new segmentation node read from .seg.nrrd (names, colours, terminology kept), checked first."""
    verify_volume_file(_existing(path))
    return _read(path, "vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", name, scene)


def load_model(path: PathLike, name: Optional[str] = None, *, scene: Optional[Any] = None) -> Any:
    """A new model node read from .vtp, .vtk, .stl, .ply or .obj (point arrays kept)."""
    return _read(path, "vtkMRMLModelNode", "vtkMRMLModelStorageNode", name, scene)


def load_table(path: PathLike, name: Optional[str] = None, *, scene: Optional[Any] = None) -> Any:
    """A new table node read from .csv or .tsv (column types from its schema file when present)."""
    return _read(path, "vtkMRMLTableNode", "vtkMRMLTableStorageNode", name, scene)


def load_markups(path: PathLike, name: Optional[str] = None, *, scene: Optional[Any] = None) -> Any:
    """A new markups node (curve, points...; the class is read from the file) from .mrk.json."""
    path = _existing(path)
    scene = scene or get_scene()
    storage = scene.AddNewNodeByClass(_markups_storage_class(path))
    with quiet_native_output():
        node = storage.AddNewMarkupsNodeFromFile(str(path), name or _base_name(path))
    if node is None:
        scene.RemoveNode(storage)
        raise InputError(f"Could not read markups from {path}", _messages(storage),
                         "give a .mrk.json file written by Slicer")
    logger.info("loaded %s '%s' from %s", node.GetClassName(), node.GetName(), path)
    return node


#: Markups types whose own storage node reads what the generic one skips (an ROI's size, a plane's).
_TYPE_STORAGE = {"ROI": "vtkMRMLMarkupsROIJsonStorageNode", "Plane": "vtkMRMLMarkupsPlaneJsonStorageNode"}


def _markups_storage_class(path: Path) -> str:
    """The storage node class that reads all of the markups in ``path`` (the generic one when unsure)."""
    try:
        types = {markups.get("type") for markups in json.loads(path.read_text(encoding="utf-8"))["markups"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "vtkMRMLMarkupsJsonStorageNode"  # the generic reader says what is wrong with the file
    classes = {_TYPE_STORAGE.get(kind, "vtkMRMLMarkupsJsonStorageNode") for kind in types}
    return classes.pop() if len(classes) == 1 else "vtkMRMLMarkupsJsonStorageNode"


def save_scene_bundle(path: PathLike, scene: Optional[Any] = None) -> Path:
    """Save the whole scene, every node's data included, as one .mrb file."""
    path = Path(path).absolute()
    if path.suffix.lower() != ".mrb":
        raise InputError(f"Cannot save the scene as {path.name}", "a scene bundle is a .mrb file",
                         "give a file name ending in .mrb")
    scene = scene or get_scene()
    path.parent.mkdir(parents=True, exist_ok=True)
    messages = slicer.vtkMRMLMessageCollection()

    def write(temporary: Path) -> None:
        if not scene.WriteToMRB(str(temporary), None, messages):
            raise SegForgeError(f"Could not save the scene to {path}", messages.GetAllMessagesAsString(),
                                "check that the folder is writable and the disk is not full")

    _write_beside(path, write)
    logger.info("saved scene to %s", path)
    return path


def load_scene_bundle(path: PathLike, scene: Optional[Any] = None, *, clear: bool = False) -> None:
    """Add the nodes of a .mrb file to the scene (``clear`` first empties the scene)."""
    path = _existing(path)
    scene = scene or get_scene()
    if not zipfile.is_zipfile(path):  # before Slicer, which prints its own dump on stdout
        raise InputError(f"Could not load the scene {path}", "it is not a zip archive, as every .mrb is "
                         "(it is another kind of file, or it was cut short)",
                         "give a .mrb file saved by Slicer, or copy it again from its source")
    messages = slicer.vtkMRMLMessageCollection()
    with quiet_native_output():
        read = scene.ReadFromMRB(str(path), clear, messages)
    if not read:
        raise InputError(f"Could not load the scene {path}", _readable(messages.GetAllMessagesAsString()),
                         "give a .mrb file saved by Slicer")
    logger.info("loaded scene %s", path)


def _read(path: PathLike, node_class: str, storage_class: str, name: Optional[str], scene: Optional[Any]) -> Any:
    path = _existing(path)
    scene = scene or get_scene()
    storage = scene.AddNewNodeByClass(storage_class)
    node = scene.AddNewNodeByClass(node_class, name or _base_name(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(str(path))
    with quiet_native_output():
        read = storage.ReadData(node)
    if not read:
        why = _messages(storage)
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError(f"Could not read {path}", why, f"give a file that Slicer reads as a {node_class[7:-4]}")
    if node.IsA("vtkMRMLModelNode") and (node.GetMesh() is None or not node.GetMesh().GetNumberOfPoints()):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError(f"Could not read {path}", "the model reader found no points in it (it is empty, or "
                         "not a model file of its kind: text named .ply or .obj reads as an empty model)",
                         "give a model file that holds a surface")
    if node.IsA("vtkMRMLDisplayableNode"):
        node.CreateDefaultDisplayNodes()
    logger.info("loaded '%s' from %s", node.GetName(), path)
    return node


def _existing(path: PathLike) -> Path:
    path = Path(path).absolute()
    if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO would block, /dev/zero never end
        raise InputError(f"{path} is not a regular file", "it is a named pipe, a socket or a device",
                         "save the data to a file and give that file's path")
    if not path.is_file():
        raise InputError(f"No file at {path}", "the path does not exist or is a folder", "check the path")
    return path


def _base_name(path: Path) -> str:
    """File name without its (possibly double) suffix: "aorta.seg.nrrd" -> "aorta"."""
    name = path.name
    for suffix in (".seg.nrrd", ".mrk.json", ".nii.gz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _messages(storage: Any) -> str:
    return _readable(storage.GetUserMessages().GetAllMessagesAsString() if storage.GetUserMessages() else "")


def _readable(text: str) -> str:
    """VTK's collected messages as sentences: without 'ERROR: In file.cxx, line N', object
    addresses and repeated 'Error:' prefixes; each said once."""
    sentences: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^(\s*-\s*)?((Error|Warning|ERROR|WARNING)\s*:\s*)+", "", line.strip())
        line = re.sub(r"^In \S+, line \d+$", "", line)
        line = re.sub(r"^\w+ \(0x[0-9a-fA-F]+\):\s*", "", line).strip()
        if re.match(r"(vtkMRMLStorageNode::ReadData: )?Failed to read node .* from filename=", line):
            continue  # the storage node's own summary: the file is named in what failed
        if line and line not in sentences:
            sentences.append(line)
    return "; ".join(sentences) or "the reader or writer reported no reason"
