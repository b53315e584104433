"""Volume nodes <-> engine images, with the geometry exactly kept.

The engine sees a volume as an :class:`~segforge.image.Image` in *world* coordinates: a
volume under a linear parent transform is given its transformed (hardened) geometry, so
results computed on it land where the user sees the volume; writing an image into a node
under a transform inverts that transform, so the node again shows it at the image's world
position. Warping transforms, vector, tensor, 4D volumes and empty nodes are refused with
a message saying what to do.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import vtk

from ..errors import InputError
from ..image import Image
from .convert import array_from_image_data, array_from_vtk_matrix, fill_image_data, vtk_matrix_from_array
from .scene import get_scene
from .transforms import node_to_world

logger = logging.getLogger(__name__)

_MULTI_COMPONENT_CLASSES = ("vtkMRMLVectorVolumeNode", "vtkMRMLDiffusionWeightedVolumeNode",
                            "vtkMRMLDiffusionTensorVolumeNode")


def image_from_volume_node(volume_node: Any, *, allow_sequence_frame: bool = False) -> Image:
    """The volume's voxels (a copy, voxel type kept) on its world grid.

    A volume that is the displayed frame of a sequence (4D series) is refused unless
    ``allow_sequence_frame``: segmenting one time point by accident is easy to miss.
    """
    _check_scalar_volume(volume_node)
    if not allow_sequence_frame:
        browser = sequence_browser_of(volume_node)
        if browser is not None:
            raise InputError(
                f"'{volume_node.GetName()}' is one frame of the sequence '{browser.GetName()}' (a 4D series)",
                "only the frame shown now would be segmented",
                "pick the time point in the Sequences module and clone that volume "
                "(Data module: right-click, Clone), then segment the clone")
    array = array_from_image_data(volume_node.GetImageData())
    return Image.from_ijk_to_ras(array, world_ijk_to_ras(volume_node))


def volume_node_from_image(image: Image, name: str = "Volume", *, node: Optional[Any] = None,
                           scene: Optional[Any] = None) -> Any:
    """Put an image into ``node`` (any scalar or labelmap volume node) or a new scalar volume node.

    The voxel type is kept, except bool (stored as uint8) and float16 (as float32), which
    VTK has no type for. A node under a linear transform is given the local geometry that
    puts the image at its world position.
    """
    if node is None:
        scene = scene or get_scene()
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    elif not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLVectorVolumeNode"):
        raise InputError(f"Cannot write an image into '{node.GetName()}'",
                         f"it is a {node.GetClassName()}, not a scalar volume",
                         "choose a scalar volume as output, or create a new one")
    local_ijk_to_ras = np.linalg.inv(node_to_world(node)) @ image.ijk_to_ras()
    image_data = vtk.vtkImageData()
    fill_image_data(image_data, image.array)
    was_modifying = node.StartModify()
    try:
        node.SetIJKToRASMatrix(vtk_matrix_from_array(local_ijk_to_ras))
        node.SetAndObserveImageData(image_data)
    finally:
        node.EndModify(was_modifying)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    logger.debug("wrote %s image %s into '%s'", image.array.dtype, image.shape_ijk, node.GetName())
    return node


def world_ijk_to_ras(volume_node: Any) -> np.ndarray:
    """4x4 matrix from the volume's voxel indices to world RAS (parent transforms applied)."""
    local_ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(local_ijk_to_ras)
    return node_to_world(volume_node) @ array_from_vtk_matrix(local_ijk_to_ras)


def volume_grid(volume_node: Any) -> Image:
    """An all-zero uint8 image on the volume's world grid: its geometry without copying voxels."""
    _check_scalar_volume(volume_node)
    i, j, k = volume_node.GetImageData().GetDimensions()
    zeros = np.broadcast_to(np.zeros((), np.uint8), (k, j, i))
    return Image.from_ijk_to_ras(zeros, world_ijk_to_ras(volume_node))


def sequence_browser_of(node: Any) -> Optional[Any]:
    """The sequence browser showing ``node`` as its current frame, or None."""
    scene = node.GetScene()
    if scene is None:
        return None
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        browser = scene.GetNthNodeByClass(index, "vtkMRMLSequenceBrowserNode")
        if browser.IsProxyNodeID(node.GetID()):
            return browser
    return None


def _check_scalar_volume(node: Any) -> None:
    if node is None or not node.IsA("vtkMRMLVolumeNode"):
        kind = "nothing" if node is None else f"a {node.GetClassName()}"
        raise InputError(f"Expected a volume, got {kind}", "only image volumes can be segmented",
                         "select a volume (a CT, MR... image) as input")
    name = node.GetName()
    if node.GetClassName() == "vtkMRMLMultiVolumeNode":
        raise InputError(f"'{name}' is a 4D multi-volume", "SegForge segments one 3D volume at a time",
                         "convert it to a sequence (MultiVolume module) and clone the time point to segment")
    image_data = node.GetImageData()
    if image_data is None or image_data.GetNumberOfPoints() == 0:
        raise InputError(f"'{name}' holds no voxels", "its image data is missing or empty",
                         "load the volume's file again, or choose another volume")
    components = image_data.GetNumberOfScalarComponents()
    if any(node.IsA(cls) for cls in _MULTI_COMPONENT_CLASSES) or components > 1:
        raise InputError(f"'{name}' is a vector, colour or tensor volume",
                         f"each voxel has {components} values",
                         "convert it to a scalar volume first (Vector to Scalar Volume module)")
