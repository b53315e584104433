"""SegVessel's self-test: run by ctest and by the module's Reload & Test button (SegVessel.py
imports the class, where Slicer looks for it). It runs the real engine through the Logic."""
from dataclasses import replace

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from SegForgeWidgets.dicom_self_test import check_dicom_export
from segforge.errors import SegForgeError
from SegVesselLib import SegVesselLogic
from SegVesselLib.markups_inputs import points_lps_from_markups, roi_lps_from_markups


class SegVesselTest(ScriptedLoadableModuleTest):
    """Self-test run by ctest and from the module's Reload & Test button.

    It runs the real engine through the Logic on a synthetic tube of known radius.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegVessel_tube()
        self.setUp()
        self.test_SegVessel_cancel()
        self.setUp()
        self.test_SegVessel_tree()
        self.setUp()
        self.test_SegVessel_tree_cancel()
        self.setUp()
        self.test_SegVessel_markups_to_lps()
        self.setUp()
        self.test_SegVessel_segment()
        self.setUp()
        self.test_SegVessel_dicom_export()

    def _tubeVolume(self, size=48, radius=2.5):
        """A bright tube along the volume's slowest axis, on 0.8 mm anisotropic voxels."""
        import numpy as np

        k, j, i = np.mgrid[0:size, 0:size, 0:size]
        spacing = (0.8, 0.8, 1.0)  # i, j, k in mm
        distance = np.hypot((i - size / 2) * spacing[0], (j - size / 2) * spacing[1])
        array = np.where(distance <= radius, 400.0, 0.0) + np.random.default_rng(0).normal(0.0, 10.0, distance.shape)
        volumeNode = slicer.util.addVolumeFromArray(array.astype(np.float32), name="SegVesselTestTube")
        volumeNode.SetSpacing(*spacing)
        return volumeNode, distance

    def _assertCancelled(self, job, deadline):
        """Wait (keeping the GUI alive) until a cancelled job ends, then check it ended as cancelled."""
        import time

        while not job.poll().finished:
            self.assertLess(time.monotonic(), deadline, "cancel did not finish the job within 30 s")
            slicer.app.processEvents()
            time.sleep(0.05)
        with self.assertRaises(SegForgeError):
            job.finish()

    def test_SegVessel_tube(self):
        from segforge.vessel import VesselMaskParameters

        self.delayDisplay("Segmenting a synthetic tube")
        volumeNode, distance = self._tubeVolume()
        logic = SegVesselLogic()
        segmentationNode = logic.segment_vessels(
            volumeNode, parameters=VesselMaskParameters(min_radius_mm=1.0, max_radius_mm=4.0),
            segment_name="Vessels")
        self.assertIsNotNone(segmentationNode)
        segmentId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName("Vessels")
        self.assertTrue(segmentId, "no segment named Vessels")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode) > 0
        core = distance <= 1.5
        far = distance >= 8.0
        self.assertGreater(mask[core].mean(), 0.8, "the tube's core is not segmented")
        self.assertLess(mask[far].mean(), 0.02, "background far from the tube is segmented")

        # Running again with "error" must refuse to touch the existing segment.
        with self.assertRaises(SegForgeError):
            logic.segment_vessels(volumeNode, segmentation_node=segmentationNode,
                                  parameters=VesselMaskParameters(), segment_name="Vessels", on_existing="error")
        self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), 1)
        self.delayDisplay("Test passed")

    def test_SegVessel_cancel(self):
        import time
        from segforge.vessel import VesselMaskParameters

        self.delayDisplay("Cancelling a running job")
        volumeNode, _distance = self._tubeVolume(size=96)
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic = SegVesselLogic()
        job = logic.start_vessel_mask(volumeNode, segmentation_node=segmentationNode,
                                      parameters=VesselMaskParameters(scales=6), segment_name="Vessels")
        job.cancel()
        self._assertCancelled(job, time.monotonic() + 30.0)
        self.assertEqual(segmentationNode.GetSegmentation().GetNumberOfSegments(), 0,
                         "a cancelled job wrote into the segmentation")
        self.delayDisplay("Test passed")

    def _yVolume(self):
        """A bright Y-shaped vessel (trunk radius 4 mm, daughters 3 mm) in noise, on an oblique,
        anisotropic grid; returns the volume node and the true tree (centerlines and radii in LPS mm)."""
        import numpy as np
        from segforge.mrml import volume_node_from_image
        from segforge.vessel.synthetic import make_grid, y_bifurcation

        def turn(axis, degrees):
            c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
            a, b = [n for n in range(3) if n != axis]
            matrix = np.eye(3)
            matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
            return matrix

        direction = turn(2, 50.0) @ turn(1, -35.0) @ turn(0, 20.0)
        center = (5.0, -3.0, 20.0)
        tree = y_bifurcation(make_grid((40, 40, 60), (0.8, 0.8, 1.2), direction, center_lps=center),
                             center_lps=center)
        noise = np.random.default_rng(0).normal(0.0, 20.0, tree.mask.array.shape)
        image = tree.mask.with_array((tree.mask.array.astype(np.float32) * 500 + 100 + noise).astype(np.int16))
        return volume_node_from_image(image, "SegVesselTestY"), tree

    def test_SegVessel_tree(self):
        """The whole workflow through the Logic: segment, curves with Radius, models, tables."""
        import numpy as np
        from segforge.mrml import control_points_lps, point_measurement
        from segforge.vessel.parameters import BUILTIN_MODEL
        from segforge.vessel.pipeline import VesselPipelineParameters, preset

        self.delayDisplay("Vessel tree of a synthetic Y-shaped vessel")
        volumeNode, tree = self._yVolume()
        logic = SegVesselLogic()
        # the builtin filter, whatever deep vessel model this Slicer has installed
        mask = replace(preset("mra"), model=BUILTIN_MODEL)
        nodes = logic.vessel_tree(volumeNode, VesselPipelineParameters(mask=mask))

        self.assertIsNotNone(nodes.segmentation)
        self.assertTrue(nodes.segmentation.GetSegmentation().GetSegmentIdBySegmentName("Vessels"),
                        "no segment named Vessels")
        self.assertGreaterEqual(len(nodes.curves), 1, "no branch curve")
        for curve in nodes.curves:
            self.assertTrue(curve.IsA("vtkMRMLMarkupsCurveNode"))
            radius = point_measurement(curve, "Radius")
            self.assertEqual(len(radius), curve.GetNumberOfControlPoints())
            self.assertTrue(np.all(radius > 0), f"{curve.GetName()}: a radius is not positive")
        # The widest curve is the trunk: its radius is the trunk's (4.0 tapering to 3.6 mm),
        # within one in-plane voxel (0.8 mm).
        trunk = max(nodes.curves, key=lambda c: float(np.median(point_measurement(c, "Radius"))))
        self.assertLess(abs(float(np.median(point_measurement(trunk, "Radius")))
                            - float(np.median(tree.branches[0].radii_mm))), 0.8)
        # Every curve lies in the drawn vessel: its points within a true radius of a true centerline.
        truth = np.concatenate([b.points_lps for b in tree.branches])
        for curve in nodes.curves:
            gaps = np.linalg.norm(control_points_lps(curve)[:, None] - truth[None], axis=2).min(axis=1)
            self.assertLess(float(np.median(gaps)), 1.0, f"{curve.GetName()} is off the drawn centerlines")

        self.assertIsNotNone(nodes.centerline_model, "no centerline model")
        self.assertGreater(nodes.centerline_model.GetPolyData().GetNumberOfPoints(), 0)
        self.assertIsNotNone(nodes.centerline_model.GetPolyData().GetPointData().GetArray("Radius"))
        self.assertIsNotNone(nodes.surface_model, "no surface model")
        self.assertGreater(nodes.surface_model.GetPolyData().GetNumberOfCells(), 0)
        self.assertIsNotNone(nodes.branch_table, "no branch table")
        self.assertEqual(nodes.branch_table.GetNumberOfRows(), len(nodes.curves))
        self.assertIsNotNone(nodes.stenosis_table, "no stenosis table")
        self.delayDisplay("Test passed")

    def test_SegVessel_tree_cancel(self):
        """A cancelled vessel tree job adds no node to the scene."""
        import time
        from segforge.vessel import VesselMaskParameters
        from segforge.vessel.pipeline import VesselPipelineParameters

        self.delayDisplay("Cancelling a running vessel tree job")
        volumeNode, _distance = self._tubeVolume(size=96)
        nodeCount = slicer.mrmlScene.GetNumberOfNodes()
        logic = SegVesselLogic()
        job = logic.start_vessel_tree(volumeNode, VesselPipelineParameters(mask=VesselMaskParameters(scales=6)))
        deadline = time.monotonic() + 30.0
        while job.poll().state == "queued" and time.monotonic() < deadline:  # cancel it while it works
            slicer.app.processEvents()
            time.sleep(0.01)
        job.cancel()
        self._assertCancelled(job, deadline)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodeCount, "a cancelled job added nodes")
        self.delayDisplay("Test passed")

    def test_SegVessel_markups_to_lps(self):
        """Seed points and ROI reach the engine in LPS millimetres; presets fill the panel's fields."""
        from segforge.vessel.pipeline import PRESETS, preset
        from SegVesselLib.form import PRESET_CHOICES, VesselForm

        self.delayDisplay("Seed points and ROI in LPS")
        self.assertEqual(points_lps_from_markups(None), ())
        self.assertIsNone(roi_lps_from_markups(None))
        points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        points.AddControlPoint([1.0, 2.0, 3.0])
        points.AddControlPoint([-4.0, 5.0, -6.0])
        self.assertEqual(points_lps_from_markups(points), ((-1.0, -2.0, 3.0), (4.0, -5.0, -6.0)))
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        roi.SetXYZ(10.0, 20.0, 30.0)
        roi.SetRadiusXYZ(1.0, 2.0, 3.0)
        box = roi_lps_from_markups(roi)
        for got, expected in zip(box, (-11.0, -22.0, 27.0, -9.0, -18.0, 33.0)):
            self.assertAlmostEqual(got, expected, places=6)
        self.assertEqual(set(PRESETS), set(PRESET_CHOICES) - {"custom"})
        for name in PRESETS:
            self.assertEqual(VesselForm().with_preset(name).mask_parameters(), preset(name))
        self.delayDisplay("Test passed")

    def test_SegVessel_segment(self):
        """The panel's segment path: a Y-shaped vessel segment of a segmentation node (no volume), a
        source and two targets as markups in the module's parameter node, the form it gives run by
        the Logic: three curves with Radius, the cross-section table, the diameter chart."""
        import numpy as np
        from segforge.mrml import control_points_lps, point_measurement
        from segforge.mrml.segments import SegmentSpec, new_segmentation_node, write_label_segments
        from SegVessel import SegVesselParameterNode
        from SegVesselLib.form import form_from_parameter_node

        self.delayDisplay("Vessel tree of an existing segment between a source and two targets")
        _volumeNode, tree = self._yVolume()
        segmentationNode = new_segmentation_node(tree.mask, "SegVesselTestSegment")
        (segmentId,) = write_label_segments(segmentationNode, tree.mask, [SegmentSpec(1, "Y vessel")])

        def pointList(name, points):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
            for x, y, z in points:
                node.AddControlPoint([-x, -y, z])  # LPS -> RAS
            return node

        trunk, left, right = tree.branches
        p = SegVesselParameterNode(slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"))
        p.inputKind = "segment"
        p.inputSegmentation = segmentationNode
        p.segment = segmentId
        p.sourcePoint = pointList("Source", [trunk.points_lps[0]])
        p.targetPoints = pointList("Targets", [left.points_lps[-1], right.points_lps[-1]])
        p.createSurface = False
        form = form_from_parameter_node(p)
        self.assertEqual(form.job().inputs, ("segment",))
        nodes = SegVesselLogic().start(p.inputVolume, form, input_segmentation=p.inputSegmentation).wait()

        self.assertEqual(len(nodes.curves), 3, "not the trunk and two daughters")
        truth = np.concatenate([b.points_lps for b in tree.branches])
        for curve in nodes.curves:
            self.assertTrue(np.all(point_measurement(curve, "Radius") > 0))
            gaps = np.linalg.norm(control_points_lps(curve)[:, None] - truth[None], axis=2).min(axis=1)
            self.assertLess(float(np.median(gaps)), 1.0, f"{curve.GetName()} is off the drawn centerlines")
        self.assertIsNotNone(nodes.section_table, "no cross-section table")
        self.assertGreater(nodes.section_table.GetNumberOfRows(), 20)
        self.assertIsNotNone(nodes.diameter_chart, "no diameter chart")
        self.assertGreater(nodes.diameter_chart.GetNumberOfPlotSeriesNodes(), 0)
        self.delayDisplay("Test passed")

    def test_SegVessel_dicom_export(self):
        """The vessel tree as DICOM SEG + SR (see SegForgeWidgets.dicom_self_test)."""
        from segforge.vessel.parameters import BUILTIN_MODEL
        from segforge.vessel.pipeline import VesselPipelineParameters, preset

        self.delayDisplay("Export to DICOM")
        volumeNode, _tree = self._yVolume()
        logic = SegVesselLogic()
        parameters = VesselPipelineParameters(mask=replace(preset("mra"), model=BUILTIN_MODEL))
        nodes = logic.vessel_tree(volumeNode, parameters)
        check_dicom_export(self, logic, volumeNode, nodes, "segvessel")
        self.delayDisplay("Test passed")
