"""The same field values, typed into the desktop panel, the web panel or the CLI, run the same job.

Each module has one form (``SegXxxLib/form.py``). For every row of a table of field values
this test fills it three ways, as each front end does — the desktop panel's parameter node
(its fields and defaults read from ``SegXxx.py``, seeds and box as real MRML markups), the web
panel's state (``form_from_state``) and the CLI's options (the real argument parser) — and
checks that all three give equal engine parameters and the same job. Rows cover every field
and preset; the row named "cta-threshold-0.1" is the case where the front ends once
disagreed (the CLI's rule, low threshold = threshold x 0.5, is the one that stayed).
"""
from __future__ import annotations

import ast
import importlib
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from conftest import REPO
from segforge.cli.main import build_parser
from segforge.forms import camel

FRONT_ENDS = ("desktop", "web", "cli")


# -- the desktop panel: its parameter node as SegXxx.py declares it -------------------------------


def parameter_node_fields(module: str) -> dict[str, Any]:
    """The fields of ``SegXxx.py``'s parameterNodeWrapper class and their defaults (None: a node)."""
    tree = ast.parse((REPO / module / f"{module}.py").read_text())
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef)
                   and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list))
    return {node.target.id: None if node.value is None else _value(node.value, tree)
            for node in wrapper.body if isinstance(node, ast.AnnAssign)}


def _value(node: ast.expr, tree: ast.Module) -> Any:
    """A default as written: a literal, or a name the module file imports (``NEW_SEGMENT``)."""
    if not isinstance(node, ast.Name):
        return ast.literal_eval(node)
    source = next(i.module for i in tree.body if isinstance(i, ast.ImportFrom)
                  and node.id in [a.name for a in i.names])
    return getattr(importlib.import_module(source), node.id)


def parameter_node(module: str, values: dict[str, Any]) -> SimpleNamespace:
    """A stand-in parameter node: SegXxx.py's fields at their defaults, then ``values`` (camelCase)."""
    fields = parameter_node_fields(module)
    unknown = set(values) - set(fields)
    assert not unknown, f"{module}.py's parameter node has no fields {sorted(unknown)}"
    return SimpleNamespace(**{**fields, **values})


def widget_reads_the_form(module: str) -> None:
    """The desktop widget builds its job from the form it reads off the parameter node."""
    source = (REPO / module / f"{module}.py").read_text()
    assert "form_from_parameter_node" in source and "self.logic.start(" in source, \
        f"{module}.py does not start its job from form_from_parameter_node"


def parse_cli(argv: list[str]) -> Any:
    return build_parser().parse_args(argv)


# -- SegVessel -----------------------------------------------------------------------------------

def vessel_rows() -> dict[str, dict[str, Any]]:
    from SegVesselLib.form import VesselForm

    base = VesselForm()
    return {
        "defaults": {},
        "cta-threshold-0.1": {"threshold": 0.1},
        "mra": base.with_preset("mra").values(),
        "dark": base.with_preset("dark").values(),
        "cta-no-hysteresis": {"hysteresis": False},
        "every-field": {"preset": "custom", "min_radius_mm": 0.75, "max_radius_mm": 6.5, "scales": 3,
                        "bright_vessels": False, "threshold": 0.25, "hysteresis": True, "limit_intensity": True,
                        "min_intensity": -100.0, "max_intensity": 450.0, "largest_component": False,
                        "refine_lumen": True, "model": "vesselness-frangi", "device": "cpu",
                        "seeds_lps": ((-12.5, 30.0, 101.0), (4.0, -5.5, 60.25)),
                        "roi_lps": (-40.0, -20.0, 10.0, 20.0, 30.5, 120.0), "segment_name": "Aorta",
                        "create_centerlines": True, "create_stenoses": False, "create_surface": True,
                        "stenosis_threshold_percent": 30.0, "dilatation_ratio": 1.8, "input_kind": "both",
                        "segment": "aorta.seg.nrrd:Aorta",
                        "source_lps": (10.5, 150.0, -30.25), "targets_lps": ((5.0, 160.0, -250.0),),
                        "landmarks_lps": ((12.0, 155.0, -80.0), (8.0, 150.5, -120.0)), "close_holes_mm": 6.5},
        # From a segment alone, between two endpoints, with landmarks (the mask fields are ignored).
        "segment-endpoints-landmarks": {"input_kind": "segment", "segment": "totalseg.nii.gz:aorta",
                                        "source_lps": (-1.5, 20.0, 300.0),
                                        "targets_lps": ((4.0, 22.0, 120.0), (-30.0, 25.0, 90.0)),
                                        "landmarks_lps": ((0.0, 21.0, 250.0),), "close_holes_mm": 0.0},
        "volume-with-endpoints": {"source_lps": (-1.5, 20.0, 300.0), "targets_lps": ((4.0, 22.0, 120.0),),
                                  "close_holes_mm": 2.0},
        "no-window": {"limit_intensity": False, "largest_component": False},
        "mask-only": {"create_centerlines": False, "create_surface": False, "device": "cuda"},
        "surface-without-centerlines": {"create_centerlines": False, "create_stenoses": True},
    }


