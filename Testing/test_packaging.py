"""The Slicer extension's packaging: what CMake installs, what ExtensionsIndex reads,
what each Logic imports, and the on-first-use dependency installer.

Desktop Slicer cannot run here, so these checks read the files Slicer would read: the CMake
lists (parsed, not grepped), the module scripts (as Python syntax trees), the ``.ui`` files
(as XML), ``SegForge.json`` and ``Resources/requirements.txt``. A file that Slicer would not
install, a ``.ui`` widget tied to a parameter that does not exist, or a Logic that needs Qt
fails here instead of in a user's Slicer.
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import struct
import subprocess
import sys
import textwrap
import tomllib
import types
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The extension's modules, named explicitly: a missing one is a failure, not a skip.
MODULES = ("SegVessel", "SegOrgan", "SegInteractive")

#: Modules whose import a Logic must not need: Qt (absent from PythonSlicer workers, the web
#: panel and the tests) and Slicer's Qt-dependent scripted-module support.
QT_MODULES = ("qt", "ctk", "PythonQt", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
              "slicer.qSlicerBaseQTGUI", "slicer.qSlicerBaseQTCore")

#: Packages installed on first use, after the user agrees: importing a Logic must not need them,
#: or the module would fail to load before it could ask.
FIRST_USE_PACKAGES = ("torch", "monai")


# ---------------------------------------------------------------------------------------------
# A small CMake reader: commands with their arguments, and `set`/`list(APPEND)` variables.
# ---------------------------------------------------------------------------------------------


@dataclass
class Command:
    name: str            # lower-case, as CMake compares command names
    raw: list[str]       # arguments as written (quotes removed, variables not expanded)
    args: list[str]      # arguments with ${VAR} expanded and unquoted lists split
    line: int


def _tokenize(text: str, path: Path) -> list[tuple[str, list[tuple[str, bool]], int]]:
    """(command name, [(argument, quoted)], line) for each command invocation in CMake source."""
    commands = []
    i, n, line = 0, len(text), 1

    def error(message: str) -> AssertionError:
        return AssertionError(f"{path}:{line}: cannot parse CMake: {message}")

    def skip_space_and_comments() -> None:
        nonlocal i, line
        while i < n:
            c = text[i]
            if c == "\n":
                line += 1
                i += 1
            elif c.isspace():
                i += 1
            elif c == "#":
                bracket = re.match(r"#\[(=*)\[", text[i:])
                if bracket:
                    end = text.find("]" + bracket.group(1) + "]", i)
                    if end < 0:
                        raise error("unterminated bracket comment")
                    line += text.count("\n", i, end)
                    i = end + len(bracket.group(1)) + 2
                else:
                    while i < n and text[i] != "\n":
                        i += 1
            else:
                return

    while True:
        skip_space_and_comments()
        if i >= n:
            return commands
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i:])
        if not match:
            raise error(f"expected a command, found {text[i:i + 20]!r}")
        name, start_line = match.group(0), line
        i += len(name)
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "(":
            raise error(f"expected '(' after {name}")
        i += 1
        args: list[tuple[str, bool]] = []
        depth = 0
        while True:
            skip_space_and_comments()
            if i >= n:
                raise error(f"unterminated {name}(")
            c = text[i]
            if c == ")":
                i += 1
                if depth == 0:
                    break
                depth -= 1
                args.append((")", False))
            elif c == "(":
                depth += 1
                i += 1
                args.append(("(", False))
            elif c == '"':
                j, value = i + 1, []
                while j < n and text[j] != '"':
                    if text[j] == "\\" and j + 1 < n:
                        if text[j + 1] == "\n":  # line continuation
                            line += 1
                        else:
                            value.append({"n": "\n", "t": "\t"}.get(text[j + 1], text[j + 1]))
                        j += 2
                        continue
                    if text[j] == "\n":
                        line += 1
                    value.append(text[j])
                    j += 1
                if j >= n:
                    raise error("unterminated quoted argument")
                args.append(("".join(value), True))
                i = j + 1
            elif c == "[" and re.match(r"\[(=*)\[", text[i:]):
                eq = re.match(r"\[(=*)\[", text[i:]).group(1)
                end = text.find("]" + eq + "]", i)
                if end < 0:
                    raise error("unterminated bracket argument")
                body = text[i + len(eq) + 2:end]
                line += body.count("\n")
                args.append((body[1:] if body.startswith("\n") else body, True))
                i = end + len(eq) + 2
            else:
                j = i
                while j < n and not text[j].isspace() and text[j] not in '()#"':
                    j += 2 if text[j] == "\\" else 1
                args.append((text[i:j], False))
                i = j
        commands.append((name.lower(), args, start_line))


def _expand(value: str, variables: dict[str, str]) -> str:
    pattern = re.compile(r"\$\{([A-Za-z0-9_.+-]+)\}")
    for _ in range(20):  # nested references such as ${${X}_DIR}
        expanded = pattern.sub(lambda m: variables.get(m.group(1), ""), value)
        if expanded == value:
            return expanded
        value = expanded
    return value


def read_cmake(path: Path, variables: dict[str, str] | None = None) -> list[Command]:
    """The commands of a CMake file, with variables set by `set` and `list(APPEND)` expanded
    in order (control flow is not followed: every `set` counts)."""
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    variables = dict(variables or {})
    commands = []
    for name, tokens, line in _tokenize(path.read_text(encoding="utf-8"), path):
        args: list[str] = []
        for value, quoted in tokens:
            expanded = _expand(value, variables)
            args.extend([expanded] if quoted else [a for a in expanded.split(";") if a])
        command = Command(name, [value for value, _ in tokens], args, line)
        commands.append(command)
        if name == "set" and args:
            values = [a for a in args[1:] if a != "PARENT_SCOPE"]
            variables[args[0]] = ";".join(values)
        elif name == "list" and len(args) >= 2 and args[0] == "APPEND":
            variables[args[1]] = ";".join([v for v in variables.get(args[1], "").split(";") if v] + args[2:])
    return commands


def keyword_args(args: list[str], keywords: set[str]) -> dict[str, list[str]]:
    """Split a command's arguments at its keywords (cmake_parse_arguments style)."""
    groups: dict[str, list[str]] = {}
    current = None
    for arg in args:
        if arg in keywords:
            current = arg
            groups.setdefault(arg, [])
        elif current is not None:
            groups[current].append(arg)
    return groups


