"""SegVessel's Fine-tune section in the web app: (volume, vessel segment) pairs of the scene, a
base model, steps, Train, progress with Cancel, and the new model in SegVessel's model list.

Thin, like the desktop section: the fields fill :class:`SegVesselLib.fine_tune.FineTuneForm`
(its rules say what is wrong before anything is sent), the desktop module's Logic sends the
pairs to the worker (``start_fine_tune``), and the app's job tracker follows the job, so the
page never waits. The section sits in its own collapsible block under the SegVessel panel.
"""
from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from segforge.errors import InputError
from SegVesselLib.fine_tune import FineTuneForm, ScenePair, base_model_choices

from .context import NODES_KEY
from .jobs import job_progress
from .module_logics import app_module_logic
from .results import node_of, segment_rows, volume_select

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger(__name__)

KEY = "segvessel_finetune"
#: The form fields the section shows (the device follows the form's default: auto).
FIELDS = ("model_id", "base_model", "steps", "patch_size", "batch_size", "learning_rate", "split", "min_dice",
          "resume")


def _k(name: str) -> str:
    return f"{KEY}_{name}"


class FineTunePanel:
    """Callbacks of the Fine-tune section; ``on_new_model`` refreshes the panel's model list."""

    def __init__(self, context: "AppContext", on_new_model: Callable[[], None]) -> None:
        self.context = context
        self.on_new_model = on_new_model
        state = context.state
        for name, value in FineTuneForm().values().items():
            if name in FIELDS:
                state.setdefault(_k(name), value)
        for name, value in (("volume", None), ("segmentation", None), ("segments", []), ("segment", ""),
                            ("pairs", []), ("summary", ""), ("curve", ""), ("results", 0)):
            state.setdefault(_k(name), value)
        self.refresh_base_models()
        state.change(_k("segmentation"), NODES_KEY)(self.on_segmentation)

    @property
    def state(self) -> Any:
        return self.context.state

    def refresh_base_models(self) -> None:
        self.state[_k("base_models")] = [{"title": title, "value": value} for value, title in base_model_choices()]

    def on_segmentation(self, **_: Any) -> None:
        """List the chosen segmentation's segments; keep the chosen one while it is there, else the first."""
        rows = segment_rows(node_of(self.context, self.state[_k("segmentation")], "vtkMRMLSegmentationNode"))
        self.state[_k("segments")] = [{"title": row["name"], "value": row["id"]} for row in rows]
        if self.state[_k("segment")] not in [row["id"] for row in rows]:
            self.state[_k("segment")] = rows[0]["id"] if rows else ""

    # -- pairs -------------------------------------------------------------------------------------

    def add_pair(self) -> None:
        """The chosen volume and vessel segment become a training pair (the last one added validates)."""
        volume = node_of(self.context, self.state[_k("volume")], "vtkMRMLScalarVolumeNode")
        segmentation = node_of(self.context, self.state[_k("segmentation")], "vtkMRMLSegmentationNode")
        segment = self.state[_k("segment")]
        if volume is None or segmentation is None or not segment:
            raise InputError("The pair is incomplete", "a pair is a volume and the vessel segment drawn on it",
                             "choose a volume, a segmentation and its vessel segment, then Add pair")
        pair = ScenePair(volume, segmentation, segment)
        self.state[_k("pairs")] = [*self.state[_k("pairs")], {"volume": volume.GetID(),
                                                              "segmentation": segmentation.GetID(),
                                                              "segment": segment, "title": pair.describe()}]

    def remove_pair(self, index: int) -> None:
        pairs = list(self.state[_k("pairs")])
        if 0 <= index < len(pairs):
            del pairs[index]
        self.state[_k("pairs")] = pairs

    def scene_pairs(self) -> list[ScenePair]:
        pairs = []
        for row in self.state[_k("pairs")]:
            volume = node_of(self.context, row["volume"], "vtkMRMLScalarVolumeNode")
            segmentation = node_of(self.context, row["segmentation"], "vtkMRMLSegmentationNode")
            if volume is None or segmentation is None:
                raise InputError(f"The pair {row['title']} is no longer in the scene",
                                 "its volume or segmentation was removed", "remove the pair from the list")
            pairs.append(ScenePair(volume, segmentation, row["segment"]))
        return pairs

    # -- running -----------------------------------------------------------------------------------

    def form(self) -> FineTuneForm:
        return FineTuneForm.from_values({name: self.state[_k(name)] for name in FIELDS})

    def train(self) -> None:
        if self.context.jobs.is_running(KEY):
            return
        job = app_module_logic("SegVessel").start_fine_tune(self.scene_pairs(), self.form())
        self.context.set_state(**{_k("summary"): "", _k("curve"): ""})
        self.context.jobs.start(KEY, job, self.done)
        logger.info("Fine-tune of %s started on %d pairs", self.form().model_id, len(self.state[_k("pairs")]))

    def cancel(self) -> None:
        self.context.jobs.cancel(KEY)

    def done(self, result: Any) -> None:
        """The model is installed: list it in SegVessel's model list and as a base, show the curve."""
        self.on_new_model()
        self.refresh_base_models()
        curve = Path(result.curve_png) if result.curve_png else None
        picture = ("data:image/png;base64," + base64.b64encode(curve.read_bytes()).decode()
                   if curve is not None and curve.is_file() else "")
        self.context.set_state(**{_k("summary"): result.summary, _k("curve"): picture,
                                  _k("results"): int(self.state[_k("results")] or 0) + 1})


