"""The ``segforge`` command as a newcomer runs it: real subprocesses, real files."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from conftest import REPO, make_image
from segforge.image import Image
from segforge.image_io import read_image, write_image
from segforge.vessel import VesselMaskParameters, vessel_mask


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


def test_vessel_mask_writes_the_engines_mask_on_the_input_grid(tmp_path):
    k, j, i = np.indices((20, 24, 28))
    tube = np.where(np.hypot(k - 10, j - 12) <= 3, 400, 0).astype(np.int16)
    image = make_image((20, 24, 28)).with_array(tube)
    source = write_image(image, tmp_path / "cta.nrrd")
    run = segforge("vessel", "mask", str(source), str(tmp_path / "mask.nii.gz"), "--min-radius", "1.5",
                   "--max-radius", "3", "--scales", "2", "--threshold", "0.2")
    assert run.returncode == 0, run.stderr
    assert "vessel voxels" in run.stdout
    mask = read_image(tmp_path / "mask.nii.gz")
    expected = vessel_mask(image, VesselMaskParameters(1.5, 3.0, 2, threshold=0.2))
    assert mask.same_grid(image, tol=1e-5)
    np.testing.assert_array_equal(mask.array, expected.array)


def test_failures_are_one_line_with_non_zero_exit(tmp_path):
    run = segforge("vessel", "mask", str(tmp_path / "missing.nii.gz"), str(tmp_path / "out.nii.gz"))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segforge: error: No file") and "check the path" in lines[0].lower()
    thin = write_image(Image(np.zeros((1, 8, 8), np.int16)), tmp_path / "thin.nii.gz")
    run = segforge("vessel", "mask", str(thin), str(tmp_path / "out.nii.gz"))
    assert run.returncode == 1 and "2D" in run.stderr and not (tmp_path / "out.nii.gz").exists()
    run = segforge("vessel", "mask", str(thin), str(tmp_path / "out.nii.gz"), "--min-radius", "5",
                   "--max-radius", "1")
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
    run = segforge("vessel", "mask", str(tmp_path / "missing.nii.gz"), str(tmp_path / "mask.png"))
    assert run.returncode == 1 and "Cannot write mask.png" in run.stderr  # not "no file": checked first
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    run = segforge("vessel", "mask", str(tmp_path / "missing.nii.gz"), str(blocker / "mask.nii.gz"))
    assert run.returncode == 1 and "not a writable folder" in run.stderr
