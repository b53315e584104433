"""The vessel result's new files from a tree made by hand: cross_sections.csv, landmarks.csv, the
diameter picture and the straightened volume (its oblique grid kept), and the plot's drawing."""
from __future__ import annotations

import csv

import numpy as np
import SimpleITK as sitk

from conftest import make_image
from segforge.image_io import read_image
from segforge.vessel.diameter_plot import Mark, diameter_plot_png, plotted_profiles
from segforge.vessel.outputs import LANDMARK_COLUMNS, SECTION_COLUMNS, write_vessel_outputs
from segforge.vessel.cross_sections import BranchSections
from segforge.vessel.tree import VesselTree


def profile(branch: int, length_mm: float, diameter_mm: float, open_at: slice = slice(0, 0)) -> BranchSections:
    arc = np.arange(0.0, length_mm, 0.5)
    wave = diameter_mm + 0.5 * np.sin(arc / 7.0)
    values = {"equivalent_diameter_mm": wave, "min_diameter_mm": wave - 0.4, "max_diameter_mm": wave + 0.6,
              "perpendicular_diameter_mm": wave - 0.1, "area_mm2": np.pi * wave ** 2 / 4,
              "circularity": (wave - 0.4) / (wave + 0.6)}
    for name in values:
        values[name] = values[name].copy()
        values[name][open_at] = np.nan
    points = np.c_[arc, np.full_like(arc, branch * 10.0), np.zeros_like(arc)]
    return BranchSections(branch, arc, points, closed=np.isfinite(values["area_mm2"]), **values)


def tree() -> VesselTree:
    mask = make_image((6, 7, 8), np.uint8)
    landmark = {"landmark": 1, "x_lps": 5.0, "y_lps": 1.0, "z_lps": 0.5, "branch": 0, "arc_mm": 5.0,
                "centerline_x_lps": 5.0, "centerline_y_lps": 0.0, "centerline_z_lps": 0.0, "distance_mm": 1.118,
                "max_diameter_mm": 10.9, "min_diameter_mm": 9.9, "perpendicular_diameter_mm": 10.2, "area_mm2": 84.0}
    straightened = make_image((40, 16, 16), np.int16, seed=3)
    return VesselTree(mask.with_array(np.ones(mask.array.shape, np.uint8)), summary={"branches": 2, "stenoses": 0},
                      profiles=[profile(0, 60.0, 10.0, slice(20, 24)), profile(1, 30.0, 6.0)],
                      landmark_rows=[landmark], straightened=straightened)


def rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_files_hold_every_section_and_landmark(tmp_path):
    made = tree()
    files = write_vessel_outputs(made, tmp_path)
    assert {"cross_sections", "landmarks", "diameter_plot", "straightened"} <= set(files)
    sections = rows(files["cross_sections"])
    assert list(sections[0]) == list(SECTION_COLUMNS)
    assert len(sections) == sum(len(p.arc_mm) for p in made.profiles)
    opened = [row for row in sections if row["branch"] == "0" and not row["area_mm2"]]
    assert len(opened) == 4 and all(row["x_lps"] for row in opened)  # an open outline: empty values, its point kept
    second = [row for row in sections if row["branch"] == "1"]
    np.testing.assert_allclose([float(r["equivalent_diameter_mm"]) for r in second],
                               made.profiles[1].equivalent_diameter_mm)
    (landmark,) = rows(files["landmarks"])
    assert list(landmark) == list(LANDMARK_COLUMNS) and float(landmark["max_diameter_mm"]) == 10.9
    straightened = read_image(files["straightened"])
    assert straightened.same_grid(made.straightened)
    np.testing.assert_array_equal(straightened.array, made.straightened.array)


def test_the_picture_draws_the_longest_branches_with_their_marks(tmp_path):
    made = tree()
    shown = plotted_profiles(made.profiles)
    assert [c.branch for c in shown] == [0, 1]
    assert np.isnan(shown[0].equivalent_diameter_mm).sum() == 4  # open sections: a gap in the line
    png = diameter_plot_png(made.profiles, [Mark(0, 5.0, "landmark"), Mark(1, 12.0, "stenosis")])
    path = tmp_path / "plot.png"
    path.write_bytes(png)
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert picture.shape[:2] == (2 * 220 + 20, 900)
    red = (picture[..., 0] > 150) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    assert red.sum() > 500, "the equivalent-diameter curves are not drawn"
    # Each panel has its curve: red pixels in both halves of the picture.
    assert red[: picture.shape[0] // 2].sum() > 100 and red[picture.shape[0] // 2:].sum() > 100
    magenta = (picture[..., 0] > 180) & (picture[..., 1] < 60) & (picture[..., 2] > 180)
    assert magenta.sum() > 20, "the landmark is not marked"
    empty = diameter_plot_png([])
    assert empty[:8] == b"\x89PNG\r\n\x1a\n"


def test_native_modules_are_loaded_before_the_output_set_opens(tmp_path):
    """A Ctrl-C inside the import of VTK's native modules can crash the interpreter (and leave the
    ``.partial`` folder behind): ``segforge vessel --dicom`` loads what its writers need (VTK for
    the picture, highdicom for seg.dcm) before the output set exists. A fresh interpreter, so the
    test's own imports do not hide a late one."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from segforge.output_set import OutputSet\n"
        "def prepare(self):\n"
        "    print('loaded', 'vtk' in sys.modules, 'highdicom' in sys.modules, flush=True)\n"
        "    raise SystemExit(0)\n"
        "OutputSet.prepare = prepare\n"
        "from segforge.cli.main import main\n"
        "main(sys.argv[1:])\n")
    (tmp_path / "series").mkdir()
    run = subprocess.run([sys.executable, "-c", script, "vessel", str(tmp_path / "series"), "--out",
                          str(tmp_path / "out"), "--model", "vesselness-frangi", "--dicom"],
                         capture_output=True, text=True, timeout=120)
    assert "loaded True True" in run.stdout, run.stdout + run.stderr
