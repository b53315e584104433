"""Benchmark: segment to centerlines, ours against VMTK's Slicer path, in the same run.

What a Slicer user does with VMTK on a segment they already have: closed surface from the
binary mask (flying edges, windowed-sinc smoothing), SlicerVMTK's Extract Centerline
(decimation to ~5,000 points, ``vtkvmtkPolyDataCenterlines`` between the chosen endpoints, with
the maximum inscribed sphere radius, then branch extraction). See
``benchmarks/vmtk_peer/run_vmtk.py`` for each stage. Ours: the same mask and the same
endpoints through :func:`segforge.vessel.pipeline.run_vessel_pipeline` (``segment=``,
``EndpointParameters``) once the engine has them (issue 16); before that, the whole-tree
:func:`segforge.vessel.graph.centerline_graph`, and the row says so (``ours_mode``).

Cases:
1. ``cemra``: VMTK's CE-MRA aorto-iliac level-set mask; endpoints at the ends of VMTK's own
   reference centerline (``aorta-centerline.vtp``, RAS in the file): source at the aorta,
   targets at the two iliacs; both also compared with that reference.
2. ``cta_aorta``: TotalSegmentator's aorta mask of the thoracic CTA (a dissection case), root
   to the cut; endpoints by a rule (:func:`longest_geodesic_ends`): the two ends of the
   longest geodesic inside the mask, the wider end as the source.
3. ``thick_tube``: a synthetic ~2-million-voxel thick segment (a curved tube of radius 20 mm
   on a 0.5 mm grid: :func:`thick_tube`), endpoints at its axis ends; both compared with the
   true axis and radius. The issue's goal for ours: <= 3 s.

Reported per case: each side's stage times (median of ``--repeats`` runs after a first,
untimed-for-the-median call; the first call is reported too), the speed-up (VMTK seconds /
our seconds: > 1 means ours is faster), and accuracy in the same run: mean distance between
the two centerlines (each way), median absolute radius difference, branch counts, and where a
reference exists (cases 1 and 3) each side against it.

VMTK 1.5.2's wheels need Python >= 3.12; SegForge's venv is 3.11. The benchmark makes a
VMTK venv once (``--vmtk-venv``, default ``~/.cache/segforge-bench/vmtk-1.5.2-py3.12``) with a
Python 3.12+ it finds (``--vmtk-python``, ``python3.12`` / ``python3.13`` on PATH, or pyenv's),
and reuses it after. Where it cannot (no such Python, no network), one line says why and
ours runs alone.

Run: ``python benchmarks/vessel_vmtk.py [--repeats 2] [--cases cemra,cta_aorta,thick_tube]
[--json out/vessel_vmtk.json] [--no-vmtk]``
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "Testing"))

from segforge.image import Image  # noqa: E402
from segforge.image_io import read_image  # noqa: E402
from segforge.vessel.graph import CenterlineGraph, centerline_graph  # noqa: E402
from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters, run_vessel_pipeline  # noqa: E402
from segforge.vessel.radius import lps_to_kji  # noqa: E402
from test_vessel_vmtk_accuracy import _box, _inside, _reference, densify  # noqa: E402

VMTK_VERSION = "1.5.2"
#: What the VMTK venv holds: VMTK (it brings VTK and numpy) and the Fast-Quadric decimation Slicer uses.
PEER_PACKAGES = (f"vmtk=={VMTK_VERSION}", "fast-simplification==0.2.0")
RUNNER = Path(__file__).resolve().parent / "vmtk_peer" / "run_vmtk.py"
SAMPLE = REPO / "Resources" / "SampleData"
CEMRA_MASK = SAMPLE / "vmtk_aorta_cemra" / "aorta_mask_DERIVED_levelset_lt0.nii.gz"
CEMRA_REFERENCE = SAMPLE / "vmtk_aorta_cemra" / "aorta-centerline.vtp"
CTA_AORTA = SAMPLE / "ts_thoracic_cta_aorta" / "pred_aorta.nii.gz"
RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])  # the same flip both ways
#: The fraction of the longest geodesic, from each end, over which the end's width is read
#: (the widest inscribed sphere there) to tell the source (wider, e.g. the aortic root) from
#: the target (e.g. the cut at the scan's edge).
END_WIDTH_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class Case:
    """One mask, the endpoints both sides get, and an optional reference centerline."""

    name: str
    mask: Image
    source_lps: np.ndarray
    targets_lps: np.ndarray
    endpoint_rule: str
    reference: Optional[tuple[np.ndarray, np.ndarray]] = None  # dense points (LPS), radii
    reference_name: str = ""
    #: keep only these reference points when comparing (e.g. inside the mask's box)
    reference_keep: Optional[np.ndarray] = None


# ------------------------------------------------------------------ endpoints by a rule


def _voxel_graph(array: np.ndarray, spacing_kji: np.ndarray) -> tuple[coo_matrix, np.ndarray]:
    """26-neighbour graph of the mask's voxels, edge lengths in mm; and the voxels (k, j, i)."""
    voxels = np.argwhere(array)
    index = np.full(array.shape, -1, np.int64)
    index[tuple(voxels.T)] = np.arange(len(voxels))
    rows, columns, lengths = [], [], []
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) > (0, 0, 0)]
    for offset in offsets:
        source = tuple(slice(max(0, -d), array.shape[n] - max(0, d)) for n, d in enumerate(offset))
        target = tuple(slice(max(0, d), array.shape[n] - max(0, -d)) for n, d in enumerate(offset))
        a, b = index[source], index[target]
        both = (a >= 0) & (b >= 0)
        rows.append(a[both])
        columns.append(b[both])
        lengths.append(np.full(int(both.sum()), float(np.linalg.norm(np.asarray(offset) * spacing_kji))))
    size = len(voxels)
    graph = coo_matrix((np.concatenate(lengths), (np.concatenate(rows), np.concatenate(columns))),
                       shape=(size, size))
    return graph, voxels


