"""A watertight, smoothed, decimated surface of a mask, in the image's physical (LPS) space.

Flying edges on the mask padded by one empty voxel (so the surface closes where the mask
touches the border), windowed-sinc smoothing (keeps the volume, unlike Laplacian
smoothing), quadric decimation, and consistent outward normals. Points are placed through
the image's full IJK-to-LPS matrix, so oblique and anisotropic grids are exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import (vtkFlyingEdges3D, vtkPolyDataNormals, vtkQuadricDecimation,
                                       vtkWindowedSincPolyDataFilter)
from vtkmodules.vtkFiltersGeneral import vtkTransformPolyDataFilter

from .errors import InputError
from .image import Image
from .progress import ProgressCallback, no_progress


@dataclass(frozen=True)
class SurfaceParameters:
    """How much to smooth (0 = none, 1 = a lot) and what fraction of triangles to remove."""

    smoothing: float = 0.5
    decimation: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.smoothing <= 1 or not 0 <= self.decimation < 1:
            raise InputError("The surface parameters are invalid",
                             f"smoothing {self.smoothing}, decimation {self.decimation}",
                             "use smoothing in 0..1 and decimation in 0..0.99")


def _padded_image_data(mask: np.ndarray) -> vtkImageData:
    padded = np.pad((mask != 0).astype(np.uint8), 1)
    data = vtkImageData()
    data.SetDimensions(padded.shape[2], padded.shape[1], padded.shape[0])
    data.SetOrigin(-1.0, -1.0, -1.0)  # index space of the unpadded grid
    data.GetPointData().SetScalars(numpy_to_vtk(padded.ravel(), deep=True))
    return data


def _ijk_to_lps_transform(image: Image) -> vtkTransform:
    matrix = vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(image.ijk_to_lps()[row, column]))
    transform = vtkTransform()
    transform.SetMatrix(matrix)
    return transform


def surface_from_mask(mask: Image, parameters: SurfaceParameters = SurfaceParameters(),
                      progress: Optional[ProgressCallback] = None) -> vtkPolyData:
    """The closed surface of the non-zero voxels of ``mask`` (LPS millimetres, outward normals)."""
    report = progress or no_progress
    if not np.any(mask.array):
        raise InputError("The mask is empty", "there is no voxel to build a surface around",
                         "check the segmentation, or lower the threshold")
    report(0.0, "Surface: contouring")
    contour = vtkFlyingEdges3D()
    contour.SetInputData(_padded_image_data(mask.array))
    contour.SetValue(0, 0.5)
    contour.ComputeNormalsOff()
    contour.Update()
    surface = contour.GetOutput()
    if parameters.smoothing > 0:
        report(0.3, "Surface: smoothing")
        smoother = vtkWindowedSincPolyDataFilter()
        smoother.SetInputData(surface)
        smoother.SetNumberOfIterations(int(10 + 20 * parameters.smoothing))
        smoother.SetPassBand(10 ** (-4.0 * parameters.smoothing))  # 1 (none) .. 1e-4 (strong)
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.NormalizeCoordinatesOn()
        smoother.Update()
        surface = smoother.GetOutput()
    if parameters.decimation > 0:
        report(0.6, "Surface: decimating")
        decimator = vtkQuadricDecimation()
        decimator.SetInputData(surface)
        decimator.SetTargetReduction(parameters.decimation)
        decimator.VolumePreservationOn()
        decimator.Update()
        surface = decimator.GetOutput()
    report(0.8, "Surface: placing in patient space")
    placer = vtkTransformPolyDataFilter()
    placer.SetTransform(_ijk_to_lps_transform(mask))
    placer.SetInputData(surface)
    placer.Update()
    normals = vtkPolyDataNormals()
    normals.SetInputData(placer.GetOutput())
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()  # outward, whatever the handedness of the grid
    normals.SplittingOff()
    normals.Update()
    report(1.0, "Surface done")
    return normals.GetOutput()
