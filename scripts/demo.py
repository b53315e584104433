"""The SegForge demo: the whole vessel workflow on a bundled scan, as Slicer would run it.

A headless Slicer scene (the real MRML classes of the ``slicer-core`` wheel) gets the scan
as a volume node; ``SegVesselLogic().vessel_tree`` (the module's scripting API, the same
call the SegVessel panel makes) sends it to a background worker process, which finds the
vessel mask, its centerlines with a radius at every point, the stenoses and the surface.
The Logic turns the result into scene nodes: the vessel segment, one markups curve per
branch with a per-point Radius, a centerline model coloured by radius, the surface model,
a branch table, a stenosis table and stenosis points. Everything is saved as a ``.mrb``
scene that opens in 3D Slicer, beside the files ``segforge vessel`` writes and a PNG.

Two bundled cases (``--case``):

``mra`` (the default): VMTK's contrast-enhanced MR angiogram of a healthy abdominal aorta
and its bifurcation into the two common iliac arteries (``vmtk_aorta_cemra``, BSD-3, see
the LICENSE.txt there), with the ``mra`` preset and a box around the bifurcation, as a
Slicer user would drag an ROI. No seed: the largest vessel component in the box is kept.
The result is a small tree (5 branches, about 150 mm) in a few seconds: the aorta (radius
about 7 mm), the two iliacs and a thin side vessel that leaves the left iliac and runs out
of the box's top face (the left iliac is in two pieces, split where it leaves). The mask
has one small loop there (the side vessel lies on the iliac, joined to it twice through a
1.5 mm slice); the topology clean-up closes it (``segforge.vessel.topology``); no stenosis.

``cta``: the bundled thoracic CTA, with a seed point in the lumen of the descending aorta
and a box around its lowest 75 mm. This aorta is dissected: the flap splits the lumen into
a narrow true lumen and a false lumen, so the centerlines branch and loop (about 90
branches) and the flap reads as narrowings, where a healthy aorta would give one tube.

Run ``make demo`` (or ``python scripts/demo.py --out out/demo``; ``--case cta`` for the CTA).
The results are written as ``segforge`` writes them (``segforge.output_set``): all or nothing,
with a manifest.json; a folder holding an earlier demo's results is replaced whole only with
``--overwrite`` (``make demo`` passes it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "SegVessel")]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from segforge.cli.progress_bar import progress_bar  # noqa: E402
from segforge.cli.vessel_cmd import lps_box, lps_point  # noqa: E402
from segforge.errors import SegForgeError  # noqa: E402
from segforge.image import Image  # noqa: E402
from segforge.image_io import read_volume, to_sitk  # noqa: E402
from segforge.mrml import (control_points_lps, create_closed_surfaces, create_headless_slicer,  # noqa: E402
                           mask_from_segment, point_measurement, rows_from_table, save_node, save_scene_bundle,
                           segment_ids_by_name, volume_node_from_image)
from segforge.output_set import OutputSet, estimate_bytes, terminate_raises  # noqa: E402
from segforge.polydata_io import write_polydata  # noqa: E402
from segforge.vessel.parameters import BUILTIN_MODEL  # noqa: E402
from segforge.vessel.pipeline import VesselPipelineParameters, preset  # noqa: E402
from segforge.vessel.tree import BranchLine, centerline_polydata  # noqa: E402
from SegVesselLib import SegVesselLogic  # noqa: E402

SAMPLE_DATA = REPO / "Resources" / "SampleData"
SAMPLE_MRA = SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta.mha"
SAMPLE_CTA = SAMPLE_DATA / "ts_thoracic_cta_aorta" / "cta_thorax_1p5mm.nii.gz"
#: The red of the vessel mask over the slice through its centre.
OVERLAY_RGB = np.array([230, 40, 40], np.float32)

#: A box (LPS mm: xmin, ymin, zmin, xmax, ymax, zmax) around the aorto-iliac bifurcation of
#: the CE-MRA: the LPS bounding box of the voxels of VMTK's level-set mask shipped beside it
#: (``aorta_mask_DERIVED_levelset_lt0.nii.gz``: -239.1, -181.1, 13.5 to -205.7, -98.4, 34.5),
#: rounded outward to the next half millimetre at least 0.9 mm away on every side. VMTK grew
#: that level set between seeds at the aorta and the two iliac ends, and the box stops our
#: mask where the level set stops.
BIFURCATION_ROI_LPS = (-240.0, -182.0, 12.5, -204.5, -97.5, 35.5)
#: A point in the lumen of the descending thoracic aorta of the CTA (LPS mm), 7 mm above the
#: CTA's lowest slice: inside the reference aorta (``pred_aorta.nii.gz``), 8.6 mm from its
#: wall, on a 439 HU voxel of the contrast-filled true lumen.
AORTA_SEED_LPS = (-1.2, -138.7, 547.7)
#: A box (LPS mm) around the lowest 75 mm of the CTA's descending thoracic aorta, 3-8 mm
#: outside the reference aorta on every side.
AORTA_ROI_LPS = (-22.0, -162.0, 540.0, 25.0, -112.0, 615.0)


@dataclass(frozen=True)
class DemoCase:
    """A bundled scan and how the demo looks at it."""

    volume: Path
    #: The mask preset (``segforge.vessel.pipeline.preset``).
    preset: str
    #: The name of the volume node; the Logic names every node it makes after it.
    volume_name: str
    seeds_lps: tuple[tuple[float, float, float], ...]
    roi_lps: Optional[tuple[float, ...]]
    #: Grey levels shown black to white in the picture.
    window: tuple[float, float]
    #: The picture's views: projected along P (``coronal``), S (``axial``) or L (``sagittal``).
    view: str


CASES = {
    # The CE-MRA is a thin slab (34 slices of 1.5 mm, as coronal CE-MRA is acquired) whose
    # header calls the slab axis S; the aorta and iliacs run along the header's y axis. So
    # the picture looks along the header's z axis, through the slab, to show the bifurcation.
    "mra": DemoCase(SAMPLE_MRA, "mra", "MRA", (), BIFURCATION_ROI_LPS, (0.0, 2000.0), "axial"),
    "cta": DemoCase(SAMPLE_CTA, "cta", "CTA", (AORTA_SEED_LPS,), AORTA_ROI_LPS, (-200.0, 800.0), "coronal"),
}
DEFAULT_CASE = "mra"


def demo_parameters(case: str = DEFAULT_CASE, seeds_lps: Optional[Sequence[Sequence[float]]] = None,
                    roi_lps: Optional[Sequence[float]] = None, *, whole: bool = False) -> VesselPipelineParameters:
    """The case's preset with its seeds and box; where seeds or a box are given, those alone;
    ``whole``: neither (the largest vessel component of the whole volume).

    The mask comes from the builtin vesselness filter even where a deep vessel model is
    installed, so the demo gives the same answer on every machine.
    """
    chosen = CASES[case]
    if whole:
        seeds_lps, roi_lps = (), None
    elif not seeds_lps and roi_lps is None:
        seeds_lps, roi_lps = chosen.seeds_lps, chosen.roi_lps
    mask = replace(preset(chosen.preset), seeds_lps=tuple(tuple(float(c) for c in p) for p in seeds_lps or ()),
                   roi_lps=None if roi_lps is None else tuple(float(c) for c in roi_lps), model=BUILTIN_MODEL)
    return VesselPipelineParameters(mask=mask)


#: The scene bundle holds the volume: the results take about this many times its size on disk.
DEMO_SIZE_FACTOR = 3.0


def run_demo(out: Path, case: str = DEFAULT_CASE, volume_path: Optional[Path] = None,
             parameters: Optional[VesselPipelineParameters] = None, overwrite: bool = False) -> dict[str, Path]:
    """Run the vessel workflow through SegVesselLogic on the case's volume (or ``volume_path``,
    read the same way) and write the results to ``out``, all or nothing (``segforge.output_set``)."""
    chosen = CASES[case]
    volume_path = volume_path or chosen.volume
    parameters = parameters or demo_parameters(case)
    with OutputSet(out, overwrite=overwrite, expected_bytes=estimate_bytes(volume_path, DEMO_SIZE_FACTOR),
                   input_path=volume_path, command="demo",
                   parameters={"case": case, "mask": parameters.mask}) as outputs:
        files, summary = _run_demo_into(outputs.folder, case, volume_path, parameters)
        shown = outputs.commit(files)
    print_summary(summary)
    for kind, path in shown.items():
        print(f"wrote {kind}: {path}")
    return shown


def _run_demo_into(out: Path, case: str, volume_path: Path,
                   parameters: VesselPipelineParameters) -> tuple[dict[str, Path], dict[str, Any]]:
    chosen = CASES[case]
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    app = create_headless_slicer(install=True)
    logic = SegVesselLogic()
    try:
        image = read_volume(volume_path)
        volume = volume_node_from_image(image, chosen.volume_name)
        seconds["reading"] = time.perf_counter() - started

        clock = time.perf_counter()
        last_report = [clock]
        with progress_bar("vessel tree") as bar:
            def report(fraction: float, message: str) -> None:
                last_report[0] = time.perf_counter()
                bar(fraction, message)

            nodes = logic.vessel_tree(volume, parameters, progress=report)
            bar(1.0, "Done")
        done = time.perf_counter()
        # The worker's last progress report comes within one poll (0.1 s) of its end.
        seconds["worker"] = last_report[0] - clock
        seconds["scene nodes"] = done - last_report[0]

        clock = time.perf_counter()
        create_closed_surfaces(nodes.segmentation)  # the segment shows in 3D when the scene opens
        vessels = mask_from_segment(nodes.segmentation, segment_ids_by_name(nodes.segmentation)["Vessels"][0],
                                    volume)
        summary = summarise(nodes, vessels, parameters, volume_path, case)
        with quiet_vtk():  # the zip writer reports every file it adds
            files = {"scene": save_scene_bundle(out / "segforge_demo.mrb", app.scene)}
        files.update(write_cli_style_files(nodes, out))
        files["snapshot"] = write_picture(image, vessels, nodes, out / "vessels.png", chosen.window, chosen.view)
        seconds["saving"] = time.perf_counter() - clock
        seconds["total"] = time.perf_counter() - started
        summary["seconds"] = {name: round(value, 2) for name, value in seconds.items()}
        files["summary"] = out / "summary.json"
        files["summary"].write_text(json.dumps(summary, indent=2))
    finally:
        logic.worker.close()
        app.close()
    return files, summary


@contextmanager
def quiet_vtk() -> Iterator[None]:
    """VTK's messages go to a string while the block runs; warnings and errors are printed after it."""
    from vtkmodules.vtkCommonCore import vtkOutputWindow, vtkStringOutputWindow

    previous = vtkOutputWindow.GetInstance()
    previous.Register(None)  # keep it alive while replaced
    collected = vtkStringOutputWindow()
    vtkOutputWindow.SetInstance(collected)
    try:
        yield
    finally:
        vtkOutputWindow.SetInstance(previous)
        previous.UnRegister(None)
        kept = [block for block in collected.GetOutput().split("\n\n") if block.strip()
                and not block.lstrip().startswith("Info:")]
        if kept:
            print("\n\n".join(kept), file=sys.stderr)