def longest_geodesic_ends(mask: Image) -> tuple[np.ndarray, np.ndarray, float]:
    """Source and target (LPS mm) at the two ends of the longest path inside the mask.

    The rule a user's two clicks at "the two ends of the vessel" stand for, with no typed
    numbers: in the largest 26-connected component, a double sweep of shortest paths in mm (the
    voxel farthest from any voxel, then the voxel farthest from that one) gives the two ends of
    the longest geodesic (exact on a tree-like shape). The end whose lumen is wider (largest
    inscribed sphere within ``END_WIDTH_FRACTION`` of the path length from it) is the source,
    as our tree is rooted at the widest end. Returns (source, target, geodesic length in mm).
    """
    array = np.asarray(mask.array) != 0
    labels, count = ndimage.label(array, structure=np.ones((3, 3, 3)))
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        array = labels == int(np.argmax(sizes))
    spacing_kji = np.asarray(mask.spacing[::-1], float)
    graph, voxels = _voxel_graph(array, spacing_kji)
    first = dijkstra(graph, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(first), first, -1)))
    from_a = dijkstra(graph, directed=False, indices=a)
    b = int(np.argmax(np.where(np.isfinite(from_a), from_a, -1)))
    from_b = dijkstra(graph, directed=False, indices=b)
    length = float(from_a[b])
    inscribed = ndimage.distance_transform_edt(array, sampling=spacing_kji)[tuple(voxels.T)]
    width_a = inscribed[from_a <= END_WIDTH_FRACTION * length].max()
    width_b = inscribed[from_b <= END_WIDTH_FRACTION * length].max()
    source, target = (a, b) if width_a >= width_b else (b, a)
    matrix = mask.ijk_to_lps()
    lps = voxels[[source, target]][:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
    return lps[0], lps[1], length


def reference_ends(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Source and targets (LPS) of a VMTK centerline file: the common first point and each line's last."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    polydata = reader.GetOutput()
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(float) * RAS_TO_LPS  # VMTK writes RAS
    lines = []
    for cell in range(polydata.GetNumberOfCells()):
        ids = polydata.GetCell(cell).GetPointIds()
        lines.append(points[[ids.GetId(n) for n in range(ids.GetNumberOfIds())]])
    starts = np.array([line[0] for line in lines])
    if np.ptp(starts, axis=0).max() > 1e-3:
        raise ValueError(f"{path.name}: its centerlines do not share a first point (the source)")
    return starts[0], np.array([line[-1] for line in lines])


# ------------------------------------------------------------------ cases


def thick_tube(spacing_mm: float = 0.5, tube_radius_mm: float = 20.0, bend_radius_mm: float = 50.0,
               angle_deg: float = 200.0) -> tuple[Image, np.ndarray, np.ndarray]:
    """A thick tube bent along a circular arc, round ends: the mask, its axis (LPS) and radii.

    Built analytically (distance to the arc, capped by the distance to its end points), so a
    2-million-voxel mask takes a second, not the minutes a sampled tube would.
    """
    half = np.radians(angle_deg) / 2
    angles = np.linspace(-half, half, int(np.ceil(bend_radius_mm * 2 * half / 0.1)) + 1)
    axis = np.column_stack([bend_radius_mm * np.sin(angles), bend_radius_mm * np.cos(angles), np.zeros_like(angles)])
    margin = tube_radius_mm + 3 * spacing_mm
    origin = axis.min(axis=0) - margin
    shape_ijk = np.ceil((axis.max(axis=0) + margin - origin) / spacing_mm).astype(int) + 1
    z, y, x = np.meshgrid(*[origin[d] + spacing_mm * np.arange(shape_ijk[d]) for d in (2, 1, 0)], indexing="ij")
    rho = np.hypot(x, y)
    theta = np.arctan2(x, y)  # 0 along +y, the arc's middle
    on_arc = np.abs(theta) <= half
    distance = np.where(on_arc, np.hypot(rho - bend_radius_mm, z), np.inf)
    ends = [bend_radius_mm * np.array([np.sin(s * half), np.cos(s * half), 0.0]) for s in (-1, 1)]
    for end in ends:
        distance = np.minimum(distance, np.sqrt((x - end[0]) ** 2 + (y - end[1]) ** 2 + (z - end[2]) ** 2))
    mask = Image((distance <= tube_radius_mm).astype(np.uint8), (spacing_mm,) * 3, tuple(origin))
    return mask, axis, np.full(len(axis), tube_radius_mm)


def make_cases(names: list[str]) -> list[Case]:
    cases = []
    if "cemra" in names:
        mask = read_image(CEMRA_MASK)
        source, targets = reference_ends(CEMRA_REFERENCE)
        points, radii = _reference(CEMRA_REFERENCE)
        keep = _inside(points, _box(mask, 3.0))
        cases.append(Case("cemra", mask, source, targets, "ends of VMTK's reference centerline",
                          (points, radii), "VMTK reference (aorta-centerline.vtp)", keep))
    if "cta_aorta" in names:
        mask = read_image(CTA_AORTA)
        source, target, length = longest_geodesic_ends(mask)
        cases.append(Case("cta_aorta", mask, source, target[None],
                          f"ends of the longest geodesic ({length:.0f} mm), wider end = source"))
    if "thick_tube" in names:
        mask, axis, radii = thick_tube()
        # compare away from the round ends (one radius), where a centerline's end is a choice
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(axis, axis=0), axis=1))])
        keep = (arc >= radii[0]) & (arc <= arc[-1] - radii[0])
        cases.append(Case("thick_tube", mask, axis[0], axis[-1][None], "the tube's axis ends (known by construction)",
                          (axis, radii), "true axis and radius", keep))
    return cases


