"""Installing SegForge's Python dependencies inside 3D Slicer, on first use, after asking.

A module widget calls :func:`ensure_python_dependencies` just before the first job that
needs the packages; nothing is installed at import time and the user is asked first (a
Slicer dialog, which is why this lives beside the Qt helpers and not in the Qt-free
:mod:`segforge.mrml.python_dependencies`, which says what is needed and what is missing).
``slicer``, pip and the PyTorch extension are imported inside the functions, only when
something is missing.

The reading helpers are importable from here too, so a widget needs one module.
"""
from __future__ import annotations

import importlib
import logging
from typing import Optional, Sequence

from segforge.errors import SegForgeError
from segforge.mrml.python_dependencies import (NEEDS_TORCH, NO_DEPS, TORCH, missing_requirements,
                                               read_requirements, requirement_name, select_requirements,
                                               torch_installed)

__all__ = ["ensure_python_dependencies", "missing_requirements", "read_requirements", "requirement_name",
           "select_requirements", "torch_installed"]

log = logging.getLogger(__name__)


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
    wanted = select_requirements(read_requirements(), names)
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