# -- what was found ------------------------------------------------------------------------


def _branch_id(curve: Any) -> int:
    """The branch a curve shows: the Logic names them "<volume> branch <id>"."""
    return int(curve.GetName().rsplit(" ", 1)[-1])


def summarise(nodes: Any, vessels: Image, parameters: VesselPipelineParameters, source: Path,
              case: str = DEFAULT_CASE) -> dict[str, Any]:
    """The numbers the demo prints, read back from the scene nodes (as a Slicer user sees them)."""
    branches = rows_from_table(nodes.branch_table) if nodes.branch_table is not None else []
    findings = rows_from_table(nodes.stenosis_table) if nodes.stenosis_table is not None else []
    voxels = int(np.count_nonzero(vessels.array))
    summary: dict[str, Any] = {
        "case": case,
        "input": str(source),
        "preset": CASES[case].preset,
        "volume_node": CASES[case].volume_name,
        "seeds_lps": [list(p) for p in parameters.mask.seeds_lps],
        "roi_lps": None if parameters.mask.roi_lps is None else list(parameters.mask.roi_lps),
        "mask_model": parameters.mask.model,
        "mask_voxels": voxels,
        "mask_volume_ml": round(voxels * float(np.prod(vessels.spacing)) / 1000.0, 2),
        "branches": len(branches),
        "curves": len(nodes.curves),
        "total_length_mm": round(float(sum(row["length_mm"] for row in branches)), 1),
        "stenoses": len(findings),
        "stenosis_threshold_percent": parameters.stenosis.threshold_percent,
        "worst_stenoses": sorted(findings, key=lambda row: -row["stenosis_percent"])[:3],
        "surface_triangles": (nodes.surface_model.GetPolyData().GetNumberOfCells()
                              if nodes.surface_model is not None else None),
    }
    if not nodes.curves:
        return summary
    # The widest branch (by median radius): the aorta in both bundled cases.
    widest = max(nodes.curves, key=lambda c: float(np.median(point_measurement(c, "Radius"))))
    summary["widest_branch"] = _branch_summary(widest, branches)
    if parameters.mask.seeds_lps:
        # The branch passing closest to the (first) seed: the aorta's own centerline in the CTA case.
        seed = np.asarray(parameters.mask.seeds_lps[0])
        curve = min(nodes.curves, key=lambda c: float(np.linalg.norm(control_points_lps(c) - seed, axis=1).min()))
        summary["seed_branch"] = _branch_summary(curve, branches)
    return summary


