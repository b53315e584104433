"""The model catalog: which models exist, where to get them, and what they expect.

The catalog is data (``Resources/Models/catalog.json``), so adding a model never needs a
code change. A server admin, or a test, can add models without touching the install by
naming an extra catalog file in ``SEGFORGE_CATALOG`` (several files: separate them with
``os.pathsep``); its entries are merged over the shipped ones.

Some entries refer to others: a ``composite`` merges the outputs of its ``parts`` (other
nnU-Net entries, linked by label name) and ``fast_variant`` names a low-resolution version.
Those links are checked after merging (:func:`link_problems`), since a user catalog may
replace a part.

Validation is written out here by hand, following ``catalog.schema.json`` rule for rule,
so the engine does not need a JSON Schema library at run time (Slicer's Python may not
have one). A test checks the two agree. Every problem becomes a :class:`ModelError` that
names the file, the entry and the field, because a catalog is edited by people.
"""
from __future__ import annotations

import json
import logging
import math
import os
import posixpath
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from segforge.errors import ModelError
from segforge.resources import resource_path

log = logging.getLogger(__name__)

CATALOG_ENV = "SEGFORGE_CATALOG"
SCHEMA_VERSION = 1
WORKFLOWS = ("vessel", "organ", "interactive")
FRAMEWORKS = ("builtin", "nnunetv2", "torchscript", "monai-bundle", "composite")
ORIENTATIONS = ("RAS",)
UNVERIFIED = "unverified: the publisher gives no checksum"
"""The words every front end shows for a download without a catalog checksum."""

# The same regular expressions as catalog.schema.json (there anchored with ^...$).
ID_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
URL_PATTERN = (r"(https?|file)://[^\s?#]*/[^./\s?#][^/\s?#]*(\?[^\s#]*)?"
               r"|bundled://Models/[^./\s?#\\][^/\s?#\\]*")
BUNDLED_PREFIX = "bundled://"
"""A url ``bundled://Models/<file>`` names a file shipped in SegForge's ``Resources/Models/``
(the extension and the wheel carry it): used where it lies, never downloaded, so it works offline."""
SHA256_PATTERN = r"[0-9a-f]{64}"
LABEL_VALUE_PATTERN = r"[1-9][0-9]{0,4}"
MODALITY_PATTERN = r"[A-Z][A-Z0-9]{1,7}"
_PATH_PART = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"
NNUNET_PATH_PATTERN = rf"\.|{_PATH_PART}(/{_PATH_PART})*"
"""Relative, '/'-separated, no '..' or '.' part (a part never starts with '.'); "." is the folder itself."""
CONFIGURATION_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"

_INPUT_FIELDS = ("modality", "spacing_mm")
_OPTIONAL_INPUT_FIELDS = ("intensity_window", "patch_size", "orientation")
_MODEL_FIELDS = ("id", "workflow", "framework", "url", "size_bytes", "sha256", "licence",
                 "labels", "input", "min_gpu_memory_gb", "description")
_OPTIONAL_MODEL_FIELDS = ("nnunet", "parts", "fast_variant", "auto")
_NNUNET_FIELDS = ("path", "folds", "configuration")
_OPTIONAL_NNUNET_FIELDS = ("tile_step",)
_TOP_FIELDS = ("$schema", "schema_version", "models")
_MAX_REPORTED_PROBLEMS = 5


@dataclass(frozen=True)
class ModelInput:
    """What image a model expects: acquisition modalities and training spacing (mm), and,
    for networks, the intensity window they were trained on (None: z-score normalisation)
    and the tile size (x, y, z voxels on the model's grid; None: the runtime's default)."""

    modality: tuple[str, ...]
    spacing_mm: Optional[tuple[float, float, float]]
    intensity_window: Optional[tuple[float, float]] = None
    patch_size: Optional[tuple[int, int, int]] = None
    orientation: Optional[str] = None
    """"RAS": trained on arrays turned to the closest RAS+ axis order (nibabel's
    ``as_closest_canonical``), so the runtime must turn the image the same way; None: as stored."""


