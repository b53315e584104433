"""Layers that only point down: every import in the project's Python, checked against one table.

From the bottom:

1. the shared base: ``segforge`` itself, its small modules (errors, image, progress, ...),
   ``segforge.catalog`` and ``segforge.runtime`` (device choice, model cache, TorchScript);
2. the workflows ``segforge.vessel``, ``segforge.organ``, ``segforge.interactive``, which
   use the base and never each other; beside them ``segforge.training`` (losses, training
   data), which may use the base and ``segforge.vessel`` (its synthetic vessel trees);
3. ``segforge.mrml`` (Slicer nodes) and ``segforge.worker`` (the background process);
4. the module Logic packages ``SegVesselLib``, ``SegOrganLib``, ``SegInteractiveLib``
   (Qt-free: no ``SegForgeWidgets``, no other module's Logic);
5. the front ends: ``SegForgeWidgets`` (Qt), the module widget files (``SegVessel.py``, ...),
   the web app ``segforge_app`` and the command line ``segforge.cli``.

Every file is parsed with :mod:`ast` and the WHOLE tree is walked: an import inside a
function, a method or an ``if TYPE_CHECKING`` block counts as much as one at the top, and a
relative import is resolved to its absolute name first. ``importlib.import_module("...")``
with a constant name counts too. A file whose module belongs to no layer fails as well, so a
new package has to be placed in the table before it can import anything.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The module folders: ``<Module>/<Module>.py`` (widget) and ``<Module>/<Module>Lib`` (Logic).
MODULES = ("SegVessel", "SegOrgan", "SegInteractive")

#: Top-level names that are this project's (anything else is a third-party or standard module).
PROJECT_ROOTS = frozenset({"segforge", "segforge_app", "SegForgeWidgets", *MODULES,
                           *(f"{module}{part}" for module in MODULES for part in ("Lib", "Testing", "Widgets"))})

BASE_MODULES = ("errors", "image", "image_io", "image_checks", "dicom_series", "progress", "resources",
                "orientation", "csv_table", "polydata_io", "mesh", "segmentation_file", "forms", "catalog",
                "runtime", "output_set", "label_names", "segment_input", "distance", "volume_input", "chart_png",
                "components", "file_lock")
WORKFLOWS = ("vessel", "organ", "interactive")
LOGIC = tuple(f"{module}Lib" for module in MODULES)

#: Module name prefix -> layer name; the longest matching prefix wins.
LAYER_OF: dict[str, str] = {
    "segforge": "base",  # the package itself (its __init__ and __version__), not whatever lies in it
    **{f"segforge.{name}": "base" for name in BASE_MODULES},
    **{f"segforge.{name}": name for name in WORKFLOWS},
    "segforge.training": "training",
    "segforge.mrml": "mrml",
    "segforge.dicom": "dicom",
    "segforge.worker": "worker",
    "segforge.batch": "batch",
    "segforge.cli": "cli",
    **{name: name for name in LOGIC},
    "SegForgeWidgets": "widgets",
    **{module: f"{module} widget" for module in MODULES},
    # a widget's Qt helpers and its self-test (run inside Slicer) belong with the widget
    **{f"{module}{part}": f"{module} widget" for module in MODULES for part in ("Testing", "Widgets")},
    "segforge_app": "app",
}

_BELOW_LOGIC = ("base", *WORKFLOWS, "training", "mrml", "dicom", "worker")

#: Layer -> (the layers it may import, the rule a violation breaks). Its own layer is always allowed.
ALLOWED: dict[str, tuple[frozenset[str], str]] = {
    "base": (frozenset(), "the shared base imports only the shared base"),
    **{workflow: (frozenset({"base"}), "a workflow imports only the shared base (no other workflow, "
                  "no mrml/worker/front end)") for workflow in WORKFLOWS},
    "training": (frozenset({"base", "vessel"}), "training imports only the shared base and the vessel workflow "
                 "(no other workflow, no mrml/worker/front end)"),
    "mrml": (frozenset({"base", *WORKFLOWS}), "mrml imports only the shared base and the workflows"),
    "worker": (frozenset({"base", *WORKFLOWS}), "the worker imports only the shared base and the workflows"),
    "batch": (frozenset({"base", *WORKFLOWS, "dicom"}), "the batch (cohorts on Dask) imports only the shared base, "
              "the workflows and segforge.dicom (a case's SEG and SR, a PACS query as the cohort)"),
    "dicom": (frozenset({"base", *WORKFLOWS, "mrml"}), "segforge.dicom (SEG, SR, PACS) imports the shared base, "
              "the workflows (their results and terminology) and mrml (loading a SEG into a node)"),
    **{logic: (frozenset(_BELOW_LOGIC), "a module Logic is Qt-free: it imports the engine (segforge.*), "
               "not SegForgeWidgets, another module's Logic, the app or the CLI") for logic in LOGIC},
    "widgets": (frozenset({*_BELOW_LOGIC, *LOGIC}), "SegForgeWidgets imports only the layers below the "
                "front ends"),
    **{f"{module} widget": (frozenset({*_BELOW_LOGIC, f"{module}Lib", "widgets"}),
                            f"the {module} widget imports the layers below it, its own Logic and "
                            "SegForgeWidgets") for module in MODULES},
    "app": (frozenset({*_BELOW_LOGIC, *LOGIC}), "the web app imports only the layers below the front ends "
            "(no Qt helpers, no CLI, no module widget)"),
    "cli": (frozenset({"base", *WORKFLOWS, "training", "worker", "batch", "dicom"}), "the CLI imports the shared "
            "base, the workflows, training, the worker, the batch, segforge.dicom and the Logic packages' form "
            "modules"),
}

#: Imports allowed by name although their layers say no: (importing module prefix, imported prefix) -> reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    **{("segforge.cli", f"{logic}.form"): "the CLI builds its options from the module's form, the one "
       "description of a workflow's parameters (Qt-free and light)" for logic in LOGIC},
    ("segforge.cli.app_cmd", "segforge_app"): "the `segforge app` command starts the web app",
    ("segforge.worker.training_task", "segforge.training"): "the worker's train.vessel task runs the training "
    "(segforge.training.run), as its other tasks run the workflows",
    ("segforge.training.inputs", "segforge.batch.cases"): "training reads a cohort manifest (and a folder's volume "
    "files) with the batch's own reader: one CSV parser in SegForge",
}

#: Qt and Slicer's Qt-based module support: only the Qt front ends may import them.
QT_MODULES = ("qt", "ctk", "PythonQt", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
              "slicer.qSlicerBaseQTGUI", "slicer.qSlicerBaseQTCore")
QT_LAYERS = frozenset({"widgets", *(f"{module} widget" for module in MODULES)})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}: {self.rule}"


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> Optional[str]:
    """The layer of a project module (longest prefix in LAYER_OF), None when it has none.

    A package prefix covers what is in the package, except ``segforge`` itself: a new
    ``segforge.something`` must be placed in the table (``segforge.__version__`` is the package's).
    """
    parts = module.split(".")
    if parts[0] == "segforge" and (len(parts) == 1 or parts[1].startswith("__")):
        return LAYER_OF["segforge"]
    best = max((prefix for prefix in LAYER_OF if prefix != "segforge" and _matches(module, prefix)), key=len,
               default=None)
    return LAYER_OF[best] if best is not None else None


def module_name(path: Path, root: Path = ROOT) -> str:
    """``segforge/vessel/mask.py`` -> ``segforge.vessel.mask``; ``SegVessel/SegVesselLib/logic.py``
    -> ``SegVesselLib.logic`` (Slicer puts the module folder on sys.path); a package's
    ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] in MODULES:
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import anywhere in ``tree``.

    ``from X import a`` yields ``X.a`` (``a`` may be a submodule; as a name inside ``X`` the
    prefix rules put it in X's layer all the same). Relative imports are resolved against
    ``module``.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    yield node.lineno, "." * node.level + (node.module or "")  # beyond the top: reported
                    continue
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                yield node.lineno, source if alias.name == "*" else f"{source}.{alias.name}"
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and _is_dynamic_import(node.func)):
            yield node.lineno, node.args[0].value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def check_source(source: str, path: str, module: str, is_package: bool = False) -> list[Violation]:
    """Every import of ``source`` (the file ``path`` holding ``module``) that breaks the table."""
    importer_layer = layer_of(module)
    if importer_layer is None:
        return [Violation(path, 1, module, "-", "the module belongs to no layer: add it to LAYER_OF in "
                          "Testing/test_import_rules.py")]
    allowed, rule = ALLOWED[importer_layer]
    violations = []
    for line, imported in imported_names(ast.parse(source, path), module, is_package):
        if imported.startswith("."):
            violations.append(Violation(path, line, module, imported, "a relative import beyond the top package"))
            continue
        if importer_layer not in QT_LAYERS and any(_matches(imported, qt) for qt in QT_MODULES):
            violations.append(Violation(path, line, module, imported, "only SegForgeWidgets and the module widget "
                                        "files may import Qt"))
            continue
        if imported.split(".")[0] not in PROJECT_ROOTS:
            continue
        target_layer = layer_of(imported)
        if target_layer is None:
            violations.append(Violation(path, line, module, imported, "the imported module belongs to no layer: "
                                        "add it to LAYER_OF in Testing/test_import_rules.py"))
            continue
        if target_layer == importer_layer or target_layer in allowed:
            continue
        if any(_matches(module, importer) and _matches(imported, target) for importer, target in EXCEPTIONS):
            continue
        violations.append(Violation(path, line, module, imported, f"[{importer_layer} -> {target_layer}] {rule}"))
    return violations


