"""Centerlines in VMTK's layout (:mod:`segforge.vessel.vmtk_centerlines`): one polyline per
path from the root to each end with the arrays SlicerVMTK reads, and, where VMTK's own venv
exists (benchmarks/vessel_vmtk.py makes it), VMTK's branch extractor splits them into the
branches SegForge found: on the CE-MRA the aorta, the bifurcation and the two iliacs, as on
VMTK's own reference centerline.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy

from conftest import SAMPLE_DATA
from segforge.image_io import read_image
from segforge.polydata_io import write_polydata
from segforge.vessel.graph import centerline_graph
from segforge.vessel.synthetic import make_grid, two_level_tree
from segforge.vessel.vmtk_centerlines import root_to_end_paths, vmtk_centerline_polydata

CHECK = Path(__file__).with_name("vmtk_centerline_check.py")
VMTK_VENV = Path(os.environ.get("SEGFORGE_VMTK_VENV",
                                Path.home() / ".cache" / "segforge-bench" / "vmtk-1.5.2-py3.12"))


@pytest.fixture(scope="module")
def cemra():
    return centerline_graph(read_image(SAMPLE_DATA / "vmtk_aorta_cemra" / "aorta_mask_DERIVED_levelset_lt0.nii.gz"))


@pytest.fixture(scope="module")
def tree():
    return centerline_graph(two_level_tree(make_grid((80, 45, 85), (0.5, 0.5, 0.5))).mask)


def _cells(polydata) -> list[np.ndarray]:
    offsets = vtk_to_numpy(polydata.GetLines().GetOffsetsArray())
    connectivity = vtk_to_numpy(polydata.GetLines().GetConnectivityArray())
    return [connectivity[offsets[n]:offsets[n + 1]] for n in range(len(offsets) - 1)]


def test_one_path_per_end_from_the_root_with_vmtk_arrays(cemra, tree):
    for graph, ends in ((cemra, 2), (tree, 4)):
        polydata = vmtk_centerline_polydata(graph.branches)
        cells = _cells(polydata)
        assert len(cells) == ends == sum(1 for b in graph.branches if not graph.children(b.id))
        points = vtk_to_numpy(polydata.GetPoints().GetData())
        root = graph.branches[0].points_lps[0]
        for cell in cells:  # every path starts at the root, as VMTK's start at the source
            assert np.allclose(points[cell[0]], root)
        data = polydata.GetPointData()
        radius = vtk_to_numpy(data.GetArray("Radius"))
        assert np.array_equal(radius, vtk_to_numpy(data.GetArray("MaximumInscribedSphereRadius")))
        assert data.GetArray("EdgeArray").GetNumberOfComponents() == 2
        assert data.GetArray("EdgePCoordArray").GetNumberOfTuples() == polydata.GetNumberOfPoints()
        assert data.GetScalars().GetName() == "Radius"
        ids = vtk_to_numpy(polydata.GetCellData().GetArray("CenterlineIds"))
        assert ids.tolist() == list(range(ends))
        # each path is its branches end to end, joints kept once, radii carried along
        for (points_path, radii_path, end_id), cell in zip(root_to_end_paths(graph.branches), cells):
            assert np.allclose(points[cell], points_path) and np.allclose(radius[cell], radii_path)
            assert not graph.children(end_id)
        on_a_path = [any(np.all(np.isclose(points[c], b.points_lps[-1]), axis=1).any() for c in cells)
                     for b in graph.branches]
        assert all(on_a_path)


def test_vmtk_splits_our_centerlines_into_our_branches(cemra, tree, tmp_path):
    python = VMTK_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no VMTK venv at {VMTK_VENV} (benchmarks/vessel_vmtk.py makes it; "
                    "or set SEGFORGE_VMTK_VENV)")
    for name, graph, blanked in (("cemra", cemra, 1), ("tree", tree, 3)):
        path = write_polydata(vmtk_centerline_polydata(graph.branches), tmp_path / f"{name}.vtp")
        run = subprocess.run([str(python), str(CHECK), str(path)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        made = json.loads(run.stdout.strip().splitlines()[-1])
        # one group per branch plus one blanked group per bifurcation, merged back to one cell per branch
        assert len(made["blanked_groups"]) == blanked
        assert len(made["groups"]) - blanked == len(graph.branches)
        assert made["merged_cells"] == len(graph.branches)
        longest = max(len(p[0]) for p in root_to_end_paths(graph.branches))
        assert made["largest_abscissa"] > 0 and longest > 2
