"""A result in the Slicer scene as DICOM SEG + SR: "Export to DICOM" and "Send to PACS".

The one rule the three modules' Logic share (their desktop panels and the web panels call
the Logic, never this directly): the source series is the one the input volume node was
loaded from (:mod:`segforge.mrml.dicom_source`), checked slice by slice against the volume's
grid; the SEG and SR are the workflow's own (:mod:`.results`), so a panel files the same
objects as ``segforge <workflow> --dicom``. A volume that did not come from a DICOM series is
refused with what to do, unless the user asked for a new derived series (marked as such).

Reading the scene happens in :class:`DicomExport`'s constructor callers, on the scene's
thread; what is kept is plain values, so writing and sending may run in a background thread
(:class:`segforge.worker.ThreadJob`). Export writes an all-or-nothing folder
(:class:`~segforge.output_set.OutputSet`, with a manifest); Send writes into a temporary
folder, stores each object, and deletes the folder.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import Cancelled, InputError
from ..image import Image
from ..mrml.dicom_source import dicom_origin
from ..output_set import OutputSet
from ..progress import ProgressCallback, no_progress
from .derived import write_derived_series
from .pacs import PacsConfig, open_pacs, pacs_config
from .pacs_config import NO_PACS
from .source import SourceSeries, read_source_files, read_source_series

#: What the panels call the option that writes a derived series for a volume file.
DERIVED_OPTION = "New derived series"

#: ``file_for_instance(sop_instance_uid) -> path``: Slicer's DICOM database lookup
#: (``slicer.dicomDatabase.fileForInstance``), for volumes loaded by Slicer's DICOM module.
FileLookup = Callable[[str], str]
#: ``write(folder, source) -> {kind: path}``: one workflow's SEG and SR (see :mod:`.results`).
Writer = Callable[[Path, SourceSeries], dict]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DicomExport:
    """What goes into the SEG and SR of one result, read from the scene: plain values only."""

    workflow: str
    volume_name: str
    image: Image
    #: The series the volume was loaded from; None: a derived series is written (the user asked).
    source: Optional[SourceSeries]
    write: Writer


def source_of_volume(volume_node: Any, image: Image, derived: bool = False,
                     file_for_instance: Optional[FileLookup] = None) -> Optional[SourceSeries]:
    """The DICOM series ``volume_node`` was loaded from, checked against ``image`` (its grid);
    None when it has none and ``derived`` asks for a new series. InputError otherwise. The
    folder it was loaded from first; where that is gone (a scene reopened elsewhere), its
    slices' UIDs through ``file_for_instance`` (Slicer's DICOM database) when there is one."""
    name = volume_node.GetName()
    origin = dicom_origin(volume_node)
    if origin.folder is not None and (origin.folder.is_dir() or not (origin.instance_uids and file_for_instance)):
        if not origin.folder.is_dir():
            raise InputError(f"The DICOM series of '{name}' is gone", f"{origin.folder}, which it was loaded "
                             "from, no longer exists", "load the series again and export its results then")
        return read_source_series(origin.folder, image, origin.series_uid)
    if origin.instance_uids:
        if file_for_instance is None:
            raise InputError(f"Cannot find the DICOM files of '{name}'", "it was loaded by Slicer's DICOM module "
                             "and its files are in Slicer's DICOM database, which is not open here",
                             "export from desktop Slicer, or load the series' folder into this scene")
        files = [file_for_instance(uid) for uid in origin.instance_uids]
        missing = [uid for uid, path in zip(origin.instance_uids, files) if not path or not Path(path).is_file()]
        if missing:
            raise InputError(f"Cannot find the DICOM files of '{name}'", f"Slicer's DICOM database has no file "
                             f"for {len(missing)} of its {len(files)} slices", "import the series into the "
                             "DICOM database again (DICOM module) and load it from there")
        return read_source_files(files, image)
    if derived:
        return None
    raise InputError(f"Cannot write DICOM SEG or SR for '{name}'", "the volume was not loaded from a DICOM series "
                     "(it came from a volume file or was made in the scene), so there are no patient, study and "
                     "image UIDs to refer the results to",
                     "load the series' folder (Data panel, or Slicer's DICOM module) and run the module on it; or "
                     f"tick '{DERIVED_OPTION}' to write the volume as a new DICOM series, clearly marked as "
                     "derived, beside the SEG and SR")


def export_to_folder(export: DicomExport, folder: str | os.PathLike, overwrite: bool = False,
                     progress: Optional[ProgressCallback] = None) -> dict[str, Path]:
    """``seg.dcm`` and ``sr.dcm`` (and the derived series' slices, where asked) in ``folder``,
    all of them or none (a manifest lists them); the files by kind. A folder that holds files
    already is refused unless ``overwrite`` (which replaces the whole folder)."""
    report = progress or no_progress
    target = Path(folder).expanduser()
    if not str(folder).strip():
        raise InputError("No folder to export to", "the folder field is empty",
                         "type the folder the SEG and SR should go to (a new one is created)")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise InputError(f"The folder {target} is not empty", "an export writes a folder of its own and never "
                         "mixes its files with others", "choose a new or empty folder, or tick Overwrite to "
                         "replace a folder an earlier export wrote")
    parameters = {"workflow": export.workflow, "volume": export.volume_name, "derived": export.source is None}
    with OutputSet(target, overwrite=overwrite, parameters=parameters,
                   command=f"{export.workflow}: Export to DICOM") as outputs:
        assert outputs.folder is not None
        source = export.source
        if source is None:
            report(0.1, "Writing the volume as a new derived DICOM series")
            source = write_derived_series(export.image, outputs.folder, export.volume_name)
        report(0.4, "Writing the DICOM SEG and SR")
        files = export.write(outputs.folder, source)
        report(0.9, "Moving the files into place")
        return outputs.commit(files)


def pacs_url(environ: Optional[dict] = None) -> Optional[str]:
    """The configured PACS's address, or None when none is (what enables "Send to PACS")."""
    try:
        return pacs_config(environ).address
    except InputError as error:
        if error.what != NO_PACS:  # configured, but wrongly: say why Send is off
            log.warning("Send to PACS is off: %s", error)
        return None


def send_to_pacs(export: DicomExport, config: Optional[PacsConfig] = None,
                 progress: Optional[ProgressCallback] = None) -> dict[str, str]:
    """Store the SEG and SR of ``export`` on the PACS; file name -> "stored" / "already stored".

    The PACS is asked first (down, credentials refused, no answer: one message, nothing
    written or sent); then each object goes in its own request and is looked up afterwards
    (the client's ``store``, DICOMweb or DIMSE: :func:`.pacs.open_pacs`). Cancel stops the
    send up to the first object; once storing began the set is completed. A derived series
    is not sent: its images are not on the PACS, and a SEG there would refer to nothing.
    """
    report = progress or no_progress
    if export.source is None:
        raise InputError(f"Cannot send the results of '{export.volume_name}' to the PACS",
                         "the volume was not loaded from a DICOM series, and a SEG of a derived series would "
                         "refer to images the PACS does not hold", "load the series from the PACS (or its folder) "
                         "and run the module on it; Export to DICOM can still write a derived series")
    report(0.05, "Connecting to the PACS")
    pacs = open_pacs(config)
    study = str(export.source.first.StudyInstanceUID)
    pacs.find_studies({"StudyInstanceUID": study})  # reachable, credentials accepted: before any work
    with tempfile.TemporaryDirectory(prefix="segforge-pacs-") as scratch:
        report(0.15, "Writing the DICOM SEG and SR")
        files = export.write(Path(scratch), export.source)
        outcome: dict[str, str] = {}
        paths = list(files.values())
        for n, path in enumerate(paths):
            message = f"Storing {Path(path).name} on the PACS"
            if n == 0:
                report(0.4, message)  # the last point where a Cancel stops the send
            else:
                _report_regardless(report, 0.4 + 0.55 * n / len(paths), message)
            for stored, state in pacs.store([path]).items():
                outcome[Path(stored).name] = state
    return outcome


def _report_regardless(report: ProgressCallback, fraction: float, message: str) -> None:
    """Progress once storing has begun: the set is completed (a SEG on the PACS without its SR
    helps no one), so a Cancel heard now is not acted on."""
    try:
        report(fraction, message)
    except Cancelled:
        pass


class DicomExportLogic:
    """Export to DICOM and Send to PACS for a module's Logic, the same for the three modules.

    What goes in is the module's: ``dicom_export(volume_node, result, derived, file_for_instance)``
    (its ``dicom_export.py``), a :class:`DicomExport` read from the scene. The work runs in the
    Logic's ``background(work, message)`` job (``WorkerLogic`` makes it: a thread of this
    process, polled by a panel like a worker job).
    """

    dicom_export: Callable[..., DicomExport]
    background: Callable[..., Any]

    def start_export_dicom(self, volume_node: Any, result: Any, folder: str | os.PathLike, derived: bool = False,
                           overwrite: bool = False, file_for_instance: Optional[FileLookup] = None) -> Any:
        """Write the result's DICOM SEG and SR into ``folder`` (all or nothing), in the background.

        The scene is read now (a refusal, e.g. a volume not from a DICOM series, is raised
        here, before any work); the files are written by the returned job. ``derived``
        writes a non-DICOM volume as a new, marked series.
        """
        export = self.dicom_export(volume_node, result, derived, file_for_instance)
        return self.background(lambda progress: export_to_folder(export, folder, overwrite, progress),
                               "Writing the DICOM SEG and SR...")

    def export_dicom(self, volume_node: Any, result: Any, folder: str | os.PathLike, derived: bool = False,
                     overwrite: bool = False, file_for_instance: Optional[FileLookup] = None) -> dict[str, Path]:
        """Blocking :meth:`start_export_dicom` for scripts and the console; the files by kind."""
        return self.start_export_dicom(volume_node, result, folder, derived, overwrite, file_for_instance).wait()

    def start_send_to_pacs(self, volume_node: Any, result: Any,
                           file_for_instance: Optional[FileLookup] = None) -> Any:
        """Store the result's SEG and SR on the configured PACS, in the background; the job's
        result maps each file name to "stored" or "already stored"."""
        export = self.dicom_export(volume_node, result, False, file_for_instance)
        return self.background(lambda progress: send_to_pacs(export, progress=progress), "Sending to the PACS...")

    @staticmethod
    def pacs_url() -> Optional[str]:
        """The configured PACS's address; None when none is (Send to PACS is then off)."""
        return pacs_url()