def project_files(root: Path = ROOT) -> list[Path]:
    """The checked files: segforge/, SegForgeWidgets/, segforge_app/ and every Python file of
    each module folder (its widget file, Logic, Qt helpers and self-test; its ctest folder
    ``Testing/`` holds none)."""
    folders = ("segforge", "SegForgeWidgets", "segforge_app", *MODULES)
    files = [p for folder in folders for p in (root / folder).rglob("*.py")]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def check_file(path: Path, root: Path = ROOT) -> list[Violation]:
    return check_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix(),
                        module_name(path, root), path.name == "__init__.py")


# ---------------------------------------------------------------------------------------------


def test_every_layer_named_in_the_table_has_a_rule():
    assert set(LAYER_OF.values()) == set(ALLOWED)
    for (importer, imported), reason in EXCEPTIONS.items():
        assert layer_of(importer) and layer_of(imported) and reason


def test_the_checked_files_are_all_there():
    """A rename of a folder must not quietly leave it unchecked."""
    files = {p.relative_to(ROOT).as_posix() for p in project_files()}
    for expected in ("segforge/image.py", "segforge/runtime/device.py", "segforge/worker/client.py",
                     "segforge/cli/main.py", "segforge_app/app.py", "SegForgeWidgets/__init__.py",
                     "SegVessel/SegVesselLib/logic.py", "SegOrgan/SegOrgan.py",
                     "SegOrgan/SegOrganTesting/self_test.py", "SegInteractive/SegInteractiveWidgets/__init__.py"):
        assert expected in files


