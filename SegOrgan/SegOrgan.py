"""SegOrgan: many labelled structures from a CT or MR volume (module, widget and self-test).

Organ segmentation arrives in a later SegForge release. This release ships the module's
panel and its Logic's place (:class:`SegOrganLib.SegOrganLogic`, importable without Qt) and
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
from SegOrganLib import SegOrganLogic


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
Will segment many labelled structures (organs, bones, vessels) of a CT or MR volume into one
segmentation node with names, terminology and colours, with statistics.
<b>Not available in this release</b>: organ segmentation arrives in a later SegForge release.
See the <a href="https://github.com/SegForge/SlicerSegForge#segorgan">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the SegForge developers. Module layout after Slicer's scripted-module template by
Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# Parameter node
#


@parameterNodeWrapper
class SegOrganParameterNode:
    """What the user chose, saved with the scene.

    inputVolume - the CT / MR volume.
    outputSegmentation - where the structures will go; None creates a new segmentation.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode


def getParameterNode() -> SegOrganParameterNode:
    """The scene's SegOrgan parameter node (the Qt-free Logic cannot provide it)."""
    finder = ScriptedLoadableModuleLogic()
    finder.moduleName = "SegOrgan"
    return SegOrganParameterNode(finder.getParameterNode())


#
# SegOrganWidget
#


class SegOrganWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel. Apply stays disabled while the Logic says the workflow is unavailable."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegOrgan.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegOrganLogic()

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

    def setParameterNode(self, inputParameterNode: Optional[SegOrganParameterNode]) -> None:
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
            reason = _("Organ segmentation is not available in this release.")
        elif not self._parameterNode or not self._parameterNode.inputVolume:
            reason = _("Select an input volume")
        else:
            reason = ""
        self.ui.applyButton.enabled = not reason
        self.ui.applyButton.toolTip = reason or _("Segment the structures of the input volume.")

    def onApplyButton(self) -> None:
        p = self._parameterNode
        if not p:
            return
        try:
            self.logic.start_organ_segmentation(p.inputVolume, segmentation_node=p.outputSegmentation)
        except SegForgeError as error:
            logging.error("SegOrgan: %s", error.message)
            slicer.util.errorDisplay(error.message)


#
# SegOrganTest
#


class SegOrganTest(ScriptedLoadableModuleTest):
    """Self-test: the module loads, and says honestly that organ segmentation is not there yet."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegOrgan_not_available()

    def test_SegOrgan_not_available(self):
        self.delayDisplay("Checking that SegOrgan reports it is not available yet")
        logic = SegOrganLogic()
        self.assertFalse(logic.available)
        volumeNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
        with self.assertRaises(SegForgeError):
            logic.segment_organs(volumeNode)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 0,
                         "an unavailable workflow created a segmentation")

        widget = slicer.modules.segorgan.widgetRepresentation().self()
        widget.initializeParameterNode()
        widget._parameterNode.inputVolume = volumeNode
        self.assertFalse(widget.ui.applyButton.enabled, "Apply is enabled for an unavailable workflow")
        self.delayDisplay("Test passed")
