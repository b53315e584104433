"""The organ workflow: one call from an image and the user's choices to a label map.

``segment_organs`` is what the worker task, the CLI and (through the worker) the SegOrgan
Logic run. It picks the model (the fast variant on request), checks the input and the
device before any work, runs the builtin ``ct-tissues`` or an nnU-Net v2 model (a
composite model runs only the parts holding the structures asked for), and returns
the labels on the input's exact grid with the model's own label values.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from ..catalog import Catalog, ModelEntry, load_catalog, nnunet_model_folder, unverified_warning
from ..errors import ModelError
from ..image import Image, require_3d_volume
from ..progress import ProgressCallback, no_progress, sub_progress
from .input_checks import not_ct_reason, require_segmentable
from .labels import LabelResult
from .models import parts_to_run, requested_names, resolve_organ_model
from .parameters import OrganParameters

log = logging.getLogger(__name__)

BUILTIN_RUNNERS = ("ct-tissues",)


@dataclass(frozen=True)
class OrganResult(LabelResult):
    """A :class:`LabelResult` with what ran (model id, device) and what the user should
    know (``warnings``: image does not look like CT, CPU fallback, unverified weights...)."""

    model: str = ""
    device: str = "cpu"
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrganRequest:
    """A request checked against the catalog: the model to run, the structures it will
    label ({value: name}), the installed nnU-Net models it needs, and warnings so far."""

    entry: ModelEntry
    wanted: Mapping[int, str]
    parts: tuple[ModelEntry, ...]
    warnings: tuple[str, ...]


def check_request(parameters: OrganParameters, catalog: Optional[Catalog] = None) -> OrganRequest:
    """Everything that can be refused without the image (unknown model or structure, weights
    not installed): the CLI and the Logic call it before reading or sending a volume."""
    catalog = catalog or load_catalog()
    entry, fast_warning = resolve_organ_model(parameters.model, parameters.fast, catalog)
    wanted = requested_names(entry, parameters.structures)
    parts = () if entry.is_builtin else tuple(parts_to_run(entry, wanted, catalog))
    warnings = tuple(w for w in (fast_warning, unverified_warning(entry, catalog)) if w)
    return OrganRequest(entry, wanted, parts, warnings)


def segment_organs(image: Image, parameters: OrganParameters = OrganParameters(),
                   progress: Optional[ProgressCallback] = None, *,
                   catalog: Optional[Catalog] = None) -> OrganResult:
    """Label the structures ``parameters`` ask for; raises InputError / ModelError before
    any work when the request cannot run, Cancelled when ``progress`` raises it."""
    report = progress or no_progress
    request = check_request(parameters, catalog)
    entry, wanted = request.entry, request.wanted
    require_3d_volume(image)
    require_segmentable(image)
    warnings = list(request.warnings)
    if entry.is_builtin:
        return _run_builtin(image, entry, wanted, report, warnings)

    if "CT" in entry.input.modality and "MR" not in entry.input.modality:
        reason = not_ct_reason(image)
        if reason:
            warnings.append(f"This image does not look like a CT ({reason}); {entry.id} is a CT model, "
                            "so expect poor results")
    from ..runtime.device import choose_device

    device, device_warning = choose_device(parameters.device, entry.min_gpu_memory_gb)
    if device_warning:
        warnings.append(device_warning)
    for warning in warnings:
        log.warning("%s", warning)

    value_of = {name: value for value, name in wanted.items()}
    labels = np.zeros(image.array.shape, np.uint8 if max(entry.labels) < 256 else np.uint16)
    seconds: dict[str, float] = {}
    for n, part in enumerate(request.parts):
        started = time.perf_counter()
        stage = sub_progress(report, n / len(request.parts), (n + 1) / len(request.parts))
        part_labels = _run_nnunet(image, part, device, stage)
        _merge(labels, part_labels, {v: value_of.get(name, 0) for v, name in part.labels.items()})
        seconds[part.id] = time.perf_counter() - started
    report(1.0, "Segmentation done")
    return OrganResult(image.with_array(labels), wanted, seconds, entry.id, device, tuple(warnings))


def _run_builtin(image: Image, entry: ModelEntry, wanted: Mapping[int, str], report: ProgressCallback,
                 warnings: list[str]) -> OrganResult:
    if entry.id not in BUILTIN_RUNNERS:
        raise ModelError(f"The builtin organ model {entry.id} has no runner in this SegForge",
                         f"this version runs {', '.join(BUILTIN_RUNNERS)}", "update SegForge or pick another model")
    from .tissues import TISSUE_LABELS, ct_tissues

    if {TISSUE_LABELS[name]: name for name in TISSUE_LABELS} != dict(entry.labels):
        raise ModelError("The catalog's ct-tissues labels differ from the engine's",
                         f"catalog {dict(entry.labels)}, engine {TISSUE_LABELS}", "reinstall SegForge")
    result = ct_tissues(image, list(wanted.values()), report)
    return OrganResult(result.labels, result.names, result.seconds, entry.id, "cpu", tuple(warnings))


def _run_nnunet(image: Image, entry: ModelEntry, device: str, progress: ProgressCallback) -> np.ndarray:
    """One nnU-Net model's labels on the image's grid, in the orientation it was trained on."""
    from ..orientation import from_ras_array, reorient_to_ras
    from .nnunet import predict_labels
    from .nnunet.plans import read_model

    folder = nnunet_model_folder(entry)
    if folder is None or entry.nnunet is None:
        raise ModelError(f"The model {entry.id} is not installed", "its nnU-Net folder was not found",
                         f"run `segforge models download {entry.id}`")
    model = read_model(folder, entry.nnunet.configuration)
    values = {value for _name, value in model.labels if value != 0}
    if values != set(entry.labels):
        raise ModelError(f"The label map of {entry.id} does not match its model folder",
                         f"the catalog lists labels {_span(set(entry.labels))}, {folder / 'dataset.json'} has "
                         f"{_span(values)}", "install the weights that belong to this catalog entry, "
                         "or correct the entry's labels")
    oriented, axes = (reorient_to_ras(image) if entry.input.orientation == "RAS" else (image, None))
    labels = predict_labels(oriented, folder, entry.nnunet.folds, device, progress=progress,
                            configuration=entry.nnunet.configuration, tile_step=entry.nnunet.tile_step).array
    return labels if axes is None else from_ras_array(labels, axes)


def _merge(labels: np.ndarray, part_labels: np.ndarray, lookup: Mapping[int, int]) -> None:
    """Write a part's wanted labels into ``labels`` under the final values (later parts win
    where two claim a voxel, as TotalSegmentator merges its parts)."""
    table = np.zeros(max(int(part_labels.max()), max(lookup, default=0)) + 1, labels.dtype)
    for value, final in lookup.items():
        table[value] = final
    for k in range(labels.shape[0]):  # slice by slice: no full-size temporaries
        mapped = table[part_labels[k]]
        np.copyto(labels[k], mapped, where=mapped > 0)


def _span(values: set[int]) -> str:
    return f"{len(values)} values from {min(values)} to {max(values)}" if values else "none"