@pytest.mark.parametrize("path", project_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_point_down(path):
    violations = check_file(path)
    assert not violations, "imports against the layers:\n" + "\n".join(map(str, violations))


# The checker itself: planted violations it must catch, and imports it must let through.

def _check(source: str, module: str, is_package: bool = False) -> list[Violation]:
    return check_source(textwrap.dedent(source), f"{module.replace('.', '/')}.py", module, is_package)


@pytest.mark.parametrize("module, source", [
    ("segforge.vessel.mask", "from ..worker.models_cache import ModelCache\n"),
    ("segforge.vessel.mask", "def f():\n    from segforge.organ import device\n"),
    ("segforge.interactive.session", "class A:\n    def m(self):\n        import segforge.worker.client\n"),
    ("segforge.organ", "from ..interactive import session\n"),  # a package __init__: .. is segforge
    ("segforge.image", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .vessel import tree\n"),
    ("segforge.runtime.device", "from segforge import worker\n"),
    ("segforge.worker.server", "import segforge_app.auth\n"),
    ("segforge.mrml.scene", "from ..cli import main\n"),
    ("segforge.mrml.scene", "import qt\n"),
    ("segforge.mrml.scene", "from .. import worker\n"),
    ("segforge.batch.runner", "from ..cli.main import main\n"),
    ("segforge.batch.run_case", "from ..worker.tasks import run\n"),
    ("segforge.vessel.pipeline", "from ..batch import run_batch\n"),
    ("segforge.mrml.scene", "from ..dicom import seg_import\n"),
    ("segforge.dicom.pacs", "from ..cli import main\n"),
    ("segforge.dicom.seg_export", "from ..worker import client\n"),
    ("SegVesselLib.logic", "from SegForgeWidgets import JobRunner\n"),
    ("SegVesselLib.logic", "from SegOrganLib.logic import SegOrganLogic\n"),
    ("SegForgeWidgets.job_runner", "import segforge_app\n"),
    ("segforge_app.jobs", "from SegForgeWidgets.job_runner import JobRunner\n"),
    ("segforge_app.jobs", "import importlib\nimportlib.import_module('segforge.cli.main')\n"),
    ("segforge.cli.vessel_cmd", "from SegVesselLib.logic import SegVesselLogic\n"),
    ("segforge.cli.main", "from segforge_app.app import run\n"),
    ("segforge.newthing", "import os\n"),
    ("segforge.vessel.mask", "from .. import newthing\n"),
])
def test_the_checker_catches_planted_violations(module, source):
    violations = _check(source, module, is_package=module in ("segforge.organ",))
    assert violations, f"{module}: {source!r} passed the checker"
    text = str(violations[0])
    assert text.startswith(f"{module.replace('.', '/')}.py:") and module in text


def test_a_violation_names_file_line_module_and_rule():
    (violation,) = _check("import os\n\n\ndef later():\n    from ..worker.jobs import Job\n", "segforge.vessel.mask")
    assert (violation.path, violation.line, violation.imported) == ("segforge/vessel/mask.py", 5,
                                                                    "segforge.worker.jobs.Job")
    assert "segforge/vessel/mask.py:5: segforge.vessel.mask imports segforge.worker.jobs.Job" in str(violation)
    assert "[vessel -> worker]" in str(violation) and "workflow" in violation.rule


@pytest.mark.parametrize("module, source", [
    ("segforge.vessel.mask", "from ..runtime.device import choose_device\nfrom . import filters\nimport numpy\n"),
    ("segforge.worker.tasks", "from ..vessel.pipeline import run\nfrom ..organ import pipeline\n"),
    ("segforge.cli.vessel_cmd", "from SegVesselLib.form import VESSEL_FORM\nfrom ..worker import client\n"),
    ("segforge.cli.app_cmd", "def run():\n    from segforge_app.app import run\n"),
    ("segforge_app.vessel_panel", "from SegVesselLib.logic import SegVesselLogic\nfrom segforge.mrml import x\n"),
    ("SegVessel", "import qt\nfrom SegForgeWidgets import JobRunner\nfrom SegVesselLib import SegVesselLogic\n"),
    ("segforge", "from .image import Image\n"),
])
def test_the_checker_lets_downward_imports_through(module, source):
    assert _check(source, module, is_package=module == "segforge") == []


def test_the_checker_reads_planted_files(tmp_path):
    """The file walk and the module names, on a planted tree."""
    (tmp_path / "segforge" / "vessel").mkdir(parents=True)
    (tmp_path / "segforge" / "vessel" / "__init__.py").write_text("from .. import image\n")
    planted = tmp_path / "segforge" / "vessel" / "bad.py"
    planted.write_text("import numpy\n\n\ndef f():\n    from ..interactive.remote import RemoteSession\n")
    assert module_name(planted, tmp_path) == "segforge.vessel.bad"
    assert check_file(tmp_path / "segforge" / "vessel" / "__init__.py", tmp_path) == []
    (violation,) = check_file(planted, tmp_path)
    assert str(violation).startswith("segforge/vessel/bad.py:5: segforge.vessel.bad imports "
                                     "segforge.interactive.remote.RemoteSession")
