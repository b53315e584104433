"""The whole vessel workflow in one call: vesselness (or a deep vessel model) -> mask ->
topology clean-up -> centerline graph (between endpoints when given) -> sub-voxel radii,
cross-sections, landmarks, straightened view -> metrics -> stenoses -> surface, with
progress, Cancel and a timing per stage.

The mask comes from the grey image, or is the user's own ``segment`` (from the Segment
Editor, TotalSegmentator, SegOrgan): then the mask stage is skipped and the image, when
given on the same grid, is there only to sharpen measurements.

One function serves the worker, the CLI and the tests, so every front end gets the same
answer. Stages the caller does not ask for are skipped (``VesselOutputs``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..errors import InputError
from ..image import Image, require_3d_volume
from ..mesh import SurfaceParameters, surface_from_mask
from ..progress import ProgressCallback, no_progress, sub_progress
from ..segment_input import few_values
from .cross_sections import BranchSections, LandmarkMeasurement, SectionParameters
from .endpoints import EndpointParameters, centerlines_between
from .graph import CenterlineGraph, GraphParameters, centerline_graph
from .minimal_path import minimal_path_centerlines
from .metrics import BranchMetrics, branch_metrics
from .mask import segment_at_seeds
from .mask_step import make_vessel_mask
from .measure_step import measure_vessels
from .parameters import BUILTIN_MODEL, HYSTERESIS_RATIO, VesselMaskParameters
from .stenosis import StenosisParameters, StenosisReport, analyse_stenoses
from .straighten import StraightenParameters
from .thick import MIN_VOXELS
from .topology import TopologyParameters, TopologyReport, clean_topology


def _presets() -> dict[str, VesselMaskParameters]:
    return {
        "cta": replace(VesselMaskParameters.for_cta(), largest_component=True),
        "mra": VesselMaskParameters(min_radius_mm=1.0, max_radius_mm=10.0, scales=4, bright_vessels=True,
                                    threshold=0.08, low_threshold=0.08 * HYSTERESIS_RATIO, largest_component=True,
                                    refine_lumen=True),
        "dark": VesselMaskParameters(min_radius_mm=1.0, max_radius_mm=6.0, scales=3, bright_vessels=False,
                                     threshold=0.1, low_threshold=0.1 * HYSTERESIS_RATIO, largest_component=True),
    }


#: The kinds of scan with a preset: contrast CT angiography, bright-lumen MR angiography, dark vessels.
PRESETS = ("cta", "mra", "dark")


def preset(name: str) -> VesselMaskParameters:
    """Mask parameters for a kind of scan: ``cta``, ``mra`` (bright lumen) or ``dark`` (dark vessels).

    The one place presets are defined: the module forms fill their fields from these."""
    presets = _presets()
    if name not in presets:
        raise InputError(f"Unknown preset {name!r}", "", f"use {', '.join(PRESETS)}")
    return presets[name]


@dataclass(frozen=True)
class VesselOutputs:
    """Which results to compute beyond the mask (each costs time)."""

    centerlines: bool = True
    stenoses: bool = True
    surface: bool = True


@dataclass(frozen=True)
class VesselPipelineParameters:
    """Everything the workflow needs, one frozen value per stage."""

    mask: VesselMaskParameters = field(default_factory=VesselMaskParameters)
    graph: GraphParameters = field(default_factory=GraphParameters)
    topology: TopologyParameters = field(default_factory=TopologyParameters)
    endpoints: EndpointParameters = field(default_factory=EndpointParameters)
    stenosis: StenosisParameters = field(default_factory=StenosisParameters)
    sections: SectionParameters = field(default_factory=SectionParameters)
    straighten: StraightenParameters = field(default_factory=StraightenParameters)
    surface: SurfaceParameters = field(default_factory=SurfaceParameters)
    outputs: VesselOutputs = field(default_factory=VesselOutputs)

    def __post_init__(self) -> None:
        refuse_points_without_centerlines(self.outputs.centerlines, self.endpoints.source_lps,
                                          self.endpoints.targets_lps, self.sections.landmarks_lps)


def refuse_points_without_centerlines(centerlines: bool, source_lps: Optional[tuple], targets_lps: tuple,
                                      landmarks_lps: tuple) -> None:
    """A source, targets or landmarks are where the centerlines run and are measured: with the
    centerlines off they would be ignored without a word, so they are refused. The one rule for
    the console, the CLI and the module forms (whose mask-only job builds no parameters)."""
    placed = [name for name, points in (("a source", source_lps is not None), ("targets", bool(targets_lps)),
                                         ("landmarks", bool(landmarks_lps))) if points]
    if placed and not centerlines:
        raise InputError(f"The points ({', '.join(placed)}) need the centerlines",
                         "centerlines are off, so the points would be ignored",
                         "turn the centerlines on, or remove the points")


@dataclass
class VesselResult:
    """What the workflow found; absent stages stay None (or empty).

    ``mask`` is the mask every stage measured and the one front ends write as the vessel
    segment: the caller's segment as given (nonzero -> 1), or the mask made from the image.
    The topology clean-up only decides the centerlines' course: its mask is
    ``traced_mask``, which no radius, section, finding or surface is measured on."""

    mask: Image
    graph: Optional[CenterlineGraph] = None
    metrics: tuple[BranchMetrics, ...] = ()
    stenoses: Optional[StenosisReport] = None
    surface: Optional[object] = None  # vtkPolyData in LPS
    seconds: dict[str, float] = field(default_factory=dict)
    #: Catalog id of the model that made the mask (see :mod:`.mask_step`), or ``segment``.
    mask_model: str = BUILTIN_MODEL
    topology: Optional[TopologyReport] = None
    #: cross-sections along each branch, diameters at the landmarks, the straightened main
    #: path (:mod:`.measure_step`)
    sections: tuple[BranchSections, ...] = ()
    landmarks: tuple[LandmarkMeasurement, ...] = ()
    straightened: Optional[Image] = None
    #: the mask the centerline graph was traced on: ``mask`` with the small tunnels and
    #: cavities closed (:mod:`.topology`); ``mask`` itself when the clean-up changed nothing
    traced_mask: Optional[Image] = None


#: Each stage's share of the progress bar (measured proportions on the bundled CTA).
_SHARES = {"mask": 0.45, "topology": 0.05, "centerlines": 0.25, "sections": 0.1, "stenoses": 0.15, "surface": 0.15}
#: ``mask_model`` of a result whose mask was the caller's segment.
SEGMENT_MODEL = "segment"


def _first_target(parameters: VesselPipelineParameters) -> Optional[tuple[float, float, float]]:
    """The first target point, when the caller chose endpoints: the straightened view follows
    the path to it (else the path to the farthest end)."""
    targets = parameters.endpoints.targets_lps
    return tuple(targets[0]) if targets else None


def _refuse_label_map(image: Image) -> None:
    """A mask or label map picked by mistake gives nonsense vesselness: say so instead, and where
    it belongs (the segment input). The rule is :func:`segforge.segment_input.few_values`."""
    values = few_values(image.array)
    if values is not None:
        raise InputError("The input looks like a label map or mask, not a CTA or MRA",
                         f"it holds only {len(values)} distinct values ({', '.join(map(str, values[:8]))})",
                         "select the grey-level angiography volume as the volume; give this label map or "
                         "mask as the segment input instead")


def _segment_mask(segment: Image, image: Optional[Image]) -> Image:
    """The caller's segment as the vessel mask (nonzero = vessel), checked against the image."""
    if not isinstance(segment, Image):
        raise InputError("The segment is not an image", f"it is a {type(segment).__name__}",
                         "give the segment as a labelmap on a 3D grid")
    require_3d_volume(segment)
    if image is not None:
        require_3d_volume(image)
    mask = segment.array != 0
    if not mask.any():
        raise InputError("The segment is empty", "none of its voxels is set",
                         "choose the segment that holds the vessel (or paint it first)")
    # the same voxels to a hundredth of a voxel (headers written as float32 differ by less)
    if image is not None and not segment.same_grid(image, tol=0.01 * min(*segment.spacing, *image.spacing)):
        raise InputError("The segment and the image are not on the same grid",
                         f"the segment has {segment.shape_ijk} voxels of {_mm(segment.spacing)} mm at "
                         f"{_mm(segment.origin_lps)}, the image {image.shape_ijk} voxels of {_mm(image.spacing)} mm "
                         f"at {_mm(image.origin_lps)}",
                         "give the segment alone, or resample it onto the image first")
    # on the image's grid exactly (headers written as float32 differ in the last digits)
    return (image if image is not None else segment).with_array(mask.astype(np.uint8))


