"""Multi-scale Hessian vesselness (Frangi or Sato) in torch, and the vessel mask it gives.

Why it is built this way:

- torch runs the same code on CPU and CUDA (``parameters.device``); the volume is
  filtered in slabs with bounded memory (:mod:`segforge.vessel.slabs`).
- torch and scipy are imported on first use, so ``import segforge.vessel`` (a Slicer
  module's Logic does it) works before Slicer has installed torch.
- Progress reaches the callback several times a second, and a callback that raises
  ``Cancelled`` stops the filter within a fraction of a second.

Scales are vessel radii in millimetres (see :class:`VesselMaskParameters`); the
response is the maximum over scales of the scale-normalised measure.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Optional

import numpy as np

from ..errors import InputError
from ..image import Image, require_3d_volume
from ..progress import ProgressCallback, no_progress, report_while, sub_progress
from .parameters import VesselMaskParameters

__all__ = ["VesselMaskParameters", "vesselness", "vessel_mask"]


def vesselness(image: Image, parameters: VesselMaskParameters = VesselMaskParameters(),
               progress: Optional[ProgressCallback] = None, *, chunk_voxels: Optional[int] = None) -> Image:
    """The maximum scale-normalised vesselness over the parameters' radii (float32 Image).

    ``chunk_voxels`` bounds the output voxels per slab (default: cache-sized on CPU,
    memory-sized on CUDA); the result does not depend on it. Raises MemoryError when the
    machine (or GPU) cannot hold one slab's work.
    """
    require_3d_volume(image)
    report = progress or no_progress
    report(0.0, "Vesselness: starting (the first run loads torch, a few seconds)")
    from .slabs import filter_volume  # torch is imported on first use, not with the package

    gamma = parameters.gamma if parameters.gamma is not None else structureness_gamma(image.array)
    response = filter_volume(image, parameters, gamma, hessian_floor(image.array), report, chunk_voxels)
    return image.with_array(response)


def structureness_gamma(array: np.ndarray) -> float:
    """Frangi's c: half the intensity span that matters, so the measure ignores noise.

    Taken from the 1st-99th percentile span of a strided sample (fast on big volumes).
    """
    sample = array[:: max(1, array.shape[0] // 32), ::4, ::4].astype(np.float32)
    low, high = np.percentile(sample, [1.0, 99.0])
    return max(float(high - low) / 2.0, 1e-6)


def hessian_floor(array: np.ndarray) -> float:
    """The Hessian norm below which a response is float32 rounding noise, not structure.

    Differences of smoothed float32 values carry errors near 1e-7 of the intensities'
    magnitude, amplified by the difference stencil and the sigma^2 normalisation; 1e-4
    of the largest magnitude stays above that and far below any visible vessel.
    """
    sample = array[:: max(1, array.shape[0] // 32), ::2, ::2]
    return 1e-4 * float(np.max(np.abs(sample))) if sample.size else 0.0


def filter_reach_voxels(image: Image, parameters: VesselMaskParameters) -> list[int]:
    """How far (voxels along k, j, i) the largest scale's smoothing reads around a voxel."""
    from .hessian import kernel_radius

    sigma = max(parameters.sigmas_mm())
    return [kernel_radius(sigma / s) + 1 for s in reversed(image.spacing)]


def vessel_mask(image: Image, parameters: VesselMaskParameters = VesselMaskParameters(),
                progress: Optional[ProgressCallback] = None) -> Image:
    """A uint8 mask (1 = vessel) on the image's grid: vesselness, hysteresis thresholds,
    intensity window, optional ROI, seed or largest components, holes filled."""
    from . import mask as masks  # scipy on first use

    require_3d_volume(image)
    report = progress or no_progress
    crop = inner = (slice(None),) * 3
    if parameters.roi_lps is not None:
        crop, inner = masks.roi_crop(image, parameters.roi_lps, filter_reach_voxels(image, parameters))
    region = image.crop(crop)
    response = vesselness(region, parameters, sub_progress(report, 0.0, 0.85)).array
    started = time.monotonic()
    seeds = None
    if parameters.seeds_lps:
        seeds = masks.seed_indices(image, parameters.seeds_lps) - np.array([s.start or 0 for s in crop])
    mask = report_while(lambda stage: _mask_from_response(region, response, inner, seeds, parameters, stage),
                            report)
    full = np.zeros(image.array.shape, dtype=np.uint8)
    full[crop] = mask
    report(1.0, f"Vessel mask done ({time.monotonic() - started:.1f} s after the filter)")
    return image.with_array(full)


def _mask_from_response(region: Image, response: np.ndarray, inner: tuple[slice, slice, slice],
                        seeds: Optional[np.ndarray], parameters: VesselMaskParameters,
                        stage: ProgressCallback) -> np.ndarray:
    """The boolean mask of ``region`` from its response; ``stage`` names each step."""
    from . import mask as masks

    stage(0.85, "Vessel mask: thresholds")
    in_roi = masks.roi_in_region(region, inner, parameters.roi_lps)
    # thresholds are relative to the response where the user looks (the ROI, or everywhere)
    reference = masks.relative_reference(response, in_roi)
    allowed = np.ones(response.shape, dtype=bool) if in_roi is None else in_roi.copy()
    if parameters.min_intensity is not None:
        allowed &= region.array >= parameters.min_intensity
    if parameters.max_intensity is not None:
        allowed &= region.array <= parameters.max_intensity
    high = parameters.threshold * reference
    low = high if parameters.low_threshold is None else parameters.low_threshold * reference
    stage(0.88, "Vessel mask: hysteresis")
    mask = masks.hysteresis(response, high, low, allowed)
    spacing_kji = tuple(reversed(region.spacing))
    intensity = region.array if parameters.bright_vessels else -region.array.astype(np.float32)
    refine = partial(masks.refine_to_lumen, intensity, spacing_kji=spacing_kji) if parameters.refine_lumen else None
    mask = masks.finish_mask(mask, spacing_kji, in_roi, seeds, parameters, stage, refine)
    if not mask.any():
        raise InputError("No voxel passed the vessel mask's thresholds",
                         f"vesselness threshold {parameters.threshold}, intensity window "
                         f"{parameters.min_intensity} to {parameters.max_intensity}",
                         "lower the threshold, widen the intensity window, or check the radius range")
    stage(0.98, "Vessel mask: contrast check")
    contrast = masks.contrast_to_noise(intensity, mask, in_roi)
    if contrast < masks.MIN_VESSEL_CNR:
        kind = "brighter" if parameters.bright_vessels else "darker"
        raise InputError("No vessels were found",
                         f"the most vessel-like structure is only {contrast:.1f} noise standard deviations "
                         f"{kind} than its surroundings (vessels stand out by {masks.MIN_VESSEL_CNR:g} or more)",
                         "check that the volume is a contrast-enhanced CTA or MRA, that 'bright vessels' "
                         "matches it, and the radius range; or place seeds or an ROI on the vessels")
    return mask
