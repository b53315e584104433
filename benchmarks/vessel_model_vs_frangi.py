"""A trained vessel network against the builtin Frangi filter on the real shared cases.

    .venv/bin/python benchmarks/vessel_model_vs_frangi.py --catalog out/starter-vessel/catalog.json \
        --model segforge-vessel-starter [--json out/model_vs_frangi.json]

Cases (issue 20):

1. **VMTK CE-MRA** (``aorta.mha``): Dice against VMTK's level set, inside the level set's box
   grown by 3 mm, which is also the ROI both methods get (as a user's ROI or VMTK's seeds bound
   its level set); number of pieces (26-connected) against the level set's.
2. **TotalSegmentator's thoracic CTA** (``cta_thorax_1p5mm.nii.gz``): recall of the aorta and of
   each named side vessel TotalSegmentator segmented (brachiocephalic trunk, left common carotid,
   left subclavian, celiac trunk, superior mesenteric artery), and the vessel volume (mL) found
   outside all of them grown by 2 voxels (pulmonary vessels and the heart are vessels too, so
   this is an upper bound of what is false).

3. **Fine-tuning** (``--fine-tune-steps N``): the model fine-tuned on one half of the CE-MRA
   (``segforge train vessel --split --from-model``, the level set as the label) and evaluated on
   the other half against the model before fine-tuning, the same run from random weights
   (``scratch-cemra-half``: what starting from the model is worth) and Frangi: Dice inside the
   level set's box (grown 3 mm) on that half, and the time the fine-tuning took.

Both: clDice (Shit et al.: topology precision and sensitivity from each mask's skeleton, ours:
:func:`segforge.training.skeleton.label_skeleton`) against the reference and the Betti-0 error
(pieces of the mask minus pieces of the reference). Frangi runs with the preset a user would
pick (``mra``, ``cta``), the network with the same ROI and component rules; both through
:func:`segforge.vessel.mask_step.make_vessel_mask`, as ``segforge vessel --model`` runs them.
The model is installed from ``--catalog`` into a temporary ``SEGFORGE_HOME`` (checksum verified).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segforge.image import Image, foreground_box  # noqa: E402
from segforge.image_io import read_image  # noqa: E402

DATA = ROOT / "Resources" / "SampleData"
SHARED = ROOT.parent / "shared" / "data" / "vessels"
CEMRA = DATA / "vmtk_aorta_cemra"
CTA = SHARED / "ts_thoracic_cta_aorta"
SIDE_VESSELS = ("brachiocephalic_trunk", "common_carotid_artery_left", "subclavian_artery_left",
                "celiac_trunk", "superior_mesenteric_artery")
FULL = np.ones((3, 3, 3), bool)


def pieces(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, structure=FULL)[1])


def skeleton(mask: np.ndarray) -> np.ndarray:
    import torch

    from segforge.training.skeleton import label_skeleton

    return label_skeleton(torch.from_numpy(mask.astype(np.float32))[None, None]).numpy()[0, 0] > 0.5


def cldice(mask: np.ndarray, reference: np.ndarray) -> float:
    mask_skeleton, reference_skeleton = skeleton(mask), skeleton(reference)
    precision = (mask_skeleton & reference).sum() / max(mask_skeleton.sum(), 1)
    sensitivity = (reference_skeleton & mask).sum() / max(reference_skeleton.sum(), 1)
    return float(2 * precision * sensitivity / max(precision + sensitivity, 1e-12))


def lps_box(image: Image, mask: np.ndarray, grow_mm: float) -> tuple[float, ...]:
    kji = np.argwhere(mask)
    low, high = kji.min(axis=0), kji.max(axis=0)
    corners = np.array([[i, j, k] for k in (low[0], high[0]) for j in (low[1], high[1]) for i in (low[2], high[2])],
                       float)
    matrix = image.ijk_to_lps()
    lps = corners @ matrix[:3, :3].T + matrix[:3, 3]
    return (*(lps.min(axis=0) - grow_mm), *(lps.max(axis=0) + grow_mm))


def run_mask(image: Image, parameters) -> tuple[np.ndarray, float]:
    """The mask, or an empty one where the model found no vessel (a score of 0, not a crash)."""
    from segforge.errors import InputError
    from segforge.vessel.mask_step import make_vessel_mask

    clock = time.perf_counter()
    try:
        outcome = make_vessel_mask(image, parameters)
    except InputError as error:
        if "found no vessel" not in error.message:
            raise
        return np.zeros(image.array.shape, bool), time.perf_counter() - clock
    return np.asarray(outcome.mask.array) != 0, time.perf_counter() - clock


def cemra(model: str) -> dict:
    from segforge.vessel.mask import roi_voxels
    from segforge.vessel.mask_step import BUILTIN_MODEL
    from segforge.vessel.pipeline import preset

    image = read_image(CEMRA / "aorta.mha")
    reference = np.asarray(read_image(CEMRA / "aorta_mask_DERIVED_levelset_lt0.nii.gz").array) != 0
    roi = lps_box(image, reference, 3.0)
    rows = {}
    for name, parameters in (("frangi (mra preset)", replace(preset("mra"), roi_lps=roi, model=BUILTIN_MODEL)),
                             (model, replace(preset("mra"), roi_lps=roi, model=model))):
        mask, seconds = run_mask(image, parameters)
        inside = roi_voxels(image, roi)
        found, truth = mask & inside, reference & inside
        dice = 2 * (found & truth).sum() / max(found.sum() + truth.sum(), 1)
        rows[name] = {"dice": float(dice), "pieces": pieces(found), "reference_pieces": pieces(truth),
                      "betti0_error": pieces(found) - pieces(truth), "cldice": cldice(found, truth),
                      "seconds": seconds}
    return rows


def cta(model: str) -> dict:
    from segforge.vessel.mask_step import BUILTIN_MODEL
    from segforge.vessel.pipeline import preset

    image = read_image(CTA / "cta_thorax_1p5mm.nii.gz")
    references = {"aorta": np.asarray(read_image(CTA / "pred_aorta.nii.gz").array) != 0}
    for vessel in SIDE_VESSELS:
        references[vessel] = np.asarray(read_image(CTA / f"pred_{vessel}.nii.gz").array) != 0
    named = np.logical_or.reduce(list(references.values()))
    near_named = ndimage.binary_dilation(named, FULL, iterations=2)
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    rows = {}
    for name, parameters in (("frangi (cta preset)", replace(preset("cta"), model=BUILTIN_MODEL)),
                             (model, replace(preset("cta"), model=model))):
        mask, seconds = run_mask(image, parameters)
        row = {f"recall {vessel}": float((mask & truth).sum() / max(truth.sum(), 1))
               for vessel, truth in references.items()}
        row.update({"outside named vessels (mL)": float((mask & ~near_named).sum() * voxel_ml),
                    "pieces": pieces(mask), "reference_pieces": pieces(named),
                    "betti0_error": pieces(mask) - pieces(named), "seconds": seconds})
        box = foreground_box(named, 2)
        row["cldice (named vessels' box)"] = cldice(mask[box], named[box])
        rows[name] = row
    return rows


def fine_tune(catalog: Path, model: str, steps: int, work: Path) -> dict:
    import subprocess

    from segforge.catalog.catalog import read_catalog_file
    from segforge.training.train import split_in_halves
    from segforge.vessel.mask import roi_voxels
    from segforge.vessel.mask_step import BUILTIN_MODEL
    from segforge.vessel.pipeline import preset

    from segforge.image_io import write_image

    # the level set's box grown by 10 mm: the labelled volume (the whole scan holds the level set in one half)
    image, label = read_image(CEMRA / "aorta.mha"), read_image(CEMRA / "aorta_mask_DERIVED_levelset_lt0.nii.gz")
    box = foreground_box(np.asarray(label.array) != 0, [int(np.ceil(10.0 / s)) for s in image.spacing[::-1]])
    image_path, label_path = work / "cemra.nii.gz", work / "cemra_levelset.nii.gz"
    write_image(image.crop(box), image_path)
    write_image(label.crop(box), label_path)
    (entry,) = [e for e in read_catalog_file(catalog) if e.id == model]
    start = Path(entry.url.removeprefix("file://"))
    tuned_id, scratch_id = f"{model}-cemra-half", "scratch-cemra-half"
    seconds = {}
    # the same run from the starter's weights and from random ones: what the starter is worth as a base
    for new_id, initial in ((tuned_id, ["--from-model", str(start)]), (scratch_id, [])):
        clock = time.perf_counter()
        command = [str(Path(sys.executable).with_name("segforge")), "train", "vessel", "--pair", str(image_path),
                   str(label_path), "--split", *initial, "--steps", str(steps), "--patch", "48", "48", "48",
                   "--batch-size", "2", "--channels", *map(str, _channels(catalog, model)), "--min-dice", "0",
                   "--validate-every", str(steps), "--seed", "1", "--out", str(work / "tuned"), "--model-id", new_id,
                   "--no-install"]
        subprocess.run(command, check=True, capture_output=True)
        seconds[new_id] = time.perf_counter() - clock
    both = json.loads(catalog.read_text())
    both["models"] += json.loads((work / "tuned" / "catalog.json").read_text())["models"]
    (work / "both.json").write_text(json.dumps(both))
    os.environ["SEGFORGE_CATALOG"] = str(work / "both.json")
    from segforge.cli.main import main as segforge

    for new_id in seconds:
        segforge(["models", "download", new_id])
    _, (half, truth_image) = split_in_halves(read_image(image_path), read_image(label_path))
    truth = np.asarray(truth_image.array) != 0
    roi = lps_box(half, truth, 3.0)
    inside = roi_voxels(half, roi)
    rows = {}
    for name, chosen in (("frangi (mra preset)", BUILTIN_MODEL), (model, model), (tuned_id, tuned_id),
                         (scratch_id, scratch_id)):
        mask, took = run_mask(half, replace(preset("mra"), roi_lps=roi, model=chosen))
        found = mask & inside
        rows[name] = {"dice (held-out half)": float(2 * (found & truth).sum() / max(found.sum() + truth.sum(), 1)),
                      "seconds": took}
    for new_id, took in seconds.items():
        rows[new_id]["fine-tuning seconds"] = took
        rows[new_id]["fine-tuning steps"] = steps
    return rows


def _channels(catalog: Path, model: str) -> list[int]:
    """The U-Net channels the model was trained with (its training record beside the model)."""
    record = json.loads((catalog.parent / model / "training.json").read_text())
    return list(record["record"]["config"]["channels"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", required=True, help="the catalog.json written by `segforge train vessel`")
    parser.add_argument("--model", required=True, help="the model's catalog id")
    parser.add_argument("--json", default=None)
    parser.add_argument("--fine-tune-steps", type=int, default=0, help="also fine-tune on half the CE-MRA")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["SEGFORGE_CATALOG"] = str(Path(args.catalog).resolve())
        os.environ["SEGFORGE_HOME"] = home
        from segforge.cli.main import main as segforge

        if segforge(["models", "download", args.model]) != 0:
            print(f"could not install {args.model} from {args.catalog}")
            return 1
        results = {"cemra": cemra(args.model), "cta": cta(args.model)}
        if args.fine_tune_steps:
            results["fine-tuning"] = fine_tune(Path(args.catalog).resolve(), args.model, args.fine_tune_steps,
                                               Path(home))
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "model": args.model, "results": results}
    for case, rows in results.items():
        print(f"\n{case}")
        for name, row in rows.items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
