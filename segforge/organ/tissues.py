"""``ct-tissues``: body, lungs, airway, bones, fat and soft tissue of a CT, with no model weights.

Intensity ranges (Hounsfield units), morphology in millimetres and connected components;
each structure's rules are in its module (:mod:`.body`, :mod:`.lungs`, :mod:`.bones`).
Every voxel gets at most one label, the first that claims it in the order airway, lungs,
bones, fat, muscle, body; "body" keeps what is inside the body and none of the others
(organs denser than 150 HU, bowel gas, partial-volume rims).

"muscle" is soft tissue from -29 to 150 HU: skeletal muscle, but also the solid organs,
bowel wall, vessels and blood, which no intensity rule can tell apart from muscle.
Voxels next to air (one voxel) are neither fat nor muscle: the blur between air and
tissue passes through the fat and muscle ranges.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Image, require_3d_volume
from ..progress import ProgressCallback, no_progress, sub_progress
from .body import body_mask
from .bones import bone_mask
from .input_checks import require_ct
from .labels import LabelResult
from .lungs import air_spaces
from .morphology import FULL, axial_axis, smooth_mm, spacing_kji, superior_mm

#: Label value of each structure; the same value whatever subset is asked for.
TISSUE_LABELS: dict[str, int] = {"body": 1, "lungs": 2, "airway": 3, "bones": 4, "fat": 5, "muscle": 6}
#: Which label wins where two structures claim a voxel (first wins).
_PRIORITY = ("airway", "lungs", "bones", "fat", "muscle", "body")
#: Each step's part of the progress bar (measured proportions on a 512 x 512 x 48 chest CT).
_STEPS = {"smooth": (0.02, 0.07), "body": (0.07, 0.16), "lungs": (0.16, 0.38), "bones": (0.38, 0.93),
          "soft": (0.93, 0.96)}

FAT_HU = (-190.0, -30.0)
MUSCLE_HU = (-29.0, 150.0)
#: Light smoothing before thresholds: the same noise level on thin and thick slices.
SMOOTHING_MM = 1.0


def ct_tissues(image: Image, structures: Optional[Sequence[str]] = None,
               progress: Optional[ProgressCallback] = None) -> LabelResult:
    """Label body, lungs, airway, bones, fat and muscle (or the ``structures`` asked for).

    Returns a label map on ``image``'s exact grid; raises InputError for an image that is
    not a 3D CT in Hounsfield units, Cancelled when ``progress`` raises it.
    """
    report = progress or no_progress
    wanted = requested_structures(structures)
    require_3d_volume(image)
    require_ct(image)
    report(0.0, "Checking the CT")
    seconds: dict[str, float] = {}
    spacing = spacing_kji(image)
    axis = axial_axis(image)

    def timed(name: str, message: str, step: Callable[[ProgressCallback], Any]) -> Any:
        start, stop = _STEPS[name]
        report(start, message)
        clock = time.perf_counter()
        value = step(sub_progress(report, start, stop))
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - clock
        return value

    hu = timed("smooth", "Smoothing", lambda _: smooth_mm(image.array, SMOOTHING_MM, spacing))
    body = timed("body", "Finding the body", lambda tick: body_mask(hu, spacing, axis, tick))
    masks: dict[str, np.ndarray] = {}
    need_soft = bool(wanted & {"fat", "muscle"})
    air = None
    if wanted & {"lungs", "airway"} or need_soft:
        spaces = timed("lungs", "Finding lungs and airway",
                       lambda tick: air_spaces(hu, body, spacing, axis, superior_mm(image, axis), tick))
        masks["lungs"], masks["airway"], air = spaces.lungs, spaces.airway, spaces.air
        body = body | spaces.lungs | spaces.airway
    if "bones" in wanted or need_soft:
        masks["bones"] = timed("bones", "Finding bones", lambda tick: bone_mask(hu, body, spacing, tick))
    if need_soft:
        fat, muscle = timed("soft", "Finding fat and soft tissue", lambda _: soft_tissues(hu, body, air, masks))
        masks["fat"], masks["muscle"] = fat, muscle
    masks["body"] = body
    report(0.95, "Writing labels")
    labels = label_map(masks, wanted)
    report(1.0, "Done")
    names = {TISSUE_LABELS[name]: name for name in TISSUE_LABELS if name in wanted}
    return LabelResult(image.with_array(labels), names, seconds)


def requested_structures(structures: Optional[Sequence[str]]) -> set[str]:
    """The set of structure names to label; InputError for an unknown or empty request."""
    if structures is None:
        return set(TISSUE_LABELS)
    if isinstance(structures, str):
        structures = [structures]
    wanted = {str(name).strip().lower() for name in structures}
    unknown = sorted(wanted - set(TISSUE_LABELS))
    if unknown:
        raise InputError(f"Unknown structure {', '.join(map(repr, unknown))} for ct-tissues",
                         f"ct-tissues labels {', '.join(TISSUE_LABELS)}",
                         "pick structures from that list, or ask for all of them")
    if not wanted:
        raise InputError("No structure was asked for", "the list of structures is empty",
                         f"ask for one or more of {', '.join(TISSUE_LABELS)}")
    return wanted


def soft_tissues(hu: np.ndarray, body: np.ndarray, air: np.ndarray,
                 masks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fat (-190..-30 HU) and soft tissue (-29..150 HU) in the body, away from air and bone."""
    taken = masks["lungs"] | masks["airway"] | masks["bones"]
    eligible = body & ~taken & ~ndimage.binary_dilation(air, structure=FULL)
    fat = eligible & (hu >= FAT_HU[0]) & (hu <= FAT_HU[1])
    muscle = eligible & (hu > FAT_HU[1]) & (hu <= MUSCLE_HU[1])
    return fat, muscle


def label_map(masks: dict[str, np.ndarray], wanted: set[str]) -> np.ndarray:
    """One uint8 label per voxel: the first structure in priority order that claims it."""
    shape = masks["body"].shape
    labels = np.zeros(shape, dtype=np.uint8)
    claimed = np.zeros(shape, dtype=bool)
    for name in _PRIORITY:
        if name not in masks:
            continue
        mine = masks[name] & ~claimed
        if name in wanted:
            labels[mine] = TISSUE_LABELS[name]
        claimed |= mine
    return labels


__all__ = ["TISSUE_LABELS", "ct_tissues", "require_ct", "requested_structures"]