def build_fine_tune(context: "AppContext", on_new_model: Callable[[], None]) -> FineTunePanel:
    """Lay out the Fine-tune section (call inside the SegVessel panel's body)."""
    from trame.widgets import html, vuetify3 as v3

    panel = FineTunePanel(context, on_new_model)
    running = f"job_{KEY} && job_{KEY}.running"
    with v3.VExpansionPanels(classes="mt-2", raw_attrs=['data-testid="segvessel-finetune"']):
        with v3.VExpansionPanel(raw_attrs=['data-testid="segvessel-finetune-section"']):
            v3.VExpansionPanelTitle("Fine-tune a vessel model", raw_attrs=['data-testid="segvessel-finetune-open"'])
            with v3.VExpansionPanelText():
                html.Div("Pairs: a volume and the vessel segment drawn on it (the last pair validates)",
                         classes="text-caption")
                volume_select(_k("volume"), "segvessel-finetune-volume", "Volume")
                v3.VSelect(v_model=(_k("segmentation"),),
                           items=("scene_nodes.filter(n => n.kind === 'segmentation')",), item_title="name",
                           item_value="id", label="Segmentation", density="compact", hide_details=True,
                           classes="mb-2", raw_attrs=['data-testid="segvessel-finetune-segmentation"'])
                v3.VSelect(v_model=(_k("segment"),), items=(_k("segments"),), label="Vessel segment",
                           density="compact", hide_details=True, classes="mb-2",
                           raw_attrs=['data-testid="segvessel-finetune-segment"'])
                v3.VBtn("Add pair", size="small", prepend_icon="mdi-plus", click=context.shows_errors(panel.add_pair),
                        raw_attrs=['data-testid="segvessel-finetune-add"'])
                with v3.VList(density="compact", raw_attrs=['data-testid="segvessel-finetune-pairs"']):
                    with v3.VListItem(v_for=f"(pair, index) in {_k('pairs')}", key="index"):
                        v3.VListItemTitle("{{ index + 1 }}. {{ pair.title }}", classes="pair-title")
                        with v3.Template(v_slot_append=True):
                            v3.VBtn(icon="mdi-close", size="x-small", variant="text",
                                    click=(context.shows_errors(panel.remove_pair), "[index]"))
                v3.VTextField(v_model=(_k("model_id"),), label="New model name (e.g. my-vessels)", density="compact",
                              hide_details=True, classes="my-2", raw_attrs=['data-testid="segvessel-finetune-name"'])
                v3.VSelect(v_model=(_k("base_model"),), items=(_k("base_models"),), label="Start from",
                           density="compact", hide_details=True, classes="mb-2",
                           raw_attrs=['data-testid="segvessel-finetune-base"'])
                with v3.VRow(dense=True):
                    for name, label in (("steps", "Steps"), ("patch_size", "Patch (voxels)"),
                                        ("batch_size", "Batch"), ("learning_rate", "Learning rate")):
                        with v3.VCol(cols=6):
                            v3.VTextField(v_model=(_k(name),), label=label, type="number", density="compact",
                                          hide_details=True,
                                          raw_attrs=[f'data-testid="segvessel-finetune-{name.replace("_", "-")}"'])
                v3.VCheckbox(v_model=(_k("split"),), label="One volume: train on one half, validate on the other",
                             density="compact", hide_details=True, raw_attrs=['data-testid="segvessel-finetune-split"'])
                v3.VCheckbox(v_model=(_k("resume"),), label="Go on from where a cancelled run of this name stopped",
                             density="compact", hide_details=True,
                             raw_attrs=['data-testid="segvessel-finetune-resume"'])
                v3.VBtn("Train", click=context.shows_errors(panel.train), block=True, color="primary", classes="my-2",
                        prepend_icon="mdi-school", disabled=(running,),
                        raw_attrs=['data-testid="segvessel-finetune-run"'])
                with html.Div(raw_attrs=['data-testid="segvessel-finetune-job"']):
                    job_progress(context.state, KEY, on_cancel=panel.cancel)
                with html.Div(raw_attrs=['data-testid="segvessel-finetune-results"',
                                         f':data-results="{_k("results")}"']):
                    html.Div(f"{{{{ {_k('summary')} }}}}", v_if=(_k("summary"),), classes="text-body-2 my-1",
                             raw_attrs=['data-testid="segvessel-finetune-summary"'])
                    html.Img(v_if=(_k("curve"),), src=(_k("curve"),), style="width: 100%;",
                             raw_attrs=['data-testid="segvessel-finetune-curve"', 'alt="Training curve"'])
    return panel
