"""The default interactive backend: a random walker with an intensity prior, no weights needed.

Each interaction recomputes the mask from the whole prompt history, in three steps:

1. **Where is the object?** Around every positive click, the smoothed image is cut at a
   series of levels between the local background and the click's own intensity; the level
   kept is the one whose connected piece holding the click has the strongest mean contrast
   across its boundary (objects end where the intensity jumps most). A piece that reaches
   the search window's faces or holds a negative click is refused, so a threshold that
   leaks into the surroundings, or runs through a voxel the user said is outside, is not
   chosen. The window grows while the best piece keeps reaching its faces (a large object).
   The level comes from the unsmoothed voxels clicked, and only voxels like the clicked one
   seed, so a click on an object's rim (a pole on a thick slice) neither spills the piece
   over the rim nor seeds the outside. A piece that leaks at every level is an organ among
   tissue like it: its piece is then the tissue like the clicked voxels (no level means
   anything there), capped to a chunk around the click (the tissue beyond the cap is not
   taught as background, nor seeded as background on the walker's faces), unless the click
   sits beside the object found so far, where a chunk would spill over: then its seeds alone
   count (``chunk_model`` "threshold": the tissue above the first level that leaks, and seeds
   alone on a brighter object's rim too). A later
   click far from what the earlier prompts found says the object reaches at least that far,
   so its chunk is that large (bounded by the negative clicks), where the click lies in a
   blob's bulk (tissue like it fills the ball around it; a thin object reaches that far only
   along a line, and its chunk keeps the usual cap). A box's object is the part of
   its inside likelier the lesion's than its rim's, at the lowest likelihood ratio at which
   it stays inside the box when followed beyond it (tissue likelier inside only because the
   rim holds other tissue, such as the skull, runs on out of the box), with its other parts
   so enclosed, where these reach across the box; when no piece is clearly so (an isointense
   lesion: only specks of noise), that part is bounded by the ellipsoid inscribed in the box.
2. **What does it look like?** The intensity model is learned from these pieces (the
   lesion) against a shell around them and the negative clicks (its local surroundings),
   not from a few voxels under the click: a heterogeneous lesion's dim parts count as
   lesion, and a brighter neighbour outside the shell does not.
3. **Where exactly is the boundary?** Grady's random walker with priors, solved by
   conjugate gradients on a region a margin around the pieces: clicks are fixed seeds
   (negative ones with a wider radius, so they cut), the region's faces are background,
   edges conduct less where the smoothed intensity jumps, and every voxel is pulled
   towards the class its intensity resembles. The mask is the part connected to a
   positive click, with holes filled slice by slice on thick-slice images. With a box among
   the prompts, holes are filled in every plane along each axis (not across thick slices):
   a box is drawn around one lesion, whose mask holds its necrotic core even where the ring
   around the core opens in 3D; a hole holding a negative prompt's voxels stays open, and
   clicks alone keep the 3D fill. A click after a box changes only the tissue like it within
   its reach (a negative one's cut is not refilled by the box's object; a positive one adds
   the ball between it and the mask): the box already drew the object.

The result is a function of the prompts alone: undo, a rebuilt worker and the CLI all give
the same masks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import cg

from ..distance import distance_mm, within_mm
from ..errors import InputError
from ..image import Image, foreground_box
from ..progress import ProgressCallback
from .backends import MaskPatch
from .prompts import VoxelBox, VoxelPoint, VoxelPrompt, VoxelScribble

Box = tuple[slice, slice, slice]
_FACE_NEIGHBOURS = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])


@dataclass(frozen=True)
class RandomWalkerParameters:
    """Tuning of the default backend."""

    search_margin_mm: float = 40.0   # window around the prompts where the object is looked for, at first
    max_search_margin_mm: float = 100.0  # largest such window
    margin_mm: float = 6.0           # random-walker region: this far around the object found
    capped_mm: float = 20.0          # a piece that leaks at every level is kept this close to its click
    levels: int = 32                 # intensity levels tried between background and click
    smoothing_mm: float = 0.6        # Gaussian smoothing of the image (in-plane; not across thick slices)
    seed_radius_mm: float = 2.0      # a positive click fixes the voxels this close to it
    cut_radius_mm: float = 3.0       # a negative click fixes the voxels this close to it as background
    shell_mm: float = 5.0            # the surroundings the background model learns from
    locality_mm: float = 8.0         # a prompt's intensity model holds this far around its piece
    beta: float = 4.0                # edge sensitivity to intensity jumps (in units of the mean jump)
    prior_weight: float = 0.3        # pull towards the intensity model, against smoothness
    background_below: float = 0.05   # voxels this unlikely to be lesion (by intensity) are background seeds
    tolerance: float = 1e-3          # conjugate-gradient tolerance
    # a corrective click changes only the region around it: a negative one removes what lies no
    # farther from it than twice its depth in the mask ("reach"), or nearer to it than to the
    # positive prompts ("nearer"); "off": the walker's whole answer
    local_corrections: str = "reach"
    # size prior for a first click: a piece reaching farther from the click than this many
    # times the blob radius at the click (scale-normalised Laplacian of Gaussian, taken only
    # when its peak is clear of the noise and inside the scales tried) leaks; 0: off
    blob_reach: float = 0.0
    # a box's object: "core", the piece around the box's central third; "rim", the largest
    # connected part of the box's inside whose intensity is likelier inside the box (away from
    # its rim) than on its rim and just outside it
    box_model: str = "rim"
    box_rim_mm: float = 3.0          # the box's rim: this far inside its faces (and shell_mm outside)
    # a later positive click whose piece leaks at every level (no intensity edge: an isointense
    # object, an organ among its like) is capped at this many times its distance to the pieces
    # earlier prompts found, when farther than capped_mm (both lie in the object, so it reaches
    # at least that far), and to the voxels nearer to it than to any negative click; 0: capped_mm
    click_scale: float = 1.0
    click_scale_from: str = "pieces"  # the distance to the earlier pieces, or to the earlier "clicks"
    # a box's inside voxels are the lesion's where their intensity is this likely the inside's
    # rather than the rim's (0.5: likelier; 2/3: twice as likely)
    box_clear: float = 0.5
    # when no piece of a box's inside is clearly (twice as likely) the lesion's, the lesion is
    # isointense with its surroundings and the box's shape has to say where it is: "bounded",
    # the likelier part within the ellipsoid inscribed in the box (intensity the prior, as for
    # any object); "ellipsoid", that ellipsoid itself as the prior; "none": the likelier part
    box_shape: str = "bounded"
    # a click's piece that leaks at every level (no intensity edge): its chunk is the part near
    # the click of the tissue above the first level that leaks ("threshold"), or of the tissue
    # that looks like the clicked voxels, within three noise deviations ("like": the walker's
    # region then takes no background seed on its faces in that tissue)
    chunk_model: str = "like"
    # a later click's chunk as large as its distance (click_scale) assumes a blob: the click lies
    # in the object's bulk, where the tissue like it fills the ball around it (a blob's inside;
    # the sarcoma: 92-98 % of the ball of half capped_mm). A thin object among other tissue
    # fills less of it (the pancreas: 75 %): there the chunk keeps capped_mm. The share below
    # which it does; 0: always as large as the distance
    click_scale_fill: float = 0.9
    # a box's object where some piece is clearly the lesion's: the part likelier inside than on
    # the rim ("likelier"); or ("enclosed") that part at the lowest likelihood ratio (1 to 8, a
    # quarter doubling a step) whose piece, followed beyond the box, stays clear of the window's
    # faces (other than the image's border), with the other such parts of at least 1 % of the
    # inside, provided they reach across the box (to within its rim of every face of its inside:
    # a box is drawn around its object); else the likelier part
    box_level: str = "enclosed"
    # the holes filled in the answer to prompts that hold a box: "planes", those in any plane
    # along any axis (a box is drawn around one lesion, and a lesion's mask is solid: a GTV holds
    # its necrotic core, whose ring of uptake may open to the outside in 3D), but no plane across
    # thick slices (a hole there is a dent between two slices, not a core); "all_planes": those
    # too; "volume": the holes any answer gets (enclosed in 3D; per slice on thick-slice images).
    # Prompts without a box (clicks alone: an organ's sinus is no hole to fill) keep "volume"; a
    # hole holding a negative prompt's voxels is never filled
    box_fill: str = "planes"
    # a click after a box: "local", it changes only what it is evidence about, the tissue like the
    # voxel clicked within its reach (a negative one: twice its depth in the mask plus a voxel, as
    # any negative click's, and it removes that even where the box's object holds the walker to
    # the box's answer; a positive one: its distance to the mask, the ball in the missed part);
    # "walker": as any later click (a positive one adds the walker's new part connected to it, a
    # negative one removes what the walker lost within its reach)
    box_corrections: str = "local"

class RandomWalkerBackend:
    """The random-walker backend of one session."""

    name = "random-walker"
    warning: Optional[str] = None
    #: scikit-image's random walker and the pieces around it are NumPy/SciPy: the CPU, whatever
    #: device the session was asked for (summary.json records this, not the request)
    device = "cpu"

    def __init__(self, image: Image, parameters: RandomWalkerParameters = RandomWalkerParameters()) -> None:
        self.image = image
        self.parameters = parameters
        self._spacing = np.asarray(image.spacing[::-1], dtype=float)
        # thick slices: no smoothing or hole filling across them
        self._thick_axis = int(np.argmax(self._spacing)) if self._spacing.max() > 2 * self._spacing.min() else None
        self._pieces: dict[tuple, tuple[np.ndarray, bool]] = {}  # a cache: the result never depends on it

    def predict(self, prompts: Sequence[VoxelPrompt], current: np.ndarray,
                progress: ProgressCallback) -> MaskPatch:
        if not any(prompt.positive for prompt in prompts):
            raise InputError("The random-walker backend needs a positive prompt first",
                             "it learns the lesion's intensity from positive clicks, boxes or scribbles",
                             "add a positive click inside the lesion (press T to switch), then the negative one")
        progress(0.0, "Segmenting around the prompts")
        p = self.parameters
        margin = p.search_margin_mm
        while True:
            window = self._window(prompts, margin)
            view = _View(self, window, prompts)
            pieces, grow = view.objects(final=margin >= p.max_search_margin_mm)
            if not grow:
                break
            margin = min(2 * margin, p.max_search_margin_mm)
        box, mask = view.segment(pieces)
        if p.box_fill != "volume" and any(isinstance(q, VoxelBox) and q.positive for q in prompts):
            # a box says its lesion is one solid object, for every later prompt too: a scribble's
            # answer (taken whole) keeps the box's fill, a negative click's removes the hole it is in
            mask = view.solid(box, mask)
        if p.local_corrections != "off":
            box, mask = self._local(prompts, current, box, mask, view)
        return box, mask

    def _local(self, prompts: Sequence[VoxelPrompt], current: np.ndarray, box: Box, mask: np.ndarray,
               view: "_View") -> tuple[Box, np.ndarray]:
        """A corrective click changes only the region it is evidence about (the mask before it
        elsewhere): a positive one adds the new part connected to it and removes nothing; a
        negative one removes the lost part connected to it that lies within its reach (see
        ``local_corrections``), and what this cuts off from every positive prompt's seeds. After
        a box, a click changes only the tissue like it within its reach (``box_corrections``):
        the box's object holds the walker to the box's answer, so a negative click's cut was
        refilled, and a dim positive click's piece, bounded by the box, filled it. A first
        prompt, a box or a scribble is taken as the walker gives it."""
        last = prompts[-1]
        if len(prompts) < 2 or not isinstance(last, VoxelPoint) or current is None:
            return box, mask
        before_box = foreground_box(current)
        if before_box is None:
            return box, mask
        region = tuple(slice(min(a.start, b.start, k), max(a.stop, b.stop, k + 1))
                       for a, b, k in zip(box, before_box, last.kji))
        offset = np.array([r.start for r in region])
        before = current[region] != 0
        after = np.zeros(before.shape, bool)
        after[tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))] = mask != 0
        click = np.asarray(last.kji) - offset
        near = np.zeros(before.shape, bool)
        near[tuple(slice(max(c - 1, 0), c + 2) for c in click)] = True
        # after a box the click is evidence about the tissue like it around it only
        boxed = self.parameters.box_corrections == "local" and any(
            isinstance(q, VoxelBox) and q.positive for q in prompts[:-1])
        if last.positive:
            added = after & ~before
            if boxed:
                added &= self._boxed_evidence(region, before, click, view)
            result = before | _connected_to(added, near)
        else:
            seeds = np.zeros(before.shape, bool)  # the positive prompts' surviving seeds
            lo = np.array([w.start for w in view.window]) - offset
            anchors = view.anchors()
            target = tuple(slice(max(a, 0), min(a + n, m)) for a, n, m in zip(lo, anchors.shape, before.shape))
            seeds[target] = anchors[tuple(slice(t.start - a, t.stop - a) for t, a in zip(target, lo))]
            if not seeds.any():
                return region, np.zeros(before.shape, np.uint8)
            if boxed:
                # the box's object holds the walker to the box's answer (and the hole fill
                # closes a cut in it), so the click's own evidence goes, whatever the walker says
                lost = _connected_to(before & self._boxed_evidence(region, before, click, view), near)
            else:
                lost = _connected_to(before & ~after & self._reach(before, click, seeds), near)
            # what the removal cut off from every positive prompt goes too
            result = _connected_to(before & ~lost, seeds)
        return region, result.astype(np.uint8)  # type: ignore[return-value]

    def _reach(self, before: np.ndarray, click: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """What a negative click may remove (``local_corrections``): the voxels nearer to it than
        to every positive prompt's seeds ("nearer"), or no farther from it than twice its depth
        inside the mask, plus a voxel ("reach")."""
        point = np.zeros(before.shape, bool)
        point[tuple(click)] = True
        from_click = distance_mm(~point, self._spacing)
        if self.parameters.local_corrections == "nearer":
            # voxels nearer a positive prompt than the click are the positive prompts' evidence
            return from_click < distance_mm(~seeds, self._spacing)
        depth = 0.0
        if before[tuple(click)]:
            depth = float(distance_mm(np.pad(before, 1), self._spacing)[tuple(click + 1)])
        return from_click <= 2.0 * depth + float(self._spacing.max())

    def _boxed_evidence(self, region: Box, before: np.ndarray, click: np.ndarray, view: "_View") -> np.ndarray:
        """What a click after a box is evidence about: the voxels that look like the voxel
        clicked (within three noise deviations, unsmoothed: a click's seeds' rule), within its
        reach. A negative click's reach is that of any (twice its depth inside the mask, plus a
        voxel); a positive click's is its distance to the mask: the ball around it that lies in
        the part the mask missed (a click goes to that part's deepest voxel), not the tissue
        beyond it (a click on a small lesion's rim would otherwise add a ball of its
        surroundings, as large as the lesion)."""
        raw = self.image.array[region]
        inside = bool(before[tuple(click)])
        other = np.pad(before if inside else ~before, 1, constant_values=not inside)
        depth = float(distance_mm(other, self._spacing)[tuple(click + 1)])
        reach = 2.0 * depth + float(self._spacing.max()) if inside else depth
        # the ball of that radius, on the box around it only
        ball = tuple(slice(max(c - r, 0), min(c + r + 1, n))
                     for c, r, n in zip(click, np.floor(reach / self._spacing).astype(int), before.shape))
        axes = np.ogrid[ball]
        evidence = np.zeros(before.shape, bool)
        evidence[ball] = sum(((a - c) * s) ** 2 for a, c, s in zip(axes, click, self._spacing)) <= reach ** 2 + 1e-6
        evidence[ball] &= np.abs(raw[ball] - raw[tuple(click)]) <= 3.0 * view.noise
        return evidence

    def _window(self, prompts: Sequence[VoxelPrompt], margin_mm: float) -> Box:
        """Positive prompts' bounding box plus the margin (boxes: the box plus one voxel)."""
        shape = self.image.array.shape
        positives = [p for p in prompts if p.positive]
        boxes = [p for p in positives if isinstance(p, VoxelBox)]
        if boxes:
            pad = 1
            if self.parameters.box_model == "rim":  # the box's surroundings teach the background
                pad = np.maximum(np.ceil(self.parameters.shell_mm / self._spacing), 1).astype(int)
            lo = np.min([b.lo_kji for b in boxes], axis=0) - pad
            hi = np.max([b.hi_kji for b in boxes], axis=0) + pad
        else:
            points = np.concatenate([_prompt_voxels(p) for p in positives])
            pad = np.maximum(np.ceil(margin_mm / self._spacing), 2).astype(int)
            lo, hi = points.min(axis=0) - pad, points.max(axis=0) + pad + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


class _View:
    """The prompts and the smoothed image in one window."""

    def __init__(self, backend: RandomWalkerBackend, window: Box, prompts: Sequence[VoxelPrompt]) -> None:
        self.backend = backend
        self.p = backend.parameters
        self.window = window
        self.spacing = backend._spacing
        raw = backend.image.array[window].astype(np.float32)
        sigma = [0.0 if axis == backend._thick_axis else self.p.smoothing_mm / s for axis, s in enumerate(self.spacing)]
        self.values = ndimage.gaussian_filter(raw, sigma, mode="nearest") if max(sigma) > 0 else raw
        self.raw = raw
        self.noise = _noise(raw, backend._thick_axis)
        shape = raw.shape
        offset = np.array([s.start for s in window])
        self.foreground = np.zeros(shape, bool)
        self.background = np.zeros(shape, bool)
        self.allowed = np.ones(shape, bool)  # inside every positive box
        self.refused = np.zeros(shape, bool)  # what an object's piece may not hold (negative prompts)
        self.groups: list[np.ndarray] = []   # seed voxels of each positive prompt (a boolean mask each)
        self.box_groups: list[int] = []      # which groups are already a box's object (box_model "rim")
        self.caps: list[float] = []          # each group's cap (mm) when its piece leaks at every level
        self.clicks: list[Optional[np.ndarray]] = []  # each group's click (voxel), None: not a click
        self.shapes: list[Optional[np.ndarray]] = []  # a group's geometric prior, where intensity gives none
        self.negatives: list[np.ndarray] = []  # the negative clicks (voxels of the window)
        self.negative_voxels = np.zeros(shape, bool)  # what the negative prompts fix as background
        # at least the six face neighbours, so a coarse or noisy voxel never seeds alone
        seed_ball = np.unique(np.concatenate([_ball(self.p.seed_radius_mm, self.spacing), _FACE_NEIGHBOURS]), axis=0)
        cut_ball = _ball(self.p.cut_radius_mm, self.spacing)
        boxes = []
        order: list[int] = []  # each group's prompt's place in the history
        for place, prompt in enumerate(prompts):
            if isinstance(prompt, VoxelBox):
                sub = tuple(slice(max(lo - o, 0), max(hi - o, 0))
                            for lo, hi, o in zip(prompt.lo_kji, prompt.hi_kji, offset))
                boxes.append((place, sub))
                continue
            voxels = _prompt_voxels(prompt) - offset
            group = np.zeros(shape, bool)
            if isinstance(prompt, VoxelPoint):
                _stamp(group, voxels[0], seed_ball if prompt.positive else cut_ball)
                like = self._like_click(group, voxels[0])
                # a positive click seeds its own side of a nearby boundary only; a negative one
                # cuts its whole ball, but only its own side proves that a piece leaks
                if prompt.positive:
                    group = like
                else:
                    self.refused |= like
            else:
                _stamp(group, voxels, np.zeros((1, 3), int))
                if not prompt.positive:
                    self.refused |= group
            if prompt.positive:
                self.foreground |= group
                self.background &= ~group
                self.groups.append(group)
                order.append(place)
                self.caps.append(self.p.capped_mm)
                self.clicks.append(voxels[0] if isinstance(prompt, VoxelPoint) else None)
                self.shapes.append(None)
            else:
                if isinstance(prompt, VoxelPoint):
                    self.negatives.append(voxels[0])
                self.background |= group
                self.negative_voxels |= group
                self.foreground &= ~group
                self.groups = [g & ~group for g in self.groups]
        if boxes:
            self.allowed[:] = False
            for _, sub in boxes:
                self.allowed[sub] = True
            for place, sub in boxes:
                core = np.zeros(shape, bool)
                core[_box_core(sub)] = True
                prior = None
                if self.p.box_model == "rim":
                    core, prior = self._box_object(sub, core)
                    self.box_groups.append(len(self.groups))
                self.groups.append(core & ~self.background)
                self.caps.append(self.p.capped_mm)
                self.clicks.append(None)
                self.shapes.append(prior)
                order.append(place)
            self.background |= ~self.allowed
        # the groups in the order of their prompts: a click after a box is a later prompt, which
        # corrects the box's object (its chunk sized by its distance to it, its seeds alone beside it)
        ranked = [int(n) for n in np.argsort(order, kind="stable")]
        self.box_groups = [ranked.index(n) for n in self.box_groups]
        self.groups, self.caps, self.clicks, self.shapes = ([values[n] for n in ranked] for values in (
            self.groups, self.caps, self.clicks, self.shapes))
        # groups a later negative prompt emptied are dropped, with what was kept beside each
        kept = [n for n, group in enumerate(self.groups) if group.any()]
        self.box_groups = [kept.index(n) for n in self.box_groups if n in kept]
        self.groups, self.caps, self.clicks, self.shapes = ([values[n] for n in kept] for values in (
            self.groups, self.caps, self.clicks, self.shapes))
        self.first_is_point = isinstance(next((q for q in prompts if q.positive), None), VoxelPoint)
        # a piece reaching the window's faces leaks (also at the image's border: a lesion is
        # surrounded by other tissue, and a crop's border cuts through that tissue)
        self.faces = _faces(shape)
        if boxes:
            # and so does a click's piece reaching a box's walls: the box says its object lies
            # within it, clear of its walls (a box is drawn around its object), and a piece cut
            # off by them would look enclosed at every level (a dim click's fills the box)
            self.faces |= self.allowed & ~ndimage.binary_erosion(self.allowed, border_value=1)

    def _box_object(self, sub: tuple[slice, ...], core: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The largest connected part of the box's inside (clear of its rim) whose intensity is
        likelier there than on the rim and in a shell around the box (``core``: none), within the
        box's inscribed ellipsoid where no piece is clearly likelier inside; and the geometric
        prior that replaces intensity there (``box_shape`` "ellipsoid"; None: intensity holds)."""
        inside = np.zeros(self.values.shape, bool)
        inside[sub] = True
        rim = np.floor(self.p.box_rim_mm / self.spacing).astype(int)
        interior = np.zeros(self.values.shape, bool)
        interior[tuple(slice(s.start + r, max(s.stop - r, s.start + r + 1)) for s, r in zip(sub, rim))] = True
        interior &= inside
        surroundings = (_dilate_mm(inside, self.p.shell_mm, self.spacing) & ~interior)
        if not interior.any() or not surroundings.any():
            return core, None
        lesion = _density(self.values, self.values[interior])
        outside = _density(self.values, self.values[surroundings])
        if self.p.box_shape in ("ellipsoid", "bounded"):
            labels, count = ndimage.label(interior & (lesion > 2.0 * outside))
            if count == 0 or np.bincount(labels.ravel())[1:].max() < 0.01 * np.count_nonzero(interior):
                # no piece of the inside is clearly the lesion's, only specks of noise (under 1 %
                # of the inside: a lesion fills far more of the box drawn around it): the lesion
                # is isointense, and what the user drew is all there is to go on
                shape = _ellipsoid(sub, self.values.shape)
                if self.p.box_shape == "bounded":  # intensity's likelier part, within the ellipsoid
                    piece = _largest_piece(interior & (lesion > outside) & (shape > 0.5))
                    if piece is not None:
                        return piece, None
                return interior & (shape > 0.5), shape
        clear = self.p.box_clear / (1.0 - self.p.box_clear)
        piece = _largest_piece(interior & (lesion > clear * outside))
        if self.p.box_level == "enclosed" and piece is not None:
            enclosed = self._box_enclosed(interior, lesion / outside, clear, rim)
            if enclosed is not None:
                piece = enclosed
        return (core if piece is None else piece), None

    def _box_enclosed(self, interior: np.ndarray, ratio: np.ndarray, clear: float,
                      rim: np.ndarray) -> Optional[np.ndarray]:
        """The box's object at the lowest likelihood ratio whose largest piece, followed beyond
        the box, stays clear of the window's faces (tissue likelier inside than on the rim only
        because the rim holds other tissue runs on out of the box), with the other such parts
        of at least 1 % of the inside; None where no level gives one that reaches across the
        box (to within the rim of every face of its inside)."""
        faces = _faces(self.values.shape)
        inner = np.zeros(self.values.shape, bool)  # a box at the image's border may go on beyond it
        inner[tuple(slice(1 if w.start == 0 else 0, n - 1 if w.stop == m else n)
                    for w, n, m in zip(self.window, self.values.shape, self.backend.image.array.shape))] = True
        faces &= inner
        speck = 0.01 * np.count_nonzero(interior)
        hits = np.argwhere(interior)
        low, high = hits.min(axis=0), hits.max(axis=0)
        reach = np.maximum(rim, 1)
        for factor in clear * 2.0 ** (np.arange(13) / 4.0):
            likelier = ratio > factor
            piece = _largest_piece(interior & likelier)
            if piece is None or np.count_nonzero(piece) < speck:
                return None
            if np.any(_connected_to(likelier, piece) & faces):
                continue
            labels, _ = ndimage.label(interior & likelier & ~piece)
            sizes = np.bincount(labels.ravel())[1:]
            for index in np.flatnonzero(sizes >= speck):
                part = labels == index + 1
                if not np.any(_connected_to(likelier, part) & faces):
                    piece |= part
            found = np.argwhere(piece)
            if np.all(found.min(axis=0) <= low + reach) and np.all(found.max(axis=0) >= high - reach):
                return piece
            return None
        return None

    def _like_click(self, ball: np.ndarray, click: np.ndarray) -> np.ndarray:
        """The voxels of a click's ball that look like the voxel clicked (within three noise
        deviations, unsmoothed: smoothing makes a rim voxel look like its outside neighbours)
        and touch it: a click near a boundary seeds its own side only."""
        offset = np.array([s.start for s in self.window])
        value = self.backend.image.array[tuple(click + offset)]  # the click may lie outside the window
        similar = ball & (np.abs(self.raw - value) <= 3.0 * self.noise)
        if np.any((click < 0) | (click >= similar.shape)):
            return similar
        labels, _ = ndimage.label(similar)
        return labels == labels[tuple(click)]

    # -- step 1: the object around each positive prompt ----------------------------------------
    def objects(self, final: bool) -> tuple[list[np.ndarray], bool]:
        """The piece of every positive prompt, and whether the window should grow (the first
        prompt's most conservative piece already reaches its faces)."""
        pieces = []
        self.alike = np.zeros(self.values.shape, bool)  # tissue like a capped piece's, beyond its cap
        grow = False
        cache = self.backend._pieces
        for number, group in enumerate(self.groups):
            # a piece is a function of the window, its seeds and the background seeds: reuse it
            first = number == 0
            if not first and self.clicks[number] is not None and self.p.click_scale > 0 and pieces:
                # a later click lies in the object too, beyond what the earlier ones found: the
                # object reaches at least that far past it (the cap applies only to a piece that
                # leaks at every level, where intensity gives no edge)
                if self.p.click_scale_from == "clicks":
                    found = np.array([c for c in self.clicks[:number] if c is not None] or [self.clicks[number]])
                    found = found * self.spacing
                else:
                    found = np.argwhere(np.logical_or.reduce(pieces)) * self.spacing
                apart = float(np.min(np.linalg.norm(found - self.clicks[number] * self.spacing, axis=1)))
                self.caps[number] = max(self.p.capped_mm, self.p.click_scale * apart)
            key = (tuple((s.start, s.stop) for s in self.window), np.packbits(group).tobytes(),
                   np.packbits(self.background).tobytes(), np.packbits(self.refused).tobytes(), self.caps[number])
            if key not in cache:
                if len(cache) >= 64:
                    cache.pop(next(iter(cache)))
                cache[key] = self._piece(group, blob=first and self.first_is_point, cap=self.caps[number])
            if number in self.box_groups:  # a box's object is found already
                cache[key] = (group, False, None)
            piece, too_big, alike = cache[key]
            if alike is not None and not first and self._beside(group, pieces):
                # a leaking click beside the object found so far extends its boundary, where a
                # chunk of like tissue would spill over: its seeds alone
                piece, alike = group, None
            if alike is not None:
                self.alike |= alike
            grow |= too_big and first  # the first prompt sizes the window; a dim later one would only leak
            pieces.append(piece)
        return pieces, grow and not final

    def _beside(self, group: np.ndarray, pieces: list[np.ndarray]) -> bool:
        """Whether ``group`` lies within half a cap of one of ``pieces``."""
        near = _dilate_mm(group, self.p.capped_mm / 2, self.spacing)
        return any(np.any(near & piece) for piece in pieces)

    def _piece(self, group: np.ndarray, blob: bool = False,
               cap: Optional[float] = None) -> tuple[np.ndarray, bool, Optional[np.ndarray]]:
        """The connected piece around ``group`` at the level halfway between its own mean
        intensity and its surroundings' (iterated intermeans, locally), lowered no further
        than the piece stays clear of the window's faces and of negative prompts (and, with
        ``blob``, within ``blob_reach`` blob radii of the click)."""
        beyond, largest = None, np.inf
        if blob and self.p.blob_reach > 0:
            radius = self._blob_radius(group)
            if radius is not None:
                reach = self.p.blob_reach * radius
                beyond = ~_dilate_mm(group, reach, self.spacing)
                largest = 4.0 / 3.0 * np.pi * reach ** 3 / float(np.prod(self.spacing))  # voxels
        # the level comes from the unsmoothed voxels clicked, and a piece may start beside them:
        # on an object's rim (a pole on a thick slice) smoothing makes the clicked voxel look
        # like the outside, and a level taken there would let the piece spill over the rim
        level = float(np.median(self.raw[group]))
        anchor = ndimage.binary_dilation(group, np.ones((3, 3, 3), bool))
        inside = self.values[self.allowed]
        sign = 1.0 if level >= float(np.median(inside)) else -1.0
        values = sign * self.values
        level *= sign
        floor = float(np.percentile(sign * inside, 5))
        thresholds = np.linspace(level, floor, self.p.levels + 1)[1:]
        outcomes: dict[int, tuple[str, Optional[np.ndarray]]] = {}

        def outcome(index: int) -> tuple[str, Optional[np.ndarray]]:
            if index not in outcomes:
                piece = self._piece_above(values, thresholds[index], anchor)
                if piece is None:
                    kind = "none"
                elif beyond is not None and np.count_nonzero(piece) > largest:
                    kind = "too large"  # larger than the blob at the click allows
                elif np.any(piece & self.faces):
                    kind = "leaks"
                elif np.any(piece & self.refused):
                    kind = "refused"
                else:
                    midpoint = self._midpoint(values, piece)
                    kind = "crossed" if midpoint is not None and midpoint >= thresholds[index] else "grows"
                outcomes[index] = (kind, piece)
            return outcomes[index]

        stop = _first_stop(len(thresholds), lambda index: outcome(index)[0] not in ("none", "grows"))
        # the last piece before the stop that grew clear of everything (not the clicked voxels:
        # a rim voxel would teach the model the rim)
        grown = [outcomes[i][1] for i in sorted(outcomes) if (stop is None or i < stop) and outcomes[i][0] == "grows"]
        best = grown[-1] if grown else None
        kind, piece = outcome(stop) if stop is not None else ("end", None)
        if kind == "too large":  # the last piece that was not, or the first one cut at the blob's reach
            return (_connected_to(piece & ~beyond, anchor) | group if best is None else best), False, None
        if kind == "leaks":
            if best is None:  # leaks at every level
                if self.p.chunk_model == "like":
                    # no level gives an edge, so the first level that leaks says nothing about
                    # the object either (its piece is the part of the object's own noise above
                    # it: a sponge, whose holes taught the walker the object as background). Its
                    # tissue is what looks like the clicked voxels, as its seeds are: a band on
                    # both sides of the click's level, so a click on a brighter object's dim rim
                    # does not take that object (the threshold piece did: seeds alone, below)
                    piece = self._like_tissue(group)
                    if (cap is not None and cap > self.p.capped_mm
                            and self._fill(piece, group) < self.p.click_scale_fill):
                        # a click far from what the earlier prompts found, but not in a blob's
                        # bulk (a thin object: the object reaches that far only along a line)
                        cap = self.p.capped_mm
                elif self._on_rim(group, level, sign):
                    return group, True, None  # a click on a brighter object's dim rim: its seeds alone
                return self._capped(piece, group, cap), True, piece  # an organ-like object among its like
            return best, False, None
        if kind == "crossed":
            best = piece
        return (group if best is None else best), False, None

    def _blob_radius(self, group: np.ndarray) -> Optional[float]:
        """The radius (mm) of the blob at the centre of ``group``: sqrt(3) times the scale whose
        scale-normalised Laplacian of Gaussian, taken at that point, is strongest (sign: the
        click's contrast). None when the peak is not clearly (three noise deviations) above
        the noise, or lies at the smallest or largest scale tried (no blob of that size)."""
        centre = np.round(np.argwhere(group).mean(axis=0)).astype(int)
        value = float(self.raw[tuple(centre)])
        sign = 1.0 if value >= float(np.median(self.raw)) else -1.0
        smallest = 0.6 * float(self.spacing.max())  # a Gaussian this narrow is undersampled across slices
        scales = [s for s in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0) if s >= smallest]
        if len(scales) < 3:
            return None
        responses = []
        for scale in scales:
            reach = np.ceil(3.0 * scale / self.spacing).astype(int)
            lo, hi = np.maximum(centre - reach, 0), np.minimum(centre + reach + 1, self.raw.shape)
            crop = self.raw[tuple(slice(a, b) for a, b in zip(lo, hi))]
            axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, centre, self.spacing)]
            squared = sum(np.meshgrid(*[x ** 2 for x in axes], indexing="ij"))
            gauss = np.exp(-0.5 * squared / scale ** 2)
            gauss /= gauss.sum()
            kernel = gauss * (squared / scale ** 2 - 3.0)  # scale^2 times the Laplacian of the Gaussian
            kernel -= gauss * float(kernel.sum())          # a constant image gives no response
            responses.append(-sign * float(np.sum(kernel * crop)))
        best = int(np.argmax(responses))
        if best in (0, len(scales) - 1) or responses[best] < 3.0 * self.noise:
            return None
        return float(np.sqrt(3.0) * scales[best])

    def _like_tissue(self, group: np.ndarray) -> np.ndarray:
        """The voxels connected to ``group`` that look like its voxels: within three noise
        deviations of their median intensity (unsmoothed, as a click's seeds are chosen)."""
        level = float(np.median(self.raw[group]))
        like = (np.abs(self.raw - level) <= 3.0 * self.noise) & self.allowed
        return _connected_to(like | group, group)

    def _fill(self, like: np.ndarray, group: np.ndarray) -> float:
        """The share of the ball of half ``capped_mm`` around ``group`` (a click's seeds) that
        the tissue ``like`` them fills."""
        ball = _dilate_mm(group, self.p.capped_mm / 2, self.spacing)
        return float(np.count_nonzero(like & ball)) / max(float(np.count_nonzero(ball)), 1.0)

    def _on_rim(self, group: np.ndarray, level: float, sign: float) -> bool:
        """Whether a click lies on the dim rim of a brighter object (``sign`` -1: a darker one):
        voxels nearby are clearly (three noise deviations) brighter than its ``level``."""
        near = _dilate_mm(group, self.p.cut_radius_mm, self.spacing)
        return float(np.percentile(sign * self.raw[near], 90)) - level > 3.0 * self.noise

    def _capped(self, piece: np.ndarray, group: np.ndarray, cap: Optional[float] = None) -> np.ndarray:
        """The part of a leaking piece within ``capped_mm`` of the click, still connected to it:
        each click then adds a chunk of tissue like its own, and the random walker cuts it at
        the edges inside that chunk."""
        cap = self.p.capped_mm if cap is None else cap
        distance = distance_mm(~group, self.spacing)
        near = piece & (distance <= cap)
        if (cap > self.p.capped_mm or self.p.chunk_model == "like") and self.negatives:
            # a negative click bounds the object: the chunk keeps the voxels nearer to the click
            point = np.zeros(group.shape, bool)
            for voxel in self.negatives:
                if np.all((voxel >= 0) & (voxel < group.shape)):
                    point[tuple(voxel)] = True
            if point.any():
                near &= distance < distance_mm(~point, self.spacing)
        kept = _connected_to(near, group)
        return kept if kept.any() else group

    def _piece_above(self, values: np.ndarray, threshold: float, anchor: np.ndarray) -> Optional[np.ndarray]:
        """The connected parts of ``values > threshold`` (inside the boxes) that touch ``anchor``."""
        piece = _connected_to((values > threshold) & self.allowed, anchor)
        return piece if piece.any() else None

    def _midpoint(self, values: np.ndarray, piece: np.ndarray) -> Optional[float]:
        """Halfway between the piece's mean intensity and its surroundings' (None: no surroundings)."""
        shell = _dilate_mm(piece, self.p.shell_mm, self.spacing) & ~piece
        return 0.5 * (values[piece].mean() + values[shell].mean()) if shell.any() else None

    def solid(self, box: Box, mask: np.ndarray) -> np.ndarray:
        """An answer to prompts holding a box made solid: its holes in every plane along every
        axis filled (``box_fill``), except those holding a negative prompt's voxels (the user
        said they are outside)."""
        across_thick = self.p.box_fill == "all_planes" or self.backend._thick_axis is None
        axes = range(3) if across_thick else [self.backend._thick_axis]
        filled = _fill_planes(mask != 0, axes)
        added = filled & (mask == 0)
        if not added.any():
            return mask
        sub = tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, self.window))
        labels, _ = ndimage.label(added)
        refused = np.unique(labels[self.negative_voxels[sub] & added])
        filled &= ~np.isin(labels, refused[refused > 0])
        return filled.astype(np.uint8)

    def anchors(self) -> np.ndarray:
        """What the positive prompts say is the object: the clicks' and scribbles' seeds, and a
        box's object (which seeds nothing: the walker may still trim its rim), each less the
        negative prompts' voxels."""
        if not self.groups:
            return self.foreground
        return self.foreground | np.logical_or.reduce(self.groups)

    # -- steps 2 and 3 ------------------------------------------------------------------------------
    def segment(self, pieces: list[np.ndarray]) -> MaskPatch:
        p = self.p
        union = np.logical_or.reduce(pieces) | self.foreground
        pad = np.maximum(np.ceil(p.margin_mm / self.spacing), 1).astype(int)
        sub = _bounding_box(union, pad)
        if sub is None:  # the negative prompts took every positive one back: the segment is empty
            return tuple(self.window), np.zeros(tuple(w.stop - w.start for w in self.window), np.uint8)
        values = self.values[sub]
        foreground, background = self.foreground[sub].copy(), self.background[sub].copy()
        union = union[sub]
        alike = self.alike[sub]
        faces = _faces(values.shape) & ~foreground
        if p.chunk_model == "like":
            # the region's faces cut through the like tissue beyond a chunk's cap: nothing says
            # the object ends there, so they are no background seed (the region's margin bounds
            # how far past its chunk the walker may take it)
            faces &= ~alike
        background |= faces
        # background model: the surroundings of the pieces, away from any positive prompt
        near_prompt = _dilate_mm(foreground, p.locality_mm, self.spacing)
        shell = _dilate_mm(union, p.shell_mm, self.spacing) & ~union & ~near_prompt & ~alike
        background_density = _density(values, values[shell | background])
        prior = np.zeros(values.shape, np.float32)
        for piece, shape in zip(pieces, self.shapes):
            piece = piece[sub]
            if not piece.any():
                continue
            if shape is not None:
                np.maximum(prior, shape[sub], out=prior)
                continue
            distance = distance_mm(~piece, self.spacing)
            near = np.exp(-0.5 * (distance / p.locality_mm) ** 2)
            foreground_density = _density(values, values[piece])
            np.maximum(prior, near * foreground_density / (foreground_density + background_density), out=prior)
        background |= (prior < p.background_below) & ~foreground
        low, high = np.percentile(values, [1, 99])
        value_range = float(high - low) or 1.0
        probability = _solve(values / value_range, self.spacing, foreground, background, prior, p)
        mask = (probability > 0.5) & ~background | foreground
        mask = _connected_to(mask, self.anchors()[sub])
        mask = _fill_holes(mask, self.backend._thick_axis)
        box = tuple(slice(w.start + s.start, w.start + s.stop) for w, s in zip(self.window, sub))
        return box, mask.astype(np.uint8)  # type: ignore[return-value]


