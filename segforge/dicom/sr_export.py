"""Measurements as a DICOM structured report: TID 1500 Measurement Report, built by highdicom.

Each measurement group (TID 1411, volumetric ROI) names the segment of the SEG it measures
(its SOP Instance UID and segment number), so a viewer shows "liver: 1530 ml" beside the
liver's voxels. The groups are plain data (:class:`MeasurementGroup`); turning a workflow's
results into groups is :mod:`.measurements`' job, writing them is this module's.
"""
from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from .. import __version__
from .seg_export import SR_SERIES_NUMBER, SegExport
from .source import SourceSeries

#: SegForge as an observing device: one fixed UID (derived from its name), so every report says
#: the same machine-observer made it.
DEVICE_UID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'https://segforge.invalid/device').int}"


@dataclass(frozen=True)
class Value:
    """One number: what it is (a coded concept, optionally with a derivation such as Mean, and the
    method that measured it) and its unit."""

    name: Code
    value: float
    unit: Code
    derivation: Optional[Code] = None
    method: Optional[Code] = None


@dataclass(frozen=True)
class MeasurementGroup:
    """The measurements of one segment (or of one finding on it, with its place as an LPS point in mm)."""

    tracking_id: str
    segment_number: int
    finding_type: Code
    values: tuple[Value, ...]
    finding_site: Optional[Code] = None
    point_lps: Optional[tuple[float, float, float]] = None


def build_report(seg: SegExport, source: SourceSeries, groups: Sequence[MeasurementGroup],
                 workflow: str, uids: Optional[tuple[str, str]] = None) -> hd.sr.Comprehensive3DSR:
    """The Measurement Report of ``groups``, every group tied to its segment of ``seg``;
    ``uids``: its (Series, SOP) Instance UIDs, new ones by default."""
    frame = str(source.first.FrameOfReferenceUID)
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name="SegForge", manufacturer_name="SegForge", model_name=f"SegForge {workflow}"))
    series_uid, sop_uid = uids or (hd.UID(), hd.UID())
    measurements: list = []
    for group in groups:
        if _finite(group):
            measurements += _group(seg, source, group, frame)
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_procedure(source), imaging_measurements=measurements)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's remarks on the source's own attributes
        return hd.sr.Comprehensive3DSR(
            evidence=[seg.dataset, *source.datasets], content=report[0], series_instance_uid=series_uid,
            series_number=SR_SERIES_NUMBER, sop_instance_uid=sop_uid, instance_number=1, manufacturer="SegForge",
            is_complete=True, series_description=f"SegForge {workflow} measurements"[:64],
            software_versions=__version__)


def _finite(group: MeasurementGroup) -> bool:
    return any(np.isfinite(v.value) for v in group.values)


def _procedure(source: SourceSeries) -> Code:
    return codes.LN.CTUnspecifiedBodyRegion if source.first.get("Modality") == "CT" else codes.SCT.ImagingProcedure


def _group(seg: SegExport, source: SourceSeries, group: MeasurementGroup, frame: str) -> list:
    """The group's TID 1411 (and its TID 1410 holding the point, where it has one)."""
    referenced = hd.sr.ReferencedSegment(
        sop_class_uid=seg.dataset.SOPClassUID, sop_instance_uid=seg.dataset.SOPInstanceUID,
        segment_number=group.segment_number,
        source_series=hd.sr.SourceSeriesForSegmentation(str(source.first.SeriesInstanceUID)))
    # an absent quantity (an SD of nothing) is left out, never written as a number
    values = [hd.sr.Measurement(name=v.name, value=float(v.value), unit=v.unit, derivation=v.derivation,
                                method=v.method)
              for v in group.values if np.isfinite(v.value)]
    tracking = hd.UID()
    sites = [hd.sr.FindingSite(group.finding_site)] if group.finding_site is not None else None
    result: list = [hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking, identifier=group.tracking_id),
        referenced_segment=referenced, finding_type=group.finding_type, finding_sites=sites, measurements=values)]
    if group.point_lps is not None:
        region = hd.sr.ImageRegion3D(hd.sr.GraphicTypeValues3D.POINT, np.asarray([group.point_lps], float), frame)
        result.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking, identifier=group.tracking_id),
            referenced_region=region, finding_type=group.finding_type, finding_sites=sites))
    return result
