"""Training a vessel U-Net (segforge.training.train / export, `segforge train vessel`): a few
steps on small synthetic volumes, Cancel with a checkpoint and resume, the catalog model
written only when finished and validated, bad input as one line."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from segforge.catalog.catalog import read_catalog_file
from segforge.cli.main import main
from segforge.errors import Cancelled, InputError
from segforge.training.export import export_vessel_model
from segforge.training.synthetic_data import randomised_case
from segforge.training.train import CHECKPOINT, TrainingConfig, prepare_pair, read_checkpoint, train

CONFIG = TrainingConfig(steps=3, patch_size=(16, 16, 16), batch_size=1, channels=(4, 8), validate_every=3,
                        checkpoint_every=1)


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """Every test installs into its own SegForge home, never the user's ~/.segforge."""
    monkeypatch.setenv("SEGFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEGFORGE_CATALOG", raising=False)


@pytest.fixture(scope="module")
def cases():
    return [randomised_case(seed, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
            for seed in range(3)]


@pytest.fixture(scope="module")
def pairs(cases):
    return [prepare_pair(c.image, c.label) for c in cases]


def run_model(cases, model_id, run_dir, config=CONFIG, **options):
    """``train_vessel_model`` on the first and last case (the last validates), as the CLI and worker call it."""
    from segforge.training.run import train_vessel_model

    return train_vessel_model([(c.image, c.label) for c in (cases[0], cases[2])], model_id, run_dir, config,
                              **options)


def test_a_few_steps_train_export_and_the_model_runs(pairs, tmp_path):
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "run")
    assert record.finished and len(record.losses) == 3 and all(np.isfinite(record.losses))
    assert record.validation and 0 <= record.final_dice <= 1
    entry = export_vessel_model(network, record, CONFIG, "test-vessel", tmp_path / "out")
    model = tmp_path / "out" / "test-vessel" / "model.pt"
    assert entry["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert entry["size_bytes"] == model.stat().st_size
    (listed,) = read_catalog_file(tmp_path / "out" / "catalog.json")  # the project's own catalog checks
    assert listed.id == "test-vessel" and listed.framework == "torchscript"
    scripted = torch.jit.load(str(model))
    with torch.no_grad():
        out = scripted(torch.randn(1, 1, 16, 16, 16))
    assert out.shape == (1, 1, 16, 16, 16) and torch.isfinite(out).all()
    record_file = json.loads((tmp_path / "out" / "test-vessel" / "training.json").read_text())
    assert record_file["record"]["finished"] and record_file["entry"]["sha256"] == entry["sha256"]


def test_two_runs_of_one_id_cannot_overwrite_each_others_model(pairs, tmp_path):
    """Both passed the id check at their start; the first to finish is listed, the second is
    refused under the catalog's lock before its model file replaces the first's."""
    from segforge.output_set import file_sha256
    from segforge.training.install import install_trained_model

    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "run")
    first = export_vessel_model(network, record, CONFIG, "same-id", tmp_path / "one")
    installed = install_trained_model(first, home=tmp_path / "home")
    torch.nn.init.zeros_(next(network.parameters()))  # another model under the same id
    second = export_vessel_model(network, record, CONFIG, "same-id", tmp_path / "two")
    assert second["sha256"] != first["sha256"]
    with pytest.raises(InputError, match="was listed by another training meanwhile"):
        install_trained_model(second, home=tmp_path / "home")
    model = tmp_path / "home" / "models" / "same-id" / "model.pt"
    assert installed.sha256 == first["sha256"] == file_sha256(model)


def test_cancel_keeps_a_checkpoint_and_resume_finishes(pairs, tmp_path):
    def cancel_at_step_two(fraction: float, message: str) -> None:
        if "step 2/" in message:
            raise KeyboardInterrupt

    with pytest.raises(Cancelled) as raised:
        train(pairs[:2], pairs[2:], CONFIG, tmp_path, cancel_at_step_two)
    assert "step 2 of 3" in str(raised.value) and (tmp_path / CHECKPOINT).is_file()
    assert read_checkpoint(tmp_path / CHECKPOINT)["step"] == 2
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path, resume=True)
    assert record.finished and len(record.losses) == 3


