"""Find SegForge's data files (model catalog, sample data) wherever the engine runs.

The same files serve three placements: a source checkout (``Resources/`` beside the
package), a pip-installed wheel (copied into ``segforge/resources/``) and a Slicer
extension (installed by CMake into ``segforge/resources/`` as well).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE_DIR / "resources", _PACKAGE_DIR.parent / "Resources")


def resource_path(relative: str) -> Path:
    """Absolute path of ``Resources/<relative>``; raises FileNotFoundError naming both places."""
    for root in _CANDIDATES:
        candidate = root / relative
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"SegForge resource {relative!r} is in neither "
                            + " nor ".join(str(root) for root in _CANDIDATES))
