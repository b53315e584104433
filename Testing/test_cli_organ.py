"""``segforge organ`` as a user runs it: a real subprocess, real files that open in Slicer."""
from __future__ import annotations

import csv
import json

import numpy as np
import SimpleITK as sitk

from conftest import OBLIQUE
from segforge.image import Image
from segforge.image_io import read_image, write_image
from segforge.organ.pipeline import segment_organs
from test_cli import segforge
from test_organ_tissues import chest_phantom


def chest_file(tmp_path):
    image, _ = chest_phantom(spacing=(4.0, 3.5, 5.0))
    image = Image(image.array, image.spacing, image.origin_lps, OBLIQUE)
    return write_image(image, tmp_path / "chest.nrrd"), image


def test_organ_writes_segments_statistics_and_summary_on_the_input_grid(tmp_path):
    path, image = chest_file(tmp_path)
    run = segforge("organ", str(path), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    expected = segment_organs(read_image(path))
    seg = read_image(tmp_path / "out" / "organs.seg.nrrd")
    assert seg.same_grid(image)
    np.testing.assert_array_equal(seg.array, expected.labels.array)
    header = sitk.ReadImage(str(tmp_path / "out" / "organs.seg.nrrd"))
    names = {header.GetMetaData(f"Segment{n}_Name") for n in range(6)}
    assert names == {"body", "lungs", "airway", "bones", "fat", "muscle"}
    assert "SCT" in header.GetMetaData("Segment1_Tags")
    with open(tmp_path / "out" / "statistics.csv") as handle:
        rows = {row["structure"]: row for row in csv.DictReader(handle)}
    lungs = image.array[expected.mask("lungs")]
    assert int(rows["lungs"]["voxels"]) == lungs.size
    assert abs(float(rows["lungs"]["volume_ml"]) - lungs.size * 4.0 * 3.5 * 5.0 / 1000) < 1e-9
    assert abs(float(rows["lungs"]["mean"]) - lungs.mean()) < 1e-6
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["model"] == "ct-tissues" and summary["files"]["segmentation"] == "organs.seg.nrrd"
    assert "structures found" in run.stdout


def test_organ_subset_and_one_line_errors(tmp_path):
    path, _ = chest_file(tmp_path)
    run = segforge("organ", str(path), "--out", str(tmp_path / "out"), "--structures", "lungs,bones", "--fast")
    assert run.returncode == 0, run.stderr
    header = sitk.ReadImage(str(tmp_path / "out" / "organs.seg.nrrd"))
    assert {header.GetMetaData(f"Segment{n}_Name") for n in range(2)} == {"lungs", "bones"}
    assert "no fast variant" in run.stdout  # ct-tissues has none: said, not silently ignored

    bad = segforge("organ", str(path), "--out", str(tmp_path / "bad"), "--structures", "lung")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "lung" in bad.stderr
    missing = segforge("organ", str(path), "--out", str(tmp_path / "bad"), "--model", "totalseg-total-fast",
                       env_extra={"SEGFORGE_HOME": str(tmp_path / "home"),
                                  "TOTALSEG_WEIGHTS_PATH": str(tmp_path / "none")})
    assert missing.returncode == 1 and "not installed" in missing.stderr
    device = segforge("organ", str(path), "--out", str(tmp_path / "bad"), "--device", "tpu")
    assert device.returncode == 1 and "Device must be" in device.stderr
    assert not (tmp_path / "bad").exists()
