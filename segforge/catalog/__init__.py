"""Model catalog, cache and downloads.

``load_catalog()`` reads ``Resources/Models/catalog.json`` plus any ``$SEGFORGE_CATALOG``
files; ``download_model(entry)`` (``segforge.catalog.download.download``; the package
attribute ``download`` stays the submodule) puts a model into ``$SEGFORGE_HOME/models/<id>/`` (default
``~/.segforge``) with a checksum check and an atomic install; ``is_installed`` and
``verify`` say whether it is there and intact; ``model_path`` is what a runtime loads, and
``nnunet_model_folder`` the nnU-Net folder of an nnunetv2 entry (SegForge's cache or
TotalSegmentator's weights). ``unverified_warning`` is the one sentence every front end
shows for a model whose publisher gives no checksum.
"""
from segforge.catalog.cache import (Verification, cache_home, installed_ids, is_installed,
                                    model_dir, model_path, models_dir, nnunet_model_folder,
                                    totalsegmentator_weights_dir, verify, verify_folder)
from segforge.catalog.catalog import (CATALOG_ENV, UNVERIFIED, Catalog, ModelEntry, ModelInput,
                                      NnunetSpec, link_problems, load_catalog, read_catalog_file,
                                      unverified_warning)
from segforge.catalog.download import download as download_model

__all__ = ["CATALOG_ENV", "UNVERIFIED", "Catalog", "ModelEntry", "ModelInput", "NnunetSpec",
           "Verification", "cache_home", "download_model", "installed_ids", "is_installed",
           "link_problems", "load_catalog", "model_dir", "model_path", "models_dir",
           "nnunet_model_folder", "read_catalog_file", "totalsegmentator_weights_dir",
           "unverified_warning", "verify", "verify_folder"]
