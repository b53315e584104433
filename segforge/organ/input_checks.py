"""What an organ model can be given: checks that say what is wrong before any work.

Every model refuses a mask, NaN voxels or a constant image (nothing to segment). Whether
the image is a CT in Hounsfield units is a separate question: ``ct-tissues`` refuses an
image that is not (its rules are HU ranges), a CT network only warns, since a user may
knowingly run it on a contrast phase or a rescaled CT.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InputError
from ..image import Image, require_finite_voxels

#: A CT has air (about -1000 HU) in or around the patient; an MR or a rescaled CT has none.
CT_AIR_HU = -500.0
CT_MIN_AIR_FRACTION = 0.001

NOT_CT_TODO = ("use a CT whose field of view includes air (outside the body or in the lungs); "
               "if the CT was stored without its rescale intercept, subtract 1024 first")


def require_segmentable(image: Image) -> None:
    """Refuse a mask, non-finite voxels or a constant image, saying what to do."""
    values = image.array
    if values.dtype == bool:
        raise InputError("The image is a mask, not a scan", "its voxels are true/false",
                         "select the CT or MR volume as input")
    require_finite_voxels(image)
    low, high = values.min(), values.max()
    if low == high:
        raise InputError("The image is constant", f"every voxel is {low}",
                         "select the scan itself, not an empty or blank volume")


def not_ct_reason(image: Image) -> Optional[str]:
    """Why the image cannot be a CT in Hounsfield units; None when it may be one."""
    values = image.array
    air = np.count_nonzero(values <= CT_AIR_HU)
    if air >= max(1, CT_MIN_AIR_FRACTION * values.size):
        return None
    return (f"a CT shows air at about -1000 HU around or inside the patient, but "
            f"{'no' if air == 0 else 'almost no'} voxel is below {CT_AIR_HU:g} "
            f"(values range from {values.min():g} to {values.max():g}); an MR, a PET or a rescaled CT has none")


def require_ct(image: Image) -> None:
    """Refuse an image that cannot be a CT in Hounsfield units, saying why."""
    require_segmentable(image)
    reason = not_ct_reason(image)
    if reason is not None:
        raise InputError("The image does not look like a CT in Hounsfield units", reason, NOT_CT_TODO)
