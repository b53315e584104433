"""SegInteractive's self-test: run by ctest and by the module's Reload & Test button
(SegInteractive.py imports the class, where Slicer looks for it). It runs the real engine
(random-walker, no model) through the Logic and the panel."""
import vtk

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from SegForgeWidgets.dicom_self_test import check_dicom_export
from SegInteractiveLib import SegInteractiveLogic
from SegInteractiveLib.form import NEW_SEGMENT


class SegInteractiveTest(ScriptedLoadableModuleTest):
    """Self-test on a synthetic bright ball: the Logic, and the panel driven like a user."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegInteractive_logic()
        self.setUp()
        self.test_SegInteractive_panel()
        self.setUp()
        self.test_SegInteractive_dicom_export()

    def _ballVolume(self):
        """A bright ball (200) in noise on an oblique, anisotropic grid, its mask, and its centre (RAS)."""
        import numpy as np

        shape = (32, 40, 40)
        centre = np.array([16, 20, 20])
        kji = np.indices(shape).transpose(1, 2, 3, 0)
        spacing_kji = np.array([2.0, 1.1, 0.8])
        ball = np.sum(((kji - centre) * spacing_kji) ** 2, axis=-1) < 7.0 ** 2
        voxels = (np.random.default_rng(3).normal(0, 20, shape) + 200 * ball).astype(np.int16)
        volumeNode = slicer.util.addVolumeFromArray(voxels, name="SegInteractive ball")
        volumeNode.SetSpacing(0.8, 1.1, 2.0)
        directions = vtk.vtkMatrix4x4()
        transform = vtk.vtkTransform()
        transform.RotateWXYZ(30, 1, 1, 0)
        transform.GetMatrix(directions)
        volumeNode.SetIJKToRASDirectionMatrix(directions)
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        centreRas = ijkToRas.MultiplyPoint([centre[2], centre[1], centre[0], 1.0])[:3]
        return volumeNode, ball, centreRas

    def test_SegInteractive_logic(self):
        """Clicks, undo, redo and accept on a new segment; the user's other segment keeps every voxel."""
        import numpy as np

        self.delayDisplay("An interactive session through the Logic")
        volumeNode, ball, centreRas = self._ballVolume()
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        mine = np.zeros(ball.shape, np.uint8)
        mine[16:, :, :] = 1  # half of the ball
        mineId = segmentationNode.GetSegmentation().AddEmptySegment("Mine", "Mine")
        slicer.util.updateSegmentBinaryLabelmapFromArray(mine, segmentationNode, mineId, volumeNode)

        logic = SegInteractiveLogic()
        session = logic.start_session(volumeNode, segmentationNode)
        session.add_point(centreRas)
        lesion = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, session.segment_id, volumeNode) > 0
        self.assertGreater(int((lesion & ball).sum()), 0.8 * int((ball & (mine == 0)).sum()), "the ball is missed")
        self.assertFalse((lesion & (mine > 0)).any(), "the lesion took voxels of the user's segment")
        first = lesion.copy()
        session.add_point([centreRas[0], centreRas[1], centreRas[2] - 5.0], positive=False)
        session.undo()
        np.testing.assert_array_equal(
            slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, session.segment_id, volumeNode) > 0, first)
        session.redo()
        session.accept()
        np.testing.assert_array_equal(
            slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, mineId, volumeNode), mine)
        self.delayDisplay("Test passed")

    def test_SegInteractive_panel(self):
        """Start, a click placed in the positive point list, undo, and Discard through the panel."""
        import time

        self.delayDisplay("The SegInteractive panel")
        volumeNode, ball, centreRas = self._ballVolume()
        slicer.util.selectModule("SegInteractive")
        widget = slicer.modules.seginteractive.widgetRepresentation().self()
        widget.initializeParameterNode()
        p = widget._parameterNode
        p.inputVolume = volumeNode
        p.outputSegmentation = None
        p.targetSegmentId = NEW_SEGMENT
        self.assertTrue(widget.ui.applyButton.enabled, widget.ui.applyButton.toolTip)
        widget.onStartSession()
        session = widget.logic.session
        self.assertIsNotNone(session, widget.ui.statusLabel.text)
        self.assertFalse(widget.ui.outputSegmentationSelector.enabled, "the target can be switched mid-session")

        widget._prompts.markers.positive.AddControlPointWorld(vtk.vtkVector3d(*centreRas))  # as a click in a view would
        deadline = time.monotonic() + 60.0
        while widget._jobs.running or not session.history:
            self.assertLess(time.monotonic(), deadline, "the click was not segmented within 60 s")
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertTrue(widget.ui.statusLabel.text.startswith("Done"), widget.ui.statusLabel.text)
        lesion = slicer.util.arrayFromSegmentBinaryLabelmap(session.segmentation_node, session.segment_id, volumeNode)
        self.assertGreater(int(lesion.sum()), 0)
        widget.onUndo()
        self.assertFalse(session.can_undo)
        self.assertFalse(widget._prompts.markers.positive.GetNthControlPointVisibility(0))
        segmentationNode = session.segmentation_node
        widget.onDiscard()
        self.assertIsNone(widget.logic.session)
        self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), 0, "Discard kept the new segment")
        self.delayDisplay("Test passed")

    def test_SegInteractive_dicom_export(self):
        """The accepted lesion as DICOM SEG + SR (see SegForgeWidgets.dicom_self_test)."""
        self.delayDisplay("Export to DICOM")
        volumeNode, _ball, centreRas = self._ballVolume()
        logic = SegInteractiveLogic()
        session = logic.start_session(volumeNode)
        session.add_point(centreRas)
        session.accept()
        check_dicom_export(self, logic, volumeNode, logic.lesion_result(session), "seginteractive")
        self.delayDisplay("Test passed")