def test_no_model_is_written_unless_finished_and_validated(pairs, tmp_path):
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "run")
    with pytest.raises(InputError, match="did not validate"):
        export_vessel_model(network, record, CONFIG, "too-good", tmp_path / "out", min_validation_dice=1.01)
    unfinished = replace(record, finished=False)
    with pytest.raises(InputError, match="did not finish"):
        export_vessel_model(network, unfinished, CONFIG, "unfinished", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_pairs_are_one_line_messages(pairs, tmp_path):
    case = randomised_case(0, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
    shifted = case.label.crop((slice(1, None), slice(None), slice(None)))
    empty = case.label.with_array(np.zeros_like(case.label.array))
    for label, words in ((shifted, "not on its image's grid"), (empty, "is empty")):
        with pytest.raises(InputError) as raised:
            prepare_pair(case.image, label)
        assert words in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(InputError, match="Too little data"):
        train(pairs[:1], [], CONFIG, tmp_path)
    with pytest.raises(InputError, match="patch size"):
        TrainingConfig(patch_size=(15, 16, 16), channels=(4, 8))


def test_the_command_trains_and_writes_the_catalog_model(tmp_path, capsys):
    options = ["train", "vessel", "--out", str(tmp_path), "--model-id", "cli-vessel", "--synthetic-size-mm", "24",
               "--steps", "2", "--patch", "16", "16", "16", "--channels", "4", "8", "--batch-size", "1"]
    assert main([*options, "--synthetic", "1"]) == 1
    assert "Too little data" in capsys.readouterr().err
    assert main([*options, "--synthetic", "2"]) == 0
    assert "model cli-vessel" in capsys.readouterr().out
    (entry,) = read_catalog_file(tmp_path / "catalog.json")
    assert entry.id == "cli-vessel" and (tmp_path / "cli-vessel" / "model.pt").is_file()


def test_the_trained_model_is_used_at_once_by_segforge_vessel(tmp_path, capsys):
    """Train; the model is installed (checksum-verified copy in the cache, listed in the catalog of
    trained models), so `segforge models list` and `segforge vessel --model` use it with no set-up."""
    from segforge.image_io import write_image

    models = tmp_path / "models"
    assert main(["train", "vessel", "--out", str(models), "--model-id", "my-vessels", "--synthetic", "2",
                 "--synthetic-size-mm", "24", "--steps", "2", "--patch", "16", "16", "16", "--channels", "4", "8",
                 "--batch-size", "1"]) == 0
    assert (models / "curve.csv").is_file() and "installed" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert "my-vessels" in capsys.readouterr().out
    case = randomised_case(7, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
    write_image(case.image, tmp_path / "image.nii.gz")
    code = main(["vessel", str(tmp_path / "image.nii.gz"), "--out", str(tmp_path / "result"), "--model",
                 "my-vessels"])
    assert code == 0, capsys.readouterr().err[-400:]
    assert json.loads((tmp_path / "result" / "summary.json").read_text())["mask_model"] == "my-vessels"
    from segforge.vessel.mask_step import resolve_vessel_model

    assert resolve_vessel_model("auto") is None  # "auto" never picks a model trained here: only its id does
    again = main(["train", "vessel", "--out", str(tmp_path / "again"), "--model-id", "my-vessels", "--synthetic", "2",
                  "--synthetic-size-mm", "24", "--steps", "2", "--patch", "16", "16", "16", "--channels", "4", "8"])
    assert again == 1 and "already in the catalog" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_a_loss_that_becomes_nan_stops_the_run_with_one_line(pairs, tmp_path):
    wild = replace(CONFIG, learning_rate=1e30, steps=6)
    with pytest.raises(InputError) as raised:
        train(pairs[:2], pairs[2:], wild, tmp_path)
    assert "diverged" in str(raised.value) and "\n" not in str(raised.value)


def test_the_command_reads_image_label_pairs_and_refuses_a_label_off_grid(tmp_path, capsys):
    from segforge.image_io import write_image

    for number in range(2):
        case = randomised_case(number, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
        write_image(case.image, tmp_path / f"image{number}.nii.gz")
        write_image(case.label, tmp_path / f"label{number}.nii.gz")
    write_image(case.label.crop((slice(2, None), slice(None), slice(None))), tmp_path / "cropped.nii.gz")
    options = ["train", "vessel", "--out", str(tmp_path / "models"), "--model-id", "from-files", "--steps", "2",
               "--patch", "16", "16", "16", "--channels", "4", "8", "--batch-size", "1"]
    pairs = ["--pair", str(tmp_path / "image0.nii.gz"), str(tmp_path / "label0.nii.gz"),
             "--pair", str(tmp_path / "image1.nii.gz")]
    assert main([*options, *pairs, str(tmp_path / "cropped.nii.gz")]) == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert last_line.startswith("segforge: error: The label of pair 2 is not on its image's grid")
    assert not (tmp_path / "models").exists()
    assert main([*options, *pairs, str(tmp_path / "label1.nii.gz")]) == 0
    assert (tmp_path / "models" / "from-files" / "model.pt").is_file()


def test_one_volume_split_in_halves_trains_on_one_and_validates_on_the_other(tmp_path, capsys):
    from segforge.image_io import write_image
    from segforge.training.train import split_in_halves

    case = randomised_case(4, extent_mm=(40.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2,
                           oblique_probability=0.0)
    (first_image, first_label), (second_image, second_label) = split_in_halves(case.image, case.label)
    assert first_image.same_grid(first_label) and second_image.same_grid(second_label)
    assert first_image.array.size + second_image.array.size == case.image.array.size
    # the halves lie side by side in space: the second starts one voxel after the first ends
    axis = int(np.argmax(case.image.array.shape))
    first_end = np.zeros(4)
    first_end[[2, 1, 0][axis]] = first_image.array.shape[axis]
    first_end[3] = 1
    np.testing.assert_allclose((first_image.ijk_to_lps() @ first_end)[:3], second_image.origin_lps, atol=1e-9)
    write_image(case.image, tmp_path / "image.nii.gz")
    write_image(case.label, tmp_path / "label.nii.gz")
    options = ["train", "vessel", "--out", str(tmp_path / "models"), "--model-id", "halves", "--steps", "2",
               "--patch", "16", "16", "16", "--channels", "4", "8", "--batch-size", "1",
               "--pair", str(tmp_path / "image.nii.gz"), str(tmp_path / "label.nii.gz")]
    assert main(options) == 1 and "Too little data" in capsys.readouterr().err
    assert main([*options, "--split"]) == 0
    assert (tmp_path / "models" / "halves" / "model.pt").is_file()


def test_fine_tuning_starts_from_a_trained_model_file(pairs, tmp_path):
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "first")
    export_vessel_model(network, record, CONFIG, "starter", tmp_path / "out")
    model = tmp_path / "out" / "starter" / "model.pt"
    still = replace(CONFIG, learning_rate=1e-12, steps=1)  # one step that changes nothing measurable
    tuned, tuned_record = train(pairs[:2], pairs[2:], still, tmp_path / "second", initial_weights=model)
    for name, value in network.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[name], value, atol=1e-6, rtol=0)
    assert str(model) in tuned_record.initial_weights and "sha256" in tuned_record.initial_weights
    with pytest.raises(InputError, match="does not match"):
        train(pairs[:2], pairs[2:], replace(CONFIG, channels=(4, 8, 16)), tmp_path / "third", initial_weights=model)
    with pytest.raises(InputError, match="cannot be read"):
        train(pairs[:2], pairs[2:], CONFIG, tmp_path / "fourth", initial_weights=tmp_path / "missing.pt")


def test_cancel_during_validation_lands_within_a_window(pairs, tmp_path):
    def cancel_while_validating(fraction: float, message: str) -> None:
        if message == "Validating":
            raise Cancelled()

    with pytest.raises(Cancelled) as raised:
        train(pairs[:2], pairs[2:], CONFIG, tmp_path, cancel_while_validating)
    assert "step 3 of 3" in str(raised.value)
    assert read_checkpoint(tmp_path / CHECKPOINT)["step"] == 3
    _, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path, resume=True)  # validates what it missed
    assert record.finished and record.validation[-1][0] == 3 and np.isfinite(record.final_dice)


def test_the_command_reads_a_manifest_and_no_install_only_writes_out(tmp_path, capsys):
    from segforge.catalog import load_catalog
    from segforge.image_io import write_image

    rows = ["case_id,image,segment"]
    for number in range(2):
        case = randomised_case(number, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
        write_image(case.image, tmp_path / f"image{number}.nii.gz")
        write_image(case.label, tmp_path / f"label{number}.nii.gz")
        rows.append(f"c{number},image{number}.nii.gz,label{number}.nii.gz:1")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    options = ["train", "vessel", "--manifest", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "models"),
               "--model-id", "from-manifest", "--steps", "2", "--patch", "16", "16", "16", "--channels", "4", "8",
               "--batch-size", "1", "--no-install"]
    assert main(options) == 0, capsys.readouterr().err[-400:]
    assert "SEGFORGE_CATALOG" in capsys.readouterr().out
    assert (tmp_path / "models" / "from-manifest" / "model.pt").is_file()
    assert (tmp_path / "models" / "curve.csv").is_file() and (tmp_path / "models" / "checkpoint.pt").is_file()
    assert "from-manifest" not in load_catalog()
    (tmp_path / "bad.csv").write_text("image,labels\nimage0.nii.gz,label0.nii.gz\n")
    assert main([*options[:2], "--manifest", str(tmp_path / "bad.csv"), *options[4:]]) == 1
    assert "columns SegForge does not know (labels)" in capsys.readouterr().err


def test_tubularity_tells_vessels_from_blobs_on_anisotropic_grids():
    """Known shapes: a ball is about 1 ball, a cube 1.9, a tube 40 radii long about 30; all in mm, so a
    grid of 0.5 x 1 x 2 mm voxels gives the same answers; the synthetic trees pass, a ball is refused."""
    from segforge.training.label_checks import MIN_TUBULARITY, refuse_blob, tubularity

    spacing = (2.0, 1.0, 0.5)  # k, j, i (mm)
    k, j, i = np.indices((40, 80, 160)) * np.asarray(spacing)[:, None, None, None]
    ball = (k - 40) ** 2 + (j - 40) ** 2 + (i - 40) ** 2 < 20 ** 2
    cube = (abs(k - 40) < 20) & (abs(j - 40) < 20) & (abs(i - 40) < 20)
    tube = ((k - 40) ** 2 + (j - 40) ** 2 < 2 ** 2) & (i < 80)
    assert tubularity(ball, spacing)[0] == pytest.approx(1.0, abs=0.15)
    assert tubularity(cube, spacing)[0] == pytest.approx(6 / np.pi, abs=0.25)
    assert tubularity(tube, spacing)[0] > 10 * MIN_TUBULARITY / 3
    for seed in range(3):
        case = randomised_case(seed, extent_mm=(24.0, 24.0, 24.0), spacing_range_mm=(1.0, 1.0), generations=2)
        assert tubularity(case.label.array > 0, case.label.spacing[::-1])[0] >= MIN_TUBULARITY
    with pytest.raises(InputError, match="does not look like vessels"):
        refuse_blob(ball, spacing, "the liver")


def test_a_network_that_diverges_on_its_last_step_is_never_exported(pairs, cases, tmp_path):
    """The loss of the last step was a number; the step made the weights huge: the validation
    output (NaN, which thresholds as background) or the weights say so, and nothing is written."""
    wild = replace(CONFIG, learning_rate=1e30, steps=1, validate_every=1)
    with pytest.raises(InputError, match="Training diverged") as raised:
        train(pairs[:2], pairs[2:], wild, tmp_path / "run")
    assert "\n" not in str(raised.value) and not (tmp_path / "run" / CHECKPOINT).exists()
    with pytest.raises(InputError, match="Training diverged"):
        run_model(cases, "wild", tmp_path / "wild-run", wild)
    assert not (tmp_path / "wild-run").exists()
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "good")
    with torch.no_grad():
        next(network.parameters()).fill_(float("inf"))
    with pytest.raises(InputError, match="Training diverged"):
        export_vessel_model(network, record, CONFIG, "wild", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_damaged_empty_or_foreign_checkpoint_is_refused_naming_it(pairs, tmp_path):
    """Cut short, emptied, a byte changed inside a tensor (torch would still read it), another torch
    file, weights that are not numbers (with a right checksum): one line naming the file, which is kept."""
    import segforge.training.train as training

    train(pairs[:2], pairs[2:], CONFIG, tmp_path)
    path = tmp_path / CHECKPOINT
    good = path.read_bytes()
    state = read_checkpoint(path)
    middle = len(good) // 2
    wild = {**state, "network": {k: torch.full_like(v, float("inf")) for k, v in state["network"].items()}}
    for damage, words in ((lambda: path.write_bytes(good[: len(good) * 2 // 3]), "damaged"),
                          (lambda: path.write_bytes(b""), "empty"),
                          (lambda: path.write_bytes(good[:middle] + bytes([good[middle] ^ 0x7F]) + good[middle + 1:]),
                           "damaged"),
                          (lambda: torch.save({"weights": torch.zeros(3)}, path), "not a SegForge checkpoint"),
                          (lambda: training.write_checkpoint(path, wild), "not all finite")):
        damage()
        before = path.read_bytes()
        with pytest.raises(InputError) as raised:
            train(pairs[:2], pairs[2:], CONFIG, tmp_path, resume=True)
        message = str(raised.value)
        assert str(path) in message and words in message and "without --resume" in message, message
        assert "\n" not in message and path.read_bytes() == before


def test_a_resume_on_other_data_is_refused_and_a_finished_run_is_measured_again(pairs, tmp_path):
    train(pairs[:2], pairs[2:], CONFIG, tmp_path)
    with pytest.raises(InputError, match="made on other data"):
        train(pairs[1:], pairs[:1], CONFIG, tmp_path, resume=True)
    heard = []
    _, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path, lambda f, m: heard.append(m), resume=True)
    assert "Validating" in heard  # the Dice the model carries was measured on the data given now
    assert record.finished and [step for step, _ in record.validation] == [3]


def test_nothing_is_left_when_a_job_is_cancelled_while_installing(cases, tmp_path):
    from segforge.catalog import load_catalog

    def cancel_at_install(fraction: float, message: str) -> None:
        if message == "Installing the model":
            raise Cancelled()

    with pytest.raises(Cancelled):
        run_model(cases, "late-cancel", tmp_path / "run", progress=cancel_at_install)
    assert not (tmp_path / "run" / "late-cancel").exists() and not (tmp_path / "run" / "catalog.json").exists()
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".part")]
    assert "late-cancel" not in load_catalog()


def test_ctrl_c_while_writing_leaves_no_temporary_file_and_no_model(pairs, tmp_path, monkeypatch):
    import os

    import segforge.training.export as export
    from segforge.training.train import write_checkpoint

    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_atomically", interrupted)  # after model.pt was written
    with pytest.raises(KeyboardInterrupt):
        export_vessel_model(network, record, CONFIG, "stopped", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    (tmp_path / "ckpt").mkdir()
    monkeypatch.setattr(os, "replace", interrupted)  # between the temporary file and its rename
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path / "ckpt" / CHECKPOINT, {"step": 1})
    monkeypatch.undo()
    assert list((tmp_path / "ckpt").iterdir()) == []


def test_resume_checks_the_base_model_and_starts_from_it_without_a_checkpoint(pairs, cases, tmp_path):
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "first")
    export_vessel_model(network, record, CONFIG, "starter", tmp_path / "out")
    model = tmp_path / "out" / "starter" / "model.pt"
    with pytest.raises(InputError, match="No model file"):
        run_model(cases, "tuned", tmp_path / "run", base_model=tmp_path / "missing.pt", resume=True, install=False)
    heard = []
    result = run_model(cases, "tuned", tmp_path / "run", base_model=model, resume=True, install=False,
                       progress=lambda f, m: heard.append(m))
    assert str(model) in result.record.initial_weights  # not silently from scratch
    assert any("No checkpoint to resume: training starts from" in m for m in heard)
    other = tmp_path / "other.pt"
    torch.nn.init.zeros_(next(network.parameters()))
    torch.jit.script(network.to("cpu")).save(str(other))  # another model than the run started from
    with pytest.raises(InputError, match="did not start from the model given"):
        run_model(cases, "tuned", tmp_path / "run", base_model=other, resume=True, install=False)


def test_fine_tuning_refuses_an_installed_model_whose_file_was_replaced(pairs, cases, tmp_path):
    from segforge.catalog.cache import model_dir
    from segforge.training.install import install_trained_model

    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "first")
    install_trained_model(export_vessel_model(network, record, CONFIG, "starter", tmp_path / "out"))
    torch.nn.init.zeros_(next(network.parameters()))
    torch.jit.script(network.to("cpu")).save(str(model_dir("starter") / "model.pt"))  # a valid model, not the one
    with pytest.raises(InputError) as raised:
        run_model(cases, "tuned", tmp_path / "run", base_model="starter")
    assert "damaged" in str(raised.value) and "segforge models download starter --force" in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_a_second_run_in_a_run_folder_in_use_is_refused(cases, tmp_path):
    from segforge.file_lock import file_lock
    from segforge.training.run import run_lock_path

    (tmp_path / "run").mkdir()
    run_lock_path(tmp_path / "run").parent.mkdir(parents=True)
    with file_lock(run_lock_path(tmp_path / "run")) as held:  # as a run in another process holds it
        assert held
        with pytest.raises(InputError, match="Another training is using the run folder"):
            run_model(cases, "twin", tmp_path / "run")
    assert list((tmp_path / "run").iterdir()) == []
    run_model(cases, "twin", tmp_path / "run")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".part")]


