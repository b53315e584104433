"""Surfaces from masks: closed, in the right place on oblique anisotropic grids, read by Slicer."""
from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkFiltersCore import vtkFeatureEdges, vtkMassProperties

from conftest import OBLIQUE
from segforge.errors import InputError
from segforge.image import Image
from segforge.mesh import SurfaceParameters, surface_from_mask
from segforge.polydata_io import read_polydata_lps, write_polydata

RADIUS_MM = 6.0


def sphere_mask(spacing=(0.7, 0.9, 1.6), direction=OBLIQUE, origin=(10.0, -20.0, 35.0)) -> tuple[Image, np.ndarray]:
    shape = (20, 34, 40)
    grid = Image(np.zeros(shape, np.uint8), spacing, origin, direction)
    centre_ijk = np.array([19.5, 16.5, 9.5, 1.0])
    centre = (grid.ijk_to_lps() @ centre_ijk)[:3]
    k, j, i = np.indices(shape)
    ijk = np.stack([i, j, k, np.ones_like(i)], axis=-1).reshape(-1, 4).astype(float)
    lps = (grid.ijk_to_lps() @ ijk.T).T[:, :3]
    inside = (np.linalg.norm(lps - centre, axis=1) <= RADIUS_MM).reshape(shape)
    return grid.with_array(inside.astype(np.uint8)), centre


def boundary_edges(polydata) -> int:
    edges = vtkFeatureEdges()
    edges.SetInputData(polydata)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


@pytest.mark.parametrize("parameters", [SurfaceParameters(0, 0), SurfaceParameters()])
def test_sphere_surface_is_closed_and_in_place_on_an_oblique_grid(parameters):
    mask, centre = sphere_mask()
    surface = surface_from_mask(mask, parameters)
    assert boundary_edges(surface) == 0
    points = vtk_to_numpy(surface.GetPoints().GetData())
    distance = np.linalg.norm(points - centre, axis=1)
    assert abs(np.median(distance) - RADIUS_MM) < 0.5
    assert distance.max() < RADIUS_MM + 1.6 and distance.min() > RADIUS_MM - 1.6
    mass = vtkMassProperties()
    mass.SetInputData(surface)
    assert mass.GetVolume() == pytest.approx(4 / 3 * np.pi * RADIUS_MM ** 3, rel=0.1)
    # Outward normals: they point away from the centre.
    normals = vtk_to_numpy(surface.GetPointData().GetNormals())
    assert np.mean(np.sum(normals * (points - centre), axis=1) > 0) > 0.95


def test_mask_touching_the_border_still_closes():
    mask = Image(np.ones((6, 7, 8), np.uint8), (1.0, 1.0, 2.0))
    surface = surface_from_mask(mask, SurfaceParameters(0, 0))
    assert boundary_edges(surface) == 0 and surface.GetNumberOfCells() > 0


def test_empty_mask_is_a_clear_error():
    with pytest.raises(InputError, match="empty"):
        surface_from_mask(Image(np.zeros((4, 4, 4), np.uint8)))


def test_vtp_is_tagged_lps_and_slicer_reads_it_in_ras(tmp_path, mrml_scene):
    from segforge.mrml import load_model

    mask, centre = sphere_mask()
    surface = surface_from_mask(mask)
    path = write_polydata(surface, tmp_path / "surface.vtp")
    again = read_polydata_lps(path)
    np.testing.assert_allclose(vtk_to_numpy(again.GetPoints().GetData()), vtk_to_numpy(surface.GetPoints().GetData()))
    node = load_model(path)
    ras = vtk_to_numpy(node.GetPolyData().GetPoints().GetData())
    np.testing.assert_allclose(ras[:, :2], -vtk_to_numpy(surface.GetPoints().GetData())[:, :2], atol=1e-4)
    centre_ras = ras.mean(axis=0)
    assert np.linalg.norm(centre_ras - centre * [-1, -1, 1]) < 0.5


def test_unmarked_file_is_read_as_ras(tmp_path):
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

    mask, _ = sphere_mask()
    surface = surface_from_mask(mask)
    writer = vtkXMLPolyDataWriter()
    writer.SetFileName(str(tmp_path / "ras.vtp"))
    writer.SetInputData(surface)
    writer.Write()
    read = read_polydata_lps(tmp_path / "ras.vtp")
    np.testing.assert_allclose(vtk_to_numpy(read.GetPoints().GetData())[:, :2],
                               -vtk_to_numpy(surface.GetPoints().GetData())[:, :2], atol=1e-5)
