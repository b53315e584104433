"""``segforge interactive`` as a user runs it: a real subprocess, prompt files, files that open in Slicer."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from segforge.image import LPS_TO_RAS
from segforge.image_io import read_image, write_image
from test_cli import segforge
from test_interactive_worker import LESION_A_IJK, LESION_B_IJK, lesion_image, world_of


def write_prompts(path, prompts, system="LPS"):
    path.write_text(json.dumps({"coordinateSystem": system, "prompts": prompts}))
    return path


def to_ras(point):
    return (np.asarray(point, float) * np.diag(LPS_TO_RAS)[:3]).tolist()


def lps_prompts(image):
    a, b = world_of(image, LESION_A_IJK), world_of(image, LESION_B_IJK)
    scribble = [world_of(image, (14 + d, 19, 12)).tolist() for d in (-1, 0, 1)]
    return [{"type": "point", "position": a.tolist(), "positive": True},
            {"type": "point", "position": b.tolist(), "positive": False},
            {"type": "box", "min": (a - 9).tolist(), "max": (a + 9).tolist()},
            {"type": "scribble", "points": scribble, "positive": True}]


def as_ras(prompts):
    converted = []
    for prompt in prompts:
        prompt = dict(prompt)
        if prompt["type"] == "point":
            prompt["position"] = to_ras(prompt["position"])
        elif prompt["type"] == "box":  # the corners' order flips in x and y: the reader sorts them
            prompt["min"], prompt["max"] = to_ras(prompt["min"]), to_ras(prompt["max"])
        else:
            prompt["points"] = [to_ras(p) for p in prompt["points"]]
        converted.append(prompt)
    return converted


def test_lps_and_ras_prompt_files_give_the_same_lesion(tmp_path):
    image, _, _ = lesion_image()
    source = write_image(image, tmp_path / "ct.nrrd")
    prompts = lps_prompts(image)
    lps = segforge("interactive", str(source), "--prompts", str(write_prompts(tmp_path / "lps.json", prompts)),
                   "--out", str(tmp_path / "lps"))
    ras = segforge("interactive", str(source), "--prompts",
                   str(write_prompts(tmp_path / "ras.json", as_ras(prompts), "RAS")), "--out", str(tmp_path / "ras"))
    assert lps.returncode == 0 and ras.returncode == 0, lps.stderr + ras.stderr
    a, b = read_image(tmp_path / "lps" / "lesion.seg.nrrd"), read_image(tmp_path / "ras" / "lesion.seg.nrrd")
    assert a.array.sum() > 0 and a.same_grid(image)
    np.testing.assert_array_equal(a.array, b.array)
    summary = json.loads((tmp_path / "lps" / "summary.json").read_text())
    assert [(s["type"], s["positive"]) for s in summary["interactions"]] == [
        ("point", True), ("point", False), ("box", True), ("scribble", True)]
    assert summary["backend"] == "random-walker" and summary["interactions"][-1]["voxels"] == a.array.sum()
    assert abs(summary["volume_ml"] - a.array.sum() * np.prod(image.spacing) / 1000) < 1e-9
    assert summary["total_seconds"] >= sum(s["seconds"] for s in summary["interactions"])
    assert sorted(p.name for p in (tmp_path / "lps").iterdir()) == ["lesion.seg.nrrd", "manifest.json", "summary.json"]


def test_a_click_on_an_oblique_anisotropic_image_segments_the_lesion_it_is_on(tmp_path):
    image, lesion_a, lesion_b = lesion_image()
    source = write_image(image, tmp_path / "ct.nii.gz")
    centre_lps = world_of(image, LESION_A_IJK)
    prompts = write_prompts(tmp_path / "p.json", [{"type": "point", "position": to_ras(centre_lps)}], "RAS")
    run = segforge("interactive", str(source), "--prompts", str(prompts), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    volume = sitk.ReadImage(str(tmp_path / "out" / "lesion.seg.nrrd"))
    assert volume.GetMetaData("Segment0_Name") == "lesion"
    mask = sitk.GetArrayFromImage(volume).astype(bool)
    dice = 2 * np.sum(mask & lesion_a) / (mask.sum() + lesion_a.sum())
    assert dice > 0.9 and not np.any(mask & lesion_b)
    # The mask's centre, placed in the world by SimpleITK from the file's own geometry:
    # where the click was, within a voxel.
    k, j, i = np.nonzero(mask)
    centre = np.mean([volume.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))
                      for x, y, z in zip(i, j, k)], axis=0)
    assert np.linalg.norm(centre - centre_lps) < 1.0


def one_line_error(run, *fragments):
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and lines[0].startswith("segforge: error:"), run.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_prompt_files_are_one_line_errors_and_write_nothing(tmp_path):
    image, _, _ = lesion_image()
    source = write_image(image, tmp_path / "ct.nrrd")
    out = tmp_path / "out"
    a = world_of(image, LESION_A_IJK).tolist()

    def run_with(prompt_file):
        return segforge("interactive", str(source), "--prompts", str(prompt_file), "--out", str(out))

    one_line_error(run_with(tmp_path / "missing.json"), "No prompt file")
    (tmp_path / "broken.json").write_text("{not json")
    one_line_error(run_with(tmp_path / "broken.json"), "Cannot read the prompt file")
    one_line_error(run_with(write_prompts(tmp_path / "empty.json", [])), "holds no prompts")
    one_line_error(run_with(write_prompts(tmp_path / "kind.json", [{"type": "ellipse"}])), "Unknown prompt type")
    one_line_error(run_with(write_prompts(tmp_path / "system.json", [{"type": "point", "position": a}], "XYZ")),
                   "Unknown coordinate system")
    one_line_error(run_with(write_prompts(tmp_path / "short.json", [{"type": "point", "position": [1, 2]}])),
                   "three finite numbers")
    far = write_prompts(tmp_path / "far.json", [{"type": "point", "position": a},
                                                {"type": "point", "position": [900, 900, 900]}])
    one_line_error(run_with(far), "outside the image")
    negative = write_prompts(tmp_path / "negative.json", [{"type": "point", "position": a, "positive": False}])
    one_line_error(run_with(negative), "first prompt is a negative click")
    good = write_prompts(tmp_path / "good.json", [{"type": "point", "position": a}])
    run = segforge("interactive", str(source), "--prompts", str(good), "--out", str(out), "--backend", "nope")
    one_line_error(run, "Unknown interactive backend")
    assert not out.exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    one_line_error(segforge("interactive", str(source), "--prompts", str(good), "--out", str(blocker)),
                   "not a folder")
    usage = segforge("interactive", str(source), "--prompts", str(good), "--out", str(out), "--device", "tpu")
    assert usage.returncode == 2 and "--device" in usage.stderr and not out.exists()


def test_summary_records_the_coordinate_system_and_the_device_that_ran(tmp_path):
    """summary.json said "device": "cuda" for --device cuda though the random walker ran on the
    CPU, and did not say how the prompts' millimetres were read (LPS or RAS)."""
    image, _, _ = lesion_image()
    source = write_image(image, tmp_path / "ct.nrrd")
    prompts = write_prompts(tmp_path / "ras.json", as_ras(lps_prompts(image)[:1]), "RAS")
    run = segforge("interactive", str(source), "--prompts", str(prompts), "--out", str(tmp_path / "out"),
                   "--device", "cuda")
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["coordinate_system"] == "RAS"
    assert summary["device"] == "cpu" and summary["device_requested"] == "cuda"


