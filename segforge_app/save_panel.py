"""The Save panel: write a node (or the whole scene) to a file on the server, then download it.

Results of the module panels live in the server's scene; this panel writes them in
Slicer's formats through :mod:`segforge.mrml.storage` (``save_node``, ``save_scene_bundle``:
the same code as the desktop modules and the CLI), so a saved file opens in 3D Slicer.
The default file name follows the node's kind; an existing file is only replaced after
the user says so; Download sends the file just saved to the browser.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from segforge.errors import InputError
from segforge.mrml import save_node, save_scene_bundle

from .context import NODES_KEY
from .data_loading import MODEL_SUFFIXES, TABLE_SUFFIXES, VOLUME_SUFFIXES
from .panels import Panel, register_panel

if TYPE_CHECKING:
    from .context import AppContext

NODE_KEY = "save_node_id"
PATH_KEY = "save_path"
MESSAGE_KEY = "save_message"
#: The path waiting for "Overwrite" (None: no question asked).
OVERWRITE_KEY = "save_overwrite"
#: The file name of the last file saved (None: nothing to download yet).
DOWNLOAD_KEY = "save_download_name"
DOWNLOAD_TRIGGER = "segforge_save_download"

#: The select's value for "the whole scene".
SCENE = "__scene__"
SCENE_TITLE = "Whole scene (.mrb)"

#: File endings each kind of node can be written as, the default first: those the Data panel reads back.
EXTENSIONS = {
    "segmentation": (".seg.nrrd",),
    "markups": (".mrk.json",),
    "model": MODEL_SUFFIXES,
    "table": TABLE_SUFFIXES,
    "volume": VOLUME_SUFFIXES,
    "labelmap": VOLUME_SUFFIXES,
    "scene": (".mrb",),
}


def default_extension(kind: str) -> str:
    return EXTENSIONS[kind][0]


def _ending(path: Path, kind: str) -> Optional[str]:
    """The allowed ending ``path`` has for ``kind`` (None when it has none of them)."""
    name = path.name.lower()
    if kind != "segmentation" and name.endswith(".seg.nrrd"):
        return None  # would read back as a segmentation, not as what was saved
    return next((ending for ending in EXTENSIONS[kind] if name.endswith(ending)), None)


def _file_name(node_name: str) -> str:
    """A node name made safe as a file name (no folders, never empty)."""
    cleaned = "".join("_" if ch in '/\\:*?"<>|\0' else ch for ch in node_name).strip(" .")
    return cleaned or "node"


class SavePanel:
    """Callbacks of the Save panel, bound to one :class:`AppContext`."""

    def __init__(self, context: "AppContext", folder: Optional[Path] = None) -> None:
        self.context = context
        self.folder = folder or Path.cwd()
        self.last_saved: Optional[Path] = None  # what Download sends: never a path from the browser
        for key, value in ((NODE_KEY, None), (PATH_KEY, ""), (MESSAGE_KEY, ""), (OVERWRITE_KEY, None),
                           (DOWNLOAD_KEY, None)):
            context.state.setdefault(key, value)

    # -- choosing ---------------------------------------------------------------------------

    def _chosen(self) -> tuple[str, str, Optional[Any]]:
        """(label, kind, node) of the select's choice; node is None for the whole scene."""
        choice = self.context.state[NODE_KEY]
        if not choice:
            raise InputError("Nothing chosen to save", "no node is selected in the Save panel",
                             f"choose a node, or '{SCENE_TITLE}', in the list above the path")
        if choice == SCENE:
            return "the whole scene", "scene", None
        node = self.context.scene.GetNodeByID(choice)
        entry = next((n for n in self.context.state[NODES_KEY] or [] if n["id"] == choice), None)
        if node is None or entry is None:
            raise InputError("The chosen node is no longer in the scene", "it may have been deleted",
                             "choose it again in the list")
        return node.GetName(), entry["kind"], node

    def default_path(self, choice: Optional[str]) -> str:
        """``<folder>/<node name><default extension>``; the folder of the current path when it exists."""
        if not choice:
            return ""
        current = str(self.context.state[PATH_KEY] or "").strip()
        folder = Path(current).expanduser().parent if current else self.folder
        if not folder.is_absolute() or not folder.is_dir():
            folder = self.folder
        if choice == SCENE:
            return str(folder / f"scene{default_extension('scene')}")
        entry = next((n for n in self.context.state[NODES_KEY] or [] if n["id"] == choice), None)
        if entry is None:
            return current
        return str(folder / f"{_file_name(entry['name'])}{default_extension(entry['kind'])}")

    def on_choice(self, **_: Any) -> None:
        state = self.context.state
        state[PATH_KEY] = self.default_path(state[NODE_KEY])
        state[OVERWRITE_KEY] = None
        state[MESSAGE_KEY] = ""

    # -- saving -----------------------------------------------------------------------------

    def _target(self, kind: str) -> Path:
        text = str(self.context.state[PATH_KEY] or "").strip()
        if not text:
            raise InputError("No path to save to", "the path field is empty",
                             "type where to write the file on the server, e.g. "
                             f"{self.folder / ('name' + default_extension(kind))}")
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = self.folder / path
        if _ending(path, kind) is None:
            wanted = ", ".join(EXTENSIONS[kind])
            raise InputError(f"Cannot save a {kind} as {path.name}", f"a {kind} is written as {wanted}",
                             f"end the file name with {default_extension(kind)}")
        if not path.parent.is_dir():
            raise InputError(f"No folder {path.parent} on the server",
                             "the file's folder does not exist (or is not a folder)",
                             f"create the folder first, or save into an existing one such as {self.folder}")
        if path.is_dir():
            raise InputError(f"{path} is a folder", "a file cannot replace a folder", "give a file name")
        return path

    def save(self, overwrite: bool = False) -> None:
        state = self.context.state
        state[MESSAGE_KEY] = ""
        label, kind, node = self._chosen()
        path = self._target(kind)
        if path.exists() and not (overwrite and state[OVERWRITE_KEY] == str(path)):
            state[OVERWRITE_KEY] = str(path)  # ask; "Overwrite" saves again with overwrite=True
            return
        state[OVERWRITE_KEY] = None
        if node is None:
            written = save_scene_bundle(path, self.context.scene)
        else:
            written = save_node(node, path)
        self.last_saved = written
        state[DOWNLOAD_KEY] = written.name
        state[MESSAGE_KEY] = f"Saved {label} to {written}"
        self.context.refresh_nodes()  # saving adds storage nodes only, but names may have been edited

    def overwrite(self) -> None:
        self.save(overwrite=True)

    def keep_existing(self) -> None:
        self.context.state[OVERWRITE_KEY] = None
        self.context.state[MESSAGE_KEY] = "Not saved: the existing file was kept; change the path to save."

    def download(self) -> Any:
        """The bytes of the file saved last, as a websocket attachment (None after an error)."""
        if self.last_saved is None:
            raise InputError("Nothing to download yet", "no file was saved in this session",
                             "save a node first, then click Download")
        if not self.last_saved.is_file():
            raise InputError(f"{self.last_saved} is gone", "the file was moved or deleted after saving",
                             "save it again")
        return self.context.server.protocol.addAttachment(self.last_saved.read_bytes())


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3

    panel = SavePanel(context)
    context.state.change(NODE_KEY)(context.shows_errors(panel.on_choice))
    context.state.change(PATH_KEY)(lambda **_: context.state.update({OVERWRITE_KEY: None}))
    context.ctrl.trigger(DOWNLOAD_TRIGGER)(context.shows_errors(panel.download))

    items = (f"[...{NODES_KEY}.map(n => ({{title: n.name, value: n.id}})), "
             f"{{title: '{SCENE_TITLE}', value: '{SCENE}'}}]")
    v3.VSelect(v_model=(NODE_KEY,), items=(items,), label="What to save", density="compact",
               hide_details=True, classes="mb-2", raw_attrs=['data-testid="save-node"'])
    v3.VTextField(v_model=(PATH_KEY,), label="File on the server", density="compact", hide_details="auto",
                  hint=".seg.nrrd, .mrk.json, .vtp, .csv, .nrrd/.nii.gz or .mrb (by what is saved)",
                  persistent_hint=True, clearable=True, raw_attrs=['data-testid="save-path"'])
    with v3.VAlert(v_if=(OVERWRITE_KEY,), type="warning", density="compact", classes="my-2",
                   raw_attrs=['data-testid="save-overwrite-question"']):
        html.Div(f"{{{{ {OVERWRITE_KEY} }}}} already exists. Replace it, or change the path and save again.")
        with html.Div(classes="d-flex mt-1"):
            v3.VBtn("Overwrite", size="small", color="warning", classes="mr-2",
                    click=context.shows_errors(panel.overwrite), raw_attrs=['data-testid="save-overwrite"'])
            v3.VBtn("Keep it", size="small", variant="outlined",
                    click=context.shows_errors(panel.keep_existing), raw_attrs=['data-testid="save-keep"'])
    with html.Div(classes="d-flex my-2"):
        v3.VBtn("Save", click=context.shows_errors(panel.save), classes="flex-grow-1 mr-2",
                prepend_icon="mdi-content-save", raw_attrs=['data-testid="save-button"'])
        v3.VBtn("Download", disabled=(f"!{DOWNLOAD_KEY}",), prepend_icon="mdi-download",
                click=(f"trigger('{DOWNLOAD_TRIGGER}').then(data => data && "
                       f"utils.download({DOWNLOAD_KEY}, data, 'application/octet-stream'))"),
                raw_attrs=['data-testid="save-download"'])
    html.Div(f"{{{{ {MESSAGE_KEY} }}}}", v_if=(MESSAGE_KEY,), classes="text-caption",
             raw_attrs=['data-testid="save-message"'])


register_panel(Panel(id="save", title="Save", build=build, order=90))
