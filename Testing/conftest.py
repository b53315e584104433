"""Shared pytest fixtures: a fresh headless Slicer scene per test and oblique test images.

Geometry bugs hide on axis-aligned, isotropic grids at the origin, so the test images here
have a real rotation as direction, anisotropic spacing and a non-zero origin by default.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(REPO))

from segforge.image import Image  # noqa: E402

#: Fixtures shared by many files: the browser tests' (``browser``, Testing/app_browser.py) and the
#: local HTTP server for downloads (``http_server``, ``closed_port``, Testing/http_fixture.py).
pytest_plugins = ["app_browser", "http_fixture"]
#: Real data shipped with the project (with its licence): always present.
SAMPLE_DATA = REPO / "Resources" / "SampleData"
#: The team's shared data sets (real CT/CTA volumes and predictions), beside the checkout.
SHARED_DATA = REPO.parent / "shared" / "data"

SPACING = (0.7, 1.3, 2.9)
ORIGIN_LPS = (-12.5, 40.25, 7.125)


def rotation(x_deg: float, y_deg: float, z_deg: float) -> np.ndarray:
    """A 3x3 rotation matrix: about x, then y, then z (degrees)."""
    def about(axis: int, degrees: float) -> np.ndarray:
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        a, b = [n for n in range(3) if n != axis]
        matrix = np.eye(3)
        matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
        return matrix
    return about(2, z_deg) @ about(1, y_deg) @ about(0, x_deg)


#: A real oblique direction (no axis is aligned with a patient axis).
OBLIQUE = rotation(20.0, -35.0, 50.0)


def make_image(shape_kji: tuple[int, int, int] = (9, 12, 16), dtype=np.int16, *,
               spacing=SPACING, origin_lps=ORIGIN_LPS, direction_lps=OBLIQUE, seed: int = 0) -> Image:
    """An oblique, anisotropic image of random voxels covering the dtype's range."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        array = rng.random(shape_kji) > 0.5
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape_kji, dtype=dtype, endpoint=True)
    else:
        array = (rng.standard_normal(shape_kji) * 1000).astype(dtype)
    return Image(array, spacing, origin_lps, direction_lps)


def make_labels(shape_kji: tuple[int, int, int] = (9, 12, 16), **geometry) -> Image:
    """Three non-overlapping boxy blobs labelled 1, 2 and 3 (label 3 is one voxel) on an oblique grid."""
    labels = np.zeros(shape_kji, np.uint8)
    labels[1:5, 2:9, 3:11] = 1
    labels[5:8, 4:11, 6:15] = 2
    labels[0, 0, 0] = 3
    return make_image(shape_kji, **geometry).with_array(labels)


@pytest.fixture
def headless_slicer() -> Iterator["object"]:
    """A fresh headless Slicer (scene + logics), installed as ``slicer.mrmlScene``; cleared after."""
    from segforge.mrml import create_headless_slicer
    app = create_headless_slicer(install=True)
    yield app
    app.close()


@pytest.fixture
def mrml_scene(headless_slicer) -> "object":
    """A fresh headless MRML scene (``slicer.mrmlScene`` during the test)."""
    return headless_slicer.scene


@pytest.fixture
def image_factory() -> Callable[..., Image]:
    return make_image


@pytest.fixture
def labels_factory() -> Callable[..., Image]:
    return make_labels


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; the test is skipped (saying where it looked) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def worker() -> Iterator["object"]:
    """A real local worker process, shared by one test module's Logic tests and stopped after them."""
    from segforge.worker import WorkerClient

    with WorkerClient() as client:
        yield client


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Path]:
    """SegForge's data folder for one test module, with no catalog override (a worker spawned
    while it is set inherits it: request ``home`` before ``worker``)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("home")
        patch.setenv("SEGFORGE_HOME", str(folder))
        patch.delenv("SEGFORGE_CATALOG", raising=False)
        yield folder