# ------------------------------------------------------------------ ours


def _pipeline_with_endpoints():
    """``(parameters factory)`` when the pipeline takes a segment and endpoints (issue 16), else None."""
    try:
        from segforge.vessel.endpoints import EndpointParameters
    except ImportError:
        return None
    if "segment" not in inspect.signature(run_vessel_pipeline).parameters:
        return None
    fields = {f.name for f in dataclasses.fields(VesselPipelineParameters)}
    if "endpoints" not in fields:
        return None

    def parameters(source: np.ndarray, targets: np.ndarray) -> VesselPipelineParameters:
        chosen = {"endpoints": EndpointParameters(source_lps=tuple(float(v) for v in source),
                                                  targets_lps=tuple(tuple(float(v) for v in t) for t in targets)),
                  "outputs": VesselOutputs(centerlines=True, stenoses=False, surface=False)}
        if "straighten" in fields:  # a view, not part of "segment to centerlines"
            from segforge.vessel.straighten import StraightenParameters
            chosen["straighten"] = StraightenParameters(enabled=False)
        return VesselPipelineParameters(**chosen)

    return parameters


def run_ours(case: Case, repeats: int, budget_s: float = 20.0) -> dict:
    """Our centerlines for the case, timed: first call and the median of ``repeats`` more.

    A first call slower than ``budget_s`` is not repeated (its time is then the median), so the
    whole benchmark stays within minutes even when a case is far off its goal."""
    factory = _pipeline_with_endpoints()
    if factory is not None:
        mode = "run_vessel_pipeline(segment=, endpoints)" + \
            (" with radii and cross-sections" if "sections" in {f.name for f in dataclasses.fields(
                VesselPipelineParameters)} else "")
        parameters = factory(case.source_lps, case.targets_lps)

        def once() -> tuple[CenterlineGraph, dict]:
            result = run_vessel_pipeline(None, parameters, segment=case.mask)
            return result.graph, dict(result.seconds)
    else:
        mode = "centerline_graph (whole tree: the endpoints API is not in this checkout yet)"

        def once() -> tuple[CenterlineGraph, dict]:
            clock = time.perf_counter()
            graph = centerline_graph(case.mask)
            return graph, {"centerlines": time.perf_counter() - clock}

    runs = []
    graph = None
    for _ in range(1 + repeats):
        clock = time.perf_counter()
        graph, stages = once()
        runs.append({**stages, "total": time.perf_counter() - clock})
        if runs[0]["total"] > budget_s:
            break  # too slow to repeat within a bounded run: the first call is the figure
    rest = runs[1:] or runs
    points, radii = densify([(b.points_lps, b.radii_mm) for b in graph.branches])
    return {"mode": mode, "first_s": runs[0], "median_s": {k: statistics.median(r[k] for r in rest) for k in runs[0]},
            "all_total_s": [r["total"] for r in rest], "repeats_done": len(runs) - 1,
            "branches": len(graph.branches), "dense": (points, radii)}


