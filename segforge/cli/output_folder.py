"""The ``--out`` folder of a workflow command, checked before any work."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def require_output_folder(path: Path) -> None:
    """InputError when ``path`` exists and is not a folder (it is created when missing)."""
    if path.exists() and not path.is_dir():
        raise InputError(f"Cannot write into {path}", "it is a file, not a folder", "give a folder for --out")
