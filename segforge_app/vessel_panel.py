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
from typing import TYPE_CHECKING, Any, Optional

from segforge.errors import InputError
from segforge.forms import DEVICE_TITLES
from SegVesselLib.form import (CUSTOM, FORM_FIELDS_FROM_MARKUPS, INPUT_KINDS, PRESET_CHOICES, PRESET_FIELDS, VesselForm,
                               model_choices, preset_fields)
from SegVesselLib.markups_inputs import points_lps_from_markups, roi_lps_from_markups, source_lps_from_markups
from SegVesselLib.tree_nodes import summary_of

from .jobs import job_progress
from .module_logics import app_module_logic
from .module_panel import ModulePanel
from .panels import Panel, register_panel
from .context import NODES_KEY
from .fine_tune_panel import build_fine_tune
from .results import (existing_dialog, follow_input_volume, node_of, output_select, rows_table, segment_rows,
                      segments_list, show_in_3d, show_segmentation, table_state, volume_select)
from .vessel_markups import VesselMarkups

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)

KEY = "segvessel"
#: The preset selector's titles, by the form's preset choices.
PRESET_TITLES = {"cta": "CT angiography", "mra": "MR angiography", "dark": "Dark vessels", "custom": "Custom"}
#: The input selector's titles, by the form's input kinds.
INPUT_TITLES = {"volume": "A CTA / MRA volume", "segment": "A vessel segment", "both": "A segment and its volume"}
#: The point lists placed in the views: (mode, button label, icon).
POINT_BUTTONS = (("seeds", "Seed points", "mdi-map-marker-plus"), ("roi", "Box", "mdi-selection"),
                 ("source", "Source", "mdi-ray-start"), ("targets", "Targets", "mdi-ray-end"),
                 ("landmarks", "Landmarks", "mdi-ruler"))
#: The form fields the panel's state holds (the points and the box are markups nodes instead).
STATE_FIELDS = tuple(name for name in VesselForm.field_names() if name not in FORM_FIELDS_FROM_MARKUPS)


def _k(name: str) -> str:
    return f"{KEY}_{name}"


def form_from_state(state: Any, seeds_lps: tuple = (), roi_lps: Optional[tuple] = None,
                    source_lps: Optional[tuple] = None, targets_lps: tuple = (),
                    landmarks_lps: tuple = ()) -> VesselForm:
    """The panel's form: each field from its state key (text fields give strings), the markups' points and box."""
    return VesselForm.from_values({**{name: state[_k(name)] for name in STATE_FIELDS},
                                   "seeds_lps": seeds_lps, "roi_lps": roi_lps, "source_lps": source_lps,
                                   "targets_lps": targets_lps, "landmarks_lps": landmarks_lps})


