"""SegInteractive: a lesion from clicks, boxes, scribbles or lassos, refined click by click (module, widget, self-test).

Thin by design: the widget reads its parameter node, opens a session through
:class:`SegInteractiveLib.SegInteractiveLogic` and turns what the user places in the views
(points, an ROI, painted strokes, a closed curve) into the session's prompts; each prompt runs in the
background worker and is polled from a timer, so Slicer never freezes and Cancel always
works. The session object (``logic.session``) is also the Python console's API.
"""
import logging
import traceback
from typing import Annotated


import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from segforge.errors import SegForgeError
from segforge.forms import DEVICE_VALUES
from SegForgeWidgets import DicomSection, JobRunner
from SegForgeWidgets.parameter_node_widget import ParameterNodeWidgetMixin
from SegForgeWidgets.module_shortcuts import ModuleShortcuts
from SegInteractiveLib import SegInteractiveLogic
from SegInteractiveLib.form import DISCARDED, NEW_SEGMENT, form_from_parameter_node, kept_line
from SegInteractiveTesting.self_test import SegInteractiveTest  # noqa: F401 - Reload and Test runs it from here
from SegInteractiveWidgets.prompt_placement import PromptPlacement
from SegInteractiveWidgets.prompt_runner import PromptRunner, errorText
from SegInteractiveWidgets.target_segment_list import TargetSegmentList

#: How often the widget asks the running interaction for progress, in milliseconds.
POLL_INTERVAL_MS = 100


#: Parameters no .ui widget is tied to: the segment list and the backend list are only known
#: at run time (from the segmentation and the Logic), so the widget syncs them itself.
#: Testing/test_packaging.py reads this tuple.
PARAMETERS_SYNCED_BY_HAND = ("targetSegmentId", "backend")


#
# SegInteractive
#


class SegInteractive(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SegInteractive")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SegForge developers"]
        self.parent.helpText = _("""
Turns a few clicks, boxes or scribbles on a lesion into a 3D mask, refined click by click, in
<b>one segment</b> of a segmentation: a new segment ("lesion") or an existing one to refine.
Only that segment is written, only where a prompt changed it; with <i>Keep other segments'
voxels</i> (the default) it never takes a voxel of another segment.
<ul>
<li><b>Start session</b> sends the volume to the background worker once.</li>
<li><b>Positive point</b> / <b>Negative point</b>: click in a slice view; <b>T</b> switches between them.</li>
<li><b>Place box</b>, drag the ROI around the lesion, <b>Apply box</b>.</li>
<li><b>Paint scribble</b> opens the Segment Editor on a helper segmentation: paint, come back,
<b>Apply scribble</b>.</li>
<li><b>Draw lasso</b>: click a closed curve around the lesion in one slice view, <b>Apply lasso</b>: what it
encloses is the lesion in that slice (erased when the sign is negative, <b>T</b>).</li>
<li><b>Undo</b> (Ctrl+Z), <b>Redo</b> (Ctrl+Y), <b>Reset</b>; <b>Accept</b> keeps the segment, <b>Discard</b>
puts it back exactly as it was.</li>
</ul>
The default backend, random-walker, needs no model. From the Python console:
<pre>
from SegInteractiveLib import SegInteractiveLogic
session = SegInteractiveLogic().start_session(volumeNode, segmentationNode)
session.add_point([10.0, -22.0, 35.5]); session.undo(); session.accept()
</pre>
See the <a href="https://github.com/SegForge/SlicerSegForge#seginteractive">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the SegForge developers. Built on 3D Slicer, numpy and scipy; module layout after
Slicer's scripted-module template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso
(PerkLab) and Steve Pieper (Isomics).
""")


#
# Parameter node
#


