"""What a training run does (:class:`TrainingConfig`), importable without torch or MONAI.

Why a module of its own: the panels' forms (SegVessel's Logic) and the worker's task build
and check a config before anything heavy loads, and the checks live in one place, here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class TrainingConfig:
    """What a run does; saved in the checkpoint and the model's training record."""

    steps: int = 300
    patch_size: tuple[int, int, int] = (64, 64, 64)  # x, y, z voxels; divisible by 2 ** (levels - 1)
    batch_size: int = 2
    learning_rate: float = 1e-3
    channels: tuple[int, ...] = (8, 16, 32, 64)
    skeleton_recall_weight: float = 1.0
    vessel_patch_fraction: float = 0.5
    validate_every: int = 50
    checkpoint_every: int = 25
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        levels = len(self.channels)
        if self.steps < 1 or self.batch_size < 1 or not self.channels or not 0 < self.learning_rate < math.inf:
            raise InputError("The training settings are invalid",
                             f"steps {self.steps}, batch {self.batch_size}, channels {self.channels}, "
                             f"learning rate {self.learning_rate}",
                             "give positive steps and batch size, and a finite positive learning rate")
        if self.validate_every < 1 or self.checkpoint_every < 1:
            raise InputError("The training settings are invalid", f"validate every {self.validate_every}, "
                             f"checkpoint every {self.checkpoint_every} steps", "give at least 1 step for each")
        if len(self.patch_size) != 3 or any(p % 2 ** (levels - 1) or p < 2 ** levels for p in self.patch_size):
            raise InputError("The patch size does not fit the network",
                             f"it is {tuple(self.patch_size)} for a U-Net of {levels} levels",
                             f"give sizes divisible by {2 ** (levels - 1)} and at least {2 ** levels}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingConfig":
        """A config from JSON-like values (lists for tuples); unknown names refused in one line."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"Unknown training setting(s) {', '.join(unknown)}", f"the settings are {sorted(names)}",
                             "check the names")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        try:
            return cls(**converted)
        except TypeError as error:
            raise InputError("The training settings are invalid", str(error), "check the values") from error


def check_min_dice(min_dice: float) -> None:
    """InputError unless ``min_dice`` is a Dice (0 to 1): checked before any work, where the CLI,
    the worker and the panels all pass it, rather than failing after a whole training."""
    if not isinstance(min_dice, (int, float)) or isinstance(min_dice, bool) or not 0 <= min_dice <= 1:
        raise InputError(f"The minimum validation Dice is {min_dice!r}", "a Dice lies between 0 and 1",
                         "give a minimum between 0 and 1 (0 accepts any run that validates)")