class VesselPanel(ModulePanel):
    """Callbacks of the SegVessel panel, bound to one :class:`AppContext`."""

    key = KEY
    module = "SegVessel"
    volume_kind = "a CTA or MRA volume"

    def __init__(self, context: "AppContext") -> None:
        super().__init__(context)
        state = context.state
        for name, value in VesselForm().values().items():
            if name in STATE_FIELDS:
                state.setdefault(_k(name), value)
        self.refresh_models()
        for name, value in (("segments", []), ("branches", None), ("stenosis_rows", None), ("section_rows", None),
                            ("landmark_rows", None), ("plot", "")):
            state.setdefault(_k(name), value)
        follow_input_volume(context, _k("volume"))
        state.setdefault(_k("input_segmentation"), None)
        state.setdefault(_k("input_segments"), [])
        self._segments_observed: tuple[Optional[Any], list[int]] = (None, [])  # the vtkSegmentation followed
        state.change(_k("input_segmentation"), NODES_KEY)(self.on_input_segmentation)
        self.markups = VesselMarkups(context, self._markups_changed)
        for name, value in (("place", ""), ("place_hint", ""), ("inputs", self.markups.describe())):
            state.setdefault(_k(name), value)
        # a scene loaded (a .mrb with the panel's point lists) or edited elsewhere: say what is used
        state.change(NODES_KEY)(lambda **_: self._set(inputs=self.markups.describe()))
        state.change(_k("preset"))(self.on_preset)
        state.change(*(_k(name) for name in PRESET_FIELDS))(self.on_field)

    def refresh_models(self) -> None:
        """The model list: automatic, the builtin filter, each installed deep model (a model just
        trained in the Fine-tune section included)."""
        self.state[_k("models")] = [{"title": title, "value": value} for value, title in model_choices()]

    # -- presets -----------------------------------------------------------------------------------

    def on_preset(self, **_: Any) -> None:
        """A preset fills the fields (the form says which); Custom leaves them as they are."""
        name = self.state[_k("preset")]
        if name and name != CUSTOM:
            for field, value in preset_fields(name, self._form_or_none()).items():
                self.state[_k(field)] = value

    def on_field(self, **_: Any) -> None:
        """A field edited away from the chosen preset makes the choice Custom (the form's rule)."""
        form = self._form_or_none()
        if form is not None and form.shown_preset() != self.state[_k("preset")]:
            self.state[_k("preset")] = form.shown_preset()

    def on_input_segmentation(self, **_: Any) -> None:
        """List the chosen segmentation's segments; keep the chosen segment while it is there, else the first.
        The list follows the segmentation's segments being added, renamed or removed from then on."""
        segmentation = self.input_segmentation()
        self._observe_segments(segmentation)
        items = _segment_items(segmentation)
        self.state[_k("input_segments")] = items
        ids = [item["value"] for item in items]
        if self.state[_k("segment")] not in ids:
            self.state[_k("segment")] = ids[0] if ids else ""

    def _observe_segments(self, segmentation_node: Optional[Any]) -> None:
        """Follow the segments of the chosen segmentation: the list went stale when a segment was
        added, renamed or removed without the scene's node list changing (SegInteractive's new
        segment), and a removed chosen segment was run as a raw segment ID."""
        import slicer

        segmentation = segmentation_node.GetSegmentation() if segmentation_node is not None else None
        observed, tags = self._segments_observed
        if observed is segmentation:
            return
        for tag in tags:
            observed.RemoveObserver(tag)
        tags = [] if segmentation is None else [
            segmentation.AddObserver(event, lambda *_: self.context.shows_errors(self._segments_changed)())
            for event in (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                          slicer.vtkSegmentation.SegmentModified)]
        self._segments_observed = (segmentation, tags)

    def _segments_changed(self) -> None:
        """The chosen segmentation's segments changed: list them again; a chosen segment removed is
        not replaced by another behind the user's back (Run asks to choose one)."""
        items = _segment_items(self.input_segmentation())
        kept = any(item["value"] == self.state[_k("segment")] for item in items)
        self._set(input_segments=items, **({} if kept else {"segment": ""}))

    def input_segmentation(self) -> Any:
        """The segmentation holding the vessel segment; None when none is chosen."""
        return node_of(self.context, self.state[_k("input_segmentation")], "vtkMRMLSegmentationNode")

    def _form_or_none(self) -> Optional[VesselForm]:
        try:
            return form_from_state(self.state)
        except InputError:  # a field being typed that is not a number yet
            return None

    # -- seed points and box ------------------------------------------------------------------------

    def place(self, mode: str) -> None:
        """Clicks in the slice views now add points ("seeds", "source", "targets", "landmarks") or a
        box's corners ("roi"); again: stop."""
        if self.state[_k("input_kind")] == "volume":
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

    # -- the form ---------------------------------------------------------------------------------

    def form(self) -> VesselForm:
        """The panel's form, with the points and box placed in the views."""
        return form_from_state(self.state, points_lps_from_markups(self.markups.seeds()),
                               roi_lps_from_markups(self.markups.roi()),
                               source_lps=source_lps_from_markups(self.markups.points("source")),
                               targets_lps=points_lps_from_markups(self.markups.points("targets")),
                               landmarks_lps=points_lps_from_markups(self.markups.points("landmarks")))

    # -- running -----------------------------------------------------------------------------------

    def _inputs(self, form: VesselForm) -> tuple[Any, Any]:
        """The volume and the input segmentation the form's job needs (None for one it does not)."""
        inputs = form.job().inputs  # refused here, with what to change, before the question below
        volume = self.volume() if "image" in inputs else None
        segmentation = self.input_segmentation() if "segment" in inputs else None
        if "segment" in inputs and segmentation is None:
            raise InputError("No segmentation is chosen", "the input is a vessel segment",
                             "load or make a segmentation, then choose it and its vessel segment")
        return volume, segmentation

    def job_volume(self) -> Optional[Any]:
        """The volume only when the form's job takes the image: a segment-only result was titled
        "of <volume>" and carried that volume's id, a volume it never used."""
        return self._inputs(self.form())[0]

    def check(self) -> Optional[str]:
        form = self.form()
        self._inputs(form)
        return app_module_logic("SegVessel").clash_question(self.output(), form)

    def start_job(self, on_existing: str) -> Any:
        form, output = self.form(), self.output()
        volume, segmentation = self._inputs(form)
        self.markups.stop()  # clicks in the views move them again
        self._markups_changed()
        job = app_module_logic("SegVessel").start(volume, form, segmentation_node=output, on_existing=on_existing,
                                                  input_segmentation=segmentation)
        logger.info("SegVessel started on %s (%s)", (volume or segmentation).GetName(), on_existing)
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
        tree = getattr(result, "tree", None)
        self.show(segmentation, segments=segment_rows(segmentation),
                  branches=table_state(getattr(result, "branch_table", None)),
                  stenosis_rows=table_state(getattr(result, "stenosis_table", None)),
                  section_rows=table_state(getattr(result, "section_table", None)),
                  landmark_rows=table_state(getattr(result, "landmark_table", None)),
                  plot=diameter_picture(tree) if tree is not None and tree.profiles else "",
                  summary=summary_of(result))
        logger.info("SegVessel result shown in %.2f s", time.perf_counter() - started)


