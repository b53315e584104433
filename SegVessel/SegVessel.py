"""SegVessel: a vessel tree from a CTA or MRA volume (module, widget and self-test).

Thin by design: the widget reads its parameter node, starts a job through
:class:`SegVesselLib.SegVesselLogic` and polls it from a timer, so Slicer never freezes and
Cancel always works. No algorithm lives here; the Logic (importable without Qt) is also the
scripting API for the Python console.
"""
from dataclasses import replace
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from segforge.errors import SegForgeError
from SegForgeWidgets import JobRunner
from SegVesselLib import SegVesselLogic
from SegVesselLib.markups_inputs import roi_lps_from_markups, seeds_lps_from_markups

#: Packages of Resources/requirements.txt this module's jobs need (besides what Slicer bundles);
#: the vesselness filter also runs on torch, which comes through the PyTorch extension. The
#: user is asked before anything is installed.
REQUIRED_PACKAGES = ("scipy",)
NEEDS_TORCH = True

#: How often the widget asks the running job for progress, in milliseconds.
POLL_INTERVAL_MS = 200

#: The preset selector's entries, in the .ui's order: the preset name of
#: ``segforge.vessel.pipeline.preset`` (None: Custom, the fields as they are).
PRESET_ITEMS = ("cta", "mra", "dark", None)


