"""The SegOrgan panel: a segment per structure and a statistics table from a CT or MR volume.

The desktop SegOrgan module's choices (model, structures, statistics, surfaces) drive the
desktop module's own Logic (``start_organ_segmentation``) through the app's job tracker.
Models that are not installed are listed with what to do about them; segments of the same
names in the output segmentation are never overwritten without asking (Replace / Keep both).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

from segforge.forms import DEVICE_TITLES
from SegOrganLib.form import OrganForm, summary

from .jobs import job_progress
from .module_logics import app_module_logic
from .module_panel import ModulePanel
from .panels import Panel, register_panel
from .results import (existing_dialog, follow_input_volume, output_select, rows_table, segment_rows, segments_list,
                      show_segmentation, table_state, volume_select)

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)

KEY = "segorgan"
FORM = OrganForm()


def _k(name: str) -> str:
    return f"{KEY}_{name}"


class OrganPanel(ModulePanel):
    """Callbacks of the SegOrgan panel, bound to one :class:`AppContext`."""

    key = KEY
    module = "SegOrgan"
    volume_kind = "a CT or MR volume"

    def __init__(self, context: "AppContext") -> None:
        super().__init__(context)
        state = context.state
        self.models = {model.id: model for model in app_module_logic("SegOrgan").models()}
        state[_k("models")] = [{"title": model.title, "value": model.id} for model in self.models.values()]
        defaults = {"model": FORM.model if FORM.model in self.models else next(iter(self.models), None),
                    "statistics": FORM.create_statistics, "surfaces": FORM.create_surfaces, "fast": FORM.fast,
                    "device": FORM.device, "segments": [], "statistics_rows": None, "warnings": []}
        for name, value in defaults.items():
            state.setdefault(_k(name), value)
        self.on_model()
        follow_input_volume(context, _k("volume"))
        state.change(_k("model"))(self.on_model)

    def _model(self) -> Optional[Any]:
        return self.models.get(self.state[_k("model")])

    def on_model(self, **_: Any) -> None:
        """A model chosen: its structures (all of them chosen) and its warning, if any."""
        model = self._model()
        structures = list(model.structures) if model is not None else []
        self.state[_k("structure_items")] = structures
        self.state[_k("structures")] = structures
        self.state[_k("model_warning")] = (model.warning or "") if model is not None else ""
        self.state[_k("has_fast")] = bool(model is not None and model.has_fast)
        self.state[_k("fast")] = bool(self.state[_k("fast")] and self.state[_k("has_fast")])

    def form(self) -> Any:
        """The panel's OrganForm (every structure of the model chosen means all of them)."""
        return form_from_state(self.state, self._model())

    # -- running -----------------------------------------------------------------------------------

    def check(self) -> Optional[str]:
        self.volume()
        return app_module_logic("SegOrgan").clash_question(self.output(), self.form())

    def start_job(self, on_existing: str) -> Any:
        volume, form = self.volume(), self.form()
        job = app_module_logic("SegOrgan").start(volume, form, segmentation_node=self.output(),
                                                 on_existing=on_existing)
        logger.info("SegOrgan started on %s with %s (%s)", volume.GetName(), form.model, on_existing)
        return job

    def done(self, nodes: Any) -> None:
        """Show the result: segments in 2D (and in 3D with surfaces), statistics, summary, warnings."""
        show_segmentation(nodes.segmentation, in_3d=bool(self.state[_k("surfaces")]))
        self.show(nodes.segmentation, segments=segment_rows(nodes.segmentation),
                  statistics_rows=table_state(nodes.statistics_table), summary=summary(nodes),
                  warnings=list(nodes.warnings))