def the_command(commands: list[Command], name: str, path: Path) -> Command:
    found = [c for c in commands if c.name == name]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: expected one {name}(), found {len(found)}"
    return found[0]


def variable(commands: list[Command], name: str) -> list[str]:
    """The value of the last `set(name ...)`, as a list."""
    sets = [c for c in commands if c.name == "set" and c.args and c.args[0] == name]
    assert sets, f"set({name} ...) not found"
    return sets[-1].args[1:]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.relative_to(ROOT)} is not a PNG"
    return struct.unpack(">II", data[16:24])


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


# ---------------------------------------------------------------------------------------------
# The parser itself: if it misreads, every check below is worthless.
# ---------------------------------------------------------------------------------------------


def test_cmake_reader_reads_what_cmake_reads(tmp_path):
    path = tmp_path / "CMakeLists.txt"
    path.write_text(textwrap.dedent("""\
        set(NAME Demo) # a comment with add_subdirectory(Fake)
        #[[ a bracket comment
            add_subdirectory(AlsoFake) ]]
        set(SCRIPTS
          ${NAME}.py
          "${NAME}Lib/with space.py"
          )
        list(APPEND SCRIPTS extra.py)
        # add_subdirectory(Commented)
        slicerMacroBuildScriptedModule(NAME ${NAME} SCRIPTS ${SCRIPTS} RESOURCES [[Resources/a.png]])
        if(X AND (Y OR Z))
        endif()
        """))
    commands = read_cmake(path)
    assert [c.name for c in commands] == ["set", "set", "list", "slicermacrobuildscriptedmodule", "if", "endif"]
    assert variable(commands, "SCRIPTS") == ["Demo.py", "DemoLib/with space.py"]
    build = keyword_args(commands[3].args, {"NAME", "SCRIPTS", "RESOURCES"})
    assert build == {"NAME": ["Demo"], "SCRIPTS": ["Demo.py", "DemoLib/with space.py", "extra.py"],
                     "RESOURCES": ["Resources/a.png"]}
    assert not [c for c in commands if c.name == "add_subdirectory"]
    path.write_text("set(BROKEN a b\n")
    with pytest.raises(AssertionError, match="unterminated"):
        read_cmake(path)


# ---------------------------------------------------------------------------------------------
# (a) Each module: Slicer's scripted-module template, and every file listed in its CMake file.
# ---------------------------------------------------------------------------------------------

BUILD_KEYWORDS = {"NAME", "SCRIPTS", "RESOURCES", "WITH_GENERIC_TESTS", "WITH_SUBDIR", "VERBOSE"}


def module_build(module: str) -> tuple[list[Command], dict[str, list[str]]]:
    path = ROOT / module / "CMakeLists.txt"
    commands = read_cmake(path)
    build = keyword_args(the_command(commands, "slicermacrobuildscriptedmodule", path).args, BUILD_KEYWORDS)
    scripts = [s if s.endswith(".py") else s + ".py" for s in build.get("SCRIPTS", [])]  # CTK adds ".py"
    return commands, {"NAME": build.get("NAME", []), "SCRIPTS": scripts, "RESOURCES": build.get("RESOURCES", [])}


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_builds_the_module_of_its_folder(module):
    _, build = module_build(module)
    assert build["NAME"] == [module]
    for listed in build["SCRIPTS"] + build["RESOURCES"]:
        assert not Path(listed).is_absolute() and ".." not in Path(listed).parts, \
            f"{module}/CMakeLists.txt lists {listed!r}, outside the module folder"
    assert len(set(build["SCRIPTS"])) == len(build["SCRIPTS"]), f"{module}: a script is listed twice"
    assert len(set(build["RESOURCES"])) == len(build["RESOURCES"]), f"{module}: a resource is listed twice"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_file_is_listed_in_its_cmake(module):
    """What is not listed is not installed: the module would work from the source tree only."""
    _, build = module_build(module)
    folder = ROOT / module
    present = {f for f in files_under(folder) if not f.startswith("Testing/") and f != "CMakeLists.txt"}
    scripts, resources = set(build["SCRIPTS"]), set(build["RESOURCES"])
    unlisted = sorted(f for f in present if f not in scripts | resources)
    assert not unlisted, f"{module}/CMakeLists.txt does not list (so Slicer would not install): {unlisted}"
    misplaced = sorted(f for f in present if f.endswith(".py") and f not in scripts)
    assert not misplaced, f"{module}: Python files must be in MODULE_PYTHON_SCRIPTS, not resources: {misplaced}"


@pytest.mark.parametrize("module", MODULES)
def test_every_file_a_module_cmake_lists_exists(module):
    _, build = module_build(module)
    missing = sorted(f for f in build["SCRIPTS"] + build["RESOURCES"] if not (ROOT / module / f).is_file())
    assert not missing, f"{module}/CMakeLists.txt lists files that do not exist (CMake stops with an error): {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_module_has_the_template_parts(module):
    _, build = module_build(module)
    assert f"{module}.py" in build["SCRIPTS"]
    assert f"{module}Lib/__init__.py" in build["SCRIPTS"], f"{module}: the Logic package {module}Lib is not listed"
    assert f"Resources/UI/{module}.ui" in build["RESOURCES"]
    assert f"Resources/Icons/{module}.png" in build["RESOURCES"]
    icon = ROOT / module / "Resources/Icons" / f"{module}.png"
    assert icon.is_file() and png_size(icon) == (128, 128), f"{module}'s icon must be a 128x128 PNG"