# ------------------------------------------------------------------ VMTK


def _find_python312(explicit: Optional[str]) -> Optional[str]:
    """A Python >= 3.12 to make the venv with: the one given, else 3.12 (VMTK's tested one), then 3.13."""
    candidates = [explicit] if explicit else []
    pyenv = shutil.which("pyenv")
    installed = []
    if pyenv:
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, timeout=30)
        installed = sorted(listed.stdout.split(), reverse=True)
    for minor in ("3.12", "3.13"):
        candidates.append(shutil.which(f"python{minor}"))
        for version in installed:
            if version.startswith(minor + "."):
                prefix = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True, timeout=30)
                candidates.append(str(Path(prefix.stdout.strip()) / "bin" / "python"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                                   capture_output=True, text=True, timeout=30)
            if probe.stdout.strip() == "True":
                return candidate
    return None


def default_vmtk_venv() -> Path:
    """Where the VMTK venv is made and found again: the user's cache, shared by every checkout."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "segforge-bench"
    return cache / f"vmtk-{VMTK_VERSION}-py3.12"


def vmtk_python(venv: Path, explicit_python: Optional[str]) -> tuple[Optional[Path], str]:
    """The VMTK venv's Python (made or completed now if need be), or None and why it cannot be had."""
    python = venv / "bin" / "python"

    def ready() -> bool:
        probe = [str(python), "-c", "import vtk, fast_simplification; from vmtk import vtkvmtk"]
        return python.exists() and subprocess.run(probe, capture_output=True, timeout=120).returncode == 0

    if ready():
        return python, f"reused {venv}"
    if not python.exists():
        base = _find_python312(explicit_python)
        if base is None:
            return None, "no Python >= 3.12 found (VMTK 1.5.2's wheels need it; give one with --vmtk-python)"
        print(f"Making the VMTK venv in {venv} with {base} (once; about a minute)...", flush=True)
        if venv.exists():
            shutil.rmtree(venv)
        venv.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
        if made.returncode != 0:
            return None, f"'{base} -m venv {venv}' failed: {(made.stderr.strip().splitlines() or [''])[-1]}"
    try:
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              *PEER_PACKAGES], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return None, f"pip install {' '.join(PEER_PACKAGES)} took over 15 minutes"
    if pip.returncode != 0 or not ready():
        last = ([line for line in pip.stderr.strip().splitlines() if not line.startswith("WARNING")]
                or ["(no message)"])[-1]
        return None, f"pip install {' '.join(PEER_PACKAGES)} into {venv} failed (no network?): {last}"
    return python, f"made {venv}"