def form_from_state(state: Any, model: Optional[Any]) -> Any:
    """The OrganForm of the panel's state; ``model``: the chosen OrganModelChoice (None if unknown)."""
    chosen = tuple(state[_k("structures")] or ())
    every = model is not None and set(model.structures) <= set(chosen)
    return OrganForm.from_values({"model": state[_k("model")] or "", "structures": None if every else chosen,
                                  "fast": state[_k("fast")], "device": state[_k("device")],
                                  "create_statistics": state[_k("statistics")],
                                  "create_surfaces": state[_k("surfaces")]})


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3

    panel = OrganPanel(context)
    running = f"job_{KEY} && job_{KEY}.running"
    volume_select(_k("volume"), "segorgan-volume", "Input volume (CT or MR)")
    v3.VSelect(v_model=(_k("model"),), items=(_k("models"),), label="Model", density="compact", hide_details=True,
               classes="mb-1", raw_attrs=['data-testid="segorgan-model"'])
    v3.VAlert(f"{{{{ {_k('model_warning')} }}}}", v_if=(_k("model_warning"),), type="warning", density="compact",
              variant="tonal", classes="mb-2 text-caption", raw_attrs=['data-testid="segorgan-model-warning"'])
    with v3.VSelect(v_model=(_k("structures"),), items=(_k("structure_items"),), label="Structures", multiple=True,
                    chips=True, closable_chips=True, density="compact", hide_details="auto", persistent_hint=True,
                    hint=(f"`${{({_k('structures')} || []).length}} of ${{{_k('structure_items')}.length}} chosen`",),
                    classes="mb-2", raw_attrs=['data-testid="segorgan-structures"']):
        # Many structures (TotalSegmentator: 117) as chips would fill the drawer: four, then a count.
        with v3.Template(v_slot_chip="{ item, index, props }"):
            v3.VChip("{{ item.title }}", v_if="index < 4", v_bind="props", size="small")
            html.Span(f"(+{{{{ {_k('structures')}.length - 4 }}}} more)", v_if="index === 4",
                      classes="text-caption")
    v3.VCheckbox(v_if=(_k("has_fast"),), v_model=(_k("fast"),), label="Fast (low-resolution variant)",
                 density="compact", hide_details=True)
    v3.VSelect(v_model=(_k("device"),), items=([{"title": t, "value": v} for v, t in DEVICE_TITLES.items()],),
               label="Device", density="compact", hide_details=True, classes="mb-1",
               raw_attrs=['data-testid="segorgan-device"'])
    v3.VCheckbox(v_model=(_k("statistics"),), label="Statistics table", density="compact", hide_details=True)
    v3.VCheckbox(v_model=(_k("surfaces"),), label="3D surfaces", density="compact", hide_details=True,
                 raw_attrs=['data-testid="segorgan-surfaces"'])
    output_select(_k("output"), "segorgan-output")
    v3.VBtn("Segment", click=context.shows_errors(panel.run), block=True, color="primary", classes="my-2",
            prepend_icon="mdi-human", disabled=(running,), raw_attrs=['data-testid="segorgan-run"'])
    with html.Div(raw_attrs=['data-testid="segorgan-job"']):
        job_progress(context.state, KEY, on_cancel=panel.cancel)
    existing_dialog(KEY, context.shows_errors(panel.answer))
    # data-results counts the results shown, so a test (or a script) can tell a new one from the last.
    with html.Div(raw_attrs=['data-testid="segorgan-results"', f':data-results="{_k("results")}"']):
        html.Div(f"{{{{ {_k('summary')} }}}}", v_if=(_k("summary"),), classes="text-body-2 my-1",
                 raw_attrs=['data-testid="segorgan-summary"'])
        v3.VAlert(v_for=f"warning in {_k('warnings')}", text=("warning",), type="warning", density="compact",
                  variant="tonal", classes="mb-1 text-caption", raw_attrs=['data-testid="segorgan-warning"'])
        segments_list(_k("segments"), "segorgan-segments")
        rows_table(_k("statistics_rows"), "segorgan-statistics", "Statistics")


register_panel(Panel(id=KEY, title="SegOrgan", build=build, order=20))
