"""The diameter along each branch as a PNG picture: what ``segforge vessel`` writes and the web
panel shows (the desktop app shows the same curves in a Slicer plot chart instead).

One panel per branch, the longest first (at most :data:`MAX_PANELS`): the area-equivalent
diameter, the minimum and maximum diameter of the cross-sections against the arc length,
the landmarks and findings as marks on the equivalent-diameter curve. Drawn by VTK's charts
off screen (VTK is already a dependency; its wheels render without a display through EGL
or OSMesa), encoded as PNG in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from ..chart_png import offscreen_view, view_png

#: Panels drawn at most (the longest branches); the CSV has every branch.
MAX_PANELS = 4
PANEL_HEIGHT_PX = 220
WIDTH_PX = 900
#: Curve colours (RGB 0..255): equivalent, minimum, maximum; marks: landmarks, stenoses, dilatations.
CURVES = (("equivalent diameter", (200, 30, 30), 2.5), ("minimum diameter", (50, 70, 200), 1.0),
          ("maximum diameter", (30, 140, 30), 1.0))
MARK_COLORS = {"landmark": (230, 0, 230), "stenosis": (255, 160, 0), "dilatation": (0, 170, 200)}


class Profile(Protocol):
    """One branch's cross-sections (see :class:`segforge.vessel.cross_sections.BranchSections`)."""

    branch: int
    arc_mm: np.ndarray
    equivalent_diameter_mm: np.ndarray
    min_diameter_mm: np.ndarray
    max_diameter_mm: np.ndarray


@dataclass(frozen=True)
class Mark:
    """A point on a branch's curve: a landmark or a finding ("landmark", "stenosis", "dilatation")."""

    branch: int
    arc_mm: float
    kind: str


@dataclass(frozen=True)
class Curve:
    """A branch's sections in arc order; NaN where an outline did not close, where VTK's lines
    break (a gap is drawn as one, not bridged by a straight line)."""

    branch: int
    arc_mm: np.ndarray
    equivalent_diameter_mm: np.ndarray
    min_diameter_mm: np.ndarray
    max_diameter_mm: np.ndarray


def curve_of(profile: Profile) -> Curve:
    values = [np.asarray(getattr(profile, name), np.float64) for name in
              ("arc_mm", "equivalent_diameter_mm", "min_diameter_mm", "max_diameter_mm")]
    order = np.argsort(values[0], kind="stable")
    return Curve(int(profile.branch), *(v[order] for v in values))


def closed(curve: Curve) -> np.ndarray:
    """Which sections of a curve have all their diameters."""
    return (np.isfinite(curve.equivalent_diameter_mm) & np.isfinite(curve.min_diameter_mm)
            & np.isfinite(curve.max_diameter_mm))


def plotted_profiles(profiles: Sequence[Profile], max_panels: int = MAX_PANELS) -> list[Curve]:
    """The branches a picture shows: the longest (by arc length) with at least two closed sections,
    longest first."""
    drawable = [c for c in map(curve_of, profiles) if np.count_nonzero(closed(c)) >= 2]
    return sorted(drawable, key=lambda c: -float(np.ptp(c.arc_mm)))[:max_panels]


def mark_heights(curve: Curve, arcs: np.ndarray) -> np.ndarray:
    """The equivalent diameter at ``arcs``, interpolated between the closed sections."""
    ok = closed(curve)
    return np.interp(arcs, curve.arc_mm[ok], curve.equivalent_diameter_mm[ok])


def diameter_plot_png(profiles: Sequence[Profile], marks: Sequence[Mark] = (),
                      max_panels: int = MAX_PANELS) -> bytes:
    """The picture as PNG bytes; an empty picture (one panel saying so) when no branch has sections."""
    import vtk

    verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)  # no "bad X server" warning without a display
    try:
        return _draw(profiles, marks, max_panels)
    finally:
        vtk.vtkLogger.SetStderrVerbosity(verbosity)


def _draw(profiles: Sequence[Profile], marks: Sequence[Mark], max_panels: int) -> bytes:
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk

    shown = plotted_profiles(profiles, max_panels)
    view = offscreen_view(WIDTH_PX, PANEL_HEIGHT_PX * max(1, len(shown)) + 20)
    matrix = vtk.vtkChartMatrix()
    matrix.SetSize(vtk.vtkVector2i(1, max(1, len(shown))))
    matrix.SetGutter(vtk.vtkVector2f(40.0, 70.0))
    view.GetScene().AddItem(matrix)
    if not shown:
        matrix.GetChart(vtk.vtkVector2i(0, 0)).SetTitle("No cross-sections to plot")
    keep: list[Any] = []  # the tables must outlive the render
    for row, profile in enumerate(shown):
        chart = matrix.GetChart(vtk.vtkVector2i(0, len(shown) - 1 - row))  # row 0 is at the bottom
        chart.SetTitle(f"Branch {profile.branch}")
        table = vtk.vtkTable()
        for name, values in (("arc length (mm)", profile.arc_mm), (CURVES[0][0], profile.equivalent_diameter_mm),
                             (CURVES[1][0], profile.min_diameter_mm), (CURVES[2][0], profile.max_diameter_mm)):
            column = numpy_to_vtk(np.asarray(values, np.float64), deep=True)
            column.SetName(name)
            table.AddColumn(column)
        keep.append(table)
        for column, (_, color, width) in enumerate(CURVES, start=1):
            line = chart.AddPlot(vtk.vtkChart.LINE)
            line.SetInputData(table, 0, column)
            line.SetColor(*color, 255)
            line.SetWidth(width)
        marked = False
        for kind, color in MARK_COLORS.items():
            arcs = [m.arc_mm for m in marks if m.branch == profile.branch and m.kind == kind]
            if arcs:
                keep.append(_marks(chart, kind, color, np.asarray(arcs, np.float64), profile))
                marked = True
        chart.GetAxis(vtk.vtkAxis.BOTTOM).SetTitle("arc length (mm)")
        chart.GetAxis(vtk.vtkAxis.LEFT).SetTitle("diameter (mm)")
        chart.SetShowLegend(row == 0 or marked)  # the marks' names where they are
    return view_png(view)


def _marks(chart: Any, kind: str, color: tuple[int, int, int], arcs: np.ndarray, curve: Curve) -> Any:
    """Marks of one kind on the equivalent-diameter curve (interpolated at their arc length)."""
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk

    heights = mark_heights(curve, arcs)
    table = vtk.vtkTable()
    for name, values in (("arc length (mm)", arcs), (f"{kind}s", heights)):
        column = numpy_to_vtk(values, deep=True)
        column.SetName(name)
        table.AddColumn(column)
    points = chart.AddPlot(vtk.vtkChart.POINTS)
    points.SetInputData(table, 0, 1)
    points.SetColor(*color, 255)
    points.SetMarkerStyle(vtk.vtkPlotPoints.DIAMOND if kind == "landmark" else vtk.vtkPlotPoints.CIRCLE)
    points.SetMarkerSize(12.0)
    return table
