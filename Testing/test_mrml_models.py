"""Model nodes from polydata: LPS/RAS handled once, point arrays kept through .vtp."""
from __future__ import annotations

import numpy as np
import pytest
import slicer
import slicer.util
import vtk
from vtkmodules.util import numpy_support

from segforge.mrml import load_model, model_from_polydata, save_node


def tube_with_arrays() -> vtk.vtkPolyData:
    source = vtk.vtkSphereSource()
    source.SetCenter(10.0, -20.0, 30.0)
    source.SetRadius(5.0)
    source.SetThetaResolution(12)
    source.SetPhiResolution(9)
    source.Update()
    mesh = source.GetOutput()
    count = mesh.GetNumberOfPoints()
    for name, values in (("Radius", np.linspace(1.0, 2.0, count)), ("BranchId", np.arange(count, dtype=np.int32) % 3)):
        array = numpy_support.numpy_to_vtk(values, deep=True)
        array.SetName(name)
        mesh.GetPointData().AddArray(array)
    return mesh


def point_array(mesh: vtk.vtkPolyData, name: str) -> np.ndarray:
    return numpy_support.vtk_to_numpy(mesh.GetPointData().GetArray(name))


def test_lps_mesh_becomes_a_ras_model_with_its_arrays(mrml_scene):
    mesh = tube_with_arrays()
    model = model_from_polydata(mesh, space="LPS", name="Vessel surface")
    lps = numpy_support.vtk_to_numpy(mesh.GetPoints().GetData())
    np.testing.assert_allclose(slicer.util.arrayFromModelPoints(model), lps * [-1, -1, 1])
    np.testing.assert_array_equal(slicer.util.arrayFromModelPointData(model, "BranchId"), point_array(mesh, "BranchId"))
    np.testing.assert_array_equal(slicer.util.arrayFromModelPointData(model, "Radius"), point_array(mesh, "Radius"))
    # the normals were flipped with the points (outward stays outward)
    normals = slicer.util.arrayFromModelPointData(model, "Normals")
    np.testing.assert_allclose(normals, point_array(mesh, "Normals") * [-1, -1, 1], atol=1e-6)


def test_ras_mesh_is_copied_not_moved(mrml_scene):
    mesh = tube_with_arrays()
    model = model_from_polydata(mesh, space="RAS")
    assert model.GetPolyData() is not mesh
    np.testing.assert_allclose(slicer.util.arrayFromModelPoints(model),
                               numpy_support.vtk_to_numpy(mesh.GetPoints().GetData()))


def test_scalar_display(mrml_scene):
    model = model_from_polydata(tube_with_arrays(), space="RAS", scalars="Radius", color=(1.0, 0.0, 0.0))
    display = model.GetDisplayNode()
    assert display.GetScalarVisibility() and display.GetActiveScalarName() == "Radius"
    assert display.GetActiveAttributeLocation() == vtk.vtkAssignAttribute.POINT_DATA
    assert display.GetColorNode() is not None
    assert display.GetColor() == (1.0, 0.0, 0.0)
    plain = model_from_polydata(tube_with_arrays(), space="RAS")
    assert not plain.GetDisplayNode().GetScalarVisibility()


def test_unknown_scalars_and_space_are_refused(mrml_scene):
    with pytest.raises(ValueError, match="no point array 'Pressure'"):
        model_from_polydata(tube_with_arrays(), space="RAS", scalars="Pressure")
    with pytest.raises(ValueError, match="space"):
        model_from_polydata(tube_with_arrays(), space="IJK")


def test_vtp_round_trip_keeps_points_and_arrays(mrml_scene, tmp_path):
    mesh = tube_with_arrays()
    model = model_from_polydata(mesh, space="LPS", name="surface")
    path = save_node(model, tmp_path / "surface.vtp")

    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    on_disk = reader.GetOutput()
    assert on_disk.GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
    np.testing.assert_allclose(numpy_support.vtk_to_numpy(on_disk.GetPoints().GetData()),
                               numpy_support.vtk_to_numpy(mesh.GetPoints().GetData()), atol=1e-5)

    loaded = load_model(path)
    assert loaded.GetName() == "surface"
    np.testing.assert_allclose(slicer.util.arrayFromModelPoints(loaded), slicer.util.arrayFromModelPoints(model))
    branch = slicer.util.arrayFromModelPointData(loaded, "BranchId")
    assert branch.dtype == np.int32
    np.testing.assert_array_equal(branch, point_array(mesh, "BranchId"))
    np.testing.assert_array_equal(slicer.util.arrayFromModelPointData(loaded, "Radius"), point_array(mesh, "Radius"))
    assert loaded.GetPolyData().GetNumberOfCells() == mesh.GetNumberOfCells()