def run_vmtk(python: Path, case: Case, repeats: int, work: Path, budget_s: float = 20.0) -> dict:
    """VMTK's Slicer path on the case in the VMTK venv; its answer with the centerlines in LPS."""
    mask_file = work / f"{case.name}_mask.npy"
    np.save(mask_file, (np.asarray(case.mask.array) != 0).astype(np.uint8))
    request = {"mask_npy": str(mask_file), "ijk_to_ras": case.mask.ijk_to_ras().tolist(),
               "source_ras": (case.source_lps * RAS_TO_LPS).tolist(),
               "targets_ras": (case.targets_lps * RAS_TO_LPS).tolist(), "repeats": repeats, "budget_s": budget_s,
               "smoothing_factor": 0.5, "target_points": 5000,
               "decimation_aggressiveness": 4.0}
    request_file, answer_file = work / f"{case.name}_request.json", work / f"{case.name}_answer.json"
    request_file.write_text(json.dumps(request))
    clock = time.perf_counter()
    done = subprocess.run([str(python), str(RUNNER), str(request_file), str(answer_file)],
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - clock
    if done.returncode != 0:
        raise RuntimeError(f"VMTK runner failed on {case.name}: {done.stderr.strip()[-2000:]}")
    answer = json.loads(answer_file.read_text())
    lines = [(np.asarray(c["points_ras"], float).reshape(-1, 3) * RAS_TO_LPS, np.asarray(c["radius_mm"], float))
             for c in answer.pop("centerlines")]
    lines = [(p, r) for p, r in lines if len(p) > 1]
    answer["dense"] = densify(lines) if lines else (np.zeros((0, 3)), np.zeros(0))
    answer["length_mm"] = [float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) for p, _ in lines]
    answer["seeds_lps"] = (np.asarray(answer.pop("seeds_ras")) * RAS_TO_LPS).tolist()
    # start-up, imports and file exchange: outside every timed stage (ours: imports not timed either)
    answer["process_overhead_s"] = wall - answer["first_s"]["total"] - \
        (sum(answer["all_total_s"]) if answer["repeats_done"] else 0.0)
    return answer


