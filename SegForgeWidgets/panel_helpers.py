"""What the three module panels would otherwise each write again: their parameter node, the
first-use package prompt, the Replace / Keep-both question, readable device names.

Qt and Slicer's GUI only; the rules behind the fields live in each module's form
(``SegXxxLib/form.py``).
"""
import qt

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from segforge.forms import DEVICE_TITLES



def parameterNodeOf(moduleName: str, wrapperClass):
    """The scene's parameter node of a module, created on first use, wrapped in its
    ``parameterNodeWrapper`` class. The module Logic stays Qt-free, so it cannot derive from
    ScriptedLoadableModuleLogic; that class's lookup is used here instead."""
    finder = ScriptedLoadableModuleLogic()
    finder.moduleName = moduleName
    return wrapperClass(finder.getParameterNode())


def labelDeviceItems(comboBox, values) -> None:
    """connectGui fills a device selector with the raw values; show readable labels (same order)."""
    for index, value in enumerate(values):
        if index < comboBox.count:
            comboBox.setItemText(index, _(DEVICE_TITLES.get(value, value)))


def ensurePythonDependencies(moduleName: str, packages, needsTorch: bool, jobs) -> bool:
    """Install what a job needs on first use, after asking; False (and why, in the panel)
    when it cannot run. ``jobs`` is the panel's JobRunner, which shows errors."""
    from SegForgeWidgets import python_dependencies

    try:
        if python_dependencies.ensure_python_dependencies(moduleName, names=packages, needs_torch=needsTorch):
            return True
    except Exception as error:
        jobs.showError(_("Could not install the Python packages {module} needs.").format(module=moduleName), error)
        return False
    missing = python_dependencies.missing_requirements(
        [r for r in python_dependencies.read_requirements() if python_dependencies.requirement_name(r) in packages])
    if needsTorch and not python_dependencies.torch_installed():
        missing.append("torch")
    slicer.util.warningDisplay(_("{module} cannot run without these Python packages: {packages}").format(
        module=moduleName, packages=", ".join(missing)))
    return False


def askReplaceOrKeepBoth(moduleName: str, text: str, informativeText: str):
    """"replace" or "rename" (keep both) as the user answers a clash with existing segments;
    None when they cancel. Self-tests get "rename": keeping both never destroys anything."""
    if slicer.app.testingEnabled():
        return "rename"
    box = qt.QMessageBox(slicer.util.mainWindow())
    box.setIcon(qt.QMessageBox.Question)
    box.setWindowTitle(moduleName)
    box.setText(text)
    box.setInformativeText(informativeText)
    replaceButton = box.addButton(_("Replace"), qt.QMessageBox.DestructiveRole)
    keepButton = box.addButton(_("Keep both"), qt.QMessageBox.AcceptRole)
    box.addButton(qt.QMessageBox.Cancel)
    box.setDefaultButton(keepButton)
    box.exec_()
    clicked = box.clickedButton()
    if clicked == replaceButton:
        return "replace"
    if clicked == keepButton:
        return "rename"
    return None
