"""Centerline curves with a per-point Radius: built from LPS or RAS points, kept through .mrk.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
import slicer.util

from segforge.mrml import (control_points_lps, create_headless_slicer, curve_from_polyline, load_markups,
                           point_measurement, save_node, set_point_measurement)


def helix_lps() -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 3.0, 40)
    points = np.c_[10 * np.cos(t) - 3.25, 10 * np.sin(t) + 7.5, 5 * t + 100.0]
    return points, 2.0 + np.sin(t)


def test_curve_from_lps_points_has_radius_per_curve_point(mrml_scene):
    points, radius = helix_lps()
    curve = curve_from_polyline(points_lps=points, radius_mm=radius, name="Branch 1")
    assert curve.IsA("vtkMRMLMarkupsCurveNode") and curve.GetName() == "Branch 1"
    assert curve.GetNumberOfControlPoints() == len(points)
    np.testing.assert_allclose(control_points_lps(curve), points, atol=1e-12)
    ras = slicer.util.arrayFromMarkupsControlPoints(curve, world=True)
    np.testing.assert_allclose(ras, points * [-1, -1, 1], atol=1e-12)  # Slicer holds RAS
    curve_radius = slicer.util.arrayFromMarkupsCurveData(curve, "Radius", world=True)
    np.testing.assert_allclose(curve_radius, radius, atol=1e-12)  # one curve point per control point
    assert curve.GetMeasurement("Radius").GetUnits() == "mm"


def test_curve_from_ras_points_is_not_flipped(mrml_scene):
    points, _ = helix_lps()
    curve = curve_from_polyline(points_ras=points)
    np.testing.assert_allclose(slicer.util.arrayFromMarkupsControlPoints(curve, world=True), points, atol=1e-12)
    assert curve.GetMeasurement("Radius") is None


def test_replacing_a_measurement_updates_the_curve_data(mrml_scene):
    points, radius = helix_lps()
    curve = curve_from_polyline(points_lps=points, radius_mm=radius)
    set_point_measurement(curve, "Radius", radius * 2, units="mm")
    np.testing.assert_allclose(slicer.util.arrayFromMarkupsCurveData(curve, "Radius", world=True), radius * 2)
    names = [curve.GetNthMeasurement(i).GetName() for i in range(curve.GetNumberOfMeasurements())]
    assert names.count("Radius") == 1


def test_radius_round_trip_through_mrk_json(mrml_scene, tmp_path):
    points, radius = helix_lps()
    curve = curve_from_polyline(points_lps=points, radius_mm=radius, name="LAD")
    path = save_node(curve, tmp_path / "lad.mrk.json")

    stored = json.loads(path.read_text())["markups"][0]
    assert stored["type"] == "Curve" and stored["coordinateSystem"] == "LPS"
    np.testing.assert_allclose([p["position"] for p in stored["controlPoints"]], points, atol=1e-9)

    fresh = create_headless_slicer(install=True)  # a new scene, as after restarting Slicer
    try:
        loaded = load_markups(path)
        assert loaded.IsA("vtkMRMLMarkupsCurveNode") and loaded.GetName() == "lad"  # named after the file
        assert loaded.GetScene() is fresh.scene
        np.testing.assert_allclose(control_points_lps(loaded), points, atol=1e-9)
        np.testing.assert_allclose(point_measurement(loaded, "Radius"), radius, atol=1e-12)
        assert loaded.GetMeasurement("Radius").GetUnits() == "mm"
        # .mrk.json keeps no curve type: the reloaded curve is a spline whose curve points
        # interpolate the radius; at the control points it is the saved radius.
        curve_radius = slicer.util.arrayFromMarkupsCurveData(loaded, "Radius", world=True)
        at_control_points = [loaded.GetCurvePointIndexFromControlPointIndex(i) for i in range(len(points))]
        np.testing.assert_allclose(curve_radius[at_control_points], radius, atol=1e-9)
    finally:
        fresh.close()


def test_bad_curve_inputs_are_refused(mrml_scene):
    points, radius = helix_lps()
    with pytest.raises(ValueError, match="exactly one"):
        curve_from_polyline(points_lps=points, points_ras=points)
    with pytest.raises(ValueError, match="exactly one"):
        curve_from_polyline()
    with pytest.raises(ValueError, match="N >= 2"):
        curve_from_polyline(points_lps=points[:1])
    with pytest.raises(ValueError, match="39 values for 40"):
        curve_from_polyline(points_lps=points, radius_mm=radius[:-1])


def test_missing_markups_file_is_reported(mrml_scene, tmp_path):
    from segforge.errors import InputError
    with pytest.raises(InputError, match="No file"):
        load_markups(tmp_path / "absent.mrk.json")


def test_an_roi_reads_back_with_its_size(mrml_scene, tmp_path):
    """Slicer's generic markups reader skips an ROI's size (it would read back as a point)."""
    from segforge.mrml import load_markups, save_node

    roi = mrml_scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "Box")
    roi.SetCenterWorld(10.0, -20.0, 30.0)
    roi.SetSizeWorld(40.0, 25.0, 12.5)
    back = load_markups(save_node(roi, tmp_path / "box.mrk.json"))
    assert back.IsA("vtkMRMLMarkupsROINode")
    size, centre = [0.0] * 3, [0.0] * 3
    back.GetSizeWorld(size)
    back.GetCenterWorld(centre)
    np.testing.assert_allclose(size, (40.0, 25.0, 12.5), atol=1e-6)
    np.testing.assert_allclose(centre, (10.0, -20.0, 30.0), atol=1e-6)
