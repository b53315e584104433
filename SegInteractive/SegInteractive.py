"""SegInteractive: a lesion from a few clicks, boxes or scribbles (module, widget and self-test).

Interactive segmentation arrives in a later SegForge release. This release ships the module's
panel and its Logic's place (:class:`SegInteractiveLib.SegInteractiveLogic`, importable without Qt) and
says plainly that the workflow is not there yet: Apply stays disabled and the Logic raises.
"""
import logging
from typing import Optional

import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from segforge.errors import SegForgeError
from SegInteractiveLib import SegInteractiveLogic


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
Will turn a few clicks, boxes or scribbles on a lesion into a 3D mask, refined click by click,
written into one segment of an existing segmentation; nothing else in it is touched.
<b>Not available in this release</b>: interactive segmentation arrives in a later SegForge release.
See the <a href="https://github.com/SegForge/SlicerSegForge#seginteractive">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the SegForge developers. Module layout after Slicer's scripted-module template by
Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# Parameter node
#


@parameterNodeWrapper
class SegInteractiveParameterNode:
    """What the user chose, saved with the scene.

    inputVolume - the volume that shows the lesion.
    outputSegmentation - the segmentation whose segment will be edited.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode


def getParameterNode() -> SegInteractiveParameterNode:
    """The scene's SegInteractive parameter node (the Qt-free Logic cannot provide it)."""
    finder = ScriptedLoadableModuleLogic()
    finder.moduleName = "SegInteractive"
    return SegInteractiveParameterNode(finder.getParameterNode())


#
# SegInteractiveWidget
#


class SegInteractiveWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel. Apply stays disabled while the Logic says the workflow is unavailable."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegInteractive.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegInteractiveLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.value = 0

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
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

    def setParameterNode(self, inputParameterNode: Optional[SegInteractiveParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        if not self.logic or not self.logic.available:
            reason = _("Interactive segmentation is not available in this release.")
        elif not self._parameterNode or not self._parameterNode.inputVolume:
            reason = _("Select an input volume")
        else:
            reason = ""
        self.ui.applyButton.enabled = not reason
        self.ui.applyButton.toolTip = reason or _("Start an interactive session on the lesion.")

    def onApplyButton(self) -> None:
        p = self._parameterNode
        if not p:
            return
        try:
            self.logic.start_session(p.inputVolume, p.outputSegmentation)
        except SegForgeError as error:
            logging.error("SegInteractive: %s", error.message)
            slicer.util.errorDisplay(error.message)


#
# SegInteractiveTest
#


class SegInteractiveTest(ScriptedLoadableModuleTest):
    """Self-test: the module loads, and says honestly that interactive segmentation is not there yet."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegInteractive_not_available()

    def test_SegInteractive_not_available(self):
        self.delayDisplay("Checking that SegInteractive reports it is not available yet")
        logic = SegInteractiveLogic()
        self.assertFalse(logic.available)
        volumeNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        with self.assertRaises(SegForgeError):
            logic.start_session(volumeNode, segmentationNode)
        self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), 0,
                         "an unavailable workflow wrote a segment")

        widget = slicer.modules.seginteractive.widgetRepresentation().self()
        widget.initializeParameterNode()
        widget._parameterNode.inputVolume = volumeNode
        self.assertFalse(widget.ui.applyButton.enabled, "Apply is enabled for an unavailable workflow")
        self.delayDisplay("Test passed")
