"""The run record of a case, and the one rule that decides whether a rerun may skip it.

A case's result folder holds ``run_record.json`` beside its results (listed in the folder's
manifest like every file). A rerun skips the case only when all of these hold: the record
names the same inputs with the same SHA-256 (every file of a DICOM series, every data file
a volume's header names), the same workflow and parameter fingerprint (which holds the models
the case runs with, resolved, and their weights' SHA-256), and the folder still matches its
manifest (no file missing or changed). Anything else redoes the case; the SegForge version
alone does not, the record keeps it for the reader. Records written before the fingerprint
held the models match no fingerprint now, so such cases are redone once.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import SimpleITK as sitk

from ..errors import InputError
from ..output_set import MANIFEST, file_sha256, verify_manifest
from ..segment_input import split_segment_spec
from .cases import Case

RECORD = "run_record.json"


def plain(value: Any) -> Any:
    """Parameters as JSON values (dataclasses as dicts, tuples as lists, paths as text)."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def fingerprint(workflow: str, parameters: Any, options: Mapping[str, Any], case: Case,
                models: Optional[list[dict[str, Any]]] = None) -> str:
    """SHA-256 of what decides a case's results besides its input files: the workflow, its
    parameters, the batch's options, the case's own options (seeds, segment selector) and the
    models it runs with (:func:`models_used`: resolved ids and their weights' SHA-256; found
    here when not given)."""
    if models is None:
        models = models_used(workflow, parameters, case)
    document = {"workflow": workflow, "parameters": plain(parameters), "options": plain(dict(options)),
                "series_uid": case.series_uid, "seeds_lps": plain(case.seeds_lps),
                "segment_selector": None if case.segment is None else split_segment_spec(case.segment)[1],
                "models": models}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def models_used(workflow: str, parameters: Any, case: Case) -> list[dict[str, Any]]:
    """The models the case runs with, as the run itself resolves them: ``[{"id", "sha256"}]``
    (sha256: the weights', :func:`~segforge.catalog.cache.weights_sha256`; None for a builtin).

    Why resolved here and not the parameter: vessel ``model="auto"`` stands for whichever deep
    model is installed (else the builtin filter), the organ ``fast`` option for another entry,
    and the same id for whatever weights the cache holds; a parameter that stays the same while
    the model changes must not let a rerun reuse results the old model made. Resolved where the
    case runs (the worker's cache is the one that counts). A model that cannot be resolved
    raises what the run would (the case fails with it)."""
    from ..catalog.cache import folder_sha256, weights_sha256

    if workflow == "vessel":
        if case.segment is not None:  # a segment replaces the mask stage: no model runs
            return []
        from ..vessel.mask_step import resolve_vessel_model
        from ..vessel.parameters import BUILTIN_MODEL

        entry = resolve_vessel_model(parameters.mask.model)
        return [{"id": BUILTIN_MODEL, "sha256": None} if entry is None else
                {"id": entry.id, "sha256": weights_sha256(entry)}]
    if workflow == "organ":
        from ..organ.pipeline import check_request

        request = check_request(parameters)
        return [{"id": entry.id, "sha256": weights_sha256(entry)} for entry in (request.entry, *request.parts)]
    if workflow == "interactive" and parameters.get("backend") == "nninteractive":
        from ..interactive.nninteractive_backend import NAME, find_model_folder

        folder, fold = find_model_folder()
        return [{"id": NAME, "folder": str(folder), "fold": fold, "sha256": folder_sha256(folder)}]
    return []


