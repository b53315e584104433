"""Simple-point and end-point tests on packed 3x3x3 neighbourhoods, vectorised over voxels.

Why this file: topology-preserving thinning deletes *simple* points only (voxels whose
removal changes no component, loop or cavity). Menten et al. evaluate Bertrand's Boolean
characterisation as a long polynomial over every voxel of the volume at every
sub-iteration; that is what makes their operator slow and memory-hungry (every term is a
full-size float tensor kept for backward). Here the test runs only on the few voxels that
can be deleted (border voxels of one sub-field), each neighbourhood packed into the bits of
one int64, and the two connectivity counts of the characterisation are computed as
bit-parallel flood fills: a dilation of a 27-bit set is a handful of shifts and masks.

The characterisation (Bertrand and Malandain 1994, 26-connected object, 6-connected
background): a voxel ``p`` is simple iff

1. the object in its 26-neighbourhood (``p`` excluded) is one 26-connected piece, and
2. the background in its 18-neighbourhood (``p`` excluded) has exactly one 6-connected
   piece that touches one of ``p``'s six face neighbours.

Bit ``i`` of a code is the neighbour at offset ``(dz, dy, dx) = divmod(...)`` with
``i = 9 * (dz + 1) + 3 * (dy + 1) + (dx + 1)``; bit 13 is the voxel itself.

Works on any torch device (integer bit operations only).
"""
from __future__ import annotations

import itertools

import torch

CENTRE_BIT = 13
NEIGHBOUR_COUNT = 27


def _mask(condition) -> int:
    """The 27-bit set of neighbourhood positions (dz, dy, dx in 0..2) where ``condition`` holds."""
    bits = 0
    for dz, dy, dx in itertools.product(range(3), repeat=3):
        if condition(dz, dy, dx):
            bits |= 1 << (9 * dz + 3 * dy + dx)
    return bits


ALL = _mask(lambda z, y, x: True)
_NOT_LOW = {axis: _mask(lambda *c, a=axis: c[a] != 0) for axis in range(3)}
_NOT_HIGH = {axis: _mask(lambda *c, a=axis: c[a] != 2) for axis in range(3)}
_STRIDE = {0: 9, 1: 3, 2: 1}
#: the 18-neighbourhood without the centre (faces and edges: one or two offsets non-zero)
N18 = _mask(lambda z, y, x: 1 <= (z != 1) + (y != 1) + (x != 1) <= 2)
#: the six face neighbours
N6 = _mask(lambda z, y, x: (z != 1) + (y != 1) + (x != 1) == 1)


def _shift(bits: torch.Tensor, axis: int, forward: bool) -> torch.Tensor:
    """Every set position moved one step along ``axis`` (those that would leave the cube drop)."""
    if forward:
        return (bits << _STRIDE[axis]) & _NOT_LOW[axis]
    return (bits >> _STRIDE[axis]) & _NOT_HIGH[axis]


def dilate26(bits: torch.Tensor) -> torch.Tensor:
    """The 3x3x3 box dilation of each packed set, as three separable 1-D dilations."""
    for axis in range(3):
        bits = bits | _shift(bits, axis, True) | _shift(bits, axis, False)
    return bits


def dilate6(bits: torch.Tensor) -> torch.Tensor:
    """The face-neighbour (cross) dilation of each packed set."""
    out = bits
    for axis in range(3):
        out = out | _shift(bits, axis, True) | _shift(bits, axis, False)
    return out


def _grow(seed: torch.Tensor, allowed: torch.Tensor, dilate) -> torch.Tensor:
    """The connected part of ``allowed`` that holds ``seed`` (flood fill to a fixed point)."""
    grown = seed
    while True:
        step = dilate(grown) & allowed
        if torch.equal(step, grown):
            return grown
        grown = step


def _lowest_bit(bits: torch.Tensor) -> torch.Tensor:
    return bits & -bits


def pack(neighbourhoods: torch.Tensor) -> torch.Tensor:
    """(n, 27) booleans in bit order -> (n,) int64 codes."""
    weights = torch.ones(NEIGHBOUR_COUNT, dtype=torch.int64, device=neighbourhoods.device) << torch.arange(
        NEIGHBOUR_COUNT, device=neighbourhoods.device)
    return (neighbourhoods.to(torch.int64) * weights).sum(dim=1)


def is_simple(codes: torch.Tensor) -> torch.Tensor:
    """Whether the centre of each packed neighbourhood is a simple point (see module docstring)."""
    codes = codes.to(torch.int64)
    objects = codes & (ALL & ~(1 << CENTRE_BIT))
    one_object = (objects != 0) & (_grow(_lowest_bit(objects), objects, dilate26) == objects)
    background = ~codes & N18
    faces = background & N6
    touching = _grow(_lowest_bit(faces), background, dilate6)
    one_background = (faces != 0) & ((touching & faces) == faces)
    return one_object & one_background


def neighbour_count(neighbourhoods: torch.Tensor) -> torch.Tensor:
    """Object neighbours of each centre (itself excluded), from (n, 27) booleans."""
    return neighbourhoods.sum(dim=1) - neighbourhoods[:, CENTRE_BIT].to(torch.int64)
