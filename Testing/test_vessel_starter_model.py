"""The bundled starter vessel network (``Resources/Models/segforge-vessel-starter.pt``).

It ships inside SegForge as a base to fine-tune from, so it must work offline with nothing
downloaded: listed in the shipped catalog with its SHA-256, found where it lies, verified
against that checksum, never picked by ``auto`` (it does not beat the Frangi filter on the
real cases: docs/training.md), nameable by its id as the base of a fine-tune, and able to
segment a plain bright tube.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from segforge.catalog import CATALOG_ENV, is_installed, load_catalog, model_path, verify  # noqa: E402
from segforge.catalog.cache import HOME_ENV  # noqa: E402
from segforge.catalog.download import download  # noqa: E402
from segforge.image import Image  # noqa: E402
from segforge.resources import resource_path  # noqa: E402
from segforge.vessel.mask_step import make_vessel_mask, resolve_vessel_model  # noqa: E402
from segforge.vessel.parameters import VesselMaskParameters  # noqa: E402

STARTER = "segforge-vessel-starter"
MAX_BYTES = 5 * 1024 * 1024
DICE_AT_LEAST = 0.7  # measured 0.82 (2026-12-07)


@pytest.fixture
def fresh_install(tmp_path, monkeypatch):
    """An empty model cache and only the shipped catalog: what a new install has."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    return tmp_path / "home"


def test_the_starter_ships_with_its_checksum_and_needs_no_download(fresh_install):
    entry = load_catalog().get(STARTER)
    assert entry.is_bundled and (entry.workflow, entry.framework) == ("vessel", "torchscript")
    assert entry.sha256 and not entry.auto
    path = model_path(entry)
    assert path == resource_path("Models/segforge-vessel-starter.pt")
    assert path.stat().st_size == entry.size_bytes <= MAX_BYTES
    assert is_installed(entry) and verify(entry).ok
    assert download(entry) == path
    assert not (fresh_install / "models").exists()
    assert not verify(replace(entry, sha256="0" * 64)).ok


def test_auto_keeps_the_filter_and_the_id_picks_the_starter(fresh_install):
    assert resolve_vessel_model("auto") is None
    assert resolve_vessel_model(STARTER).id == STARTER


def test_it_is_a_base_to_fine_tune_from_by_its_id(fresh_install):
    from SegVesselLib.fine_tune import base_model_choices
    from segforge.training.config import TrainingConfig
    from segforge.training.run import base_model_path
    from segforge.training.train import build_network, load_initial_weights

    assert STARTER in [value for value, _ in base_model_choices()]  # the Fine-tune panels list it
    path = base_model_path(STARTER)  # what `segforge train vessel --base-model` and the worker resolve
    assert path == resource_path("Models/segforge-vessel-starter.pt")
    assert "sha256" in load_initial_weights(build_network(TrainingConfig()), path, torch.device("cpu"))


def test_it_segments_a_bright_tube(fresh_install):
    """A slightly tilted tube 3 mm in radius, bright on a noisy background, 1 mm voxels."""
    shape = (48, 40, 40)
    k, j, i = np.indices(shape)
    truth = (j - 19.5) ** 2 + (i - 19.5 - 0.2 * (k - 24)) ** 2 <= 3.0 ** 2
    values = 100 + 300 * truth + np.random.default_rng(0).normal(0, 20, shape)
    image = Image(values.astype(np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    outcome = make_vessel_mask(image, VesselMaskParameters(model=STARTER))
    found = np.asarray(outcome.mask.array) > 0
    dice = 2 * np.count_nonzero(found & truth) / (np.count_nonzero(found) + np.count_nonzero(truth))
    assert outcome.model == STARTER and dice > DICE_AT_LEAST, dice