# ------------------------------------------------------------------ accuracy


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
            keep_a: Optional[np.ndarray] = None) -> dict:
    """a's points (optionally only ``keep_a``) to b's nearest: mean/p95 distance, median |radius difference|."""
    points, radii = a
    if keep_a is not None:
        points, radii = points[keep_a], radii[keep_a]
    if len(points) == 0 or len(b[0]) == 0:
        return {"mean_distance_mm": None, "p95_distance_mm": None, "radius_median_abs_diff_mm": None}
    distance, nearest = cKDTree(b[0]).query(points)
    return {"mean_distance_mm": float(distance.mean()), "p95_distance_mm": float(np.percentile(distance, 95)),
            "radius_median_abs_diff_mm": float(np.median(np.abs(b[1][nearest] - radii)))}


def outside_fraction(mask: Image, points_lps: np.ndarray) -> Optional[float]:
    """Share of a centerline's points whose nearest voxel is not in the mask (0 for a line inside the lumen).

    The one check that needs no reference: a centerline that cuts across a bend or a gap leaves the segment.
    """
    if len(points_lps) == 0:
        return None
    kji = np.round(lps_to_kji(mask, points_lps)).astype(int)
    inside = np.all((kji >= 0) & (kji < np.asarray(mask.array.shape)), axis=1)
    hit = np.zeros(len(kji), bool)
    hit[inside] = np.asarray(mask.array)[tuple(kji[inside].T)] != 0
    return float(1.0 - hit.mean())


def accuracy(case: Case, ours: dict, vmtk: Optional[dict]) -> dict:
    out: dict = {"ours_outside_mask": outside_fraction(case.mask, ours["dense"][0])}
    if vmtk is not None:
        out["vmtk_outside_mask"] = outside_fraction(case.mask, vmtk["dense"][0])
    if vmtk is not None:
        out["vmtk_to_ours"] = compare(vmtk["dense"], ours["dense"])
        out["ours_to_vmtk"] = compare(ours["dense"], vmtk["dense"])
    if case.reference is not None:
        out["reference"] = case.reference_name
        out["reference_to_ours"] = compare(case.reference, ours["dense"], case.reference_keep)
        if vmtk is not None:
            out["reference_to_vmtk"] = compare(case.reference, vmtk["dense"], case.reference_keep)
    return out


