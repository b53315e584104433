"""The cases of a cohort, found in what the user gives: a folder of volumes, a CSV/TSV manifest
or a DICOM tree.

Found here, on the machine that submits the batch, before anything runs: a manifest that
cannot be read, a column SegForge does not know or two cases with one id stop the batch
before any work (fix the list, nothing was run), while a case whose file is missing or
damaged is only discovered when it runs, and fails alone. Nothing is dropped silently: a
DICOM series the user's rule leaves out, or a folder of DICOM files without a readable
series, is listed in :attr:`Cohort.left_out` with the reason.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from ..dicom.pacs_base import DERIVED_MODALITIES
from ..errors import InputError
from ..image_io import WRITABLE_SUFFIXES

#: What a manifest's columns may be (any other column is refused, never ignored).
MANIFEST_COLUMNS = ("case_id", "image", "series_uid", "segment", "prompts", "seeds")
#: A volume file in a folder of volumes (``.seg.nrrd`` is a segmentation, ``.nhdr`` a header).
VOLUME_SUFFIXES = tuple(s for s in WRITABLE_SUFFIXES if s != ".seg.nrrd") + (".nhdr",)
#: A prompt file beside a volume in a folder: ``<case id>.prompts.json``.
PROMPTS_SUFFIX = ".prompts.json"
_MODALITY, _DESCRIPTION = "0008|0060", "0008|103e"


@dataclass(frozen=True)
class Case:
    """One case: its id (its result folder's name) and its inputs, as paths; per-case options."""

    case_id: str
    image: Optional[str] = None  # a volume file, or a folder holding a DICOM series
    series_uid: Optional[str] = None  # the series to read when the folder holds several
    segment: Optional[str] = None  # FILE[:LABEL|NAME] (vessel: the vessel segment)
    prompts: Optional[str] = None  # interactive: the prompt file replayed on the image
    seeds_lps: tuple[tuple[float, float, float], ...] = ()  # vessel: keep the vessels touching these
    origin: str = ""  # where it was found, for messages ("manifest row 4", "DICOM series ...")
    pacs_study: Optional[str] = None  # a PACS case: the study and series fetched into ``image`` (a cache folder)
    pacs_series: Optional[str] = None

    @property
    def input_path(self) -> Optional[str]:
        """The case's main input (the image, else the segment file)."""
        if self.image is not None:
            return self.image
        return None if self.segment is None else self.segment


@dataclass(frozen=True)
class SeriesRule:
    """Which series of a DICOM tree are cases: a modality (CT, MR...) and a regular expression
    searched in the series description, both case-insensitive; None takes any."""

    modality: Optional[str] = None
    description: Optional[str] = None

    def __post_init__(self) -> None:
        """A description that is no regular expression is refused here, before any folder is read."""
        if self.description:
            try:
                re.compile(self.description)
            except re.error as error:
                raise InputError(f"The description rule {self.description!r} is not a regular expression",
                                 str(error), "fix it (e.g. 'abdomen|thorax'), or escape characters such as ( [ * "
                                 "with a backslash to match them as they are") from None

    def why_not(self, modality: str, description: str) -> Optional[str]:
        """Why a series does not match (one phrase), or None when it does. A SEG, SR or other
        derived object is never a case (results written into the tree by an earlier --dicom run
        among them), whatever the rule asks."""
        if modality.strip().upper() in DERIVED_MODALITIES:
            return f"a derived object ({modality.strip().upper()}), not images"
        if self.modality and modality.strip().upper() != self.modality.strip().upper():
            return f"modality {modality.strip() or '(none)'}, not {self.modality.upper()}"
        if self.description and not re.search(self.description, description, re.IGNORECASE):
            return f"description {description.strip()!r} does not match {self.description!r}"
        return None


@dataclass
class Cohort:
    cases: list[Case]
    kind: str  # folder, manifest, dicom or pacs
    #: What was found but is not a case, each {"path", "reason"} (series the rule left out...).
    left_out: list[dict] = field(default_factory=list)


def discover(inputs: str | os.PathLike, kind: str = "auto", *, rule: SeriesRule = SeriesRule(),
             segment_label: Optional[str] = None, segments: bool = False,
             prompts: Optional[str | os.PathLike] = None) -> Cohort:
    """The cohort in ``inputs``. ``kind``: folder, manifest, dicom, or auto (a .csv/.tsv file is a
    manifest, a folder holding volume files a folder of volumes, any other folder a DICOM tree).

    ``segments``: the volumes of a folder are segment files (vessel from a segment), read with
    ``segment_label``, which is also the label of a manifest's segments that name none.
    ``prompts``: the prompt file of every case that has none of its own.
    """
    path = Path(inputs)
    if not path.exists():
        raise InputError(f"No cohort at {path}", "the path does not exist",
                         "give a folder of volumes, a CSV/TSV manifest or a DICOM folder tree")
    if kind == "auto":
        kind = _guess_kind(path, segments)
    if kind == "manifest":
        cohort = Cohort(read_manifest(path, segment_label=segment_label), "manifest")
    elif kind == "folder":
        cohort = Cohort(folder_cases(path, segments=segments, segment_label=segment_label), "folder")
    elif kind == "dicom":
        cases, left_out = dicom_cases(path, rule)
        cohort = Cohort(cases, "dicom", left_out)
    else:
        raise InputError(f"Unknown kind of cohort {kind!r}", "SegForge reads folder, manifest or dicom",
                         "choose one of those (or auto)")
    if prompts is not None:
        given = str(Path(prompts).absolute())
        cohort.cases = [c if c.prompts else replace(c, prompts=given) for c in cohort.cases]
    if not cohort.cases:
        extra = f"; left out: {_listing(cohort.left_out)}" if cohort.left_out else ""
        raise InputError(f"No case in {path}", f"it holds no {_WHAT[cohort.kind]}{extra}",
                         _TODO_NONE[cohort.kind])
    _refuse_duplicates(cohort.cases, path)
    return cohort


_WHAT = {"folder": f"volume file ({', '.join(VOLUME_SUFFIXES)})", "manifest": "row",
         "dicom": "DICOM series that the rule selects"}
_TODO_NONE = {"folder": "give the folder that holds the volumes", "manifest": "add a row per case",
              "dicom": "check the folder and the rule (--modality, --description)"}


def _guess_kind(path: Path, segments: bool = False) -> str:
    if path.is_file():
        if path.name.lower().endswith((".csv", ".tsv")):
            return "manifest"
        raise InputError(f"{path} is a file, not a cohort", "a cohort is a folder of volumes, a CSV/TSV manifest "
                         "(.csv, .tsv) or a DICOM folder tree", "give one of those")
    if any(_is_volume(p, segments) for p in path.iterdir()):
        return "folder"
    return "dicom"


def _is_volume(path: Path, segments: bool = False) -> bool:
    """A volume file of a folder of volumes. A ``.seg.nrrd`` is a segmentation (a Slicer
    segment file beside its image, e.g. ``ct1.nrrd`` + ``ct1.seg.nrrd``): a case only with
    ``segments``, never an image case."""
    name = path.name.lower()
    if name.endswith(".seg.nrrd") and not segments:
        return False
    return path.is_file() and not path.name.startswith(".") and name.endswith(VOLUME_SUFFIXES)


def case_id_of(text: str) -> str:
    """A case id usable as a folder name: letters, digits, ``.``, ``_`` and ``-`` (others become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "case"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES + (".seg.nrrd",), key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


# -- a folder of volumes ----------------------------------------------------------------------------


def folder_cases(folder: Path, *, segments: bool = False, segment_label: Optional[str] = None) -> list[Case]:
    """A case per volume file at the top of ``folder`` (hidden files aside), named by its file
    name; ``<id>.prompts.json`` beside a volume is its prompt file."""
    cases = []
    for path in sorted(p for p in folder.iterdir() if _is_volume(p, segments)):
        case_id = case_id_of(_stem(path))
        sidecar = path.with_name(_stem(path) + PROMPTS_SUFFIX)
        prompts = str(sidecar.absolute()) if sidecar.is_file() else None
        where = f"{path.name} in {folder}"
        if segments:
            spec = str(path.absolute()) + (f":{segment_label}" if segment_label else "")
            cases.append(Case(case_id, segment=spec, prompts=prompts, origin=where))
        else:
            cases.append(Case(case_id, image=str(path.absolute()), prompts=prompts, origin=where))
    return cases


# -- a manifest -------------------------------------------------------------------------------------


def read_manifest(path: Path, *, segment_label: Optional[str] = None) -> list[Case]:
    """A case per row of a CSV (``,``) or TSV (tab) file with a header row: ``case_id``, ``image``,
    ``series_uid``, ``segment`` (FILE[:LABEL|NAME]), ``prompts``, ``seeds`` (``x,y,z;x,y,z`` in
    LPS mm). Relative paths are relative to the manifest's folder; blank rows are skipped."""
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"Cannot read the manifest {path}", str(error),
                         "give a CSV or TSV text file with a header row") from error
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(f"The manifest {path} is empty", "it has no header row",
                         f"start it with a header row naming its columns ({', '.join(MANIFEST_COLUMNS)})")
    header = [cell.strip().lower() for cell in rows[0]]
    unknown = [name for name in header if name not in MANIFEST_COLUMNS]
    if unknown:
        raise InputError(f"The manifest {path} has columns SegForge does not know ({', '.join(unknown)})",
                         f"its columns may be {', '.join(MANIFEST_COLUMNS)}",
                         "rename or remove those columns (a misspelt column would otherwise be ignored)")
    if "image" not in header and "segment" not in header:
        raise InputError(f"The manifest {path} names no input", "it has neither an image nor a segment column",
                         "add an image column (a volume file or DICOM folder per case)")
    base = path.parent
    cases = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            raise InputError(f"Row {number} of the manifest {path} has {len(row)} cells",
                             f"the header names {len(header)} columns",
                             "quote cells that contain the delimiter, or remove the extra cells")
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        cases.append(_manifest_case(values, base, f"row {number} of {path}", segment_label))
    return cases


