"""The DICOM panel, beside Save: "Export to DICOM" and "Send to PACS" for a module's result.

Each module panel offers its finished results here (:meth:`AppContext.add_result`); the
user picks one (the newest is chosen), and the buttons call that module's own Logic
(``start_export_dicom`` / ``start_send_to_pacs``, the desktop panels' calls), which decides
what goes into the SEG and SR and refuses a volume that did not come from a DICOM series.
The files are written and sent by a background job (progress and Cancel through the app's
job tracker), so the page never waits. Send to PACS is off where no PACS is configured
(``SEGFORGE_PACS_URL`` or ``~/.config/segforge/pacs.json`` on the server).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from segforge.dicom.scene_export import DERIVED_OPTION, pacs_url
from segforge.errors import InputError

from .context import RESULT_CHOICE_KEY, RESULTS_KEY, ModuleResult
from .jobs import job_progress
from .module_logics import app_module_logic
from .panels import Panel, register_panel

if TYPE_CHECKING:
    from .context import AppContext

KEY = "dicom"
FOLDER_KEY = "dicom_folder"
DERIVED_KEY = "dicom_derived"
OVERWRITE_KEY = "dicom_overwrite"
MESSAGE_KEY = "dicom_message"
#: The configured PACS's address ("" where none is: Send to PACS is off).
PACS_KEY = "dicom_pacs_url"
#: How many exports and sends have finished (a test tells a new message from the last by it).
DONE_KEY = "dicom_done"


class DicomPanel:
    """Callbacks of the DICOM panel, bound to one :class:`AppContext`."""

    def __init__(self, context: "AppContext", folder: Optional[Path] = None) -> None:
        self.context = context
        self.folder = folder or Path.cwd()
        for key, value in ((FOLDER_KEY, str(self.folder / "dicom_results")), (DERIVED_KEY, False),
                           (OVERWRITE_KEY, False), (MESSAGE_KEY, ""), (DONE_KEY, 0)):
            context.state.setdefault(key, value)
        self.refresh_pacs()

    @property
    def state(self) -> Any:
        return self.context.state

    def refresh_pacs(self) -> None:
        """Look the PACS configuration up again (it is read from the server's environment and file)."""
        self.context.set_state(**{PACS_KEY: pacs_url() or ""})

    def _chosen(self) -> tuple[ModuleResult, Any, Any]:
        """The chosen result, its module Logic and its input volume node (None when gone)."""
        entry = self.context.results.get(self.state[RESULT_CHOICE_KEY] or "")
        if entry is None:
            raise InputError("No result chosen", "the DICOM panel exports a module's result, and none is chosen",
                             "run SegVessel, SegOrgan or SegInteractive first, then choose its result here")
        volume = self.context.scene.GetNodeByID(entry.volume_id) if entry.volume_id else None
        return entry, app_module_logic(entry.module), volume

    def _folder(self) -> Path:
        text = str(self.state[FOLDER_KEY] or "").strip()
        if not text:
            raise InputError("No folder to export to", "the folder field is empty",
                             f"type a folder on the server for the SEG and SR, e.g. {self.folder / 'dicom_results'}")
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.folder / path

    def export(self) -> None:
        if self.context.jobs.is_running(KEY):
            return
        entry, logic, volume = self._chosen()
        folder = self._folder()
        self.state[MESSAGE_KEY] = ""
        job = logic.start_export_dicom(volume, entry.result, folder, derived=bool(self.state[DERIVED_KEY]),
                                       overwrite=bool(self.state[OVERWRITE_KEY]))
        self.context.jobs.start(KEY, job, lambda files: self._exported(entry, files))

    def _exported(self, entry: ModuleResult, files: dict) -> None:
        names = ", ".join(sorted(Path(path).name for path in files.values()))
        folder = Path(next(iter(files.values()))).parent
        self._say(f"Exported {entry.title} to {folder}: {names}")

    def send(self) -> None:
        if self.context.jobs.is_running(KEY):
            return
        self.refresh_pacs()
        entry, logic, volume = self._chosen()
        self.state[MESSAGE_KEY] = ""
        job = logic.start_send_to_pacs(volume, entry.result)
        self.context.jobs.start(KEY, job, lambda outcome: self._sent(entry, outcome))

    def _sent(self, entry: ModuleResult, outcome: dict) -> None:
        parts = ", ".join(f"{name} {state}" for name, state in outcome.items())
        self._say(f"Sent {entry.title} to the PACS at {self.state[PACS_KEY]}: {parts}")

    def _say(self, message: str) -> None:
        self.context.set_state(**{MESSAGE_KEY: message, DONE_KEY: int(self.state[DONE_KEY] or 0) + 1})

    def cancel(self) -> None:
        self.context.jobs.cancel(KEY)


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3

    panel = DicomPanel(context)
    running = f"job_{KEY} && job_{KEY}.running"
    v3.VSelect(v_model=(RESULT_CHOICE_KEY,), items=(RESULTS_KEY,), label="Result", density="compact",
               hide_details="auto", no_data_text="No result yet: run a module first", classes="mb-2",
               raw_attrs=['data-testid="dicom-result"'])
    v3.VTextField(v_model=(FOLDER_KEY,), label="Folder on the server", density="compact", hide_details="auto",
                  hint="a new or empty folder: seg.dcm, sr.dcm and a manifest", persistent_hint=True,
                  raw_attrs=['data-testid="dicom-folder"'])
    v3.VCheckbox(v_model=(DERIVED_KEY,), label=f"{DERIVED_OPTION} (for a volume not from DICOM)",
                 density="compact", hide_details=True, raw_attrs=['data-testid="dicom-derived"'])
    v3.VCheckbox(v_model=(OVERWRITE_KEY,), label="Overwrite an earlier export", density="compact",
                 hide_details=True, raw_attrs=['data-testid="dicom-overwrite"'])
    with html.Div(classes="d-flex my-2"):
        v3.VBtn("Export to DICOM", click=context.shows_errors(panel.export), classes="flex-grow-1 mr-2",
                prepend_icon="mdi-file-export", disabled=(running,), raw_attrs=['data-testid="dicom-export"'])
        v3.VBtn("Send to PACS", click=context.shows_errors(panel.send), prepend_icon="mdi-upload-network",
                disabled=(f"!{PACS_KEY} || ({running})",), raw_attrs=['data-testid="dicom-send"'])
    html.Div("No PACS configured: set SEGFORGE_PACS_URL (or ~/.config/segforge/pacs.json) where the server runs.",
             v_if=(f"!{PACS_KEY}",), classes="text-caption", raw_attrs=['data-testid="dicom-no-pacs"'])
    with html.Div(raw_attrs=['data-testid="dicom-job"']):
        job_progress(context.state, KEY, on_cancel=panel.cancel)
    html.Div(f"{{{{ {MESSAGE_KEY} }}}}", v_if=(MESSAGE_KEY,), classes="text-caption",
             raw_attrs=['data-testid="dicom-message"', f':data-done="{DONE_KEY}"'])


register_panel(Panel(id=KEY, title="DICOM", build=build, order=95))