def test_refusals_come_before_any_work(cases, tmp_path):
    from segforge.image import Image

    with pytest.raises(InputError, match="minimum validation Dice"):
        run_model(cases, "too-good", tmp_path / "a", min_dice=2)
    with pytest.raises(InputError, match="finite positive learning rate"):
        replace(CONFIG, learning_rate=float("inf"))
    label = cases[2].label
    tiny = np.zeros_like(label.array)
    k, j, i = (n // 2 for n in tiny.shape)
    tiny[k, j, i - 3:i + 3] = 1
    from segforge.training.run import train_vessel_model

    pairs = [(cases[0].image, cases[0].label), (cases[2].image, Image(tiny, label.spacing, label.origin_lps,
                                                                      label.direction_lps))]
    with pytest.raises(InputError, match="Too little data to validate"):
        train_vessel_model(pairs, "tiny", tmp_path / "b", CONFIG)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_messages_name_what_differs(pairs, cases, tmp_path):
    from segforge.image import Image

    case = cases[0]
    label = case.label
    shifted = Image(label.array, label.spacing, tuple(np.add(label.origin_lps, (5.0, 0, 0))), label.direction_lps)
    turned = Image(label.array, label.spacing, label.origin_lps,
                   np.asarray(label.direction_lps) @ np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]]))
    for other, words in ((shifted, "(?i)origin shifted by 5 mm"), (turned, "(?i)axes turned by up to 180 degrees")):
        with pytest.raises(InputError, match=words):
            prepare_pair(case.image, other)
    train(pairs[:2], pairs[2:], CONFIG, tmp_path / "run")
    with pytest.raises(InputError, match=r"differs in learning_rate \(0.001 there, 0.002 now\)"):
        train(pairs[:2], pairs[2:], replace(CONFIG, learning_rate=2e-3), tmp_path / "run", resume=True)
    network, record = train(pairs[:2], pairs[2:], CONFIG, tmp_path / "first")
    export_vessel_model(network, record, CONFIG, "starter", tmp_path / "out")
    with pytest.raises(InputError) as raised:
        train(pairs[:2], pairs[2:], replace(CONFIG, channels=(4, 16)), tmp_path / "other",
              initial_weights=tmp_path / "out" / "starter" / "model.pt")
    assert re.search(r"\S+ is \(\d+,[\d, ]*\) in the model, \(\d+,[\d, ]*\) in the network", str(raised.value))
    assert "--channels" in str(raised.value) and "UNet" not in str(raised.value)


def test_ctrl_c_in_the_command_exits_as_every_command_does(tmp_path, capsys, monkeypatch):
    import segforge.training.train as training

    real = training._batch
    calls = []

    def interrupted_at_the_second_step(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "_batch", interrupted_at_the_second_step)
    code = main(["train", "vessel", "--out", str(tmp_path), "--model-id", "stopped", "--synthetic", "2",
                 "--synthetic-size-mm", "24", "--steps", "3", "--patch", "16", "16", "16", "--channels", "4", "8",
                 "--batch-size", "1"])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted" in err and str(tmp_path / CHECKPOINT) in err
