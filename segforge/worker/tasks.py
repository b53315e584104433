"""The tasks a worker runs, by name: thin adapters from wire values to engine calls.

Each task takes ``(inputs, params, job)`` and returns ``(outputs, meta)``: inputs and
outputs are Images or arrays (they travel as binary), params and meta are small JSON.
Engine imports happen inside each task so the worker starts fast and a task whose
libraries are missing fails alone, with a message, instead of the whole worker.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from ..errors import InputError
from ..image import Image, require_3d_volume, require_finite_voxels
from .interactive_tasks import INTERACTIVE_TASKS
from .jobs import Job, TaskBody
from .training_task import TRAINING_TASKS


def _input_image(inputs: dict[str, Any], name: str = "image") -> Image:
    image = inputs.get(name)
    if not isinstance(image, Image):
        raise InputError(f"The job needs an image called {name!r}",
                         "it was missing or sent without its geometry", "send the volume as an Image")
    return require_finite_voxels(require_3d_volume(image))


def _parameters(cls: type, params: dict[str, Any]) -> Any:
    """``cls(**params)``, with unknown names and wrong types refused as the user's input error."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise InputError(f"Unknown parameter(s) {', '.join(unknown)}", f"{cls.__name__} takes {sorted(names)}",
                         "check the parameter names")
    for field in fields(cls):
        if field.name in params and field.type in ("int", "float", "bool"):
            value = params[field.name]
            ok = isinstance(value, bool) if field.type == "bool" else (
                isinstance(value, (int, float)) and not isinstance(value, bool)
                and (field.type == "float" or float(value).is_integer()))
            if not ok:
                raise InputError(f"Parameter {field.name} is {value!r}", f"it must be a {field.type}",
                                 "give a value of the right type")
            if field.type == "int":
                params = {**params, field.name: int(value)}
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise InputError(f"The {cls.__name__} are invalid", str(error), "check the parameter values") from error


def vessel_mask_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """The vessel mask: multi-scale vesselness thresholded, or a deep vessel model from the
    catalog (``model``); meta names the model (and, for a network, whether it was cached)."""
    from ..vessel.mask_step import make_vessel_mask
    from ..vessel.parameters import VesselMaskParameters

    parameters = _parameters(VesselMaskParameters, params)
    made = make_vessel_mask(_input_image(inputs), parameters, job.progress)
    return {"mask": made.mask}, {"voxels": int(np.count_nonzero(made.mask.array)), **made.meta}


def vessel_tree_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """The whole vessel workflow: mask, centerline graph, radii, stenoses, surface.

    Inputs: ``image`` (the angiography volume), ``segment`` (a vessel mask: it replaces the
    mask stage), or both on one grid."""
    from ..mesh import SurfaceParameters
    from ..vessel.cross_sections import SectionParameters
    from ..vessel.endpoints import EndpointParameters
    from ..vessel.graph import GraphParameters
    from ..vessel.parameters import VesselMaskParameters
    from ..vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline
    from ..vessel.stenosis import StenosisParameters
    from ..vessel.straighten import StraightenParameters
    from ..vessel.topology import TopologyParameters
    from ..vessel.tree import to_wire

    stages = {"mask": VesselMaskParameters, "graph": GraphParameters, "stenosis": StenosisParameters,
              "surface": SurfaceParameters, "outputs": VesselOutputs, "topology": TopologyParameters,
              "endpoints": EndpointParameters, "sections": SectionParameters, "straighten": StraightenParameters}
    unknown = sorted(set(params) - set(stages))
    if unknown:
        raise InputError(f"Unknown parameter group(s) {', '.join(unknown)}", f"groups: {sorted(stages)}",
                         "check the parameter names")
    parameters = VesselPipelineParameters(**{name: _parameters(cls, dict(params.get(name) or {}))
                                             for name, cls in stages.items()})
    segment = _input_image(inputs, "segment") if "segment" in inputs else None
    image = _input_image(inputs) if segment is None or "image" in inputs else None
    return to_wire(run_vessel_pipeline(image, parameters, job.progress, segment=segment))


def threshold_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Voxels within [lower, upper] as a uint8 mask: a cheap task for checks and benchmarks."""
    image = _input_image(inputs)
    try:
        lower, upper = float(params.get("lower", -np.inf)), float(params.get("upper", np.inf))
    except (TypeError, ValueError) as error:
        raise InputError("The threshold bounds are not numbers", str(error), "give numbers") from error
    job.progress(0.0, "Thresholding")
    array = image.array
    mask = np.empty(array.shape, dtype=np.uint8)
    for k in range(array.shape[0]):  # slice by slice: no full-size temporaries, frequent cancel checks
        np.logical_and(array[k] >= lower, array[k] <= upper, out=mask[k], casting="unsafe")
        if k % 16 == 0:
            job.progress(k / array.shape[0], "Thresholding")
    return {"mask": image.with_array(mask)}, {"voxels": int(np.count_nonzero(mask))}


def torchscript_segment_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Run a TorchScript segmentation network (kept loaded between jobs) on the image."""
    from .torchscript import segment_with_torchscript

    return segment_with_torchscript(_input_image(inputs), params, job)


def organ_segment_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Organs / tissues of the image (``OrganParameters`` plus ``statistics``: a table of
    volume and intensity per structure, computed here where the image already is)."""
    from ..organ.parameters import OrganParameters
    from ..organ.pipeline import segment_organs
    from ..organ.statistics import structure_statistics
    from ..organ.wire import to_wire

    params = dict(params)
    want_statistics = params.pop("statistics", True)
    if not isinstance(want_statistics, bool):
        raise InputError(f"Parameter statistics is {want_statistics!r}", "it must be a bool", "give true or false")
    if isinstance(params.get("structures"), list):
        params["structures"] = tuple(params["structures"])
    image = _input_image(inputs)
    result = segment_organs(image, _parameters(OrganParameters, params), job.progress)
    rows = structure_statistics(image, result.labels.array, result.names) if want_statistics else []
    return to_wire(result, rows)


TASKS: dict[str, TaskBody] = {
    "vessel.mask": vessel_mask_task,
    "vessel.tree": vessel_tree_task,
    "image.threshold": threshold_task,
    "segment.torchscript": torchscript_segment_task,
    "organ.segment": organ_segment_task,
    **INTERACTIVE_TASKS,  # interactive.open / interact / undo / redo / reset / close
    **TRAINING_TASKS,  # train.vessel
}
