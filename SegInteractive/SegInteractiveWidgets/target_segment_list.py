"""TargetSegmentList: the target segment selector, kept in step with the output segmentation.

Its items are only known at run time (the segments of whatever segmentation the user picked),
so no .ui binding can fill it: this listens to the segmentation and tells the panel
(``onChanged``) whenever segments are added, renamed or removed; the panel then refills it
through :meth:`TargetSegmentList.fill`, with the parameter node's segment selected again.
"""
import slicer
from slicer.i18n import tr as _
from slicer.util import VTKObservationMixin

from SegInteractiveLib.form import NEW_SEGMENT

#: What a segmentation fires when its segment list or a segment's name changes.
SEGMENT_LIST_EVENTS = ("SegmentAdded", "SegmentRemoved", "SegmentModified")


class TargetSegmentList(VTKObservationMixin):
    """"New segment", then each segment of a segmentation by name, with its id as item data."""

    def __init__(self, comboBox, onChanged) -> None:
        VTKObservationMixin.__init__(self)
        self._comboBox = comboBox
        self._onChanged = onChanged
        self._observed = None

    def observe(self, segmentationNode) -> None:
        """Listen to ``segmentationNode`` (None: to none) instead of the previous one."""
        if segmentationNode is self._observed:
            return
        events = [getattr(slicer.vtkSegmentation, name) for name in SEGMENT_LIST_EVENTS]
        if self._observed is not None:
            for event in events:
                self.removeObserver(self._observed, event, self._onSegmentsChanged)
        self._observed = segmentationNode
        if segmentationNode is not None:
            for event in events:
                self.addObserver(segmentationNode, event, self._onSegmentsChanged)

    def fill(self, segmentationNode, selectedId) -> None:
        """The items of ``segmentationNode`` (None: "New segment" only), ``selectedId`` selected
        ("New segment" when it is None or gone); the combo box emits no signal meanwhile."""
        combo = self._comboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        combo.addItem(_("New segment"), NEW_SEGMENT)
        segmentation = segmentationNode.GetSegmentation() if segmentationNode else None
        if segmentation is not None:
            for segmentId in segmentation.GetSegmentIDs():
                combo.addItem(segmentation.GetSegment(segmentId).GetName(), segmentId)
        index = combo.findData(selectedId) if selectedId is not None else 0
        combo.currentIndex = max(index, 0)
        combo.blockSignals(wasBlocked)

    def _onSegmentsChanged(self, caller=None, event=None) -> None:
        self._onChanged()
