"""Where a node really is: the effect of its parent transforms.

A node under a (linear) parent transform is shown by Slicer at its *world* position, so
the engine must see world geometry and results must land back there. Warping
(non-linear) transforms cannot be expressed as a voxel grid and are refused.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import vtk

from ..errors import InputError
from .convert import array_from_vtk_matrix

logger = logging.getLogger(__name__)


def node_to_world(node: Any) -> np.ndarray:
    """4x4 RAS matrix from the node's own coordinates to world; identity without a transform.

    Raises InputError when a parent transform is non-linear (a warp).
    """
    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return np.eye(4)
    if not transform_node.IsTransformToWorldLinear():
        raise InputError(
            f"'{node.GetName()}' is under a non-linear (warping) transform '{transform_node.GetName()}'",
            "a warped grid cannot be handed to the engine as a regular voxel grid",
            "harden the transform on the node (Data module: right-click, Harden transform) "
            "or resample it with the Resample Scalar/Vector/DWI Volume module")
    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    logger.debug("'%s' is under linear transform '%s'", node.GetName(), transform_node.GetName())
    return array_from_vtk_matrix(matrix)
