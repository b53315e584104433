"""SegVessel: a vessel tree from a CTA or MRA volume (module, widget and self-test).

Thin by design: the widget ties its .ui to a parameter node whose fields are those of
:class:`SegVesselLib.form.VesselForm`, hands the form to :class:`SegVesselLib.SegVesselLogic`
and follows the job with a JobRunner, so Slicer never freezes and Cancel always works. The
Fine-tune section fills a :class:`SegVesselLib.fine_tune.FineTuneForm` the same way (its
fields are per session, not saved in the scene) and follows the training with a second runner. The
rules behind the fields (presets, checks, which job runs, the summary) live in the form,
shared with the web panel and ``segforge vessel``.
"""
from types import SimpleNamespace
from typing import Annotated

import slicer
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from segforge.forms import DEVICE_VALUES, camel
from SegForgeWidgets import DicomSection, JobRunner
from SegForgeWidgets.parameter_node_widget import ParameterNodeWidgetMixin
from SegForgeWidgets.panel_helpers import askReplaceOrKeepBoth, ensurePythonDependencies
from SegVesselLib import SegVesselLogic
from SegVesselLib.fine_tune import FineTuneForm, ScenePair, base_model_choices
from SegVesselLib.form import (CUSTOM, INPUT_KINDS, PRESET_CHOICES, PRESET_FIELDS, VesselForm,
                               form_from_parameter_node, model_choices, parameter_node_problem, preset_fields,
                               shown_fields)
from SegVesselLib.tree_nodes import summary_of
from SegVesselTesting.self_test import SegVesselTest  # noqa: F401 - Reload and Test runs SegVesselTest from here

#: Packages of Resources/requirements.txt this module's jobs need (besides what Slicer bundles);
#: the vesselness filter also runs on torch, which comes through the PyTorch extension. The
#: user is asked before anything is installed.
REQUIRED_PACKAGES = ("scipy",)
NEEDS_TORCH = True
#: What the Fine-tune section's training needs besides (MONAI's U-Net; edt for the label checks).
FINE_TUNE_PACKAGES = ("scipy", "monai", "edt")

#: How often the widget asks the running job for progress, in milliseconds.
POLL_INTERVAL_MS = 200


#: Parameters that no .ui widget is tied to: the preset selector (its choice follows the
#: fields) and the model list (known only at run time). Testing/test_packaging.py reads this.
#: The segment selector too (no parameter node connector exists for qMRMLSegmentSelectorWidget).
PARAMETERS_SYNCED_BY_HAND = ("preset", "model", "inputSegmentation", "segment")


#
# SegVessel
#


class SegVessel(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SegVessel")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SegForge developers"]
        self.parent.helpText = _("""
Segments the vessel tree of a CTA or MRA volume into a segment of a segmentation node and,
on request, adds one curve per branch with its radius, a centerline model, a stenosis table
with points, and a surface model. Multi-scale vesselness (radii in millimetres, so anisotropic
and oblique volumes need no resampling) followed by a relative threshold; a preset (CTA, MRA,
dark vessels) fills the fields, optional seed points keep only the vessels they touch, and an
optional ROI limits the work to a box. The job runs in a background worker: Slicer stays
responsive and Cancel stops it. From the Python console:
<pre>
from SegVesselLib import SegVesselLogic
from SegVesselLib.fine_tune import FineTuneForm, ScenePair, base_model_choices
from segforge.vessel.pipeline import VesselPipelineParameters, preset
nodes = SegVesselLogic().vessel_tree(volumeNode, VesselPipelineParameters(mask=preset("cta")))
print(nodes.branch_table.GetNumberOfRows(), "branches")
</pre>
See the <a href="https://github.com/SegForge/SlicerSegForge#segvessel">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the SegForge developers. Built on 3D Slicer, SimpleITK and numpy; module layout
after Slicer's scripted-module template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso
(PerkLab) and Steve Pieper (Isomics).
""")


#
# Parameter node
#


