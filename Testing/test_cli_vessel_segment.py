"""``segforge vessel --segment``: the vessel tree of a segment the user already has, as a newcomer
runs it (real subprocesses, real files).

The CE-MRA level-set mask of VMTK's aorto-iliac bifurcation, with a source point at the aorta's
end and a target at each iliac's end (VMTK's own centerline's end points), and a landmark
placed on VMTK's centerline, where VMTK's maximum inscribed sphere gives the lumen's size.
"""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from conftest import SAMPLE_DATA
from segforge.image_io import read_image
from test_cli import segforge

CEMRA = SAMPLE_DATA / "vmtk_aorta_cemra"
LEVEL_SET = CEMRA / "aorta_mask_DERIVED_levelset_lt0.nii.gz"


def reference_centerline() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """VMTK's centerline cells as LPS points (the file is RAS) and their inscribed-sphere radii."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(CEMRA / "aorta-centerline.vtp"))
    reader.Update()
    polydata = reader.GetOutput()
    points = vtk_to_numpy(polydata.GetPoints().GetData()) * np.array([-1.0, -1.0, 1.0])
    radii = vtk_to_numpy(polydata.GetPointData().GetArray("MaximumInscribedSphereRadius"))
    cells, cell_radii = [], []
    for c in range(polydata.GetNumberOfCells()):
        ids = polydata.GetCell(c).GetPointIds()
        index = [ids.GetId(n) for n in range(ids.GetNumberOfIds())]
        cells.append(points[index])
        cell_radii.append(radii[index])
    return cells, cell_radii


def point_option(name: str, point: np.ndarray) -> str:
    return f"--{name}={','.join(f'{c:.3f}' for c in point)}"


def rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory):
    """One run from the mask alone: source, two targets, two landmarks."""
    cells, radii = reference_centerline()
    source = cells[0][0]
    targets = [cell[-1] for cell in cells]
    landmarks = [cells[0][len(cells[0]) // 4], cells[1][3 * len(cells[1]) // 4]]
    expected = [2 * radii[0][len(cells[0]) // 4], 2 * radii[1][3 * len(cells[1]) // 4]]
    out = tmp_path_factory.mktemp("segment") / "out"
    run = segforge("vessel", "--segment", str(LEVEL_SET), "--out", str(out), point_option("source", source),
                   *(point_option("target", t) for t in targets), *(point_option("landmark", p) for p in landmarks))
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run, landmarks, expected


def test_a_segment_alone_gives_every_output(segment_run):
    out, run, _, _ = segment_run
    names = {p.name for p in out.iterdir()}
    assert {"vessels.seg.nrrd", "centerlines.vtp", "branches.csv", "stenoses.csv", "cross_sections.csv",
            "landmarks.csv", "diameters.png", "summary.json", "manifest.json"} <= names, names
    summary = json.loads((out / "summary.json").read_text())
    # The aorta and the two iliacs, between the source and the two targets.
    assert summary["branches"] == 3, summary
    assert summary["segment"]["name"] == "label 1" and summary["input"] is None
    mask = read_image(out / "vessels.seg.nrrd")
    assert mask.same_grid(read_image(LEVEL_SET))
    assert f"{summary['branches']} branches" in run.stdout
    assert re.search(r"landmark 1: max \d+\.\d mm, min \d+\.\d mm, area \d+\.\d mm2", run.stdout), run.stdout


def test_cross_sections_follow_every_branch(segment_run):
    out, _, _, _ = segment_run
    sections = rows(out / "cross_sections.csv")
    assert list(sections[0]) == ["branch", "arc_mm", "x_lps", "y_lps", "z_lps", "area_mm2", "equivalent_diameter_mm",
                                 "min_diameter_mm", "max_diameter_mm", "perpendicular_diameter_mm", "circularity"]
    branches = {row["id"] for row in rows(out / "branches.csv")}
    assert {row["branch"] for row in sections} == branches
    closed = [row for row in sections if row["area_mm2"]]  # an outline that did not close is left empty
    assert len(closed) >= 0.9 * len(sections)
    for row in closed:
        low, equivalent, high = (float(row[k]) for k in ("min_diameter_mm", "equivalent_diameter_mm",
                                                         "max_diameter_mm"))
        assert 0 < low <= high and low - 0.5 <= equivalent <= high + 0.5, row
        area = float(row["area_mm2"])
        assert equivalent == pytest.approx(2 * np.sqrt(area / np.pi), rel=1e-3)
        assert 0 < float(row["circularity"]) <= 1.0 + 1e-6
    # One section every 0.5-1 mm along each branch.
    for branch in branches:
        arcs = np.array([float(r["arc_mm"]) for r in sections if r["branch"] == branch])
        steps = np.diff(np.sort(arcs))
        assert len(arcs) >= 2 and 0.25 <= np.median(steps) <= 1.0


def test_landmarks_are_measured_where_they_were_placed(segment_run):
    out, _, landmarks, expected = segment_run
    found = rows(out / "landmarks.csv")
    assert len(found) == len(landmarks)
    for row, placed, diameter in zip(found, landmarks, expected):
        point = np.array([float(row[k]) for k in ("x_lps", "y_lps", "z_lps")])
        nearest = np.array([float(row[k]) for k in ("centerline_x_lps", "centerline_y_lps", "centerline_z_lps")])
        np.testing.assert_allclose(point, placed, atol=1e-3)
        # The landmark lies on VMTK's centerline: ours passes within a voxel and a half of it.
        assert np.linalg.norm(nearest - placed) < 2.0, (nearest, placed)
        low, high = float(row["min_diameter_mm"]), float(row["max_diameter_mm"])
        # VMTK's inscribed sphere touches the wall: the minimum diameter is about its diameter.
        assert abs(low - diameter) < 1.5 and low <= high < 1.6 * diameter, (low, high, diameter)
        assert float(row["area_mm2"]) == pytest.approx(np.pi * low * high / 4, rel=0.35)


def test_the_diameter_plot_is_a_picture(segment_run):
    import SimpleITK as sitk

    out, _, _, _ = segment_run
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "diameters.png")))
    assert picture.ndim == 3 and picture.shape[1] >= 600 and picture.shape[0] >= 200
    assert len(np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)) > 20  # curves, axes, text


def test_segment_and_image_on_another_grid_is_refused(tmp_path):
    from segforge.image import Image
    from segforge.image_io import write_image

    image = read_image(CEMRA / "aorta.mha")
    cropped = Image(image.array[:, :, 1:].copy(), image.spacing, image.origin_lps, image.direction_lps)
    shifted = write_image(cropped, tmp_path / "cropped.nrrd")
    run = segforge("vessel", str(shifted), "--segment", str(LEVEL_SET), "--out", str(tmp_path / "out"))
    assert run.returncode != 0 and "grid" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_segment_file_error_lists_what_it_holds(tmp_path):
    labels = SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_seg.nii.gz"
    run = segforge("vessel", "--segment", f"{labels}:aortta", "--out", str(tmp_path / "out"))
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "no segment 'aortta'" in run.stderr and "52 aorta" in run.stderr
    run = segforge("vessel", "--out", str(tmp_path / "out"))
    assert run.returncode != 0 and "IMAGE" in run.stderr and "--segment" in run.stderr


def test_a_totalsegmentator_label_by_name(tmp_path):
    """TotalSegmentator's multi-label output, the aorta by its name (its NIfTI header names the
    labels): the aorta's voxels are the mask, on the label map's grid, one centerline."""
    labels = SAMPLE_DATA / "ts_ct_abdomen_3mm" / "example_seg.nii.gz"
    out = tmp_path / "out"
    run = segforge("vessel", "--segment", f"{labels}:aorta", "--out", str(out), "--no-surface")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segment"]["name"] == "aorta" and summary["mask_model"] == "segment"
    mask = read_image(out / "vessels.seg.nrrd")
    source = read_image(labels)
    assert mask.same_grid(source)
    assert (mask.array > 0).sum() >= (source.array == 52).sum()  # holes may be closed, nothing removed
    assert np.all(mask.array[source.array == 52] > 0)
    assert summary["branches"] >= 1 and rows(out / "cross_sections.csv")
