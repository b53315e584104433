"""numpy <-> VTK conversions (matrices, voxel arrays, oriented images) for the bridge.

Every bridge module moves voxels and 4x4 matrices between numpy and VTK; doing it in one
place keeps the ``[k, j, i]`` array order, deep copies and voxel types consistent.
"""
from __future__ import annotations

import logging

import numpy as np
import slicer
import vtk
from vtkmodules.util import numpy_support

logger = logging.getLogger(__name__)

#: numpy voxel types VTK has no equivalent for, and what they are stored as instead.
VTK_STAND_INS = {np.dtype(bool): np.dtype(np.uint8), np.dtype(np.float16): np.dtype(np.float32)}


def array_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """A 4x4 numpy copy of a vtkMatrix4x4."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def vtk_matrix_from_array(array: np.ndarray) -> vtk.vtkMatrix4x4:
    """A vtkMatrix4x4 holding a 4x4 numpy array."""
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def vtk_storable(array: np.ndarray) -> np.ndarray:
    """The array in a voxel type VTK can hold (bool -> uint8, float16 -> float32), C-ordered."""
    stand_in = VTK_STAND_INS.get(array.dtype)
    if stand_in is not None:
        logger.debug("voxel type %s stored as %s", array.dtype, stand_in)
        array = array.astype(stand_in)
    return np.ascontiguousarray(array)


def fill_image_data(image_data: vtk.vtkImageData, array: np.ndarray) -> None:
    """Make ``image_data`` a deep copy of ``array[k, j, i]`` (origin 0, spacing 1, as MRML wants)."""
    array = vtk_storable(array)
    k, j, i = array.shape
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image_data.SetOrigin(0.0, 0.0, 0.0)
    image_data.SetSpacing(1.0, 1.0, 1.0)
    image_data.SetExtent(0, i - 1, 0, j - 1, 0, k - 1)
    image_data.GetPointData().SetScalars(scalars)


def array_from_image_data(image_data: vtk.vtkImageData) -> np.ndarray:
    """A ``[k, j, i]`` numpy copy of single-component image data (any extent)."""
    x0, x1, y0, y1, z0, z1 = image_data.GetExtent()
    shape = (z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
    scalars = image_data.GetPointData().GetScalars()
    if scalars is None or min(shape) <= 0:
        return np.zeros((max(shape[0], 0), max(shape[1], 0), max(shape[2], 0)), np.uint8)
    return numpy_support.vtk_to_numpy(scalars).reshape(shape).copy()


def array_on_extent(image_data: vtk.vtkImageData, extent: tuple[int, int, int, int, int, int]) -> np.ndarray:
    """``[k, j, i]`` copy of image data over exactly ``extent``: cropped where larger, zero-padded where smaller."""
    x0, x1, y0, y1, z0, z1 = extent
    result = np.zeros((z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1), _dtype_of(image_data))
    source = image_data.GetExtent()
    low = [max(extent[2 * a], source[2 * a]) for a in range(3)]
    high = [min(extent[2 * a + 1], source[2 * a + 1]) for a in range(3)]
    if any(hi < lo for lo, hi in zip(low, high)) or image_data.GetPointData().GetScalars() is None:
        return result
    array = array_from_image_data(image_data)
    src = tuple(slice(low[a] - source[2 * a], high[a] - source[2 * a] + 1) for a in (2, 1, 0))
    dst = tuple(slice(low[a] - extent[2 * a], high[a] - extent[2 * a] + 1) for a in (2, 1, 0))
    result[dst] = array[src]
    return result


def _dtype_of(image_data: vtk.vtkImageData) -> np.dtype:
    scalars = image_data.GetPointData().GetScalars()
    if scalars is None:
        return np.dtype(np.uint8)
    return np.dtype(numpy_support.get_numpy_array_type(scalars.GetDataType()))


def oriented_image(array: np.ndarray, ijk_to_ras: np.ndarray,
                   offset_ijk: tuple[int, int, int] = (0, 0, 0)) -> "slicer.vtkOrientedImageData":
    """A vtkOrientedImageData holding ``array`` placed at ``offset_ijk`` of the grid ``ijk_to_ras``.

    The offset lets a mask cropped to its bounding box keep its place on the full grid.
    """
    image = slicer.vtkOrientedImageData()
    fill_image_data(image, array)
    k, j, i = array.shape
    oi, oj, ok = offset_ijk
    image.SetExtent(oi, oi + i - 1, oj, oj + j - 1, ok, ok + k - 1)
    image.SetImageToWorldMatrix(vtk_matrix_from_array(ijk_to_ras))
    return image


def oriented_image_geometry(shape_kji: tuple[int, int, int], ijk_to_ras: np.ndarray) -> "slicer.vtkOrientedImageData":
    """A vtkOrientedImageData with a grid's geometry and extent but no voxels (a resampling target)."""
    image = slicer.vtkOrientedImageData()
    k, j, i = shape_kji
    image.SetExtent(0, i - 1, 0, j - 1, 0, k - 1)
    image.SetImageToWorldMatrix(vtk_matrix_from_array(ijk_to_ras))
    return image
