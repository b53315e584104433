"""Volume nodes <-> engine images: exact voxels, exact oblique geometry, clear refusals."""
from __future__ import annotations

import numpy as np
import pytest
import slicer
import slicer.util
import vtk

from segforge.errors import InputError
from segforge.image import LPS_TO_RAS, Image, require_3d_volume
from segforge.image_io import read_image, write_image
from segforge.mrml import (image_from_volume_node, load_volume, save_node, volume_grid,
                           volume_node_from_image)
from segforge.mrml.convert import array_from_vtk_matrix, vtk_matrix_from_array

GEOMETRY_TOL = 1e-9


def ijk_to_ras_of(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return array_from_vtk_matrix(matrix)


def assert_same_image(actual: Image, expected: Image, tol: float = GEOMETRY_TOL) -> None:
    assert actual.array.dtype == expected.array.dtype
    assert actual.array.shape == expected.array.shape
    assert np.array_equal(actual.array, expected.array)
    np.testing.assert_allclose(actual.ijk_to_lps(), expected.ijk_to_lps(), atol=tol, rtol=0)


def test_test_image_is_oblique_anisotropic_and_off_origin(image_factory):
    image = image_factory()
    assert image.is_oblique
    assert len(set(image.spacing)) == 3
    assert np.all(np.asarray(image.origin_lps) != 0)


def test_node_to_image_to_node(mrml_scene, image_factory):
    """A volume made with plain MRML calls comes out with its IJKToRAS and voxels, and goes back."""
    source = image_factory(dtype=np.int16)
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    node.SetIJKToRASMatrix(vtk_matrix_from_array(source.ijk_to_ras()))
    slicer.util.updateVolumeFromArray(node, source.array)

    image = image_from_volume_node(node)
    np.testing.assert_allclose(image.ijk_to_ras(), ijk_to_ras_of(node), atol=GEOMETRY_TOL, rtol=0)
    assert np.array_equal(image.array, slicer.util.arrayFromVolume(node))
    assert image.array.dtype == np.int16

    back = volume_node_from_image(image, "back")
    assert back is not node and back.GetScene() is mrml_scene
    np.testing.assert_allclose(ijk_to_ras_of(back), ijk_to_ras_of(node), atol=GEOMETRY_TOL, rtol=0)
    assert np.array_equal(slicer.util.arrayFromVolume(back), slicer.util.arrayFromVolume(node))
    assert back.GetDisplayNode() is not None


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.float32, np.float64])
def test_image_to_node_to_image_keeps_voxels_and_type(mrml_scene, image_factory, dtype):
    image = image_factory(dtype=dtype, seed=3)
    node = volume_node_from_image(image)
    assert_same_image(image_from_volume_node(node), image)


def test_image_copy_is_independent_of_the_node(mrml_scene, image_factory):
    node = volume_node_from_image(image_factory())
    image = image_from_volume_node(node)
    before = image.array.copy()
    slicer.util.arrayFromVolume(node)[:] = 7
    assert np.array_equal(image.array, before)


@pytest.mark.parametrize("dtype, stored", [(bool, np.uint8), (np.float16, np.float32)])
def test_types_vtk_lacks_are_stored_as_the_nearest_type(mrml_scene, image_factory, dtype, stored):
    image = image_factory(dtype=dtype)
    back = image_from_volume_node(volume_node_from_image(image))
    assert back.array.dtype == stored
    assert np.array_equal(back.array, image.array.astype(stored))


def test_writing_into_an_existing_node_replaces_grid_and_voxels(mrml_scene, image_factory):
    node = volume_node_from_image(image_factory((5, 6, 7), np.float32, seed=1), "target")
    display = node.GetDisplayNode()
    new = image_factory((9, 12, 16), np.int16, seed=2, origin_lps=(3.0, -4.0, 5.5))
    assert volume_node_from_image(new, node=node) is node
    assert node.GetDisplayNode() is display
    assert_same_image(image_from_volume_node(node), new)


def test_volume_grid_has_the_geometry_without_the_voxels(mrml_scene, image_factory):
    image = image_factory()
    grid = volume_grid(volume_node_from_image(image))
    assert grid.same_grid(image, tol=GEOMETRY_TOL)
    assert not grid.array.any()


def test_slicer_reads_our_files_where_simpleitk_put_them(mrml_scene, image_factory, tmp_path):
    """Slicer's own reader (storage node) and SimpleITK agree on the oblique geometry of a file."""
    image = image_factory(dtype=np.int16)
    for name in ("ct.nii.gz", "ct.nrrd"):
        path = write_image(image, tmp_path / name)
        node = load_volume(path)
        assert node.GetName() == "ct"
        assert_same_image(image_from_volume_node(node), image, tol=1e-5)  # NIfTI stores float32


def test_simpleitk_reads_slicer_files_where_the_node_was(mrml_scene, image_factory, tmp_path):
    image = image_factory(dtype=np.float32)
    node = volume_node_from_image(image, "saved")
    for name in ("saved.nrrd", "saved.nii.gz"):
        path = save_node(node, tmp_path / name)
        assert_same_image(read_image(path), image, tol=1e-5)


