"""A vessel tree's measurements into the Slicer scene: the cross-section table, the diameter
plot chart, the landmark table and points, and the straightened volume.

Split from :mod:`.tree_nodes` (the segment, curves, models and findings) so each file keeps one
purpose; both are called from :func:`.tree_nodes.write_vessel_tree` once a job has finished.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from segforge.mrml.markups import point_list_from_points
from segforge.mrml.plots import Series, plot_chart
from segforge.mrml.tables import table_from_columns, table_from_rows
from segforge.mrml.volumes import volume_node_from_image
from segforge.vessel.diameter_plot import mark_heights, plotted_profiles
from segforge.vessel.outputs import LANDMARK_COLUMNS, SECTION_COLUMNS
from segforge.vessel.tree import VesselTree

#: One colour per plotted branch (0..1 RGB), the longest first.
BRANCH_COLORS = ((0.8, 0.1, 0.1), (0.1, 0.3, 0.85), (0.1, 0.6, 0.1), (0.6, 0.2, 0.7))
LANDMARK_COLOR = (0.9, 0.2, 0.9)


def write_section_table(tree: VesselTree, base: str) -> Optional[Any]:
    """Every cross-section of every branch as one table node; None without sections."""
    if not tree.profiles:
        return None
    return table_from_rows(tree.section_rows(), f"{base} cross-sections", columns=list(SECTION_COLUMNS))


def write_diameter_chart(tree: VesselTree, base: str) -> tuple[Optional[Any], list[Any]]:
    """The diameter along the longest branches as a plot chart (the equivalent diameter of each,
    the minimum and maximum of the longest, the landmarks as marks; a section whose outline did not
    close is NaN, a gap in the curve); the chart and its tables."""
    shown = plotted_profiles(tree.profiles, len(BRANCH_COLORS))
    if not shown:
        return None, []
    tables, series = [], []
    for index, profile in enumerate(shown):
        table = table_from_columns({"arc_mm": profile.arc_mm, "equivalent_diameter_mm": profile.equivalent_diameter_mm,
                                    "min_diameter_mm": profile.min_diameter_mm,
                                    "max_diameter_mm": profile.max_diameter_mm},
                                   f"{base} branch {profile.branch} diameters")
        tables.append(table)
        color = BRANCH_COLORS[index]
        series.append(Series(table, "arc_mm", "equivalent_diameter_mm", f"branch {profile.branch}", color))
        if index == 0:
            light = tuple(0.5 + c / 2 for c in color)
            series += [Series(table, "arc_mm", "min_diameter_mm", f"branch {profile.branch} minimum", light, 1.0),
                       Series(table, "arc_mm", "max_diameter_mm", f"branch {profile.branch} maximum", light, 1.0)]
        marks = [row for row in tree.landmark_rows if int(row["branch"]) == profile.branch]
        if marks:
            arcs = np.array([float(row["arc_mm"]) for row in marks])
            heights = mark_heights(profile, arcs)
            mark_table = table_from_columns({"arc_mm": arcs, "equivalent_diameter_mm": heights},
                                            f"{base} branch {profile.branch} landmarks")
            tables.append(mark_table)
            series.append(Series(mark_table, "arc_mm", "equivalent_diameter_mm",
                                 f"branch {profile.branch} landmarks", LANDMARK_COLOR, markers_only=True))
    chart = plot_chart(series, f"{base} diameters", title="Diameter along the branches",
                       x_title="arc length (mm)", y_title="diameter (mm)")
    return chart, tables


def write_landmarks(tree: VesselTree, base: str) -> tuple[Optional[Any], Optional[Any]]:
    """The landmark table and a point list at the landmarks' nearest centerline points, labelled
    with their diameters; (None, None) without landmarks."""
    rows = tree.landmark_rows
    if not rows:
        return None, None
    table = table_from_rows(rows, f"{base} landmarks", columns=list(LANDMARK_COLUMNS))
    points = np.array([[r["centerline_x_lps"], r["centerline_y_lps"], r["centerline_z_lps"]] for r in rows])
    labels = [f"L{r['landmark']}: {r['max_diameter_mm']:.1f} x {r['min_diameter_mm']:.1f} mm" for r in rows]
    return table, point_list_from_points(points, labels, f"{base} landmarks", LANDMARK_COLOR)


def write_straightened(tree: VesselTree, base: str) -> Optional[Any]:
    """The straightened (curved planar reformat) volume as a scalar volume node; None without one."""
    if tree.straightened is None:
        return None
    return volume_node_from_image(tree.straightened, f"{base} straightened")
