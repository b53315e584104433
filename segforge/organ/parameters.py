"""What the user asks of the organ workflow: one value shared by the GUI, console, CLI and worker."""
from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class OrganParameters:
    """Model, structure subset, resolution and device of an organ segmentation.

    ``model`` is a catalog id of the organ workflow (default ``ct-tissues``, which needs no
    weights). ``structures`` names the structures to keep (empty: all the model has); a
    model made of parts runs only the parts that hold them. ``fast`` runs the model's
    low-resolution variant when it has one. ``device``: "auto" (a GPU with enough free
    memory, else the CPU), "cpu", "cuda" or "cuda:N".
    """

    model: str = "ct-tissues"
    structures: tuple[str, ...] = ()
    fast: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        structures = (self.structures,) if isinstance(self.structures, str) else self.structures
        object.__setattr__(self, "structures", tuple(str(name).strip() for name in structures if str(name).strip()))
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
