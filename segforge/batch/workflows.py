"""One case of each workflow, through the same engine calls and file writers as the single
commands (``segforge vessel|organ|interactive``), into an output set's temporary folder.

Each function reads the case's inputs with the project's verified reads, runs the workflow
with the batch's parameters (and the case's own options: seeds, segment, prompt file) and
writes the same files the single command writes (with ``options["dicom"]`` also seg.dcm and
sr.dcm, as ``--dicom`` does: the series' headers are checked before the work); it returns the files by kind, the device
it ran on and what the user should know. Errors are raised as they are (the caller records
them); nothing here touches Dask.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from ..errors import InputError
from ..output_set import OutputSet
from ..volume_input import read_checked_volume
from .cases import Case


class WorkflowRun(NamedTuple):
    files: dict[str, Path]
    device: str
    warnings: list[str]


def _image(case: Case, options: Mapping[str, Any], warnings: list[str]):
    return read_checked_volume(case.image, allow_gaps=bool(options.get("allow_gaps")), series_uid=case.series_uid,
                               warnings=warnings).image


def _dicom_source(case: Case, image: Any, options: Mapping[str, Any]) -> Any:
    """The source series of the case's DICOM results (None when not asked): read and checked
    against the image before the work, so a series with empty UIDs fails in seconds."""
    if not options.get("dicom"):
        return None
    from ..dicom.source import not_dicom_error, read_source_series

    if case.image is None or image is None or not Path(case.image).is_dir():
        raise not_dicom_error(case.image or case.case_id)
    return read_source_series(case.image, image, case.series_uid)


def run_vessel(case: Case, parameters: Any, options: Mapping[str, Any], outputs: OutputSet,
               warnings: list[str]) -> WorkflowRun:
    """The vessel tree of the case's image, segment, or both (``parameters``: VesselPipelineParameters)."""
    from ..segment_input import read_segment
    from ..vessel.mask_step import resolve_vessel_model
    from ..vessel.outputs import vessel_output_bytes, write_vessel_outputs
    from ..vessel.pipeline import run_vessel_pipeline
    from ..vessel.tree import tree_from_result

    if case.image is None and case.segment is None:
        raise InputError(f"The case {case.case_id} has no input", "neither an image nor a segment is given",
                         "give the case an image, a segment, or both")
    if case.seeds_lps:
        parameters = replace(parameters, mask=replace(parameters.mask, seeds_lps=tuple(case.seeds_lps)))
    if case.segment is None:
        resolve_vessel_model(parameters.mask.model)  # a model that is not installed: said before the work
    started = time.perf_counter()
    segment = read_segment(case.segment) if case.segment is not None else None
    image = _image(case, options, warnings) if case.image is not None else None
    source = _dicom_source(case, image, options)
    result = run_vessel_pipeline(image, parameters, None, segment=None if segment is None else segment.mask)
    tree = tree_from_result(result)
    outputs.require_space(vessel_output_bytes(tree))
    extra: dict[str, Any] = {"input": case.image, "preset": options.get("preset"),
                             "total_seconds": time.perf_counter() - started}
    if segment is not None:
        extra["segment"] = {"file": str(segment.path), "name": segment.name}
    assert outputs.folder is not None
    name = str(options.get("segment_name", "Vessels"))
    files = write_vessel_outputs(tree, outputs.folder, extra, segment_name=name)
    if source is not None:
        from ..dicom.results import vessel_dicom
        from ..vessel.outputs import VESSEL_SEGMENT

        files.update(vessel_dicom(outputs.folder, source, tree, replace(VESSEL_SEGMENT, name=name),
                                  str(tree.summary.get("mask_model", "vessel"))))
    return WorkflowRun(files, str(parameters.mask.device), list(tree.summary.get("warnings", []) or []))


def run_organ(case: Case, parameters: Any, options: Mapping[str, Any], outputs: OutputSet,
              warnings: list[str]) -> WorkflowRun:
    """The organs / tissues of the case's image (``parameters``: OrganParameters)."""
    from ..organ.outputs import organ_output_bytes, write_organ_outputs
    from ..organ.pipeline import check_request, segment_organs
    from ..organ.statistics import structure_statistics

    if case.image is None:
        raise InputError(f"The case {case.case_id} has no image", "the organ workflow segments an image",
                         "give the case an image (a volume file or DICOM series folder)")
    check_request(parameters)
    started = time.perf_counter()
    image = _image(case, options, warnings)
    source = _dicom_source(case, image, options)
    result = segment_organs(image, parameters)
    statistics = (structure_statistics(image, result.labels.array, result.names)
                  if options.get("statistics", True) else None)
    outputs.require_space(organ_output_bytes(result))
    assert outputs.folder is not None
    files = write_organ_outputs(result, statistics, outputs.folder,
                                {"input": case.image, "total_seconds": time.perf_counter() - started})
    if source is not None:
        from ..dicom.results import organ_dicom
        from ..organ.outputs import organ_segments

        files.update(organ_dicom(outputs.folder, source, image, result.labels, organ_segments(result.names),
                                 result.model, statistics))
    return WorkflowRun(files, result.device, list(result.warnings))


def run_interactive(case: Case, parameters: Any, options: Mapping[str, Any], outputs: OutputSet,
                    warnings: list[str]) -> WorkflowRun:
    """A lesion from the case's prompt file replayed on its image (``parameters``: the session's
    options: backend, device, segment_name)."""
    from ..interactive.replay import (check_prompts, lesion_output_bytes, lesion_summary, read_prompt_document,
                                      replay_prompts, write_lesion_outputs)
    from ..interactive.session import InteractiveSession

    if case.image is None:
        raise InputError(f"The case {case.case_id} has no image", "the interactive workflow segments an image",
                         "give the case an image")
    if case.prompts is None:
        raise InputError(f"The case {case.case_id} has no prompt file",
                         "neither the manifest's prompts column, a <case>.prompts.json beside the volume nor "
                         "--prompts gives one", "give each case its prompt file")
    prompts, coordinate_system = read_prompt_document(Path(case.prompts))
    started = time.perf_counter()
    image = _image(case, options, warnings)
    source = _dicom_source(case, image, options)
    check_prompts(prompts, image)
    session = InteractiveSession(image, parameters["backend"], parameters["device"])
    steps = replay_prompts(session, prompts)
    summary = lesion_summary(session, steps, time.perf_counter() - started, input=case.image,
                             prompts=case.prompts, coordinate_system=coordinate_system, backend=parameters["backend"],
                             device=session.device, device_requested=parameters["device"])
    outputs.require_space(lesion_output_bytes(session.mask))
    assert outputs.folder is not None
    files = write_lesion_outputs(image.with_array(session.mask), parameters["segment_name"], summary, outputs.folder)
    if source is not None:
        from ..dicom.results import lesion_dicom
        from ..interactive.replay import lesion_segment

        files.update(lesion_dicom(outputs.folder, source, image.with_array(session.mask),
                                  lesion_segment(parameters["segment_name"]), parameters["backend"]))
    return WorkflowRun(files, session.device, [])


#: Workflow name -> its case runner.
RUNNERS: dict[str, Callable[..., WorkflowRun]] = {"vessel": run_vessel, "organ": run_organ,
                                                   "interactive": run_interactive}
