"""Domain-randomised training volumes built on the project's synthetic vessel trees.

Why: a vessel network trained on synthetic trees transfers to real scans only if it never
learns the synthetic look (vesselFM's lesson): so every case draws its own contrast
(bright or dark vessels), textured background, neighbouring bright blobs (heart chambers,
bone), smooth bias field, noise, blur and grid (anisotropic spacing, oblique direction).
What stays fixed is the geometry: the label is the tree rasterised by
:func:`segforge.vessel.synthetic.random_tree` on the very grid of the image, so image and
label can never disagree on where a voxel lies.

Partial volume: the vessel's share of each voxel is the label smoothed by half a voxel
(a blurred edge, not an exact area fraction), mixed linearly between vessel and background.

Deterministic for a seed; numpy and scipy only (no torch), so a data loader's worker
processes can call it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..image import Image
from ..vessel.synthetic import make_grid, random_tree


@dataclass(frozen=True)
class RandomisedCase:
    """One training pair on one grid, and what was drawn for it (for tests and records)."""

    image: Image  # float32 intensities
    label: Image  # uint8, 1 = vessel
    bright_vessels: bool
    blobs: int
    spacing: tuple[float, float, float]
    oblique: bool
    tree_parameters: dict  # random_tree's keyword arguments, to draw the same tree again


def randomised_case(seed: int, extent_mm: Sequence[float] = (48.0, 48.0, 48.0),
                    spacing_range_mm: tuple[float, float] = (0.6, 1.0), max_anisotropy: float = 3.0,
                    oblique_probability: float = 0.5, generations: Optional[int] = None) -> RandomisedCase:
    """A random vessel tree and a randomised image of it on a random grid (see module docstring)."""
    low, high = spacing_range_mm
    if not (0 < low <= high) or max_anisotropy < 1 or len(extent_mm) != 3 or min(extent_mm) <= 0:
        raise InputError("The synthetic data settings are invalid",
                         f"extent {tuple(extent_mm)}, spacing {spacing_range_mm}, anisotropy {max_anisotropy}",
                         "give a positive extent, 0 < smallest spacing <= largest, anisotropy >= 1")
    rng = np.random.default_rng(seed)
    base = rng.uniform(low, high)
    spacing = [base, base, base]
    if rng.random() < 0.5:  # thick slices along k, as CT/MR often are
        spacing[2] = base * rng.uniform(1.0, max_anisotropy)
    oblique = bool(rng.random() < oblique_probability)
    direction = Rotation.random(random_state=rng).as_matrix() if oblique else np.eye(3)
    grid = make_grid(extent_mm, spacing=spacing, direction_lps=direction)
    extent = float(min(extent_mm))
    tree_parameters = dict(generations=int(generations or rng.integers(3, 6)),
                           root_radius_mm=extent * rng.uniform(0.05, 0.09), root_length_mm=extent * 0.5,
                           seed=int(rng.integers(2 ** 31)), asymmetry=rng.uniform(0, 0.3))
    tree = random_tree(grid, **tree_parameters)
    label = (np.asarray(tree.mask.array) > 0).astype(np.uint8)
    spacing_kji = np.asarray(grid.spacing[::-1])

    background = _texture(label.shape, spacing_kji, rng)
    bright = bool(rng.random() < 0.7)  # contrast-enhanced vessels are bright more often than not
    contrast = rng.uniform(0.4, 1.0) * (1 if bright else -1)
    image = background.copy()
    blobs = int(rng.integers(0, 4))
    for _ in range(blobs):
        # brighter than bright vessels (a contrast-filled heart chamber, bone), or bright beside dark ones
        level = contrast + rng.uniform(0.3, 0.8) if bright else rng.uniform(0.5, 1.5)
        inside = _ellipsoid(label.shape, spacing_kji, rng, extent)
        image = image * (1 - inside) + (level + 0.3 * background) * inside
    share = ndimage.gaussian_filter(label.astype(np.float32), 0.5)
    image = image * (1 - share) + (contrast + 0.2 * background) * share
    image *= _bias_field(label.shape, rng)
    blur = rng.uniform(0, 0.8)
    if blur > 0.05:
        image = ndimage.gaussian_filter(image, blur)
    image += rng.normal(0, rng.uniform(0.02, 0.15) * abs(contrast), label.shape)
    return RandomisedCase(grid.with_array(image.astype(np.float32)), grid.with_array(label), bright, blobs,
                          tuple(float(s) for s in grid.spacing), oblique, tree_parameters)


def _texture(shape: tuple[int, ...], spacing_kji: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smoothed noise at two scales (a few mm and a few cm) around a random level."""
    texture = np.full(shape, rng.uniform(-0.3, 0.3), np.float32)
    for scale_mm, amount in ((rng.uniform(1.5, 4), rng.uniform(0, 0.15)), (rng.uniform(8, 20), rng.uniform(0, 0.3))):
        field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), scale_mm / spacing_kji)
        texture += amount * field / (field.std() + 1e-6)
    return texture


def _ellipsoid(shape: tuple[int, ...], spacing_kji: np.ndarray, rng: np.random.Generator,
               extent_mm: float) -> np.ndarray:
    """A soft-edged ellipsoid (0..1) of random size and place."""
    centre = rng.uniform(0, 1, 3) * np.asarray(shape)
    radii_mm = rng.uniform(0.1, 0.3, 3) * extent_mm
    kji = np.indices(shape, dtype=np.float32)
    distance = np.sqrt(sum(((kji[a] - centre[a]) * spacing_kji[a] / radii_mm[a]) ** 2 for a in range(3)))
    return np.clip((1.0 - distance) * radii_mm.min() / max(spacing_kji.min(), 1e-6), 0, 1).astype(np.float32)


def _bias_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field exp(a quadratic in the voxel position), up to about +-30 %."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    k, j, i = np.meshgrid(*axes, indexing="ij")
    strength = rng.uniform(0, 0.3)
    terms = [k, j, i, k * j, j * i, k * i, k * k, j * j, i * i]
    log_field = sum(c * t for c, t in zip(rng.normal(0, 1, len(terms)), terms))
    log_field *= strength / (np.abs(log_field).max() + 1e-6)
    return np.exp(log_field).astype(np.float32)