def _branch_summary(curve: Any, branches: list[dict[str, Any]]) -> dict[str, Any]:
    radius = point_measurement(curve, "Radius")
    row = next((r for r in branches if r["id"] == _branch_id(curve)), {})
    return {"id": _branch_id(curve), "length_mm": round(float(row.get("length_mm", 0.0)), 1),
            "median_radius_mm": round(float(np.median(radius)), 2),
            "min_radius_mm": round(float(radius.min()), 2), "max_radius_mm": round(float(radius.max()), 2)}


def print_summary(summary: dict[str, Any]) -> None:
    where = "the whole volume"
    if summary["roi_lps"] is not None:
        box = summary["roi_lps"]
        where = (f"the box LPS ({box[0]:g}, {box[1]:g}, {box[2]:g}) to ({box[3]:g}, {box[4]:g}, {box[5]:g}) mm")
    seeds = "; ".join("(" + ", ".join(f"{c:g}" for c in p) + ")" for p in summary["seeds_lps"])
    print(f"{Path(summary['input']).name} ({summary['case']} case, {summary['preset']} preset): vessel tree of "
          f"{where}, " + (f"seed LPS {seeds} mm" if seeds else "no seed (largest component)"))
    print(f"  vessel mask ({summary['mask_model']}): {summary['mask_voxels']} voxels "
          f"({summary['mask_volume_ml']:.1f} ml)")
    print(f"  centerlines: {summary['branches']} branches, {summary['total_length_mm']:.0f} mm in all; "
          f"{summary['curves']} curves with a Radius per point")
    for key, label in (("widest_branch", "widest branch"), ("seed_branch", "branch at the seed")):
        if key in summary:
            b = summary[key]
            print(f"  {label}: branch {b['id']}, {b['length_mm']:.1f} mm long, radius {b['median_radius_mm']:.1f} mm "
                  f"median ({b['min_radius_mm']:.1f} to {b['max_radius_mm']:.1f})")
    print(f"  stenoses >= {summary['stenosis_threshold_percent']:g} %: {summary['stenoses']}"
          + ("; worst:" if summary["worst_stenoses"] else ""))
    for row in summary["worst_stenoses"]:
        print(f"    {row['stenosis_percent']:.0f} % on branch {row['branch']} "
              f"(diameter {row['minimal_diameter_mm']:.1f} of {row['reference_diameter_mm']:.1f} mm) "
              f"at LPS ({row['x_lps']:.1f}, {row['y_lps']:.1f}, {row['z_lps']:.1f})")
    if summary["surface_triangles"] is not None:
        print(f"  surface: {summary['surface_triangles']} triangles")
    s = summary["seconds"]
    print(f"  time: worker {s['worker']:.1f} s (mask, centerlines, radii, stenoses, surface), "
          f"scene nodes {s['scene nodes']:.1f} s, saving {s['saving']:.1f} s; "
          f"{s['total']:.1f} s from reading the volume to the last file")


