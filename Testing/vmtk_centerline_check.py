"""Run by Testing/test_vessel_vmtk_interop.py inside VMTK's own venv (Python 3.12, vmtk 1.5.2):
VMTK's branch extractor, attributes filter and centerline merger on a centerline .vtp, as
SlicerVMTK's Extract Centerline (curve tree) and Centerline Disassembly call them. Prints
what they made as one JSON line. Not a test module itself (no SegForge import: VMTK's venv
does not have it).
"""
import json
import sys
from pathlib import Path

import numpy as np
from vmtk import vtkvmtk
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "vmtk_peer"))
from run_vmtk import branches  # the benchmark peer's extractor, with the same settings


def main(path: str) -> None:
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(path)
    reader.Update()
    centerlines = reader.GetOutput()
    split = branches(centerlines)
    groups = vtk_to_numpy(split.GetCellData().GetArray("GroupIds"))
    blanked = vtk_to_numpy(split.GetCellData().GetArray("Blanking"))
    attributes = vtkvmtk.vtkvmtkCenterlineAttributesFilter()
    attributes.SetInputData(centerlines)
    attributes.SetAbscissasArrayName("Abscissas")
    attributes.SetParallelTransportNormalsArrayName("ParallelTransportNormals")
    attributes.Update()
    abscissas = vtk_to_numpy(attributes.GetOutput().GetPointData().GetArray("Abscissas"))
    merger = vtkvmtk.vtkvmtkMergeCenterlines()
    merger.SetInputData(split)
    merger.SetRadiusArrayName("Radius")
    merger.SetGroupIdsArrayName("GroupIds")
    merger.SetCenterlineIdsArrayName("CenterlineIds")
    merger.SetTractIdsArrayName("TractIds")
    merger.SetBlankingArrayName("Blanking")
    merger.SetResamplingStepLength(1.0)
    merger.SetMergeBlanked(1)
    merger.Update()
    print(json.dumps({
        "groups": sorted({int(g) for g in groups}),
        "blanked_groups": sorted({int(g) for g, b in zip(groups, blanked) if b}),
        "split_cells": int(split.GetNumberOfCells()),
        "largest_abscissa": float(np.max(abscissas)),
        "merged_cells": int(merger.GetOutput().GetNumberOfCells()),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
