"""Model files that ship with SegForge (``"url": "bundled://Models/<file>"``) and ``"auto": false``.

A bundled model must work offline with nothing downloaded: found where it lies in
``Resources/Models/``, verified against the catalog's SHA-256, never picked by the vessel
``auto`` model when its entry says so, nameable by its id as the base of a fine-tune, and run
by the deep vessel mask like a downloaded one, and checked by ``segforge models verify``. The
resources folder here is a temporary one (the shipped catalog's entries without their bundled
ones, plus two bundled entries of its own), so the test does not depend on which model files a
release carries.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from http_fixture import model_record  # noqa: E402
from segforge import resources  # noqa: E402
from segforge.catalog import CATALOG_ENV, Catalog, is_installed, load_catalog, model_path, verify  # noqa: E402
from segforge.catalog.cache import HOME_ENV  # noqa: E402
from segforge.catalog.download import download  # noqa: E402
from segforge.errors import ModelError  # noqa: E402
from segforge.vessel.mask_step import make_vessel_mask, resolve_vessel_model  # noqa: E402
from segforge.vessel.parameters import VesselMaskParameters  # noqa: E402
from test_vessel_deep_model import tube_image, tube_network  # noqa: E402

TUBE = "test-bundled-tube"  # a hand-set network whose output is known (test_vessel_deep_model)
UNET = "test-bundled-unet"  # the U-Net segforge train vessel builds, as a base to fine-tune from


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """Resources/Models/ with the shipped catalog, two bundled models and their entries; an empty cache."""
    from segforge.training.config import TrainingConfig
    from segforge.training.train import build_network

    models = tmp_path / "resources" / "Models"
    models.mkdir(parents=True)
    tube_network().save(str(models / "tube.pt"))
    torch.jit.script(build_network(TrainingConfig()).eval()).save(str(models / "unet.pt"))
    shipped = json.loads(resources.resource_path("Models/catalog.json").read_text(encoding="utf-8"))
    shipped["models"] = [m for m in shipped["models"] if not str(m["url"]).startswith("bundled://")]  # not copied
    shutil.copy(resources.resource_path("Models/catalog.schema.json"), models)
    for model_id, name, extra in ((TUBE, "tube.pt", {"intensity_window": [0, 400], "patch_size": [32, 32, 32]}),
                                  (UNET, "unet.pt", {})):
        shipped["models"].append(model_record(
            model_id, f"bundled://Models/{name}", (models / name).read_bytes(), workflow="vessel",
            labels={"1": "vessels"}, auto=False, min_gpu_memory_gb=0,
            input={"modality": ["CT"], "spacing_mm": None, "orientation": "RAS", **extra}))
    (models / "catalog.json").write_text(json.dumps(shipped), encoding="utf-8")
    monkeypatch.setattr(resources, "_CANDIDATES", (tmp_path / "resources",))
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    return models


def test_a_bundled_model_is_used_where_it_lies_and_verified(bundled):
    entry = load_catalog().get(TUBE)
    assert entry.is_bundled and not entry.auto
    assert model_path(entry) == bundled / "tube.pt"
    assert is_installed(entry) and verify(entry).ok
    assert download(entry) == bundled / "tube.pt"  # "downloading" it only checks it
    assert not (bundled.parents[1] / "home" / "models").exists()


def test_a_bundled_file_that_changed_is_caught(bundled):
    entry = load_catalog().get(TUBE)
    body = bytearray((bundled / "tube.pt").read_bytes())
    body[len(body) // 2] ^= 0xFF  # same size: looks installed, fails the checksum
    (bundled / "tube.pt").write_bytes(bytes(body))
    assert is_installed(entry)
    (problem,) = verify(entry).problems
    assert "SHA-256" in problem
    with pytest.raises(ModelError, match="damaged"):
        download(entry)
    (bundled / "tube.pt").write_bytes(bytes(body[:-1]))  # another size: not installed at all
    assert not is_installed(entry)


def test_auto_skips_an_entry_that_says_so_and_the_id_still_picks_it(bundled):
    assert resolve_vessel_model("auto") is None  # the builtin filter
    assert resolve_vessel_model(TUBE).id == TUBE
    allowed = replace(load_catalog().get(TUBE), auto=True)
    assert resolve_vessel_model("auto", catalog=Catalog([allowed])).id == TUBE


def test_a_bundled_model_is_a_base_to_fine_tune_from(bundled):
    from segforge.training.config import TrainingConfig
    from segforge.training.run import base_model_path
    from segforge.training.train import build_network, load_initial_weights

    assert base_model_path(UNET) == bundled / "unet.pt"
    assert "sha256" in load_initial_weights(build_network(TrainingConfig()), base_model_path(UNET),
                                            torch.device("cpu"))


def test_a_bundled_model_segments_a_tube(bundled):
    image, truth = tube_image()
    outcome = make_vessel_mask(image, VesselMaskParameters(model=TUBE))
    found = np.asarray(outcome.mask.array) > 0
    dice = 2 * np.count_nonzero(found & truth) / (np.count_nonzero(found) + np.count_nonzero(truth))
    assert outcome.model == TUBE and dice > 0.9, dice


def test_segforge_models_verify_checks_the_bundled_files(bundled, capsys):
    from segforge.cli.main import main as segforge

    assert segforge(["models", "verify"]) == 0
    assert f"{TUBE}: ok (ships with SegForge)" in capsys.readouterr().out
    body = bytearray((bundled / "tube.pt").read_bytes())
    body[len(body) // 2] ^= 0xFF
    (bundled / "tube.pt").write_bytes(bytes(body))
    assert segforge(["models", "verify"]) == 1
    out = capsys.readouterr()
    assert f"{TUBE}: BAD" in out.out and "Reinstall SegForge" in out.out
    assert "1 model file(s) shipped with SegForge failed verification" in out.err
