"""``segforge train vessel``: train a vessel U-Net and write it as a catalog model.

Thin: it gathers the pairs (files, a folder, a batch manifest, one file split in halves, or
domain-randomised synthetic trees) and calls :func:`segforge.training.run.train_vessel_model`
(the call the worker's ``train.vessel`` task makes) with a progress bar. The last pair is held
out for validation. The model is installed in SegForge's catalog of trained models once it
finished and validated (``--no-install``: only written to OUT). Ctrl-C stops at the current
step with the checkpoint saved (``--resume`` goes on from it) and no model written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import Cancelled, InputError
from .progress_bar import progress_bar


def register(subparsers: "argparse._SubParsersAction[Any]") -> argparse.ArgumentParser:
    train = subparsers.add_parser("train", help="train a model on your data or on synthetic data",
                                  description="Train a model and write it as a catalog model.")
    workflows = train.add_subparsers(dest="train_workflow", metavar="{vessel}", required=True)
    vessel = workflows.add_parser(
        "vessel", help="train a vessel U-Net (Dice + CE + skeleton recall)",
        description="Train a vessel U-Net on image/label pairs or synthetic vessel trees; the last pair validates. "
                    "The model is written to OUT/ID/model.pt with its entry in OUT/catalog.json and installed, so "
                    "`segforge vessel --model ID` uses it at once; OUT also keeps checkpoint.pt and the training "
                    "curve (curve.csv, curve.png).")
    vessel.add_argument("--out", type=Path, required=True, help="folder for the checkpoint, the model and its catalog")
    vessel.add_argument("--model-id", required=True, help="catalog id of the trained model")
    vessel.add_argument("--pair", nargs=2, action="append", default=[], metavar=("IMAGE", "LABEL"),
                        help="an image and its vessel label (repeat; at least two pairs)")
    vessel.add_argument("--folder", type=Path, default=None,
                        help="a folder of pairs: images/ and labels/ (or imagesTr/, labelsTr/), same file names")
    vessel.add_argument("--manifest", type=Path, default=None,
                        help="a batch manifest (CSV/TSV) whose rows give an image and its vessel segment")
    vessel.add_argument("--split", action="store_true",
                        help="with one --pair: train on one half of the volume and validate on the other")
    vessel.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="add N domain-randomised synthetic vessel trees")
    vessel.add_argument("--synthetic-size-mm", type=float, default=64.0, help="extent of each synthetic volume")
    vessel.add_argument("--steps", type=int, default=300)
    vessel.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64], metavar=("X", "Y", "Z"))
    vessel.add_argument("--batch-size", type=int, default=2)
    vessel.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    vessel.add_argument("--learning-rate", type=float, default=1e-3)
    vessel.add_argument("--skeleton-recall-weight", type=float, default=1.0)
    vessel.add_argument("--validate-every", type=int, default=50)
    vessel.add_argument("--checkpoint-every", type=int, default=25)
    vessel.add_argument("--min-dice", type=float, default=0.0, help="export only above this validation Dice")
    vessel.add_argument("--seed", type=int, default=0)
    vessel.add_argument("--device", default="cpu")
    vessel.add_argument("--resume", action="store_true", help="go on from the checkpoint in --out")
    vessel.add_argument("--from-model", type=Path, default=None, metavar="MODEL_PT",
                        help="fine-tune: start from this trained model file (e.g. ~/.segforge/models/ID/model.pt; "
                             "same --channels)")
    vessel.add_argument("--base-model", default=None, metavar="ID",
                        help="fine-tune: start from this installed vessel model (its id in `segforge models list`)")
    vessel.add_argument("--no-install", dest="install", action="store_false",
                        help="only write OUT; do not install the model in SegForge's catalog of trained models")
    vessel.set_defaults(func=train_vessel)
    return train


def train_vessel(args: argparse.Namespace) -> int:
    from ..training.config import TrainingConfig
    from ..training.inputs import PairFiles, pairs_from_folder, pairs_from_manifest
    from ..training.run import train_vessel_model
    from ..training.synthetic_data import randomised_case

    config = TrainingConfig(steps=args.steps, patch_size=tuple(args.patch), batch_size=args.batch_size,
                            learning_rate=args.learning_rate, channels=tuple(args.channels),
                            skeleton_recall_weight=args.skeleton_recall_weight, validate_every=args.validate_every,
                            checkpoint_every=args.checkpoint_every, seed=args.seed, device=args.device)
    pairs: list = [PairFiles(image, label, f"pair {n + 1}") for n, (image, label) in enumerate(args.pair)]
    if args.folder is not None:
        pairs += pairs_from_folder(args.folder)
    if args.manifest is not None:
        pairs += pairs_from_manifest(args.manifest)
    if args.split and (len(pairs) != 1 or args.synthetic):
        raise InputError("--split takes exactly one pair", f"{len(pairs)} pair(s) and {args.synthetic} "
                         "synthetic volume(s) were given", "give one labelled volume with --split, or leave it out")
    if len(pairs) + args.synthetic < 2 and not args.split:
        raise InputError("Too little data to train and validate",
                         f"{len(pairs)} pair(s) and {args.synthetic} synthetic volume(s)",
                         "give at least two (--pair IMAGE LABEL, --folder, --manifest, --synthetic N); the last "
                         "one validates")
    extent = (args.synthetic_size_mm,) * 3
    for number in range(args.synthetic):
        case = randomised_case(args.seed * 100_003 + number, extent_mm=extent)
        pairs.append((case.image, case.label))
    base = args.from_model if args.from_model is not None else args.base_model
    try:
        with progress_bar("Training") as report:
            result = train_vessel_model(pairs, args.model_id, args.out, config, split=args.split, base_model=base,
                                        resume=args.resume, min_dice=args.min_dice, progress=report,
                                        install=args.install)
    except Cancelled as stopped:  # Ctrl-C (or SIGTERM): say where the checkpoint is, then exit as every command does
        if not isinstance(stopped.__cause__, KeyboardInterrupt):
            raise
        print(f"segforge: training stopped {stopped.why}; run again with --resume to go on", file=sys.stderr)
        raise stopped.__cause__ from None
    entry, record = result.entry, result.record
    where = ("installed: `segforge vessel --model ID` and the panels' model lists use it now" if args.install
             else f"name {args.out / 'catalog.json'} in SEGFORGE_CATALOG to use it")
    print(f"model {entry['id']}: validation Dice {record.final_dice:.3f} after {config.steps} steps "
          f"({record.seconds:.0f} s); {args.out / entry['id'] / 'model.pt'} (sha256 {entry['sha256'][:12]}...), "
          f"curve {result.curve_csv}; {where}", file=sys.stdout)
    return 0
