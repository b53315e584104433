"""DICOM SR (TID 1500) of each workflow's numbers: conformance (dciodvfy), every group tied to
its SEG segment, and the numbers read back by highdicom equal to the ones measured."""
from __future__ import annotations

import types

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from segforge.dicom.measurements import lesion_groups, maximum_diameter_mm, organ_groups, vessel_groups
from segforge.dicom.seg_export import Algorithm, build_segmentation
from segforge.dicom.seg_import import read_dicom_seg
from segforge.dicom.source import read_source_series
from segforge.dicom.sr_export import build_report
from segforge.image_io import read_volume
from segforge.organ.statistics import structure_statistics
from segforge.segmentation_file import SegmentInfo

from conftest import OBLIQUE, make_image
from dicom_helpers import DCIODVFY, ball_labels, dciodvfy_errors, write_series

pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: `make test` installs dicom3tools")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = write_series(make_image((7, 12, 16), np.int16, direction_lps=OBLIQUE),
                          tmp_path_factory.mktemp("sr") / "ct")
    image = read_volume(folder)
    return folder, image, read_source_series(folder, image)


def _groups_by_id(path):
    import highdicom as hd

    report = hd.sr.srread(path)
    groups = report.content.get_volumetric_roi_measurement_groups()
    return report, {str(g.tracking_identifier): g for g in groups}


def _points_by_id(path):
    """The TID 1410 groups' points (LPS), by tracking identifier, with their tracking UIDs."""
    import highdicom as hd

    groups = hd.sr.srread(path).content.get_planar_roi_measurement_groups()
    return {str(g.tracking_identifier): (g.tracking_uid, g.roi.value) for g in groups}


def _value(group, name, derivation=None):
    for measurement in group.get_measurements(name=name):
        if derivation is None or measurement.derivation == derivation:
            return measurement.value
    raise KeyError(name)


def assert_landmark(group, row) -> None:
    """A landmark's group holds its section's numbers (a row of landmarks.csv, as written or read
    back as text), each with its unit, and no other diameter or area."""
    expected = {(codes.SCT.Diameter, codes.SCT.Maximum): ("max_diameter_mm", codes.UCUM.Millimeter),
                (codes.SCT.Diameter, codes.SCT.Minimum): ("min_diameter_mm", codes.UCUM.Millimeter),
                (codes.SCT.PerpendicularAxis, None): ("perpendicular_diameter_mm", codes.UCUM.Millimeter),
                (codes.SCT.VesselLumenCrossSectionalArea, None): ("area_mm2", codes.UCUM.SquareMillimeter)}
    found = {(m.name, m.derivation): m for m in group.get_measurements()}
    assert set(found) == set(expected)
    for key, (column, unit) in expected.items():
        assert found[key].value == pytest.approx(float(row[column]), rel=1e-9), column
        assert found[key].unit == unit, column
    assert group.finding_type == codes.SCT.BloodVessel


def test_organ_report_passes_dciodvfy_and_reads_back_equal(series, tmp_path):
    folder, image, source = series
    labels = ball_labels(image)
    names = {3: "liver", 8: "kidney_left", 5: "spleen"}  # spleen absent: no group, no segment
    seg = build_segmentation(labels, [SegmentInfo(v, n) for v, n in names.items()], source, Algorithm("organ", "m"))
    statistics = structure_statistics(image, labels.array, names)
    report = build_report(seg, source, organ_groups(statistics, seg.segment_numbers, {}, "CT"), "organ")
    path = tmp_path / "sr.dcm"
    report.save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []
    read, groups = _groups_by_id(path)
    assert set(groups) == {"liver", "kidney_left"}
    for row in [s for s in statistics if s.voxels]:
        group = groups[row.structure]
        assert _value(group, codes.SCT.Volume) == pytest.approx(row.volume_ml * 1000)
        assert _value(group, codes.DCM.AttenuationCoefficient, codes.SCT.Mean) == pytest.approx(row.mean)
        assert _value(group, codes.DCM.AttenuationCoefficient, codes.SCT.StandardDeviation) == pytest.approx(row.sd)
        segment = group.referenced_segment
        assert segment.referenced_sop_instance_uid == seg.dataset.SOPInstanceUID
        assert segment.referenced_segment_numbers == [seg.segment_numbers[row.label]]
    assert read.StudyInstanceUID == seg.dataset.StudyInstanceUID
    assert pydicom.dcmread(path).CurrentRequestedProcedureEvidenceSequence  # SEG and CT named as evidence