def _first_stop(count: int, stops, stride: int = 4) -> Optional[int]:
    """The first of ``range(count)`` for which ``stops`` holds, asking every ``stride``-th
    (and the last) first, then the ones between the last that did not stop and the first that
    did. A threshold piece grows as the level falls, so leaking, holding a negative prompt or
    outgrowing a blob, once true, stay true; the crossing of the intermeans midpoint is taken
    to do the same (a crossing that undoes itself within ``stride`` levels is passed over).
    Each question costs a distance transform of the piece's box: a large lesion asks a third."""
    coarse = list(range(stride - 1, count, stride))
    if not coarse or coarse[-1] != count - 1:
        coarse.append(count - 1)
    before = -1
    for index in coarse:
        if stops(index):
            return next((fine for fine in range(before + 1, index) if stops(fine)), index)
        before = index
    return None


def _noise(values: np.ndarray, thick_axis: Optional[int]) -> float:
    """The image noise's standard deviation, from the median jump between neighbours (edges,
    a minority of the jumps, barely move a median)."""
    jumps = [np.abs(np.diff(values, axis=axis)).ravel() for axis in range(3)
             if axis != thick_axis and values.shape[axis] > 1]
    if not jumps:
        return 1.0
    return float(np.median(np.concatenate(jumps))) / (0.6745 * np.sqrt(2.0)) or 1.0