def _mm(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def _centerlines(traced: Image, parameters: VesselPipelineParameters, progress: ProgressCallback) -> CenterlineGraph:
    """Minimal paths between a source and targets (the usual case with endpoints: no whole
    tree needed), else the whole tree, rooted at a source when one is given alone."""
    endpoints = parameters.endpoints
    if endpoints.targets_lps and np.count_nonzero(np.asarray(traced.array)) < MIN_VOXELS:
        return minimal_path_centerlines(traced, endpoints, parameters.graph, progress)
    return centerlines_between(centerline_graph(traced, parameters.graph, progress), traced, endpoints)


def run_vessel_pipeline(image: Optional[Image], parameters: VesselPipelineParameters = VesselPipelineParameters(),
                        progress: Optional[ProgressCallback] = None,
                        segment: Optional[Image] = None) -> VesselResult:
    """Run the stages the parameters ask for, in order; raises InputError or Cancelled.

    ``segment`` (a binary vessel mask, nonzero = vessel) replaces the mask stage (its
    components the seeds touch, when ``parameters.mask.seeds_lps`` names any); ``image``
    may then be None, or must lie on the segment's grid."""
    if segment is None:
        if image is None:
            raise InputError("The vessel workflow has no input", "neither an image nor a segment was given",
                             "give an angiography volume, a vessel segment, or both")
        require_3d_volume(image)
        _refuse_label_map(image)
    else:  # the seeds keep the segment's vessels they touch, as they keep a model's
        given = segment_at_seeds(_segment_mask(segment, image), parameters.mask)
    report = progress or no_progress
    wanted = parameters.outputs
    stages = (["mask"] if segment is None else []) + ["topology"] + [
        name for name in ("centerlines", "stenoses", "surface")
        if getattr(wanted, name) and (name != "stenoses" or wanted.centerlines)]
    stages += ["sections"] if wanted.centerlines else []
    total = sum(_SHARES[name] for name in stages)
    start = 0.0

    def step(name: str) -> ProgressCallback:
        nonlocal start
        share = _SHARES[name] / total
        callback = sub_progress(report, start, start + share)
        start += share
        return callback

    seconds: dict[str, float] = {}
    if segment is None:
        clock = time.perf_counter()
        made = make_vessel_mask(image, parameters.mask, step("mask"))
        mask, model = made.mask.with_array((np.asarray(made.mask.array) != 0).astype(np.uint8)), made.model
        seconds["mask"] = time.perf_counter() - clock
    else:
        mask, model = given, SEGMENT_MODEL
    clock = time.perf_counter()
    # the graph runs through the cleaned mask (no false loops); every measure is taken on
    # the mask as it is, so a closed tunnel or cavity shows as what the segment holds
    traced, topology = clean_topology(mask, parameters.topology, step("topology"))
    if topology.voxels_added == 0:
        traced = mask
    seconds["topology"] = time.perf_counter() - clock
    result = VesselResult(mask, seconds=seconds, mask_model=model, topology=topology, traced_mask=traced)
    if "centerlines" in stages:
        clock = time.perf_counter()
        result.graph = _centerlines(traced, parameters, step("centerlines"))
        seconds["centerlines"] = time.perf_counter() - clock
        measured = measure_vessels(mask, image, result.graph, parameters.sections, parameters.straighten,
                                   _first_target(parameters), step("sections"))
        result.graph, result.sections, result.landmarks = measured.graph, measured.sections, measured.landmarks
        result.straightened = measured.straightened
        seconds.update(measured.seconds)
        result.metrics = branch_metrics(result.graph)
    if "stenoses" in stages and result.graph is not None:
        clock = time.perf_counter()
        result.stenoses = analyse_stenoses(mask, result.graph, parameters.stenosis, step("stenoses"))
        seconds["stenoses"] = time.perf_counter() - clock
    if "surface" in stages:
        clock = time.perf_counter()
        result.surface = surface_from_mask(mask, parameters.surface, step("surface"))
        seconds["surface"] = time.perf_counter() - clock
    report(1.0, "Vessel tree done")
    return result
