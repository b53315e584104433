"""A box alone on every structure of the bundled abdominal CT: a check on other data.

The six shared lesions choose a box's parameters (``interactive_protocol.py --clicks 0``); this
checks whether a choice carries over to other boxed objects, organs, bones and vessels, which
the choice never saw. Every structure of ``Resources/SampleData/ts_ct_abdomen_3mm`` of at least
``--least`` voxels (50: 40 structures) is cropped with 30 mm around it (as the organ click
simulation in ``Testing/test_interactive_accuracy.py`` is), boxed by its extent plus 2 mm (the
protocol's box), and the box's mask alone is scored by Dice.

Run: ``python benchmarks/interactive_box_organs.py [--set field=value ...] [--json out.json]
[--before earlier.json]`` (``--set``: a RandomWalkerParameters field, e.g. ``box_fill=volume``;
``--before``: an earlier run's json, compared structure by structure).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segforge.image_io import read_image  # noqa: E402
from segforge.interactive.evaluation import box_prompt, random_walker_factory  # noqa: E402
from segforge.interactive.random_walker import RandomWalkerParameters  # noqa: E402
from segforge.interactive.simulation import crop_around, dice  # noqa: E402

SAMPLE = REPO / "Resources" / "SampleData" / "ts_ct_abdomen_3mm"
CROP_MM = 30.0


def parameters_from(settings: list[str]) -> RandomWalkerParameters:
    """The defaults with ``field=value`` settings applied (the value cast to the field's type)."""
    types = {f.name: type(getattr(RandomWalkerParameters(), f.name)) for f in fields(RandomWalkerParameters)}
    changes = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in types:
            raise SystemExit(f"unknown parameter {name!r}: one of {', '.join(types)}")
        changes[name] = types[name](value)
    return replace(RandomWalkerParameters(), **changes)


def box_alone(parameters: RandomWalkerParameters, least: int) -> dict[str, float]:
    """Each structure's name -> the Dice of a box alone around it."""
    image = read_image(SAMPLE / "example_ct_sm.nii.gz")
    labels = read_image(SAMPLE / "example_seg.nii.gz").array.astype(int)
    names = json.loads((SAMPLE / "label_names.json").read_text())["total"]
    counts = np.bincount(labels.ravel())
    factory = random_walker_factory(parameters)
    scores = {}
    for label in np.flatnonzero(counts >= least):
        if label == 0:
            continue
        cropped, reference = crop_around(image, labels == label, CROP_MM)
        session = factory(cropped)
        session.interact(box_prompt(cropped, reference))
        name = names.get(str(label), str(label))
        scores[name] = dice(session.mask, reference)
        print(f"{name:28s} {scores[name]:.3f}", flush=True)
    return scores


def compare(before: dict[str, float], after: dict[str, float], by: float = 0.05) -> str:
    """Mean and median before and after, and the structures that changed by more than ``by``."""
    common = [n for n in after if n in before]
    lines = [f"structures: {len(common)}",
             f"mean {np.mean([before[n] for n in common]):.3f} -> {np.mean([after[n] for n in common]):.3f}",
             f"median {np.median([before[n] for n in common]):.3f} -> {np.median([after[n] for n in common]):.3f}"]
    for name in common:
        if abs(after[name] - before[name]) > by:
            lines.append(f"  {name}: {before[name]:.3f} -> {after[name]:.3f}")
    changed = sum(abs(after[n] - before[n]) > 0.0005 for n in common)
    lines.append(f"changed at all (> 0.0005): {changed}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--least", type=int, default=50, help="the fewest voxels a structure needs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--before", type=Path, help="an earlier run's json to compare with")
    args = parser.parse_args()
    started = time.time()
    scores = box_alone(parameters_from(args.set), args.least)
    load = os.getloadavg()[0]
    print(f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {load:.1f}, {time.time() - started:.0f} s; settings: {args.set or 'defaults'}")
    print(f"{len(scores)} structures: mean {np.mean(list(scores.values())):.3f}, "
          f"median {np.median(list(scores.values())):.3f}")
    if args.before:
        print(compare(json.loads(args.before.read_text())["scores"], scores))
    if args.json:
        args.json.write_text(json.dumps({"settings": args.set, "scores": scores}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
