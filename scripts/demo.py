"""The SegForge demo: the whole vessel workflow on the bundled CTA, as Slicer would run it.

A headless Slicer scene (the real MRML classes of the ``slicer-core`` wheel) gets the CTA
as a volume node; ``SegVesselLogic().vessel_tree`` (the module's scripting API, the same
call the SegVessel panel makes) sends it to a background worker process, which finds the
vessel mask, its centerlines with a radius at every point, the stenoses and the surface.
The Logic turns the result into scene nodes: the vessel segment, one markups curve per
branch with a per-point Radius, a centerline model coloured by radius, the surface model,
a branch table, a stenosis table and stenosis points. Everything is saved as a ``.mrb``
scene that opens in 3D Slicer, beside the files ``segforge vessel`` writes and a PNG.

The bundled CTA covers the whole thorax: vesselness finds the aorta, the heart chambers and
the lung vessels, all touching, i.e. thousands of branches. The demo looks at the descending
thoracic aorta instead, with a seed point in its lumen and a box around it (both in LPS
millimetres, placed on the TotalSegmentator aorta mask shipped beside the CTA; a Slicer user
would click the point and drag the ROI). This case has an aortic dissection: the flap
splits the lumen into a narrow crescent-shaped true lumen and a false lumen, so the
centerlines of the lumen branch and loop where a healthy aorta would give one tube.

Run ``make demo`` (or ``python scripts/demo.py --out out/demo``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "SegVessel")]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from segforge.cli.progress_bar import progress_bar  # noqa: E402
from segforge.image import Image  # noqa: E402
from segforge.image_io import read_volume, to_sitk  # noqa: E402
from segforge.mrml import (control_points_lps, create_closed_surfaces, create_headless_slicer,  # noqa: E402
                           mask_from_segment, point_measurement, rows_from_table, save_node, save_scene_bundle,
                           segment_ids_by_name, volume_node_from_image)
from segforge.polydata_io import write_polydata  # noqa: E402
from segforge.snapshot import write_snapshot  # noqa: E402
from segforge.vessel.parameters import BUILTIN_MODEL  # noqa: E402
from segforge.vessel.pipeline import VesselPipelineParameters, preset  # noqa: E402
from segforge.vessel.tree import BranchLine, centerline_polydata  # noqa: E402
from SegVesselLib import SegVesselLogic  # noqa: E402

SAMPLE_FOLDER = REPO / "Resources" / "SampleData" / "ts_thoracic_cta_aorta"
SAMPLE_CTA = SAMPLE_FOLDER / "cta_thorax_1p5mm.nii.gz"

#: A point in the lumen of the descending thoracic aorta (LPS mm), 7 mm above the CTA's
#: lowest slice: inside the reference aorta (``pred_aorta.nii.gz``), 8.6 mm from its wall,
#: on a 439 HU voxel of the contrast-filled true lumen.
AORTA_SEED_LPS = (-1.2, -138.7, 547.7)
#: A box (LPS mm: xmin, ymin, zmin, xmax, ymax, zmax) around the lowest 75 mm of the
#: descending thoracic aorta, 3-8 mm outside the reference aorta on every side.
AORTA_ROI_LPS = (-22.0, -162.0, 540.0, 25.0, -112.0, 615.0)
#: The name of the volume node; the Logic names every node it makes after it.
VOLUME_NAME = "CTA"


def demo_parameters(seeds_lps: Sequence[Sequence[float]] = (AORTA_SEED_LPS,),
                    roi_lps: Optional[Sequence[float]] = AORTA_ROI_LPS) -> VesselPipelineParameters:
    """The CTA preset with the seeds and box (none: the largest component of the whole volume).

    The mask comes from the builtin vesselness filter even where a deep vessel model is
    installed, so the demo gives the same answer on every machine.
    """
    mask = replace(preset("cta"), seeds_lps=tuple(tuple(p) for p in seeds_lps),
                   roi_lps=None if roi_lps is None else tuple(roi_lps), model=BUILTIN_MODEL)
    return VesselPipelineParameters(mask=mask)


def run_demo(out: Path, cta_path: Path = SAMPLE_CTA,
             parameters: Optional[VesselPipelineParameters] = None) -> dict[str, Path]:
    """Run the vessel workflow on ``cta_path`` through SegVesselLogic and write the results to ``out``."""
    parameters = parameters or demo_parameters()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    app = create_headless_slicer(install=True)
    logic = SegVesselLogic()
    try:
        image = read_volume(cta_path)
        volume = volume_node_from_image(image, VOLUME_NAME)
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
        summary = summarise(nodes, vessels, parameters, cta_path)
        with quiet_vtk():  # the zip writer reports every file it adds
            files = {"scene": save_scene_bundle(out / "segforge_demo.mrb", app.scene)}
        files.update(write_cli_style_files(nodes, out))
        files["snapshot"] = write_picture(image, vessels, nodes, out / "vessels.png")
        seconds["saving"] = time.perf_counter() - clock
        seconds["total"] = time.perf_counter() - started
        summary["seconds"] = {name: round(value, 2) for name, value in seconds.items()}
        files["summary"] = out / "summary.json"
        files["summary"].write_text(json.dumps(summary, indent=2))
    finally:
        logic.worker.close()
        app.close()
    print_summary(summary)
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return files


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


def summarise(nodes: Any, vessels: Image, parameters: VesselPipelineParameters, source: Path) -> dict[str, Any]:
    """The numbers the demo prints, read back from the scene nodes (as a Slicer user sees them)."""
    branches = rows_from_table(nodes.branch_table) if nodes.branch_table is not None else []
    findings = rows_from_table(nodes.stenosis_table) if nodes.stenosis_table is not None else []
    voxels = int(np.count_nonzero(vessels.array))
    summary: dict[str, Any] = {
        "input": str(source),
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
    if parameters.mask.seeds_lps and nodes.curves:
        # The branch passing closest to the (first) seed: the aorta's own centerline.
        seed = np.asarray(parameters.mask.seeds_lps[0])
        curve = min(nodes.curves, key=lambda c: float(np.linalg.norm(control_points_lps(c) - seed, axis=1).min()))
        radius = point_measurement(curve, "Radius")
        row = next((r for r in branches if r["id"] == _branch_id(curve)), {})
        summary["seed_branch"] = {"id": _branch_id(curve), "length_mm": round(float(row.get("length_mm", 0.0)), 1),
                                  "median_radius_mm": round(float(np.median(radius)), 2),
                                  "min_radius_mm": round(float(radius.min()), 2),
                                  "max_radius_mm": round(float(radius.max()), 2)}
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    where = "the whole volume (largest component)"
    if summary["roi_lps"] is not None:
        box = summary["roi_lps"]
        where = (f"the box LPS ({box[0]:g}, {box[1]:g}, {box[2]:g}) to ({box[3]:g}, {box[4]:g}, {box[5]:g}) mm")
    seeds = "; ".join("(" + ", ".join(f"{c:g}" for c in p) + ")" for p in summary["seeds_lps"]) or "none"
    print(f"vessel tree of {where}, seed LPS {seeds} mm")
    print(f"  vessel mask ({summary['mask_model']}): {summary['mask_voxels']} voxels "
          f"({summary['mask_volume_ml']:.1f} ml)")
    print(f"  centerlines: {summary['branches']} branches, {summary['total_length_mm']:.0f} mm in all; "
          f"{summary['curves']} curves with a Radius per point")
    if "seed_branch" in summary:
        b = summary["seed_branch"]
        print(f"  branch at the seed: branch {b['id']}, {b['length_mm']:.1f} mm long, "
              f"radius {b['median_radius_mm']:.1f} mm median ({b['min_radius_mm']:.1f} to {b['max_radius_mm']:.1f})")
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


def write_picture(image: Image, vessels: Image, nodes: Any, path: Path,
                  window: tuple[float, float] = (-200.0, 800.0)) -> Path:
    """The three coronal views of :func:`write_snapshot` and a fourth, zoomed onto the vessel
    mask: the centerlines coloured by radius (cyan thin, yellow wide) over the maximum intensity
    projection of the vessel voxels, the stenosis findings as magenta crosses."""
    write_snapshot(image, vessels, path, window)
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # rows, columns, RGB
    if not nodes.curves:
        return path
    oriented = sitk.DICOMOrient(to_sitk(image), "LPS")  # as write_snapshot shows it
    volume = sitk.GetArrayFromImage(oriented).astype(np.float32)  # axes: S, P, L
    inside = sitk.GetArrayFromImage(sitk.DICOMOrient(to_sitk(vessels), "LPS")) > 0
    l_mm, _, s_mm = oriented.GetSpacing()
    found = np.argwhere(inside)
    first = np.maximum(found.min(axis=0) - 6, 0)
    last = np.minimum(found.max(axis=0) + 7, volume.shape)
    crop = tuple(slice(a, b) for a, b in zip(first, last))
    low, high = window
    box = np.where(inside[crop], volume[crop], low)  # the vessel voxels only, as in the second view
    view = (np.clip(box.max(axis=1)[::-1], low, high) - low) / (high - low) * 150.0  # superior on top, dimmed
    rows = picture.shape[0]
    columns = max(1, int(round(rows * view.shape[1] * l_mm / (view.shape[0] * s_mm))))
    zoom_rows, zoom_columns = rows / view.shape[0], columns / view.shape[1]
    panel = view[(np.arange(rows) / zoom_rows).astype(int)][:, (np.arange(columns) / zoom_columns).astype(int)]
    panel = np.repeat(panel[..., None], 3, axis=-1)
    brush = max(1, int(round(min(zoom_rows, zoom_columns) / 2)))

    def pixel(point_lps: Sequence[float]) -> tuple[float, float]:
        i, _, k = oriented.TransformPhysicalPointToContinuousIndex([float(c) for c in point_lps])
        row = last[0] - 1 - k  # the patient's right on the left, superior on top
        return (row + 0.5) * zoom_rows - 0.5, (i - first[2] + 0.5) * zoom_columns - 0.5

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
    gap = np.zeros((rows, 4, 3), np.float32)
    combined = np.concatenate([picture.astype(np.float32), gap, panel], axis=1).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(combined, isVector=True), str(path))
    return path


def _seed(text: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not x,y,z in millimetres (LPS)") from None
    return (x, y, z)


def _box(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(",")) if text.count(",") == 5 else ()
    if len(values) != 6:
        raise argparse.ArgumentTypeError(f"{text!r} is not xmin,ymin,zmin,xmax,ymax,zmax in millimetres (LPS)")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo", help="folder for the results")
    parser.add_argument("--input", type=Path, default=SAMPLE_CTA,
                        help="a CTA volume file (default: the bundled one; give --seed and/or --roi for another)")
    parser.add_argument("--seed", type=_seed, action="append", metavar="X,Y,Z",
                        help="a seed point in LPS mm, as --seed=X,Y,Z (the '=' keeps a negative X from reading "
                             "as an option); repeat for more (default: in the bundled CTA's aorta)")
    parser.add_argument("--roi", type=_box, metavar="XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX",
                        help="a box in LPS mm, as --roi=XMIN,... (default: around the bundled CTA's descending "
                             "aorta)")
    parser.add_argument("--whole", action="store_true",
                        help="no seed and no box: the largest vessel component of the whole volume (slow)")
    args = parser.parse_args()
    own = args.input.resolve() != SAMPLE_CTA.resolve()
    if args.whole:
        parameters = demo_parameters((), None)
    elif args.seed or args.roi or own:
        parameters = demo_parameters(args.seed or (), args.roi)
    else:
        parameters = demo_parameters()
    run_demo(args.out, args.input, parameters)


if __name__ == "__main__":
    main()