@pytest.mark.parametrize("module", MODULES)
def test_module_registers_its_tests(module):
    commands, _ = module_build(module)
    unittests = [keyword_args(c.args, {"SCRIPT"}).get("SCRIPT")
                 for c in commands if c.name == "slicer_add_python_unittest"]
    assert [f"{module}.py"] in unittests, f"{module}: the self-test in {module}.py is not registered with ctest"
    assert ["Testing"] in [c.args for c in commands if c.name == "add_subdirectory"]
    testing = read_cmake(ROOT / module / "Testing/CMakeLists.txt")
    assert ["Python"] in [c.args for c in testing if c.name == "add_subdirectory"]
    python_dir = ROOT / module / "Testing/Python"
    registered = {s for c in read_cmake(python_dir / "CMakeLists.txt", {"MODULE_NAME": module})
                  if c.name == "slicer_add_python_unittest"
                  for s in keyword_args(c.args, {"SCRIPT"}).get("SCRIPT", [])}
    scripts = {p.name for p in python_dir.glob("*.py")}
    assert scripts <= registered, \
        f"{module}/Testing/Python: test scripts not registered: {sorted(scripts - registered)}"
    assert registered <= scripts, f"{module}/Testing/Python: registered scripts missing: {sorted(registered - scripts)}"


def _module_tree(module: str) -> ast.Module:
    return ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases]


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _parameter_fields(module: str) -> set[str]:
    tree = _module_tree(module)
    wrapped = [c for c in _classes(tree).values()
               if any((d.id if isinstance(d, ast.Name) else getattr(d, "attr", "")) == "parameterNodeWrapper"
                      for d in c.decorator_list)]
    assert len(wrapped) == 1, f"{module}.py: expected one @parameterNodeWrapper class, found {len(wrapped)}"
    return {node.target.id for node in wrapped[0].body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}


def _synced_by_hand(module: str) -> set[str]:
    """The module's PARAMETERS_SYNCED_BY_HAND: parameters no .ui widget is tied to, because
    their widgets' items are only known at run time (the widget syncs them itself)."""
    for node in _module_tree(module).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PARAMETERS_SYNCED_BY_HAND"
                                                for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple) and all(isinstance(v, str) for v in value), \
                f"{module}.py: PARAMETERS_SYNCED_BY_HAND must be a tuple of names"
            return set(value)
    return set()


@pytest.mark.parametrize("module", MODULES)
def test_module_file_follows_the_scripted_module_template(module):
    tree = _module_tree(module)
    classes = _classes(tree)
    if f"{module}Test" not in classes:  # the self-test may live in <Module>Testing/, imported by name
        assert any(isinstance(n, ast.ImportFrom) and n.module == f"{module}Testing.self_test"
                   and f"{module}Test" in [a.name for a in n.names] for n in tree.body), \
            f"{module}.py neither defines {module}Test nor imports it from {module}Testing.self_test"
        classes |= _classes(ast.parse((ROOT / module / f"{module}Testing" / "self_test.py").read_text()))
    for name, base in ((module, "ScriptedLoadableModule"), (f"{module}Widget", "ScriptedLoadableModuleWidget"),
                       (f"{module}Test", "ScriptedLoadableModuleTest")):
        assert name in classes, f"{module}.py has no class {name}"
        assert base in _base_names(classes[name]), f"{module}.py: {name} does not derive from {base}"

    init = next(f for f in classes[module].body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assigned = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) \
                        and target.value.attr == "parent":
                    assigned[target.attr] = node.value
    for attribute in ("title", "categories", "contributors", "helpText", "acknowledgementText"):
        assert attribute in assigned, f"{module}.py: self.parent.{attribute} is not set"
    assert "Segmentation" in _strings(assigned["categories"]), f"{module}: not in the Segmentation category"
    assert any(s.strip() for s in _strings(assigned["contributors"]))

    widget = classes[f"{module}Widget"]
    loads = [n for n in ast.walk(widget) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "loadUI"]
    assert loads and f"UI/{module}.ui" in _strings(loads[0]), f"{module}Widget does not load Resources/UI/{module}.ui"
    tests = [f.name for f in classes[f"{module}Test"].body if isinstance(f, ast.FunctionDef)]
    assert "runTest" in tests and any(t.startswith("test_") for t in tests)


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_matches_the_widget_and_its_parameter_node(module):
    """connectGui() ties each widget with a SlicerParameterName to that parameter; a typo only
    shows in Slicer, at run time. So do the widget's self.ui.<name> references."""
    root = ET.parse(ROOT / module / "Resources/UI" / f"{module}.ui").getroot()
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget" and top.get("name") == module
    widgets = {w.get("name"): w.get("class") for w in root.iter("widget")}

    tied = {}
    for w in root.iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                tied[p.findtext("string")] = w.get("name")
    fields = _parameter_fields(module)
    source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
    by_hand = _synced_by_hand(module)
    assert by_hand <= fields, \
        f"{module}: PARAMETERS_SYNCED_BY_HAND names unknown parameters: {sorted(by_hand - fields)}"
    assert not by_hand & set(tied), \
        f"{module}: parameters both tied in the .ui and synced by hand: {sorted(by_hand & set(tied))}"
    for name in by_hand:  # synced by hand: the widget reads and writes it itself
        assert re.search(rf"\.{name}\s*=[^=]", source) and re.search(rf"\.{name}\b(?!\s*=[^=])", source), \
            f"{module}.py never both reads and writes the hand-synced parameter {name}"
    assert set(tied) <= fields, f"{module}.ui ties widgets to unknown parameters: {sorted(set(tied) - fields)}"
    assert fields - by_hand <= set(tied), \
        f"{module}: parameters without a widget in the .ui: {sorted(fields - by_hand - set(tied))}"

    used = set(re.findall(r"\.ui\.([A-Za-z_][A-Za-z0-9_]*)", source))
    assert used <= set(widgets), f"{module}.py uses widgets the .ui lacks: {sorted(used - set(widgets))}"
    for required in ("applyButton", "cancelButton", "progressBar"):
        assert required in widgets, f"{module}.ui has no {required}"

    combos = {name for name, cls in widgets.items() if cls and cls.startswith("qMRML") and name != module}
    connected = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert combos <= connected, f"{module}.ui: MRML widgets never given the scene: {sorted(combos - connected)}"


