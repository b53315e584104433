"""SegVessel's form: the panel's fields, and the one rule that turns them into a job.

The desktop panel (its parameter node), the web panel (its state) and ``segforge vessel``
(its options) each fill a :class:`VesselForm`; nothing else builds vessel parameters. A
preset fills the fields from the engine's presets (:func:`segforge.vessel.pipeline.preset`);
the fields as they are then make the parameters, so the same fields give the same mask
wherever they were typed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Optional

from segforge.errors import InputError
from segforge.forms import Form, labelled
from segforge.vessel.parameters import AUTO_MODEL, HYSTERESIS_RATIO, VesselMaskParameters

#: The presets a panel offers, then "custom": the fields as the user set them.
CUSTOM = "custom"
PRESET_CHOICES = ("cta", "mra", "dark", CUSTOM)
#: What the analysis starts from: a grey volume (the mask is made from it), a segment the user
#: already has (it is the mask), or both (the segment is the mask, the volume sharpens its edge).
INPUT_KINDS = ("volume", "segment", "both")
#: The fields a preset sets (the rest are the user's: inputs, device, model and outputs).
PRESET_FIELDS = ("min_radius_mm", "max_radius_mm", "scales", "bright_vessels", "threshold", "hysteresis",
                 "limit_intensity", "min_intensity", "max_intensity", "largest_component", "refine_lumen")


class VesselJob(NamedTuple):
    """What the worker runs: the mask alone ("vessel.mask") or the whole tree ("vessel.tree"),
    and the inputs it is sent: "image" (the grey volume), "segment" (the vessel mask), or both."""

    task: str
    parameters: Any  # VesselMaskParameters for the mask, VesselPipelineParameters for the tree
    inputs: tuple[str, ...] = ("image",)


@dataclass(frozen=True)
class VesselForm(Form):
    """The SegVessel panel's fields; the defaults are the ``cta`` preset's."""

    input_kind: str = labelled("volume", "the input")
    #: Where the segment is: a segment ID of the chosen segmentation (desktop, web) or
    #: ``FILE[:LABEL|NAME]`` (``segforge vessel --segment``); used when the input kind asks for it.
    segment: str = labelled("", "the segment")
    preset: str = labelled("cta", "the preset")
    min_radius_mm: float = labelled(1.5, "the smallest radius")
    max_radius_mm: float = labelled(16.0, "the largest radius")
    scales: int = labelled(4, "the number of scales")
    bright_vessels: bool = True
    threshold: float = labelled(0.05, "the threshold")
    #: Grow the mask into voxels above half the threshold that touch it (hysteresis).
    hysteresis: bool = True
    limit_intensity: bool = True
    min_intensity: float = labelled(150.0, "the minimum intensity")
    max_intensity: float = labelled(700.0, "the maximum intensity")
    largest_component: bool = True
    refine_lumen: bool = False
    model: str = labelled(AUTO_MODEL, "the model")
    device: str = labelled("auto", "the device")
    #: Seed points and a box in LPS millimetres (from markups: SegVesselLib.markups_inputs).
    seeds_lps: tuple[tuple[float, float, float], ...] = ()
    roi_lps: Optional[tuple[float, float, float, float, float, float]] = None
    #: Centerlines from a source point to each target point (as VMTK); none: the whole tree.
    source_lps: Optional[tuple[float, float, float]] = None
    targets_lps: tuple[tuple[float, float, float], ...] = ()
    #: Points where the diameters are measured in the plane perpendicular to the centerline.
    landmarks_lps: tuple[tuple[float, float, float], ...] = ()
    #: Tunnels and cavities of the mask smaller than this are closed before skeletonising (0: off).
    close_holes_mm: float = labelled(4.0, "the hole size to close")
    segment_name: str = labelled("Vessels", "the segment name")
    create_centerlines: bool = True
    create_stenoses: bool = True  # measured along the centerlines: ignored without them
    create_surface: bool = True
    stenosis_threshold_percent: float = labelled(50.0, "the stenosis threshold")
    #: A widening to this many times the healthy reference diameter is reported as a dilatation.
    dilatation_ratio: float = labelled(1.5, "the dilatation ratio")

    # -- presets -----------------------------------------------------------------------------

    def with_preset(self, name: str) -> "VesselForm":
        """The form with a preset's fields (``custom`` keeps the fields and only says so)."""
        if name == CUSTOM:
            return replace(self, preset=CUSTOM)
        return replace(self, preset=name, **preset_fields(name, self))

    def shown_preset(self) -> str:
        """The preset a panel shows: the chosen one while the fields still are its, else ``custom``."""
        if self.preset == CUSTOM or self.preset not in PRESET_CHOICES:
            return CUSTOM
        expected = preset_fields(self.preset, self)
        return self.preset if all(_same(getattr(self, k), v) for k, v in expected.items()) else CUSTOM

    # -- checks and parameters ---------------------------------------------------------------

    def problem(self) -> Optional[str]:
        """Why the fields cannot run as they are (one sentence), or None: what a panel shows by
        its Run button, before anything is sent."""
        try:
            self.job()
        except InputError as error:
            return error.message
        return None

    def mask_parameters(self) -> VesselMaskParameters:
        """The engine's mask parameters of these fields (the engine refuses bad values, saying what to change)."""
        return VesselMaskParameters(
            min_radius_mm=self.min_radius_mm, max_radius_mm=self.max_radius_mm, scales=self.scales,
            bright_vessels=self.bright_vessels, threshold=self.threshold,
            low_threshold=self.threshold * HYSTERESIS_RATIO if self.hysteresis else None,
            min_intensity=self.min_intensity if self.limit_intensity else None,
            max_intensity=self.max_intensity if self.limit_intensity else None,
            largest_component=self.largest_component, refine_lumen=self.refine_lumen,
            seeds_lps=self.seeds_lps, roi_lps=self.roi_lps, device=self.device, model=self.model)

    def pipeline_parameters(self) -> Any:
        """The whole workflow's parameters (``VesselPipelineParameters``); stenoses need centerlines."""
        from segforge.vessel.cross_sections import SectionParameters
        from segforge.vessel.endpoints import EndpointParameters
        from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters
        from segforge.vessel.stenosis import StenosisParameters, check_parameters
        from segforge.vessel.topology import TopologyParameters

        findings = StenosisParameters(threshold_percent=self.stenosis_threshold_percent,
                                      dilatation_ratio=self.dilatation_ratio)
        check_parameters(findings)
        if not 0 <= self.close_holes_mm <= 100:
            raise InputError("The hole size to close is invalid", f"it is {self.close_holes_mm:g} mm",
                             "give a size between 0 (off) and 100 mm")
        outputs = VesselOutputs(centerlines=self.create_centerlines,
                                stenoses=self.create_centerlines and self.create_stenoses, surface=self.create_surface)
        return VesselPipelineParameters(
            mask=self.mask_parameters(), outputs=outputs,
            stenosis=findings,
            topology=TopologyParameters(close_holes_mm=self.close_holes_mm),
            endpoints=EndpointParameters(source_lps=self.source_lps, targets_lps=self.targets_lps),
            sections=SectionParameters(landmarks_lps=self.landmarks_lps))

    def inputs(self) -> tuple[str, ...]:
        """What the job is sent: "image", "segment" or both (see :data:`INPUT_KINDS`)."""
        if self.input_kind not in INPUT_KINDS:
            raise InputError(f"Unknown input {self.input_kind!r}", f"the input is one of {', '.join(INPUT_KINDS)}",
                             "choose a volume, a segment, or both")
        if self.input_kind != "volume" and not self.segment:
            raise InputError("No segment is chosen", "the input is a segment" + (" and a volume" * (
                self.input_kind == "both")), "choose the segmentation and the vessel segment in it")
        return {"volume": ("image",), "segment": ("segment",), "both": ("image", "segment")}[self.input_kind]

    def job(self) -> VesselJob:
        """The worker job these fields ask for: nothing beyond the mask runs the mask job alone; a
        segment is the mask, so from a segment only the tree job has something to do."""
        from segforge.vessel.pipeline import refuse_points_without_centerlines

        if not self.segment_name:
            raise InputError("No segment name", "the segment name field is empty",
                             "enter a name for the vessel segment")
        inputs = self.inputs()
        refuse_points_without_centerlines(self.create_centerlines, self.source_lps, self.targets_lps,
                                          self.landmarks_lps)  # the engine's rule: the mask job builds no parameters
        if not (self.create_centerlines or self.create_surface):
            if "segment" in inputs:
                raise InputError("Nothing to compute from the segment", "the segment is the vessel mask, and "
                                 "neither centerlines nor a surface are asked for",
                                 "tick centerlines or surface")
            return VesselJob("vessel.mask", self.mask_parameters(), inputs)
        return VesselJob("vessel.tree", self.pipeline_parameters(), inputs)


