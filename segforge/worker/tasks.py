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
from ..image import Image, require_3d_volume
from .jobs import Job, TaskBody


def _input_image(inputs: dict[str, Any], name: str = "image") -> Image:
    image = inputs.get(name)
    if not isinstance(image, Image):
        raise InputError(f"The job needs an image called {name!r}",
                         "it was missing or sent without its geometry", "send the volume as an Image")
    return require_3d_volume(image)


def _known_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise InputError(f"Unknown parameter(s) {', '.join(unknown)}", f"{cls.__name__} takes {sorted(names)}",
                         "check the parameter names")
    return params


def vessel_mask_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Multi-scale vesselness thresholded into a vessel mask."""
    from ..vessel import VesselMaskParameters, vessel_mask

    parameters = VesselMaskParameters(**_known_params(VesselMaskParameters, params))
    mask = vessel_mask(_input_image(inputs), parameters, job.progress)
    return {"mask": mask}, {"voxels": int(np.count_nonzero(mask.array))}


def threshold_task(inputs: dict[str, Any], params: dict[str, Any], job: Job) -> tuple[dict, dict]:
    """Voxels within [lower, upper] as a uint8 mask: a cheap task for checks and benchmarks."""
    image = _input_image(inputs)
    lower, upper = float(params.get("lower", -np.inf)), float(params.get("upper", np.inf))
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


TASKS: dict[str, TaskBody] = {
    "vessel.mask": vessel_mask_task,
    "image.threshold": threshold_task,
    "segment.torchscript": torchscript_segment_task,
}
