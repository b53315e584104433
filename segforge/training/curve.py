"""The training curve in the run folder: ``curve.csv`` (every step's loss, the validation Dice
where it was measured) and ``curve.png`` (both against the step).

Why both: the CSV is what a person plots or compares between runs; the PNG is what a panel
shows beside the run. Each is written under a temporary name and renamed, so a reader never
sees half a file; the CSV after every checkpoint (a cancelled run keeps its curve), the PNG when
the run has finished (not on Cancel, which must land at once). Drawn by VTK's charts off
screen, as the diameter plot is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..chart_png import offscreen_view, view_png
from ..csv_table import write_csv
from ..output_set import replace_file

CURVE_CSV = "curve.csv"
CURVE_PNG = "curve.png"
COLUMNS = ("step", "loss", "validation_dice")


def curve_rows(record: Any) -> list[dict[str, Any]]:
    """One row per step: its loss, and the validation Dice measured after it (None elsewhere)."""
    dice = {int(step): float(value) for step, value in record.validation}
    return [{"step": n, "loss": float(loss), "validation_dice": dice.get(n)}
            for n, loss in enumerate(record.losses, start=1)]


def write_curve_csv(record: Any, folder: Path) -> Path:
    """``folder/curve.csv`` from a :class:`~segforge.training.train.TrainingRecord`, atomically."""
    return replace_file(Path(folder) / CURVE_CSV, lambda partial: write_csv(partial, COLUMNS, curve_rows(record)))


def write_curve_png(record: Any, folder: Path) -> Path:
    """``folder/curve.png``: loss (red) and validation Dice (blue points and line) per step."""
    import vtk

    verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)  # no "bad X server" warning headless
    try:
        picture = _draw(record)
    finally:
        vtk.vtkLogger.SetStderrVerbosity(verbosity)
    return replace_file(Path(folder) / CURVE_PNG, lambda partial: partial.write_bytes(picture))


def _table(columns: dict[str, np.ndarray]) -> Any:
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk

    table = vtk.vtkTable()
    for name, values in columns.items():
        column = numpy_to_vtk(np.asarray(values, np.float64), deep=True)
        column.SetName(name)
        table.AddColumn(column)
    return table


def _draw(record: Any) -> bytes:
    import vtk

    view = offscreen_view(700, 360)
    chart = vtk.vtkChartXY()
    view.GetScene().AddItem(chart)
    chart.SetTitle(f"Training: {len(record.losses)} steps")
    chart.SetShowLegend(True)
    keep = []
    if len(record.losses) > 1:  # VTK cannot draw a line through one point
        steps = np.arange(1, len(record.losses) + 1)
        keep.append(_table({"step": steps, "loss": np.asarray(record.losses)}))
        line = chart.AddPlot(vtk.vtkChart.LINE)
        line.SetInputData(keep[-1], 0, 1)
        line.SetColor(200, 30, 30, 255)
    if record.validation:
        steps, dice = zip(*record.validation)
        keep.append(_table({"step": np.asarray(steps), "validation Dice": np.asarray(dice)}))
        for kind in (vtk.vtkChart.LINE, vtk.vtkChart.POINTS) if len(steps) > 1 else (vtk.vtkChart.POINTS,):
            plot = chart.AddPlot(kind)
            plot.SetInputData(keep[-1], 0, 1)
            plot.SetColor(40, 70, 200, 255)
    chart.GetAxis(vtk.vtkAxis.BOTTOM).SetTitle("step")
    chart.GetAxis(vtk.vtkAxis.LEFT).SetTitle("loss / Dice")
    return view_png(view)
