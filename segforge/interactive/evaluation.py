"""The honest protocol for an interactive backend: the click simulation on real lesions, with
parameters chosen on some cases and reported on the others (leave one case out).

For one case and one parameter set, :func:`evaluate_case` runs the standard click simulation
(:mod:`segforge.interactive.simulation`: first click at the lesion's deepest point, each next
one at the deepest point of the largest error region) and reports Dice after 1, 3, 5 and 10
clicks, clicks to 85 % and 90 %, the largest drop any single click causes, and the Dice of a
box alone (the lesion's bounding box grown by ``BOX_MARGIN_MM``, as a user would draw it).
With ``box_then_clicks`` it also runs that box followed by corrective clicks (the click rule
above), the SAM-style workflow: Dice after the box and after each click, and the largest drop
a click after the box causes. That table is reported beside the others and takes no part in
choosing parameters (:func:`score` is unchanged).

:func:`leave_one_case_out` takes every case's result for every parameter set of a small,
declared grid and, for each case, picks the set that scores best on the *other* cases
(:func:`score`), then reports that set's result on the held-out case. The held-out case's
own result never takes part in choosing its parameters.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..image import Image, foreground_box
from .prompts import BoxPrompt
from .random_walker import RandomWalkerBackend, RandomWalkerParameters
from .session import InteractiveSession
from .simulation import dice, simulate_clicks, voxel_center_lps

#: The six shared lesions (``../shared/data/lesions``): folder and case name.
CASES: tuple[tuple[str, str], ...] = (
    ("pyradiomics", "lung1"),
    ("pyradiomics", "brain1"),
    ("open_ms_data", "ms07_flair"),
    ("tcia_sarcoma", "sts001_ct"),
    ("tcia_sarcoma", "sts001_mr"),
    ("tcia_sarcoma", "sts001_pet"),
)
CLICKS = 10
BOX_MARGIN_MM = 2.0  # the box a user draws: the lesion's extent plus this much on every side
REPORTED_CLICKS = (1, 3, 5, 10)


def shared_lesions_root(repo: Optional[Path] = None) -> Path:
    """Where the shared lesions live: ``<repo>/../shared/data/lesions``."""
    repo = repo or Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "lesions"


def load_case(root: Path, folder: str, name: str) -> tuple[Image, np.ndarray]:
    from ..image_io import read_image

    image = read_image(root / folder / f"{name}_image.nrrd")
    reference = read_image(root / folder / f"{name}_label.nrrd").array > 0
    return image, reference


@dataclass
class CaseResult:
    """One case under one parameter set."""

    case: str
    dice: list[float] = field(default_factory=list)   # after each click
    seconds: list[float] = field(default_factory=list)  # per click
    box_dice: Optional[float] = None
    box_seconds: Optional[float] = None
    box_clicks: list[float] = field(default_factory=list)  # box then clicks: Dice after the box, then each click

    def dice_after(self, clicks: int) -> float:
        if not self.dice:
            return 0.0
        return self.dice[min(clicks, len(self.dice)) - 1]

    def clicks_to(self, target: float) -> Optional[int]:
        return next((n + 1 for n, d in enumerate(self.dice) if d >= target), None)

    @property
    def largest_drop(self) -> float:
        """The most Dice any single click took away (0 when no click lowered it)."""
        return _largest_drop(self.dice)

    @property
    def box_clicks_drop(self) -> float:
        """The most Dice any click after the box took away (0 when none lowered it)."""
        return _largest_drop(self.box_clicks)

    def box_clicks_after(self, clicks: int) -> float:
        """Dice after the box and ``clicks`` more clicks (the last if it stopped early: exact)."""
        return self.box_clicks[min(clicks, len(self.box_clicks) - 1)] if self.box_clicks else 0.0

    @property
    def median_seconds(self) -> float:
        return float(np.median(self.seconds)) if self.seconds else float("nan")

    def to_json(self) -> dict:
        out = asdict(self)
        out.update(largest_drop=self.largest_drop, median_seconds=self.median_seconds,
                   box_clicks_drop=self.box_clicks_drop,
                   clicks_to_85=self.clicks_to(0.85), clicks_to_90=self.clicks_to(0.90))
        return out


SessionFactory = Callable[[Image], InteractiveSession]


def random_walker_factory(parameters: RandomWalkerParameters) -> SessionFactory:
    """Sessions of the random-walker backend with ``parameters`` (not the defaults)."""
    def make(image: Image) -> InteractiveSession:
        session = InteractiveSession(image, "random-walker")
        session._backend = RandomWalkerBackend(image, parameters)
        return session
    return make


def box_prompt(image: Image, reference: np.ndarray, margin_mm: float = BOX_MARGIN_MM) -> BoxPrompt:
    """The box a user draws around the lesion: its voxels' extent plus ``margin_mm``."""
    box = foreground_box(reference)
    if box is None:
        raise ValueError("the reference mask is empty")
    corners = np.array([voxel_center_lps(image, (k, j, i))
                        for k in (box[0].start, box[0].stop - 1)
                        for j in (box[1].start, box[1].stop - 1)
                        for i in (box[2].start, box[2].stop - 1)])
    low, high = corners.min(axis=0) - margin_mm, corners.max(axis=0) + margin_mm
    return BoxPrompt(tuple(float(v) for v in low), tuple(float(v) for v in high))  # type: ignore[arg-type]


def _largest_drop(dice: Sequence[float]) -> float:
    """The most Dice one step of ``dice`` took away (0 when none lowered it)."""
    return max([0.0] + [a - b for a, b in zip(dice, dice[1:])])