def input_digests(case: Case) -> list[dict[str, Any]]:
    """Each input of the case (role, path, bytes, SHA-256). A file is hashed with every file its
    voxels are read from (:func:`~segforge.image_checks.volume_files`: a ``.mhd`` / ``.nhdr``
    header and its ``.raw`` data files, a ``.hdr`` and its ``.img``), a DICOM series folder
    over its series' files; several files are hashed as their names and contents, one file is
    its own SHA-256. A missing input, or a header whose data files are missing, is listed
    without a hash (not reusable: the run then says what is missing).

    Why the files' bytes and not the decoded voxels and geometry: a rerun of a cohort that is
    done should cost a hash per case, not a decode of every volume; the record's SHA-256 can
    then be checked with ``sha256sum`` against the files the user holds; and every byte the
    reader may use counts (a header field SegForge does not model, a measurement frame), so no
    change that could alter a result is missed. The header names its data files in the same
    parse the verified read uses, so what is hashed is what is read."""
    from ..image_checks import volume_files

    digests = []
    for role, path in _inputs(case):
        entry: dict[str, Any] = {"role": role, "path": str(path)}
        if path.is_dir():
            files = _series_files(path, case.series_uid)
            entry.update(files=len(files), bytes=sum(os.path.getsize(f) for f in files), sha256=_files_sha256(files))
        elif path.is_file():
            try:
                files = [str(f) for f in volume_files(path)] if role != "prompts" else [str(path)]
            except InputError:
                entry.update(bytes=path.stat().st_size)  # no hash: never reusable, the run says why
            else:
                entry.update(bytes=sum(os.path.getsize(f) for f in files),
                             sha256=file_sha256(path) if len(files) == 1 else _files_sha256(files))
                if len(files) > 1:
                    entry["data_files"] = [os.path.relpath(f, path.parent) for f in files[1:]]
        digests.append(entry)
    return digests


def _files_sha256(files: list[str]) -> str:
    """One SHA-256 over several files: each one's name and SHA-256, in the order given."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(Path(name).name.encode("utf-8") + b"\0" + file_sha256(name).encode("ascii"))
    return digest.hexdigest()


def _inputs(case: Case) -> list[tuple[str, Path]]:
    inputs = []
    if case.image is not None:
        inputs.append(("image", Path(case.image)))
    if case.segment is not None:
        inputs.append(("segment", split_segment_spec(case.segment)[0]))
    if case.prompts is not None:
        inputs.append(("prompts", Path(case.prompts)))
    return inputs


def _series_files(folder: Path, series_uid: Optional[str]) -> list[str]:
    if series_uid is None:
        found = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        series_uid = found[0] if len(found) == 1 else None
    if series_uid is None:  # none or several: every file, so any change is seen
        return sorted(str(p) for p in folder.iterdir() if p.is_file())
    return sorted(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))


def refuse_other_workflow(out: Path, workflow: str, case_folders: Sequence[Path]) -> None:
    """Refuse (InputError) a batch of ``workflow`` into an ``out`` whose ``batch.json``, or one
    of whose case folders' run record, names another workflow.

    Why: a case folder is replaced whole when its record does not match the run (another
    workflow never does), so a second workflow into the same folder would silently delete the
    first one's results, case by case; and the two would share one failures.csv and batch.json."""
    try:
        named = json.loads((out / "batch.json").read_text(encoding="utf-8")).get("workflow")
    except (OSError, ValueError, AttributeError):
        named = None
    where = out / "batch.json"
    if named in (None, workflow):
        for folder in case_folders:
            record = read_record(folder)
            named = record.get("workflow") if isinstance(record, dict) else None
            if named not in (None, workflow):
                where = folder / RECORD
                break
        else:
            return
    article = "an" if named[:1] in "aeiou" else "a"
    raise InputError(f"{out} holds the results of {article} {named} batch",
                     f"{where} names the {named} workflow, and a {workflow} batch would replace its case folders",
                     f"give the {workflow} batch its own --out (or remove {out} first if its {named} results "
                     "are no longer wanted)")


def read_record(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def reusable(folder: Path, inputs: list[dict], print_: str) -> Optional[dict]:
    """The record of ``folder`` when its results may stand for this run (see the module's text), else None.
    ``print_``: this run's parameter fingerprint."""
    if not (folder / MANIFEST).is_file():
        return None
    record = read_record(folder)
    if record is None or record.get("fingerprint") != print_:
        return None
    if _hashes(record.get("inputs", [])) != _hashes(inputs) or any("sha256" not in e for e in inputs):
        return None
    try:
        if verify_manifest(folder):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _hashes(entries: list[dict]) -> list[tuple[str, Optional[str]]]:
    return [(str(e.get("role")), e.get("sha256")) for e in entries]
