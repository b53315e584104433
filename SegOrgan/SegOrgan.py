"""SegOrgan: many labelled structures from a CT or MR volume (module, widget and self-test).

Thin by design, like SegVessel: the widget reads its parameter node, starts a job through
:class:`SegOrganLib.SegOrganLogic` and polls it from a timer, so Slicer never freezes and
Cancel always works. No algorithm lives here; the Logic (importable without Qt) is also the
scripting API for the Python console.
"""
import logging
import traceback
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from segforge.errors import Cancelled, InputError
from SegForgeWidgets import JobRunner
from SegOrganLib import SegOrganLogic

#: Packages of Resources/requirements.txt this module's jobs need (besides what Slicer bundles).
#: torch (through the PyTorch extension) only for models that run on it: see modelNeedsTorch.
#: The user is asked before anything is installed.
REQUIRED_PACKAGES = ("scipy",)
#: What the nnU-Net models (TotalSegmentator's...) need on top: the network classes.
NNUNET_PACKAGES = ("dynamic-network-architectures", "einops")

#: Models that run without torch (intensity rules, no network); every other model does.
TORCH_FREE_MODELS = ("ct-tissues",)

#: How often the widget asks the running job for progress, in milliseconds.
POLL_INTERVAL_MS = 200

#: The device selector's entries, in order: the values OrganParameters.device takes.
DEVICE_VALUES = ("auto", "cpu", "cuda")

#: Parameters that no .ui widget is tied to: the widget syncs them by hand, since the model
#: list and the structure list are only known at run time (from the Logic), so connectGui
#: cannot represent them. Testing/test_packaging.py reads this tuple.
PARAMETERS_SYNCED_BY_HAND = ("model", "excludedStructures")


def splitNames(text: str) -> list:
    """The names of a comma-separated parameter value, stripped, empty ones dropped."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def joinNames(names) -> str:
    """The comma-separated parameter value of a list of names."""
    return ",".join(names)


def chosenStructures(allStructures, excludedText: str) -> list:
    """The structures of a model (in label order) that the user has not unchecked."""
    excluded = set(splitNames(excludedText))
    return [name for name in allStructures if name not in excluded]


def structureMatches(name: str, filterText: str) -> bool:
    """Whether the search text finds a structure name (case, spaces and underscores ignored)."""
    def plain(text):
        return " ".join(text.lower().replace("_", " ").split())

    return plain(filterText) in plain(name)


def modelNeedsTorch(modelId: str) -> bool:
    """Whether a model runs on torch (nnU-Net, TorchScript, MONAI); the builtin ones do not."""
    if modelId in TORCH_FREE_MODELS:
        return False
    try:
        from segforge.catalog import load_catalog

        return load_catalog().get(modelId).framework != "builtin"
    except Exception:  # not in the catalog: the Logic will say so; assume the worst here
        return True


def organParameters(parameterNode, model):
    """The OrganParameters of the panel for the selected model (an OrganModelChoice).

    Every structure checked is sent as "all" (an empty tuple); fast only where the model has
    a fast variant.
    """
    from segforge.organ.parameters import OrganParameters

    chosen = chosenStructures(model.structures, parameterNode.excludedStructures)
    return OrganParameters(
        model=model.id,
        structures=() if len(chosen) == len(model.structures) else tuple(chosen),
        fast=bool(parameterNode.fast and model.has_fast),
        device=parameterNode.device,
    )


#
# SegOrgan
#


class SegOrgan(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SegOrgan")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SegForge developers"]
        self.parent.helpText = _("""
Segments many labelled structures (organs, bones, tissues) of a CT or MR volume into one
segmentation node, one segment per structure with its name, terminology and colour, and on
request a statistics table (one row per structure) and 3D surfaces. Pick a model: <b>ct-tissues</b>
(body, lungs, airway, bones, fat and soft tissue of a CT) needs no download; other models are
downloaded once with <code>segforge models download ID</code>. Check the structures you want
(the search box filters the list). Segments of other names already in the output segmentation
are left alone; for a name that is already there you are asked whether to replace it or keep
both. The job runs in a background worker: Slicer stays responsive and Cancel stops it.
From the Python console:
<pre>
from SegOrganLib import SegOrganLogic
from segforge.organ.parameters import OrganParameters
nodes = SegOrganLogic().segment_organs(volumeNode, OrganParameters(model="ct-tissues", structures=("lungs", "bones")))
print(nodes.segment_ids, nodes.warnings)
</pre>
See the <a href="https://github.com/SegForge/SlicerSegForge#segorgan">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the SegForge developers. Built on 3D Slicer, SimpleITK, numpy and scipy; module
layout after Slicer's scripted-module template by Jean-Christophe Fillion-Robin (Kitware), Andras
Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# Parameter node
#


