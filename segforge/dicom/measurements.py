"""Each workflow's numbers as SR measurement groups, tied to the segment they measure.

Organs: volume, mean and SD of the image per structure. Vessels: each branch's length and
diameters, each stenosis or dilatation with its place and the healthy reference diameter it is
graded against, each landmark's section (maximum, minimum and perpendicular diameter, lumen
area) at its centreline point. Lesions:
volume. Units are UCUM, quantities SNOMED CT / DICOM codes from PS3.16 (pydicom's tables).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ..image import Image
from ..organ.statistics import StructureStatistics
from .codes import codes_of_segment
from .sr_export import MeasurementGroup, Value

_MM, _MM3 = codes.UCUM.Millimeter, codes.UCUM.CubicMillimeter


def organ_groups(statistics: Sequence[StructureStatistics], segment_numbers: Mapping[int, int],
                 terminology: Mapping[int, str], modality: str) -> list[MeasurementGroup]:
    """Volume (mm3) and intensity mean / SD (HU on CT) of every structure the SEG holds."""
    if modality == "CT":
        intensity, unit = codes.DCM.AttenuationCoefficient, codes.UCUM.HounsfieldUnit
        mean, sd = (Value(intensity, 0, unit, codes.SCT.Mean), Value(intensity, 0, unit, codes.SCT.StandardDeviation))
    else:
        unit = codes.UCUM.NoUnits
        mean, sd = Value(codes.SCT.Mean, 0, unit), Value(codes.SCT.StandardDeviation, 0, unit)
    groups = []
    for row in statistics:
        if row.label not in segment_numbers:
            continue  # absent from the result: no segment to refer to
        site = codes_of_segment(row.structure, terminology.get(row.label)).type
        values = (Value(codes.SCT.Volume, row.volume_ml * 1000.0, _MM3),
                  _with(mean, row.mean), _with(sd, row.sd))
        groups.append(MeasurementGroup(row.structure, segment_numbers[row.label], site, values, site))
    return groups


def _with(template: Value, number: float) -> Value:
    return Value(template.name, float(number), template.unit, template.derivation)


def vessel_groups(tree: Any, segment_number: int) -> list[MeasurementGroup]:
    """Branch lengths and diameters, findings and landmarks of a vessel tree, all on its one segment."""
    vessel = codes.SCT.BloodVessel
    groups = []
    for row in tree.branch_rows:
        values = (Value(codes.SCT.Length, row["length_mm"], _MM),
                  Value(codes.SCT.Diameter, 2 * row["mean_radius_mm"], _MM, codes.SCT.Mean),
                  Value(codes.SCT.Diameter, 2 * row["min_radius_mm"], _MM, codes.SCT.Minimum),
                  Value(codes.SCT.Diameter, 2 * row["max_radius_mm"], _MM, codes.SCT.Maximum))
        groups.append(MeasurementGroup(f"branch {row['id']}", segment_number, vessel, values, vessel))
    for n, row in enumerate(tree.finding_rows, start=1):
        point = (row["x_lps"], row["y_lps"], row["z_lps"])
        stenosis = row.get("kind", "stenosis") == "stenosis"
        finding = codes.SCT.Stenosis if stenosis else codes.SCT.Dilatation
        values = [Value(codes.SCT.Diameter, row["minimal_diameter_mm" if stenosis else "maximal_diameter_mm"], _MM,
                        codes.SCT.Minimum if stenosis else codes.SCT.Maximum),
                  Value(codes.SCT.Length, row["length_mm"], _MM)]
        if row.get("reference_diameter_mm") is not None:
            values.append(reference_value(row))
        if stenosis:
            values.insert(0, Value(codes.SCT.LumenDiameterStenosis, row["stenosis_percent"], codes.UCUM.Percent))
        groups.append(MeasurementGroup(f"{row.get('kind', 'stenosis')} {n} (branch {row['branch']}, "
                                       f"{row['arc_mm']:.1f} mm along)", segment_number, finding, tuple(values),
                                       vessel, point))
    groups += [group for group in (landmark_group(row, segment_number) for row in tree.landmark_rows) if group]
    return groups


#: A landmark row's key -> what it is in the SR (name, unit, derivation), in landmarks.csv's order.
#: The minimum is the narrowest caliper of the section, the perpendicular diameter the caliper
#: across the maximum one (what aortic reports give beside the maximum: CID 7470's Perpendicular
#: Axis); the area is the lumen's in the plane across the centreline, so it is coded as SNOMED
#: CT's vessel lumen cross-sectional area (CID 3482) rather than a bare area.
LANDMARK_VALUES = (("max_diameter_mm", codes.SCT.Diameter, _MM, codes.SCT.Maximum),
                   ("min_diameter_mm", codes.SCT.Diameter, _MM, codes.SCT.Minimum),
                   ("perpendicular_diameter_mm", codes.SCT.PerpendicularAxis, _MM, None),
                   ("area_mm2", codes.SCT.VesselLumenCrossSectionalArea, codes.UCUM.SquareMillimeter, None))


def landmark_group(row: Mapping[str, Any], segment_number: int) -> Optional[MeasurementGroup]:
    """A landmark's section (a row of landmarks.csv) as a group on the vessel segment, placed at
    the centreline point where the section was measured (the point a user placed may lie off the
    lumen); None when its outline did not close (nothing was measured there)."""
    values = tuple(Value(name, float(row[key]), unit, derivation) for key, name, unit, derivation in LANDMARK_VALUES
                   if row.get(key) is not None and np.isfinite(float(row[key])))
    if not values:
        return None
    vessel = codes.SCT.BloodVessel
    point = (float(row["centerline_x_lps"]), float(row["centerline_y_lps"]), float(row["centerline_z_lps"]))
    return MeasurementGroup(f"landmark {row['landmark']}", segment_number, vessel, values, vessel, point)


#: A finding's reference method -> its code (DICOM CID 3465, QA Reference Method).
REFERENCE_METHODS = {"interpolated": codes.DCM.InterpolatedLocalReference,
                     "curve-fitted": codes.DCM.CurveFittedReference}


def reference_value(row: Mapping[str, Any]) -> Value:
    """The healthy lumen diameter a finding is graded against: SNOMED CT "Vessel lumen diameter"
    with its QCA reference method (interpolated between the healthy flanks, or the vessel's
    fitted trend scaled to one flank) as the measurement method, so a reader tells it from the
    finding's own minimal or maximal diameter."""
    method = REFERENCE_METHODS.get(str(row.get("reference_method", "interpolated")),
                                   codes.DCM.InterpolatedLocalReference)
    return Value(codes.SCT.VesselLumenDiameter, float(row["reference_diameter_mm"]), _MM, method=method)