@parameterNodeWrapper
class SegInteractiveParameterNode:
    """What the user chose, saved with the scene.

    inputVolume - the volume that shows the lesion.
    outputSegmentation - the segmentation whose one segment is edited; None creates one.
    targetSegmentId - the segment to refine; "" creates a new one (synced by hand).
    newSegmentName - the new segment's name.
    backend - the interactive backend's name (synced by hand).
    device - "auto", "cpu" or "cuda".
    protectOtherSegments - the segment never takes voxels of the other segments.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    targetSegmentId: str = NEW_SEGMENT
    newSegmentName: str = "lesion"
    backend: str = "random-walker"
    device: Annotated[str, Choice(list(DEVICE_VALUES))] = "auto"
    protectOtherSegments: bool = True


#
# SegInteractiveWidget
#


class SegInteractiveWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, session, prompt tools, progress and Cancel."""

    parameterNodeClass = SegInteractiveParameterNode

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        # The session's markers and the sign T switches; a click in a view is a point prompt.
        self._prompts = PromptPlacement(lambda pointList, index: self._runner.sendPoint(pointList, index))
        self._jobs = None  # SegForgeWidgets.JobRunner: the InteractionJob in flight, its progress and Cancel
        self._runner = None  # PromptRunner: starts each prompt's job, and undo/redo/reset between them
        self._shortcuts = ModuleShortcuts(  # bound between enter() and exit() only: see module_shortcuts.py
            "SegInteractive", (("T", self.onTogglePointSign), ("Ctrl+Z", self.onUndo), ("Ctrl+Y", self.onRedo)),
            lambda keys: self._showStatus(
                _("{keys} is also a shortcut of another module here: use the panel's buttons.").format(keys=keys)))
        self._segments = None  # TargetSegmentList: the target selector, refilled as segments change
        self._updatingGui = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegInteractive.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegInteractiveLogic()

        self._jobs = JobRunner(self.ui, POLL_INTERVAL_MS, "SegInteractive", refresh=self._updateButtons)
        self._runner = PromptRunner(self.ui, self._jobs, self._prompts, self.logic, refresh=self._updateButtons)
        self._segments = TargetSegmentList(self.ui.targetSegmentComboBox, self._updateGuiFromParameterNode)
        self._lastResult = None  # (input volume, LesionResult) of the last accepted session: what DICOM files
        self._dicom = DicomSection(uiWidget.layout(), self.ui.statusLabel, "SegInteractive", self._dicomResult)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.app.applicationLogic().GetInteractionNode(),
                         slicer.vtkMRMLInteractionNode.InteractionModeChangedEvent, self._updateButtons)

        self.ui.applyButton.connect("clicked(bool)", self.onStartSession)
        self.ui.positivePointButton.connect("clicked(bool)", lambda checked: self.onPointButton(True, checked))
        self.ui.negativePointButton.connect("clicked(bool)", lambda checked: self.onPointButton(False, checked))
        self.ui.boxButton.connect("clicked(bool)", self.onPlaceBox)
        self.ui.applyBoxButton.connect("clicked(bool)", self._runner.sendBox)
        self.ui.scribbleButton.connect("clicked(bool)", self.onPaintScribble)
        self.ui.applyScribbleButton.connect("clicked(bool)", self._runner.sendScribble)
        self.ui.lassoButton.connect("clicked(bool)", self.onDrawLasso)
        self.ui.applyLassoButton.connect("clicked(bool)", self._runner.sendLasso)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.redoButton.connect("clicked(bool)", self.onRedo)
        self.ui.resetButton.connect("clicked(bool)", self.onReset)
        self.ui.acceptButton.connect("clicked(bool)", self.onAccept)
        self.ui.discardButton.connect("clicked(bool)", self.onDiscard)
        self.ui.targetSegmentComboBox.connect("activated(int)", self.onTargetActivated)
        self.ui.backendComboBox.connect("activated(int)", self.onBackendActivated)

        for name in self.logic.backends():
            self.ui.backendComboBox.addItem(name, name)
        self.ui.progressBar.value = 0
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """The application closes (or the module is reloaded): stop polling, let go of the keys."""
        if self._jobs is not None:
            self._jobs.drop()
        if getattr(self, "_dicom", None) is not None:
            self._dicom.drop()
        self._shortcuts.remove()
        self._prompts.forget()
        if self._segments is not None:
            self._segments.removeObservers()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self._shortcuts.install()

    def exit(self) -> None:
        # The session stays open (the user may be painting a scribble in the Segment Editor).
        self._stopPlacing()
        self._shortcuts.remove()
        self.releaseParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        # The nodes are about to go: end the session without writing into them.
        if self._jobs is not None:
            self._jobs.drop()
        session = self.logic.session if self.logic else None
        if session is not None:
            try:
                session.accept()
            except Exception as error:
                logging.warning("SegInteractive: closing the session: %s", error)
        self._prompts.forget()
        self._segments.observe(None)
        self._dicom.drop()
        self._lastResult = None
        self._dicom.refresh()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node ----------------------------------------------------------------------

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        self._segments.observe(p.outputSegmentation if p else None)
        self._updateGuiFromParameterNode()
        self._updateButtons()

    def _updateGuiFromParameterNode(self) -> None:
        """The hand-synced selectors (target segment, backend) from the parameter node."""
        p = self._parameterNode
        self._updatingGui = True
        try:
            self._segments.fill(p.outputSegmentation if p else None, p.targetSegmentId if p else None)
            backends = self.ui.backendComboBox
            wasBlocked = backends.blockSignals(True)
            backends.currentIndex = max(backends.findData(p.backend), 0) if p else 0
            backends.blockSignals(wasBlocked)
        finally:
            self._updatingGui = False

    def onTargetActivated(self, index: int) -> None:
        if self._parameterNode and not self._updatingGui:
            self._parameterNode.targetSegmentId = self.ui.targetSegmentComboBox.itemData(index) or NEW_SEGMENT

    def onBackendActivated(self, index: int) -> None:
        if self._parameterNode and not self._updatingGui:
            self._parameterNode.backend = self.ui.backendComboBox.itemData(index)

    # -- session -------------------------------------------------------------------------------

    def _session(self):
        return self.logic.session if self.logic else None

    def onStartSession(self) -> None:
        p = self._parameterNode
        if not p or self._session() is not None:
            return
        try:
            with slicer.util.WaitCursor():  # the volume goes to the worker now, once
                session = self.logic.start(p.inputVolume, form_from_parameter_node(p), p.outputSegmentation)
        except Exception as error:
            if not isinstance(error, SegForgeError):
                logging.error("SegInteractive: %s", traceback.format_exc())
            self._showStatus(errorText(_("The session did not start."), error))
            self._updateButtons()
            return
        p.outputSegmentation = session.segmentation_node
        p.targetSegmentId = session.segment_id
        self._prompts.open(p.inputVolume)
        self._showStatus(self._runner.sessionText(_("Session started.")))
        self.onPointButton(True, True)

    def onAccept(self) -> None:
        self._endSession(keep=True)

    def onDiscard(self) -> None:
        self._endSession(keep=False)

    def _endSession(self, keep: bool) -> None:
        session = self._session()
        if session is None:
            return
        self._stopPlacing()
        self._jobs.drop(cancel=False)
        name = session.target.name
        try:
            session.accept() if keep else session.discard()
        except Exception as error:
            self._showStatus(errorText(_("Ending the session failed."), error))
        self._prompts.close()
        if self._parameterNode and session.target.created:  # the next session starts the next lesion
            self._parameterNode.targetSegmentId = NEW_SEGMENT
        self._showStatus(kept_line(name, session.segmentation_node.GetName(), *self.logic.segment_size(session))
                         if keep else DISCARDED)
        if keep:
            self._lastResult = (session.volume_node, self.logic.lesion_result(session))
            self._dicom.refresh()
        self._updateGuiFromParameterNode()
        self._updateButtons()

    def _dicomResult(self):
        """(Logic, input volume, LesionResult) of the last accepted lesion for the DICOM section."""
        return None if self._lastResult is None else (self.logic, *self._lastResult)

    # -- prompts ---------------------------------------------------------------------------------

    def onPointButton(self, positive: bool, checked: bool) -> None:
        """Enter (or leave) point placement of one sign in the slice views."""
        if self._prompts.markers is None or not checked:
            self._stopPlacing()
            return
        self._prompts.placePoints(positive)
        self._updateButtons()

    def onTogglePointSign(self) -> None:
        """T: positive <-> negative (and keep placing if placing)."""
        placing = self.ui.positivePointButton.checked or self.ui.negativePointButton.checked
        self._prompts.positive = not self._prompts.positive
        if placing:
            self.onPointButton(self._prompts.positive, True)
        self._showStatus(_("Next point, scribble and lasso: positive.") if self._prompts.positive
                         else _("Next point, scribble and lasso: negative."))
        self._updateButtons()

    def _stopPlacing(self) -> None:
        self._prompts.stopPlacingPoints()
        self.ui.positivePointButton.checked = False
        self.ui.negativePointButton.checked = False

    def onPlaceBox(self) -> None:
        if self._prompts.markers is None:
            return
        self._stopPlacing()
        self._prompts.placeBox()
        self._showStatus(_("Drag the box around the lesion in a slice view, then Apply box."))
        self._updateButtons()

    def onDrawLasso(self) -> None:
        """Place a fresh closed curve in the slice views (the current sign colours it)."""
        if self._prompts.markers is None:
            return
        self._stopPlacing()
        self._prompts.drawLasso()
        self._showStatus(_("Click around the lesion in one slice view, close the curve, then Apply lasso."))
        self._updateButtons()

    def onPaintScribble(self) -> None:
        """Open the Segment Editor on the helper segmentation with the Paint effect."""
        if self._prompts.markers is None:
            return
        self._stopPlacing()
        self._prompts.openScribbleEditor(self._parameterNode.inputVolume)

    # -- history -------------------------------------------------------------------------------

    def onUndo(self) -> None:
        self._runner.history("undo")

    def onRedo(self) -> None:
        self._runner.history("redo")

    def onReset(self) -> None:
        self._runner.history("reset")

    # -- display ---------------------------------------------------------------------------------

    def _showStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text

    def _updateButtons(self, caller=None, event=None) -> None:
        """Enabled and checked from the session, the running prompt and the views' place mode."""
        p = self._parameterNode
        session = self._session()
        open_, running = session is not None, self._jobs is not None and self._jobs.running
        for widget in (self.ui.inputVolumeSelector, self.ui.outputSegmentationSelector, self.ui.targetSegmentComboBox,
                       self.ui.backendComboBox, self.ui.deviceComboBox, self.ui.protectCheckBox):
            widget.enabled = not open_  # a session is bound to one volume and one segment
        self.ui.newSegmentNameLineEdit.enabled = not open_ and not (p and p.targetSegmentId)
        canStart = bool(p and p.inputVolume) and not open_
        self.ui.applyButton.enabled = canStart
        self.ui.applyButton.toolTip = (_("Accept or discard the open session first") if open_
                                       else _("Select an input volume") if not canStart
                                       else _("Send the volume to the worker and start editing the segment."))
        self.ui.cancelButton.enabled = running
        idle = open_ and not running
        for widget in (self.ui.positivePointButton, self.ui.negativePointButton, self.ui.boxButton,
                       self.ui.applyBoxButton, self.ui.scribbleButton, self.ui.applyScribbleButton,
                       self.ui.lassoButton, self.ui.applyLassoButton, self.ui.resetButton, self.ui.acceptButton,
                       self.ui.discardButton):
            widget.enabled = idle
        markers = self._prompts.markers
        self.ui.applyBoxButton.enabled = idle and markers is not None and markers.box is not None
        self.ui.applyLassoButton.enabled = idle and markers is not None and markers.lasso is not None
        self.ui.undoButton.enabled = idle and session.can_undo
        self.ui.redoButton.enabled = idle and session.can_redo
        placing = idle and self._prompts.placingPoints()
        self.ui.positivePointButton.checked = placing and self._prompts.positive
        self.ui.negativePointButton.checked = placing and not self._prompts.positive