@parameterNodeWrapper
class SegOrganParameterNode:
    """What the user chose, saved with the scene. Defaults match ``OrganParameters``.

    inputVolume - the CT / MR volume.
    model - the model's id (synced by hand with the model selector).
    excludedStructures - comma-separated names of the model's structures the user unchecked
        (synced by hand with the structure list); empty: all of them. Stored as exclusions so
        that "all" (the default) and "none" are both representable.
    fast - use the model's low-resolution variant, where it has one.
    device - "auto", "cpu" or "cuda".
    outputSegmentation - where the structures go; None creates a new segmentation.
    createStatistics - a table with one row per structure.
    createSurfaces - closed surfaces in 3D.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    model: str = "ct-tissues"
    excludedStructures: str = ""
    fast: bool = False
    device: Annotated[str, Choice(list(DEVICE_VALUES))] = "auto"
    outputSegmentation: vtkMRMLSegmentationNode
    createStatistics: bool = True
    createSurfaces: bool = False


def getParameterNode() -> SegOrganParameterNode:
    """The scene's SegOrgan parameter node (created on first use).

    The Logic in SegOrganLib stays free of Qt, so it cannot derive from
    ScriptedLoadableModuleLogic; that class's parameter-node lookup is used here instead.
    """
    finder = ScriptedLoadableModuleLogic()
    finder.moduleName = "SegOrgan"
    return SegOrganParameterNode(finder.getParameterNode())


#
# SegOrganWidget
#


class SegOrganWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, structures, outputs, Apply, Cancel and a progress bar."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobs = None  # SegForgeWidgets.JobRunner: the running job, its progress and Cancel
        self._models = []  # OrganModelChoice, in the model selector's order
        self._modelsStale = False
        self._listedModel = None  # id of the model whose structures the list shows
        self._updatingGui = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegOrgan.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # The .ui connects mrmlSceneChanged(vtkMRMLScene*) to each MRML widget's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegOrganLogic()

        self._jobs = JobRunner(self.ui, POLL_INTERVAL_MS, "SegOrgan", refresh=self._checkCanApply)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelComboBox.connect("activated(int)", self.onModelActivated)
        self.ui.structureSearchBox.connect("textChanged(QString)", self.onStructureFilterChanged)
        self.ui.structuresListWidget.connect("itemChanged(QListWidgetItem*)", self.onStructureItemChanged)
        self.ui.selectAllStructuresButton.connect("clicked(bool)", self.onSelectAllStructures)
        self.ui.selectNoStructuresButton.connect("clicked(bool)", self.onSelectNoStructures)

        self._showStatistics(None)
        self._refreshModels()
        self._jobs.showIdle("")
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._jobs is not None:
            self._jobs.drop()
        self.removeObservers()

    def enter(self) -> None:
        if self._modelsStale:  # a model may have been downloaded meanwhile
            self._refreshModels()
        self.initializeParameterNode()

    def exit(self) -> None:
        # A running job goes on (and keeps being polled) while the user is in another module.
        self._modelsStale = True
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        # The nodes a running job would write into are about to go away: cancel it and let
        # go of it, so a result that was just finishing is never written into the next scene.
        if self._jobs.running:
            self._jobs.drop()
            self._jobs.showIdle(_("Cancelled: the scene was closed."))
        self._showStatistics(None)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[SegOrganParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Each widget of the .ui with a "SlicerParameterName" property is tied to that parameter.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self._labelDeviceItems()
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._updateGuiFromParameterNode()
        self._checkCanApply()

    # -- models and structures ----------------------------------------------------------------

    def _labelDeviceItems(self) -> None:
        """connectGui fills the device selector with the raw values; show readable labels (same order)."""
        labels = {"auto": _("Automatic"), "cpu": _("CPU"), "cuda": _("GPU (CUDA)")}
        for index, value in enumerate(DEVICE_VALUES):
            if index < self.ui.deviceComboBox.count:
                self.ui.deviceComboBox.setItemText(index, labels[value])

    def _refreshModels(self) -> None:
        """Fill the model selector from the Logic (titles shown, ids kept as item data)."""
        self._modelsStale = False
        try:
            self._models = list(self.logic.models())
        except Exception as error:
            self._models = []
            logging.error("SegOrgan: could not list the organ models:\n%s", traceback.format_exc())
            self.ui.modelWarningLabel.text = _("Could not list the organ models: {error}").format(
                error=getattr(error, "message", str(error)))
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for index, model in enumerate(self._models):
            combo.addItem(model.title, model.id)
            combo.setItemData(index, model.description, qt.Qt.ToolTipRole)
        combo.blockSignals(wasBlocked)
        self._listedModel = None  # the structures of a model may have changed too
        if self._parameterNode:
            self._onParameterNodeModified()

    def _selectedModel(self):
        """The OrganModelChoice of the parameter node's model; None when the Logic does not know it."""
        p = self._parameterNode
        if not p:
            return None
        return next((model for model in self._models if model.id == p.model), None)

    def _listItems(self) -> list:
        listWidget = self.ui.structuresListWidget
        return [listWidget.item(row) for row in range(listWidget.count)]

    def _updateGuiFromParameterNode(self) -> None:
        """The hand-synced parts of the panel (model, structure list, warnings) from the parameter node."""
        p = self._parameterNode
        model = self._selectedModel()
        self._updatingGui = True
        try:
            combo = self.ui.modelComboBox
            wasBlocked = combo.blockSignals(True)
            combo.currentIndex = self._models.index(model) if model is not None else -1
            combo.blockSignals(wasBlocked)

            listWidget = self.ui.structuresListWidget
            wasBlocked = listWidget.blockSignals(True)
            modelId = model.id if model is not None else None
            if modelId != self._listedModel:
                listWidget.clear()
                for name in (model.structures if model is not None else ()):
                    item = qt.QListWidgetItem(name)
                    item.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled)
                    item.setCheckState(qt.Qt.Checked)
                    listWidget.addItem(item)
                self._listedModel = modelId
            excluded = set(splitNames(p.excludedStructures)) if p else set()
            filterText = self.ui.structureSearchBox.text
            for item in self._listItems():
                item.setCheckState(qt.Qt.Unchecked if item.text() in excluded else qt.Qt.Checked)
                item.setHidden(not structureMatches(item.text(), filterText))
            listWidget.blockSignals(wasBlocked)
            listWidget.viewport().update()

            total = len(model.structures) if model is not None else 0
            chosen = len(chosenStructures(model.structures, p.excludedStructures)) if model is not None and p else 0
            self.ui.structureCountLabel.text = _("{chosen} of {total} selected").format(chosen=chosen, total=total)

            if p and model is None:
                warning = (_("The model \"{model}\" is not available here.").format(model=p.model)
                           if self._models else self.ui.modelWarningLabel.text)
            else:
                warning = (model.warning or "") if model is not None else ""
            self.ui.modelWarningLabel.text = warning
            self.ui.modelWarningLabel.visible = bool(warning)

            hasFast = bool(model is not None and model.has_fast)
            self.ui.fastCheckBox.enabled = hasFast
            self.ui.fastCheckBox.toolTip = (
                _("Use the model's low-resolution variant: much faster and lighter on memory, coarser boundaries.")
                if hasFast else _("This model has no fast variant."))
        finally:
            self._updatingGui = False

    def onModelActivated(self, index: int) -> None:
        """The user picked a model: its structures, all checked."""
        if not self._parameterNode or not 0 <= index < len(self._models):
            return
        self._parameterNode.excludedStructures = ""
        self._parameterNode.model = self._models[index].id

    def onStructureFilterChanged(self, text: str) -> None:
        for item in self._listItems():
            item.setHidden(not structureMatches(item.text(), text))

    def onStructureItemChanged(self, item) -> None:
        """A check box of the list was clicked: store what is now unchecked."""
        if self._updatingGui or not self._parameterNode:
            return
        excluded = [i.text() for i in self._listItems() if i.checkState() != qt.Qt.Checked]
        self._parameterNode.excludedStructures = joinNames(excluded)

    def _setShownStructuresChecked(self, checked: bool) -> None:
        """All / None act on the structures the search box shows (all of them without a search)."""
        p = self._parameterNode
        model = self._selectedModel()
        if not p or model is None:
            return
        shown = {item.text() for item in self._listItems() if not item.isHidden()}
        excluded = set(splitNames(p.excludedStructures))
        excluded = excluded - shown if checked else excluded | shown
        p.excludedStructures = joinNames([name for name in model.structures if name in excluded])

    def onSelectAllStructures(self) -> None:
        self._setShownStructuresChecked(True)

    def onSelectNoStructures(self) -> None:
        self._setShownStructuresChecked(False)

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        model = self._selectedModel()
        running = self._jobs is not None and self._jobs.running
        if running:
            reason = _("An organ segmentation job is running")
        elif not p or not p.inputVolume:
            reason = _("Select an input volume")
        elif model is None:
            reason = _("Select a model")
        elif not model.installed:
            reason = model.warning or _("The model is not installed")
        elif not chosenStructures(model.structures, p.excludedStructures):
            reason = _("Check at least one structure")
        else:
            reason = ""
        self.ui.applyButton.enabled = not reason
        self.ui.applyButton.toolTip = reason or _("Segment the checked structures of the input volume.")

    # -- running a job --------------------------------------------------------------------

    def onApplyButton(self) -> None:
        """Start the organ job; the timer takes it from there."""
        if self._jobs.running or not self._parameterNode:
            return
        p = self._parameterNode
        model = self._selectedModel()
        if model is None:
            return
        if not self._ensurePythonDependencies(model.id):
            return
        try:
            parameters = organParameters(p, model)
            onExisting = self._askOnExistingStructures(p.outputSegmentation, parameters)
            if onExisting is None:
                return
            job = self.logic.start_organ_segmentation(
                p.inputVolume,
                parameters,
                segmentation_node=p.outputSegmentation,
                on_existing=onExisting,
                statistics=bool(p.createStatistics),
                surfaces=bool(p.createSurfaces),
            )
        except Exception as error:
            self._jobs.showError(_("Could not start the organ segmentation."), error)
            return
        self._jobs.start(job, self._onJobDone,
                         lambda error: self._jobs.showFailure(error, _("Organ segmentation failed.")), _("Starting"))

    def _onJobDone(self, nodes) -> None:
        if self._parameterNode and nodes.segmentation is not None:
            self._parameterNode.outputSegmentation = nodes.segmentation
        for warning in nodes.warnings:
            logging.warning("SegOrgan: %s", warning)
        self._showStatistics(nodes.statistics_table)
        self._jobs.showIdle(self._summary(nodes))

    @staticmethod
    def _summary(nodes) -> str:
        """Which structures went where, the statistics table, and every warning on its own line."""
        node = nodes.segmentation.GetName() if nodes.segmentation is not None else _("the segmentation")
        names = []
        if nodes.segmentation is not None:
            segmentation = nodes.segmentation.GetSegmentation()
            for segmentId in nodes.segment_ids:
                segment = segmentation.GetSegment(segmentId)
                names.append(segment.GetName() if segment is not None else segmentId)
        if names:
            text = _("Done: {count} structures in {node}: {names}.").format(
                count=len(names), node=node, names=", ".join(names))
        else:
            text = _("Done, but no structure was written into {node}.").format(node=node)
        absent = (nodes.summary or {}).get("absent") or []
        if absent:
            text += " " + _("Not found in this image: {names}.").format(names=", ".join(absent))
        if nodes.statistics_table is not None:
            text += " " + _("Statistics: table \"{table}\".").format(table=nodes.statistics_table.GetName())
        for warning in nodes.warnings:
            text += "\n" + _("Warning: {warning}").format(warning=warning)
        return text

    def _showStatistics(self, tableNode) -> None:
        """The statistics table of the last run in the panel (hidden when there is none)."""
        self.ui.statisticsTableView.setMRMLTableNode(tableNode)
        self.ui.resultsCollapsibleButton.visible = tableNode is not None
        if tableNode is not None:
            self.ui.resultsCollapsibleButton.collapsed = False

    # -- helpers ----------------------------------------------------------------------------

    def _ensurePythonDependencies(self, modelId: str) -> bool:
        """Install what the job needs on first use, after asking; False when it cannot run."""
        needsTorch = modelNeedsTorch(modelId)
        packages = REQUIRED_PACKAGES + (NNUNET_PACKAGES if needsTorch else ())
        from SegForgeWidgets import python_dependencies

        try:
            if python_dependencies.ensure_python_dependencies("SegOrgan", names=packages,
                                                              needs_torch=needsTorch):
                return True
        except Exception as error:
            self._jobs.showError(_("Could not install the Python packages SegOrgan needs."), error)
            return False
        missing = python_dependencies.missing_requirements(
            [r for r in python_dependencies.read_requirements()
             if python_dependencies.requirement_name(r) in packages])
        if needsTorch and not python_dependencies.torch_installed():
            missing.append("torch")
        slicer.util.warningDisplay(
            _("SegOrgan cannot run without these Python packages: {packages}").format(packages=", ".join(missing)))
        return False

    def _askOnExistingStructures(self, segmentationNode, parameters) -> Optional[str]:
        """"error" when no segment would clash, else "replace" / "rename" as the user says; None = cancel."""
        if segmentationNode is None:
            return "error"
        clashes = self.logic.existing_structures(segmentationNode, parameters)
        if not clashes:
            return "error"
        if slicer.app.testingEnabled():
            return "rename"  # no dialog in self-tests; keeping both never destroys anything
        shown = ", ".join(f"\"{name}\"" for name in clashes[:8])
        if len(clashes) > 8:
            shown += " " + _("and {count} more").format(count=len(clashes) - 8)
        box = qt.QMessageBox(slicer.util.mainWindow())
        box.setIcon(qt.QMessageBox.Question)
        box.setWindowTitle(_("SegOrgan"))
        box.setText(_("The segmentation \"{node}\" already has segments named {names}.").format(
            node=segmentationNode.GetName(), names=shown))
        box.setInformativeText(_("Replace them with the new result, or keep both (the new segments get other "
                                 "names)? Segments of other names are left alone either way."))
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


