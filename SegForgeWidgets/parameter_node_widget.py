"""The parameter-node life cycle of Slicer's scripted-module template, written once for the
three module widgets: find or create the node, tie the .ui's widgets to it, observe it, let
go of it on exit and when the scene closes."""
import vtk

import slicer

from segforge.forms import DEVICE_VALUES

from .panel_helpers import labelDeviceItems, parameterNodeOf


class ParameterNodeWidgetMixin:
    """Mixed into a ``ScriptedLoadableModuleWidget`` (with ``VTKObservationMixin``) whose
    ``parameterNodeClass`` is its ``parameterNodeWrapper`` class and whose .ui has a
    ``deviceComboBox`` tied to ``device``; the widget defines ``_onParameterNodeModified``."""

    parameterNodeClass = None

    def initializeParameterNode(self) -> None:
        """The scene's parameter node, with the first volume as input when none is chosen."""
        self.setParameterNode(parameterNodeOf(self.moduleName, self.parameterNodeClass))
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        self.releaseParameterNode()
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Each widget of the .ui with a "SlicerParameterName" property is tied to that parameter.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            labelDeviceItems(self.ui.deviceComboBox, DEVICE_VALUES)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def releaseParameterNode(self) -> None:
        """Untie the .ui from the parameter node and stop observing it (the node stays in the scene)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