def presetFieldValues(name: str) -> dict:
    """The parameter-node fields a preset sets (what the preset selector writes into the panel)."""
    from segforge.vessel.pipeline import preset

    mask = preset(name)
    values = {"minRadiusMm": mask.min_radius_mm, "maxRadiusMm": mask.max_radius_mm, "scales": mask.scales,
              "brightVessels": mask.bright_vessels, "threshold": mask.threshold,
              "limitIntensity": mask.min_intensity is not None and mask.max_intensity is not None}
    if values["limitIntensity"]:
        values.update(minIntensity=mask.min_intensity, maxIntensity=mask.max_intensity)
    return values


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
    """What the user chose, saved with the scene. Defaults match ``VesselMaskParameters``.

    inputVolume - the CTA / MRA volume.
    outputSegmentation - where the vessel segment goes; None creates a new segmentation.
    segmentName - the name of the vessel segment.
    minRadiusMm, maxRadiusMm, scales, brightVessels, threshold - ``VesselMaskParameters``.
    limitIntensity, minIntensity, maxIntensity - an optional intensity window.
    seedPoints - optional point list: keep only the vessels touching its points.
    roi - optional ROI: nothing outside its box is computed.
    createCenterlines, createStenoses, createSurface - outputs beyond the mask (``VesselOutputs``);
        none of them runs the mask job alone.
    stenosisThresholdPercent - report narrowings of at least this % diameter stenosis.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    segmentName: str = "Vessels"
    minRadiusMm: Annotated[float, WithinRange(0.05, 50.0)] = 1.0
    maxRadiusMm: Annotated[float, WithinRange(0.05, 50.0)] = 4.0
    scales: Annotated[int, WithinRange(1, 20)] = 3
    brightVessels: bool = True
    threshold: Annotated[float, WithinRange(0.0, 0.99)] = 0.1
    limitIntensity: bool = False
    minIntensity: Annotated[float, WithinRange(-100000.0, 100000.0)] = 150.0
    maxIntensity: Annotated[float, WithinRange(-100000.0, 100000.0)] = 700.0
    seedPoints: vtkMRMLMarkupsFiducialNode
    roi: vtkMRMLMarkupsROINode
    createCenterlines: bool = True
    createStenoses: bool = True
    createSurface: bool = True
    stenosisThresholdPercent: Annotated[float, WithinRange(1.0, 99.0)] = 50.0


def getParameterNode() -> SegVesselParameterNode:
    """The scene's SegVessel parameter node (created on first use).

    The Logic in SegVesselLib stays free of Qt, so it cannot derive from
    ScriptedLoadableModuleLogic; that class's parameter-node lookup is used here instead.
    """
    finder = ScriptedLoadableModuleLogic()
    finder.moduleName = "SegVessel"
    return SegVesselParameterNode(finder.getParameterNode())


#
# SegVesselWidget
#


class SegVesselWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: parameters, Apply, Cancel and a progress bar."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobs = None  # SegForgeWidgets.JobRunner: the running job, its progress and Cancel

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegVessel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # The .ui connects mrmlSceneChanged(vtkMRMLScene*) to each MRML widget's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegVesselLogic()

        self._jobs = JobRunner(self.ui, POLL_INTERVAL_MS, "SegVessel", refresh=self._checkCanApply)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.presetComboBox.connect("activated(int)", self.onPresetActivated)

        self._jobs.showIdle("")
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._jobs is not None:
            self._jobs.drop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # A running job goes on (and keeps being polled) while the user is in another module.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        # The nodes a running job would write into are about to go away: cancel it and let
        # go of it, so a result that was just finishing is never written into the next scene.
        if self._jobs.running:
            self._jobs.drop()
            self._jobs.showIdle(_("Cancelled: the scene was closed."))
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
        self._selectMatchingPreset()

    def setParameterNode(self, inputParameterNode: Optional[SegVesselParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Each widget of the .ui with a "SlicerParameterName" property is tied to that parameter.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._checkCanApply()

    # -- presets ---------------------------------------------------------------------------

    def _selectedPreset(self) -> Optional[str]:
        index = self.ui.presetComboBox.currentIndex
        return PRESET_ITEMS[index] if 0 <= index < len(PRESET_ITEMS) else None

    def _setPresetIndex(self, index: int) -> None:
        wasBlocked = self.ui.presetComboBox.blockSignals(True)
        self.ui.presetComboBox.currentIndex = index
        self.ui.presetComboBox.blockSignals(wasBlocked)

    def _fieldsMatchPreset(self, name: str) -> bool:
        p = self._parameterNode
        if not p:
            return False
        for field, value in presetFieldValues(name).items():
            current = getattr(p, field)
            if isinstance(value, bool) or isinstance(value, int):
                if current != value:
                    return False
            elif abs(float(current) - float(value)) > 1e-6:
                return False
        return True

    def _selectMatchingPreset(self) -> None:
        """On a new parameter node: the preset its fields match, else Custom."""
        matching = [i for i, name in enumerate(PRESET_ITEMS) if name and self._fieldsMatchPreset(name)]
        self._setPresetIndex(matching[0] if matching else PRESET_ITEMS.index(None))

    def onPresetActivated(self, index: int) -> None:
        """A preset fills the fields; Custom leaves them as they are."""
        name = PRESET_ITEMS[index] if 0 <= index < len(PRESET_ITEMS) else None
        if name is None or not self._parameterNode:
            return
        # Each write re-checks the panel (and may show Custom for a moment): the index is set last.
        for field, value in presetFieldValues(name).items():
            setattr(self._parameterNode, field, value)
        self._setPresetIndex(index)
        self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        running = self._jobs is not None and self._jobs.running
        # A field edited away from the selected preset makes the choice Custom.
        name = self._selectedPreset()
        if name is not None and p and not self._fieldsMatchPreset(name):
            self._setPresetIndex(PRESET_ITEMS.index(None))
        self.ui.minIntensitySpinBox.enabled = bool(p and p.limitIntensity)
        self.ui.maxIntensitySpinBox.enabled = bool(p and p.limitIntensity)
        # Stenoses are measured along the centerlines.
        self.ui.createStenosesCheckBox.enabled = bool(p and p.createCenterlines)
        self.ui.stenosisThresholdSpinBox.enabled = bool(p and p.createCenterlines and p.createStenoses)
        if running:
            reason = _("A vessel job is running")
        elif not p or not p.inputVolume:
            reason = _("Select an input volume")
        elif not p.segmentName.strip():
            reason = _("Enter a segment name")
        elif p.minRadiusMm > p.maxRadiusMm:
            reason = _("The smallest radius must not exceed the largest")
        elif p.limitIntensity and p.minIntensity >= p.maxIntensity:
            reason = _("The minimum intensity must be below the maximum")
        else:
            reason = ""
        self.ui.applyButton.enabled = not reason
        self.ui.applyButton.toolTip = reason or _("Find the vessels in the input volume (and the outputs checked).")

    # -- running a job --------------------------------------------------------------------

    def onApplyButton(self) -> None:
        """Start the vessel job; the timer takes it from there."""
        if self._jobs.running or not self._parameterNode:
            return
        p = self._parameterNode
        if not self._ensurePythonDependencies():
            return
        onExisting = self._askOnExistingSegment(p.outputSegmentation, p.segmentName.strip())
        if onExisting is None:
            return
        try:
            maskParameters = self._maskParameters()
            outputs = self._outputs()
            if outputs is None:  # nothing beyond the mask: the mask job, as it always was
                job = self.logic.start_vessel_mask(
                    p.inputVolume,
                    segmentation_node=p.outputSegmentation,
                    parameters=maskParameters,
                    segment_name=p.segmentName.strip(),
                    on_existing=onExisting,
                )
            else:
                from segforge.vessel.pipeline import VesselPipelineParameters
                from segforge.vessel.stenosis import StenosisParameters

                job = self.logic.start_vessel_tree(
                    p.inputVolume,
                    VesselPipelineParameters(
                        mask=maskParameters,
                        stenosis=StenosisParameters(threshold_percent=p.stenosisThresholdPercent),
                        outputs=outputs,
                    ),
                    segmentation_node=p.outputSegmentation,
                    segment_name=p.segmentName.strip(),
                    on_existing=onExisting,
                )
        except Exception as error:
            self._jobs.showError(_("Could not start the vessel segmentation."), error)
            return
        self._jobs.start(job, self._onJobDone,
                         lambda error: self._jobs.showFailure(error, _("Vessel segmentation failed.")), _("Starting"))

    def _onJobDone(self, result) -> None:
        # The tree job returns VesselNodes, the mask job the segmentation node.
        segmentationNode = getattr(result, "segmentation", result)
        if self._parameterNode and segmentationNode is not None:
            self._parameterNode.outputSegmentation = segmentationNode
        self._jobs.showIdle(self._summary(result, segmentationNode))

    @staticmethod
    def _summary(result, segmentationNode) -> str:
        """One line: where the vessels went, and how many branches and stenoses were found."""
        node = segmentationNode.GetName() if segmentationNode is not None else _("the segmentation")
        if result is segmentationNode:
            return _("Done: the vessels are in {node}.").format(node=node)
        parts = []
        if result.branch_table is not None:
            parts.append(_("{count} branches").format(count=result.branch_table.GetNumberOfRows()))
        if result.stenosis_table is not None:
            parts.append(_("{count} stenoses found").format(count=result.stenosis_table.GetNumberOfRows()))
        if result.surface_model is not None:
            parts.append(_("surface model"))
        found = "; ".join(parts)
        return (_("Done: {found}; the vessels are in {node}.").format(found=found, node=node) if found
                else _("Done: the vessels are in {node}.").format(node=node))

    def _maskParameters(self):
        """The mask parameters of the panel: the selected preset (Custom: the defaults) with the
        fields, seeds and ROI of the panel over it."""
        from segforge.vessel import VesselMaskParameters
        from segforge.vessel.pipeline import preset

        p = self._parameterNode
        name = self._selectedPreset()
        base = preset(name) if name is not None else VesselMaskParameters()
        lowThreshold = None if base.low_threshold is None else min(base.low_threshold, p.threshold)
        return replace(
            base,
            min_radius_mm=p.minRadiusMm,
            max_radius_mm=p.maxRadiusMm,
            scales=p.scales,
            bright_vessels=p.brightVessels,
            threshold=p.threshold,
            low_threshold=lowThreshold,
            min_intensity=p.minIntensity if p.limitIntensity else None,
            max_intensity=p.maxIntensity if p.limitIntensity else None,
            seeds_lps=seeds_lps_from_markups(p.seedPoints),
            roi_lps=roi_lps_from_markups(p.roi),
        )

    def _outputs(self):
        """The ``VesselOutputs`` the panel asks for; None when only the mask is wanted."""
        from segforge.vessel.pipeline import VesselOutputs

        p = self._parameterNode
        centerlines = bool(p.createCenterlines)
        stenoses = centerlines and bool(p.createStenoses)
        surface = bool(p.createSurface)
        if not (centerlines or stenoses or surface):
            return None
        return VesselOutputs(centerlines=centerlines, stenoses=stenoses, surface=surface)

    # -- helpers ----------------------------------------------------------------------------

    def _ensurePythonDependencies(self) -> bool:
        """Install what the job needs on first use, after asking; False when it cannot run."""
        if not REQUIRED_PACKAGES:
            return True
        from SegForgeWidgets import python_dependencies

        try:
            if python_dependencies.ensure_python_dependencies("SegVessel", names=REQUIRED_PACKAGES,
                                                              needs_torch=NEEDS_TORCH):
                return True
        except Exception as error:
            self._jobs.showError(_("Could not install the Python packages SegVessel needs."), error)
            return False
        missing = python_dependencies.missing_requirements(
            [r for r in python_dependencies.read_requirements()
             if python_dependencies.requirement_name(r) in REQUIRED_PACKAGES])
        slicer.util.warningDisplay(
            _("SegVessel cannot run without these Python packages: {packages}").format(packages=", ".join(missing)))
        return False

    def _askOnExistingSegment(self, segmentationNode, segmentName: str) -> Optional[str]:
        """"error" when no segment has that name, else "replace" / "rename" as the user says; None = cancel."""
        if segmentationNode is None or not segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(segmentName):
            return "error"
        if slicer.app.testingEnabled():
            return "rename"  # no dialog in self-tests; keeping both never destroys anything
        box = qt.QMessageBox(slicer.util.mainWindow())
        box.setIcon(qt.QMessageBox.Question)
        box.setWindowTitle(_("SegVessel"))
        box.setText(_("The segmentation \"{node}\" already has a segment \"{name}\".").format(
            node=segmentationNode.GetName(), name=segmentName))
        box.setInformativeText(_("Replace it with the new result, or keep both (the new segment gets another name)?"))
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
# SegVesselTest
#


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

        self.delayDisplay("Seed points and ROI in LPS")
        self.assertEqual(seeds_lps_from_markups(None), ())
        self.assertIsNone(roi_lps_from_markups(None))
        points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        points.AddControlPoint([1.0, 2.0, 3.0])
        points.AddControlPoint([-4.0, 5.0, -6.0])
        self.assertEqual(seeds_lps_from_markups(points), ((-1.0, -2.0, 3.0), (4.0, -5.0, -6.0)))
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        roi.SetXYZ(10.0, 20.0, 30.0)
        roi.SetRadiusXYZ(1.0, 2.0, 3.0)
        box = roi_lps_from_markups(roi)
        for got, expected in zip(box, (-11.0, -22.0, 27.0, -9.0, -18.0, 33.0)):
            self.assertAlmostEqual(got, expected, places=6)
        self.assertEqual(set(PRESETS), {name for name in PRESET_ITEMS if name})
        for name in PRESETS:
            values = presetFieldValues(name)
            self.assertEqual(values["maxRadiusMm"], preset(name).max_radius_mm)
            self.assertEqual(values["brightVessels"], preset(name).bright_vessels)
        self.delayDisplay("Test passed")
