"""The Data panel: load from a path on the server or upload from the browser; list the data.

Server-side paths are what a remote GPU box needs (the data is already there, and volumes
do not cross the network twice); uploads are for data on the user's own computer. Both
end in :mod:`.data_loading`. The first volume loaded is shown, as in Slicer; clicking a
volume in the list shows it instead.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .data_loading import Loaded, load_path, load_uploaded_folder
from .panels import Panel, register_panel
from .results import shown_volume_id
from .sample_data import available_samples

if TYPE_CHECKING:
    from .context import AppContext

PATH_KEY = "data_path"
#: State key of the 3D volume rendering preset (Slicer's preset names) and its "none" value.
VR_KEY, VR_OFF = "volume_rendering", "Off"
#: The presets offered first (the rest of Slicer's follow): bone and vessels for CT, MR angiography.
VR_PRESETS = ("CT-Bone", "CT-AAA", "CT-Chest-Contrast-Enhanced", "CT-Soft-Tissue", "MR-Angio", "MR-Default")


class DataPanel:
    """Callbacks of the Data panel, bound to one :class:`AppContext`."""

    def __init__(self, context: "AppContext") -> None:
        self.context = context
        self._kept_series: Optional[Path] = None  # see _series_folder
        context.state.setdefault(PATH_KEY, "")
        context.state.setdefault(VR_KEY, VR_OFF)
        context.state.change(VR_KEY)(lambda **values: context.shows_errors(self.set_volume_rendering)(values[VR_KEY]))

    def load_server_path(self) -> None:
        path = str(self.context.state[PATH_KEY] or "").strip()
        if not path:
            from segforge.errors import InputError

            raise InputError("No path given", "the path field is empty",
                             "type the path of a file or DICOM folder on the server")
        self._show(load_path(path, self.context.scene))

    def load_uploaded(self, files: list[dict]) -> None:
        """Write the browser's files into a private temporary folder, then load them."""
        from trame.app.file_upload import ClientFile

        with tempfile.TemporaryDirectory(prefix="segforge-upload-") as folder:
            for file in files:
                client_file = ClientFile(file)
                upload_target(Path(folder), client_file.name).write_bytes(client_file.content)
            self._show(load_uploaded_folder(Path(folder), self.context.scene, self._series_folder()))

    def _series_folder(self) -> Path:
        """Where uploaded DICOM series are kept while the app runs (what their SEG and SR refer to)."""
        if self._kept_series is None:
            self._kept_series = Path(tempfile.mkdtemp(prefix="segforge-app-series-"))
            atexit.register(shutil.rmtree, self._kept_series, True)
        return self._kept_series

    def load_sample(self, sample_id: str) -> None:
        sample = next(sample for sample in available_samples() if sample.id == sample_id)
        self._show(load_path(sample.path, self.context.scene))

    def set_volume_rendering(self, preset: str) -> None:
        """Volume rendering of the shown volume in 3D with Slicer's ``preset``, or none (``VR_OFF``)."""
        volume = self.context.scene.GetNodeByID(shown_volume_id(self.context) or "")
        rendering = self.context.slicer_app.volume_rendering
        if preset == VR_OFF or not preset:
            display = rendering.get_vr_display_node(volume) if volume is not None else None
            if display is not None:
                display.SetVisibility(False)
            return
        if volume is None:
            from segforge.errors import InputError

            raise InputError("No volume to render", "the slice views show no volume",
                             "load a volume (or click one in the list), then choose the rendering")
        self.context.slicer_app.display_manager.show_volume(volume, vr_preset=preset)

    def show_node(self, node_id: str) -> None:
        node = self.context.scene.GetNodeByID(node_id)
        if node is not None and node.IsA("vtkMRMLScalarVolumeNode"):
            self.context.show_volume(node)

    def _show(self, loaded: Loaded) -> None:
        if loaded.volumes:
            self.context.show_volume(loaded.volumes[0])
        self.context.refresh_nodes()


def upload_target(folder: Path, client_name: str) -> Path:
    """Where an uploaded file is written: its base name only (a client-sent "../x" must not write
    outside the folder), made unique, since a folder upload flattens its subfolders and two
    series' "IM0001" would otherwise overwrite each other, one slice silently lost."""
    name = Path(str(client_name).replace("\\", "/")).name or "upload"
    if name in (".", ".."):
        name = "upload"
    target, number = folder / name, 1
    while target.exists():
        number += 1
        target = folder / f"{number}-{name}"  # the ending stays: ct.nii.gz -> 2-ct.nii.gz
    return target


def build(context: "AppContext") -> None:
    from trame.widgets import html, vuetify3 as v3
    from trame_server.utils.typed_state import TypedState
    from trame_slicer.app.ui.load_volume_ui import LoadVolumeButton, LoadVolumeItemsState

    panel = DataPanel(context)
    v3.VTextField(v_model=(PATH_KEY,), label="Path on the server", density="compact", hide_details="auto",
                  # Always shown: a hint appearing on focus moves the Load button under the pointer.
                  hint="NIfTI, NRRD, MHA, .seg.nrrd, .mrk.json, .mrb or a DICOM folder", persistent_hint=True,
                  clearable=True, raw_attrs=['data-testid="data-path"'])
    v3.VBtn("Load", click=context.shows_errors(panel.load_server_path), block=True, classes="my-2",
            prepend_icon="mdi-folder-open", raw_attrs=['data-testid="data-load"'])
    with html.Div(classes="d-flex align-center"):
        html.Span("Upload:", classes="text-caption mr-2")
        # trame-slicer's chunked upload button (files, or a whole folder for a DICOM series).
        for name, is_folder, icon in (("Upload files", False, "mdi-file-upload"),
                                      ("Upload a DICOM folder", True, "mdi-folder-upload")):
            button = LoadVolumeButton(name=name, load_directory=is_folder, icon=icon,
                                      typed_state=TypedState(context.state, LoadVolumeItemsState,
                                                             namespace=f"upload_{int(is_folder)}"))
            button.on_load_volume.connect(context.shows_errors(panel.load_uploaded))
    samples = available_samples()
    if samples:
        html.Div("Sample data:", classes="text-caption mt-2")
        for sample in samples:
            v3.VChip(sample.title, size="small", classes="ma-1", prepend_icon="mdi-download",
                     title=f"{sample.path.name}: for {sample.use}",
                     click=(context.shows_errors(panel.load_sample), f"['{sample.id}']"),
                     raw_attrs=[f'data-testid="sample-{sample.id}"'])
    presets = context.slicer_app.volume_rendering.preset_names()
    v3.VSelect(v_model=(VR_KEY,), label="Volume rendering in 3D (shown volume)", density="compact",
               hide_details=True, classes="mt-3",
               items=("vr_presets", [VR_OFF, *[name for name in VR_PRESETS if name in presets],
                                     *[name for name in presets if name not in VR_PRESETS and "-" in name]]),
               raw_attrs=['data-testid="volume-rendering"'])
    v3.VDivider(classes="my-2")
    with v3.VList(density="compact", raw_attrs=['data-testid="scene-nodes"']):
        v3.VListItem(v_for="node in scene_nodes", key="node.id", title=("node.name",), subtitle=("node.kind",),
                     click=(context.shows_errors(panel.show_node), "[node.id]"))


register_panel(Panel(id="data", title="Data", build=build, order=0))
