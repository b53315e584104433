"""The SegForge web app: trame server, slice and 3D views, and the drawer of panels.

Built on trame-slicer's pieces (its Slicer application, remote-rendered views and layout
manager) with SegForge's own page: a left drawer holding one panel per entry of
:mod:`.panels` (Data first; the three module panels plug in there), the four-up layout of
axial, sagittal, coronal and 3D views, and one message area for errors. The page is
served by trame's aiohttp server, rendering happens on the server (VTK with EGL or Mesa),
and the browser only receives images.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from .auth import install_secret_gate, is_loopback, resolve_token
from .context import ERROR_KEY, AppContext
from .jobs import JobTracker
from .listen import listen_error
from .panels import registered_panels

logger = logging.getLogger(__name__)

#: The layout the page opens with: axial, sagittal, coronal and 3D (Slicer's "Four-Up").
DEFAULT_LAYOUT = "Quad View"


class SegForgeApp:
    """One trame server, one Slicer scene, the views and the panels."""

    def __init__(self, server: Any = None, data: Iterable[str | Path] = ()) -> None:
        # No X server on a headless machine: ask VTK for EGL directly instead of failing over.
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager

        from .slicer_scene import create_slicer_app
        from .views import register_view_factories

        self.server = get_server(server, client_type="vue3")
        self.server.enable_module(trame_slicer_module)  # the chunked upload script
        self.slicer_app, self.headless = create_slicer_app()
        # The data first, views after: a file that cannot be read is refused in one line before
        # VTK builds the views (trame-slicer's views print VTK deprecation warnings as they are made).
        initial = self._load_initial(list(data))
        register_view_factories(self.slicer_app, self.server)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.layout_manager.set_layout(DEFAULT_LAYOUT)

        self.context = AppContext(self.server, self.slicer_app)
        self.context.jobs = JobTracker(self.context)
        self.server.state.trame__title = "SegForge"
        self._build_ui()
        self._show_initial(initial)

    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import VAppLayout
        from trame.widgets import html, vuetify3 as v3
        from trame_slicer.app.ui.flex_container import FlexContainer

        state = self.server.state
        state.setdefault("layout_id", DEFAULT_LAYOUT)
        state.change("layout_id")(lambda layout_id, **_: self.layout_manager.set_layout(layout_id))
        with VAppLayout(self.server, full_height=True, theme="dark") as self.ui:
            with v3.VAppBar(density="compact"):
                v3.VAppBarNavIcon(click="drawer_open = !drawer_open")
                v3.VToolbarTitle("SegForge", raw_attrs=['data-testid="app-title"'])
                v3.VSpacer()
                v3.VSelect(v_model=("layout_id",), items=("layout_ids", self.layout_manager.get_layout_ids()),
                           density="compact", hide_details=True, max_width=200, variant="outlined",
                           raw_attrs=['data-testid="layout-select"'])
                v3.VProgressCircular(indeterminate=("!!trame__busy",), size=20, width=3, classes="mx-3")
            with v3.VNavigationDrawer(v_model=("drawer_open", True), width=360, permanent=True):
                with v3.VAlert(v_if=(ERROR_KEY,), type="error", closable=True, density="compact",
                               classes="ma-2", click_close=f"{ERROR_KEY} = null",
                               raw_attrs=['data-testid="app-error"']):
                    html.Div(f"{{{{ {ERROR_KEY}.what }}}}", classes="font-weight-bold")
                    html.Div(f"{{{{ {ERROR_KEY}.why }}}}")
                    html.Div(f"{{{{ {ERROR_KEY}.todo }}}}", classes="font-italic")
                with v3.VExpansionPanels(v_model=("open_panels", ["data"]), multiple=True, variant="accordion"):
                    for panel in registered_panels():
                        with v3.VExpansionPanel(value=panel.id, raw_attrs=[f'data-testid="panel-{panel.id}"']):
                            v3.VExpansionPanelTitle(panel.title)
                            with v3.VExpansionPanelText():
                                panel.build(self.context)
            with v3.VMain(), FlexContainer(row=True, fill_height=True, style="height: 100%;"):
                self.layout_manager.initialize_layout_grid(self.ui)

    def _load_initial(self, paths: list[str | Path]) -> Any:
        from .data_loading import load_paths

        started = time.perf_counter()
        loaded = load_paths(paths, self.slicer_app.scene)
        logger.info("loaded %d node(s) in %.2f s", len(loaded.nodes), time.perf_counter() - started)
        return loaded

    def _show_initial(self, loaded: Any) -> None:
        if loaded.volumes:
            self.context.show_volume(loaded.volumes[0])
        self.context.refresh_nodes()


def run(host: str = "127.0.0.1", port: int = 8080, data: Optional[Iterable[str | Path]] = None,
        token: Optional[str] = None) -> None:
    """Start the app (blocking) and print its URL once it listens.

    ``data`` defaults to the project's sample volume. Beyond loopback a ``token`` is required
    (:func:`.auth.resolve_token`); it is checked before anything is built.
    """
    secret = resolve_token(host, token)
    if data is None:
        from .sample_data import default_data

        data = default_data()
    app = SegForgeApp(data=data)
    server = app.server

    def announce(**_: Any) -> None:
        shown_host = host if ":" not in host else f"[{host}]"
        print(f"SegForge app ready: http://{shown_host}:{server.port}/index.html?secret={secret}", flush=True)
        if not is_loopback(host):
            print("Listening beyond loopback without TLS: put it behind an HTTPS proxy on shared networks.",
                  flush=True)

    server.controller.on_server_ready.add(announce)
    # Every HTTP request (the page, its scripts, the websocket) needs the secret (auth.secret_gate).
    server.controller.on_server_bind.add(lambda web_server: install_secret_gate(web_server, secret))
    # trame reads its own options (the websocket secret among them) from sys.argv; hand it
    # only those, so that segforge's arguments are not parsed a second time.
    sys.argv = [sys.argv[0], f"--authKey={secret}"]  # "=": a random secret may start with "-"
    try:
        server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0)
    except OSError as error:  # taken since check_can_listen (segforge app checks before building)
        raise listen_error(host, port, error) from error
