"""Multi-scale Frangi vesselness and the vessel mask it gives, in millimetres.

Built on SimpleITK (recursive Gaussian + ``ObjectnessMeasure``), the fastest of the
candidates measured on our 2-core machines (see ``../shared/NOTES.md``). Scales are
radii in millimetres, so anisotropic volumes need no resampling; each scale's Hessian is
normalised by sigma squared so that responses compare across scales. ITK's own progress
events drive our progress callback, and Cancel aborts the running ITK filter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..errors import Cancelled, InputError
from ..image import Image, require_3d_volume
from ..image_io import to_sitk
from ..progress import ProgressCallback, no_progress, sub_progress


@dataclass(frozen=True)
class VesselMaskParameters:
    """What a user tunes: the vessel radii sought and how strict the mask is."""

    min_radius_mm: float = 1.0
    max_radius_mm: float = 4.0
    scales: int = 3
    bright_vessels: bool = True
    #: Relative vesselness threshold in 0..1 (of the response's high percentile).
    threshold: float = 0.1
    #: Optional intensity window (e.g. 150..700 HU for contrast-filled CTA lumen):
    #: voxels outside it are never vessel, which removes bone and soft-tissue edges.
    min_intensity: Optional[float] = None
    max_intensity: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0 < self.min_radius_mm <= self.max_radius_mm:
            raise InputError("The vessel radius range is invalid",
                             f"minimum {self.min_radius_mm} mm, maximum {self.max_radius_mm} mm",
                             "give 0 < minimum radius <= maximum radius")
        if not 1 <= self.scales <= 20:
            raise InputError("The number of scales is invalid", f"it is {self.scales}", "use 1 to 20 scales")
        if not 0 <= self.threshold < 1:
            raise InputError("The vesselness threshold is invalid", f"it is {self.threshold}",
                             "use a value from 0 up to (not including) 1")

    @classmethod
    def for_cta(cls) -> "VesselMaskParameters":
        """Contrast CT angiography: radii 1.5-12 mm (aorta included), lumen 150-700 HU."""
        return cls(min_radius_mm=1.5, max_radius_mm=12.0, scales=4, bright_vessels=True, threshold=0.05,
                   min_intensity=150.0, max_intensity=700.0)

    def radii_mm(self) -> list[float]:
        """Scales spread geometrically between the minimum and maximum radius."""
        if self.scales == 1:
            return [self.min_radius_mm]
        ratio = (self.max_radius_mm / self.min_radius_mm) ** (1.0 / (self.scales - 1))
        return [self.min_radius_mm * ratio ** n for n in range(self.scales)]


def _run_filter(image_filter: sitk.ImageFilter, inputs: tuple[sitk.Image, ...],
                progress: ProgressCallback, message: str) -> sitk.Image:
    """Execute an ITK filter whose progress events report to ``progress`` and honour Cancel."""
    cancelled: list[Cancelled] = []

    def on_progress() -> None:
        try:
            progress(image_filter.GetProgress(), message)
        except Cancelled as error:
            cancelled.append(error)
            image_filter.Abort()

    image_filter.AddCommand(sitk.sitkProgressEvent, on_progress)
    try:
        return image_filter.Execute(*inputs)
    except RuntimeError:
        if cancelled:
            raise cancelled[0] from None
        raise
    finally:
        image_filter.RemoveAllCommands()


def vesselness(image: Image, parameters: VesselMaskParameters = VesselMaskParameters(),
               progress: Optional[ProgressCallback] = None) -> Image:
    """The maximum scale-normalised Frangi response over the parameters' radii (float32)."""
    require_3d_volume(image)
    report = progress or no_progress
    source = sitk.Cast(to_sitk(image), sitk.sitkFloat32)
    radii = parameters.radii_mm()
    response: Optional[sitk.Image] = None
    for n, radius in enumerate(radii):
        step = sub_progress(report, n / len(radii), (n + 1) / len(radii))
        label = f"Vesselness at radius {radius:.2f} mm ({n + 1}/{len(radii)})"
        smoother = sitk.SmoothingRecursiveGaussianImageFilter()
        smoother.SetSigma(radius)
        smoothed = _run_filter(smoother, (source,), sub_progress(step, 0.0, 0.4), label)
        # sigma^2 normalises second derivatives so that scales compare (Lindeberg).
        smoothed = smoothed * float(radius ** 2)
        objectness = sitk.ObjectnessMeasureImageFilter()
        objectness.SetObjectDimension(1)
        objectness.SetBrightObject(parameters.bright_vessels)
        objectness.SetScaleObjectnessMeasure(False)
        objectness.SetAlpha(0.5)
        objectness.SetBeta(0.5)
        objectness.SetGamma(_structureness_gamma(image.array))
        scale_response = _run_filter(objectness, (smoothed,), sub_progress(step, 0.4, 1.0), label)
        response = scale_response if response is None else sitk.Maximum(response, scale_response)
    report(1.0, "Vesselness done")
    return image.with_array(sitk.GetArrayFromImage(response).astype(np.float32, copy=False))


def _structureness_gamma(array: np.ndarray) -> float:
    """Frangi's c: half the intensity range that matters, so the measure ignores noise.

    Taken from the 1st-99th percentile span of a strided sample (fast on big volumes).
    """
    sample = array[:: max(1, array.shape[0] // 32), ::4, ::4].astype(np.float32)
    low, high = np.percentile(sample, [1.0, 99.0])
    return max(float(high - low) / 2.0, 1e-6)


def vessel_mask(image: Image, parameters: VesselMaskParameters = VesselMaskParameters(),
                progress: Optional[ProgressCallback] = None) -> Image:
    """A uint8 mask (1 = vessel) of the voxels whose vesselness passes the threshold."""
    report = progress or no_progress
    response = vesselness(image, parameters, sub_progress(report, 0.0, 0.95)).array
    positive = response[response > 0]
    if positive.size == 0:
        raise InputError("No vessel-like structure was found",
                         "the vesselness filter gave no response anywhere in the volume",
                         "check that the volume is a CTA or MRA and that the radius range and "
                         "'bright vessels' setting match the vessels")
    reference = float(np.percentile(positive, 99.0))
    mask = (response >= parameters.threshold * reference) & (response > 0)
    if parameters.min_intensity is not None:
        mask &= image.array >= parameters.min_intensity
    if parameters.max_intensity is not None:
        mask &= image.array <= parameters.max_intensity
    report(1.0, "Vessel mask done")
    return image.with_array(mask.astype(np.uint8))

