"""``segforge train vessel``: train a vessel U-Net and write it as a catalog model.

Thin: it reads the pairs (files, one file split in halves, or domain-randomised synthetic
trees), calls
:func:`segforge.training.train.train` with a progress bar, and
:func:`segforge.training.export.export_vessel_model`. The last pair is held out for
validation. Ctrl-C stops at the current step with the checkpoint saved (``--resume`` goes
on from it) and no model written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..image_io import read_image
from .progress_bar import progress_bar


def register(subparsers: "argparse._SubParsersAction[Any]") -> argparse.ArgumentParser:
    train = subparsers.add_parser("train", help="train a model on your data or on synthetic data",
                                  description="Train a model and write it as a catalog model.")
    workflows = train.add_subparsers(dest="train_workflow", metavar="{vessel}", required=True)
    vessel = workflows.add_parser(
        "vessel", help="train a vessel U-Net (Dice + CE + skeleton recall)",
        description="Train a vessel U-Net on image/label pairs or synthetic vessel trees; the last pair validates. "
                    "The model is written to OUT/ID/model.pt with its entry in OUT/catalog.json (name that file in "
                    "SEGFORGE_CATALOG to use it with `segforge vessel --model ID`).")
    vessel.add_argument("--out", type=Path, required=True, help="folder for the checkpoint, the model and its catalog")
    vessel.add_argument("--model-id", required=True, help="catalog id of the trained model")
    vessel.add_argument("--pair", nargs=2, action="append", default=[], metavar=("IMAGE", "LABEL"),
                        help="an image and its vessel label (repeat; at least two pairs)")
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
    vessel.set_defaults(func=train_vessel)
    return train


def train_vessel(args: argparse.Namespace) -> int:
    from ..training.export import export_vessel_model
    from ..training.synthetic_data import randomised_case
    from ..training.train import TrainingConfig, prepare_pair, split_in_halves, train

    config = TrainingConfig(steps=args.steps, patch_size=tuple(args.patch), batch_size=args.batch_size,
                            learning_rate=args.learning_rate, channels=tuple(args.channels),
                            skeleton_recall_weight=args.skeleton_recall_weight, validate_every=args.validate_every,
                            checkpoint_every=args.checkpoint_every, seed=args.seed, device=args.device)
    if args.split and (len(args.pair) != 1 or args.synthetic):
        raise InputError("--split takes exactly one --pair", f"{len(args.pair)} pair(s) and {args.synthetic} "
                         "synthetic volume(s) were given", "give one labelled volume with --split, or leave it out")
    if len(args.pair) + args.synthetic < 2 and not args.split:
        raise InputError("Too little data to train and validate",
                         f"{len(args.pair)} pair(s) and {args.synthetic} synthetic volume(s)",
                         "give at least two (--pair IMAGE LABEL, --synthetic N); the last one validates")
    pairs = []
    with progress_bar("Preparing data") as report:
        total = len(args.pair) + args.synthetic
        for number, (image_path, label_path) in enumerate(args.pair):
            report(number / total, f"reading {image_path}")
            image, label = read_image(image_path), read_image(label_path)
            if args.split:
                halves = split_in_halves(image, label)
                pairs.extend(prepare_pair(*half, f"half {n + 1} of {image_path}") for n, half in enumerate(halves))
            else:
                pairs.append(prepare_pair(image, label, f"pair {number + 1}"))
        extent = (args.synthetic_size_mm,) * 3
        for number in range(args.synthetic):
            report((len(args.pair) + number) / total, f"synthetic tree {number + 1}")
            case = randomised_case(args.seed * 100_003 + number, extent_mm=extent)
            pairs.append(prepare_pair(case.image, case.label, f"synthetic tree {number + 1}"))
        report(1.0, "ready")
    with progress_bar("Training") as report:
        network, record = train(pairs[:-1], pairs[-1:], config, args.out, report, resume=args.resume,
                                initial_weights=args.from_model)
    entry = export_vessel_model(network, record, config, args.model_id, args.out, args.min_dice)
    print(f"model {entry['id']}: validation Dice {record.final_dice:.3f} after {config.steps} steps "
          f"({record.seconds:.0f} s); {args.out / entry['id'] / 'model.pt'} (sha256 {entry['sha256'][:12]}...), "
          f"catalog {args.out / 'catalog.json'}", file=sys.stdout)
    return 0