def _manifest_case(values: dict[str, str], base: Path, where: str, segment_label: Optional[str]) -> Case:
    image, segment = values.get("image", ""), values.get("segment", "")
    if not image and not segment:
        raise InputError(f"The manifest's {where} names no input", "its image and segment cells are empty",
                         "give each row an image (or a segment) path")
    if segment:
        file, selector = _split_selector(segment)
        selector = selector or segment_label
        segment = str(_absolute(file, base)) + (f":{selector}" if selector else "")
    case_id = values.get("case_id") or _stem(Path(image or _split_selector(values["segment"])[0]))
    return Case(case_id=case_id_of(case_id), image=str(_absolute(image, base)) if image else None,
                series_uid=values.get("series_uid") or None, segment=segment or None,
                prompts=str(_absolute(values["prompts"], base)) if values.get("prompts") else None,
                seeds_lps=_seeds(values.get("seeds", ""), where), origin=where)


def _split_selector(text: str) -> tuple[str, Optional[str]]:
    """``FILE[:LABEL]`` as the segment reader splits it (a colon inside a Windows drive stays)."""
    from ..segment_input import split_segment_spec

    file, selector = split_segment_spec(text)
    return str(file), selector


def _absolute(text: str, base: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else (base / path).absolute()


def _seeds(text: str, where: str) -> tuple[tuple[float, float, float], ...]:
    seeds = []
    for part in (p for p in text.split(";") if p.strip()):
        try:
            x, y, z = (float(v) for v in part.split(","))
        except ValueError:
            raise InputError(f"The seeds of the manifest's {where} cannot be read", f"{part.strip()!r} is not x,y,z",
                             "write seeds as x,y,z in LPS millimetres, several separated by ';'") from None
        seeds.append((x, y, z))
    return tuple(seeds)


# -- a DICOM tree -----------------------------------------------------------------------------------


def dicom_cases(root: Path, rule: SeriesRule = SeriesRule()) -> tuple[list[Case], list[dict]]:
    """A case per DICOM series under ``root`` that ``rule`` selects, named by its folder's path
    below ``root`` (``_2``, ``_3`` for further series in one folder); the rest, with why.

    A series whose files lie in several folders (one Series Instance UID in each) is no case:
    a case reads its series from one folder, so each folder would be a case holding part of
    the volume, with results that look whole. It is listed in ``left_out`` (each folder, the
    others named) with what to do, and the other series go on."""
    cases, left_out = [], []
    found: list[tuple[Path, str, int, int, str]] = []  # folder, stem, number in folder, series in folder, uid
    for folder, names in _folders_with_files(root):
        series = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
        if not series:
            left_out.append({"path": str(folder), "reason": f"{len(names)} file(s) but no readable DICOM series"})
            continue
        relative = folder.relative_to(root).as_posix()
        stem = case_id_of(relative if relative != "." else root.name)
        found += [(folder, stem, n, len(series), uid) for n, uid in enumerate(sorted(series), start=1)]
    folders_of: dict[str, list[Path]] = {}
    for folder, _stem, _n, _count, uid in found:
        folders_of.setdefault(uid, []).append(folder)
    for folder, stem, n, count, uid in found:
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        modality, description = _series_tags(files[0])
        where = f"DICOM series {uid or '(no UID)'} in {folder}"
        reason = rule.why_not(modality, description)
        if reason is None and uid and len(folders_of[uid]) > 1:
            others = ", ".join(f.relative_to(root).as_posix() for f in folders_of[uid] if f != folder)
            reason = (f"part of a series split across {len(folders_of[uid])} folders (also in {others}); a case "
                      "reads one folder, so it would be part of the volume: move the series' files into one folder")
        if reason:
            left_out.append({"path": str(folder), "series_uid": uid, "reason": reason})
            continue
        cases.append(Case(f"{stem}_{n}" if count > 1 else stem, image=str(folder.absolute()),
                          series_uid=uid if count > 1 else None, origin=where))
    return cases, left_out


def _folders_with_files(root: Path):
    for here, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        visible = sorted(f for f in files if not f.startswith("."))
        if visible:
            yield Path(here), visible


def _series_tags(file: str) -> tuple[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return "", ""
    tags = {key: reader.GetMetaData(key) if reader.HasMetaDataKey(key) else "" for key in (_MODALITY, _DESCRIPTION)}
    return tags[_MODALITY].strip(), tags[_DESCRIPTION].strip()


# -- checks -----------------------------------------------------------------------------------------


def _refuse_duplicates(cases: list[Case], path: Path) -> None:
    """Two cases with one id, letter case aside: on macOS and Windows ``Patient1`` and
    ``patient1`` are one folder, so one case's results would replace the other's."""
    seen: dict[str, Case] = {}
    for case in cases:
        key = case.case_id.casefold()
        if key in seen:
            first = seen[key]
            same = (f"the id {case.case_id!r}" if first.case_id == case.case_id else
                    f"the ids {first.case_id!r} and {case.case_id!r}, one folder where letter case does not count")
            raise InputError(f"Two cases of {path} have {same}",
                             f"{first.origin} and {case.origin}; each case has its own result folder",
                             "give each case its own id (the manifest's case_id column)")
        seen[key] = case


def _listing(left_out: list[dict]) -> str:
    shown = "; ".join(f"{Path(e['path']).name}: {e['reason']}" for e in left_out[:3])
    return shown + (f" and {len(left_out) - 3} more" if len(left_out) > 3 else "")
