"""SegOrgan's form: the panel's fields, and the one rule that turns them into a request.

The desktop panel (its parameter node), the web panel (its state) and ``segforge organ``
(its options) each fill an :class:`OrganForm`; nothing else builds ``OrganParameters``.
The rules that used to be written once per front end live here: every structure chosen is
sent as "all" (an empty tuple, so a model's later structures are included too), none chosen
is refused. "Fast" on a model without a fast variant is sent as asked: the engine runs the
full model and says so in a warning (the panels untick it when such a model is chosen).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from segforge.errors import InputError
from segforge.forms import Form, labelled
from segforge.organ.models import DEFAULT_MODEL
from segforge.organ.parameters import OrganParameters

#: Packages of Resources/requirements.txt an organ job needs (besides what Slicer bundles),
#: and what the nnU-Net models (TotalSegmentator's...) need on top: the network classes.
REQUIRED_PACKAGES = ("scipy",)
NNUNET_PACKAGES = ("dynamic-network-architectures", "einops")
#: Models that run without torch (intensity rules, no network); every other model does.
TORCH_FREE_MODELS = (DEFAULT_MODEL,)


@dataclass(frozen=True)
class OrganForm(Form):
    """The SegOrgan panel's fields.

    ``structures``: the chosen structures, or None for every structure of the model (what a
    panel starts with); an empty tuple means none is chosen, which cannot run.
    """

    model: str = labelled(DEFAULT_MODEL, "the model")
    structures: Optional[tuple[str, ...]] = None
    fast: bool = False
    device: str = labelled("auto", "the device")
    create_statistics: bool = True
    create_surfaces: bool = True

    def parameters(self, models: Sequence[Any]) -> OrganParameters:
        """The engine's parameters. ``models``: the ``OrganModelChoice`` list a panel offers
        (:func:`segforge.organ.models.organ_models`); a model it lacks is left to the engine's
        check, which says what to do."""
        if not self.model:
            raise InputError("No model chosen", "the model field is empty", "choose an organ model")
        model = next((m for m in models if m.id == self.model), None)
        structures = self.chosen(model.structures if model is not None else ())
        if self.structures is not None and not structures:
            total = f"{len(model.structures)} structures of {model.id}" if model is not None else "structures"
            raise InputError("No structure chosen", f"none of the {total} is chosen", "choose at least one structure")
        try:
            return OrganParameters(model=self.model,
                                   structures=() if model is not None and structures == model.structures
                                   else structures,
                                   fast=self.fast, device=self.device)
        except ValueError as error:
            raise InputError("The device is unknown", str(error), "choose auto, cpu, cuda or cuda:N") from None

    def chosen(self, all_structures: Sequence[str]) -> tuple[str, ...]:
        """The chosen structures in the model's label order (names it lacks last, so the engine
        names them); every one of them when nothing was unchosen."""
        if self.structures is None:
            return tuple(all_structures)
        wanted = set(self.structures)
        return (tuple(n for n in all_structures if n in wanted)
                + tuple(n for n in dict.fromkeys(self.structures) if n not in set(all_structures)))


def split_names(text: str) -> list[str]:
    """The names of a comma-separated value, stripped, empty ones dropped."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def form_from_parameter_node(parameter_node: Any, models: Sequence[Any]) -> OrganForm:
    """The desktop panel's form. Its parameter node keeps the structures as the ones the user
    unticked (``excludedStructures``), so that "all", the default, needs no list."""
    excluded = set(split_names(parameter_node.excludedStructures))
    model = next((m for m in models if m.id == parameter_node.model), None)
    structures = None
    if excluded and model is not None:
        structures = tuple(n for n in model.structures if n not in excluded)
    return OrganForm.from_attributes(parameter_node, skip=("structures",), structures=structures)


def excluded_text(all_structures: Iterable[str], chosen: Iterable[str]) -> str:
    """The parameter node's ``excludedStructures`` for a choice: the unchosen, comma-separated."""
    wanted = set(chosen)
    return ",".join(n for n in all_structures if n not in wanted)


def python_packages(model_id: str) -> tuple[tuple[str, ...], bool]:
    """The packages an organ job with this model needs, and whether it needs torch (every
    model but the builtin ones; one the catalog lacks is assumed to, the job will say why)."""
    if model_id in TORCH_FREE_MODELS:
        return REQUIRED_PACKAGES, False
    try:
        from segforge.catalog import load_catalog

        needs_torch = load_catalog().get(model_id).framework != "builtin"
    except Exception:
        needs_torch = True
    return REQUIRED_PACKAGES + (NNUNET_PACKAGES if needs_torch else ()), needs_torch


def clash_question(segmentation_name: str, clashes: Sequence[str]) -> Optional[str]:
    """What a panel asks when segments of the names a job writes are already there (None: none are)."""
    if not clashes:
        return None
    shown = ", ".join(f'"{name}"' for name in clashes[:8])
    if len(clashes) > 8:
        shown += f" and {len(clashes) - 8} more"
    return f'The segmentation "{segmentation_name}" already has segments named {shown}.'


def summary(nodes: Any) -> str:
    """Which structures went where, what the image does not hold, and the statistics table
    (``nodes``: the ``OrganNodes`` of a finished job)."""
    where = nodes.segmentation.GetName() if nodes.segmentation is not None else "the segmentation"
    names = []
    if nodes.segmentation is not None:
        segmentation = nodes.segmentation.GetSegmentation()
        for segment_id in nodes.segment_ids:
            segment = segmentation.GetSegment(segment_id)
            names.append(segment.GetName() if segment is not None else segment_id)
    text = (f"Done: {len(names)} structures in {where}: {', '.join(names)}." if names
            else f"Done, but no structure was written into {where}.")
    absent = (nodes.summary or {}).get("absent") or []
    if absent:
        text += f" Not found in this image: {', '.join(absent)}."
    if nodes.statistics_table is not None:
        text += f' Statistics: table "{nodes.statistics_table.GetName()}".'
    return text