# -- files ---------------------------------------------------------------------------------


def write_cli_style_files(nodes: Any, out: Path) -> dict[str, Path]:
    """The files ``segforge vessel`` writes, saved from the scene nodes (curves -> centerlines.vtp)."""
    files = {"segmentation": save_node(nodes.segmentation, out / "vessels.seg.nrrd")}
    if nodes.branch_table is not None:
        rows = rows_from_table(nodes.branch_table)
        if len(nodes.curves) == len(rows):  # every branch has its curve (the Logic caps them at 300)
            parents = {row["id"]: row["parent"] for row in rows}
            lines = [BranchLine(_branch_id(c), _parent(parents.get(_branch_id(c))), control_points_lps(c),
                                point_measurement(c, "Radius")) for c in nodes.curves]
            files["centerlines"] = write_polydata(centerline_polydata(lines), out / "centerlines.vtp")
        files["branches"] = save_node(nodes.branch_table, out / "branches.csv")
    if nodes.stenosis_table is not None:
        files["stenoses"] = save_node(nodes.stenosis_table, out / "stenoses.csv")
    if nodes.surface_model is not None:
        files["surface"] = save_node(nodes.surface_model, out / "surface.vtp")
    return files


def _parent(value: Any) -> Optional[int]:
    """A table's parent cell: a number, or NaN / -1 / "" for a root."""
    try:
        parent = int(value)
    except (TypeError, ValueError):
        return None
    return parent if parent >= 0 else None


