"""The three modules' self-tests of Export to DICOM, written once (each module's result differs,
the check does not)."""
from __future__ import annotations

import pathlib
import tempfile
from typing import Any

import slicer

from segforge.errors import InputError


def check_dicom_export(test: Any, logic: Any, volume_node: Any, result: Any, widget_name: str) -> None:
    """Export to DICOM through the Logic (the panels' call): a volume made in the scene is refused in
    one line naming the derived-series option; with it, seg.dcm, sr.dcm and a derived series are
    written, all at once. Then the panel has its DICOM section, Send to PACS off where no PACS is
    configured. ``test`` is the module's ScriptedLoadableModuleTest (its assertions report)."""
    folder = pathlib.Path(tempfile.mkdtemp()) / "dicom"
    with test.assertRaises(InputError) as refused:
        logic.start_export_dicom(volume_node, result, folder)
    test.assertIn("New derived series", refused.exception.message)
    test.assertFalse(folder.exists(), "a refused export wrote something")
    files = logic.export_dicom(volume_node, result, folder, derived=True)
    test.assertTrue(files["dicom_seg"].is_file() and files["dicom_sr"].is_file())
    test.assertTrue(any(folder.glob("derived_ct_*.dcm")), "no derived series beside the SEG")
    widget = getattr(slicer.modules, widget_name).widgetRepresentation().self()
    test.assertIsNotNone(widget._dicom, "the panel has no DICOM section")
    widget._dicom.refresh()
    if logic.pacs_url() is None:
        test.assertFalse(widget._dicom.sendButton.enabled, "Send to PACS is on with no PACS configured")
