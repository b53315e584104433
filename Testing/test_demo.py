"""``make demo``'s script: the whole vessel workflow on the bundled CTA, through the Logic a
Slicer user drives; its scene reloads in a fresh headless Slicer with every node in place."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from conftest import REPO
from segforge.image_io import read_image
from segforge.mrml import (control_points_lps, image_from_volume_node, load_scene_bundle, mask_from_segment,
                           point_measurement, rows_from_table, segment_ids_by_name)
from segforge.polydata_io import read_polydata_lps
from segforge.vessel import vessel_mask
from segforge.vessel.outputs import BRANCH_COLUMNS, FINDING_COLUMNS
from segforge.vessel.pipeline import preset

CTA = REPO / "Resources" / "SampleData" / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz"
#: The Logic gives curves to the longest branches only beyond this many (tree_nodes.MAX_CURVES).
MAX_CURVES = 300


def _nodes(scene, node_class: str, name: str | None = None) -> list:
    return [n for n in scene.GetNodesByClass(node_class) if name is None or n.GetName() == name]


def _lps_points(image, kji: np.ndarray) -> np.ndarray:
    return (image.ijk_to_lps() @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T[:, :3]


def test_demo_scene_reloads_with_the_whole_vessel_tree_on_the_aorta(tmp_path, mrml_scene):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path)],
                         capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "wrote scene" in run.stdout and "branches" in run.stdout and "stenoses" in run.stdout
    assert "Info:" not in run.stderr  # the .mrb writer's chatter is kept off the terminal
    summary = json.loads((tmp_path / "summary.json").read_text())
    seed, roi = np.array(summary["seeds_lps"][0]), np.array(summary["roi_lps"])

    # The documented seed lies in the lumen of the reference aorta, the box around it.
    cta = read_image(CTA)
    aorta = read_image(CTA.parent / "pred_aorta.nii.gz").array > 0
    seed_kji = np.rint((np.linalg.inv(cta.ijk_to_lps()) @ np.append(seed, 1.0))[2::-1]).astype(int)
    assert aorta[tuple(seed_kji)]
    assert np.all(roi[:3] < seed) and np.all(seed < roi[3:])

    load_scene_bundle(tmp_path / "segforge_demo.mrb", mrml_scene)

    # The CTA, unchanged.
    volumes = _nodes(mrml_scene, "vtkMRMLScalarVolumeNode", "CTA")
    assert len(volumes) == 1
    reloaded = image_from_volume_node(volumes[0])
    assert reloaded.same_grid(cta)
    np.testing.assert_array_equal(reloaded.array, cta.array)

    # The segment: the engine's mask for the demo's seed and box, inside the box, mostly aorta.
    segmentations = _nodes(mrml_scene, "vtkMRMLSegmentationNode")
    assert len(segmentations) == 1
    vessels = mask_from_segment(segmentations[0], segment_ids_by_name(segmentations[0])["Vessels"][0], volumes[0])
    assert summary["mask_model"] == "vesselness-frangi"  # the builtin filter on every machine
    parameters = replace(preset("cta"), seeds_lps=(tuple(seed),), roi_lps=tuple(roi))
    np.testing.assert_array_equal(vessels.array > 0, vessel_mask(cta, parameters).array > 0)
    inside = vessels.array > 0
    assert summary["mask_voxels"] == int(inside.sum()) > 1000
    voxels_lps = _lps_points(cta, np.argwhere(inside))
    assert np.all(voxels_lps >= roi[:3] - 1e-3) and np.all(voxels_lps <= roi[3:] + 1e-3)
    assert (inside & aorta).sum() / inside.sum() > 0.6  # measured 0.80: the rest are side branches

    # One curve per branch, each with a Radius per control point; the branch table agrees.
    tables = {n.GetName(): n for n in _nodes(mrml_scene, "vtkMRMLTableNode")}
    branches = rows_from_table(tables["CTA branches"])
    assert list(branches[0]) == list(BRANCH_COLUMNS)
    curves = _nodes(mrml_scene, "vtkMRMLMarkupsCurveNode")
    assert len(branches) == summary["branches"] > 0
    assert len(curves) == min(len(branches), MAX_CURVES) == summary["curves"]
    rows = {row["id"]: row for row in branches}
    radii = []
    for curve in curves:
        points, radius = control_points_lps(curve), point_measurement(curve, "Radius")
        assert len(radius) == len(points) >= 2 and np.all(np.isfinite(radius)) and np.all(radius > 0)
        row = rows[int(curve.GetName().rsplit(" ", 1)[-1])]  # "CTA branch <id>"
        polyline = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
        assert row["length_mm"] > 0 and abs(polyline - row["length_mm"]) <= 0.01 * row["length_mm"] + 0.05
        assert row["point_count"] == len(points)
        assert row["min_radius_mm"] - 1e-6 <= np.median(radius) <= row["max_radius_mm"] + 1e-6
        radii.append(radius)
    assert abs(sum(r["length_mm"] for r in branches) - summary["total_length_mm"]) < 0.1

    # The aorta's own centerline (the curve through the seed) has an aortic radius: above any
    # intercostal artery (1-2 mm), and no wider than the reference aorta's largest inscribed
    # sphere in the box plus one voxel (the lumen lies inside the aorta).
    nearest = min(curves, key=lambda c: float(np.linalg.norm(control_points_lps(c) - seed, axis=1).min()))
    assert float(np.linalg.norm(control_points_lps(nearest) - seed, axis=1).min()) < 5.0
    in_box = np.zeros_like(aorta)
    kji = np.argwhere(aorta)
    lps = _lps_points(cta, kji)
    kept = np.all((lps >= roi[:3]) & (lps <= roi[3:]), axis=1)
    in_box[tuple(kji[kept].T)] = True
    widest = float(ndimage.distance_transform_edt(in_box, sampling=cta.spacing[::-1]).max())
    assert 3.0 < float(np.median(point_measurement(nearest, "Radius"))) < widest + max(cta.spacing)

    # The centerline tube model (coloured by Radius) and the surface model, in the box.
    centerline = _nodes(mrml_scene, "vtkMRMLModelNode", "CTA centerlines")
    assert len(centerline) == 1 and centerline[0].GetPolyData().GetNumberOfPoints() > 0
    tube_radius = centerline[0].GetPolyData().GetPointData().GetArray("Radius")
    all_radii = np.concatenate(radii)
    assert tube_radius is not None
    low, high = tube_radius.GetRange()
    assert all_radii.min() - 1e-6 <= low and high <= all_radii.max() + 1e-6
    surface = _nodes(mrml_scene, "vtkMRMLModelNode", "CTA vessel surface")
    assert len(surface) == 1 and surface[0].GetPolyData().GetNumberOfCells() == summary["surface_triangles"] > 0
    xmin, xmax, ymin, ymax, zmin, zmax = surface[0].GetPolyData().GetBounds()  # RAS
    lps_low, lps_high = np.array([-xmax, -ymax, zmin]), np.array([-xmin, -ymin, zmax])
    assert np.all(lps_low >= roi[:3] - 2.0) and np.all(lps_high <= roi[3:] + 2.0)

    # The stenosis table, and one labelled point per finding.
    findings = rows_from_table(tables["CTA stenoses"])
    columns = [tables["CTA stenoses"].GetTable().GetColumn(c).GetName()
               for c in range(tables["CTA stenoses"].GetTable().GetNumberOfColumns())]
    assert columns == list(FINDING_COLUMNS) and len(findings) == summary["stenoses"]
    threshold = summary["stenosis_threshold_percent"]
    assert all(threshold <= row["stenosis_percent"] <= 100.0 and row["branch"] in rows for row in findings)
    points = _nodes(mrml_scene, "vtkMRMLMarkupsFiducialNode")  # "CTA stenoses_1": the table has the name
    assert len(points) == (1 if findings else 0)
    assert sum(p.GetNumberOfControlPoints() for p in points) == len(findings)
    if findings:
        positions = np.array([[r["x_lps"], r["y_lps"], r["z_lps"]] for r in findings])
        np.testing.assert_allclose(control_points_lps(points[0]), positions, atol=1e-3)

    # The files `segforge vessel` writes, and the picture with the centerlines in colour.
    centerlines = read_polydata_lps(tmp_path / "centerlines.vtp")
    assert centerlines.GetNumberOfCells() == len(curves)
    assert centerlines.GetPointData().GetArray("Radius") and centerlines.GetCellData().GetArray("BranchId")
    assert len((tmp_path / "branches.csv").read_text().strip().splitlines()) == 1 + len(branches)
    assert len((tmp_path / "stenoses.csv").read_text().strip().splitlines()) == 1 + len(findings)
    for name in ("vessels.seg.nrrd", "surface.vtp"):
        assert (tmp_path / name).stat().st_size > 0
    snapshot = sitk.ReadImage(str(tmp_path / "vessels.png"))
    assert snapshot.GetNumberOfComponentsPerPixel() == 3 and snapshot.GetWidth() > 3 * cta.shape_ijk[0]
    picture = sitk.GetArrayFromImage(snapshot).astype(int)
    assert np.count_nonzero((picture[..., 1] == 255) & (picture[..., 0] != picture[..., 2])) > 50  # centerlines