def test_volume_under_linear_transform_gives_world_geometry(mrml_scene, image_factory):
    image = image_factory()
    node = volume_node_from_image(image)
    to_world = np.eye(4)
    to_world[:3, :3] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float)  # 90 degrees about S
    to_world[:3, 3] = (10.0, -20.0, 30.0)
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transform.SetMatrixTransformToParent(vtk_matrix_from_array(to_world))
    node.SetAndObserveTransformNodeID(transform.GetID())

    world = image_from_volume_node(node)
    np.testing.assert_allclose(world.ijk_to_ras(), to_world @ image.ijk_to_ras(), atol=GEOMETRY_TOL, rtol=0)
    assert np.array_equal(world.array, image.array)
    # Hardening the transform the Slicer way gives the same geometry.
    transform_logic = slicer.vtkSlicerTransformLogic()
    transform_logic.hardenTransform(node)
    np.testing.assert_allclose(ijk_to_ras_of(node), world.ijk_to_ras(), atol=1e-6, rtol=0)


def test_image_written_under_a_transform_lands_at_its_world_position(mrml_scene, image_factory):
    image = image_factory()
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    to_world = np.eye(4)
    to_world[:3, 3] = (5.0, 6.0, -7.0)
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transform.SetMatrixTransformToParent(vtk_matrix_from_array(to_world))
    node.SetAndObserveTransformNodeID(transform.GetID())

    volume_node_from_image(image, node=node)
    np.testing.assert_allclose(ijk_to_ras_of(node), np.linalg.inv(to_world) @ image.ijk_to_ras(),
                               atol=GEOMETRY_TOL, rtol=0)
    assert_same_image(image_from_volume_node(node), image)


def test_warping_transform_is_refused(mrml_scene, image_factory):
    node = volume_node_from_image(image_factory())
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for x, y, z in [(0, 0, 0), (50, 0, 0), (0, 50, 0), (0, 0, 50), (30, 30, 30)]:
        source.InsertNextPoint(x, y, z)
        target.InsertNextPoint(x + (5 if x == 30 else 0), y, z)
    spline = vtk.vtkThinPlateSplineTransform()
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    spline.SetBasisToR()
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    transform.SetAndObserveTransformToParent(spline)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="non-linear") as error:
        image_from_volume_node(node)
    assert "harden" in error.value.todo.lower()


def test_vector_volume_is_refused(mrml_scene):
    node = mrml_scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(node, np.zeros((4, 5, 6, 3), np.uint8))
    with pytest.raises(InputError, match="vector") as error:
        image_from_volume_node(node)
    assert "Vector to Scalar" in error.value.todo


def test_multi_component_scalar_node_is_refused(mrml_scene):
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(4, 5, 6)
    image_data.AllocateScalars(vtk.VTK_FLOAT, 2)
    node.SetAndObserveImageData(image_data)
    with pytest.raises(InputError, match="2 values"):
        image_from_volume_node(node)


def test_node_without_voxels_is_refused(mrml_scene):
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(InputError, match="no voxels"):
        image_from_volume_node(node)


def test_non_volume_node_is_refused(mrml_scene):
    model = mrml_scene.AddNewNodeByClass("vtkMRMLModelNode")
    with pytest.raises(InputError, match="Expected a volume, got a vtkMRMLModelNode"):
        image_from_volume_node(model)
    with pytest.raises(InputError, match="got nothing"):
        image_from_volume_node(None)


def test_single_slice_converts_and_3d_workflows_can_refuse_it(mrml_scene, image_factory):
    """Like read_image: a one-slice volume (a thin mask) converts; 3D workflows call require_3d_volume."""
    image = image_factory((1, 5, 6))
    converted = image_from_volume_node(volume_node_from_image(image))
    assert_same_image(converted, image)
    with pytest.raises(InputError, match="2D"):
        require_3d_volume(converted)


def test_sequence_frame_is_refused_unless_allowed(mrml_scene, image_factory):
    sequence = mrml_scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cardiac")
    for phase in range(2):
        frame = volume_node_from_image(image_factory(seed=phase), f"phase {phase}")
        sequence.SetDataNodeAtValue(frame, str(phase))
        mrml_scene.RemoveNode(frame)
    browser = mrml_scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "cardiac browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetSelectedItemNumber(1)
    proxy = browser.GetProxyNode(sequence)
    assert proxy is not None and proxy.IsA("vtkMRMLScalarVolumeNode")

    with pytest.raises(InputError, match="one frame of the sequence 'cardiac browser'") as error:
        image_from_volume_node(proxy)
    assert "Clone" in error.value.todo
    frame = image_from_volume_node(proxy, allow_sequence_frame=True)
    assert np.array_equal(frame.array, image_factory(seed=1).array)


def test_output_into_a_vector_volume_is_refused(mrml_scene, image_factory):
    node = mrml_scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode")
    with pytest.raises(InputError, match="not a scalar volume"):
        volume_node_from_image(image_factory(), node=node)


def test_lps_to_ras_is_the_sign_flip_slicer_uses(mrml_scene, image_factory, tmp_path):
    """An LPS point from the file header is where Slicer puts that voxel in RAS."""
    image = image_factory()
    node = load_volume(write_image(image, tmp_path / "v.nrrd"))
    ijk = np.array([3.0, 4.0, 5.0, 1.0])
    lps = image.ijk_to_lps() @ ijk
    ras = ijk_to_ras_of(node) @ ijk
    np.testing.assert_allclose(ras, LPS_TO_RAS @ lps, atol=1e-5)
    np.testing.assert_allclose(ras[:2], -lps[:2], atol=1e-5)
