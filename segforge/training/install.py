"""Install a trained model so that every model list sees it at once: SegForge's catalog of
trained models, ``<home>/trained/catalog.json`` (``<home>``: ``$SEGFORGE_HOME`` or
``~/.segforge``), which :func:`segforge.catalog.load_catalog` always reads, and the model cache.

Why a catalog of its own rather than the user's ``$SEGFORGE_CATALOG``: a model trained in a
panel must show up in the panel's model list and in ``segforge vessel --model ID`` without the
user editing anything, and the files a person edits are never rewritten by SegForge.

Order, so that nothing is half there: the model is first installed in the cache through the
same checksum-verified install as a download (from the run folder's ``file://`` URL), and only
then is its entry added to the trained catalog (written under a temporary name and renamed,
under a lock, so two runs finishing at once keep both entries). A failure before the rename
leaves the catalog as it was.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..catalog.cache import cache_home
from ..catalog.catalog import ModelEntry, load_catalog, parse_catalog, trained_catalog_path
from ..errors import InputError, ModelError
from ..file_lock import file_lock
from ..output_set import replace_file


def refuse_taken_id(model_id: str) -> None:
    """InputError, before any work, when ``model_id`` already names a model of the catalog."""
    try:
        catalog = load_catalog()
    except ModelError as error:
        raise InputError("The model catalog cannot be read, so the trained model could not be listed",
                         error.message, "fix or remove the catalog file it names, then train again") from error
    if model_id in catalog:
        raise InputError(f"A model called {model_id!r} is already in the catalog",
                         f"it comes from {catalog.get(model_id).source}", "give the trained model another id")


def install_trained_model(entry: dict[str, Any], home: Optional[Path] = None,
                          source: Optional[Path] = None) -> ModelEntry:
    """Install the exported model ``entry`` (from :func:`.export.export_vessel_model`) in the
    cache, then list it in the trained catalog; the catalog's view of it. Under the catalog's
    lock, so two runs of one id cannot overwrite each other's model (the later is refused).
    ``source``: the model file to install from, where it is not yet at the entry's URL (an
    export still in its temporary folder, moved into place only once installed); the same
    checksum is verified either way."""
    from ..catalog.download import download

    home = Path(home) if home is not None else cache_home()
    catalog_path = trained_catalog_path(home)
    (parsed,) = parse_catalog({"schema_version": 1, "models": [entry]}, str(catalog_path))
    (fetched,) = parse_catalog({"schema_version": 1, "models": [
        entry if source is None else {**entry, "url": Path(source).resolve().as_uri()}]}, str(catalog_path))
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(catalog_path.with_name(".catalog.lock")):
        models = []
        if catalog_path.is_file():
            models = json.loads(catalog_path.read_text(encoding="utf-8")).get("models", [])
        if any(m.get("id") == entry["id"] for m in models):  # another run of the same id finished first
            raise InputError(f"A model called {entry['id']!r} was listed by another training meanwhile",
                             "two trainings of one id ran at once; the first to finish keeps the id",
                             "train again with another id")
        download(fetched, home=home, force=True)
        text = json.dumps({"schema_version": 1, "models": [*models, entry]}, indent=1)
        replace_file(catalog_path, lambda partial: partial.write_text(text, encoding="utf-8"))
    return parsed