@parameterNodeWrapper
class SegVesselParameterNode:
    """What the user chose, saved with the scene: the fields of ``VesselForm`` (camelCase,
    same defaults), with the points and the ROI as markups nodes.

    inputVolume - the CTA / MRA volume.
    inputSegmentation - the segmentation holding the vessel segment (``segment`` is its ID).
    outputSegmentation - where the vessel segment goes; None creates a new segmentation.
    seedPoints - optional point list: keep only the vessels touching its points.
    roi - optional ROI: nothing outside its box is computed.
    sourcePoint, targetPoints - optional: the centerlines run from the source to each target.
    landmarkPoints - optional: diameters measured at these points.
    The rest: see ``SegVesselLib.form.VesselForm``.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    outputSegmentation: vtkMRMLSegmentationNode
    seedPoints: vtkMRMLMarkupsFiducialNode
    roi: vtkMRMLMarkupsROINode
    sourcePoint: vtkMRMLMarkupsFiducialNode
    targetPoints: vtkMRMLMarkupsFiducialNode
    landmarkPoints: vtkMRMLMarkupsFiducialNode
    inputKind: Annotated[str, Choice(list(INPUT_KINDS))] = "volume"
    segment: str = ""
    preset: str = "cta"
    minRadiusMm: Annotated[float, WithinRange(0.05, 50.0)] = 1.5
    maxRadiusMm: Annotated[float, WithinRange(0.05, 50.0)] = 16.0
    scales: Annotated[int, WithinRange(1, 20)] = 4
    brightVessels: bool = True
    threshold: Annotated[float, WithinRange(0.0, 0.99)] = 0.05
    hysteresis: bool = True
    limitIntensity: bool = True
    minIntensity: Annotated[float, WithinRange(-100000.0, 100000.0)] = 150.0
    maxIntensity: Annotated[float, WithinRange(-100000.0, 100000.0)] = 700.0
    largestComponent: bool = True
    refineLumen: bool = False
    model: str = "auto"
    device: Annotated[str, Choice(list(DEVICE_VALUES))] = "auto"
    closeHolesMm: Annotated[float, WithinRange(0.0, 100.0)] = 4.0
    segmentName: str = "Vessels"
    createCenterlines: bool = True
    createStenoses: bool = True
    createSurface: bool = True
    stenosisThresholdPercent: Annotated[float, WithinRange(1.0, 99.0)] = 50.0
    dilatationRatio: Annotated[float, WithinRange(1.05, 10.0)] = 1.5


#
# SegVesselWidget
#


class SegVesselWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: parameters, Apply, Cancel and a progress bar."""

    parameterNodeClass = SegVesselParameterNode

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobs = None  # SegForgeWidgets.JobRunner: the running job, its progress and Cancel
        self._fineTuneJobs = None  # the Fine-tune section's own runner (its progress and Cancel; the shared
        # worker runs one job at a time, so a vessel job queues behind a training)
        self._fineTunePairs = []  # SegVesselLib.fine_tune.ScenePair, in the order of the pairs list
        self._updatingGui = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegVessel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # The .ui connects mrmlSceneChanged(vtkMRMLScene*) to each MRML widget's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegVesselLogic()

        self._jobs = JobRunner(self.ui, POLL_INTERVAL_MS, "SegVessel", refresh=self._onParameterNodeModified)
        # Export to DICOM / Send to PACS of the last result, below the status line
        self._lastResult = None  # (input volume, VesselNodes or segmentation) of the last run
        self._dicom = DicomSection(uiWidget.layout(), self.ui.statusLabel, "SegVessel", self._dicomResult)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.presetComboBox.connect("activated(int)", self.onPresetActivated)
        self.ui.modelComboBox.connect("activated(int)", self.onModelActivated)
        self.ui.inputSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputSegmentChanged)
        self.ui.inputSegmentSelector.connect("currentSegmentChanged(QString)", self.onInputSegmentChanged)

        self._refreshModels()
        self._jobs.showIdle("")
        self._setupFineTune()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._fineTuneJobs is not None:
            self._fineTuneJobs.drop()
        if self._jobs is not None:
            self._jobs.drop()
        if getattr(self, "_dicom", None) is not None:
            self._dicom.drop()
        self.removeObservers()

    def enter(self) -> None:
        self._refreshModels()  # a model may have been downloaded meanwhile
        self.initializeParameterNode()

    def exit(self) -> None:
        # A running job goes on (and keeps being polled) while the user is in another module.
        self.releaseParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        # The nodes a running job would write into are about to go away: cancel it and let
        # go of it, so a result that was just finishing is never written into the next scene.
        if self._jobs.running:
            self._jobs.drop()
            self._jobs.showIdle(_("Cancelled: the scene was closed."))
        self._dicom.drop()
        self._lastResult = None
        self._dicom.refresh()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self._fineTunePairs = []  # their nodes are gone (a running training goes on: it has its copies)
        self.ui.fineTunePairsList.clear()
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- the hand-synced fields: preset and model ---------------------------------------------

    def _refreshModels(self) -> None:
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for value, title in model_choices():
            combo.addItem(title, value)
        combo.blockSignals(wasBlocked)

    def onPresetActivated(self, index: int) -> None:
        """A preset fills the fields (the form says which); Custom leaves them as they are."""
        p = self._parameterNode
        if not p or not 0 <= index < len(PRESET_CHOICES):
            return
        name = PRESET_CHOICES[index]
        fields = preset_fields(name, shown_fields(p)) if name != CUSTOM else {}
        wasModifying = p.StartModify()
        try:
            for field in PRESET_FIELDS if fields else ():
                setattr(p, camel(field), fields[field])
            p.preset = name
        finally:
            p.EndModify(wasModifying)

    def onModelActivated(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.model = self.ui.modelComboBox.itemData(index)

    def onInputSegmentChanged(self, *_) -> None:
        if self._parameterNode and not self._updatingGui:
            wasModifying = self._parameterNode.StartModify()
            self._parameterNode.inputSegmentation = self.ui.inputSegmentSelector.currentNode()
            self._parameterNode.segment = self.ui.inputSegmentSelector.currentSegmentID() or ""
            self._parameterNode.EndModify(wasModifying)

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        if self._updatingGui:
            return
        self._updatingGui = True
        try:
            self._updateGui()
        finally:
            self._updatingGui = False

    def _updateGui(self) -> None:
        p = self._parameterNode
        running = self._jobs is not None and self._jobs.running
        form = shown_fields(p) if p else VesselForm()
        if p and form.shown_preset() != p.preset:  # a field edited away from the preset: Custom
            p.preset = form.shown_preset()
        _setIndex(self.ui.presetComboBox, PRESET_CHOICES.index(form.shown_preset()))
        _setIndex(self.ui.modelComboBox, self.ui.modelComboBox.findData(form.model))
        selector = self.ui.inputSegmentSelector
        wasBlocked = selector.blockSignals(True)
        selector.setCurrentNode(p.inputSegmentation if p else None)
        selector.setCurrentSegmentID(p.segment if p else "")
        selector.blockSignals(wasBlocked)
        # A segment is the mask: the vessel filter's fields only matter for a volume alone.
        self.ui.inputVolumeSelector.enabled = form.input_kind != "segment"
        selector.enabled = form.input_kind != "volume"
        self.ui.vesselsCollapsibleButton.enabled = form.input_kind == "volume"
        self.ui.minIntensitySpinBox.enabled = form.limit_intensity
        self.ui.maxIntensitySpinBox.enabled = form.limit_intensity
        # Stenoses are measured along the centerlines.
        self.ui.createStenosesCheckBox.enabled = form.create_centerlines
        self.ui.stenosisThresholdSpinBox.enabled = form.create_centerlines and form.create_stenoses
        self.ui.dilatationRatioSpinBox.enabled = form.create_centerlines and form.create_stenoses
        if running:
            reason = _("A vessel job is running")
        elif not p or (not p.inputVolume and form.input_kind != "segment"):
            reason = _("Select an input volume")
        else:
            reason = parameter_node_problem(p) or ""
        self.ui.applyButton.enabled = not reason
        self.ui.applyButton.toolTip = reason or _("Find the vessels in the input volume (and the outputs checked).")

    # -- the Fine-tune section (rules: SegVesselLib.fine_tune.FineTuneForm) --------------------

    def _setupFineTune(self) -> None:
        ui = self.ui
        self._fineTuneJobs = JobRunner(SimpleNamespace(progressBar=ui.fineTuneProgressBar,
                                                       statusLabel=ui.fineTuneStatusLabel,
                                                       cancelButton=ui.fineTuneCancelButton),
                                       POLL_INTERVAL_MS, "SegVessel", refresh=self._updateFineTune)
        ui.fineTuneAddPairButton.connect("clicked(bool)", self.onFineTuneAddPair)
        ui.fineTuneRemovePairButton.connect("clicked(bool)", self.onFineTuneRemovePair)
        ui.fineTuneTrainButton.connect("clicked(bool)", self.onFineTuneTrain)
        ui.fineTuneModelIdLineEdit.connect("textChanged(QString)", self._updateFineTune)
        ui.fineTuneSplitCheckBox.connect("toggled(bool)", self._updateFineTune)
        for spinBox in (ui.fineTuneStepsSpinBox, ui.fineTunePatchSpinBox, ui.fineTuneBatchSpinBox):
            spinBox.connect("valueChanged(int)", self._updateFineTune)
        self._refreshBaseModels()
        self._fineTuneJobs.showIdle("")

    def _refreshBaseModels(self) -> None:
        combo = self.ui.fineTuneBaseModelComboBox
        current = combo.currentData
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for value, title in base_model_choices():
            combo.addItem(title, value)
        combo.currentIndex = max(0, combo.findData(current))
        combo.blockSignals(wasBlocked)

    def _fineTuneForm(self) -> FineTuneForm:
        ui = self.ui
        return FineTuneForm.from_values({"model_id": ui.fineTuneModelIdLineEdit.text,
                                         "base_model": ui.fineTuneBaseModelComboBox.currentData or "",
                                         "steps": ui.fineTuneStepsSpinBox.value,
                                         "patch_size": ui.fineTunePatchSpinBox.value,
                                         "batch_size": ui.fineTuneBatchSpinBox.value,
                                         "split": ui.fineTuneSplitCheckBox.checked,
                                         "resume": ui.fineTuneResumeCheckBox.checked})

    def _updateFineTune(self, *_) -> None:
        if self._fineTuneJobs is None:
            return
        running = self._fineTuneJobs.running
        reason = _("A training is running") if running else self._fineTuneForm().problem(len(self._fineTunePairs))
        self.ui.fineTuneTrainButton.enabled = not reason
        self.ui.fineTuneTrainButton.toolTip = reason or _("Train the model in the background worker.")
        self.ui.fineTuneRemovePairButton.enabled = bool(self._fineTunePairs) and not running

    def onFineTuneAddPair(self) -> None:
        volume = self.ui.fineTuneVolumeSelector.currentNode()
        segmentation = self.ui.fineTuneSegmentSelector.currentNode()
        segmentId = self.ui.fineTuneSegmentSelector.currentSegmentID()
        if not volume or not segmentation or not segmentId:
            self.ui.fineTuneStatusLabel.text = _("Choose a volume and the vessel segment drawn on it first.")
            return
        pair = ScenePair(volume, segmentation, segmentId)
        self._fineTunePairs.append(pair)
        self.ui.fineTunePairsList.addItem(pair.describe())
        self._updateFineTune()

    def onFineTuneRemovePair(self) -> None:
        row = self.ui.fineTunePairsList.currentRow
        if row < 0:
            row = len(self._fineTunePairs) - 1
        if 0 <= row < len(self._fineTunePairs):
            del self._fineTunePairs[row]
            self.ui.fineTunePairsList.takeItem(row)
        self._updateFineTune()

    def onFineTuneTrain(self) -> None:
        """Start the training in the worker; the timer takes it from there."""
        if self._fineTuneJobs.running:
            return
        if not ensurePythonDependencies("SegVessel", FINE_TUNE_PACKAGES, NEEDS_TORCH, self._fineTuneJobs):
            return
        try:
            job = self.logic.start_fine_tune(list(self._fineTunePairs), self._fineTuneForm())
        except Exception as error:
            self._fineTuneJobs.showError(_("Could not start the training."), error)
            return
        self._fineTuneJobs.start(job, self._onFineTuneDone,
                                 lambda error: self._fineTuneJobs.showFailure(error, _("Training failed.")),
                                 _("Starting"))

    def _onFineTuneDone(self, result) -> None:
        # The model is installed: it is in the model list (and can be a base) now.
        self._refreshModels()
        self._refreshBaseModels()
        self._onParameterNodeModified()
        self._fineTuneJobs.showIdle(result.summary)

    # -- running a job --------------------------------------------------------------------

    def onApplyButton(self) -> None:
        """Start the vessel job; the timer takes it from there."""
        if self._jobs.running or not self._parameterNode:
            return
        p = self._parameterNode
        if not ensurePythonDependencies("SegVessel", REQUIRED_PACKAGES, NEEDS_TORCH, self._jobs):
            return
        try:
            form = form_from_parameter_node(p)
            question = self.logic.clash_question(p.outputSegmentation, form)
            onExisting = "error" if question is None else askReplaceOrKeepBoth(
                "SegVessel", question,
                _("Replace it with the new result, or keep both (the new segment gets another name)?"))
            if onExisting is None:
                return
            job = self.logic.start(p.inputVolume, form, segmentation_node=p.outputSegmentation,
                                   on_existing=onExisting, input_segmentation=p.inputSegmentation)
        except Exception as error:
            self._jobs.showError(_("Could not start the vessel segmentation."), error)
            return
        volume = p.inputVolume  # the volume this job runs on, whatever the selector shows when it ends
        self._jobs.start(job, lambda result: self._onJobDone(result, volume),
                         lambda error: self._jobs.showFailure(error, _("Vessel segmentation failed.")), _("Starting"))

    def _onJobDone(self, result, volume) -> None:
        # The tree job returns VesselNodes, the mask job the segmentation node.
        segmentationNode = getattr(result, "segmentation", result)
        if self._parameterNode and segmentationNode is not None:
            self._parameterNode.outputSegmentation = segmentationNode
        chart = getattr(result, "diameter_chart", None)
        if chart is not None:  # the diameter along the branches in a plot view of the layout
            slicer.modules.plots.logic().ShowChartInLayout(chart)
        self._jobs.showIdle(summary_of(result))
        self._lastResult = (volume, result)
        self._dicom.refresh()

    def _dicomResult(self):
        """(Logic, input volume, result) of the last run for the DICOM section; None before one."""
        return None if self._lastResult is None else (self.logic, *self._lastResult)


def _setIndex(comboBox, index: int) -> None:
    wasBlocked = comboBox.blockSignals(True)
    comboBox.currentIndex = index
    comboBox.blockSignals(wasBlocked)
