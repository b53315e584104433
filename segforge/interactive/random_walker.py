"""The default interactive backend: a random walker with an intensity prior, no weights needed.

Each interaction solves one sparse linear system on a region around the prompts (Grady's
random walker with priors): clicks and scribbles are fixed seeds, the region's faces and
negative prompts are background seeds, edges between neighbouring voxels conduct less
where the intensity jumps, and every voxel is pulled towards the class its intensity
resembles (a Gaussian learned from the positive prompts against a histogram of the
background samples). The region starts a margin around the prompts and grows while the
mask reaches its faces, so a large lesion is not clipped and a small one stays fast.
Everything is recomputed from the whole prompt history, so the result is a function of
the prompts alone: undo, a rebuilt worker and the CLI all give the same masks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import cg

from ..image import Image
from ..progress import ProgressCallback
from .backends import MaskPatch
from .prompts import VoxelBox, VoxelPoint, VoxelPrompt, VoxelScribble

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class RandomWalkerParameters:
    """Tuning of the default backend (the values the click simulation on real lesions chose)."""

    margin_mm: float = 15.0          # region around the prompts at the first try
    max_margin_mm: float = 60.0      # largest margin the region grows to
    seed_radius_mm: float = 1.5      # a click fixes the voxels this close to it
    sample_radius_mm: float = 3.0    # a positive click's intensity model learns from this close to it
    beta: float = 4.0                # edge sensitivity to intensity jumps (in units of the mean jump)
    prior_weight: float = 0.005      # pull towards the intensity model, against smoothness
    min_sd_fraction: float = 0.05    # the lesion model's spread, at least this part of the region's range
    spread_to_background: float = 0.3  # the lesion model's spread, at least this part of the lesion-background gap
    background_below: float = 0.1    # voxels this unlikely to be lesion (by intensity) are background seeds
    tolerance: float = 1e-3          # conjugate-gradient tolerance


@dataclass
class _Seeds:
    foreground: np.ndarray
    background: np.ndarray
    foreground_samples: list[np.ndarray]  # one group per positive prompt: the lesion model is their mixture
    background_samples: np.ndarray


class RandomWalkerBackend:
    """The random-walker backend of one session."""

    name = "random-walker"
    warning: Optional[str] = None

    def __init__(self, image: Image, parameters: RandomWalkerParameters = RandomWalkerParameters()) -> None:
        self.image = image
        self.parameters = parameters
        self._spacing = np.asarray(image.spacing[::-1], dtype=float)

    def predict(self, prompts: Sequence[VoxelPrompt], current: np.ndarray,
                progress: ProgressCallback) -> MaskPatch:
        margin = self.parameters.margin_mm
        while True:
            progress(0.0, "Segmenting around the prompts")
            box = self._region(prompts, margin)
            mask = self._segment(box, prompts)
            if margin >= self.parameters.max_margin_mm or not _touches_inner_faces(mask, box, current.shape):
                return box, mask
            margin = min(2 * margin, self.parameters.max_margin_mm)

    # -- region ---------------------------------------------------------------------------
    def _region(self, prompts: Sequence[VoxelPrompt], margin_mm: float) -> Box:
        """Positive prompts' bounding box plus the margin (boxes: the box plus one voxel)."""
        shape = self.image.array.shape
        positives = [p for p in prompts if p.positive]
        boxes = [p for p in positives if isinstance(p, VoxelBox)]
        if boxes:
            lo = np.min([b.lo_kji for b in boxes], axis=0) - 1
            hi = np.max([b.hi_kji for b in boxes], axis=0) + 1
        else:
            points = np.concatenate([_prompt_voxels(p) for p in positives])
            pad = np.maximum(np.ceil(margin_mm / self._spacing), 2).astype(int)
            lo, hi = points.min(axis=0) - pad, points.max(axis=0) + pad + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]

    # -- one solve --------------------------------------------------------------------------
    def _segment(self, box: Box, prompts: Sequence[VoxelPrompt]) -> np.ndarray:
        region = self.image.array[box].astype(np.float32)
        seeds = self._seeds(region, box, prompts)
        low, high = np.percentile(region, [1, 99])
        value_range = float(high - low) or 1.0
        prior = _foreground_probability(region, seeds, value_range, self.parameters)
        seeds.background |= (prior < self.parameters.background_below) & ~seeds.foreground
        probability = _solve(region / value_range, self._spacing, seeds, prior, self.parameters)
        mask = probability > 0.5
        mask &= ~seeds.background
        mask |= seeds.foreground
        return _connected_to(mask, seeds.foreground).astype(np.uint8)

    def _seeds(self, region: np.ndarray, box: Box, prompts: Sequence[VoxelPrompt]) -> _Seeds:
        offset = np.array([s.start for s in box])
        foreground = np.zeros(region.shape, bool)
        background = np.zeros(region.shape, bool)
        inside_boxes = np.zeros(region.shape, bool)
        radius = _ball(self.parameters.seed_radius_mm, self._spacing)
        reach = _ball(self.parameters.sample_radius_mm, self._spacing)
        foreground_samples = []
        for prompt in prompts:
            if isinstance(prompt, VoxelBox):
                sub = tuple(slice(max(lo - o, 0), max(hi - o, 0)) for lo, hi, o in zip(prompt.lo_kji, prompt.hi_kji, offset))
                inside_boxes[sub] = True
                foreground_samples.append(region[_box_core(sub)])
                continue
            voxels = _prompt_voxels(prompt) - offset
            target = foreground if prompt.positive else background
            if isinstance(prompt, VoxelPoint):
                _stamp(target, voxels[0], radius)
                if prompt.positive:
                    samples = np.zeros(region.shape, bool)
                    _stamp(samples, voxels[0], reach)
                    foreground_samples.append(region[samples])
            else:
                _stamp(target, voxels, np.zeros((1, 3), int))
                if prompt.positive:
                    foreground_samples.append(region[tuple(_inside_region(voxels, region.shape).T)])
        faces = np.ones(region.shape, bool)
        faces[tuple(slice(1, -1) if n > 2 else slice(0, 0) for n in region.shape)] = False
        if inside_boxes.any():
            background |= ~inside_boxes
        background |= faces & ~foreground
        foreground &= ~background  # a negative prompt wins over an older positive one at the same voxel
        background_samples = region[background]
        foreground_samples = [group for group in foreground_samples if group.size]
        return _Seeds(foreground, background, foreground_samples, background_samples)


