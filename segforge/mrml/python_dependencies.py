"""SegForge's Python dependencies inside 3D Slicer: found missing, installed on first use.

Slicer's Python lacks some packages SegForge needs (``Resources/requirements.txt``);
``torch`` comes through Slicer's PyTorch extension, which picks the build that matches
the GPU driver. Nothing here installs anything at import time: a module widget calls
:func:`ensure_python_dependencies` just before the first job that needs the packages, and
the user is asked first.

:func:`read_requirements` and :func:`missing_requirements` use only the standard library
(and ``packaging`` where present), so they work without Qt and without Slicer; the
installing half imports ``slicer`` inside the functions.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from ..errors import SegForgeError

log = logging.getLogger(__name__)

#: Comes from Slicer's PyTorch extension (PyTorchUtils), never from this file's pip call.
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


def ensure_python_dependencies(requester: str = "SegForge", names: Optional[Sequence[str]] = None,
                               needs_torch: bool = False) -> bool:
    """Inside Slicer: make sure the packages a workflow needs are installed, asking the user first.

    ``names`` picks the requirements of ``requirements.txt`` the caller needs, by
    distribution name (default: all of them); torch is added when one of them needs it, or
    when ``needs_torch`` says the workflow itself runs on torch.
    Returns True when everything is in place (now or already), False when the user said no
    or Slicer runs its self-tests (which must not change the Python environment). Raises
    :class:`~segforge.errors.SegForgeError` when installing failed or is impossible here.
    """
    wanted = _select(read_requirements(), names)
    missing = missing_requirements(wanted)
    need_torch = not torch_installed() and (needs_torch or any(requirement_name(r) in NEEDS_TORCH for r in wanted))
    if not missing and not need_torch:
        return True

    import slicer  # noqa: PLC0415 (only inside Slicer, only when something is missing)

    listing = ([f"{TORCH} (through the PyTorch extension)"] if need_torch else []) + missing
    app = getattr(slicer, "app", None)
    if app is None:
        # PythonSlicer or a plain Python with slicer-core: no dialog to ask with.
        raise SegForgeError(f"{requester} needs Python packages that are not installed: " + ", ".join(listing),
                            "They are installed on first use only after the user agrees, which needs Slicer's window",
                            "Open the module in Slicer and press Apply, or install them yourself with "
                            "PythonSlicer -m pip install " + " ".join(missing or [TORCH]))
    if app.testingEnabled():
        log.warning("Testing mode: not installing %s for %s", ", ".join(listing), requester)
        return False

    if not slicer.util.confirmOkCancelDisplay(
            f"{requester} needs {len(listing)} Python package(s) that are not installed yet.\n\n"
            "They will be downloaded and installed into Slicer's Python environment "
            "(this can take several minutes and needs an internet connection). Continue?",
            windowTitle=f"{requester} - Install Python packages",
            detailedText="\n".join(listing)):
        log.info("The user declined installing %s", ", ".join(listing))
        return False

    if need_torch:
        _install_torch(requester)
    if missing:
        _pip_install(missing, requester)

    importlib.invalidate_caches()
    still_missing = missing_requirements(wanted) + ([TORCH] if need_torch and not torch_installed() else [])
    if still_missing:
        raise SegForgeError("Python packages could not be installed: " + ", ".join(still_missing),
                            "pip finished but they are still not found in Slicer's Python environment",
                            "Restart Slicer and try again; see the Python console for pip's messages")
    return True


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


def _select(requirements: list[str], names: Optional[Sequence[str]]) -> list[str]:
    if names is None:
        return requirements
    by_name = {requirement_name(r): r for r in requirements}
    unknown = [n for n in names if requirement_name(n) not in by_name]
    if unknown:
        raise ValueError(f"Not in requirements.txt: {', '.join(unknown)}")
    return [by_name[requirement_name(n)] for n in names]


def _install_torch(requester: str) -> None:
    """torch through the PyTorch extension, which picks the build for this machine's GPU driver."""
    try:
        import PyTorchUtils  # the PyTorch extension's module (EXTENSION_DEPENDS PyTorch)
    except ImportError:
        raise SegForgeError(f"{requester} needs PyTorch, and Slicer's PyTorch extension is not installed",
                            "SegForge installs torch through that extension so that it matches the GPU driver",
                            "Install the PyTorch extension from the Extensions Manager, restart Slicer "
                            "and try again") from None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False)
    if torch is None:
        raise SegForgeError("PyTorch was not installed", "the PyTorch extension did not install it",
                            "Install it from the PyTorch Utils module, then try again")


def _pip_install(requirements: list[str], requester: str) -> None:
    """``slicer.packaging.pip_ensure`` where this Slicer has it, ``slicer.util.pip_install`` otherwise."""
    import slicer

    try:
        import slicer.packaging as packaging
    except ImportError:
        packaging = None
    plain = [r for r in requirements if requirement_name(r) not in NO_DEPS]
    try:
        for requirement in requirements:
            if requirement_name(requirement) in NO_DEPS:
                slicer.util.pip_install(["--no-deps", requirement])
        if not plain:
            return
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            # The user already agreed above: no second dialog. pip_ensure shows progress and
            # offers a restart when an already-imported package was updated.
            packaging.pip_ensure(plain, prompt_install=False, requester=requester)
        else:
            # A list, so that each requirement is one argument (markers may contain spaces).
            slicer.util.pip_install(plain)
    except Exception as error:  # CalledProcessError, or RuntimeError from pip_ensure
        raise SegForgeError("Python packages could not be installed: " + ", ".join(requirements),
                            str(error) or type(error).__name__,
                            "Check the internet connection and the Python console for pip's messages, "
                            "then try again") from error