#
# SegOrganTest
#


class SegOrganTest(ScriptedLoadableModuleTest):
    """Self-test run by ctest and from the module's Reload & Test button.

    It runs the real engine (ct-tissues, no model download) through the Logic on a small
    synthetic CT: air around a soft-tissue body with two lungs and a bone.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegOrgan_ct_tissues()
        self.setUp()
        self.test_SegOrgan_subset()
        self.setUp()
        self.test_SegOrgan_existing_segments()
        self.setUp()
        self.test_SegOrgan_cancel()
        self.setUp()
        self.test_SegOrgan_panel()

    def _ctVolume(self, shape_ijk=(64, 64, 40), spacing=(1.5, 1.5, 2.5), name="SegOrganTestCT"):
        """A CT-like int16 volume in HU: air (-1000) around an elliptic body of soft tissue (40),
        two lung-like air blobs (-850) and a bone cylinder (700 HU cortex, 200 HU marrow) along
        the slices. Returns the volume node and the true lung and bone masks ([k, j, i])."""
        import numpy as np

        ni, nj, nk = shape_ijk
        k, j, i = np.mgrid[0:nk, 0:nj, 0:ni]
        scale = 64.0 / ni  # the same body in millimetres whatever the grid
        x = (i - (ni - 1) / 2) * spacing[0] * scale
        y = (j - (nj - 1) / 2) * spacing[1] * scale
        z = (k - (nk - 1) / 2) * spacing[2] * 40.0 / nk
        hu = np.full((nk, nj, ni), -1000.0)
        hu[(x / 42.0) ** 2 + (y / 32.0) ** 2 <= 1.0] = 40.0
        lungs = np.zeros(hu.shape, bool)
        for side in (-1, 1):
            lungs |= ((x - side * 18) / 12.0) ** 2 + ((y + 4) / 14.0) ** 2 + (z / 38.0) ** 2 <= 1.0
        hu[lungs] = -850.0
        bone = x ** 2 + (y - 20) ** 2 <= 8.0 ** 2
        hu[bone] = 700.0
        hu[x ** 2 + (y - 20) ** 2 <= 5.0 ** 2] = 200.0
        hu += np.random.default_rng(0).normal(0.0, 10.0, hu.shape)
        volumeNode = slicer.util.addVolumeFromArray(hu.astype(np.int16), name=name)
        volumeNode.SetSpacing(spacing[0] * scale, spacing[1] * scale, spacing[2] * 40.0 / nk)
        return volumeNode, {"lungs": lungs, "bones": bone}

    @staticmethod
    def _segmentIdsByName(segmentationNode) -> dict:
        segmentation = segmentationNode.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
        return {segmentation.GetSegment(segmentId).GetName(): segmentId for segmentId in ids}

    def _waitUntilFinished(self, job, seconds=60.0):
        """Poll (keeping the GUI alive) until the job ends."""
        import time

        deadline = time.monotonic() + seconds
        while not job.poll().finished:
            self.assertLess(time.monotonic(), deadline, f"the job did not finish within {seconds:g} s")
            slicer.app.processEvents()
            time.sleep(0.05)

    def test_SegOrgan_ct_tissues(self):
        """ct-tissues: named segments with terminology where the phantom has them, and statistics."""
        from segforge.organ.parameters import OrganParameters

        self.delayDisplay("ct-tissues on a synthetic CT")
        volumeNode, truth = self._ctVolume()
        nodes = SegOrganLogic().segment_organs(volumeNode, OrganParameters(model="ct-tissues"), statistics=True)
        self.assertIsNotNone(nodes.segmentation)
        byName = self._segmentIdsByName(nodes.segmentation)
        for name in ("body", "lungs", "bones"):
            self.assertIn(name, byName, f"no segment named {name}")
            self.assertIn(byName[name], nodes.segment_ids)
            segment = nodes.segmentation.GetSegmentation().GetSegment(byName[name])
            self.assertTrue(segment.GetTerminology(), f"the {name} segment has no terminology")
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, byName[name], volumeNode) > 0
            self.assertGreater(int(mask.sum()), 0, f"the {name} segment is empty")
            if name in truth:
                self.assertGreater(float(mask[truth[name]].mean()), 0.8, f"most of the true {name} is missed")
        self.assertIsNotNone(nodes.statistics_table, "no statistics table")
        self.assertEqual(nodes.statistics_table.GetNumberOfRows(), len(nodes.segment_ids),
                         "the statistics table has not one row per segment")
        self.delayDisplay("Test passed")

    def test_SegOrgan_subset(self):
        """Asking for the lungs only writes the lungs only."""
        from segforge.organ.parameters import OrganParameters

        self.delayDisplay("A subset of the structures")
        volumeNode, _truth = self._ctVolume()
        nodes = SegOrganLogic().segment_organs(volumeNode, OrganParameters(model="ct-tissues", structures=("lungs",)))
        self.assertEqual(len(nodes.segment_ids), 1)
        self.assertEqual(list(self._segmentIdsByName(nodes.segmentation)), ["lungs"])
        self.delayDisplay("Test passed")

    def test_SegOrgan_existing_segments(self):
        """A second run: "error" refuses and changes nothing; "replace" leaves other segments alone."""
        import numpy as np
        from segforge.organ.parameters import OrganParameters

        self.delayDisplay("Running again into the same segmentation")
        volumeNode, _truth = self._ctVolume()
        logic = SegOrganLogic()
        parameters = OrganParameters(model="ct-tissues", structures=("body", "lungs", "bones"))
        segmentationNode = logic.segment_organs(volumeNode, parameters, statistics=False).segmentation
        lesionId = segmentationNode.GetSegmentation().AddEmptySegment("MyLesion", "MyLesion")
        lesion = np.zeros(slicer.util.arrayFromVolume(volumeNode).shape, np.uint8)
        lesion[18:22, 28:36, 28:36] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(lesion, segmentationNode, lesionId, volumeNode)

        def snapshot():
            return {name: slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode).copy()
                    for name, segmentId in self._segmentIdsByName(segmentationNode).items()}

        before, idsBefore = snapshot(), self._segmentIdsByName(segmentationNode)
        nodeCount = slicer.mrmlScene.GetNumberOfNodes()  # after snapshot(), which may leave helper nodes
        self.assertEqual(sorted(logic.existing_structures(segmentationNode, parameters)), ["body", "bones", "lungs"])

        with self.assertRaises(InputError):
            logic.segment_organs(volumeNode, parameters, segmentation_node=segmentationNode, on_existing="error")
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodeCount, "a refused run added nodes")
        self.assertEqual(self._segmentIdsByName(segmentationNode), idsBefore, "a refused run changed the segments")
        for name, array in snapshot().items():
            np.testing.assert_array_equal(array, before[name], f"a refused run changed {name}")

        nodes = logic.segment_organs(volumeNode, parameters, segmentation_node=segmentationNode,
                                     on_existing="replace", statistics=False)
        self.assertIs(nodes.segmentation, segmentationNode)
        after = self._segmentIdsByName(segmentationNode)
        self.assertEqual(sorted(after), sorted(idsBefore), "replace added or removed segments")
        self.assertEqual(after["MyLesion"], lesionId)
        np.testing.assert_array_equal(
            slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, lesionId, volumeNode), before["MyLesion"],
            "replace changed the user's own segment")
        self.delayDisplay("Test passed")

    def test_SegOrgan_cancel(self):
        """A job cancelled right after it starts ends cancelled and adds no node."""
        from segforge.organ.parameters import OrganParameters

        self.delayDisplay("Cancelling a running job")
        volumeNode, _truth = self._ctVolume(shape_ijk=(192, 192, 120))
        nodeCount = slicer.mrmlScene.GetNumberOfNodes()
        job = SegOrganLogic().start_organ_segmentation(volumeNode, OrganParameters(model="ct-tissues"))
        job.cancel()
        self._waitUntilFinished(job, 60.0)
        self.assertEqual(job.poll().state, "cancelled")
        with self.assertRaises(Cancelled):
            job.finish()
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodeCount, "a cancelled job added nodes")
        self.delayDisplay("Test passed")

    def test_SegOrgan_panel(self):
        """The panel: structure list, All / None, Apply's state, and a run through the poll timer."""
        import time
        from segforge.organ.parameters import OrganParameters

        self.delayDisplay("The SegOrgan panel")
        self.assertEqual(splitNames(" body, ,lungs "), ["body", "lungs"])
        self.assertEqual(chosenStructures(("body", "lungs", "bones"), "lungs"), ["body", "bones"])
        self.assertTrue(structureMatches("kidney_left", "Kidney L"))
        self.assertFalse(structureMatches("liver", "lung"))
        self.assertFalse(modelNeedsTorch("ct-tissues"))

        volumeNode, _truth = self._ctVolume()
        slicer.util.selectModule("SegOrgan")
        widget = slicer.modules.segorgan.widgetRepresentation().self()
        widget.initializeParameterNode()
        p = widget._parameterNode
        p.inputVolume = volumeNode
        p.model = "ct-tissues"
        p.excludedStructures = ""
        model = widget._selectedModel()
        self.assertIsNotNone(model, "ct-tissues is not offered")
        self.assertEqual(widget.ui.structuresListWidget.count, len(model.structures))
        self.assertTrue(widget.ui.applyButton.enabled, widget.ui.applyButton.toolTip)
        self.assertEqual(organParameters(p, model).structures, ())  # all checked: all

        widget.onSelectNoStructures()
        self.assertEqual(chosenStructures(model.structures, p.excludedStructures), [])
        self.assertFalse(widget.ui.applyButton.enabled, "Apply is enabled with no structure checked")
        widget.ui.structureSearchBox.text = "lung"
        widget.onSelectAllStructures()
        widget.ui.structureSearchBox.text = ""
        self.assertEqual(chosenStructures(model.structures, p.excludedStructures), ["lungs"])
        self.assertEqual(organParameters(p, model), OrganParameters(model="ct-tissues", structures=("lungs",),
                                                                    fast=False, device=p.device))
        self.assertEqual(widget.ui.structureCountLabel.text, f"1 of {len(model.structures)} selected")
        self.assertTrue(widget.ui.applyButton.enabled, widget.ui.applyButton.toolTip)

        p.outputSegmentation = None
        widget.onApplyButton()
        self.assertTrue(widget._jobs.running, f"Apply started no job: {widget.ui.statusLabel.text}")
        deadline = time.monotonic() + 60.0
        while widget._jobs.running:
            self.assertLess(time.monotonic(), deadline, "the panel's job did not finish within 60 s")
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertTrue(widget.ui.statusLabel.text.startswith("Done"), widget.ui.statusLabel.text)
        self.assertIsNotNone(p.outputSegmentation, "the panel does not show the new segmentation")
        self.assertEqual(list(self._segmentIdsByName(p.outputSegmentation)), ["lungs"])
        self.delayDisplay("Test passed")
