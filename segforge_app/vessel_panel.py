"""The SegVessel panel: a vessel tree (segment, centerlines, stenoses, surface) from a CTA or MRA.

The desktop SegVessel module's parameters (preset, radii, threshold, intensity window,
outputs, seed points and a box drawn in the slice views) drive the desktop module's own
Logic (``start_vessel_tree``) through the app's job tracker, so the page never waits on the
worker and Cancel always works. A segment of the same name in the output segmentation is
never overwritten without asking (Replace / Keep both), as on the desktop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from segforge.errors import InputError

from .jobs import job_progress
from .module_logics import module_logic
from .module_panel import ModulePanel
from .panels import Panel, register_panel
from .results import (existing_dialog, follow_input_volume, output_select, rows_table, segment_rows, segments_list,
                      show_in_3d, show_segmentation, table_state, volume_select)
from .vessel_markups import VesselMarkups

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)

KEY = "segvessel"
#: The preset selector's entries: (value, title); "custom" keeps the fields as they are.
PRESETS = (("cta", "CT angiography"), ("mra", "MR angiography"), ("dark", "Dark vessels"), ("custom", "Custom"))
#: State key of each mask field -> (VesselMaskParameters attribute, the desktop panel's default).
FIELDS = {"min_radius": ("min_radius_mm", 1.0), "max_radius": ("max_radius_mm", 4.0), "scales": ("scales", 3),
          "threshold": ("threshold", 0.1), "bright": ("bright_vessels", True),
          "limit_intensity": (None, False), "min_intensity": ("min_intensity", 150.0),
          "max_intensity": ("max_intensity", 700.0)}


def _k(name: str) -> str:
    return f"{KEY}_{name}"


def preset_values(name: str) -> dict[str, Any]:
    """The panel fields a preset sets (as the desktop preset selector fills them)."""
    from segforge.vessel.pipeline import preset

    mask = preset(name)
    values: dict[str, Any] = {"min_radius": mask.min_radius_mm, "max_radius": mask.max_radius_mm,
                              "scales": mask.scales, "threshold": mask.threshold, "bright": mask.bright_vessels,
                              "limit_intensity": mask.min_intensity is not None and mask.max_intensity is not None}
    if values["limit_intensity"]:
        values.update(min_intensity=mask.min_intensity, max_intensity=mask.max_intensity)
    return values


def _number(value: Any, label: str, kind: type = float) -> Any:
    try:
        number = kind(float(value))
    except (TypeError, ValueError):
        raise InputError(f"{label} is not a number", f"the field holds {value!r}", f"enter a number as {label}")
    return number


class VesselPanel(ModulePanel):
    """Callbacks of the SegVessel panel, bound to one :class:`AppContext`."""

    key = KEY
    volume_kind = "a CTA or MRA volume"

    def __init__(self, context: "AppContext") -> None:
        super().__init__(context)
        state = context.state
        state.setdefault(_k("preset"), "cta")
        for name, (_attr, default) in FIELDS.items():
            state.setdefault(_k(name), default)
        for name, value in preset_values(state[_k("preset")]).items():
            state[_k(name)] = value
        defaults = {"segment_name": "Vessels", "centerlines": True, "stenoses": True, "surface": True,
                    "stenosis_percent": 50.0, "segments": [], "branches": None, "stenosis_rows": None}
        for name, value in defaults.items():
            state.setdefault(_k(name), value)
        follow_input_volume(context, _k("volume"))
        self.markups = VesselMarkups(context, self._markups_changed)
        for name, value in (("place", ""), ("place_hint", ""), ("inputs", self.markups.describe())):
            state.setdefault(_k(name), value)
        state.change(_k("preset"))(self.on_preset)
        state.change(*(_k(name) for name in FIELDS))(self.on_field)

    # -- presets -----------------------------------------------------------------------------------

    def on_preset(self, **_: Any) -> None:
        name = self.state[_k("preset")]
        if name and name != "custom":
            for field, value in preset_values(name).items():
                self.state[_k(field)] = value

    def on_field(self, **_: Any) -> None:
        """A field edited away from the chosen preset makes the choice Custom (as on the desktop)."""
        name = self.state[_k("preset")]
        if not name or name == "custom":
            return
        for field, value in preset_values(name).items():
            try:
                same = abs(float(self.state[_k(field)]) - float(value)) < 1e-6
            except (TypeError, ValueError):
                same = False
            if not same:
                self.state[_k("preset")] = "custom"
                return

    # -- seed points and box ------------------------------------------------------------------------

    def place(self, mode: str) -> None:
        """Clicks in the slice views now add seed points ("seeds") or a box's corners ("roi"); again: stop."""
        self.volume()  # nothing to place them on without a volume
        hint = self.markups.toggle(mode)
        self._markups_changed()
        self._set(place_hint=hint)

    def clear(self, what: str) -> None:
        self.markups.clear(what)

    def _markups_changed(self) -> None:
        self.context.refresh_nodes()  # the seeds and the box are listed in the Data panel
        placing = self.markups.mode
        self._set(place=placing, inputs=self.markups.describe(),
                  **({} if placing else {"place_hint": ""}))

    def _set(self, **values: Any) -> None:
        self.context.set_state(**{_k(name): value for name, value in values.items()})

    # -- parameters --------------------------------------------------------------------------------

    def _mask_parameters(self) -> Any:
        """The chosen preset's parameters (Custom: the defaults) with the panel's fields over them."""
        from segforge.vessel import VesselMaskParameters
        from segforge.vessel.pipeline import preset

        s = self.state
        name = s[_k("preset")]
        base = preset(name) if name and name != "custom" else VesselMaskParameters()
        threshold = _number(s[_k("threshold")], "the threshold")
        low = None if base.low_threshold is None else min(base.low_threshold, threshold)
        limit = bool(s[_k("limit_intensity")])
        min_radius = _number(s[_k("min_radius")], "the smallest radius")
        max_radius = _number(s[_k("max_radius")], "the largest radius")
        if min_radius > max_radius:
            raise InputError("The smallest radius exceeds the largest", f"{min_radius} mm > {max_radius} mm",
                             "enter a smallest radius below the largest")
        low_hu = _number(s[_k("min_intensity")], "the minimum intensity") if limit else None
        high_hu = _number(s[_k("max_intensity")], "the maximum intensity") if limit else None
        if limit and low_hu >= high_hu:
            raise InputError("The intensity window is empty", f"minimum {low_hu} >= maximum {high_hu}",
                             "enter a minimum intensity below the maximum")
        module_logic("SegVessel")  # puts SegVesselLib on the path in a checkout
        from SegVesselLib.markups_inputs import roi_lps_from_markups, seeds_lps_from_markups

        return replace(base, min_radius_mm=min_radius, max_radius_mm=max_radius,
                       scales=_number(s[_k("scales")], "the number of scales", int),
                       bright_vessels=bool(s[_k("bright")]), threshold=threshold, low_threshold=low,
                       min_intensity=low_hu, max_intensity=high_hu,
                       seeds_lps=seeds_lps_from_markups(self.markups.seeds()),
                       roi_lps=roi_lps_from_markups(self.markups.roi()))

    def _outputs(self) -> Optional[Any]:
        """The outputs asked for beyond the mask; None when only the mask is wanted."""
        from segforge.vessel.pipeline import VesselOutputs

        centerlines = bool(self.state[_k("centerlines")])
        stenoses = centerlines and bool(self.state[_k("stenoses")])
        surface = bool(self.state[_k("surface")])
        if not (centerlines or stenoses or surface):
            return None
        return VesselOutputs(centerlines=centerlines, stenoses=stenoses, surface=surface)

    def _segment_name(self) -> str:
        name = str(self.state[_k("segment_name")] or "").strip()
        if not name:
            raise InputError("No segment name", "the segment name field is empty",
                             "enter a name for the vessel segment")
        return name

    # -- running -----------------------------------------------------------------------------------

    def check(self) -> Optional[str]:
        self.volume()
        name = self._segment_name()
        self._mask_parameters()
        output = self.output()
        if output is not None and output.GetSegmentation().GetSegmentIdBySegmentName(name):
            return f'The segmentation "{output.GetName()}" already has a segment "{name}".'
        return None

    def start_job(self, on_existing: str) -> Any:
        from segforge.vessel.pipeline import VesselPipelineParameters
        from segforge.vessel.stenosis import StenosisParameters

        volume = self.volume()
        name = self._segment_name()
        output = self.output()
        mask = self._mask_parameters()
        self.markups.stop()  # clicks in the views move them again
        self._markups_changed()
        outputs = self._outputs()
        logic = module_logic("SegVessel")
        if outputs is None:
            job = logic.start_vessel_mask(volume, segmentation_node=output, parameters=mask, segment_name=name,
                                          on_existing=on_existing)
        else:
            percent = _number(self.state[_k("stenosis_percent")], "the stenosis threshold")
            parameters = VesselPipelineParameters(mask=mask, stenosis=StenosisParameters(threshold_percent=percent),
                                                  outputs=outputs)
            job = logic.start_vessel_tree(volume, parameters, segmentation_node=output, segment_name=name,
                                          on_existing=on_existing)
        logger.info("SegVessel started on %s (%s)", volume.GetName(), on_existing)
        return job

    def done(self, result: Any) -> None:
        """Show the result: segment in 2D and 3D, models and curves in 3D, tables and a summary."""
        started = time.perf_counter()
        segmentation = getattr(result, "segmentation", result)
        surface_model = getattr(result, "surface_model", None)
        # The surface model is the segment's surface: a closed surface of the segment would hide it.
        show_segmentation(segmentation, in_3d=surface_model is None)
        if segmentation is not result:
            show_in_3d([result.centerline_model, surface_model, result.stenosis_points, *result.curves])
            if result.stenosis_points is not None:  # hundreds of labels would cover the 3D view; the table has them
                result.stenosis_points.GetDisplayNode().SetPointLabelsVisibility(False)
        self.show(segmentation, segments=segment_rows(segmentation),
                  branches=table_state(getattr(result, "branch_table", None)),
                  stenosis_rows=table_state(getattr(result, "stenosis_table", None)),
                  summary=summary(result, segmentation))
        logger.info("SegVessel result shown in %.2f s", time.perf_counter() - started)