# ---------------------------------------------------------------------------------------------
# (b) The engine ships inside the extension from an explicit list.
# ---------------------------------------------------------------------------------------------

ENGINE_CMAKE = ROOT / "CMake/SegForgeEngine.cmake"


def engine_lists() -> tuple[list[Command], list[str], list[str]]:
    commands = read_cmake(ENGINE_CMAKE)
    return (commands, variable(commands, "SEGFORGE_ENGINE_PYTHON_SCRIPTS"),
            variable(commands, "SEGFORGE_ENGINE_RESOURCES"))


def test_every_engine_file_is_listed_in_the_engine_cmake():
    """Fails whenever a segforge/ file is added without listing it: Slicer would lack it."""
    _, scripts, _ = engine_lists()
    present = {f"segforge/{f}" for f in files_under(ROOT / "segforge") if f.endswith(".py")}
    unlisted = sorted(present - set(scripts))
    assert not unlisted, ("CMake/SegForgeEngine.cmake does not list these engine files, so the Slicer extension "
                          "would not ship them; add to SEGFORGE_ENGINE_PYTHON_SCRIPTS:\n  " + "\n  ".join(unlisted))


def test_every_file_the_engine_cmake_lists_exists():
    _, scripts, resources = engine_lists()
    assert len(set(scripts)) == len(scripts), "an engine file is listed twice"
    missing = sorted(f for f in scripts + resources if not (ROOT / f).is_file())
    assert not missing, f"CMake/SegForgeEngine.cmake lists files that do not exist: {missing}"
    assert all(f.startswith("segforge/") and f.endswith(".py") for f in scripts)


def test_engine_data_files_are_listed():
    """Every file of Resources/Models (the catalogs, and the model files the catalog's
    bundled:// entries name) and requirements.txt, which segforge.resources.resource_path() finds."""
    _, _, resources = engine_lists()
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "Resources/Models").iterdir()
                if p.is_file() and not p.name.startswith(".")}
    catalog = json.loads((ROOT / "Resources/Models/catalog.json").read_text(encoding="utf-8"))
    bundled = {"Resources/" + m["url"].removeprefix("bundled://") for m in catalog["models"]
               if str(m.get("url")).startswith("bundled://")}
    assert bundled <= expected, f"bundled models missing from Resources/Models: {sorted(bundled - expected)}"
    expected.add("Resources/requirements.txt")
    assert not expected - set(resources), \
        f"not listed in SEGFORGE_ENGINE_RESOURCES: {sorted(expected - set(resources))}"
    assert all(r.startswith("Resources/") for r in resources), "engine resources come from Resources/"


def test_engine_installs_next_to_the_scripted_modules():
    """segforge/ must land where the modules are (on sys.path in Slicer), and its data files in
    segforge/resources/, the installed place resource_path() looks."""
    commands, scripts, resources = engine_lists()
    compile_ = the_command(commands, "ctkmacrocompilepythonscript", ENGINE_CMAKE)
    raw = keyword_args(compile_.raw, {"TARGET_NAME", "SCRIPTS", "SOURCE_DIR", "DESTINATION_DIR", "INSTALL_DIR",
                                      "RESOURCES", "NO_INSTALL_SUBDIR"})
    expanded = keyword_args(compile_.args, set(raw))
    # A quoted list is one argument holding ";"-separated items, which the macro iterates.
    assert [s for arg in expanded["SCRIPTS"] for s in arg.split(";") if s] == scripts
    assert raw["DESTINATION_DIR"] == ["${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}"]
    assert raw["INSTALL_DIR"] == ["${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}"]
    assert "NO_INSTALL_SUBDIR" in raw, "without NO_INSTALL_SUBDIR the package lands one folder too deep"

    loops = [c for c in commands if c.name == "foreach"
             and ("SEGFORGE_ENGINE_RESOURCES" in c.raw or "${SEGFORGE_ENGINE_RESOURCES}" in c.raw)]
    assert loops, "SEGFORGE_ENGINE_RESOURCES is never installed"
    installs = [c for c in commands if c.name == "install"]
    assert any("${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/segforge/resources/" in a
               for c in installs for a in c.raw), "engine data files are not installed into segforge/resources/"
    copies = [c for c in commands if c.name == "configure_file"]
    assert any("${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/segforge/resources/" in a
               for c in copies for a in c.raw), "engine data files are not copied into the build tree"

    resources_py = (ROOT / "segforge/resources.py").read_text(encoding="utf-8")
    assert '_PACKAGE_DIR / "resources"' in resources_py, "segforge.resources no longer looks in segforge/resources/"

    top = read_cmake(ROOT / "CMakeLists.txt")
    included = [c.raw for c in top if c.name == "include"]
    assert ["${CMAKE_CURRENT_SOURCE_DIR}/CMake/SegForgeEngine.cmake"] in included, \
        "the top-level CMakeLists.txt does not include CMake/SegForgeEngine.cmake"


