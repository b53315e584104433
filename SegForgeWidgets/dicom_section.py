"""DicomSection: the "DICOM" part of a module panel: Export to DICOM and Send to PACS.

Thin on purpose (desktop widgets cannot be tested here): which segments, which source series
and which measurements go in is the module Logic's rule (``start_export_dicom`` /
``start_send_to_pacs``, :mod:`segforge.dicom.scene_export`), the same calls the web panel
makes. This section asks the panel for its last result, lets the user pick a folder, and
follows the Logic's background job with its own progress bar, status and Cancel
(:class:`~.job_runner.JobRunner`), so Slicer never freezes while the files are written or sent.
Volumes loaded by Slicer's DICOM module find their files through Slicer's DICOM database.
"""
import qt

import ctk
import slicer
from slicer.i18n import tr as _

from .job_runner import JobRunner

POLL_INTERVAL_MS = 200


def _fileLookup():
    """Slicer's DICOM database lookup (SOP Instance UID -> file), or None when it is not open."""
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return None
    return database.fileForInstance


class DicomSection:
    """A collapsible "DICOM" section inserted below ``after`` in ``layout``.

    ``resultOf()`` returns ``(logic, volumeNode, result)`` for the panel's last result, or None:
    the buttons are enabled only when there is one (Send to PACS also needs a configured PACS).
    """

    def __init__(self, layout, after, moduleName: str, resultOf) -> None:
        self._moduleName = moduleName
        self._resultOf = resultOf
        box = ctk.ctkCollapsibleButton()
        box.text = _("DICOM")
        layout.insertWidget(layout.indexOf(after) + 1, box)
        column = qt.QVBoxLayout(box)
        self.derivedCheckBox = qt.QCheckBox(_("New derived series (for a volume not loaded from DICOM)"))
        self.derivedCheckBox.toolTip = _("Write the volume as a new DICOM series, clearly marked as derived "
                                         "(fresh UIDs, patient 'SegForge^Derived'), beside the SEG and SR.")
        column.addWidget(self.derivedCheckBox)
        buttons = qt.QHBoxLayout()
        self.exportButton = qt.QPushButton(_("Export to DICOM..."))
        self.exportButton.toolTip = _("Write the last result as a DICOM SEG and SR (measurements) into a new or "
                                      "empty folder; all files or none.")
        self.sendButton = qt.QPushButton(_("Send to PACS"))
        self.cancelButton = qt.QPushButton(_("Cancel"))
        for button in (self.exportButton, self.sendButton, self.cancelButton):
            buttons.addWidget(button)
        column.addLayout(buttons)
        self.progressBar = qt.QProgressBar()
        self.progressBar.setRange(0, 100)
        column.addWidget(self.progressBar)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.statusLabel.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)
        column.addWidget(self.statusLabel)
        self._runner = JobRunner(self, POLL_INTERVAL_MS, moduleName, refresh=self.refresh)
        self.exportButton.connect("clicked(bool)", self.onExport)
        self.sendButton.connect("clicked(bool)", self.onSend)
        self._runner.showIdle("")

    def refresh(self) -> None:
        """Enable what the last result and the PACS configuration allow."""
        found = self._resultOf()
        idle = not self._runner.running
        self.exportButton.enabled = idle and found is not None
        url = found[0].pacs_url() if found is not None else None
        self.sendButton.enabled = idle and found is not None and url is not None
        self.sendButton.toolTip = (_("Store the last result's SEG and SR on the PACS at {url}.").format(url=url)
                                   if url else _("No PACS is configured: set SEGFORGE_PACS_URL (and "
                                                 "SEGFORGE_PACS_USER / SEGFORGE_PACS_PASSWORD) or write "
                                                 "~/.config/segforge/pacs.json, then restart Slicer."))

    def drop(self) -> None:
        """Cancel and let go of a running export or send (the scene closes, the panel goes)."""
        self._runner.drop()

    def onExport(self) -> None:
        found = self._resultOf()
        if found is None or self._runner.running:
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder for the DICOM SEG and SR"))
        if not folder:
            return
        overwrite = False
        if qt.QDir(folder).entryList(qt.QDir.AllEntries | qt.QDir.NoDotAndDotDot):
            overwrite = slicer.util.confirmYesNoDisplay(
                _("{folder} is not empty. Replace it with the export (only a folder an earlier export wrote can "
                  "be replaced)?").format(folder=folder))
            if not overwrite:
                return
        logic, volume, result = found
        try:
            job = logic.start_export_dicom(volume, result, folder, derived=self.derivedCheckBox.checked,
                                           overwrite=overwrite, file_for_instance=_fileLookup())
        except Exception as error:  # a refusal (not from DICOM, no result...): its message says what to do
            self._runner.showError(_("Export to DICOM failed."), error)
            return
        self._runner.start(job, self._onExported, lambda error: self._runner.showFailure(
            error, _("Export to DICOM failed.")), _("Writing the DICOM SEG and SR..."))

    def _onExported(self, files) -> None:
        names = ", ".join(sorted(str(path).rsplit("/", 1)[-1] for path in files.values()))
        self._runner.showIdle(_("Exported: {names}").format(names=names))

    def onSend(self) -> None:
        found = self._resultOf()
        if found is None or self._runner.running:
            return
        logic, volume, result = found
        try:
            job = logic.start_send_to_pacs(volume, result, file_for_instance=_fileLookup())
        except Exception as error:
            self._runner.showError(_("Send to PACS failed."), error)
            return
        self._runner.start(job, self._onSent, lambda error: self._runner.showFailure(
            error, _("Send to PACS failed.")), _("Sending to the PACS..."))

    def _onSent(self, outcome) -> None:
        self._runner.showIdle(_("PACS: {states}").format(
            states=", ".join(f"{name} {state}" for name, state in outcome.items())))