def summary(result: Any, segmentation: Any) -> str:
    """One line: how many branches and stenoses, and where the vessels went."""
    parts = []
    if getattr(result, "branch_table", None) is not None:
        parts.append(f"{result.branch_table.GetNumberOfRows()} branches")
    if getattr(result, "stenosis_table", None) is not None:
        parts.append(f"{result.stenosis_table.GetNumberOfRows()} stenoses found")
    if getattr(result, "surface_model", None) is not None:
        parts.append("surface model")
    where = f"the vessels are in {segmentation.GetName()}"
    return f"Done: {'; '.join(parts)}; {where}." if parts else f"Done: {where}."


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3

    panel = VesselPanel(context)
    running = f"job_{KEY} && job_{KEY}.running"
    volume_select(_k("volume"), "segvessel-volume", "Input volume (CTA or MRA)")
    v3.VSelect(v_model=(_k("preset"),), items=(_k("presets"), [{"title": t, "value": v} for v, t in PRESETS]),
               label="Preset", density="compact", hide_details=True, classes="mb-2",
               raw_attrs=['data-testid="segvessel-preset"'])
    with v3.VRow(dense=True):
        for name, label in (("min_radius", "Min radius (mm)"), ("max_radius", "Max radius (mm)"),
                            ("scales", "Scales"), ("threshold", "Threshold")):
            with v3.VCol(cols=6):
                v3.VTextField(v_model=(_k(name),), label=label, type="number", density="compact",
                              hide_details=True, raw_attrs=[f'data-testid="segvessel-{name.replace("_", "-")}"'])
    v3.VCheckbox(v_model=(_k("bright"),), label="Bright vessels (contrast lumen)", density="compact",
                 hide_details=True)
    v3.VCheckbox(v_model=(_k("limit_intensity"),), label="Limit intensity", density="compact", hide_details=True)
    with v3.VRow(dense=True, v_if=(_k("limit_intensity"),)):
        for name, label in (("min_intensity", "Min intensity"), ("max_intensity", "Max intensity")):
            with v3.VCol(cols=6):
                v3.VTextField(v_model=(_k(name),), label=label, type="number", density="compact", hide_details=True)
    html.Div("Seed points and box (optional)", classes="text-caption mt-2")
    with html.Div(classes="d-flex flex-wrap", style="gap: 4px;"):
        for mode, label, icon in (("seeds", "Seed points", "mdi-map-marker-plus"), ("roi", "Box", "mdi-selection")):
            v3.VBtn(label, size="small", prepend_icon=icon, click=(context.shows_errors(panel.place), f"['{mode}']"),
                    variant=(f"{_k('place')} === '{mode}' ? 'flat' : 'outlined'",),
                    color=(f"{_k('place')} === '{mode}' ? 'primary' : undefined",),
                    raw_attrs=[f'data-testid="segvessel-{mode}"'])
            v3.VBtn(icon="mdi-close", size="small", variant="text", title=f"Remove the {label.lower()}",
                    click=(context.shows_errors(panel.clear), f"['{mode}']"),
                    raw_attrs=[f'data-testid="segvessel-{mode}-clear"'])
    html.Div(f"{{{{ {_k('place_hint')} }}}}", v_if=(_k("place_hint"),), classes="text-caption text-info")
    html.Div(f"{{{{ {_k('inputs')} }}}}", classes="text-caption", raw_attrs=['data-testid="segvessel-inputs"'])
    v3.VTextField(v_model=(_k("segment_name"),), label="Segment name", density="compact", hide_details="auto",
                  persistent_hint=True, hint="an existing one: you are asked before it is replaced", classes="my-2",
                  raw_attrs=['data-testid="segvessel-segment-name"'])
    output_select(_k("output"), "segvessel-output")
    html.Div("Outputs", classes="text-caption")
    v3.VCheckbox(v_model=(_k("centerlines"),), label="Centerlines (curves, tube model, branch table)",
                 density="compact", hide_details=True, raw_attrs=['data-testid="segvessel-centerlines"'])
    v3.VCheckbox(v_model=(_k("stenoses"),), label="Stenoses", density="compact", hide_details=True,
                 disabled=(f"!{_k('centerlines')}",))
    v3.VTextField(v_if=(f"{_k('centerlines')} && {_k('stenoses')}",), v_model=(_k("stenosis_percent"),),
                  label="Report stenoses from (% diameter)", type="number", density="compact", hide_details=True)
    v3.VCheckbox(v_model=(_k("surface"),), label="Surface model", density="compact", hide_details=True)
    v3.VBtn("Vessel tree", click=context.shows_errors(panel.run), block=True, color="primary", classes="my-2",
            prepend_icon="mdi-vector-polyline", disabled=(running,), raw_attrs=['data-testid="segvessel-run"'])
    with html.Div(raw_attrs=['data-testid="segvessel-job"']):
        job_progress(context.state, KEY, on_cancel=panel.cancel)
    existing_dialog(KEY, context.shows_errors(panel.answer))
    # data-results counts the results shown, so a test (or a script) can tell a new one from the last.
    with html.Div(raw_attrs=['data-testid="segvessel-results"', f':data-results="{_k("results")}"']):
        html.Div(f"{{{{ {_k('summary')} }}}}", v_if=(_k("summary"),), classes="text-body-2 my-1",
                 raw_attrs=['data-testid="segvessel-summary"'])
        segments_list(_k("segments"), "segvessel-segments")
        rows_table(_k("branches"), "segvessel-branches", "Branches")
        rows_table(_k("stenosis_rows"), "segvessel-stenoses", "Stenoses")


register_panel(Panel(id=KEY, title="SegVessel", icon="mdi-heart-pulse", build=build, order=10))