def test_shared_widget_helpers_are_listed_and_install_next_to_the_modules():
    """SegForgeWidgets/ (the Qt helpers every module widget imports) is installed from the
    top-level CMakeLists.txt into the folder the modules and segforge/ go to."""
    top = read_cmake(ROOT / "CMakeLists.txt")
    scripts = variable(top, "SEGFORGE_WIDGETS_PYTHON_SCRIPTS")
    assert len(set(scripts)) == len(scripts), "a SegForgeWidgets file is listed twice"
    present = {f"SegForgeWidgets/{f}" for f in files_under(ROOT / "SegForgeWidgets")}
    assert present == set(scripts), ("SEGFORGE_WIDGETS_PYTHON_SCRIPTS does not match SegForgeWidgets/: "
                                     f"unlisted {sorted(present - set(scripts))}, "
                                     f"missing {sorted(set(scripts) - present)}")
    compiles = [c for c in top if c.name == "ctkmacrocompilepythonscript"
                and keyword_args(c.args, {"TARGET_NAME"}).get("TARGET_NAME", [None])[:1] == ["SegForgeWidgets"]]
    assert len(compiles) == 1, "SegForgeWidgets/ is not installed (one ctkMacroCompilePythonScript expected)"
    keywords = {"TARGET_NAME", "SCRIPTS", "SOURCE_DIR", "DESTINATION_DIR", "INSTALL_DIR", "RESOURCES",
                "NO_INSTALL_SUBDIR"}
    raw, expanded = keyword_args(compiles[0].raw, keywords), keyword_args(compiles[0].args, keywords)
    assert [s for arg in expanded["SCRIPTS"] for s in arg.split(";") if s] == scripts
    assert raw["SOURCE_DIR"] == ["${CMAKE_CURRENT_SOURCE_DIR}"]
    assert raw["DESTINATION_DIR"] == ["${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}"]
    assert raw["INSTALL_DIR"] == ["${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}"]
    assert "NO_INSTALL_SUBDIR" in raw, "without NO_INSTALL_SUBDIR the package lands one folder too deep"
    for module in MODULES:  # what every widget imports must be what is installed
        assert "from SegForgeWidgets import" in (ROOT / module / f"{module}.py").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# (c) Every Logic imports without Qt (and without the packages installed on first use).
# ---------------------------------------------------------------------------------------------

_IMPORT_HARNESS = textwrap.dedent("""\
    import importlib, sys
    blocked = tuple(sys.argv[1].split(",")) if sys.argv[1] else ()
    attempts = []

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in blocked):
                attempts.append(name)
                raise ModuleNotFoundError(f"blocked for this test: {name}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):  # nothing blocked may already be loaded
        if any(name == b or name.startswith(b + ".") for b in blocked):
            del sys.modules[name]
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    package = importlib.import_module(sys.argv[4])
    logic = getattr(package, sys.argv[5])
    assert isinstance(logic, type), f"{sys.argv[5]} is not a class"
    leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in blocked))
    assert not leaked, f"blocked modules were loaded anyway: {leaked}"
    print("imported", logic.__module__, logic.__qualname__, "attempted:", attempts)
    """)


def import_in_fresh_python(module_dir: Path, package: str, logic: str, blocked: tuple[str, ...]):
    return subprocess.run(
        [sys.executable, "-c", _IMPORT_HARNESS, ",".join(blocked), str(module_dir), str(ROOT), package, logic],
        capture_output=True, text=True, timeout=180, cwd=str(module_dir))


def test_import_harness_catches_a_forbidden_import(tmp_path):
    """The harness must fail for a Logic that does need a blocked module (and pass otherwise)."""
    lib = tmp_path / "DemoLib"
    lib.mkdir()
    (lib / "__init__.py").write_text("import json\nclass DemoLogic:\n    pass\n")
    assert import_in_fresh_python(tmp_path, "DemoLib", "DemoLogic", QT_MODULES).returncode == 0
    result = import_in_fresh_python(tmp_path, "DemoLib", "DemoLogic", QT_MODULES + ("json",))
    assert result.returncode != 0 and "blocked for this test: json" in result.stderr


@pytest.mark.parametrize("module", MODULES)
def test_logic_imports_without_qt(module):
    result = import_in_fresh_python(ROOT / module, f"{module}Lib", f"{module}Logic", QT_MODULES)
    assert result.returncode == 0, (f"{module}Lib.{module}Logic does not import without Qt "
                                    f"(blocked: {', '.join(QT_MODULES)}):\n{result.stdout}{result.stderr}")


@pytest.mark.parametrize("module", MODULES)
def test_logic_imports_without_first_use_packages(module):
    """torch and monai are installed on first use, after the user agrees; a Logic that imports
    them at import time makes its module fail to load before it can ask."""
    result = import_in_fresh_python(ROOT / module, f"{module}Lib", f"{module}Logic", FIRST_USE_PACKAGES)
    assert result.returncode == 0, (f"{module}Lib.{module}Logic does not import while {', '.join(FIRST_USE_PACKAGES)} "
                                    f"are absent; import them where they are used:\n{result.stdout}{result.stderr}")


# ---------------------------------------------------------------------------------------------
# (d) The ExtensionsIndex entry and the top-level CMakeLists.txt agree and are complete.
# ---------------------------------------------------------------------------------------------

#: Properties of Slicer's slicer-extension-catalog-entry schema (v1.0.2); no others are allowed.
CATALOG_ENTRY_PROPERTIES = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                            "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
SCHEMA_URL = re.compile(r"^https://raw\.githubusercontent\.com/Slicer/Slicer/main/Schemas/"
                        r"slicer-extension-catalog-entry-schema-v\d+\.\d+\.\d+\.json#?$")
METADATA = ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
            "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS")


