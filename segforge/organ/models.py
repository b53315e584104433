"""The organ models a user can pick: catalog entries of the organ workflow, with what the
panel and the CLI show about each (installed? verified? which structures? a fast variant?)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..catalog import Catalog, ModelEntry, is_installed, load_catalog, unverified_warning
from ..errors import InputError, ModelError

WORKFLOW = "organ"
DEFAULT_MODEL = "ct-tissues"


@dataclass(frozen=True)
class OrganModelChoice:
    """One organ model as a combo box and a structure checklist show it."""

    id: str
    title: str
    description: str
    installed: bool
    verified: bool
    structures: tuple[str, ...]
    has_fast: bool
    warning: Optional[str]


def organ_models(catalog: Optional[Catalog] = None, home: Optional[Path] = None) -> list[OrganModelChoice]:
    """Every organ model of the catalog, the builtin default first."""
    catalog = catalog or load_catalog()
    entries = [e for e in catalog.for_workflow(WORKFLOW) if not _reached_through_another(e, catalog)]
    entries.sort(key=lambda e: (e.id != DEFAULT_MODEL, not e.is_builtin))
    return [_choice(entry, catalog, home) for entry in entries]


def _reached_through_another(entry: ModelEntry, catalog: Catalog) -> bool:
    """A fast variant (reached through its full model's Fast option) or a part of a
    composite model (run by it, for the structures asked) is not listed on its own."""
    return any(other.fast_variant == entry.id or entry.id in other.parts for other in catalog.for_workflow(WORKFLOW))


def _choice(entry: ModelEntry, catalog: Catalog, home: Optional[Path]) -> OrganModelChoice:
    installed = entry.is_builtin or is_installed(entry, home, catalog)
    warnings = []
    if not installed:
        warnings.append(not_installed_todo(entry))
    unverified = unverified_warning(entry, catalog)
    if unverified:
        warnings.append(unverified)
    title = entry.id if installed else f"{entry.id} (not installed)"
    return OrganModelChoice(entry.id, title, entry.description, installed, entry.verified,
                            tuple(entry.labels[v] for v in sorted(entry.labels)),
                            entry.fast_variant is not None, "; ".join(warnings) or None)


def not_installed_todo(entry: ModelEntry) -> str:
    """What to do about a model that is not installed (a composite's download fetches its parts)."""
    return f"not installed: run `segforge models download {entry.id}`"


def resolve_organ_model(model_id: str, fast: bool = False,
                        catalog: Optional[Catalog] = None) -> tuple[ModelEntry, Optional[str]]:
    """The catalog entry to run (the fast variant when asked and there is one), and a
    warning when the fast option cannot be honoured."""
    catalog = catalog or load_catalog()
    entry = catalog.get(model_id)
    if entry.workflow != WORKFLOW:
        raise InputError(f"{model_id!r} is a {entry.workflow} model, not an organ model",
                         "SegOrgan runs models of the organ workflow",
                         "choose one of: " + ", ".join(e.id for e in catalog.for_workflow(WORKFLOW)))
    if not fast:
        return entry, None
    if entry.fast_variant is None:
        return entry, f"{model_id} has no fast variant: it ran at its own resolution"
    return catalog.get(entry.fast_variant), None


def requested_names(entry: ModelEntry, structures: tuple[str, ...]) -> dict[int, str]:
    """The model's {label value: name} limited to ``structures`` (all when empty);
    InputError naming the unknown ones and the closest known names."""
    if not structures:
        return dict(entry.labels)
    by_name = {name.lower(): value for value, name in entry.labels.items()}
    unknown = [name for name in structures if name.lower() not in by_name]
    if unknown:
        import difflib

        hints = sorted({match for name in unknown
                        for match in difflib.get_close_matches(name.lower(), list(by_name), n=3)})
        raise InputError(f"The model {entry.id} has no structure {', '.join(map(repr, unknown))}",
                         f"it labels {len(entry.labels)} structures"
                         + (f"; close names: {', '.join(hints)}" if hints else ""),
                         "pick names from the model's list (`segforge models info "
                         f"{entry.id}` shows them)")
    return {by_name[name.lower()]: entry.labels[by_name[name.lower()]] for name in structures}


def parts_to_run(entry: ModelEntry, wanted: dict[int, str], catalog: Optional[Catalog] = None,
                 home: Optional[Path] = None) -> list[ModelEntry]:
    """The nnU-Net models to run for the ``wanted`` structures: the model itself, or only
    the parts of a composite that hold one of them; ModelError when one is not installed."""
    if not entry.parts:
        parts = [entry]
    else:
        catalog = catalog or load_catalog()
        parts = [catalog.get(part) for part in entry.parts]
        parts = [part for part in parts if set(part.labels.values()) & set(wanted.values())]
    for part in parts:
        require_installed(part, home)
    return parts


def require_installed(entry: ModelEntry, home: Optional[Path] = None) -> None:
    """ModelError saying how to install a model that is not on this computer."""
    if not (entry.is_builtin or is_installed(entry, home)):
        raise ModelError(f"The model {entry.id} is not installed", "its weights are not on this computer",
                         not_installed_todo(entry).replace("not installed: ", ""))
