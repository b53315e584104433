"""Which model makes the vessel mask, and the one call that makes it.

The pipeline, the ``vessel.mask`` worker task and the CLI all go through
:func:`make_vessel_mask`, so they choose the same model for the same parameters.
``VesselMaskParameters.model`` decides:

* ``"auto"``: the first deep vessel model of the catalog (workflow ``vessel``, a framework
  :mod:`.deep_model` runs) whose weights are installed in the model cache; without one,
  the builtin Frangi filter. A model trained here (``segforge.training.install``) is never
  picked by "auto", only by its id: a quick fine-tune must not change everyone's default;
  nor is one whose catalog entry says ``"auto": false`` (the bundled starter network, which
  does not beat the filter on the real cases: docs/training.md).
  A catalog that cannot be read is logged and the builtin filter used, so the default
  never fails for a reason unrelated to the volume.
* ``"vesselness-frangi"``: the builtin filter (:func:`segforge.vessel.vesselness.vessel_mask`).
* any other catalog id: that model, or a ModelError saying how to install it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..catalog.catalog import Catalog, ModelEntry, is_trained
from ..errors import ModelError
from ..image import Image
from ..progress import ProgressCallback
from .deep_model import FRAMEWORKS, DeepVesselModel, deep_vessel_mask_and_meta, not_installed
from .parameters import AUTO_MODEL, BUILTIN_MODEL, VesselMaskParameters

if TYPE_CHECKING:
    from ..runtime.model_cache import ModelCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VesselMaskOutcome:
    """The mask, the catalog id of the model that made it, and JSON-friendly details."""

    mask: Image
    model: str
    meta: dict[str, Any] = field(default_factory=dict)


def installed_vessel_models(catalog: Optional[Catalog] = None, home: Optional[Path] = None) -> list[ModelEntry]:
    """The deep vessel models that can run now (weights in the cache), in catalog order."""
    from ..catalog import is_installed, load_catalog

    catalog = catalog if catalog is not None else load_catalog()
    return [entry for entry in catalog.for_workflow("vessel")
            if not entry.is_builtin and entry.framework in FRAMEWORKS and is_installed(entry, home)]


def resolve_vessel_model(name: str, catalog: Optional[Catalog] = None,
                         home: Optional[Path] = None) -> Optional[ModelEntry]:
    """The installed deep model ``name`` stands for, or None for the builtin filter.

    ModelError (what, why, todo) for an unknown id, a model of another workflow or
    framework, or one that is not installed.
    """
    from ..catalog import is_installed, load_catalog

    if name == BUILTIN_MODEL:
        return None
    if name == AUTO_MODEL:
        try:
            installed = installed_vessel_models(catalog, home)
        except ModelError as error:
            log.warning("Vessel model 'auto' uses %s: the model catalog could not be read (%s)",
                        BUILTIN_MODEL, error.message)
            return None
        # chosen by name only: models trained here, and those the catalog keeps out of auto
        installed = [entry for entry in installed if entry.auto and not is_trained(entry)]
        if len(installed) > 1:
            log.info("Vessel model 'auto' picks %s of the installed %s", installed[0].id,
                     ", ".join(entry.id for entry in installed))
        return installed[0] if installed else None
    catalog = catalog if catalog is not None else load_catalog()
    vessel_ids = ", ".join(entry.id for entry in catalog.for_workflow("vessel")) or "none"
    if name not in catalog:
        raise ModelError(f"There is no vessel model {name!r} in the catalog", f"vessel models: {vessel_ids}",
                         f"pick one of them ('segforge models list'), {AUTO_MODEL} or {BUILTIN_MODEL}; "
                         "a new model needs a catalog entry (in a file named by SEGFORGE_CATALOG)")
    entry = catalog.get(name)
    if entry.workflow != "vessel":
        raise ModelError(f"Model {name} is not a vessel model", f"it is an {entry.workflow} model; "
                         f"vessel models: {vessel_ids}", f"pick a vessel model, {AUTO_MODEL} or {BUILTIN_MODEL}")
    if entry.is_builtin or entry.framework not in FRAMEWORKS:
        raise ModelError(f"Model {name} cannot make a vessel mask here",
                         f"the vessel mask runs {BUILTIN_MODEL} and {', '.join(FRAMEWORKS)} networks, "
                         f"and {name} is {entry.framework}",
                         f"pick another vessel model ({vessel_ids}), {AUTO_MODEL} or {BUILTIN_MODEL}")
    if not is_installed(entry, home):
        raise not_installed(entry)
    return entry


def make_vessel_mask(image: Image, parameters: VesselMaskParameters = VesselMaskParameters(),
                     progress: Optional[ProgressCallback] = None,
                     cache: "Optional[ModelCache]" = None) -> VesselMaskOutcome:
    """The vessel mask by the model ``parameters.model`` chooses, on ``image``'s grid."""
    entry = resolve_vessel_model(parameters.model)
    if entry is None:
        from .vesselness import vessel_mask

        return VesselMaskOutcome(vessel_mask(image, parameters, progress), BUILTIN_MODEL, {"model": BUILTIN_MODEL})
    mask, meta = deep_vessel_mask_and_meta(image, DeepVesselModel.from_entry(entry), parameters, progress, cache)
    return VesselMaskOutcome(mask, entry.id, meta)