def top_level() -> tuple[list[Command], dict[str, str]]:
    commands = read_cmake(ROOT / "CMakeLists.txt")
    metadata = {}
    for c in commands:
        if c.name == "set" and c.args and c.args[0] in METADATA:
            assert c.args[0] not in metadata, f"{c.args[0]} is set twice"
            assert len(c.raw) == 2, f"{c.args[0]} must be one (quoted) value, got {c.raw[1:]}"
            metadata[c.args[0]] = c.raw[1]
    return commands, metadata


def test_top_level_cmake_declares_the_extension():
    commands, metadata = top_level()
    project = the_command(commands, "project", ROOT / "CMakeLists.txt")
    assert project.args[:1] == ["SegForge"]
    for name in METADATA:
        assert metadata.get(name, "").strip(), f"{name} is not set in CMakeLists.txt"
    assert metadata["EXTENSION_CATEGORY"] == "Segmentation"
    assert "PyTorch" in metadata["EXTENSION_DEPENDS"].replace(";", " ").split()
    for name in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL"):
        assert urlsplit(metadata[name]).scheme == "https", f"{name} is not an https URL"
    for url in metadata["EXTENSION_SCREENSHOTURLS"].split():
        assert urlsplit(url).scheme == "https", f"screenshot URL {url!r} is not https"

    names = [c.name for c in commands]
    assert names.index("find_package") < names.index("include"), "find_package(Slicer) must come first"
    assert ["Slicer", "REQUIRED"] == the_command(commands, "find_package", ROOT / "CMakeLists.txt").raw
    includes = [c.raw for c in commands if c.name == "include"]
    for needed in ("${Slicer_USE_FILE}", "${Slicer_EXTENSION_GENERATE_CONFIG}", "${Slicer_EXTENSION_CPACK}"):
        assert [needed] in includes, f"include({needed}) is missing"
    subdirectories = [c.args for c in commands if c.name == "add_subdirectory"]
    assert subdirectories == [[m] for m in MODULES], f"add_subdirectory calls: {subdirectories}"


def test_extension_icon_is_in_the_repository():
    """The catalog downloads EXTENSION_ICONURL: it must name the repository's own 128x128 icon."""
    _, metadata = top_level()
    url = urlsplit(metadata["EXTENSION_ICONURL"])
    assert url.netloc == "raw.githubusercontent.com", "use the raw download URL, not a web page"
    parts = url.path.strip("/").split("/")  # owner / repository / revision / path...
    assert len(parts) >= 4
    icon = ROOT.joinpath(*parts[3:])
    assert icon.is_file(), f"EXTENSION_ICONURL names {'/'.join(parts[3:])}, which is not in the repository"
    assert png_size(icon) == (128, 128)
    assert icon == ROOT / "Resources/Icons/SegForge.png"


def test_extensions_index_entry():
    path = ROOT / "SegForge.json"
    raw = path.read_bytes()
    assert b"\r" not in raw, "ExtensionsIndex accepts LF line endings only"
    entry = json.loads(raw)
    commands, metadata = top_level()

    assert path.stem == the_command(commands, "project", ROOT / "CMakeLists.txt").args[0], \
        "the entry's file name must be the CMake project name"
    assert set(entry) <= CATALOG_ENTRY_PROPERTIES, f"not in the schema: {sorted(set(entry) - CATALOG_ENTRY_PROPERTIES)}"
    for key in ("$schema", "category", "scm_url", "scm_revision", "build_dependencies", "tier"):
        assert key in entry, f"SegForge.json lacks {key}"
    assert SCHEMA_URL.match(entry["$schema"]), f"unexpected $schema {entry['$schema']!r}"
    assert entry["category"] == metadata["EXTENSION_CATEGORY"]

    url = urlsplit(entry["scm_url"])
    assert url.scheme == "https" and url.netloc, "scm_url must be an https URL"
    repository = url.path.rstrip("/").split("/")[-1].removesuffix(".git")
    assert repository.startswith("Slicer"), "ExtensionsIndex expects the repository name to start with 'Slicer'"
    assert isinstance(entry["scm_revision"], str) and entry["scm_revision"].strip()
    assert entry.get("scm_type", "git") == "git"
    assert entry.get("build_subdirectory", ".") == ".", "not a superbuild extension: the build is at the top"
    assert isinstance(entry["tier"], int) and not isinstance(entry["tier"], bool) and 1 <= entry["tier"] <= 5

    depends = metadata["EXTENSION_DEPENDS"].replace(";", " ").split()
    assert isinstance(entry["build_dependencies"], list)
    assert sorted(entry["build_dependencies"]) == sorted(d for d in depends if d != "NA"), \
        "build_dependencies must match EXTENSION_DEPENDS"


# ---------------------------------------------------------------------------------------------
# (e) Resources/requirements.txt and the on-first-use installer.
# ---------------------------------------------------------------------------------------------

REQUIREMENTS = ROOT / "Resources/requirements.txt"


def test_requirements_file_parses_and_matches_pyproject():
    from packaging.requirements import Requirement

    from segforge.mrml import python_dependencies as deps

    assert deps.requirements_file().resolve() == REQUIREMENTS.resolve()
    lines = deps.read_requirements()
    parsed = [Requirement(line) for line in lines]
    names = {deps.requirement_name(line) for line in lines}
    assert {"monai", "tqdm"} <= names
    assert "torch" not in names, "torch comes through Slicer's PyTorch extension, not requirements.txt"
    assert len(names) == len(lines), "a package is listed twice"

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {}
    for requirement in project.get("dependencies", []) + [
            r for group in project.get("optional-dependencies", {}).values() for r in group]:
        if not requirement.startswith(project["name"]):
            declared[deps.requirement_name(requirement)] = Requirement(requirement)
    for requirement in parsed:
        name = deps.requirement_name(str(requirement))
        assert name in declared, f"{name} is in requirements.txt but not in pyproject.toml"
        assert requirement.specifier == declared[name].specifier, \
            f"{name}: requirements.txt says {requirement.specifier}, pyproject.toml {declared[name].specifier}"