def test_prompt_files_that_tripped_the_reader_are_one_line_errors_and_a_bom_is_read(tmp_path):
    """A misspelt key ran with the wrong side of the patient (rc 0); a huge integer (OverflowError)
    and deep nesting (RecursionError) were tracebacks; a UTF-8 BOM was refused."""
    image, _, _ = lesion_image()
    source = write_image(image, tmp_path / "ct.nrrd")
    out = tmp_path / "out"
    a = world_of(image, LESION_A_IJK).tolist()

    def run_with(name, text):
        (tmp_path / name).write_text(text, encoding="utf-8")
        return segforge("interactive", str(source), "--prompts", str(tmp_path / name), "--out", str(out))

    typo = json.dumps({"coordinate_system": "RAS", "prompts": [{"type": "point", "position": to_ras(a)}]})
    one_line_error(run_with("typo.json", typo), "unknown key 'coordinate_system'", "'coordinateSystem'")
    sign = json.dumps({"prompts": [{"type": "point", "position": a}, {"type": "point", "position": a,
                                                                       "is_positive": False}]})
    one_line_error(run_with("sign.json", sign), "unknown key 'is_positive'")
    huge = '{"prompts": [{"type": "point", "position": [1' + "0" * 400 + ', 0, 0]}]}'
    one_line_error(run_with("huge.json", huge), "three finite numbers")
    lasso = '{"prompts": [{"type": "lasso", "points": [[0, 0, 0], [9, 0, 0], [0, 1' + "0" * 400 + ', 0]]}]}'
    one_line_error(run_with("lasso.json", lasso), "Point 3 of a lasso")
    one_line_error(run_with("deep.json", '{"prompts": ' + "[" * 100000 + "]" * 100000 + "}"), "nested too deep")
    one_line_error(run_with("bool.json", json.dumps({"prompts": [{"type": "point", "position": [True, 0, 0]}]})),
                   "[true, 0, 0]")
    assert not out.exists()
    bom = run_with("bom.json", "\ufeff" + json.dumps({"prompts": [{"type": "point", "position": a}]}))
    assert bom.returncode == 0, bom.stderr
