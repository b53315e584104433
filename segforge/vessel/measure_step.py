"""The measuring stage of the vessel workflow, in one call: sub-voxel radii, cross-sections
along every branch, landmark diameters and the straightened view.

Why one stage: all four read the same lumen field (:mod:`.lumen_edge`: the segment's
interpolated edge, or the grey image's half-maximum edge when an image is given), which is
built once here; the pipeline calls this between the centreline graph and the metrics (the
metrics then use the sub-voxel radii).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..errors import InputError
from ..image import Image
from ..progress import ProgressCallback, sub_progress
from .cross_sections import (BranchSections, LandmarkMeasurement, SectionParameters, branch_sections,
                             check_section_parameters, measure_landmarks)
from .graph import CenterlineGraph
from .lumen_edge import lumen_field
from .straighten import StraightenParameters, check_straighten_parameters, straighten
from .subvoxel import subvoxel_radii


@dataclass(frozen=True)
class Measurements:
    """What the measuring stage adds to a centreline graph."""

    graph: CenterlineGraph  # the same graph, its radii sub-voxel
    sections: tuple[BranchSections, ...] = ()
    landmarks: tuple[LandmarkMeasurement, ...] = ()
    straightened: Optional[Image] = None
    seconds: dict[str, float] = field(default_factory=dict)


def measure_vessels(mask: Image, image: Optional[Image], graph: CenterlineGraph,
                    sections: SectionParameters = SectionParameters(),
                    straightening: StraightenParameters = StraightenParameters(),
                    target_lps: Optional[Sequence[float]] = None,
                    progress: Optional[ProgressCallback] = None) -> Measurements:
    """Radii, sections, landmarks and (when enabled) the straightened view of ``graph``.

    ``image`` (optional, on the mask's grid) sharpens the edge and is what the view shows;
    without it the view shows the mask. ``target_lps``: straighten the path to the end
    nearest this point instead of the farthest end. A main path shorter than one step of
    the view gives no view (None), not an error.
    """
    check_section_parameters(sections)
    if straightening.enabled:
        check_straighten_parameters(straightening)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    reach = 3.0 * max((float(b.radii_mm.max()) for b in graph.branches if len(b.radii_mm)), default=0.0)
    field_ = lumen_field(mask, image, margin_mm=reach)
    graph = subvoxel_radii(graph, field_, sub_progress(progress, 0.0, 0.3))
    seconds["radii"] = time.perf_counter() - clock
    clock = time.perf_counter()
    measured = branch_sections(field_, graph, sections, sub_progress(progress, 0.3, 0.8))
    landmarks = measure_landmarks(field_, graph, sections.landmarks_lps, mask)
    seconds["sections"] = time.perf_counter() - clock
    view = None
    if straightening.enabled and graph.branches:
        clock = time.perf_counter()
        try:
            view = straighten(image if image is not None else mask, graph, straightening, target_lps,
                              label=image is None, progress=sub_progress(progress, 0.8, 1.0)).image
        except InputError:
            view = None  # a main path shorter than one step: nothing to straighten
        seconds["straighten"] = time.perf_counter() - clock
    return Measurements(graph, measured, landmarks, view, seconds)
