"""The result of an organ workflow: one label map on the input's grid and its label names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..image import Image


@dataclass(frozen=True)
class LabelResult:
    """A label map (``labels.array``: 0 is background) with the name of each label value.

    ``labels`` has exactly the input image's geometry. ``names`` lists only the structures
    that were asked for; a label value means the same structure whatever was asked.
    ``seconds`` holds the time spent in each step.
    """

    labels: Image
    names: Mapping[int, str]
    seconds: Mapping[str, float] = field(default_factory=dict)

    def value(self, name: str) -> int:
        """The label value of a structure; KeyError when it is not in this result."""
        for value, label_name in self.names.items():
            if label_name == name:
                return value
        raise KeyError(f"no structure named {name!r}; this result has {', '.join(self.names.values())}")

    def mask(self, name: str) -> np.ndarray:
        """Boolean ``[k, j, i]`` mask of one structure."""
        return self.labels.array == self.value(name)

    def volumes_ml(self) -> dict[str, float]:
        """Volume of each structure in millilitres."""
        voxel_ml = float(np.prod(self.labels.spacing)) / 1000.0
        counts = np.bincount(self.labels.array.ravel(), minlength=max(self.names, default=0) + 1)
        return {name: float(counts[value]) * voxel_ml for value, name in self.names.items()}