def test_read_requirements_rejects_what_it_cannot_install(tmp_path):
    from segforge.mrml import python_dependencies as deps

    good = tmp_path / "good.txt"
    good.write_text("# comment\n\nnumpy>=1.0  # inline comment\nfoo-bar[extra]==2; python_version >= '3'\n")
    assert deps.read_requirements(good) == ["numpy>=1.0", "foo-bar[extra]==2; python_version >= '3'"]
    for bad_line in ("-r other.txt", "--index-url https://example.org/simple", "numpy>>1", "==1.0"):
        bad = tmp_path / "bad.txt"
        bad.write_text(bad_line + "\n")
        with pytest.raises(ValueError):
            deps.read_requirements(bad)


def test_missing_requirements_reads_installed_versions():
    from segforge.mrml import python_dependencies as deps

    pytest_version = importlib.metadata.version("pytest")
    assert deps.missing_requirements([f"pytest=={pytest_version}", "PyTest>=1"]) == []
    assert deps.missing_requirements(["pytest>=99999"]) == ["pytest>=99999"]
    assert deps.missing_requirements(["segforge-no-such-package-zz"]) == ["segforge-no-such-package-zz"]
    assert deps.missing_requirements(['segforge-no-such-package-zz; python_version < "3"']) == []
    assert deps.requirement_name("Foo_Bar.baz>=1") == "foo-bar-baz"


class FakeSlicer:
    """Just enough of Slicer for the installer: a dialog answer, and recorded install calls."""

    def __init__(self, monkeypatch, *, app=True, testing=False, answer=True, packaging=True, pytorch=True,
                 install_works=True):
        self.asked, self.pip_ensure_calls, self.pip_install_calls, self.torch_calls = [], [], [], []
        slicer = types.ModuleType("slicer")
        if app:
            slicer.app = types.SimpleNamespace(testingEnabled=lambda: testing)
        slicer.util = types.SimpleNamespace(
            confirmOkCancelDisplay=lambda text, **kw: self.asked.append((text, kw)) or answer,
            pip_install=lambda reqs: self.pip_install_calls.append(reqs))
        monkeypatch.setitem(sys.modules, "slicer", slicer)
        monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
        if packaging:
            module = types.ModuleType("slicer.packaging")
            module.pip_ensure = lambda reqs, **kw: self.pip_ensure_calls.append((reqs, kw))
            slicer.packaging = module
            slicer.__path__ = []  # a package, so that `import slicer.packaging` finds sys.modules'
            monkeypatch.setitem(sys.modules, "slicer.packaging", module)
        if pytorch:
            torch_utils = types.ModuleType("PyTorchUtils")

            class PyTorchUtilsLogic:
                def installTorch(logic, askConfirmation=False):  # noqa: N805
                    self.torch_calls.append(askConfirmation)
                    return object() if install_works else None

            torch_utils.PyTorchUtilsLogic = PyTorchUtilsLogic
            monkeypatch.setitem(sys.modules, "PyTorchUtils", torch_utils)
        else:
            monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # import fails


@pytest.fixture
def deps(monkeypatch):
    """The installer with 'monai' and 'tqdm' missing and torch absent until installed."""
    from SegForgeWidgets import python_dependencies

    state = {"missing": ["monai>=1.4", "tqdm>=4.60"], "torch": False}
    monkeypatch.setattr(python_dependencies, "read_requirements", lambda path=None: ["monai>=1.4", "tqdm>=4.60"])
    monkeypatch.setattr(python_dependencies, "missing_requirements",
                        lambda reqs=None: [r for r in (reqs or []) if r in state["missing"]])
    monkeypatch.setattr(python_dependencies, "torch_installed", lambda: state["torch"])
    python_dependencies._state = state
    return python_dependencies


def test_installer_does_nothing_when_nothing_is_missing(deps, monkeypatch):
    fake = FakeSlicer(monkeypatch)
    deps._state["missing"] = []
    deps._state["torch"] = True
    assert deps.ensure_python_dependencies("Test") is True
    assert deps.ensure_python_dependencies("Test", names=()) is True
    assert not fake.asked and not fake.pip_ensure_calls and not fake.torch_calls


def test_installer_asks_first_and_respects_no(deps, monkeypatch):
    fake = FakeSlicer(monkeypatch, answer=False)
    assert deps.ensure_python_dependencies("Test") is False
    assert len(fake.asked) == 1
    assert "monai" in fake.asked[0][1]["detailedText"] and "torch" in fake.asked[0][1]["detailedText"]
    assert not fake.pip_ensure_calls and not fake.pip_install_calls and not fake.torch_calls


def test_installer_installs_torch_through_the_pytorch_extension_then_the_rest(deps, monkeypatch):
    fake = FakeSlicer(monkeypatch)

    def pip_ensure(reqs, **kw):
        fake.pip_ensure_calls.append((reqs, kw))
        deps._state["missing"] = []

    sys.modules["slicer.packaging"].pip_ensure = pip_ensure
    sys.modules["PyTorchUtils"].PyTorchUtilsLogic.installTorch = \
        lambda logic, askConfirmation=False: (fake.torch_calls.append(askConfirmation)
                                              or deps._state.update(torch=True) or object())
    assert deps.ensure_python_dependencies("Test") is True
    assert fake.torch_calls == [False], "torch must come from PyTorchUtils, without a second question"
    assert fake.pip_ensure_calls == [(["monai>=1.4", "tqdm>=4.60"], {"prompt_install": False, "requester": "Test"})]
    assert len(fake.asked) == 1


