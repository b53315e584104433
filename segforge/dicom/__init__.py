"""Results a hospital can file: DICOM SEG and TID 1500 structured reports, their import, and a PACS.

``source`` reads the series a result was computed on (its UIDs and geometry, checked against
the engine's grid), ``codes`` turns Slicer terminology strings into DICOM coded concepts and
back, ``seg_export`` / ``seg_import`` write and read DICOM Segmentation objects,
``sr_export`` writes the measurements, ``pacs`` talks DICOMweb to an archive. Everything here
works on the engine's plain types (:class:`~segforge.image.Image`,
:class:`~segforge.segmentation_file.SegmentInfo`); Slicer nodes only in
:func:`seg_import.load_into_segmentation_node`, through :mod:`segforge.mrml`.
"""
