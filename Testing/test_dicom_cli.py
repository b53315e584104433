"""``--dicom`` on ``segforge organ|vessel|interactive``: seg.dcm and sr.dcm in the all-or-nothing
result set, conformant (dciodvfy), on the input series' grid (an oblique one too), their
numbers those of the CSV and summary; bad DICOM inputs refused in one line, nothing written."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from conftest import OBLIQUE
from dicom_helpers import DCIODVFY, dcmqi_ct, dciodvfy_errors, write_series
from segforge.dicom.seg_import import read_dicom_seg
from segforge.image import Image
from segforge.image_io import read_image, read_volume
from segforge.output_set import verify_manifest
from test_cli import segforge
from test_dicom_sr import assert_landmark
from test_organ_tissues import chest_phantom

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")


def _report_groups(path):
    import highdicom as hd

    groups = hd.sr.srread(path).content.get_volumetric_roi_measurement_groups()
    return {str(g.tracking_identifier): g for g in groups}


def oblique_chest() -> Image:
    """The chest phantom as a 16-bit CT on an oblique, anisotropic grid."""
    phantom, _ = chest_phantom(spacing=(4.0, 3.5, 5.0))
    return Image(phantom.array.astype(np.int16), phantom.spacing, phantom.origin_lps, OBLIQUE)


def test_organ_dicom_on_an_oblique_series(tmp_path):
    image = oblique_chest()
    folder = write_series(image, tmp_path / "chest")
    run = segforge("organ", str(folder), "--out", str(tmp_path / "out"), "--dicom")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    assert verify_manifest(out) == [] and {"seg.dcm", "sr.dcm"} <= {p.name for p in out.iterdir()}
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    source = read_volume(folder)
    labels = read_image(out / "organs.seg.nrrd")
    imported = read_dicom_seg(out / "seg.dcm", source)
    with open(out / "statistics.csv") as handle:
        rows = {row["structure"]: row for row in csv.DictReader(handle)}
    groups = _report_groups(out / "sr.dcm")
    for segment in imported.segments:
        row = rows[segment.name]
        assert np.array_equal(imported.masks[segment.label], labels.array == int(row["label"])), segment.name
        volume = groups[segment.name].get_measurements(name=codes.SCT.Volume)[0].value
        assert volume == pytest.approx(float(row["volume_ml"]) * 1000, rel=1e-6)
    assert {s.name for s in imported.segments} == {name for name, row in rows.items() if int(row["voxels"])}
    seg = pydicom.dcmread(out / "seg.dcm")
    assert seg.PatientID == "SEGFORGE-TEST-1"
    assert "ct-tissues" in seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName


def test_interactive_and_vessel_dicom_on_dcmqi_ct(shared_data, tmp_path):
    folder = dcmqi_ct(shared_data, tmp_path / "ct")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"coordinateSystem": "LPS", "prompts": [
        {"type": "point", "position": [-27.7, -19.3, -127.69], "positive": True}]}))
    run = segforge("interactive", str(folder), "--prompts", str(prompts), "--out", str(tmp_path / "lesion"), "--dicom")
    assert run.returncode == 0, run.stderr
    lesion = tmp_path / "lesion"
    assert dciodvfy_errors(lesion / "seg.dcm") == [] and dciodvfy_errors(lesion / "sr.dcm") == []
    summary = json.loads((lesion / "summary.json").read_text())
    volume = _report_groups(lesion / "sr.dcm")["lesion"].get_measurements(name=codes.SCT.Volume)[0].value
    assert volume == pytest.approx(summary["volume_ml"] * 1000) and volume > 0
    assert pydicom.dcmread(lesion / "seg.dcm").SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert_lesion_codes(lesion / "seg.dcm")

    # landmark 1 on a branch whose section closes; landmark 2 at a branch's end, where it does not
    run = segforge("vessel", str(folder), "--out", str(tmp_path / "vessel"), "--preset", "cta", "--no-surface",
                   "--dicom", "--landmark=-25.8,57.8,-127.6", "--landmark=-16.1,60.7,-128.0")
    assert run.returncode == 0, run.stderr
    vessel = tmp_path / "vessel"
    assert dciodvfy_errors(vessel / "seg.dcm") == [] and dciodvfy_errors(vessel / "sr.dcm") == []
    with open(vessel / "branches.csv") as handle:
        branches = list(csv.DictReader(handle))
    groups = _report_groups(vessel / "sr.dcm")
    assert branches and all(f"branch {row['id']}" in groups for row in branches)
    first = groups[f"branch {branches[0]['id']}"]
    assert first.get_measurements(name=codes.SCT.Length)[0].value == pytest.approx(float(branches[0]["length_mm"]))
    mask = read_image(vessel / "vessels.seg.nrrd").array > 0
    assert np.array_equal(read_dicom_seg(vessel / "seg.dcm", read_volume(folder)).masks[1], mask)
    _landmarks_equal_the_csv(vessel)


def assert_lesion_codes(path) -> None:
    """The lesion segment is Morphologically Altered Structure / Lesion, as the SR's finding
    says (not the generic Tissue / Tissue of a name SegForge does not know)."""
    item = pydicom.dcmread(path).SegmentSequence[0]
    assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"


def _landmarks_equal_the_csv(vessel) -> None:
    """Every landmark whose section closed is in the SR with landmarks.csv's numbers, at its
    centreline point, tied to the vessel segment; one that did not close is absent."""
    import highdicom as hd

    with open(vessel / "landmarks.csv") as handle:
        landmarks = list(csv.DictReader(handle))
    groups = _report_groups(vessel / "sr.dcm")
    points = {str(g.tracking_identifier): (g.tracking_uid, g.roi.value)
              for g in hd.sr.srread(vessel / "sr.dcm").content.get_planar_roi_measurement_groups()}
    closed = [row for row in landmarks if row["area_mm2"]]
    assert len(landmarks) == 2 and len(closed) == 1, landmarks
    for row in landmarks:
        name = f"landmark {row['landmark']}"
        if not row["area_mm2"]:
            assert name not in groups and name not in points
            continue
        assert_landmark(groups[name], row)
        assert groups[name].referenced_segment.referenced_segment_numbers == [1]
        uid, point = points[name]
        assert uid == groups[name].tracking_uid
        expected = [float(row[f"centerline_{axis}_lps"]) for axis in "xyz"]
        assert np.allclose(point, [expected], atol=1e-6)


@pytest.mark.parametrize("case", ["empty UIDs", "volume file", "no series"])
def test_bad_dicom_inputs_are_one_line_and_write_nothing(shared_data, tmp_path, case):
    if case == "empty UIDs":
        source, expected = shared_data / "dicom" / "ts_ct_series_20sl", "empty or missing StudyInstanceUID"
    elif case == "volume file":
        source, expected = shared_data / "dicom" / "ts_ct_series_20sl_pred_seg.nii.gz", "is not a DICOM series"
    else:
        source, expected = tmp_path, "No DICOM series"
    run = segforge("organ", str(source), "--out", str(tmp_path / "out"), "--dicom")
    assert run.returncode == 1 and expected in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["enhanced CT", "multi-frame MR"])
def test_enhanced_multi_frame_dicom_is_refused_in_one_line(shared_data, tmp_path, case):
    """An enhanced (multi-frame) image was read as one slice: a false "no Pixel Spacing, 1 mm is
    assumed" warning, then "4D or multi-component image"."""
    import highdicom as hd

    folder = tmp_path / "series"
    folder.mkdir()
    if case == "enhanced CT":
        slices = [pydicom.dcmread(p) for p in sorted(dcmqi_ct(shared_data, tmp_path / "ct").glob("*.dcm"))]
        hd.legacy.LegacyConvertedEnhancedCTImage(slices, series_instance_uid=hd.UID(), series_number=3,
                                                 sop_instance_uid=hd.UID(), instance_number=1).save_as(
            folder / "enhanced.dcm", enforce_file_format=True)
    else:
        shutil.copy(shared_data / "dicom" / "single_files" / "vmtk_mr_multiframe_16f.dcm", folder)
    run = segforge("organ", str(folder), "--out", str(tmp_path / "out"))
    assert run.returncode == 1, run.stderr
    assert "enhanced (multi-frame) DICOM is not supported yet" in run.stderr and "dcm2niix" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


