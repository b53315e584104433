"""``make demo``'s script: its scene reloads in a fresh headless Slicer with the vessels on the CTA."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from conftest import REPO
from segforge.image_io import read_image
from segforge.mrml import image_from_volume_node, load_scene_bundle, mask_from_segment, segment_ids_by_name
from segforge.vessel import VesselMaskParameters, vessel_mask

CTA = REPO / "Resources" / "SampleData" / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz"


def test_demo_scene_reloads_with_the_vessel_segment_on_the_cta(tmp_path, mrml_scene):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path)],
                         capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "wrote scene" in run.stdout

    load_scene_bundle(tmp_path / "segforge_demo.mrb", mrml_scene)
    volumes = [n for n in mrml_scene.GetNodesByClass("vtkMRMLScalarVolumeNode") if n.GetName() == "CTA"]
    segmentations = list(mrml_scene.GetNodesByClass("vtkMRMLSegmentationNode"))
    assert len(volumes) == 1 and len(segmentations) == 1
    cta = read_image(CTA)
    reloaded = image_from_volume_node(volumes[0])
    assert reloaded.same_grid(cta)
    np.testing.assert_array_equal(reloaded.array, cta.array)
    vessels = mask_from_segment(segmentations[0], segment_ids_by_name(segmentations[0])["Vessels"][0], volumes[0])
    np.testing.assert_array_equal(vessels.array > 0, vessel_mask(cta, VesselMaskParameters.for_cta()).array > 0)
    aorta = read_image(CTA.parent / "pred_aorta.nii.gz").array > 0
    assert (vessels.array.astype(bool) & aorta).sum() / aorta.sum() > 0.4

    snapshot = sitk.ReadImage(str(tmp_path / "vessels.png"))
    assert snapshot.GetNumberOfComponentsPerPixel() == 3 and snapshot.GetWidth() > 3 * cta.shape_ijk[0]
