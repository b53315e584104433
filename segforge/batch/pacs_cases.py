"""A PACS query as a cohort: a case per matching image series, fetched into a verified cache.

Found on the machine that submits the batch: the studies the query matches (DICOM keyword
filters: PatientID, StudyDate, AccessionNumber, ModalitiesInStudy...) and, in each, the series
the user's rule selects (modality, description). A case is named by its Series Instance UID, the
one name that stays the same between runs (so a rerun finds its folder and resumes); SEG, SR
and other derived series are never cases, and every series left out is listed with why.

Fetched where the case runs (a Dask worker), so a PACS that is down or a series that cannot be
fetched fails that case alone. The cache (``OUT/pacs_cache/<series UID>/``) is an output set:
written whole or not at all, with a manifest of every file's SHA-256. A rerun uses it again only
when the manifest still holds and the PACS lists exactly the instances the cache has; else the
series is fetched again (and its new hash makes the case run again).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..dicom.pacs_base import PacsClient
from ..dicom.pacs_config import PacsConfig
from ..errors import InputError
from ..output_set import MANIFEST, OutputSet, verify_manifest
from .cases import Case, Cohort, SeriesRule, case_id_of

PACS_CACHE = "pacs_cache"


def pacs_cohort(filters: Mapping[str, str], rule: SeriesRule = SeriesRule(),
                pacs: Optional[PacsClient] = None) -> Cohort:
    """The cases of the studies matching ``filters``: one per image series ``rule`` selects."""
    if not filters:
        raise InputError("The PACS query has no filter", "a query without one would take every study of the PACS",
                         "give at least one, e.g. --pacs-query PatientID=12345 or --pacs-query StudyDate=20240101-")
    from pydicom.datadict import tag_for_keyword

    from ..dicom.pacs import open_pacs

    unknown = [key for key in filters if tag_for_keyword(key) is None]
    if unknown:
        raise InputError(f"{', '.join(map(repr, unknown))} is not a DICOM attribute", "a PACS query filters on DICOM "
                         "keywords", "use keywords such as PatientID, StudyDate, AccessionNumber, ModalitiesInStudy")
    pacs = pacs or open_pacs()
    cases, left_out = [], []
    studies = pacs.find_studies(filters)
    for study in studies:
        study_uid = study.get("StudyInstanceUID", "")
        for series in pacs.find_series(study_uid):
            series_uid = series.get("SeriesInstanceUID", "")
            modality, description = series.get("Modality", ""), series.get("SeriesDescription", "")
            where = f"PACS series {series_uid} ({modality} {description!r}) of study {study_uid}, patient " \
                    f"{study.get('PatientID', '?')}"
            reason = rule.why_not(modality, description)
            if reason:
                left_out.append({"path": where, "series_uid": series_uid, "reason": reason})
                continue
            cases.append(Case(case_id_of(series_uid), pacs_study=study_uid, pacs_series=series_uid, origin=where))
    if not cases:
        found = f"{len(studies)} {'study' if len(studies) == 1 else 'studies'}"
        raise InputError(f"No case in the PACS at {pacs.config.address}", f"the query {dict(filters)} matched "
                         f"{found} and no image series the rule selects" + (f" ({len(left_out)} left out)"
                                                                             if left_out else ""),
                         "check the query (segforge pacs find) and --modality / --description")
    return Cohort(cases, "pacs", left_out)


def cache_name(series_uid: str) -> str:
    """The cache folder's name of a series: its UID made a folder name (:func:`case_id_of`; a
    UID's digits and dots stay as they are), since a PACS's answer is not trusted as a path
    (``..`` or ``/`` would put the cache, and the fetch's replace, outside ``pacs_cache``)."""
    return case_id_of(series_uid)


def with_cache(cases: Sequence[Case], out: Path) -> list[Case]:
    """The PACS cases with their image: their series' cache folder under ``out``."""
    cache = Path(out).absolute() / PACS_CACHE
    return [replace(c, image=str(cache / cache_name(c.pacs_series))) if c.pacs_series and c.image is None else c
            for c in cases]


def fetch_into_cache(case: Case, config: Optional[PacsConfig]) -> str:
    """Make the case's cache folder hold its series whole; "cached" or "fetched"."""
    if case.image is None or case.pacs_series is None or case.pacs_study is None:
        raise InputError(f"The case {case.case_id} names no PACS series", "it has no study, series or cache "
                         "folder", "build PACS cases with pacs_cohort() and run them with run_batch()")
    from ..dicom.pacs import open_pacs

    pacs = open_pacs(config)
    wanted = set(pacs.find_instances(case.pacs_study, case.pacs_series))
    if not wanted:
        raise InputError(f"The PACS no longer holds series {case.pacs_series}", "it lists no instance of it",
                         "check the PACS (segforge pacs find); the other cases go on")
    folder = Path(case.image)
    if _cache_holds(folder, wanted):
        return "cached"
    with OutputSet(folder, overwrite=True, parameters={"study": case.pacs_study, "series": case.pacs_series},
                   command="batch pacs fetch") as outputs:
        assert outputs.folder is not None
        paths = pacs.fetch_series(case.pacs_study, case.pacs_series, outputs.folder)
        outputs.commit({path.name: path for path in paths})
    return "fetched"


def _cache_holds(folder: Path, wanted: set[str]) -> bool:
    if not (folder / MANIFEST).is_file():
        return False
    try:
        if verify_manifest(folder):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return {p.stem for p in folder.glob("*.dcm")} == wanted
