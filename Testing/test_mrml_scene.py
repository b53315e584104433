"""The headless Slicer application: the scene, logics and globals slicer.util relies on."""
from __future__ import annotations

import numpy as np
import pytest
import slicer
import slicer.util

from segforge.mrml import batch_processing, create_headless_slicer, get_scene, is_inside_slicer
from segforge.mrml.scene import HEADLESS_MODULE_LOGICS


def test_not_inside_desktop_slicer():
    assert not is_inside_slicer()


def test_installs_scene_and_module_logics(headless_slicer):
    assert slicer.mrmlScene is headless_slicer.scene
    assert get_scene() is headless_slicer.scene
    for name in ["Colors", *HEADLESS_MODULE_LOGICS]:
        logic = getattr(slicer.modules, name.lower()).logic()  # how Slicer code reaches a module's logic
        assert logic is headless_slicer.logic(name)
        # C++ logics find each other through the application logic under Slicer's module names
        assert headless_slicer.app_logic.GetModuleLogic(name) is logic
        assert logic.GetMRMLScene() is headless_slicer.scene
    assert slicer.modules.segmentations.logic().IsA("vtkSlicerSegmentationsModuleLogic")


def test_default_color_nodes_exist(mrml_scene):
    grey = mrml_scene.GetNodeByID("vtkMRMLColorTableNodeGrey")
    labels = mrml_scene.GetNodeByID("vtkMRMLColorTableNodeLabels")
    assert grey is not None and labels is not None
    assert labels.GetNumberOfColors() > 100


def test_slicer_util_helpers_work_on_the_headless_scene(mrml_scene):
    volume = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "probe")
    slicer.util.updateVolumeFromArray(volume, np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    assert slicer.util.getNode("probe") is volume
    assert slicer.util.arrayFromVolume(volume)[1, 2, 3] == 23
    assert mrml_scene.GetSubjectHierarchyNode() is not None


def test_each_headless_slicer_has_its_own_scene():
    first = create_headless_slicer(install=False)
    second = create_headless_slicer(install=True)
    try:
        assert first.scene is not second.scene
        assert slicer.mrmlScene is second.scene
        first.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "only-in-first")
        assert second.scene.GetFirstNodeByName("only-in-first") is None
    finally:
        first.close()
        second.close()
    assert not hasattr(slicer, "mrmlScene")


def test_get_scene_creates_a_headless_scene_when_none_is_installed():
    assert not hasattr(slicer, "mrmlScene")
    scene = get_scene()
    try:
        assert scene is slicer.mrmlScene
        assert slicer.modules.markups.logic().GetMRMLScene() is scene
        assert scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode") is not None  # class registered by the logic
    finally:
        scene.Clear(True)
        del slicer.mrmlScene, slicer.modules


def test_batch_processing_tells_observers_once_at_the_end_and_always_ends(mrml_scene):
    ended = []
    mrml_scene.AddObserver(slicer.vtkMRMLScene.EndBatchProcessEvent, lambda *_: ended.append(True))
    with batch_processing(mrml_scene):
        with batch_processing():  # nests; the installed scene by default
            mrml_scene.AddNewNodeByClass("vtkMRMLModelNode", "a")
        assert mrml_scene.IsBatchProcessing() and not ended
    assert not mrml_scene.IsBatchProcessing() and ended == [True]
    with pytest.raises(RuntimeError):
        with batch_processing(mrml_scene):
            raise RuntimeError("writing failed")
    assert not mrml_scene.IsBatchProcessing()