#: Form fields the desktop panel keeps as markups nodes rather than parameter node values, by the
#: parameter node's name of that node.
FORM_FIELDS_FROM_MARKUPS = {"seeds_lps": "seedPoints", "roi_lps": "roi", "source_lps": "sourcePoint",
                            "targets_lps": "targetPoints", "landmarks_lps": "landmarkPoints"}


def form_from_parameter_node(parameter_node: Any) -> VesselForm:
    """The desktop panel's form: each field from the parameter node's camelCase twin, the points
    and the box from its markups nodes."""
    from .markups_inputs import points_lps_from_markups, roi_lps_from_markups, source_lps_from_markups

    return VesselForm.from_attributes(parameter_node, skip=tuple(FORM_FIELDS_FROM_MARKUPS),
                                      seeds_lps=points_lps_from_markups(parameter_node.seedPoints),
                                      roi_lps=roi_lps_from_markups(parameter_node.roi),
                                      source_lps=source_lps_from_markups(parameter_node.sourcePoint),
                                      targets_lps=points_lps_from_markups(parameter_node.targetPoints),
                                      landmarks_lps=points_lps_from_markups(parameter_node.landmarkPoints))

def shown_fields(parameter_node: Any) -> VesselForm:
    """The fields a panel shows, without reading its markups (the points cannot be wrong here:
    what is wrong with them is :func:`parameter_node_problem`'s to say)."""
    return VesselForm.from_attributes(parameter_node, skip=tuple(FORM_FIELDS_FROM_MARKUPS))