def test_vessel_report_ties_branches_findings_and_landmarks_to_the_segment(series, tmp_path):
    folder, image, source = series
    mask = image.with_array((ball_labels(image).array == 3).astype(np.uint8))
    seg = build_segmentation(mask, [SegmentInfo(1, "vessels")], source, Algorithm("vessel", "vesselness-frangi"))
    tree = types.SimpleNamespace(
        branch_rows=[{"id": 1, "length_mm": 42.5, "mean_radius_mm": 3.0, "min_radius_mm": 1.5, "max_radius_mm": 4.0}],
        finding_rows=[{"kind": "stenosis", "branch": 1, "stenosis_percent": 62.5, "minimal_diameter_mm": 2.25,
                       "maximal_diameter_mm": 6.0, "length_mm": 5.0, "arc_mm": 12.0,
                       "reference_diameter_mm": 6.0, "reference_method": "interpolated",
                       "x_lps": -10.0, "y_lps": 20.5, "z_lps": 30.25},
                      {"kind": "dilatation", "branch": 1, "stenosis_percent": 0.0, "minimal_diameter_mm": 6.0,
                       "maximal_diameter_mm": 11.0, "length_mm": 7.0, "arc_mm": 30.0,
                       "reference_diameter_mm": 6.5, "reference_method": "curve-fitted",
                       "x_lps": -11.0, "y_lps": 21.5, "z_lps": 40.0}],
        landmark_rows=[{"landmark": 1, "centerline_x_lps": 1.0, "centerline_y_lps": 2.0, "centerline_z_lps": 3.0,
                        "max_diameter_mm": 7.5, "min_diameter_mm": 6.5, "perpendicular_diameter_mm": 6.75,
                        "area_mm2": 39.25},
                       {"landmark": 2, "centerline_x_lps": 4.0, "centerline_y_lps": 5.0, "centerline_z_lps": 6.0,
                        "max_diameter_mm": None, "min_diameter_mm": None, "perpendicular_diameter_mm": None,
                        "area_mm2": None}])  # an open section: nothing measured, no group
    report = build_report(seg, source, vessel_groups(tree, 1), "vessel")
    path = tmp_path / "sr.dcm"
    report.save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []
    _, groups = _groups_by_id(path)
    branch = groups["branch 1"]
    assert _value(branch, codes.SCT.Length) == pytest.approx(42.5)
    assert _value(branch, codes.SCT.Diameter, codes.SCT.Mean) == pytest.approx(6.0)
    assert _value(branch, codes.SCT.Diameter, codes.SCT.Minimum) == pytest.approx(3.0)
    stenosis = groups["stenosis 1 (branch 1, 12.0 mm along)"]
    assert stenosis.finding_type == codes.SCT.Stenosis
    (percent,) = stenosis.get_measurements(name=codes.SCT.LumenDiameterStenosis)
    assert percent.value == pytest.approx(62.5)
    points = _points_by_id(path)
    uid, point = points["stenosis 1 (branch 1, 12.0 mm along)"]
    assert uid == stenosis.tracking_uid and np.allclose(point, [[-10.0, 20.5, 30.25]])
    assert np.allclose(points["landmark 1"][1], [[1.0, 2.0, 3.0]])  # the section's centreline point
    assert points["landmark 1"][0] == groups["landmark 1"].tracking_uid
    dilatation = groups["dilatation 2 (branch 1, 30.0 mm along)"]
    assert dilatation.finding_type == codes.SCT.Dilatation
    assert _value(dilatation, codes.SCT.Diameter, codes.SCT.Maximum) == pytest.approx(11.0)
    assert_landmark(groups["landmark 1"], tree.landmark_rows[0])
    assert "landmark 2" not in groups and "landmark 2" not in points
    # each finding's healthy reference: "Vessel lumen diameter" with its QCA reference method
    for group, diameter, method in ((stenosis, 6.0, codes.DCM.InterpolatedLocalReference),
                                    (dilatation, 6.5, codes.DCM.CurveFittedReference)):
        (reference,) = group.get_measurements(name=codes.SCT.VesselLumenDiameter)
        assert reference.value == pytest.approx(diameter) and reference.unit == codes.UCUM.Millimeter
        assert reference.method == method and reference.derivation is None
    assert not groups["branch 1"].get_measurements(name=codes.SCT.VesselLumenDiameter)
    assert all(g.referenced_segment.referenced_segment_numbers == [1] for g in groups.values())


