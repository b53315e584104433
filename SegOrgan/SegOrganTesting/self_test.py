"""SegOrgan's self-test: run by ctest and by the module's Reload & Test button (SegOrgan.py
imports the class, where Slicer looks for it). It runs the real engine (ct-tissues, no model
download) through the Logic and the panel."""
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from SegForgeWidgets.dicom_self_test import check_dicom_export
from segforge.errors import Cancelled, InputError
from SegOrganLib import SegOrganLogic
from SegOrganLib.form import python_packages, split_names


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
        self.setUp()
        self.test_SegOrgan_dicom_export()

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
        from SegOrgan import structureMatches

        self.assertEqual(split_names(" body, ,lungs "), ["body", "lungs"])
        self.assertTrue(structureMatches("kidney_left", "Kidney L"))
        self.assertFalse(structureMatches("liver", "lung"))
        self.assertFalse(python_packages("ct-tissues")[1])

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
        self.assertEqual(widget.form().parameters([model]).structures, ())  # all checked: all

        widget.onSelectNoStructures()
        self.assertEqual(widget.form().structures, ())
        self.assertFalse(widget.ui.applyButton.enabled, "Apply is enabled with no structure checked")
        widget.ui.structureSearchBox.text = "lung"
        widget.onSelectAllStructures()
        widget.ui.structureSearchBox.text = ""
        self.assertEqual(widget.form().structures, ("lungs",))
        self.assertEqual(widget.form().parameters([model]),
                         OrganParameters(model="ct-tissues", structures=("lungs",), fast=False, device=p.device))
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

    def test_SegOrgan_dicom_export(self):
        """The organ result as DICOM SEG + SR (see SegForgeWidgets.dicom_self_test)."""
        from segforge.organ.parameters import OrganParameters

        self.delayDisplay("Export to DICOM")
        volumeNode, _truth = self._ctVolume()
        logic = SegOrganLogic()
        nodes = logic.segment_organs(volumeNode, OrganParameters(model="ct-tissues"))
        check_dicom_export(self, logic, volumeNode, nodes, "segorgan")
        self.delayDisplay("Test passed")