def lesion_groups(mask: Image, segment_number: int) -> list[MeasurementGroup]:
    """The lesion's volume (mm3) and its maximum 3D diameter (mm)."""
    volume = float(np.count_nonzero(mask.array)) * float(np.prod(mask.spacing))
    lesion: Code = codes.SCT.Lesion
    values = (Value(codes.SCT.Volume, volume, _MM3),
              Value(codes.SCT.Diameter, maximum_diameter_mm(mask), _MM, codes.SCT.Maximum))
    return [MeasurementGroup("lesion", segment_number, lesion, values)]


def maximum_diameter_mm(mask: Image) -> float:
    """The longest distance between two voxels of the mask, centre to centre, in mm (LPS, so
    oblique and anisotropic grids measure true lengths); NaN for an empty mask, 0 for one voxel.

    Only the convex hull's corners can be that far apart, so the pairs are taken among them; the
    hull is joggled (qhull's QJ) so a flat lesion (one slice, one row) has one too, its corners
    still voxels of the mask."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    k, j, i = np.nonzero(mask.array)
    if k.size == 0:
        return float("nan")
    points = (mask.ijk_to_lps() @ np.stack([i, j, k, np.ones_like(i)]).astype(float))[:3].T
    if len(points) > 4:
        points = points[ConvexHull(points, qhull_options="QJ").vertices]
    return float(pdist(points).max()) if len(points) > 1 else 0.0
