"""Save and read meshes and polylines the way 3D Slicer does: LPS with a ``SPACE`` tag.

Slicer writes models in LPS and marks them (field data ``SPACE`` in .vtp, a
``SPACE=LPS`` header comment in .vtk); a file without the mark is read as RAS. The engine
keeps LPS throughout, so files written here open in Slicer exactly where they belong.
"""
from __future__ import annotations

import os
from pathlib import Path

from vtkmodules.vtkCommonCore import vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkIOLegacy import vtkPolyDataReader, vtkPolyDataWriter
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLPolyDataWriter

from .errors import InputError

SPACE_FIELD = "SPACE"


def write_polydata(polydata: vtkPolyData, path: str | os.PathLike) -> Path:
    """Write LPS ``polydata`` to .vtp or .vtk, tagged as LPS for Slicer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tagged = vtkPolyData()
    tagged.ShallowCopy(polydata)
    space = vtkStringArray()
    space.SetName(SPACE_FIELD)
    space.InsertNextValue("LPS")
    tagged.GetFieldData().AddArray(space)
    if path.suffix == ".vtp":
        writer = vtkXMLPolyDataWriter()
        writer.SetDataModeToBinary()
    elif path.suffix == ".vtk":
        writer = vtkPolyDataWriter()
        writer.SetHeader("SPACE=LPS")
        writer.SetFileVersion(42)
    else:
        raise InputError(f"Cannot write {path.name}", "meshes are written as .vtp or .vtk", "use one of those suffixes")
    # VTK writes into a string and Python writes the file: a full disk is an OSError (ENOSPC),
    # where VTK's own file writer reports success over a truncated file.
    writer.SetWriteToOutputString(1)
    writer.SetInputData(tagged)
    if not writer.Write():
        raise InputError(f"Could not write {path}", "VTK's writer failed", "check the mesh is valid")
    text = writer.GetOutputStdString() if hasattr(writer, "GetOutputStdString") else writer.GetOutputString()
    with open(path, "wb") as handle:
        handle.write(text.encode("latin-1") if isinstance(text, str) else bytes(text))
    return path


def read_polydata_lps(path: str | os.PathLike) -> vtkPolyData:
    """Read .vtp/.vtk; returns LPS points (a file without the LPS mark is taken as RAS and flipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No file at {path}", "the path does not exist", "check the path")
    reader = vtkXMLPolyDataReader() if path.suffix == ".vtp" else vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    polydata = reader.GetOutput()
    if _is_lps(polydata, reader):
        return polydata
    return ras_lps_flipped(polydata)


def _is_lps(polydata: vtkPolyData, reader: object) -> bool:
    field = polydata.GetFieldData().GetAbstractArray(SPACE_FIELD)
    if field is not None:
        return field.GetValue(0).upper() == "LPS"
    header = reader.GetHeader() if isinstance(reader, vtkPolyDataReader) else ""
    return "SPACE=LPS" in (header or "").upper()


def ras_lps_flipped(polydata: vtkPolyData) -> vtkPolyData:
    """The same mesh with x and y negated (RAS <-> LPS); two flips keep triangle orientation."""
    from vtkmodules.vtkCommonTransforms import vtkTransform
    from vtkmodules.vtkFiltersGeneral import vtkTransformPolyDataFilter

    flip = vtkTransform()
    flip.Scale(-1.0, -1.0, 1.0)
    transformer = vtkTransformPolyDataFilter()
    transformer.SetTransform(flip)
    transformer.SetInputData(polydata)
    transformer.Update()
    return transformer.GetOutput()
