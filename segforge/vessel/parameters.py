"""What a user tunes in the vessel mask, checked once, in one frozen value.

The same value travels from the widget, the CLI and the console through the worker as
plain JSON (lists become tuples here), so every field has a JSON-friendly type and a
default, and a bad value is refused with a message the user can act on.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from ..catalog.catalog import ID_PATTERN
from ..errors import InputError

#: Hessian measures of tubularity that :func:`segforge.vessel.vesselness` offers.
MEASURES = ("frangi", "sato")
#: Where the filter runs: the GPU when there is one ("auto"), or a named torch device.
DEVICES = ("auto", "cpu", "cuda")
#: The model that makes the mask: an installed deep vessel model when there is one, else Frangi.
AUTO_MODEL = "auto"
#: The builtin filter (its catalog id): the Hessian vesselness this file's fields tune.
BUILTIN_MODEL = "vesselness-frangi"
#: The hysteresis "low" threshold as a fraction of the threshold, in every preset and in the
#: module forms: the band grows with the threshold, so a raised threshold does not keep a
#: preset's low value (wide band, leaks) and a lowered one does not lose hysteresis.
HYSTERESIS_RATIO = 0.5


@dataclass(frozen=True)
class VesselMaskParameters:
    """The vessel radii sought, the measure, and how strict the mask is.

    Radii are in millimetres: each scale looks for tubes of that radius (its Gaussian
    sigma is ``radius / sqrt(2)``, where a scale-normalised Hessian peaks on the axis of
    a cylinder of that radius), so anisotropic volumes need no resampling.
    """

    min_radius_mm: float = 1.0
    max_radius_mm: float = 4.0
    scales: int = 3
    bright_vessels: bool = True
    #: Relative vesselness threshold in 0..1 (of the response's 99th percentile): a mask
    #: component must reach it somewhere (hysteresis "high").
    threshold: float = 0.1
    #: Optional intensity window (e.g. 150..700 HU for contrast-filled CTA lumen):
    #: voxels outside it are never vessel, which removes bone and soft-tissue edges.
    min_intensity: Optional[float] = None
    max_intensity: Optional[float] = None
    #: Hysteresis "low" threshold, relative like ``threshold``: voxels above it join the
    #: mask when they connect to a voxel above ``threshold``. None: no hysteresis.
    low_threshold: Optional[float] = None
    #: "frangi" (Frangi 1998) or "sato" (Sato 1998).
    measure: str = "frangi"
    #: Frangi's plate-vs-line (alpha), blob-vs-line (beta) sensitivities, and its
    #: structureness scale c in intensity units (None: half the 1-99 % intensity span).
    alpha: float = 0.5
    beta: float = 0.5
    gamma: Optional[float] = None
    #: Keep only the largest connected component (ignored when seeds are given).
    largest_component: bool = False
    #: Seed points in LPS millimetres: keep only the components that touch them.
    seeds_lps: tuple[tuple[float, float, float], ...] = ()
    #: Optional region of interest, an LPS box (xmin, ymin, zmin, xmax, ymax, zmax) in mm:
    #: nothing outside it is computed or marked.
    roi_lps: Optional[tuple[float, float, float, float, float, float]] = None
    #: Fill cavities fully enclosed by the mask.
    fill_holes: bool = True
    #: Move the mask's edge from the vesselness blur onto the lumen edge in the intensities
    #: (see :func:`segforge.vessel.mask.refine_to_lumen`); needs a contrast-filled lumen.
    refine_lumen: bool = False
    #: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N". Results agree to float precision.
    device: str = "auto"
    #: Which model makes the mask: "auto" (the first installed deep vessel model of the
    #: catalog that its entry lets auto pick, else the builtin filter), "vesselness-frangi" (the builtin filter), or a
    #: catalog id (see :mod:`segforge.vessel.mask_step`). A deep model ignores the radii,
    #: measure, thresholds, intensity window and lumen refinement; ROI, seeds, largest
    #: component and hole filling apply to both.
    model: str = AUTO_MODEL

    def __post_init__(self) -> None:
        if not 0 < self.min_radius_mm <= self.max_radius_mm or not math.isfinite(self.max_radius_mm):
            raise InputError("The vessel radius range is invalid",
                             f"minimum {self.min_radius_mm} mm, maximum {self.max_radius_mm} mm",
                             "give 0 < minimum radius <= maximum radius")
        if not 1 <= self.scales <= 20:
            raise InputError("The number of scales is invalid", f"it is {self.scales}", "use 1 to 20 scales")
        if not 0 <= self.threshold < 1:
            raise InputError("The vesselness threshold is invalid", f"it is {self.threshold}",
                             "use a value from 0 up to (not including) 1")
        if self.low_threshold is not None and not 0 <= self.low_threshold <= self.threshold:
            raise InputError("The low (hysteresis) threshold is invalid",
                             f"it is {self.low_threshold} with a high threshold of {self.threshold}",
                             "use a value from 0 up to the threshold, or none")
        if self.measure not in MEASURES:
            raise InputError("The vesselness measure is unknown", f"it is {self.measure!r}",
                             f"use one of {', '.join(MEASURES)}")
        if not (self.alpha > 0 and self.beta > 0 and (self.gamma is None or self.gamma > 0)):
            raise InputError("Frangi's alpha, beta and gamma must be positive",
                             f"they are {self.alpha}, {self.beta}, {self.gamma}", "give positive values")
        if (self.min_intensity is not None and self.max_intensity is not None
                and self.min_intensity > self.max_intensity):
            raise InputError("The intensity window is empty",
                             f"minimum {self.min_intensity} is above maximum {self.max_intensity}",
                             "give minimum <= maximum")
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise InputError("The compute device is unknown", f"it is {self.device!r}",
                             "use auto, cpu, cuda or cuda:N")
        if not isinstance(self.model, str) or not re.fullmatch(ID_PATTERN, self.model):
            raise InputError("The vessel model name is invalid", f"it is {self.model!r}",
                             f"give {AUTO_MODEL}, {BUILTIN_MODEL} or the id of a vessel model from "
                             "'segforge models list'")
        object.__setattr__(self, "seeds_lps", _points(self.seeds_lps))
        if self.roi_lps is not None:
            object.__setattr__(self, "roi_lps", _box(self.roi_lps))

    @classmethod
    def for_cta(cls) -> "VesselMaskParameters":
        """Contrast CT angiography: radii 1.5-16 mm (the aorta included), lumen 150-700 HU,
        hysteresis 0.05 / 0.025 (on the bundled thoracic CTA: 56 % of the aorta and 70 % of
        the supra-aortic branches found, 0.4 s)."""
        return cls(min_radius_mm=1.5, max_radius_mm=16.0, scales=4, bright_vessels=True, threshold=0.05,
                   low_threshold=0.05 * HYSTERESIS_RATIO, min_intensity=150.0, max_intensity=700.0)

    def radii_mm(self) -> list[float]:
        """Scales spread geometrically between the minimum and maximum radius."""
        if self.scales == 1:
            return [self.min_radius_mm]
        ratio = (self.max_radius_mm / self.min_radius_mm) ** (1.0 / (self.scales - 1))
        return [self.min_radius_mm * ratio ** n for n in range(self.scales)]

    def sigmas_mm(self) -> list[float]:
        """Gaussian sigma of each scale: ``radius / sqrt(2)``, the peak scale of a cylinder."""
        return [radius / math.sqrt(2.0) for radius in self.radii_mm()]


def _points(points) -> tuple[tuple[float, float, float], ...]:
    try:
        result = tuple(tuple(float(c) for c in point) for point in points)
    except (TypeError, ValueError):
        result = ((),)
    if any(len(point) != 3 or not all(math.isfinite(c) for c in point) for point in result):
        raise InputError("The seed points are invalid", f"they are {points!r}",
                         "give each seed as three LPS coordinates in millimetres")
    return result


def _box(box) -> tuple[float, float, float, float, float, float]:
    try:
        values = tuple(float(c) for c in box)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 6 or not all(math.isfinite(c) for c in values) or \
            any(values[n] > values[n + 3] for n in range(3)):
        raise InputError("The region of interest is invalid", f"it is {box!r}",
                         "give an LPS box as xmin, ymin, zmin, xmax, ymax, zmax in millimetres")
    return values  # type: ignore[return-value]
