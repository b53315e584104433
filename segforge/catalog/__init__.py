"""Model catalog, cache and downloads.

``load_catalog()`` reads ``Resources/Models/catalog.json`` plus any ``$SEGFORGE_CATALOG``
files; ``download_model(entry)`` (``segforge.catalog.download.download``; the package
attribute ``download`` stays the submodule) puts a model into ``$SEGFORGE_HOME/models/<id>/`` (default
``~/.segforge``) with a checksum check and an atomic install; ``is_installed`` and
``verify`` say whether it is there and intact; ``model_path`` is what a runtime loads.
"""
from segforge.catalog.cache import (Verification, cache_home, installed_ids, is_installed,
                                    model_dir, model_path, models_dir, verify, verify_folder)
from segforge.catalog.catalog import (CATALOG_ENV, Catalog, ModelEntry, ModelInput,
                                      load_catalog, read_catalog_file)
from segforge.catalog.download import download as download_model

__all__ = ["CATALOG_ENV", "Catalog", "ModelEntry", "ModelInput", "Verification", "cache_home",
           "download_model", "installed_ids", "is_installed", "load_catalog", "model_dir",
           "model_path", "models_dir", "read_catalog_file", "verify", "verify_folder"]
