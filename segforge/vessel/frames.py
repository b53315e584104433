"""Directions along a centreline: the smoothed tangent, the plane across it, and frames that
do not twist.

Why smoothed: a centreline's points carry sub-voxel jitter; a tangent from neighbouring
points tilts the cross-section plane by that jitter, and a tilted plane cuts an ellipse
out of a round vessel (larger area, larger maximum diameter). A Gaussian derivative over
about the vessel's radius follows the vessel, not its noise.

Why rotation-minimising frames (Wang et al. 2008, the double reflection method): a
straightened view built from frames that twist around the path shows the lumen rotating
along its length; these frames turn only as much as the path bends.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .radius import across


def arc_length(points: np.ndarray) -> np.ndarray:
    """Cumulative length (mm) along a polyline, 0 at its first point."""
    points = np.asarray(points, float).reshape(-1, 3)
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def smoothed_tangents(points: np.ndarray, scale_mm: float) -> np.ndarray:
    """Unit tangents of a polyline from a Gaussian derivative over ``scale_mm`` (at least one
    point spacing); a single point gets (0, 0, 1)."""
    points = np.asarray(points, float).reshape(-1, 3)
    if len(points) < 2:
        return np.tile([0.0, 0.0, 1.0], (len(points), 1))
    arc = arc_length(points)
    step = max(arc[-1] / (len(points) - 1), 1e-6)
    width = max(scale_mm / step, 1.0)
    # continue the curve past its ends by point reflection so the end tangents stay straight
    pad = min(len(points) - 1, int(np.ceil(4 * width)))
    padded = np.vstack([2 * points[0] - points[pad:0:-1], points, 2 * points[-1] - points[-2:-pad - 2:-1]])
    tangent = ndimage.gaussian_filter1d(padded, width, axis=0, order=1, mode="nearest")[pad:pad + len(points)]
    length = np.linalg.norm(tangent, axis=1, keepdims=True)
    fallback = points[-1] - points[0]
    if np.linalg.norm(fallback) < 1e-9:
        fallback = np.array([0.0, 0.0, 1.0])
    return np.where(length > 1e-9, tangent / np.maximum(length, 1e-12), fallback / np.linalg.norm(fallback))


def section_planes(points: np.ndarray, scale_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent t and two unit vectors u, v spanning the plane across it, at each point."""
    tangent = smoothed_tangents(points, scale_mm)
    u, v = across(tangent)
    return tangent, u, v


def rotation_minimising_frames(points: np.ndarray, tangents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normals u and binormals v (each (n, 3)) along a curve, turning as little as possible.

    The first normal is the one :func:`.radius.across` picks for the first tangent; each
    next one is the previous reflected twice (across the bisector of the step, then of
    the tangents), which transports it without twist.
    """
    points = np.asarray(points, float).reshape(-1, 3)
    tangents = np.asarray(tangents, float).reshape(-1, 3)
    count = len(points)
    normals = np.zeros((count, 3))
    if count == 0:
        return normals, normals.copy()
    normals[0] = across(tangents[:1])[0][0]
    for i in range(count - 1):
        step = points[i + 1] - points[i]
        c1 = step @ step
        if c1 < 1e-18:
            left, t_left = normals[i], tangents[i]
        else:
            left = normals[i] - (2 / c1) * (step @ normals[i]) * step
            t_left = tangents[i] - (2 / c1) * (step @ tangents[i]) * step
        second = tangents[i + 1] - t_left
        c2 = second @ second
        normal = left if c2 < 1e-18 else left - (2 / c2) * (second @ left) * second
        normal -= (normal @ tangents[i + 1]) * tangents[i + 1]  # stay exactly across the tangent
        normals[i + 1] = normal / max(np.linalg.norm(normal), 1e-12)
    binormals = np.cross(tangents, normals)
    return normals, binormals