@dataclass(frozen=True)
class NnunetSpec:
    """Where an nnU-Net v2 model sits in its installed folder and how to run it.

    ``path``: the folder holding dataset.json and plans.json, relative to the model folder
    (archives often unpack into ``DatasetNNN_Name/Trainer__Plans__configuration``);
    ``folds``: fold numbers, or "all" for ``fold_all``; ``configuration``: e.g. "3d_fullres";
    ``tile_step``: sliding-window step as a fraction of the patch (nnU-Net's default 0.5;
    TotalSegmentator runs its ``total`` models at 0.8, and its labels need the same step).
    """

    path: str
    folds: tuple[int | str, ...]
    configuration: str
    tile_step: float = 0.5


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalog, checked and typed.

    ``size_bytes`` is None when the publisher does not say (only allowed without a
    checksum; the download then checks free space against the size the server announces,
    or skips that check when it announces none); ``parts`` are the ids a composite merges;
    ``fast_variant`` the id of the low-resolution version of the same model.
    """

    id: str
    workflow: str
    framework: str
    url: Optional[str]
    size_bytes: Optional[int]
    sha256: Optional[str]
    licence: str
    labels: Mapping[int, str]
    input: ModelInput
    min_gpu_memory_gb: float
    description: str
    nnunet: Optional[NnunetSpec] = None
    parts: tuple[str, ...] = ()
    fast_variant: Optional[str] = None
    auto: bool = True
    """False: the workflow's ``auto`` model never picks it; it runs only when named by its id
    (a model that does not beat the default on the measured cases must not replace it)."""
    source: str = field(default="", compare=False)
    """The catalog file this entry came from, to name it in error messages."""

    @property
    def is_builtin(self) -> bool:
        """True for models that ship with the code and need no download."""
        return self.framework == "builtin"

    @property
    def is_composite(self) -> bool:
        """True for an entry that downloads nothing itself and merges its parts' outputs."""
        return self.framework == "composite"

    @property
    def verified(self) -> bool:
        """False for a download the catalog has no checksum for (the publisher gives none).

        Builtin and composite entries download nothing themselves, so they are True; a
        composite's parts are judged on their own (:func:`unverified_warning` does that).
        """
        return self.is_builtin or self.is_composite or self.sha256 is not None

    @property
    def is_bundled(self) -> bool:
        """True for weights shipped with SegForge in ``Resources/Models/`` (see BUNDLED_PREFIX)."""
        return bool(self.url) and str(self.url).startswith(BUNDLED_PREFIX)

    @property
    def filename(self) -> Optional[str]:
        """Name of the downloaded file (last part of the URL's path), None if builtin."""
        return _url_filename(self.url) if self.url else None

    @property
    def is_archive(self) -> bool:
        """True when the download is a .zip that is unpacked into the model folder."""
        return bool(self.filename) and self.filename.lower().endswith(".zip")


class Catalog:
    """Models by id, in catalog order (shipped first, then user catalogs)."""

    def __init__(self, entries: Sequence[ModelEntry], sources: Sequence[Path] = ()) -> None:
        self._entries: dict[str, ModelEntry] = {e.id: e for e in entries}
        self.sources = tuple(sources)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._entries

    def ids(self) -> list[str]:
        return list(self._entries)

    def get(self, model_id: str) -> ModelEntry:
        """The entry for ``model_id``; a ModelError listing the known ids if there is none."""
        try:
            return self._entries[model_id]
        except KeyError:
            raise ModelError(
                f"There is no model {model_id!r} in the catalog",
                "known models: " + (", ".join(self._entries) or "none"),
                "check the spelling (`segforge models list` shows them all), or add the model "
                f"to a catalog file named by {CATALOG_ENV}") from None

    def for_workflow(self, workflow: str) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.workflow == workflow]


