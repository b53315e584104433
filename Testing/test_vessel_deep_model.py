"""A deep vessel model from the catalog makes the vessel mask: engine, choice, worker, CLI.

Real files end to end, no network: a small MONAI network (a 3x3x3 mean filter with
hand-set weights, so its output is known: vessel where the local mean of the windowed
intensity passes one half) is exported with torch.jit, served from a local HTTP server,
listed in an extra catalog (SEGFORGE_CATALOG) and installed with the real download code
into a temporary model cache (SEGFORGE_HOME). The test image is an oblique, anisotropic
tube whose voxels are known exactly.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from conftest import OBLIQUE, ORIGIN_LPS, SPACING  # noqa: E402
from http_fixture import PROXY_VARIABLES, LocalServer, model_record, write_catalog  # noqa: E402
from segforge.catalog import CATALOG_ENV, load_catalog  # noqa: E402
from segforge.catalog.cache import HOME_ENV  # noqa: E402
from segforge.catalog.catalog import catalog_problems  # noqa: E402
from segforge.catalog.download import download  # noqa: E402
from segforge.errors import Cancelled, InputError, ModelError  # noqa: E402
from segforge.image import Image  # noqa: E402
from segforge.vessel.deep_model import deep_vessel_mask_and_meta  # noqa: E402
from segforge.vessel.mask_step import make_vessel_mask, resolve_vessel_model  # noqa: E402
from segforge.vessel.parameters import VesselMaskParameters  # noqa: E402
from segforge.runtime.model_cache import ModelCache  # noqa: E402

MODEL = "test-vessel-net"
FINE = "test-vessel-net-fine"  # the same network with tiny tiles: thousands of tiles, for Cancel
ABSENT = "test-vessel-absent"  # catalogued, never downloaded
ORGAN = "test-organ-net"
#: The model's spacing (x, y, z), unlike the image's 0.7 x 1.3 x 2.9 mm.
MODEL_SPACING = [1.0, 1.0, 1.5]
TUBE_RADIUS_MM = 5.0


def tube_network() -> "torch.nn.Module":
    """Two logits (background, vessel) from the 3x3x3 mean of the normalised intensity:
    vessel where the mean passes 0.5, i.e. inside a bright tube, sharply (x20)."""
    from monai.networks.blocks import Convolution

    class TubeNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mean = Convolution(spatial_dims=3, in_channels=1, out_channels=1, kernel_size=3, conv_only=True)
            with torch.no_grad():
                self.mean.conv.weight.fill_(1.0 / 27.0)
                self.mean.conv.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            vessel = 20.0 * (self.mean(x) - 0.5)
            return torch.cat([-vessel, vessel], dim=1)

    return torch.jit.script(TubeNet())


def tube_image(shape=(20, 40, 64), radius_mm: float = TUBE_RADIUS_MM) -> tuple[Image, np.ndarray]:
    """A bright tube (400 HU, noise 15) along an oblique world line through the centre, on the
    conftest's oblique anisotropic grid, and its exact voxels (centres within the radius)."""
    image = Image(np.zeros(shape, np.int16), SPACING, ORIGIN_LPS, OBLIQUE)
    k, j, i = np.indices(shape)
    lps = (image.ijk_to_lps() @ np.stack([i, j, k, np.ones_like(i)]).reshape(4, -1))[:3].T
    centre = image.ijk_to_lps() @ np.array([(shape[2] - 1) / 2, (shape[1] - 1) / 2, (shape[0] - 1) / 2, 1.0])
    axis = np.array([0.3, 1.0, 0.5]) / np.linalg.norm([0.3, 1.0, 0.5])
    offset = lps - centre[:3]
    distance = np.linalg.norm(offset - np.outer(offset @ axis, axis), axis=1).reshape(shape)
    truth = distance <= radius_mm
    noise = np.random.default_rng(0).normal(0, 15, shape)
    return image.with_array((truth * 400 + noise).astype(np.int16)), truth


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def vessel_record(model_id: str, url: str, body: bytes, patch, spacing) -> dict:
    return model_record(model_id, url, body, workflow="vessel", labels={"1": "vessels"}, min_gpu_memory_gb=0,
                        input={"modality": ["CT"], "spacing_mm": spacing, "intensity_window": [0, 400],
                               "patch_size": patch})


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The network served on loopback, catalogued and downloaded into a fresh cache; the
    environment (catalog, cache) stays set for the module and for the workers it starts."""
    root = tmp_path_factory.mktemp("deep")
    network = root / "tube-net.pt"
    tube_network().save(str(network))
    body = network.read_bytes()
    server = LocalServer().start()
    records = [vessel_record(MODEL, server.add("/models/tube-net.pt", body), body, [32, 32, 32], MODEL_SPACING),
               vessel_record(FINE, server.add("/models/fine/tube-net.pt", body), body, [8, 8, 8], [0.4, 0.4, 0.4]),
               vessel_record(ABSENT, server.url("/models/absent.pt"), body, None, None),
               model_record(ORGAN, server.url("/models/organ.pt"), body)]
    catalog = write_catalog(root / "site-catalog.json", records)
    with pytest.MonkeyPatch.context() as patch:
        for name in PROXY_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv(CATALOG_ENV, str(catalog))
        patch.setenv(HOME_ENV, str(root / "home"))
        entries = load_catalog()
        paths = {model_id: download(entries.get(model_id)) for model_id in (MODEL, FINE)}
        assert server.requests["/models/tube-net.pt"] == 1 and paths[MODEL].read_bytes() == body
        try:
            yield SimpleNamespace(root=root, catalog=catalog, entry=entries.get(MODEL), paths=paths)
        finally:
            server.stop()


# --- (a) the engine ------------------------------------------------------------------------

def test_mask_lands_on_the_input_grid_and_matches_the_tube(installed):
    image, truth = tube_image()
    cache = ModelCache()
    mask, meta = deep_vessel_mask_and_meta(image, installed.entry, VesselMaskParameters(device="cpu"), cache=cache)
    # exactly the input's geometry
    assert mask.array.shape == image.array.shape and mask.array.dtype == np.uint8
    assert mask.spacing == image.spacing and mask.origin_lps == image.origin_lps
    assert np.array_equal(mask.direction_lps, image.direction_lps)
    # the network ran at the catalog's spacing (x, y, z), not the image's 0.7 x 1.3 x 2.9 mm
    extent_xyz = [n * s for n, s in zip(image.shape_ijk, image.spacing)]  # this direction keeps i, j, k as x, y, z
    assert meta["model_grid_xyz"] == [round(e / s) for e, s in zip(extent_xyz, MODEL_SPACING)] == [45, 52, 39]
    np.testing.assert_allclose(meta["model_spacing_mm"], MODEL_SPACING, rtol=0.02)
    assert meta["tiles"] == 8 and meta["model"] == MODEL and meta["device"] == "cpu"
    assert meta["model_cached"] is False
    measured = dice(mask.array > 0, truth)
    assert measured > 0.94, measured  # measured 0.9645 (2254 voxels found, 2418 true)
    # a second run reuses the loaded network and gives the same mask
    again, meta = deep_vessel_mask_and_meta(image, installed.entry, VesselMaskParameters(device="cpu"), cache=cache)
    assert meta["model_cached"] is True and cache.loads == 1
    np.testing.assert_array_equal(again.array, mask.array)


def test_roi_and_seeds_apply_to_the_network_mask(installed):
    image, truth = tube_image()
    centre = image.ijk_to_lps() @ np.array([31.5, 19.5, 9.5, 1.0])
    roi = (*(centre[:3] - 8.0), *(centre[:3] + 8.0))
    parameters = VesselMaskParameters(device="cpu", roi_lps=roi, seeds_lps=(tuple(centre[:3]),))
    mask, _ = deep_vessel_mask_and_meta(image, installed.entry, parameters, cache=ModelCache())
    from segforge.vessel.mask import roi_voxels

    inside = roi_voxels(image, roi)
    assert mask.same_grid(image, tol=0) and not (mask.array.astype(bool) & ~inside).any()
    assert dice(mask.array > 0, truth & inside) > 0.9


def test_network_cancel_lands_within_a_tile(installed):
    image, _ = tube_image()
    tiles = []

    def cancel_at_third_tile(fraction, message):
        if "tile" in message:
            tiles.append(message)
            if len(tiles) == 3:
                raise Cancelled()

    with pytest.raises(Cancelled):
        deep_vessel_mask_and_meta(image, installed.entry, VesselMaskParameters(device="cpu"), cancel_at_third_tile,
                                  cache=ModelCache())
    assert tiles[-1].endswith("tile 3 of 8")


# --- (b) "auto" and the choice of model -------------------------------------------------

def test_auto_picks_the_installed_model_and_builtin_without_one(installed, tmp_path, monkeypatch):
    image, _ = tube_image()
    assert resolve_vessel_model("auto").id == MODEL  # the first installed vessel model of the catalog
    assert resolve_vessel_model("vesselness-frangi") is None
    made = make_vessel_mask(image, VesselMaskParameters(device="cpu"))
    assert made.model == made.meta["model"] == MODEL and made.mask.same_grid(image, tol=0)

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "empty-home"))
    assert resolve_vessel_model("auto") is None
    builtin = VesselMaskParameters(min_radius_mm=4.0, max_radius_mm=6.0, scales=1, threshold=0.2, device="cpu")
    made = make_vessel_mask(image, builtin)
    assert made.model == "vesselness-frangi" and made.mask.array.any()


def test_builtin_can_be_forced_and_the_pipeline_records_the_model(installed):
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline

    image, _ = tube_image()
    frangi = VesselMaskParameters(min_radius_mm=4.0, max_radius_mm=6.0, scales=1, threshold=0.2, device="cpu",
                                  model="vesselness-frangi")
    assert make_vessel_mask(image, frangi).model == "vesselness-frangi"
    only_mask = VesselOutputs(centerlines=False, stenoses=False, surface=False)
    result = run_vessel_pipeline(image, VesselPipelineParameters(mask=VesselMaskParameters(device="cpu"),
                                                                 outputs=only_mask))
    assert result.mask_model == MODEL and result.mask.same_grid(image, tol=0)


def test_auto_falls_back_to_builtin_when_the_catalog_is_broken(installed, tmp_path, monkeypatch, caplog):
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    monkeypatch.setenv(CATALOG_ENV, str(broken))
    assert resolve_vessel_model("auto") is None
    assert "could not be read" in caplog.text
    with pytest.raises(ModelError, match="not valid JSON"):  # a named model still says what is wrong
        resolve_vessel_model(MODEL)


# --- (c) clear errors -------------------------------------------------------------------

def test_a_model_that_is_not_installed_says_how_to_install_it(installed):
    image, _ = tube_image()
    with pytest.raises(ModelError) as caught:
        make_vessel_mask(image, VesselMaskParameters(model=ABSENT))
    assert "not installed" in caught.value.what
    assert f"segforge models download {ABSENT}" in caught.value.todo


def test_unknown_or_wrong_models_are_clear_errors(installed):
    with pytest.raises(ModelError) as caught:
        resolve_vessel_model("no-such-vessel-net")
    assert "no-such-vessel-net" in caught.value.what
    for listed in ("vesselness-frangi", MODEL, FINE, ABSENT):
        assert listed in caught.value.why
    assert ORGAN not in caught.value.why
    with pytest.raises(ModelError, match="not a vessel model"):
        resolve_vessel_model(ORGAN)
    with pytest.raises(InputError, match="vessel model name is invalid"):
        VesselMaskParameters(model="Not An Id")
    with pytest.raises(InputError, match="vessel model name is invalid"):
        VesselMaskParameters(model=3)  # type: ignore[arg-type]


# --- catalog fields the network needs -------------------------------------------------

_INPUT_CASES = [
    ({"intensity_window": [-100, 600.5], "patch_size": [96, 96, 64]}, True),
    ({"intensity_window": None, "patch_size": None}, True),
    ({}, True),  # both optional: existing entries stay valid
    ({"patch_size": [16.0, 16, 16]}, True),  # JSON Schema counts 16.0 as an integer
    ({"intensity_window": [0, 1, 2]}, False),
    ({"intensity_window": ["0", "400"]}, False),
    ({"patch_size": [0, 16, 16]}, False),
    ({"patch_size": [16, 16]}, False),
    ({"patch_size": [16.5, 16, 16]}, False),
    ({"patch_size": [True, 16, 16]}, False),
    ({"channels": 1}, False),
]


@pytest.mark.parametrize("extra, valid", _INPUT_CASES, ids=[str(c[0]) for c in _INPUT_CASES])
def test_new_input_fields_agree_with_the_schema(extra, valid):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "Resources/Models/catalog.schema.json").read_text())
    record = model_record("vessel-x", "https://models.example.org/v.pt", b"x", workflow="vessel")
    record["input"].update(extra)
    document = {"schema_version": 1, "models": [record]}
    assert jsonschema.Draft202012Validator(schema).is_valid(document) is valid
    assert (catalog_problems(document) == []) is valid, catalog_problems(document)


# --- (d) through a real worker subprocess --------------------------------------------------

def test_worker_uses_the_model_keeps_it_loaded_and_cancels(installed):
    from segforge.worker import WorkerClient

    from worker_helpers import wait_until_running

    image, truth = tube_image()
    with WorkerClient() as client:  # a subprocess that inherits the catalog and the cache
        first = client.run("vessel.mask", {"image": image}, {"device": "cpu"})  # auto
        second = client.run("vessel.mask", {"image": image}, {"device": "cpu", "model": MODEL})
        assert first.meta["model"] == second.meta["model"] == MODEL
        assert first.meta["model_cached"] is False and second.meta["model_cached"] is True
        assert second.meta["model_loads"] == 1
        expected, _ = deep_vessel_mask_and_meta(image, installed.entry, VesselMaskParameters(device="cpu"),
                                                cache=ModelCache())
        for result in (first, second):
            mask = result.outputs["mask"]
            assert mask.same_grid(image, tol=1e-12)
            np.testing.assert_array_equal(mask.array, expected.array)
        assert dice(first.outputs["mask"].array > 0, truth) > 0.94

        job = client.submit("vessel.mask", {"image": image}, {"device": "cpu", "model": FINE})
        wait_until_running(job)
        deadline = time.monotonic() + 30
        while "tile" not in (status := job.poll()).message:
            assert not status.finished and time.monotonic() < deadline, status
            time.sleep(0.01)
        job.cancel()
        while not (status := job.poll()).finished:
            time.sleep(0.02)
        assert status.state == "cancelled" and status.cancel_latency_s < 1.0
        with pytest.raises(Cancelled):
            job.result()
        with pytest.raises(ModelError) as caught:
            client.run("vessel.mask", {"image": image}, {"model": ABSENT})
        assert f"segforge models download {ABSENT}" in caught.value.todo
        after = client.run("vessel.mask", {"image": image}, {"device": "cpu", "model": MODEL})
        assert after.meta["model_cached"] is True
        tree = client.run("vessel.tree", {"image": image}, {
            "mask": {"device": "cpu", "model": MODEL},
            "outputs": {"centerlines": False, "stenoses": False, "surface": False}})
        assert tree.meta["summary"]["mask_model"] == MODEL
        np.testing.assert_array_equal(tree.outputs["mask"].array, expected.array)


# --- (e) the command line ------------------------------------------------------------------

def test_cli_model_option_writes_the_mask_on_the_input_grid(installed, tmp_path, capsys):
    from segforge.cli.main import main
    from segforge.image_io import read_image, write_image
    from segforge.vessel.pipeline import preset

    image, truth = tube_image()
    source = write_image(image, tmp_path / "tube.nrrd")
    out = tmp_path / "out"
    code = main(["vessel", str(source), "--out", str(out), "--model", MODEL, "--device", "cpu",
                 "--no-centerlines", "--no-surface"])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"vessels.seg.nrrd", "summary.json", "manifest.json"}
    mask = read_image(out / "vessels.seg.nrrd")
    assert mask.same_grid(image, tol=1e-5)
    from dataclasses import replace

    expected = make_vessel_mask(image, replace(preset("cta"), device="cpu", model=MODEL)).mask
    np.testing.assert_array_equal(mask.array > 0, expected.array > 0)
    assert dice(mask.array > 0, truth) > 0.94
    assert json.loads((out / "summary.json").read_text())["mask_model"] == MODEL

    missing = tmp_path / "not-made"
    code = main(["vessel", str(source), "--out", str(missing), "--model", ABSENT])
    assert code == 1 and f"segforge models download {ABSENT}" in capsys.readouterr().err
    assert not missing.exists()
