"""SegForge's Python dependencies: which are needed, which are missing (Qt-free).

Slicer's Python lacks some packages SegForge needs (``Resources/requirements.txt``);
``torch`` comes through Slicer's PyTorch extension, which picks the build that matches
the GPU driver. This module only reads: :func:`read_requirements`,
:func:`missing_requirements`, :func:`torch_installed` and :func:`select_requirements` use
only the standard library (and ``packaging`` where present), so they work without Qt and
without Slicer. Installing them, after asking the user in a dialog, is the module widgets'
part: ``SegForgeWidgets.python_dependencies.ensure_python_dependencies``.
"""
from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

#: Comes from Slicer's PyTorch extension (PyTorchUtils), never from the installer's pip call.
TORCH = "torch"

#: Requirements that need torch in place first: installed without it, pip would pull the
#: default CUDA build of torch from PyPI instead of the one that suits the machine.
NEEDS_TORCH = frozenset({"monai", "dynamic-network-architectures"})
#: Requirements installed without their dependencies: dynamic-network-architectures pulls
#: timm and with it a torchvision from PyPI that would replace the extension's torch; its
#: U-Nets (what nnU-Net models use) need only torch and einops.
NO_DEPS = frozenset({"dynamic-network-architectures"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirements_file() -> Path:
    """``Resources/requirements.txt`` in a checkout, ``segforge/resources/requirements.txt`` installed."""
    from ..resources import resource_path

    return resource_path("requirements.txt")


def read_requirements(path: Union[str, Path, None] = None) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines.

    Raises ValueError for a line that is not a requirement (pip options such as ``-r`` or
    ``--index-url`` included): the file is ours, and a line the installer would skip
    silently is a bug.
    """
    path = Path(path) if path is not None else requirements_file()
    requirements = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            raise ValueError(f"{path}:{number}: pip options are not supported here: {line!r}")
        _parse(line, where=f"{path}:{number}")
        requirements.append(line)
    return requirements


def requirement_name(requirement: str) -> str:
    """The canonical distribution name of a requirement string (``Foo_Bar>=1`` -> ``foo-bar``)."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"Not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def missing_requirements(requirements: Optional[Iterable[str]] = None) -> list[str]:
    """The requirements (default: all of ``requirements.txt``) not satisfied by what is installed.

    Reads installed versions with :mod:`importlib.metadata` (nothing is imported), so it is
    cheap and safe to call anywhere. A requirement whose environment marker does not apply
    here counts as satisfied.
    """
    if requirements is None:
        requirements = read_requirements()
    missing = []
    for requirement in requirements:
        parsed = _parse(requirement, where="requirement")
        if parsed is not None and parsed.marker is not None and not parsed.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement_name(requirement))
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if parsed is not None and parsed.specifier and not parsed.specifier.contains(installed, prereleases=True):
            missing.append(requirement)
    return missing


def torch_installed() -> bool:
    """Whether a torch distribution is installed (without importing torch, which is slow)."""
    try:
        importlib.metadata.version(TORCH)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def select_requirements(requirements: list[str], names: Optional[Sequence[str]]) -> list[str]:
    """The requirements named in ``names`` (distribution names, any spelling), all when ``names`` is
    None; ValueError for a name that is not among them."""
    if names is None:
        return requirements
    by_name = {requirement_name(r): r for r in requirements}
    unknown = [n for n in names if requirement_name(n) not in by_name]
    if unknown:
        raise ValueError(f"Not in requirements.txt: {', '.join(unknown)}")
    return [by_name[requirement_name(n)] for n in names]


# --------------------------------------------------------------------------------------------


def _parse(requirement: str, where: str):
    """A ``packaging`` Requirement, or None where ``packaging`` is absent (name checked only)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - Slicer and pip environments ship packaging
        requirement_name(requirement)
        return None
    try:
        return Requirement(requirement)
    except InvalidRequirement as error:
        raise ValueError(f"{where}: invalid requirement {requirement!r}: {error}") from None
