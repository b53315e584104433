"""Trilinear sampling of a volume at many points, fast.

Why not ``scipy.ndimage.map_coordinates``: the rays of the sub-voxel radii and the
cross-sections take about a million samples per vessel, and the straightened view millions;
``map_coordinates`` goes through its general spline machinery for every point (about 150 ns
each here), where eight gathers from the flat volume and seven multiply-adds in float32 do
the same for order 1 about three times faster. The answer is the same as
``map_coordinates(volume, (k, j, i), order=1, mode="constant", cval=cval)``, to float32
rounding (tested): inside the volume, trilinear interpolation of the eight voxels around the
point; outside it (any index below 0 or above the last), ``cval``.

Why in blocks: each sample passes through some twenty element-wise steps (indices, weights,
corner values), each a pass over a temporary array. Over a million samples those arrays are
megabytes and every pass streams through memory; over ``BLOCK`` samples they stay in the
core's cache. Every sample is computed by the same float32 operations either way (the same
values, bit for bit); with every step of a block written into arrays made once for it,
the CTA aorta's 1.1 million samples took 20-21 ms instead of 42-44 (load 1.4-2.5).
"""
from __future__ import annotations

import numpy as np

#: Samples interpolated at a time: 32 Ki samples keep a block's temporaries (about 20 arrays
#: of 4 or 8 bytes each) within a 1 MiB L2 cache; 16 Ki (more Python per sample) and 64 Ki
#: (spilling out of it) were both slower on the CTA aorta's rays.
BLOCK = 1 << 15


def trilinear(volume: np.ndarray, k: np.ndarray, j: np.ndarray, i: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """``volume`` [k, j, i] interpolated trilinearly at continuous indices (k, j, i), arrays
    of one shape (float32 is enough for indices below a few thousand); float32, that shape."""
    k, j, i = np.broadcast_arrays(*(np.asarray(c) for c in (k, j, i)))
    shape = k.shape
    flat = _flat(volume)
    k, j, i = (c.reshape(-1) for c in (k, j, i))
    out = np.empty(k.size, np.float32)
    for start in range(0, k.size, BLOCK):
        block = slice(start, start + BLOCK)
        kji = np.empty((3, len(k[block])), np.float32)
        kji[0], kji[1], kji[2] = k[block], j[block], i[block]
        out[block] = _trilinear_block(flat, volume.shape, kji, cval)
    return out.reshape(shape)


def trilinear_on_rays(volume: np.ndarray, origin: np.ndarray, heading: np.ndarray, steps: np.ndarray,
                      cval: float = 0.0) -> np.ndarray:
    """``volume`` at ``origin + steps * heading`` along each ray: (n, m) float32 for origins and
    headings (n, 3) (continuous kji indices, per step) and ``steps`` (n, m).

    The same values as :func:`trilinear` of those points (each coordinate computed by the same
    expression, in the same precision, then rounded to float32), but the points are made a
    block of rays at a time, straight into float32: a million samples' coordinates, 24 MB in
    float64, then never leave the cache."""
    count, samples = np.shape(steps)
    flat = _flat(volume)
    out = np.empty((count, samples), np.float32)
    rays = max(BLOCK // max(samples, 1), 1)
    precision = np.result_type(origin, heading, steps)
    # each axis' origins and headings in that precision once: mixed types cast in every operation
    origin, heading = (np.ascontiguousarray(np.asarray(a).T, precision) for a in (origin, heading))
    for start in range(0, count, rays):
        block = slice(start, start + rays)
        kji = np.empty((3, len(steps[block]), samples), np.float32)
        along = np.empty(kji.shape[1:], precision)
        for axis in range(3):
            np.multiply(steps[block], heading[axis, block, None], out=along)
            along += origin[axis, block, None]
            kji[axis] = along
        out[block] = _trilinear_block(flat, volume.shape, kji.reshape(3, -1), cval).reshape(-1, samples)
    return out


def _flat(volume: np.ndarray) -> np.ndarray:
    """The volume raveled, float32 or narrower (float64, int32 and wider converted once, not per corner)."""
    flat = np.ascontiguousarray(volume).ravel()
    return flat.astype(np.float32) if np.result_type(flat.dtype, np.float32) != np.float32 else flat


def _trilinear_block(flat: np.ndarray, shape: tuple[int, int, int], kji: np.ndarray, cval: float) -> np.ndarray:
    """:func:`trilinear` of one block of samples, ``kji`` (3, n) float32, in ``flat``, the
    volume of ``shape`` raveled (float32 or narrower).

    Every step writes into arrays made once per block (no temporary per operation), and the
    corner index is summed in int32, one conversion to the gathers' intp at the end (three
    float-to-int64 conversions took a fifth of the time)."""
    count = kji.shape[1]
    index = np.int32 if flat.size < 2 ** 31 else np.intp
    valid = np.ones(count, bool)
    base = np.zeros(count, index)
    fraction = np.zeros((3, count), np.float32)
    low = np.empty(count, np.float32)
    for c, fraction_c, n, stride in zip(kji, fraction, shape, (shape[1] * shape[2], shape[2], 1)):
        valid &= c >= 0
        valid &= c <= n - 1
        np.floor(c, out=low)
        np.clip(low, 0, max(n - 2, 0), out=low)  # the cell's first corner, inside the volume
        if n > 1:
            np.subtract(c, low, out=fraction_c)  # in [0, 1] where valid
        base += low.astype(index) * index(stride)
    base = base.astype(np.intp, copy=False)
    sk, sj, si = (stride if n > 1 else 0 for stride, n in zip((shape[1] * shape[2], shape[2], 1), shape))
    fk, fj, fi = fraction
    scratch = np.empty(count, np.float32)

    def along_i(offset: int, out: np.ndarray) -> np.ndarray:
        """The cell's edge from corner ``offset`` along i, interpolated into ``out``."""
        out[...] = flat[offset:][base]  # a shifted view: no index array per corner
        np.subtract(flat[offset + si:][base], out, out=scratch)
        np.multiply(scratch, fi, out=scratch)
        return np.add(out, scratch, out=out)

    front = along_i(0, np.empty(count, np.float32))
    other = along_i(sj, np.empty(count, np.float32))
    other -= front
    other *= fj
    front += other
    back = along_i(sk, np.empty(count, np.float32))
    along_i(sk + sj, other)
    other -= back
    other *= fj
    back += other
    back -= front
    back *= fk
    back += front
    back[~valid] = cval
    return back