def _prompt_voxels(prompt: VoxelPrompt) -> np.ndarray:
    if isinstance(prompt, VoxelPoint):
        return np.array([prompt.kji])
    if isinstance(prompt, VoxelScribble):
        return np.asarray(prompt.kji).reshape(-1, 3)
    return np.array([prompt.lo_kji, np.asarray(prompt.hi_kji) - 1])


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


def _inside_region(voxels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return voxels[np.all((voxels >= 0) & (voxels < np.asarray(shape)), axis=1)]


def _foreground_probability(region: np.ndarray, seeds: _Seeds, value_range: float,
                            parameters: RandomWalkerParameters) -> np.ndarray:
    """P(lesion | intensity): a Gaussian of the positive samples against the background samples' histogram."""
    background_median = float(np.median(seeds.background_samples))
    foreground = np.zeros(region.shape, np.float32)
    for samples in seeds.foreground_samples:
        mean = float(np.median(samples))
        sd = max(float(np.std(samples)), parameters.min_sd_fraction * value_range,
                 parameters.spread_to_background * abs(mean - background_median))
        np.maximum(foreground, np.exp(-0.5 * ((region - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), out=foreground)
    edges = np.linspace(float(region.min()), float(region.max()) + 1e-3, 129)
    histogram, _ = np.histogram(seeds.background_samples, bins=edges, density=True)
    width = edges[1] - edges[0]
    histogram = ndimage.gaussian_filter1d(histogram.astype(float), max(0.05 * value_range / width, 0.5))
    histogram += 1e-4 / value_range
    background = histogram[np.clip(np.digitize(region, edges) - 1, 0, len(histogram) - 1)]
    return foreground / (foreground + background)


def _solve(values: np.ndarray, spacing: np.ndarray, seeds: _Seeds, prior: np.ndarray,
           parameters: RandomWalkerParameters) -> np.ndarray:
    """Probability of reaching a lesion seed first: (L + gamma I) x = gamma * prior, seeds fixed."""
    count = values.size
    index = np.arange(count).reshape(values.shape)
    jumps, pairs = [], []
    for axis in range(3):
        if values.shape[axis] < 2:
            continue
        low = tuple(slice(0, -1) if a == axis else slice(None) for a in range(3))
        high = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
        jumps.append(((values[high] - values[low]).ravel(), spacing.min() / spacing[axis]))
        pairs.append((index[low].ravel(), index[high].ravel()))
    mean_square = float(np.mean(np.concatenate([j for j, _ in jumps]) ** 2)) or 1.0
    weights = [np.exp(-parameters.beta * j ** 2 / mean_square) * scale + 1e-6 for j, scale in jumps]
    rows = np.concatenate([a for a, _ in pairs] + [b for _, b in pairs])
    cols = np.concatenate([b for _, b in pairs] + [a for a, _ in pairs])
    data = np.concatenate(weights + weights)
    adjacency = sparse.csr_matrix((data, (rows, cols)), shape=(count, count))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    gamma = parameters.prior_weight
    system = sparse.diags(degree + gamma) - adjacency
    fixed = (seeds.foreground | seeds.background).ravel()
    value = seeds.foreground.ravel().astype(float)
    free = ~fixed
    result = value.copy()
    if free.any():
        a_free = system[free][:, free]
        b_free = gamma * prior.ravel()[free] - system[free][:, fixed] @ value[fixed]
        preconditioner = sparse.diags(1.0 / a_free.diagonal())
        solution, _ = cg(a_free, b_free, x0=prior.ravel()[free], M=preconditioner,
                         rtol=parameters.tolerance, maxiter=500)
        result[free] = solution
    return result.reshape(values.shape)


def _connected_to(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected to a lesion seed (strays elsewhere in the region dropped)."""
    labels, _ = ndimage.label(mask)
    keep = np.unique(labels[seeds & mask])
    return np.isin(labels, keep[keep > 0])


def _touches_inner_faces(mask: np.ndarray, box: Box, shape: Sequence[int]) -> bool:
    """True when the mask reaches the voxels next to a face of the region (the faces themselves
    are background seeds) that is not the image's own border."""
    for axis, s in enumerate(box):
        if mask.shape[axis] < 3:
            continue
        if s.start > 0 and mask.take(1, axis=axis).any():
            return True
        if s.stop < shape[axis] and mask.take(-2, axis=axis).any():
            return True
    return False