def diameter_picture(tree: Any) -> str:
    """The diameter plot of a result as a PNG data URL (the page shows it as an image)."""
    import base64

    from segforge.vessel.diameter_plot import diameter_plot_png
    from segforge.vessel.outputs import plot_marks

    return "data:image/png;base64," + base64.b64encode(diameter_plot_png(tree.profiles, plot_marks(tree))).decode()


def _testid(name: str) -> str:
    """A field's data-testid suffix: min_radius_mm -> min-radius (units dropped)."""
    return name.removesuffix("_mm").replace("_", "-")


def _mask_fields() -> None:
    """The preset and the vessel filter's fields."""
    from trame.widgets import vuetify3 as v3

    v3.VSelect(v_model=(_k("preset"),), items=(_k("presets"), [{"title": PRESET_TITLES[v], "value": v}
                                                            for v in PRESET_CHOICES]),
               label="Preset", density="compact", hide_details=True, classes="mb-2",
               raw_attrs=['data-testid="segvessel-preset"'])
    with v3.VRow(dense=True):
        for name, label in (("min_radius_mm", "Min radius (mm)"), ("max_radius_mm", "Max radius (mm)"),
                            ("scales", "Scales"), ("threshold", "Threshold")):
            with v3.VCol(cols=6):
                v3.VTextField(v_model=(_k(name),), label=label, type="number", density="compact",
                              hide_details=True, raw_attrs=[f'data-testid="segvessel-{_testid(name)}"'])
    for name, label in (("bright_vessels", "Bright vessels (contrast lumen)"),
                        ("hysteresis", "Hysteresis (grow into weaker vessel voxels)"),
                        ("limit_intensity", "Limit intensity")):
        v3.VCheckbox(v_model=(_k(name),), label=label, density="compact", hide_details=True,
                     raw_attrs=[f'data-testid="segvessel-{_testid(name)}"'])
    with v3.VRow(dense=True, v_if=(_k("limit_intensity"),)):
        for name, label in (("min_intensity", "Min intensity"), ("max_intensity", "Max intensity")):
            with v3.VCol(cols=6):
                v3.VTextField(v_model=(_k(name),), label=label, type="number", density="compact", hide_details=True,
                              raw_attrs=[f'data-testid="segvessel-{_testid(name)}"'])
    for name, label in (("largest_component", "Largest vessel tree only"),
                        ("refine_lumen", "Refine the edge to the lumen")):
        v3.VCheckbox(v_model=(_k(name),), label=label, density="compact", hide_details=True,
                     raw_attrs=[f'data-testid="segvessel-{_testid(name)}"'])
    with v3.VRow(dense=True):
        with v3.VCol(cols=7):
            v3.VSelect(v_model=(_k("model"),), items=(_k("models"),), label="Model", density="compact",
                       hide_details=True, raw_attrs=['data-testid="segvessel-model"'])
        with v3.VCol(cols=5):
            v3.VSelect(v_model=(_k("device"),), items=(_k("devices"), [{"title": t, "value": v}
                                                                      for v, t in DEVICE_TITLES.items()]),
                       label="Device", density="compact", hide_details=True,
                       raw_attrs=['data-testid="segvessel-device"'])


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3

    panel = VesselPanel(context)
    running = f"job_{KEY} && job_{KEY}.running"
    v3.VSelect(v_model=(_k("input_kind"),), items=(_k("input_kinds"), [{"title": INPUT_TITLES[v], "value": v}
                                                                     for v in INPUT_KINDS]),
               label="Input", density="compact", hide_details=True, classes="mb-2",
               raw_attrs=['data-testid="segvessel-input-kind"'])
    with html.Div(v_if=(f"{_k('input_kind')} !== 'segment'",)):
        volume_select(_k("volume"), "segvessel-volume", "Input volume (CTA or MRA)")
    with html.Div(v_if=(f"{_k('input_kind')} !== 'volume'",)):
        v3.VSelect(v_model=(_k("input_segmentation"),), items=("scene_nodes.filter(n => n.kind === 'segmentation')",),
                   item_title="name", item_value="id", label="Segmentation", density="compact", hide_details=True,
                   no_data_text="no segmentation: load one in the Data panel", classes="mb-2",
                   raw_attrs=['data-testid="segvessel-input-segmentation"'])
        v3.VSelect(v_model=(_k("segment"),), items=(_k("input_segments"),), label="Vessel segment",
                   density="compact", hide_details=True, no_data_text="no segment", classes="mb-2",
                   raw_attrs=['data-testid="segvessel-segment"'])
    # The vessel filter's fields: a segment is the mask, so they only matter for a volume alone.
    with html.Div(v_if=(f"{_k('input_kind')} === 'volume'",)):
        _mask_fields()
    html.Div("Points and box (optional)", classes="text-caption mt-2")
    with html.Div(classes="d-flex flex-wrap", style="gap: 4px;"):
        for mode, label, icon in POINT_BUTTONS:
            v3.VBtn(label, size="small", prepend_icon=icon, click=(context.shows_errors(panel.place), f"['{mode}']"),
                    variant=(f"{_k('place')} === '{mode}' ? 'flat' : 'outlined'",),
                    color=(f"{_k('place')} === '{mode}' ? 'primary' : undefined",),
                    raw_attrs=[f'data-testid="segvessel-{mode}"'])
            v3.VBtn(icon="mdi-close", size="small", variant="text", title=f"Remove the {label.lower()}",
                    click=(context.shows_errors(panel.clear), f"['{mode}']"),
                    raw_attrs=[f'data-testid="segvessel-{mode}-clear"'])
    html.Div(f"{{{{ {_k('place_hint')} }}}}", v_if=(_k("place_hint"),), classes="text-caption text-info")
    html.Div(f"{{{{ {_k('inputs')} }}}}", classes="text-caption", raw_attrs=['data-testid="segvessel-inputs"'])
    v3.VTextField(v_model=(_k("close_holes_mm"),), label="Close holes up to (mm; 0: off)", type="number",
                  density="compact", hide_details=True, classes="mt-2",
                  raw_attrs=['data-testid="segvessel-close-holes"'])
    v3.VTextField(v_model=(_k("segment_name"),), label="Segment name", density="compact", hide_details="auto",
                  persistent_hint=True, hint="an existing one: you are asked before it is replaced", classes="my-2",
                  raw_attrs=['data-testid="segvessel-segment-name"'])
    output_select(_k("output"), "segvessel-output")
    html.Div("Outputs", classes="text-caption")
    v3.VCheckbox(v_model=(_k("create_centerlines"),), label="Centerlines (curves, tube model, branch table)",
                 density="compact", hide_details=True, raw_attrs=['data-testid="segvessel-centerlines"'])
    v3.VCheckbox(v_model=(_k("create_stenoses"),), label="Findings (stenoses, dilatations)", density="compact",
                 hide_details=True,
                 disabled=(f"!{_k('create_centerlines')}",))
    v3.VTextField(v_if=(f"{_k('create_centerlines')} && {_k('create_stenoses')}",),
                  v_model=(_k("stenosis_threshold_percent"),),
                  label="Report stenoses from (% diameter)", type="number", density="compact", hide_details=True)
    v3.VTextField(v_if=(f"{_k('create_centerlines')} && {_k('create_stenoses')}",),
                  v_model=(_k("dilatation_ratio"),),
                  label="Report dilatations from (x reference diameter)", type="number", density="compact",
                  hide_details=True)
    v3.VCheckbox(v_model=(_k("create_surface"),), label="Surface model", density="compact", hide_details=True,
                 raw_attrs=['data-testid="segvessel-surface"'])
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
        rows_table(_k("stenosis_rows"), "segvessel-stenoses", "Findings")
        rows_table(_k("landmark_rows"), "segvessel-landmarks", "Landmarks")
        html.Img(v_if=(_k("plot"),), src=(_k("plot"),), style="width: 100%;", classes="mt-2",
                 raw_attrs=['data-testid="segvessel-plot"', 'alt="Diameter along the branches"'])
        rows_table(_k("section_rows"), "segvessel-sections", "Cross-sections")
    build_fine_tune(context, panel.refresh_models)  # its own collapsible block, below the results


register_panel(Panel(id=KEY, title="SegVessel", build=build, order=10))


def _segment_items(segmentation_node: Optional[Any]) -> list[dict]:
    """The segment select's items: each segment's name shown, its ID chosen."""
    return [{"title": row["name"], "value": row["id"]} for row in segment_rows(segmentation_node)]
