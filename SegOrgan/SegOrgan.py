"""SegOrgan: many labelled structures from a CT or MR volume (module and widget; the self-test
is in SegOrganTesting).

Thin by design, like SegVessel: the widget reads its parameter node, starts a job through
:class:`SegOrganLib.SegOrganLogic` and polls it from a timer, so Slicer never freezes and
Cancel always works. No algorithm lives here; the Logic (importable without Qt) is also the
scripting API for the Python console.
"""
import logging
import traceback
from typing import Annotated

import qt

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from segforge.forms import DEVICE_VALUES
from SegForgeWidgets import DicomSection, JobRunner
from SegForgeWidgets.parameter_node_widget import ParameterNodeWidgetMixin
from SegForgeWidgets.panel_helpers import askReplaceOrKeepBoth, ensurePythonDependencies
from SegOrganLib import SegOrganLogic
from SegOrganLib.form import excluded_text, form_from_parameter_node, python_packages, split_names, summary
from SegOrganTesting.self_test import SegOrganTest  # noqa: F401 - Reload and Test runs SegOrganTest from here

#: How often the widget asks the running job for progress, in milliseconds.
POLL_INTERVAL_MS = 200


#: Parameters that no .ui widget is tied to: the widget syncs them by hand, since the model
#: list and the structure list are only known at run time (from the Logic), so connectGui
#: cannot represent them. Testing/test_packaging.py reads this tuple.
PARAMETERS_SYNCED_BY_HAND = ("model", "excludedStructures")


def structureMatches(name: str, filterText: str) -> bool:
    """Whether the search text finds a structure name (case, spaces and underscores ignored)."""
    def plain(text):
        return " ".join(text.lower().replace("_", " ").split())

    return plain(filterText) in plain(name)


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
    """What the user chose, saved with the scene: the fields of ``SegOrganLib.form.OrganForm``
    (camelCase), the input volume and the output segmentation (None: a new one). The structures
    are kept as comma-separated names the user unticked (``excludedStructures``), so that "all",
    the default, needs no list and "none" is representable too."""

    inputVolume: vtkMRMLScalarVolumeNode
    model: str = "ct-tissues"
    excludedStructures: str = ""
    fast: bool = False
    device: Annotated[str, Choice(list(DEVICE_VALUES))] = "auto"
    outputSegmentation: vtkMRMLSegmentationNode
    createStatistics: bool = True
    createSurfaces: bool = True


#
# SegOrganWidget
#


class SegOrganWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, structures, outputs, Apply, Cancel and a progress bar."""

    parameterNodeClass = SegOrganParameterNode

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobs = None  # SegForgeWidgets.JobRunner: the running job, its progress and Cancel
        self._dicom = None  # SegForgeWidgets.DicomSection: Export to DICOM / Send to PACS
        self._lastResult = None  # (input volume, OrganNodes) of the last run, what the DICOM section files
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
        self._dicom = DicomSection(uiWidget.layout(), self.ui.statusLabel, "SegOrgan", self._dicomResult)

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
        if self._dicom is not None:
            self._dicom.drop()
        self.removeObservers()

    def enter(self) -> None:
        if self._modelsStale:  # a model may have been downloaded meanwhile
            self._refreshModels()
        self.initializeParameterNode()

    def exit(self) -> None:
        # A running job goes on (and keeps being polled) while the user is in another module.
        self._modelsStale = True
        self.releaseParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        # The nodes a running job would write into are about to go away: cancel it and let
        # go of it, so a result that was just finishing is never written into the next scene.
        if self._jobs.running:
            self._jobs.drop()
            self._jobs.showIdle(_("Cancelled: the scene was closed."))
        self._showStatistics(None)
        self._dicom.drop()
        self._lastResult = None
        self._dicom.refresh()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._updateGuiFromParameterNode()
        self._checkCanApply()

    # -- models and structures ----------------------------------------------------------------

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
            excluded = set(split_names(p.excludedStructures)) if p else set()
            filterText = self.ui.structureSearchBox.text
            for item in self._listItems():
                item.setCheckState(qt.Qt.Unchecked if item.text() in excluded else qt.Qt.Checked)
                item.setHidden(not structureMatches(item.text(), filterText))
            listWidget.blockSignals(wasBlocked)
            listWidget.viewport().update()

            total = len(model.structures) if model is not None else 0
            chosen = len(self.form().chosen(model.structures)) if model is not None and p else 0
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
        """The user picked a model: its structures, all checked (Fast unticked if it has no such variant)."""
        p = self._parameterNode
        if p and 0 <= index < len(self._models):
            p.excludedStructures, p.fast, p.model = "", p.fast and self._models[index].has_fast, self._models[index].id

    def onStructureFilterChanged(self, text: str) -> None:
        for item in self._listItems():
            item.setHidden(not structureMatches(item.text(), text))

    def onStructureItemChanged(self, item) -> None:
        """A check box of the list was clicked: store what is now unchecked."""
        if self._updatingGui or not self._parameterNode:
            return
        chosen = [i.text() for i in self._listItems() if i.checkState() == qt.Qt.Checked]
        self._parameterNode.excludedStructures = excluded_text([i.text() for i in self._listItems()], chosen)

    def _setShownStructuresChecked(self, checked: bool) -> None:
        """All / None act on the structures the search box shows (all of them without a search)."""
        p = self._parameterNode
        model = self._selectedModel()
        if not p or model is None:
            return
        shown = {item.text() for item in self._listItems() if not item.isHidden()}
        chosen = set(self.form().chosen(model.structures))
        p.excludedStructures = excluded_text(model.structures, chosen | shown if checked else chosen - shown)

    def onSelectAllStructures(self) -> None:
        self._setShownStructuresChecked(True)

    def onSelectNoStructures(self) -> None:
        self._setShownStructuresChecked(False)

    def form(self):
        """The panel's OrganForm, read from the parameter node."""
        return form_from_parameter_node(self._parameterNode, self._models)

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
        elif not self.form().chosen(model.structures):
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
        packages, needsTorch = python_packages(model.id)
        if not ensurePythonDependencies("SegOrgan", packages, needsTorch, self._jobs):
            return
        try:
            form = self.form()
            question = self.logic.clash_question(p.outputSegmentation, form)
            onExisting = "error" if question is None else askReplaceOrKeepBoth(
                _("SegOrgan"), question, _("Replace them with the new result, or keep both (the new segments get "
                                           "other names)? Segments of other names are left alone either way."))
            if onExisting is None:
                return
            job = self.logic.start(p.inputVolume, form, segmentation_node=p.outputSegmentation,
                                   on_existing=onExisting)
        except Exception as error:
            self._jobs.showError(_("Could not start the organ segmentation."), error)
            return
        volume = p.inputVolume  # the volume this job runs on, whatever the selector shows when it ends
        self._jobs.start(job, lambda nodes: self._onJobDone(nodes, volume),
                         lambda error: self._jobs.showFailure(error, _("Organ segmentation failed.")), _("Starting"))

    def _onJobDone(self, nodes, volume) -> None:
        if self._parameterNode and nodes.segmentation is not None:
            self._parameterNode.outputSegmentation = nodes.segmentation
        self._lastResult = (volume, nodes)
        self._dicom.refresh()
        for warning in nodes.warnings:
            logging.warning("SegOrgan: %s", warning)
        self._showStatistics(nodes.statistics_table)
        self._jobs.showIdle("\n".join([summary(nodes)] + [_("Warning: {warning}").format(warning=warning)
                                                             for warning in nodes.warnings]))

    def _dicomResult(self):
        """(Logic, input volume, OrganNodes) of the last run for the DICOM section; None before one."""
        return None if self._lastResult is None else (self.logic, *self._lastResult)

    def _showStatistics(self, tableNode) -> None:
        """The statistics table of the last run in the panel (hidden when there is none)."""
        self.ui.statisticsTableView.setMRMLTableNode(tableNode)
        self.ui.resultsCollapsibleButton.visible = tableNode is not None
        if tableNode is not None:
            self.ui.resultsCollapsibleButton.collapsed = False