def test_installer_falls_back_to_pip_install_on_older_slicer(deps, monkeypatch):
    fake = FakeSlicer(monkeypatch, packaging=False)
    deps._state["torch"] = True
    fake_util = sys.modules["slicer"].util
    fake_util.pip_install = lambda reqs: fake.pip_install_calls.append(reqs) or deps._state.update(missing=[])
    assert deps.ensure_python_dependencies("Test", names=["tqdm"]) is True
    assert fake.pip_install_calls == [["tqdm>=4.60"]]
    assert fake.torch_calls == [], "tqdm does not need torch"


def test_network_package_installs_without_its_dependencies(deps, monkeypatch):
    """dynamic-network-architectures would pull timm and a PyPI torchvision (and torch with it)."""
    fake = FakeSlicer(monkeypatch)
    requirements = ["dynamic-network-architectures>=0.4.4,<0.5", "einops>=0.7"]
    deps._state.update(missing=list(requirements), torch=True)
    monkeypatch.setattr(deps, "read_requirements", lambda path=None: requirements)

    def pip_ensure(reqs, **kw):
        fake.pip_ensure_calls.append((reqs, kw))
        deps._state["missing"] = []

    sys.modules["slicer.packaging"].pip_ensure = pip_ensure
    assert deps.ensure_python_dependencies("Test", names=["dynamic-network-architectures", "einops"]) is True
    assert fake.pip_install_calls == [["--no-deps", "dynamic-network-architectures>=0.4.4,<0.5"]]
    assert fake.pip_ensure_calls == [(["einops>=0.7"], {"prompt_install": False, "requester": "Test"})]


def test_installer_reports_what_it_cannot_do(deps, monkeypatch):
    from segforge.errors import SegForgeError

    FakeSlicer(monkeypatch, app=False)  # PythonSlicer: no window to ask with
    with pytest.raises(SegForgeError, match="monai"):
        deps.ensure_python_dependencies("Test")

    fake = FakeSlicer(monkeypatch, testing=True)  # self-tests must not change the environment
    assert deps.ensure_python_dependencies("Test") is False
    assert not fake.asked and not fake.pip_ensure_calls

    FakeSlicer(monkeypatch, pytorch=False)
    with pytest.raises(SegForgeError, match="PyTorch extension"):
        deps.ensure_python_dependencies("Test")

    FakeSlicer(monkeypatch)  # pip "succeeds" but the packages are still missing
    deps._state["torch"] = True
    with pytest.raises(SegForgeError, match="could not be installed"):
        deps.ensure_python_dependencies("Test")

    with pytest.raises(ValueError, match="scipy"):
        deps.ensure_python_dependencies("Test", names=["scipy"])


@pytest.mark.parametrize("module", ["segforge.mrml.python_dependencies", "SegForgeWidgets.python_dependencies"])
def test_installer_never_runs_at_import(module):
    """Importing the requirement readers (mrml) or the installer (SegForgeWidgets, whose package
    import must stay cheap) must not import slicer itself, Qt, pip or the PyTorch extension."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    top_level = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    top_level += [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 0]
    assert not [m for m in top_level if m.split(".")[0] in ("slicer", "qt", "ctk", "pip", "PyTorchUtils")], top_level
    code = (f"import sys; sys.path.insert(0, sys.argv[1]); import {module}; "
            "bad = [m for m in ('slicer.packaging', 'pip', 'PyTorchUtils', 'qt', 'ctk') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_mrml_python_dependencies_has_no_installer():
    """segforge.mrml stays Qt-free: the dialog-driven installer is SegForgeWidgets'."""
    from segforge.mrml import python_dependencies as readers

    assert not hasattr(readers, "ensure_python_dependencies")
    assert readers.select_requirements(["monai>=1.4", "tqdm>=4.60"], ["TQDM"]) == ["tqdm>=4.60"]
    assert readers.select_requirements(["monai>=1.4"], None) == ["monai>=1.4"]
    with pytest.raises(ValueError, match="scipy"):
        readers.select_requirements(["monai>=1.4"], ["scipy"])


def test_the_wheel_ships_the_whole_engine_and_its_catalog(tmp_path):
    """The pip package (CLI, batch, server) is built from the same files as the extension."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("segforge-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    engine = {p.relative_to(ROOT).as_posix() for p in (ROOT / "segforge").rglob("*.py")}
    assert engine <= names, sorted(engine - names)
    assert "segforge/resources/Models/catalog.json" in names
    assert "segforge/resources/Models/segforge-vessel-starter.pt" in names  # the bundled starter network
    # Installed alone (no checkout on the path), it finds its catalog.
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = subprocess.run([sys.executable, "-c", "import segforge.catalog as c; print(c.load_catalog().ids())"],
                           capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target),
                                                                               "PATH": "/usr/bin:/bin"})
    assert probe.returncode == 0, probe.stderr[-2000:]
    # The web app's panels drive the modules' Logic: the wheel ships it (without Qt).
    for library in ("SegVesselLib", "SegOrganLib", "SegInteractiveLib"):
        assert f"{library}/logic.py" in names and not [n for n in names if n.startswith(f"{library}/__pycache__")]
    panels = subprocess.run([sys.executable, "-c", "from segforge_app.module_logics import app_module_logic; "
                             "print(app_module_logic('SegOrgan').models()[0].id, app_module_logic('SegVessel'), "
                             "app_module_logic('SegInteractive').backends()[0])"],
                            capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target)})
    assert panels.returncode == 0, panels.stderr[-2000:]
    assert panels.stdout.startswith("ct-tissues "), panels.stdout
    assert "vesselness-frangi" in probe.stdout and str(target) in subprocess.run(
        [sys.executable, "-c", "import segforge; print(segforge.__file__)"], capture_output=True, text=True,
        cwd=tmp_path, env={"PYTHONPATH": str(target)}).stdout
