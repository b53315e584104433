"""Seed points and an ROI in the views become the engine's LPS inputs, in world coordinates
(a markups node under a transform means where it is shown, not its local coordinates)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO
from segforge.errors import InputError
from segforge.mrml.convert import vtk_matrix_from_array

sys.path.insert(0, str(REPO / "SegVessel"))
from SegVesselLib.markups_inputs import points_lps_from_markups, roi_lps_from_markups, source_lps_from_markups


def test_nothing_drawn_means_no_seeds_and_no_roi():
    assert points_lps_from_markups(None) == ()
    assert roi_lps_from_markups(None) is None


def test_seeds_and_roi_are_world_lps(mrml_scene):
    points = mrml_scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    points.AddControlPoint([1.0, 2.0, 3.0])
    points.AddControlPoint([-4.0, 5.0, -6.0])
    points.AddControlPoint([7.0, 7.0, 7.0])
    points.UnsetNthControlPointPosition(2)  # a point without a position (being placed): not a seed
    assert points_lps_from_markups(points) == ((-1.0, -2.0, 3.0), (4.0, -5.0, -6.0))
    roi = mrml_scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    roi.SetXYZ(10.0, 20.0, 30.0)
    roi.SetRadiusXYZ(1.0, 2.0, 3.0)
    np.testing.assert_allclose(roi_lps_from_markups(roi), (-11.0, -22.0, 27.0, -9.0, -18.0, 33.0), atol=1e-9)

    shift = np.eye(4)
    shift[:3, 3] = (100.0, -50.0, 5.0)  # RAS
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transform.SetMatrixTransformToParent(vtk_matrix_from_array(shift))
    for node in (points, roi):
        node.SetAndObserveTransformNodeID(transform.GetID())
    assert points_lps_from_markups(points) == ((-101.0, 48.0, 8.0), (-96.0, 45.0, -1.0))
    np.testing.assert_allclose(roi_lps_from_markups(roi), (-111.0, 28.0, 32.0, -109.0, 32.0, 38.0), atol=1e-9)


def test_the_source_is_one_point(mrml_scene):
    assert source_lps_from_markups(None) is None
    points = mrml_scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Source")
    assert source_lps_from_markups(points) is None
    points.AddControlPoint([1.0, 2.0, 3.0])
    assert source_lps_from_markups(points) == (-1.0, -2.0, 3.0)
    points.AddControlPoint([4.0, 5.0, 6.0])
    with pytest.raises(InputError, match="'Source' holds 2 points"):
        source_lps_from_markups(points)