def shipped_catalog_path() -> Path:
    """The catalog that ships with SegForge (checkout or installed package)."""
    return resource_path("Models/catalog.json")


TRAINED_CATALOG = ("trained", "catalog.json")


def trained_catalog_path(home: Optional[Path] = None) -> Path:
    """The catalog of models trained here (``segforge.training.install`` writes it):
    ``<home>/trained/catalog.json``, ``<home>`` being SegForge's data folder."""
    from .cache import cache_home  # cache imports this module: import here, not at the top

    return Path(home if home is not None else cache_home()).joinpath(*TRAINED_CATALOG)


def is_trained(entry: ModelEntry) -> bool:
    """True for a model listed by the catalog of models trained here."""
    return bool(entry.source) and Path(entry.source) == trained_catalog_path()


def user_catalog_paths() -> list[Path]:
    """Extra catalog files named by ``$SEGFORGE_CATALOG`` (none when it is unset)."""
    value = os.environ.get(CATALOG_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def load_catalog(shipped: Optional[Path] = None,
                 extra: Optional[Sequence[Path]] = None) -> Catalog:
    """Read the shipped catalog and merge the extra ones (default: the catalog of models trained
    here, when there is one, then ``$SEGFORGE_CATALOG``'s files).

    An extra catalog may replace a downloadable shipped entry (for example to point it at
    a local mirror) but not a builtin one, so the out-of-the-box defaults always work.
    """
    shipped = shipped or shipped_catalog_path()
    if extra is None:
        trained = trained_catalog_path()
        extra = [*([trained] if trained.is_file() else []), *user_catalog_paths()]
    extra = list(extra)
    merged: dict[str, ModelEntry] = {e.id: e for e in read_catalog_file(shipped)}
    for path in extra:
        if not Path(path).is_file():
            raise ModelError(f"The model catalog {path} does not exist",
                             f"it is named by {CATALOG_ENV} or by the caller",
                             f"create that file, or correct or unset {CATALOG_ENV}")
        for entry in read_catalog_file(path):
            old = merged.get(entry.id)
            if old is not None and old.is_builtin:
                raise ModelError(f"The model catalog {path} redefines the builtin model {entry.id!r}",
                                 "builtin models cannot be replaced",
                                 "give the model another id")
            if old is not None:
                log.info("Model %s from %s replaces the one from %s", entry.id, path, old.source)
            merged[entry.id] = entry
    problems = link_problems(list(merged.values()))
    if problems:
        shown = problems[:_MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise ModelError("The model catalog links models that do not fit together",
                         "; ".join(shown) + (f"; and {more} more problem(s)" if more else ""),
                         "fix those entries (in " + ", ".join(str(p) for p in [shipped, *extra]) + ")")
    return Catalog(list(merged.values()), [shipped, *extra])


def link_problems(entries: Sequence[ModelEntry]) -> list[str]:
    """What is wrong with the links between entries (composite parts, fast variants).

    A composite's labels are the final map; each part maps its own values to names, and
    the names tie them together, so every part name must be a composite name and the
    parts together must give every composite name (each name once in the composite).
    """
    by_id = {entry.id: entry for entry in entries}
    problems: list[str] = []
    for entry in entries:
        name = f"{entry.id} (from {entry.source})"
        if entry.fast_variant is not None:
            fast = by_id.get(entry.fast_variant)
            if fast is None or fast.id == entry.id:
                problems.append(f"{name}: its fast_variant {entry.fast_variant!r} is not another "
                                "model of the catalog")
            elif fast.workflow != entry.workflow:
                problems.append(f"{name}: its fast_variant {fast.id!r} is of the {fast.workflow} "
                                f"workflow, not {entry.workflow}")
        if entry.is_composite:
            problems += [f"{name}: {p}" for p in _composite_problems(entry, by_id)]
    return problems


def _composite_problems(entry: ModelEntry, by_id: Mapping[str, ModelEntry]) -> list[str]:
    names = list(entry.labels.values())
    problems = [f"the label name {n!r} is used twice" for n in sorted(set(names)) if names.count(n) > 1]
    covered: set[str] = set()
    complete = True
    for part_id in entry.parts:
        part = by_id.get(part_id)
        if part is None or part.id == entry.id:
            problems.append(f"its part {part_id!r} is not another model of the catalog")
            complete = False
            continue
        if part.framework != "nnunetv2":
            problems.append(f"its part {part_id!r} is a {part.framework} model; parts must be nnunetv2")
            continue
        extra = sorted(set(part.labels.values()) - set(names))
        if extra:
            problems.append(f"its part {part_id!r} labels {', '.join(extra)}, which the composite does not list")
        covered |= set(part.labels.values())
    missing = [n for n in names if n not in covered]
    if missing and complete:
        problems.append(f"no part labels {', '.join(missing)}")
    return problems


def unverified_warning(entry: ModelEntry, catalog: Optional[Catalog] = None) -> Optional[str]:
    """The sentence to show for a model whose download has no checksum; None if it has one.

    For a composite, its parts decide (``catalog`` finds them; default: :func:`load_catalog`).
    The GUI, the organ CLI and ``segforge models`` all show this same sentence.
    """
    if entry.is_composite:
        catalog = catalog if catalog is not None else load_catalog()
        loose = [part for part in entry.parts if part in catalog and not catalog.get(part).verified]
        if not loose:
            return None
        return (f"{entry.id} is {UNVERIFIED} for its parts {', '.join(loose)}, so a damaged or altered "
                "download cannot be told from the real one; SegForge records the SHA-256 of what it "
                "downloaded, and `segforge models verify` checks the files against that")
    if entry.verified:
        return None
    return (f"{entry.id} is {UNVERIFIED}, so a damaged or altered download cannot be told from the "
            "real one; SegForge records the SHA-256 of what it downloaded, and `segforge models "
            "verify` checks the files against that")


def read_catalog_file(path: Path) -> list[ModelEntry]:
    """Parse and check one catalog file; ModelError naming the file and the problems."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ModelError(f"Could not read the model catalog {path}", str(error),
                         "check that the file exists and is readable") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelError(f"The model catalog {path} is not valid JSON",
                         f"the text breaks the JSON rules at line {error.lineno}, column {error.colno}: {error.msg}",
                         "fix the JSON syntax there") from error
    return parse_catalog(data, str(path))


def parse_catalog(data: Any, source: str = "<catalog>") -> list[ModelEntry]:
    """Check a decoded catalog against the schema's rules and build its entries."""
    problems = catalog_problems(data)
    if problems:
        shown = problems[:_MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise ModelError(f"The model catalog {source} is not valid",
                         "; ".join(shown) + (f"; and {more} more problem(s)" if more else ""),
                         "fix those fields (the rules are in Resources/Models/catalog.schema.json)")
    return [_entry(model, source) for model in data["models"]]


def catalog_problems(data: Any) -> list[str]:
    """Every way ``data`` breaks the catalog schema, as readable phrases (empty if valid)."""
    if not isinstance(data, dict):
        return [f"the top level must be an object, not {_kind(data)}"]
    problems = [f"unknown top-level field {key!r}" for key in data if key not in _TOP_FIELDS]
    if "$schema" in data and not isinstance(data["$schema"], str):
        problems.append("'$schema' must be a string")
    if "schema_version" not in data:
        problems.append("missing field 'schema_version'")
    elif not _is_int(data["schema_version"]) or data["schema_version"] != SCHEMA_VERSION:
        problems.append(f"'schema_version' must be {SCHEMA_VERSION}, not {data['schema_version']!r}")
    models = data.get("models")
    if "models" not in data:
        problems.append("missing field 'models'")
    elif not isinstance(models, list):
        problems.append(f"'models' must be a list, not {_kind(models)}")
    else:
        seen: set[str] = set()
        for index, model in enumerate(models):
            name = f"models[{index}]"
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                name += f" ({model['id']})"
                if model["id"] in seen:
                    problems.append(f"{name}: the id is used twice in this file")
                seen.add(model["id"])
            problems += [f"{name}: {p}" for p in model_problems(model)]
    return problems


def model_problems(model: Any) -> list[str]:
    """Every way one catalog entry breaks the schema."""
    if not isinstance(model, dict):
        return [f"must be an object, not {_kind(model)}"]
    problems = [f"unknown field {key!r}" for key in model
                if key not in _MODEL_FIELDS + _OPTIONAL_MODEL_FIELDS]
    problems += [f"missing field {key!r}" for key in _MODEL_FIELDS if key not in model]
    check = _FieldChecker(model, problems)
    check.string("id", ID_PATTERN, "lowercase letters, digits, '.', '_' or '-', not starting "
                 "with '.', '_' or '-', at most 64 characters")
    check.choice("workflow", WORKFLOWS)
    check.choice("framework", FRAMEWORKS)
    check.string("licence")
    check.string("description")
    check.number("min_gpu_memory_gb", minimum=0)
    if model.get("fast_variant") is not None:
        check.string("fast_variant", ID_PATTERN, "null or a model id")
    if "auto" in model and not isinstance(model["auto"], bool):
        problems.append(f"'auto' must be true or false, not {_kind(model['auto'])}")
    _check_labels(model, problems)
    _check_input(model, problems)
    _check_nnunet(model, problems)
    _check_parts(model, problems)
    framework = model.get("framework")
    if framework in ("builtin", "composite"):
        kind = "builtin" if framework == "builtin" else "composite"
        check.null("url", f"{kind} models have no url")
        check.null("sha256", f"{kind} models have no checksum")
        if "size_bytes" in model and not (_is_int(model["size_bytes"]) and model["size_bytes"] == 0):
            problems.append(f"'size_bytes' must be 0 for a {kind} model, not {model['size_bytes']!r}")
    else:
        check.string("url", URL_PATTERN, "an http(s):// or file:// URL ending in a file name, "
                     "or bundled://Models/<file name>")
        url = model.get("url")
        if isinstance(url, str) and re.fullmatch(URL_PATTERN, url) and _url_filename(url) is None:
            problems.append(f"'url' must end in a file name that does not start with '.', not {url!r}")
        if isinstance(url, str) and url.startswith(BUNDLED_PREFIX) and model.get("sha256") is None:
            problems.append("a bundled model needs its 'sha256' (it is verified where it lies)")
        if model.get("sha256") is not None:
            check.string("sha256", SHA256_PATTERN, "64 lowercase hexadecimal digits")
            check.integer("size_bytes", minimum=1)
        elif model.get("size_bytes") is not None:
            check.integer("size_bytes", minimum=1)
    if framework != "composite" and "parts" in model:
        problems.append("'parts' is only for composite models")
    if framework != "nnunetv2" and "nnunet" in model:
        problems.append("'nnunet' is only for nnunetv2 models")
    return problems


class _FieldChecker:
    """Small helpers that append a phrase to ``problems`` when a present field is wrong."""

    def __init__(self, model: dict, problems: list[str]) -> None:
        self.model = model
        self.problems = problems

    def string(self, key: str, pattern: Optional[str] = None, meaning: str = "") -> None:
        if key not in self.model:
            return
        value = self.model[key]
        if not isinstance(value, str):
            self.problems.append(f"{key!r} must be a string, not {_kind(value)}")
        elif not value:
            self.problems.append(f"{key!r} must not be empty")
        elif pattern and not re.fullmatch(pattern, value):
            self.problems.append(f"{key!r} must be {meaning}, not {value!r}")

    def choice(self, key: str, choices: Sequence[str]) -> None:
        if key in self.model and self.model[key] not in choices:
            self.problems.append(f"{key!r} must be one of {', '.join(choices)}, not {self.model[key]!r}")

    def null(self, key: str, why: str) -> None:
        if key in self.model and self.model[key] is not None:
            self.problems.append(f"{key!r} must be null ({why}), not {self.model[key]!r}")

    def integer(self, key: str, minimum: int) -> None:
        if key in self.model:
            value = self.model[key]
            if not _is_int(value) or value < minimum:
                self.problems.append(f"{key!r} must be an integer >= {minimum}, not {value!r}")

    def number(self, key: str, minimum: float) -> None:
        if key in self.model:
            value = self.model[key]
            if not _is_number(value) or value < minimum:
                self.problems.append(f"{key!r} must be a number >= {minimum}, not {value!r}")


def _check_labels(model: dict, problems: list[str]) -> None:
    labels = model.get("labels")
    if "labels" not in model:
        return
    if not isinstance(labels, dict) or not labels:
        problems.append("'labels' must be a non-empty object mapping label values to names, "
                        f"not {labels!r}")
        return
    for value, name in labels.items():
        if not re.fullmatch(LABEL_VALUE_PATTERN, value):
            problems.append(f"label value {value!r} must be a whole number from 1 to 99999 "
                            "written as a string (0 is the background)")
        if not isinstance(name, str) or not name:
            problems.append(f"label {value!r} must have a non-empty name, not {name!r}")


def _check_nnunet(model: dict, problems: list[str]) -> None:
    if "nnunet" not in model:
        return
    spec = model["nnunet"]
    if not isinstance(spec, dict):
        problems.append(f"'nnunet' must be an object, not {_kind(spec)}")
        return
    problems += [f"unknown field 'nnunet.{key}'" for key in spec
                 if key not in _NNUNET_FIELDS + _OPTIONAL_NNUNET_FIELDS]
    problems += [f"missing field 'nnunet.{key}'" for key in _NNUNET_FIELDS if key not in spec]
    path = spec.get("path")
    if "path" in spec and not (isinstance(path, str) and re.fullmatch(NNUNET_PATH_PATTERN, path)):
        problems.append("'nnunet.path' must be a relative folder path with '/' separators and no "
                        f"part starting with '.' (no '..'), or \".\", not {path!r}")
    folds = spec.get("folds")
    if "folds" in spec:
        if (not isinstance(folds, list) or not folds
                or not all((_is_whole(f) and f >= 0) or f == "all" for f in folds)):
            problems.append("'nnunet.folds' must be a non-empty list of fold numbers (>= 0) or "
                            f"\"all\", not {folds!r}")
        elif len({f if f == "all" else int(f) for f in folds}) != len(folds):
            problems.append(f"'nnunet.folds' lists a fold twice: {folds!r}")
    configuration = spec.get("configuration")
    if "configuration" in spec and not (isinstance(configuration, str)
                                        and re.fullmatch(CONFIGURATION_PATTERN, configuration)):
        problems.append("'nnunet.configuration' must be a configuration name such as "
                        f"\"3d_fullres\", not {configuration!r}")
    step = spec.get("tile_step", 0.5)
    if not (_is_number(step) and 0 < step <= 1):
        problems.append(f"'nnunet.tile_step' must be a number above 0 and at most 1, not {step!r}")


def _check_parts(model: dict, problems: list[str]) -> None:
    if model.get("framework") == "composite" and "parts" not in model:
        problems.append("missing field 'parts' (a composite model lists the models it merges)")
    if "parts" not in model:
        return
    parts = model["parts"]
    if (not isinstance(parts, list) or not parts
            or not all(isinstance(p, str) and re.fullmatch(ID_PATTERN, p) for p in parts)):
        problems.append(f"'parts' must be a non-empty list of model ids, not {parts!r}")
    elif len(set(parts)) != len(parts):
        problems.append(f"'parts' lists a model twice: {parts!r}")


def _check_input(model: dict, problems: list[str]) -> None:
    if "input" not in model:
        return
    spec = model["input"]
    if not isinstance(spec, dict):
        problems.append(f"'input' must be an object, not {_kind(spec)}")
        return
    problems += [f"unknown field 'input.{key}'" for key in spec
                 if key not in _INPUT_FIELDS + _OPTIONAL_INPUT_FIELDS]
    problems += [f"missing field 'input.{key}'" for key in _INPUT_FIELDS if key not in spec]
    modality = spec.get("modality")
    if "modality" in spec:
        if (not isinstance(modality, list) or not modality
                or not all(isinstance(m, str) and re.fullmatch(MODALITY_PATTERN, m) for m in modality)):
            problems.append("'input.modality' must be a non-empty list of upper-case modality "
                            f"codes such as \"CT\" or \"MR\", not {modality!r}")
        elif len(set(modality)) != len(modality):
            problems.append(f"'input.modality' lists a modality twice: {modality!r}")
    spacing = spec.get("spacing_mm")
    if spacing is not None and not (isinstance(spacing, list) and len(spacing) == 3
                                    and all(_is_number(s) and s > 0 for s in spacing)):
        problems.append(f"'input.spacing_mm' must be null or three positive numbers, not {spacing!r}")
    window = spec.get("intensity_window")
    if window is not None and not (isinstance(window, list) and len(window) == 2 and all(map(_is_number, window))):
        problems.append(f"'input.intensity_window' must be null or two numbers (low, high), not {window!r}")
    patch = spec.get("patch_size")
    if patch is not None and not (isinstance(patch, list) and len(patch) == 3
                                  and all(_is_whole(n) and n >= 1 for n in patch)):
        problems.append(f"'input.patch_size' must be null or three whole numbers >= 1 (x, y, z voxels), "
                        f"not {patch!r}")
    orientation = spec.get("orientation")
    if orientation is not None and orientation not in ORIENTATIONS:
        problems.append(f"'input.orientation' must be null or one of {', '.join(ORIENTATIONS)}, "
                        f"not {orientation!r}")


def _entry(model: dict, source: str) -> ModelEntry:
    spec = model["input"]
    spacing = spec["spacing_mm"]
    window = spec.get("intensity_window")
    patch = spec.get("patch_size")
    size = model["size_bytes"]
    return ModelEntry(
        id=model["id"], workflow=model["workflow"], framework=model["framework"],
        url=model["url"], size_bytes=None if size is None else int(size), sha256=model["sha256"],
        licence=model["licence"],
        labels={int(value): name for value, name in model["labels"].items()},
        input=ModelInput(tuple(spec["modality"]),
                         None if spacing is None else (float(spacing[0]), float(spacing[1]), float(spacing[2])),
                         None if window is None else (float(window[0]), float(window[1])),
                         None if patch is None else (int(patch[0]), int(patch[1]), int(patch[2])),
                         spec.get("orientation")),
        min_gpu_memory_gb=float(model["min_gpu_memory_gb"]), description=model["description"],
        nnunet=_nnunet_spec(model.get("nnunet")), parts=tuple(model.get("parts", ())),
        fast_variant=model.get("fast_variant"), auto=bool(model.get("auto", True)), source=source)


def _nnunet_spec(spec: Optional[dict]) -> Optional[NnunetSpec]:
    if spec is None:
        return None
    folds = tuple(f if f == "all" else int(f) for f in spec["folds"])
    return NnunetSpec(spec["path"], folds, spec["configuration"], float(spec.get("tile_step", 0.5)))


def _url_filename(url: str) -> Optional[str]:
    """Last part of the URL's path, which names the file in the cache; None if unusable."""
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if not name or name.startswith(".") or "\\" in name or "\0" in name:
        return None
    return name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_whole(value: Any) -> bool:
    """An integer as JSON Schema counts them: 16 and 16.0 both are (booleans are not)."""
    return _is_int(value) or (_is_number(value) and float(value).is_integer())


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")
