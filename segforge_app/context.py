"""What a panel gets to work with: the server's state, the one scene, errors and jobs.

Panels never reach into each other or into the app; they get an :class:`AppContext`. It
shows volumes as Slicer would, turns any failure into the "what / why / what to do"
message the UI shows (the same three sentences the desktop modules and the CLI show),
keeps the list of data nodes in the state, and follows background jobs (:mod:`.jobs`).
"""
from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from segforge.errors import SegForgeError

if TYPE_CHECKING:
    from .jobs import JobTracker

logger = logging.getLogger(__name__)

#: State key of the message shown at the top of the drawer ({"what", "why", "todo"} or None).
ERROR_KEY = "app_error"
#: State key of the data nodes listed in the Data panel ([{"id", "name", "kind"}]).
NODES_KEY = "scene_nodes"
#: State keys of the module results this session made ([{"title", "value"}], newest first), and
#: of the one chosen for Export to DICOM / Send to PACS (the newest, when a result arrives).
#: Results remembered for Export to DICOM / Send to PACS (the newest ones).
KEPT_RESULTS = 10
RESULTS_KEY = "module_results"
RESULT_CHOICE_KEY = "module_result_choice"


@dataclass(frozen=True)
class ModuleResult:
    """A finished module job's result, as its module Logic returned it, and its input volume:
    what the Logic's ``start_export_dicom`` / ``start_send_to_pacs`` take back."""

    module: str  # "SegVessel", "SegOrgan" or "SegInteractive"
    volume_id: Optional[str]
    result: Any
    title: str

#: Node classes listed, with the word the user sees.
_KINDS = (("vtkMRMLLabelMapVolumeNode", "labelmap"), ("vtkMRMLScalarVolumeNode", "volume"),
          ("vtkMRMLSegmentationNode", "segmentation"), ("vtkMRMLMarkupsNode", "markups"),
          ("vtkMRMLModelNode", "model"), ("vtkMRMLTableNode", "table"))


class AppContext:
    """The app's services for panels (one per server, shared by every browser tab)."""

    def __init__(self, server: Any, slicer_app: Any) -> None:
        self.server = server
        self.slicer_app = slicer_app
        self.jobs: "JobTracker | None" = None  # set by the app once the tracker exists
        self.state.setdefault(ERROR_KEY, None)
        self.state.setdefault(NODES_KEY, [])
        self.state.setdefault(RESULTS_KEY, [])
        self.state.setdefault(RESULT_CHOICE_KEY, None)
        #: The module results of this session by id (see :meth:`add_result`).
        self.results: dict[str, ModuleResult] = {}
        self._result_ids = itertools.count(1)

    @property
    def state(self) -> Any:
        return self.server.state

    @property
    def ctrl(self) -> Any:
        return self.server.controller

    @property
    def scene(self) -> Any:
        """The scene the views show; it is also ``slicer.mrmlScene`` for the module Logic."""
        return self.slicer_app.scene

    # -- showing data ---------------------------------------------------------------------------

    def show_volume(self, volume_node: Any, reset_views: bool = True) -> None:
        """Show a volume in the slice views' background, as Slicer does for a newly loaded one."""
        display = self.slicer_app.display_manager
        display.show_volume_in_slice_background(volume_node)
        display.show_volume_in_slice_foreground(None)
        for view in self.slicer_app.view_manager.get_slice_views():
            view.set_visible_in_3d(True)
        if reset_views:
            display.reset_views()

    def refresh_nodes(self) -> None:
        """Put the scene's data nodes into the state (the Data panel lists them)."""
        nodes = []
        for i in range(self.scene.GetNumberOfNodes()):
            node = self.scene.GetNthNode(i)
            kind = next((word for cls, word in _KINDS if node.IsA(cls)), None)
            if kind and not node.GetHideFromEditors():
                nodes.append({"id": node.GetID(), "name": node.GetName(), "kind": kind})
        self.set_state(**{NODES_KEY: nodes})

    def set_state(self, **values: Any) -> None:
        """Set state keys and send them to the page at once, also from outside a UI callback
        (a job's poll, a click in a view); in a callback trame would send them only after it."""
        with self.state:
            for key, value in values.items():
                self.state[key] = value

    def add_result(self, module: str, volume_node: Any, result: Any, title: str) -> str:
        """Remember a module's finished result (the newest is chosen for Export to DICOM); its id."""
        result_id = f"result-{next(self._result_ids)}"
        volume_id = volume_node.GetID() if volume_node is not None else None
        self.results[result_id] = ModuleResult(module, volume_id, result, title)
        # the newest few only: a result holds its masks, and a long session makes many
        for old in list(self.results)[:-KEPT_RESULTS]:
            del self.results[old]
        listed = [{"title": title, "value": result_id}, *(self.state[RESULTS_KEY] or [])][:KEPT_RESULTS]
        self.set_state(**{RESULTS_KEY: listed, RESULT_CHOICE_KEY: result_id})
        return result_id

    # -- errors ---------------------------------------------------------------------------------

    def report_error(self, error: BaseException) -> None:
        """Show ``error`` in the UI: a SegForgeError as its three sentences, anything else as a bug."""
        if isinstance(error, SegForgeError):
            message = {"what": error.what, "why": error.why, "todo": error.todo}
            logger.info("told the user: %s", error.message)
        else:
            logger.exception("unexpected error in the app", exc_info=error)
            message = {"what": f"Something went wrong: {error}", "why": type(error).__name__,
                       "todo": "see the server log; if it happens again, report it with the log"}
        self.set_state(**{ERROR_KEY: message})

    def clear_error(self) -> None:
        self.set_state(**{ERROR_KEY: None})

    def shows_errors(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a UI callback so that its failures appear in the UI instead of only in the log."""
        @functools.wraps(handler)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.clear_error()
            try:
                return handler(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - shown to the user, logged when unexpected
                self.report_error(error)
                return None
        return wrapped