def parameter_node_problem(parameter_node: Any) -> Optional[str]:
    """Why the desktop panel cannot run as it is (its fields or its points), or None."""
    try:
        return form_from_parameter_node(parameter_node).problem()
    except InputError as error:  # e.g. a source point list holding several points
        return error.message


def preset_fields(name: str, current: Optional[VesselForm] = None) -> dict[str, Any]:
    """The fields a preset sets, from the engine's preset. A preset without an intensity window
    keeps the window's values (only unticks it), as the panels keep what the user typed."""
    from segforge.vessel.pipeline import preset

    mask = preset(name)
    limit = mask.min_intensity is not None and mask.max_intensity is not None
    current = current or VesselForm()
    return {"min_radius_mm": mask.min_radius_mm, "max_radius_mm": mask.max_radius_mm, "scales": mask.scales,
            "bright_vessels": mask.bright_vessels, "threshold": mask.threshold,
            "hysteresis": mask.low_threshold is not None, "limit_intensity": limit,
            "min_intensity": mask.min_intensity if limit else current.min_intensity,
            "max_intensity": mask.max_intensity if limit else current.max_intensity,
            "largest_component": mask.largest_component, "refine_lumen": mask.refine_lumen}


def model_choices() -> list[tuple[str, str]]:
    """The models a panel offers, as (value, title): automatic, the builtin filter, then each
    installed deep vessel model of the catalog."""
    from segforge.vessel.mask_step import installed_vessel_models
    from segforge.vessel.parameters import BUILTIN_MODEL

    return ([(AUTO_MODEL, "Automatic (a deep model when installed)"), (BUILTIN_MODEL, "Vesselness filter (builtin)")]
            + [(entry.id, entry.id) for entry in installed_vessel_models()])


def summary(where: str, branches: Optional[int] = None, stenoses: Optional[int] = None,
            surface: bool = False, dilatations: Optional[int] = None, dropped_pieces: Optional[int] = None) -> str:
    """One line for a person: how many branches, stenoses and dilatations were found, and where the
    vessels went; stray pieces too small for a branch are said, not counted as branches."""
    from segforge.vessel.tree import dropped_pieces_text

    parts = []
    if branches is not None:
        parts.append(f"{branches} branches")
    if dropped_pieces:
        parts.append(dropped_pieces_text(dropped_pieces))
    if stenoses is not None:
        parts.append(f"{stenoses} stenoses found")
    if dilatations:
        parts.append(f"{dilatations} dilatation{'s' if dilatations != 1 else ''} found")
    if surface:
        parts.append("surface model")
    return f"Done: {'; '.join(parts)}; the vessels are in {where}." if parts else f"Done: the vessels are in {where}."


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
