"""Offscreen VTK chart views and their PNG bytes: the diameter plot and the training curve.

Why one place: both draw VTK charts without a screen (the CLI, the worker, tests) and hand
back PNG bytes; the view's offscreen setup and the grab from its render window are the same
steps, and a fix to either (a driver that needs the back buffer, a size) belongs to both.

VTK is imported when this module is, not when a picture is drawn: the pictures are drawn while
a result set is being written, and a Ctrl-C landing inside the import of VTK's native modules
can crash the interpreter (a segmentation fault, leaving the temporary folder behind). Every
writer imports this module before its output set opens, so no native import runs then.
"""
from __future__ import annotations

from typing import Any

import vtk


def offscreen_view(width_px: int, height_px: int) -> Any:
    """A ``vtkContextView`` rendering offscreen on white, ``width_px`` x ``height_px``."""
    view = vtk.vtkContextView()
    window = view.GetRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(width_px, height_px)
    view.GetRenderer().SetBackground(1.0, 1.0, 1.0)
    return view


def view_png(view: Any) -> bytes:
    """Render ``view`` and return its picture as PNG bytes; the window is released after."""
    window = view.GetRenderWindow()
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetWriteToMemory(1)
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    png = bytes(memoryview(writer.GetResult()))
    window.Finalize()
    return png