def point_list(scene: Any, points_lps: tuple) -> Any:
    """Points a user would place in the views, as an MRML point list (RAS); None for no points."""
    if not points_lps:
        return None
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    for x, y, z in points_lps:
        points.AddControlPoint([-x, -y, z])
    return points


def vessel_point_lists(scene: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The source, target and landmark point lists of a row, by the parameter node's names."""
    return {"sourcePoint": point_list(scene, (values["source_lps"],) if values["source_lps"] else ()),
            "targetPoints": point_list(scene, values["targets_lps"]),
            "landmarkPoints": point_list(scene, values["landmarks_lps"])}


def vessel_markups(scene: Any, seeds_lps: tuple, roi_lps: Any) -> tuple[Any, Any]:
    """The seed points and box a user would place in the views, as MRML markups (RAS)."""
    points = point_list(scene, seeds_lps)
    roi = None
    if roi_lps is not None:
        low, high = roi_lps[:3], roi_lps[3:]
        centre = [(a + b) / 2 for a, b in zip(low, high)]
        roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        roi.SetXYZ(-centre[0], -centre[1], centre[2])
        roi.SetRadiusXYZ(*((b - a) / 2 for a, b in zip(low, high)))
    return points, roi


def vessel_through(front_end: str, values: dict[str, Any], scene: Any) -> Any:
    from SegVesselLib.form import VesselForm

    form_values = VesselForm.from_values(values).values()
    if front_end == "desktop":
        from SegVesselLib.form import FORM_FIELDS_FROM_MARKUPS, form_from_parameter_node

        points, roi = vessel_markups(scene, form_values["seeds_lps"], form_values["roi_lps"])
        fields = {camel(k): v for k, v in form_values.items() if k not in FORM_FIELDS_FROM_MARKUPS}
        return form_from_parameter_node(parameter_node("SegVessel", {**fields, "seedPoints": points, "roi": roi,
                                                                     **vessel_point_lists(scene, form_values)}))
    if front_end == "web":
        from SegVesselLib.markups_inputs import points_lps_from_markups, roi_lps_from_markups, source_lps_from_markups
        from segforge_app.vessel_panel import STATE_FIELDS, form_from_state

        points, roi = vessel_markups(scene, form_values["seeds_lps"], form_values["roi_lps"])
        lists = vessel_point_lists(scene, form_values)
        state = {f"segvessel_{name}": str(form_values[name]) if isinstance(form_values[name], float)
                 else form_values[name] for name in STATE_FIELDS}  # text fields hold strings
        return form_from_state(state, points_lps_from_markups(points), roi_lps_from_markups(roi),
                               source_lps=source_lps_from_markups(lists["sourcePoint"]),
                               targets_lps=points_lps_from_markups(lists["targetPoints"]),
                               landmarks_lps=points_lps_from_markups(lists["landmarkPoints"]))
    from segforge.cli.vessel_cmd import vessel_form

    v = form_values
    image = [] if v["input_kind"] == "segment" else ["in.nii.gz"]
    argv = ["vessel", *image, "--out", "out", "--preset", v["preset"] if v["preset"] != "custom" else "cta",
            "--min-radius", str(v["min_radius_mm"]), "--max-radius", str(v["max_radius_mm"]),
            "--scales", str(v["scales"]), "--threshold", str(v["threshold"]),
            "--bright-vessels" if v["bright_vessels"] else "--no-bright-vessels",
            "--hysteresis" if v["hysteresis"] else "--no-hysteresis",
            "--largest-component" if v["largest_component"] else "--no-largest-component",
            "--refine-lumen" if v["refine_lumen"] else "--no-refine-lumen",
            "--model", v["model"], "--device", v["device"], "--segment-name", v["segment_name"],
            "--stenosis-threshold", str(v["stenosis_threshold_percent"]),
            "--dilatation-ratio", str(v["dilatation_ratio"])]
    argv += ([f"--intensity-window={v['min_intensity']},{v['max_intensity']}"] if v["limit_intensity"]
             else ["--no-intensity-window"])
    argv += [f"--seed={x},{y},{z}" for x, y, z in v["seeds_lps"]]
    argv += [f"--roi={','.join(str(c) for c in v['roi_lps'])}"] if v["roi_lps"] is not None else []
    argv += ["--no-centerlines"] * (not v["create_centerlines"]) + ["--no-stenoses"] * (not v["create_stenoses"])
    argv += ["--no-surface"] * (not v["create_surface"])
    argv += ["--segment", v["segment"]] if v["input_kind"] != "volume" else []
    argv += [f"--source={','.join(map(str, v['source_lps']))}"] if v["source_lps"] else []
    argv += [f"--target={','.join(map(str, p))}" for p in v["targets_lps"]]
    argv += [f"--landmark={','.join(map(str, p))}" for p in v["landmarks_lps"]]
    argv += ["--close-holes", str(v["close_holes_mm"])]
    return vessel_form(parse_cli(argv))


def vessel_outcome(form: Any) -> Any:
    job = form.job()
    return job.task, job.parameters, job.inputs, form.segment_name, form.segment if "segment" in job.inputs else ""


# -- SegOrgan ------------------------------------------------------------------------------------

def organ_models_offered() -> list:
    from segforge.organ.models import organ_models

    return organ_models()


def organ_rows() -> dict[str, dict[str, Any]]:
    structures = next(m for m in organ_models_offered() if m.id == "ct-tissues").structures
    return {
        "defaults": {},
        "subset-out-of-order": {"structures": ("bones", "lungs")},
        "every-structure-named": {"structures": tuple(reversed(structures))},
        "fast-cpu-no-statistics": {"fast": True, "device": "cpu", "create_statistics": False},
        # a model that is not installed: the form still agrees (the job refuses it, saying what to do)
        "totalseg-fast-liver": {"model": "totalseg-total", "structures": ("spleen", "liver"), "fast": True},
        "one-structure-cuda": {"structures": (structures[0],), "device": "cuda"},
        "surfaces-off": {"create_surfaces": False},
    }


def organ_through(front_end: str, values: dict[str, Any], scene: Any) -> Any:
    from SegOrganLib.form import OrganForm, excluded_text

    models = organ_models_offered()
    v = OrganForm.from_values(values).values()
    model = next(m for m in models if m.id == v["model"])
    chosen = model.structures if v["structures"] is None else v["structures"]
    if front_end == "desktop":
        from SegOrganLib.form import form_from_parameter_node

        fields = {camel(k): value for k, value in v.items() if k != "structures"}
        node = parameter_node("SegOrgan", {**fields, "excludedStructures": excluded_text(model.structures, chosen)})
        return form_from_parameter_node(node, models)
    if front_end == "web":
        from segforge_app.organ_panel import form_from_state

        state = {"segorgan_model": v["model"], "segorgan_structures": list(chosen), "segorgan_fast": v["fast"],
                 "segorgan_device": v["device"], "segorgan_statistics": v["create_statistics"],
                 "segorgan_surfaces": v["create_surfaces"]}
        return form_from_state(state, model)
    from segforge.cli.organ_cmd import organ_form

    argv = ["organ", "in.nii.gz", "--out", "out", "--model", v["model"], "--device", v["device"]]
    argv += ["--structures", ",".join(v["structures"])] if v["structures"] is not None else []
    argv += ["--fast"] * v["fast"] + ["--no-statistics"] * (not v["create_statistics"])
    return organ_form(parse_cli(argv))


def organ_outcome(form: Any) -> Any:
    return form.parameters(organ_models_offered()), form.create_statistics


# -- SegInteractive ------------------------------------------------------------------------------

def interactive_rows() -> dict[str, dict[str, Any]]:
    return {
        "defaults": {},
        "nninteractive-cpu": {"backend": "nninteractive", "device": "cpu"},
        "named-cuda": {"new_segment_name": "nodule 2", "device": "cuda"},
        # The web panel and the CLI always start a new segment that other segments cannot
        # overlap (a new segmentation): refining a segment, and overlap, are the desktop's.
        "refine-a-segment": {"target_segment_id": "Segment_3", "protect_other_segments": False},
    }


#: Fields a front end does not offer (a row that sets one is checked where it is offered).
NOT_OFFERED = {("web", "target_segment_id"), ("web", "protect_other_segments"),
               ("cli", "target_segment_id"), ("cli", "protect_other_segments"),
               ("cli", "create_surfaces")}


def interactive_through(front_end: str, values: dict[str, Any], scene: Any) -> Any:
    from SegInteractiveLib.form import InteractiveForm

    v = InteractiveForm.from_values(values).values()
    if front_end == "desktop":
        from SegInteractiveLib.form import form_from_parameter_node

        return form_from_parameter_node(parameter_node("SegInteractive", {camel(k): x for k, x in v.items()}))
    if front_end == "web":
        from segforge_app.interactive_panel import BACKEND, DEVICE, NAME, form_from_state

        return form_from_state({BACKEND: v["backend"], DEVICE: v["device"], NAME: v["new_segment_name"]})
    from segforge.cli.interactive_cmd import interactive_form

    return interactive_form(parse_cli(["interactive", "in.nii.gz", "--prompts", "p.json", "--out", "out",
                                       "--backend", v["backend"], "--device", v["device"],
                                       "--segment-name", v["new_segment_name"]]))


def interactive_outcome(form: Any) -> Any:
    return form.session_options()


# -- the table -----------------------------------------------------------------------------------

MODULES: dict[str, tuple[Callable, Callable, Callable]] = {
    "SegVessel": (vessel_rows, vessel_through, vessel_outcome),
    "SegOrgan": (organ_rows, organ_through, organ_outcome),
    "SegInteractive": (interactive_rows, interactive_through, interactive_outcome),
}
ROWS = [(module, name) for module, (rows, _, _) in MODULES.items() for name in rows()]


def offered(front_end: str, values: dict[str, Any]) -> bool:
    return not any((front_end, field) in NOT_OFFERED for field in values)


@pytest.mark.parametrize(("module", "row"), ROWS, ids=[f"{m}-{r}" for m, r in ROWS])
def test_the_front_ends_run_the_same_job(module, row, mrml_scene):
    rows, through, outcome = MODULES[module]
    values = rows()[row]
    outcomes = {front_end: outcome(through(front_end, values, mrml_scene))
                for front_end in FRONT_ENDS if offered(front_end, values)}
    assert "desktop" in outcomes
    for front_end, result in outcomes.items():
        assert result == outcomes["desktop"], f"{module} {row}: {front_end} differs from the desktop panel"


def test_the_threshold_row_follows_the_one_rule(mrml_scene):
    """cta with a threshold of 0.1: every front end sends a low threshold of 0.05 (0.1 x 0.5)."""
    for front_end in FRONT_ENDS:
        task, parameters, *_ = vessel_outcome(vessel_through(front_end, {"threshold": 0.1}, mrml_scene))
        assert task == "vessel.tree" and parameters.mask.threshold == 0.1
        assert parameters.mask.low_threshold == pytest.approx(0.05), front_end


def test_stenoses_need_centerlines_on_every_front_end(mrml_scene):
    for front_end in FRONT_ENDS:
        values = {"create_centerlines": False, "create_stenoses": True}
        _, parameters, *_ = vessel_outcome(vessel_through(front_end, values, mrml_scene))
        assert not parameters.outputs.centerlines and not parameters.outputs.stenoses, front_end


def test_points_need_centerlines():
    """A source, targets or landmarks with centerlines off are refused before anything runs (the
    points were dropped without a word, the run succeeding)."""
    from SegVesselLib.form import VesselForm

    point = (1.0, 2.0, 3.0)
    for fields, named in (({"source_lps": point}, "a source"), ({"source_lps": point, "targets_lps": (point,)},
                                                                 "a source, targets"),
                          ({"landmarks_lps": (point,)}, "landmarks")):
        form = VesselForm(create_centerlines=False, create_surface=True, **fields)
        assert form.problem().startswith(f"The points ({named}) need the centerlines"), fields
        assert VesselForm(**fields).problem() is None


def form_class(module: str) -> type:
    name = {"SegVessel": "VesselForm", "SegOrgan": "OrganForm", "SegInteractive": "InteractiveForm"}[module]
    return getattr(importlib.import_module(f"{module}Lib.form"), name)


@pytest.mark.parametrize("module", MODULES)
def test_the_rows_vary_every_field(module):
    defaults = form_class(module)().values()
    varied = {field for values in MODULES[module][0]().values() for field, value in values.items()
              if value != defaults[field]}
    assert varied == set(defaults), f"{module}: no row varies {sorted(set(defaults) - varied)}"


@pytest.mark.parametrize("module", MODULES)
def test_the_parameter_node_is_the_form(module):
    """The desktop parameter node holds the form's fields (camelCase) with the form's defaults, plus
    the input and output nodes; the exceptions are named."""
    widget_reads_the_form(module)
    form = form_class(module)()
    from SegVesselLib.form import FORM_FIELDS_FROM_MARKUPS

    held_elsewhere = {"SegVessel": FORM_FIELDS_FROM_MARKUPS,
                      "SegOrgan": {"structures": "excludedStructures"}, "SegInteractive": {}}[module]
    node = parameter_node_fields(module)
    nodes = {"inputVolume", "outputSegmentation", *({"inputSegmentation"} if module == "SegVessel" else ())}
    expected = {camel(field) for field in form.field_names() if field not in held_elsewhere}
    assert set(node) - nodes - set(held_elsewhere.values()) == expected
    for field, value in form.values().items():
        if field not in held_elsewhere:
            assert node[camel(field)] == value, f"{module}: {camel(field)} defaults to {node[camel(field)]!r}, " \
                                                f"the form's {field} to {value!r}"


def test_the_desktop_panel_says_what_is_wrong_with_its_points(mrml_scene):
    """Two source points are refused by name before Run (the panel still shows its fields), and
    a segment input without a segment says so."""
    from SegVesselLib.form import parameter_node_problem, shown_fields

    source = point_list(mrml_scene, ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0)))
    source.SetName("Source")
    node = parameter_node("SegVessel", {"sourcePoint": source, "threshold": 0.2})
    assert shown_fields(node).threshold == 0.2
    assert "'Source' holds 2 points" in parameter_node_problem(node)
    source.RemoveNthControlPoint(1)
    assert parameter_node_problem(node) is None
    node.inputKind = "segment"
    assert "No segment is chosen" in parameter_node_problem(node)
    node.segment = "Segment_1"
    assert parameter_node_problem(node) is None