def evaluate_case(name: str, image: Image, reference: np.ndarray, factory: SessionFactory,
                  clicks: int = CLICKS, box: bool = True, box_then_clicks: int = 0) -> CaseResult:
    """The click simulation and the box alone on one case; with ``box_then_clicks``, the box
    followed by that many corrective clicks too."""
    simulation = simulate_clicks(image, reference, clicks=clicks, session_factory=factory)
    result = CaseResult(name, list(simulation.dice), list(simulation.seconds))
    if box_then_clicks > 0:
        boxed = simulate_clicks(image, reference, clicks=box_then_clicks, session_factory=factory,
                                first=box_prompt(image, reference))
        result.box_clicks = boxed.dice
        if box:  # its first step is the box alone
            result.box_dice, result.box_seconds = boxed.dice[0], boxed.seconds[0]
            return result
    if box:
        session = factory(image)
        start = time.perf_counter()
        session.interact(box_prompt(image, reference))
        result.box_seconds = time.perf_counter() - start
        result.box_dice = dice(session.mask, reference)
    return result


def score(result: CaseResult) -> float:
    """What parameters are chosen by: Dice after 5 clicks, less any drop beyond 0.05."""
    return result.dice_after(5) - max(0.0, result.largest_drop - 0.05)


def box_score(result: CaseResult) -> float:
    """What a box's parameters are chosen by: the Dice of the box alone."""
    return 0.0 if result.box_dice is None else result.box_dice


def leave_one_case_out(results: Mapping[str, Mapping[str, CaseResult]],
                       by: Callable[[CaseResult], float] = score) -> dict[str, tuple[str, CaseResult]]:
    """``results[parameter set][case]`` -> for each case, the set chosen on the others (by
    ``by``: :func:`score` for clicks, :func:`box_score` for a box) and its result on the case.
    Ties go to the set declared first."""
    sets = list(results)
    cases = list(next(iter(results.values())))
    chosen = {}
    for held_out in cases:
        others = [c for c in cases if c != held_out]
        best = max(sets, key=lambda s: (float(np.mean([by(results[s][c]) for c in others])), -sets.index(s)))
        chosen[held_out] = (best, results[best][held_out])
    return chosen


def parameter_grid(base: RandomWalkerParameters,
                   axes: Mapping[str, Sequence[object]]) -> dict[str, RandomWalkerParameters]:
    """Every combination of ``axes`` (field -> values) applied to ``base``, named by its values."""
    grid = {"default": base} if not axes else {}
    names = list(axes)
    combos: list[dict] = [{}]
    for key in names:
        combos = [{**c, key: v} for c in combos for v in axes[key]]
    for combo in combos:
        if combo:
            grid[",".join(f"{k}={v}" for k, v in combo.items())] = replace(base, **combo)
    return grid


def markdown_table(rows: Sequence[tuple[str, CaseResult]], chosen: Optional[Mapping[str, str]] = None) -> str:
    """The per-case table: Dice after 1/3/5/10, clicks to 85/90 %, largest drop, box alone, s/click."""
    head = "| case | " + ("parameters (chosen on the other five) | " if chosen else "") + \
        "Dice after 1 | 3 | 5 | 10 | clicks to 85 % | to 90 % | largest drop | box alone | median s/click |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for label, r in rows:
        after = " | ".join(f"{r.dice_after(n):.3f}" for n in REPORTED_CLICKS)
        box = "—" if r.box_dice is None else f"{r.box_dice:.3f}"
        param = f"{chosen[label]} | " if chosen else ""
        lines.append(f"| {label} | {param}{after} | {r.clicks_to(0.85) or '—'} | {r.clicks_to(0.90) or '—'} | "
                     f"{r.largest_drop:.3f} | {box} | {r.median_seconds:.3f} |")
    if rows:
        mean = " | ".join(f"{np.mean([r.dice_after(n) for _, r in rows]):.3f}" for n in REPORTED_CLICKS)
        boxes = [r.box_dice for _, r in rows if r.box_dice is not None]
        lines.append(f"| **mean** | {'| ' if chosen else ''}{mean} | | | "
                     f"{max(r.largest_drop for _, r in rows):.3f} (max) | "
                     f"{np.mean(boxes) if boxes else float('nan'):.3f} | "
                     f"{np.median([s for _, r in rows for s in r.seconds]):.3f} |")
    return "\n".join(lines)


BOX_THEN_REPORTED = (1, 3, 5)


def box_then_clicks_table(rows: Sequence[tuple[str, CaseResult]]) -> str:
    """Box then clicks, per case: Dice after the box, after 1/3/5 more clicks, the largest drop
    a click caused, and whether the last is at least the box's."""
    head = "| case | box | +1 | +3 | +5 | largest drop | last >= box |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for label, r in rows:
        after = " | ".join(f"{r.box_clicks_after(n):.3f}" for n in (0,) + BOX_THEN_REPORTED)
        last = "yes" if r.box_clicks and r.box_clicks[-1] >= r.box_clicks[0] else "no"
        lines.append(f"| {label} | {after} | {r.box_clicks_drop:.3f} | {last} |")
    if rows:
        mean = " | ".join(f"{np.mean([r.box_clicks_after(n) for _, r in rows]):.3f}" for n in (0,) + BOX_THEN_REPORTED)
        lines.append(f"| **mean** | {mean} | {max(r.box_clicks_drop for _, r in rows):.3f} (max) | |")
    return "\n".join(lines)