# ------------------------------------------------------------------ report


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(report: dict) -> None:
    print()
    print(f"{'case':<11} {'voxels':>9} {'ours s':>7} {'VMTK s':>7} {'speed-up':>8} {'ours first':>10} "
          f"{'d(V,o) mm':>9} {'d(o,V) mm':>9} {'|dr| mm':>7} {'branches o/V':>12} "
          f"{'ref->ours':>9} {'ref->VMTK':>9} {'r err o/V':>11} {'out% o/V':>9}")
    for name, row in report["cases"].items():
        ours, vmtk, acc = row["ours"], row.get("vmtk"), row["accuracy"]
        vmtk_s = vmtk["median_s"]["total"] if vmtk else None
        speed = vmtk_s / ours["median_s"]["total"] if vmtk else None
        ref_o, ref_v = acc.get("reference_to_ours", {}), acc.get("reference_to_vmtk", {})
        print(f"{name:<11} {row['voxels']:>9} {ours['median_s']['total']:7.2f} {_fmt(vmtk_s, 2):>7} "
              f"{(_fmt(speed, 1 if speed >= 1 else 3) + 'x') if speed else '-':>8} {ours['first_s']['total']:10.2f} "
              f"{_fmt(acc.get('vmtk_to_ours', {}).get('mean_distance_mm')):>9} "
              f"{_fmt(acc.get('ours_to_vmtk', {}).get('mean_distance_mm')):>9} "
              f"{_fmt(acc.get('vmtk_to_ours', {}).get('radius_median_abs_diff_mm')):>7} "
              f"{ours['branches']:>6}/{vmtk['branches'] if vmtk else '-':<5} "
              f"{_fmt(ref_o.get('mean_distance_mm')):>9} {_fmt(ref_v.get('mean_distance_mm')):>9} "
              f"{_fmt(ref_o.get('radius_median_abs_diff_mm'), 2)}/{_fmt(ref_v.get('radius_median_abs_diff_mm'), 2):<5} "
              f"{_percent(acc['ours_outside_mask'])}/{_percent(acc.get('vmtk_outside_mask'))}")
    print("speed-up = VMTK total / ours total (median; > 1: ours faster). d(V,o): mean distance from VMTK's"
          " centerline to ours; d(o,V) the other way; |dr|: median |radius difference| at VMTK's points;"
          " ref->X: mean distance from the reference to X; r err: median |radius error| against the reference;"
          " out%: share of the centerline's points outside the mask.")
    for name, row in report["cases"].items():
        print(f"  {name}: ours = {row['ours']['mode']}; stages ours {_stages(row['ours']['median_s'])}"
              + (f"; VMTK {_stages(row['vmtk']['median_s'])}" if row.get("vmtk") else ""))


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _stages(seconds: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in seconds.items() if k != "total")


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "dense"}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def main(argv: Optional[list[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after the first call (median)")
    parser.add_argument("--budget-s", type=float, default=20.0,
                        help="a side whose first call takes longer is not repeated (keeps the run bounded)")
    parser.add_argument("--cases", default="cemra,cta_aorta,thick_tube")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "vessel_vmtk.json",
                        help="where the report goes (default: the checkout's ignored out/ folder)")
    parser.add_argument("--vmtk-venv", type=Path, default=default_vmtk_venv())
    parser.add_argument("--vmtk-python", default=None, help="a Python >= 3.12 to make the VMTK venv with")
    parser.add_argument("--no-vmtk", action="store_true", help="run ours alone")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    python, how = (None, "--no-vmtk given") if args.no_vmtk else vmtk_python(args.vmtk_venv, args.vmtk_python)
    if python is None:
        print(f"VMTK peer skipped: {how}. Running ours alone.", flush=True)
    report: dict = {"benchmark": "vessel_vmtk", "date": datetime.datetime.now().isoformat(timespec="seconds"),
                    "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
                               f"Python {platform.python_version()}",
                    "load_average": list(os.getloadavg()), "repeats": args.repeats,
                    "vmtk_venv": how if python is not None else None, "vmtk_skipped": None if python else how,
                    "cases": {}}
    with tempfile.TemporaryDirectory(prefix="segforge-vmtk-") as folder:
        for case in make_cases(names):
            print(f"{case.name}: ours...", flush=True)
            ours = run_ours(case, args.repeats, args.budget_s)
            vmtk, vmtk_error = None, None
            if python is not None:
                print(f"{case.name}: VMTK...", flush=True)
                try:
                    vmtk = run_vmtk(python, case, args.repeats, Path(folder), args.budget_s)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    vmtk_error = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
                    print(f"{case.name}: VMTK failed ({vmtk_error}); ours alone for this case", flush=True)
            report["cases"][case.name] = {
                "voxels": int((np.asarray(case.mask.array) != 0).sum()), "grid": list(case.mask.array.shape[::-1]),
                "spacing_mm": list(case.mask.spacing), "endpoint_rule": case.endpoint_rule,
                "source_lps": case.source_lps, "targets_lps": case.targets_lps,
                "ours": ours, "vmtk": vmtk, "vmtk_error": vmtk_error, "accuracy": accuracy(case, ours, vmtk)}
            if vmtk is not None:
                report["cases"][case.name]["speed_up_vmtk_over_ours"] = \
                    vmtk["median_s"]["total"] / ours["median_s"]["total"]
    report["load_average_after"] = list(os.getloadavg())
    print_table(report)
    clean = _jsonable(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(clean, indent=1))
    print(f"\n{report['machine']}, {report['date']}; JSON: {args.json}")
    return clean


if __name__ == "__main__":
    main()