def test_lesion_report_gives_the_volume_in_cubic_millimetres(series, tmp_path):
    folder, image, source = series
    mask = image.with_array((ball_labels(image).array == 3).astype(np.uint8))
    seg = build_segmentation(mask, [SegmentInfo(1, "lesion")], source, Algorithm("interactive", "random-walker",
                                                                                   interactive=True))
    path = tmp_path / "sr.dcm"
    build_report(seg, source, lesion_groups(mask, 1), "interactive").save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []
    _, groups = _groups_by_id(path)
    expected = np.count_nonzero(mask.array) * np.prod(image.spacing)
    assert _value(groups["lesion"], codes.SCT.Volume) == pytest.approx(expected)
    assert _value(groups["lesion"], codes.SCT.Diameter, codes.SCT.Maximum) == pytest.approx(maximum_diameter_mm(mask))
    assert pydicom.dcmread(tmp_path / "sr.dcm").ContentSequence  # written
    assert seg.dataset.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"


@pytest.mark.parametrize("direction", [np.eye(3), OBLIQUE], ids=["axial", "oblique"])
def test_maximum_diameter_is_in_millimetres_on_any_grid(direction):
    from segforge.image import Image

    array = np.zeros((6, 9, 11), np.uint8)
    array[1, 2, 3] = array[4, 7, 9] = array[2, 4, 5] = 1  # the far pair: (3,2,1) and (9,7,4) in (i,j,k)
    mask = Image(array, (0.5, 1.5, 3.0), (10.0, -20.0, 5.0), direction)
    expected = np.linalg.norm(np.array([6 * 0.5, 5 * 1.5, 3 * 3.0]))
    assert maximum_diameter_mm(mask) == pytest.approx(expected)
    ball = np.zeros((21, 21, 21), np.uint8)
    k, j, i = np.indices(ball.shape)
    ball[(k - 10) ** 2 + (j - 10) ** 2 + (i - 10) ** 2 <= 81] = 1
    assert maximum_diameter_mm(Image(ball, (1.0, 1.0, 1.0), (0, 0, 0), direction)) == pytest.approx(18.0)
    assert np.isnan(maximum_diameter_mm(mask.with_array(np.zeros_like(array))))
    flat = np.zeros((3, 200, 200), np.uint8)
    flat[1, 20:180, 10:190] = 1  # 28,800 voxels in one slice: a joggled hull, not every pair
    assert maximum_diameter_mm(Image(flat, (0.5, 0.5, 2.0), (0, 0, 0), direction)) == pytest.approx(
        0.5 * np.hypot(179, 159), rel=1e-6)


def test_a_report_beside_the_slices_is_no_damaged_slice(series, tmp_path):
    """A folder fetched or exported with our sr.dcm beside its CT slices still reads as the series."""
    import shutil

    folder, image, source = series
    copy = tmp_path / "ct"
    shutil.copytree(folder, copy)
    mask = image.with_array((ball_labels(image).array == 3).astype(np.uint8))
    seg = build_segmentation(mask, [SegmentInfo(1, "lesion")], source, Algorithm("interactive", "m"))
    build_report(seg, source, lesion_groups(mask, 1), "interactive").save_as(copy / "sr.dcm",
                                                                             enforce_file_format=True)
    assert read_volume(copy).same_grid(image)


def test_a_non_ascii_name_is_written_in_utf8_and_reads_back_equal(series, tmp_path):
    """Without a Specific Character Set the repertoire is ASCII: 'Läsion 肝 Größe' became
    'Läsion ? Größe' and dciodvfy called the label and the tracking ID invalid."""
    from segforge.dicom.results import lesion_dicom

    folder, image, source = series
    mask = image.with_array((ball_labels(image).array == 3).astype(np.uint8))
    name = "Läsion 肝 Größe"
    files = lesion_dicom(tmp_path, source, mask, SegmentInfo(1, name), "random-walker")
    for path in files.values():
        assert pydicom.dcmread(path).SpecificCharacterSet == "ISO_IR 192"
        assert dciodvfy_errors(path) == [], path.name
    seg = pydicom.dcmread(files["dicom_seg"])
    assert seg.SegmentSequence[0].SegmentLabel == name == seg.SegmentSequence[0].TrackingID
    assert read_dicom_seg(files["dicom_seg"], image).segments[0].name == name
