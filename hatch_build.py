"""Build hook: an editable install (``make venv``) links the module Logic packages instead of
copying them.

The wheel ships SegVesselLib, SegOrganLib and SegInteractiveLib at the top level through
``force-include``; hatchling copies forced files into editable installs too, where the
copies would go stale as soon as the checkout changes (and, being in site-packages, shadow
it). For an editable install only the model catalog is forced; ``dev-mode-dirs`` puts the
module folders themselves on ``sys.path``.
"""
from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableLinksModuleLogic(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            build_data["force_include_editable"] = {"Resources/Models": "segforge/resources/Models"}
