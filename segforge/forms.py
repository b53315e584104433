"""What the module forms share: typed fields, read from any front end, checked one way.

A module's form (``SegVesselLib.form.VesselForm`` and its siblings) is a frozen dataclass
of what a panel shows. The desktop panel reads it from its parameter node (camelCase
attributes), the web panel from its state (strings from text fields), the CLI from its
options; all three end in the same typed value, so one rule turns it into engine
parameters. This module holds only the reading and type checking; each form holds its
own rules.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Mapping, TypeVar

from .errors import InputError

F = TypeVar("F", bound="Form")

#: Where a job runs, as every panel offers it: the value the forms and the engine take -> its title.
DEVICE_TITLES = {"auto": "Automatic", "cpu": "CPU", "cuda": "GPU (CUDA)"}
#: The device selectors' values, in order.
DEVICE_VALUES = tuple(DEVICE_TITLES)


def labelled(default: Any, label: str) -> Any:
    """A form field with the words a message uses for it ("the smallest radius")."""
    return dataclasses.field(default=default, metadata={"label": label})


def camel(name: str) -> str:
    """A form field's name as a Slicer parameter node names it: ``min_radius_mm`` -> ``minRadiusMm``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def label_of(form_class: type, name: str) -> str:
    field = next(f for f in dataclasses.fields(form_class) if f.name == name)
    return field.metadata.get("label", name.replace("_", " "))


class Form:
    """Base of the module forms (frozen dataclasses): reading and typing of field values."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_values(cls: type[F], values: Mapping[str, Any], base: F | None = None) -> F:
        """The form with ``values`` (by field name) over ``base`` (default: the form's defaults).

        Values are converted to each field's type, so text from a web field works; a value
        that cannot be is refused naming the field. Names the form lacks are ignored.
        """
        base = base if base is not None else cls()
        hints = typing.get_type_hints(cls)
        typed = {name: _typed(values[name], hints[name], label_of(cls, name))
                 for name in cls.field_names() if name in values}
        return dataclasses.replace(base, **typed)  # type: ignore[type-var]

    @classmethod
    def from_attributes(cls: type[F], source: Any, rename: Callable[[str], str] = camel,
                        skip: tuple[str, ...] = (), **values: Any) -> F:
        """The form read from an object's attributes (a Slicer parameter node: camelCase names);
        ``skip`` names fields the object does not hold, ``values`` gives them."""
        read = {name: getattr(source, rename(name)) for name in cls.field_names() if name not in skip}
        return cls.from_values({**read, **values})

    def values(self) -> dict[str, Any]:
        """The fields by name (a shallow copy; nested tuples stay tuples)."""
        return {name: getattr(self, name) for name in self.field_names()}


def _typed(value: Any, hint: Any, label: str) -> Any:
    """``value`` as the type ``hint`` names (bool, int, float, str, Optional of those, tuples as given)."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if optional:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if hint in (int, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{label[:1].upper()}{label[1:]} is not a number", f"the field holds {value!r}",
                             f"enter a number as {label}") from None
        if not math.isfinite(number) or (hint is int and number != int(number)):
            raise InputError(f"{label[:1].upper()}{label[1:]} is invalid", f"the field holds {value!r}",
                             f"enter a {'whole ' if hint is int else ''}number as {label}")
        return int(number) if hint is int else number
    if hint is str:
        return "" if value is None else str(value).strip()
    if typing.get_origin(hint) is tuple:
        return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in (value or ()))
    return value