def test_a_float_volume_with_dicom_derived_gets_advice_that_fits(tmp_path):
    """It said "Write it as NIfTI or NRRD instead" of a NIfTI input."""
    from segforge.image_io import write_image

    image = oblique_chest()
    path = write_image(Image(image.array.astype(np.float32), image.spacing, image.origin_lps, image.direction_lps),
                       tmp_path / "chest.nii.gz")
    run = segforge("organ", str(path), "--out", str(tmp_path / "out"), "--dicom-derived")
    assert run.returncode == 1 and "holds float32" in run.stderr, run.stderr
    assert "Drop --dicom-derived" in run.stderr and "16-bit integers" in run.stderr and "NIfTI" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


def test_a_volume_file_gets_a_marked_derived_series_only_when_asked(tmp_path):
    from segforge.image_io import write_image

    image = oblique_chest()
    path = write_image(image, tmp_path / "chest.nrrd")
    run = segforge("organ", str(path), "--out", str(tmp_path / "out"), "--dicom-derived")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    slices = sorted(out.glob("derived_ct_*.dcm"))
    assert len(slices) == image.array.shape[0] and verify_manifest(out) == []
    copy = tmp_path / "derived"
    copy.mkdir()
    for slice_file in slices:
        shutil.copy(slice_file, copy)
    derived = read_volume(copy)  # the derived series is the volume, voxel for voxel in place
    assert derived.same_grid(image) and np.array_equal(derived.array, image.array)
    first = pydicom.dcmread(slices[0])
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"] and str(first.PatientName) == "SegForge^Derived"
    assert dciodvfy_errors(slices[0]) == []
    assert "chest.nrrd" in first.DerivationDescription and "DERIVED" in first.SeriesDescription
    assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []
    seg = pydicom.dcmread(out / "seg.dcm")
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {pydicom.dcmread(p).SOPInstanceUID for p in slices}
    assert seg.PatientName == first.PatientName and seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    labels = read_image(out / "organs.seg.nrrd")
    imported = read_dicom_seg(out / "seg.dcm", image)
    assert all(np.array_equal(imported.masks[s.label], labels.array == _label_of(out, s.name))
               for s in imported.segments)
    refused = segforge("organ", str(out), "--out", str(tmp_path / "again"), "--dicom-derived")
    assert refused.returncode == 1 and "Use --dicom" in refused.stderr and not (tmp_path / "again").exists()


def _label_of(out, name: str) -> int:
    with open(out / "statistics.csv") as handle:
        return next(int(row["label"]) for row in csv.DictReader(handle) if row["structure"] == name)
