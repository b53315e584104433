"""The honest protocol for SegInteractive's default backend (issue 17).

On the six shared lesions (``../shared/data/lesions``), for every parameter set of a small
declared grid: the click simulation (10 clicks) and a box alone. Then leave one case out:
for each case, the set that scores best (Dice after 5 clicks, less any drop over 0.05) on the
other five is chosen, and its figures on the held-out case are reported.

Run: ``python benchmarks/interactive_protocol.py [--grid default|small] [--box-then-clicks N] [--json out.json]``
(``default``: today's parameters alone, no choice made; ``small``, ``blob``, ``scale``, ``chunk``, ``fill``: the
declared grids below, chosen by the clicks; ``box``, ``box_level``, ``box_fill``: chosen by the box alone's Dice, run
them with ``--clicks 0``). ``--box-then-clicks N`` also runs the box followed by N corrective clicks
(the SAM-style workflow), reported in a table of its own and not used to choose.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segforge.interactive.evaluation import (  # noqa: E402
    CASES, box_score, box_then_clicks_table, evaluate_case, leave_one_case_out, load_case, markdown_table,
    parameter_grid, random_walker_factory, score, shared_lesions_root)
from segforge.interactive.random_walker import RandomWalkerParameters  # noqa: E402

#: The declared grids: how far a negative click reaches, and the edge sensitivity. Nothing
#: else is searched, and the grid is the same for every held-out case.
GRIDS = {
    "default": {},
    "small": {"local_corrections": ["reach", "nearer"], "beta": [4.0, 8.0]},
    # the first click's size prior (off, or 1.5 blob radii) with either correction reach
    "blob": {"local_corrections": ["reach", "nearer"], "blob_reach": [0.0, 1.5]},
    # a later click's size from its distance to what earlier clicks found: off, or 1x (the
    # default since issue 17's third pass)
    "scale": {"click_scale": [0.0, 1.0]},
    # the same, measured to the earlier pieces or to the earlier clicks
    "scale_from": {"click_scale": [0.0, 1.0], "click_scale_from": ["pieces", "clicks"]},
    # a click whose piece leaks at every level: its chunk from the first level that leaks, or
    # the tissue like the clicked voxels (the default since issue 17's organ pass)
    "chunk": {"chunk_model": ["threshold", "like"]},
    # a later click's chunk as large as its distance only where tissue like it fills the ball
    # around it (a blob's bulk; else the usual cap): always (0, before issue 17's fifth pass),
    # or where it fills at least eight or nine tenths (0.9: the default since that pass)
    "fill": {"click_scale_fill": [0.0, 0.8, 0.9]},
    # a box alone (run with --clicks 0, chosen by the box's Dice): the inside voxels that are
    # the lesion's (likelier, or twice as likely, inside than on the rim), and when none is
    # twice as likely the inscribed ellipsoid as the prior, or as the bound of the likelier part
    "box": {"box_clear": [0.5, 0.667], "box_shape": ["none", "ellipsoid", "bounded"]},
    # a box's object: the likelier part, or that part at the lowest ratio whose pieces stay in
    # the box and reach across it (run with --clicks 0; `enclosed`: the default since
    # issue 17's fifth pass)
    "box_level": {"box_level": ["likelier", "enclosed"]},
    # a box's answer: its holes enclosed in 3D filled, as any answer's, or those in any plane
    # along any axis too, across thick slices or not (run with --clicks 0; `planes`, not across
    # them: the default since issue 17's sixth pass)
    "box_fill": {"box_fill": ["volume", "all_planes", "planes"]},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default")
    parser.add_argument("--cases", nargs="*", help="case names (default: all six)")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--box-then-clicks", type=int, default=0, metavar="N",
                        help="also the box followed by N corrective clicks (reported apart, not used to choose)")
    args = parser.parse_args()
    root = shared_lesions_root(REPO)
    if not root.is_dir():
        print(f"no shared lesions at {root}")
        return 1
    cases = [(f, n) for f, n in CASES if not args.cases or n in args.cases]
    grid = parameter_grid(RandomWalkerParameters(), GRIDS[args.grid])
    results: dict = {name: {} for name in grid}
    started = time.time()
    for folder, case in cases:
        image, reference = load_case(root, folder, case)
        for name, parameters in grid.items():
            result = evaluate_case(case, image, reference, random_walker_factory(parameters), clicks=args.clicks,
                                    box_then_clicks=args.box_then_clicks)
            results[name][case] = result
            print(f"{case:11s} {name:28s} dice {' '.join(f'{d:.2f}' for d in result.dice)} "
                  f"box {result.box_dice:.3f} drop {result.largest_drop:.2f} "
                  f"median {result.median_seconds:.2f}s"
                  + (f" box+clicks {' '.join(f'{d:.3f}' for d in result.box_clicks)}" if result.box_clicks else ""),
                  flush=True)
    load = os.getloadavg()
    header = (f"{datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, load average {load[0]:.1f} during the run, {time.time() - started:.0f} s")
    print("\n" + header)
    for name in grid:
        print(f"\n### parameters: {name}\n")
        print(markdown_table([(c, results[name][c]) for _, c in cases]))
        if args.box_then_clicks:
            print(f"\nbox then {args.box_then_clicks} clicks:\n")
            print(box_then_clicks_table([(c, results[name][c]) for _, c in cases]))
    by = box_score if args.clicks == 0 else score
    if len(grid) > 1:
        chosen = leave_one_case_out(results, by)
        print("\n### leave one case out\n")
        print(markdown_table([(c, chosen[c][1]) for _, c in cases], {c: chosen[c][0] for _, c in cases}))
    if args.json:
        args.json.write_text(json.dumps({
            "header": header, "grid": GRIDS[args.grid],
            "results": {n: {c: r.to_json() for c, r in rs.items()} for n, rs in results.items()},
            "loco": ({c: {"parameters": s, **r.to_json()} for c, (s, r) in leave_one_case_out(results, by).items()}
                     if len(grid) > 1 else None)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
