"""The ``segforge`` command as a newcomer runs it: real subprocesses, real files."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from conftest import REPO, make_image
from segforge.image import Image
from segforge.image_io import read_image, write_image


def segforge(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    env.pop("SEGFORGE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "segforge.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_help_names_every_command():
    run = segforge("--help")
    assert run.returncode == 0
    for command in ("vessel", "models", "serve", "examples"):
        assert command in run.stdout


def test_no_command_prints_help_and_fails():
    run = segforge()
    assert run.returncode == 2 and "usage" in run.stdout


def synthetic_mra(tmp_path):
    """A bright Y-shaped vessel (3 branches) in noise, on an oblique anisotropic grid."""
    from conftest import OBLIQUE
    from segforge.vessel.synthetic import make_grid, y_bifurcation

    tree = y_bifurcation(make_grid((40, 40, 60), (0.8, 0.8, 1.2), OBLIQUE, center_lps=(5, -3, 20)),
                         center_lps=(5, -3, 20))
    noise = np.random.default_rng(0).normal(0, 20, tree.mask.array.shape)
    image = tree.mask.with_array((tree.mask.array.astype(np.float32) * 500 + 100 + noise).astype(np.int16))
    return write_image(image, tmp_path / "mra.nrrd"), image


def test_vessel_writes_every_output_on_the_input_grid(tmp_path):
    import json

    from segforge.mrml import create_headless_slicer, load_model, load_segmentation, segment_ids_by_name
    from segforge.polydata_io import read_polydata_lps
    from segforge.vessel.pipeline import VesselPipelineParameters, preset, run_vessel_pipeline

    source, image = synthetic_mra(tmp_path)
    out = tmp_path / "out"
    run = segforge("vessel", str(source), "--out", str(out), "--preset", "mra", "--device", "cpu")
    assert run.returncode == 0, run.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"vessels.seg.nrrd", "centerlines.vtp", "surface.vtp",
                                               "branches.csv", "stenoses.csv", "summary.json"}
    expected = run_vessel_pipeline(image, VesselPipelineParameters(mask=preset("mra")))
    mask = read_image(out / "vessels.seg.nrrd")
    assert mask.same_grid(image, tol=1e-5)
    np.testing.assert_array_equal(mask.array > 0, expected.mask.array > 0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["branches"] == len(expected.graph.branches) == 3 and summary["components"] == 1
    centerlines = read_polydata_lps(out / "centerlines.vtp")
    assert centerlines.GetNumberOfCells() == 3
    assert centerlines.GetCellData().GetArray("BranchId") is not None
    radius = centerlines.GetPointData().GetArray("Radius")
    assert radius is not None and 2.0 < np.median([radius.GetValue(n) for n in range(radius.GetNumberOfTuples())]) < 5
    assert len((out / "branches.csv").read_text().strip().splitlines()) == 1 + 3
    # Slicer reads all of it where it belongs.
    app = create_headless_slicer()
    try:
        segmentation = load_segmentation(out / "vessels.seg.nrrd")
        assert list(segment_ids_by_name(segmentation)) == ["vessels"]
        model = load_model(out / "surface.vtp")
        assert model.GetPolyData().GetNumberOfPoints() > 0
    finally:
        app.close()


def test_vessel_mask_only(tmp_path):
    source, image = synthetic_mra(tmp_path)
    out = tmp_path / "out"
    run = segforge("vessel", str(source), "--out", str(out), "--preset", "mra", "--no-centerlines", "--no-surface")
    assert run.returncode == 0, run.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"vessels.seg.nrrd", "summary.json"}


def test_failures_are_one_line_with_non_zero_exit(tmp_path):
    run = segforge("vessel", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "out"))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segforge: error: No file") and "check the path" in lines[0].lower()
    thin = write_image(Image(np.zeros((1, 8, 8), np.int16)), tmp_path / "thin.nii.gz")
    run = segforge("vessel", str(thin), "--out", str(tmp_path / "out"))
    assert run.returncode == 1 and "2D" in run.stderr and not (tmp_path / "out").exists()
    run = segforge("vessel", str(thin), "--out", str(tmp_path / "out"), "--min-radius", "5", "--max-radius", "1")
    assert run.returncode == 1 and "radius range" in run.stderr


def test_serve_without_a_token_refuses_to_start():
    run = segforge("serve", "--port", "0")
    assert run.returncode == 2 and "token" in run.stderr


def test_serve_on_a_busy_port_is_one_line():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        run = segforge("serve", "--port", str(port), "--token", "t")
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1
    assert "cannot listen" in run.stderr and "--port" in run.stderr


def test_output_problems_are_found_before_the_work(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    run = segforge("vessel", str(tmp_path / "missing.nii.gz"), "--out", str(blocker))
    assert run.returncode == 1 and "not a folder" in run.stderr  # not "no file": checked first