#: The picture's views: the axis of the LPS-ordered voxel array (0: S, 1: P, 2: L) they
#: project along; the other two are the rows and the columns, in that order.
VIEW_AXES = {"axial": 0, "coronal": 1, "sagittal": 2}
#: The picture is scaled up by a whole factor to at least this many rows.
PICTURE_ROWS = 360


def write_picture(image: Image, vessels: Image, nodes: Any, path: Path,
                  window: tuple[float, float] = (-200.0, 800.0), view: str = "coronal") -> Path:
    """Four views side by side, shown radiologically (superior on top, the patient's right on
    the left; anterior on top in an axial view, on the left in a sagittal one): the volume's
    maximum intensity projection, that of the vessel voxels only, the slice through the vessel
    mask's centre with the mask in red (along any axis),
    and a fourth zoomed onto the vessel mask: the centerlines coloured by radius (cyan thin,
    yellow wide) over the projection of the vessel voxels, the stenosis findings as magenta
    crosses."""
    axis = VIEW_AXES[view]
    oriented = sitk.DICOMOrient(to_sitk(image), "LPS")
    volume = sitk.GetArrayFromImage(oriented).astype(np.float32)  # axes: S, P, L
    inside = sitk.GetArrayFromImage(sitk.DICOMOrient(to_sitk(vessels), "LPS")) > 0
    rows_axis, columns_axis = (a for a in range(3) if a != axis)
    flip = rows_axis == 0  # the S axis runs upwards
    row_mm, column_mm = oriented.GetSpacing()[2 - rows_axis], oriented.GetSpacing()[2 - columns_axis]
    low, high = window

    def grey(plane: np.ndarray, brightness: float = 255.0) -> np.ndarray:
        values = (np.clip(plane, low, high) - low) / (high - low) * brightness
        return np.repeat((values[::-1] if flip else values)[..., None], 3, axis=-1)

    def resized(view_rgb: np.ndarray, rows: int, columns: int) -> np.ndarray:  # nearest neighbour
        return view_rgb[(np.arange(rows) * view_rgb.shape[0] / rows).astype(int)][
            :, (np.arange(columns) * view_rgb.shape[1] / columns).astype(int)]

    vessel_voxels = np.where(inside, volume, low)
    found = np.argwhere(inside)
    middle = int(np.round(found[:, axis].mean())) if len(found) else volume.shape[axis] // 2
    cut = grey(volume.take(middle, axis))
    hit = inside.take(middle, axis)
    cut[hit[::-1] if flip else hit] = 0.45 * cut[hit[::-1] if flip else hit] + 0.55 * OVERLAY_RGB
    height = volume.shape[rows_axis] * row_mm / column_mm
    scale = max(1, int(np.ceil(PICTURE_ROWS / height)))
    rows, columns = max(1, int(round(height * scale))), volume.shape[columns_axis] * scale
    panels = [resized(v, rows, columns) for v in (grey(volume.max(axis=axis)), grey(vessel_voxels.max(axis=axis)), cut)]

    if nodes.curves and len(found):
        first = np.maximum(found.min(axis=0) - 6, 0)
        last = np.minimum(found.max(axis=0) + 7, volume.shape)
        crop = tuple(slice(a, b) if n != axis else slice(None) for n, (a, b) in enumerate(zip(first, last)))
        zoomed = grey(vessel_voxels[crop].max(axis=axis), 150.0)  # the vessel voxels only, dimmed
        width = zoomed.shape[1] * column_mm / (zoomed.shape[0] * row_mm)
        zoom_rows, zoom_columns = rows / zoomed.shape[0], max(1, int(round(rows * width))) / zoomed.shape[1]
        panel = resized(zoomed, rows, max(1, int(round(rows * width))))
        brush = max(1, int(round(min(zoom_rows, zoom_columns) / 2)))

        def pixel(point_lps: Sequence[float]) -> tuple[float, float]:
            kji = oriented.TransformPhysicalPointToContinuousIndex([float(c) for c in point_lps])[::-1]
            row = last[rows_axis] - 1 - kji[rows_axis] if flip else kji[rows_axis] - first[rows_axis]
            column = kji[columns_axis] - first[columns_axis]
            return (row + 0.5) * zoom_rows - 0.5, (column + 0.5) * zoom_columns - 0.5

        def paint(row: float, column: float, colour: tuple[float, float, float], size: int) -> None:
            r, c = int(round(row)) - size // 2, int(round(column)) - size // 2
            panel[max(r, 0):max(r + size, 0), max(c, 0):max(c + size, 0)] = colour

        radii = np.concatenate([point_measurement(c, "Radius") for c in nodes.curves])
        top = max(float(np.percentile(radii, 95)), 1e-6)
        for curve in nodes.curves:
            points, radius = control_points_lps(curve), point_measurement(curve, "Radius")
            for a, b, r in zip(points[:-1], points[1:], radius[:-1]):
                (ra, ca), (rb, cb) = pixel(a), pixel(b)
                t = min(r / top, 1.0)
                for s in np.linspace(0.0, 1.0, int(max(abs(rb - ra), abs(cb - ca)) * 2) + 2):
                    paint(ra + s * (rb - ra), ca + s * (cb - ca), (255 * t, 255, 255 * (1 - t)), brush)
        findings = rows_from_table(nodes.stenosis_table) if nodes.stenosis_table is not None else []
        for finding in findings:
            row, column = pixel((finding["x_lps"], finding["y_lps"], finding["z_lps"]))
            for step in range(-2 * brush, 2 * brush + 1):
                paint(row + step, column, (255, 0, 255), brush)
                paint(row, column + step, (255, 0, 255), brush)
        panels.append(panel)

    gap = np.zeros((rows, 4, 3), np.float32)
    combined = np.concatenate([part for panel in panels for part in (gap, panel)][1:], axis=1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(combined, isVector=True), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo", help="folder for the results")
    parser.add_argument("--case", choices=sorted(CASES), default=DEFAULT_CASE,
                        help="mra: the bundled healthy CE-MRA aorto-iliac bifurcation, mra preset, a box around "
                             "it (default); cta: the bundled thoracic CTA, cta preset, a seed and a box on its "
                             "dissected descending aorta")
    parser.add_argument("--input", type=Path,
                        help="a volume file to run the case's preset on instead of its bundled one (the largest "
                             "vessel component of the whole volume unless --seed and/or --roi are given)")
    parser.add_argument("--seed", type=lps_point, action="append", metavar="X,Y,Z",
                        help="a seed point in LPS mm, as --seed=X,Y,Z (the '=' keeps a negative X from reading "
                             "as an option); repeat for more (default: the case's own: none for mra, in the "
                             "aorta for cta). A seed without --roi drops the case's box")
    parser.add_argument("--roi", type=lps_box, metavar="XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX",
                        help="a box in LPS mm, as --roi=XMIN,... (default: the case's own, around the "
                             "bifurcation or the descending aorta). A box without --seed drops the case's seed")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results already in --out (the whole set; without it such a folder is "
                             "refused before any work)")
    parser.add_argument("--whole", action="store_true",
                        help="no seed and no box: the largest vessel component of the whole volume (slow on "
                             "the CTA)")
    args = parser.parse_args()
    own = args.input is not None and args.input.resolve() != CASES[args.case].volume.resolve()
    parameters = demo_parameters(args.case, args.seed, args.roi,
                                 whole=args.whole or (own and not args.seed and args.roi is None))
    terminate_raises()  # SIGTERM cleans up as Ctrl-C does: no partial results are left
    try:
        run_demo(args.out, args.case, args.input, parameters, overwrite=args.overwrite)
    except SegForgeError as error:  # a wrong input or option: what to do, not a traceback
        sys.exit(f"demo: error: {error.message}")
    except KeyboardInterrupt:
        sys.exit("demo: interrupted; the previous results, if any, are unchanged")


if __name__ == "__main__":
    main()
