"""Curves of a table as a Slicer plot chart: a vtkMRMLPlotChartNode with one
vtkMRMLPlotSeriesNode per curve, each reading two columns of a table node.

What Slicer's Plots module and its plot views show; the chart, its series and tables are
ordinary scene nodes, saved with the scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .scene import get_scene


@dataclass(frozen=True)
class Series:
    """One curve: ``y_column`` against ``x_column`` of ``table`` (a table node)."""

    table: Any
    x_column: str
    y_column: str
    name: str
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    line_width: float = 2.0
    markers_only: bool = False


def plot_chart(series: Sequence[Series], name: str, *, title: str = "", x_title: str = "", y_title: str = "",
               scene: Optional[Any] = None) -> Any:
    """A new plot chart node showing ``series`` (a scatter series per curve, lines unless
    ``markers_only``)."""
    scene = scene or get_scene()
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.SetTitle(title or name)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    for curve in series:
        node = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(curve.name))
        node.SetAndObserveTableNodeID(curve.table.GetID())
        node.SetXColumnName(curve.x_column)
        node.SetYColumnName(curve.y_column)
        node.SetPlotType(node.PlotTypeScatter)
        node.SetColor(*curve.color)
        node.SetLineWidth(curve.line_width)
        if curve.markers_only:
            node.SetLineStyle(node.LineStyleNone)
            node.SetMarkerStyle(node.MarkerStyleDiamond)
            node.SetMarkerSize(10)
        else:
            node.SetMarkerStyle(node.MarkerStyleNone)
        chart.AddAndObservePlotSeriesNodeID(node.GetID())
    return chart


def chart_series(chart: Any) -> list[Any]:
    """The series nodes of a chart, in order."""
    scene = chart.GetScene()
    return [scene.GetNodeByID(chart.GetNthPlotSeriesNodeID(n)) for n in range(chart.GetNumberOfPlotSeriesNodes())]