def _dilate_mm(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """``mask`` grown by ``radius_mm``: a distance transform on the box around the mask, whose
    cost does not grow with the radius as a ball-shaped dilation's does."""
    reach = np.floor(radius_mm / spacing).astype(int)
    out = np.zeros_like(mask)
    box = _bounding_box(mask, reach)
    if box is not None:
        out[box] = within_mm(mask[box], radius_mm, spacing)
    return out


def _bounding_box(mask: np.ndarray, pad: Sequence[int]) -> Optional[tuple[slice, ...]]:
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(max(int(hits[0]) - int(pad[axis]), 0),
                         min(int(hits[-1]) + int(pad[axis]) + 1, mask.shape[axis])))
    return tuple(box)


def _fill_holes(mask: np.ndarray, thick_axis: Optional[int]) -> np.ndarray:
    """Holes enclosed in 3D, or on thick-slice images within each slice (a hole across thick
    slices is a dent between two of them)."""
    if thick_axis is None:
        return ndimage.binary_fill_holes(mask)
    return _fill_planes(mask, [thick_axis])


def _fill_planes(mask: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """``mask`` with the holes of every plane along each of ``axes`` filled, one axis after the
    other (a hole is background that the mask encloses within its plane)."""
    out = mask.copy()
    for axis in axes:
        # connected within the plane only: the array's faces along the axis are no way out
        structure = np.zeros((3,) * out.ndim, bool)
        structure[tuple(1 if a == axis else slice(None) for a in range(out.ndim))] = \
            ndimage.generate_binary_structure(out.ndim - 1, 1)
        out = ndimage.binary_fill_holes(out, structure)
    return out


def _prompt_voxels(prompt: VoxelPrompt) -> np.ndarray:
    if isinstance(prompt, VoxelPoint):
        return np.array([prompt.kji])
    if isinstance(prompt, VoxelScribble):
        return np.asarray(prompt.kji).reshape(-1, 3)
    return np.array([prompt.lo_kji, np.asarray(prompt.hi_kji) - 1])


def _faces(shape: tuple[int, ...]) -> np.ndarray:
    """The voxels on a box's faces (an axis of one or two voxels is all face)."""
    faces = np.ones(shape, bool)
    faces[tuple(slice(1, -1) if n > 2 else slice(None) for n in shape)] = False
    return faces


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Offsets (k, j, i) of the voxels within ``radius_mm`` of a voxel centre."""
    reach = np.floor(radius_mm / spacing).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    return grid[np.sum((grid * spacing) ** 2, axis=1) <= radius_mm ** 2]


def _stamp(target: np.ndarray, centres: np.ndarray, offsets: np.ndarray) -> None:
    """Set the voxels at ``centres`` (one or (N, 3)) plus each of ``offsets`` that fall inside ``target``."""
    voxels = (np.reshape(centres, (-1, 1, 3)) + offsets[None]).reshape(-1, 3)
    voxels = voxels[np.all((voxels >= 0) & (voxels < target.shape), axis=1)]
    target[tuple(voxels.T)] = True


def _box_core(box: tuple[slice, ...]) -> tuple[slice, ...]:
    """The central third of a box along every axis: where a lesion boxed by a user certainly is."""
    return tuple(slice(s.start + (s.stop - s.start) // 3, max(s.stop - (s.stop - s.start) // 3, s.start + 1))
                 for s in box)


def _largest_piece(mask: np.ndarray) -> Optional[np.ndarray]:
    """The largest connected piece (6-connected) of ``mask``; None when it is empty."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def _ellipsoid(box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The ellipsoid inscribed in ``box`` as a soft mask of ``shape``: 0.5 on its surface,
    its edge blurred over a tenth of its radii (a box is drawn around a lesion to within a
    few millimetres, not exactly)."""
    centre = [0.5 * (s.start + s.stop - 1) for s in box]
    radii = [max(0.5 * (s.stop - s.start), 0.5) for s in box]
    axes = np.ogrid[tuple(slice(0, n) for n in shape)]
    rho = np.sqrt(sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radii)))
    return (1.0 / (1.0 + np.exp(np.clip((rho - 1.0) / 0.1, -50, 50)))).astype(np.float32)


def _density(region: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The samples' intensity density (a smoothed histogram) at every voxel of ``region``."""
    low, high = np.percentile(region, [0.5, 99.5])
    value_range = float(high - low) or 1.0
    edges = np.linspace(float(region.min()), float(region.max()) + 1e-3, 129)
    width = edges[1] - edges[0]
    if samples.size == 0:
        return np.full(region.shape, 1.0 / value_range, np.float32)
    histogram, _ = np.histogram(samples, bins=edges, density=True)
    histogram = ndimage.gaussian_filter1d(histogram.astype(float), max(0.03 * value_range / width, 0.5))
    histogram += 1e-3 / value_range
    return histogram[np.clip(np.digitize(region, edges) - 1, 0, 127)].astype(np.float32)


def _solve(values: np.ndarray, spacing: np.ndarray, foreground: np.ndarray, background: np.ndarray,
           prior: np.ndarray, parameters: RandomWalkerParameters) -> np.ndarray:
    """Probability of reaching a lesion seed first: (L + gamma I) x = gamma * prior, seeds fixed.

    Only the free voxels' block of the system is assembled (an edge to a seed moves to the
    right-hand side): slicing it out of the whole Laplacian took most of a large region's time."""
    fixed = foreground | background
    result = foreground.astype(float)
    free_count = int(values.size - np.count_nonzero(fixed))
    if free_count == 0:
        return result
    number = np.full(values.shape, -1, np.int64)  # each free voxel's unknown
    number[~fixed] = np.arange(free_count)
    gamma = parameters.prior_weight
    degree = np.zeros(values.shape)
    right = gamma * prior.astype(float)
    rows, cols, data = [], [], []
    edges = []
    for axis in range(3):
        if values.shape[axis] < 2:
            continue
        low = tuple(slice(0, -1) if a == axis else slice(None) for a in range(3))
        high = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
        edges.append((low, high, values[high] - values[low], spacing.min() / spacing[axis]))
    mean_square = float(np.mean(np.concatenate([jump.ravel() for _, _, jump, _ in edges]) ** 2)) or 1.0
    for low, high, jump, scale in edges:
        weight = np.exp(-parameters.beta * jump.astype(float) ** 2 / mean_square) * scale + 1e-6
        degree[low] += weight
        degree[high] += weight
        # an edge to a seed: its value times the weight moves to the right-hand side
        right[low] += np.where(fixed[high], weight * result[high], 0.0)
        right[high] += np.where(fixed[low], weight * result[low], 0.0)
        both = ~fixed[low] & ~fixed[high]
        a, b, w = number[low][both], number[high][both], weight[both]
        rows += [a, b]
        cols += [b, a]
        data += [-w, -w]
    free = ~fixed
    diagonal = degree[free] + gamma
    count = np.arange(free_count)
    system = sparse.csr_matrix((np.concatenate(data + [diagonal]),
                                (np.concatenate(rows + [count]), np.concatenate(cols + [count]))),
                               shape=(free_count, free_count))
    preconditioner = sparse.diags(1.0 / diagonal)
    solution, _ = cg(system, right[free], x0=prior[free].astype(float), M=preconditioner,
                     rtol=parameters.tolerance, maxiter=500)
    result[free] = solution
    return result


def _connected_to(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected to a lesion seed (strays elsewhere in the region dropped)."""
    labels, _ = ndimage.label(mask)
    keep = np.unique(labels[seeds & mask])
    return np.isin(labels, keep[keep > 0])
