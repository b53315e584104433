"""Topology-preserving 3D curve skeleton of a binary mask, ordered by distance in millimetres.

Why our own thinning instead of scikit-image's ``skeletonize`` (Lee 1994): Lee's code
sweeps the *whole* volume six times per peeled layer, so on the sparse 256^3 benchmark tree
it took 0.6-1.5 s here, mostly scanning background (this thinning: ~0.2 s), and it peels
one voxel per sweep whatever the spacing, so on a 0.4 x 0.4 x 2 mm grid its skeleton is
medial in voxels, not in millimetres. It would also add scikit-image as a dependency. Here:

- only the current surface voxels are ever looked at (the work follows the mask, not the
  volume);
- voxels are peeled in order of their Euclidean distance to the background *in mm*
  (distance-ordered thinning), so the skeleton runs along the ridge of the true distance
  map on any spacing;
- a voxel is removed only if it is *simple* (its removal changes no connected component,
  tunnel or cavity; Bertrand & Malandain's local characterisation: one 26-component of
  object in its 26-neighbourhood and one 6-component of background in its 18-neighbourhood
  6-adjacent to it) and is not the end of a curve. Simple voxels removed together are never
  26-adjacent, so parallel removal equals a sequential one and topology is kept exactly.

Each 3x3x3 neighbourhood is packed into a 27-bit integer and both connectivity tests are
bitwise flood fills, vectorised over all candidates at once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..image import Image
from ..progress import ProgressCallback, no_progress
from .radius import BoundaryDistance, unique_int

# Bit b of a neighbourhood word is the voxel at offset (dk, dj, di), b = 9(dk+1) + 3(dj+1) + (di+1).
_OFFSETS = np.array([(dk, dj, di) for dk in (-1, 0, 1) for dj in (-1, 0, 1) for di in (-1, 0, 1)])
_CENTER = np.uint32(1 << 13)
_ALL = np.uint32((1 << 27) - 1)
_N26 = _ALL & ~_CENTER
_N18 = np.uint32(sum(1 << b for b, o in enumerate(_OFFSETS) if 0 < np.abs(o).sum() <= 2))
_F6 = np.uint32(sum(1 << b for b, o in enumerate(_OFFSETS) if np.abs(o).sum() == 1))


def _axis_masks(axis: int) -> tuple[np.uint32, np.uint32]:
    """Bits that may move +1 / -1 along an axis (2 = i, 1 = j, 0 = k) without leaving the cube."""
    up = sum(1 << b for b, o in enumerate(_OFFSETS) if o[axis] != 1)
    down = sum(1 << b for b, o in enumerate(_OFFSETS) if o[axis] != -1)
    return np.uint32(up), np.uint32(down)


_SHIFTS = [(np.uint32(s),) + _axis_masks(axis) for s, axis in ((1, 2), (3, 1), (9, 0))]


def _dilate26(x: np.ndarray) -> np.ndarray:
    for shift, up, down in _SHIFTS:  # separable: the 3x3x3 cube
        x = x | ((x & up) << shift) | ((x & down) >> shift)
    return x


def _dilate6(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for shift, up, down in _SHIFTS:
        out |= ((x & up) << shift) | ((x & down) >> shift)
    return out


def _flood(seed: np.ndarray, inside: np.ndarray, dilate: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Grow ``seed`` within ``inside`` (per word) until nothing changes."""
    grown = seed
    for _ in range(27):
        bigger = dilate(grown) & inside
        if np.array_equal(bigger, grown):
            break
        grown = bigger
    return grown


def _lowest_bit(x: np.ndarray) -> np.ndarray:
    return x & (~x + np.uint32(1))


def deletable(words: np.ndarray) -> np.ndarray:
    """For 27-bit neighbourhood words: is the centre simple and not the end of a curve?"""
    fg = words & _N26
    # more than one object neighbour (one means the end of a curve, which stays): a word with
    # a single bit set is cleared by x & (x - 1)
    not_an_end = (fg & (fg - np.uint32(1))) != 0
    one_object = _flood(_lowest_bit(fg), fg, _dilate26) == fg
    bg = ~words & _N18
    bg6 = bg & _F6
    one_hole = (_flood(_lowest_bit(bg6), bg, _dilate6) & _F6) == bg6
    return not_an_end & (bg6 != 0) & one_object & one_hole


@dataclass(frozen=True)
class Skeleton:
    """Skeleton voxels of a mask and their distance to the background.

    ``voxels_kji``: (n, 3) indices into the mask's array; ``distance_mm``: for each, the
    Euclidean distance in mm from its centre to the nearest background voxel centre.
    """

    voxels_kji: np.ndarray
    distance_mm: np.ndarray
    shape_kji: tuple[int, int, int]


_F6_BITS = [b for b, o in enumerate(_OFFSETS) if np.abs(o).sum() == 1]


def skeletonize(mask: Image, progress: Optional[ProgressCallback] = None,
                distance: Optional[BoundaryDistance] = None) -> Skeleton:
    """The curve skeleton of ``mask`` (nonzero = object), medial in millimetres.

    Every connected component keeps its connectivity, tunnels (loops) and cavities. Works on
    the mask's bounding box only. Raises :class:`InputError` for an empty mask. ``distance``
    (the mask's :class:`BoundaryDistance`) is reused when given.
    """
    report = progress or no_progress
    spacing_kji = np.asarray(mask.spacing[::-1], float)
    distance = distance or BoundaryDistance(np.asarray(mask.array) != 0, spacing_kji)
    volume, low = distance.box.copy(), distance.box_corner
    flat = volume.ravel()
    strides = np.array([volume.shape[1] * volume.shape[2], volume.shape[2], 1])
    neighbour_offsets = _OFFSETS @ strides

    object_index = np.flatnonzero(flat)
    object_kji = np.column_stack(np.unravel_index(object_index, volume.shape)) - 1 + low
    object_distance = distance.box_distances()
    step = 0.5 * float(spacing_kji.min())
    object_level = np.floor(object_distance / step).astype(np.int64)
    # Voxels of one parity class (k, j, i mod 2) are never 26-adjacent: removed together safely.
    object_parity = (object_kji % 2) @ np.array([4, 2, 1])
    alive = np.ones(len(object_index), bool)
    queued = np.zeros(len(object_index), bool)

    def words(index: np.ndarray) -> np.ndarray:
        word = np.zeros(len(index), np.uint32)
        for bit, offset in enumerate(neighbour_offsets):
            word |= flat[index + offset].astype(np.uint32) << np.uint32(bit)
        return word

    # where each object voxel sits in ``object_index``: a lookup, not a search (on a thick
    # 1.8-million-voxel mask, searching and scanning marks took 11 of the thinning's 20 s)
    position = np.full(flat.size, -1, np.int32 if len(object_index) < 2 ** 31 else np.int64)
    position[object_index] = np.arange(len(object_index))

    def positions_around(index: np.ndarray) -> np.ndarray:
        """Object voxels (positions in ``object_index``, sorted, once each) next to the given flat indices."""
        around = (index[:, None] + neighbour_offsets[None]).ravel()
        return unique_int(position[around[flat[around] != 0]].astype(np.int64))

    six = neighbour_offsets[_F6_BITS]
    surface = np.flatnonzero((flat[object_index[:, None] + six[None]] == 0).any(axis=1))
    queued[surface] = True
    future = surface
    top = int(object_level.max())
    level = int(object_level.min())
    active = np.zeros(0, np.int64)
    last_report = time.monotonic()
    report(0.0, "Thinning the mask")
    while True:
        if time.monotonic() - last_report > 0.2:  # also where Cancel gets in
            report(min(level / max(top, 1), 1.0), "Thinning the mask")
            last_report = time.monotonic()
        if len(active) == 0:
            if len(future) == 0:
                break
            level = max(level + 1, int(object_level[future].min()))
            active = future[object_level[future] <= level]
            future = future[object_level[future] > level]
            continue
        queued[active] = False
        touched = []
        for parity in range(8):
            group = active[object_parity[active] == parity]
            group = group[alive[group]]
            if len(group) == 0:
                continue
            removed = group[deletable(words(object_index[group]))]
            if len(removed):
                flat[object_index[removed]] = 0
                alive[removed] = False
                touched.append(positions_around(object_index[removed]))
        fresh = np.concatenate(touched) if touched else np.zeros(0, np.int64)
        if len(touched) > 1:
            fresh = unique_int(fresh)
        fresh = fresh[~queued[fresh]]
        queued[fresh] = True
        active = fresh[object_level[fresh] <= level]
        future = np.concatenate([future, fresh[object_level[fresh] > level]])
    report(1.0, "Thinning the mask")
    kept = np.flatnonzero(alive)
    return Skeleton(object_kji[kept].astype(np.int64), object_distance[kept], tuple(mask.array.shape))


# --- the skeleton's voxel topology --------------------------------------------------------


@dataclass
class SkeletonNode:
    """A junction, end or ring anchor of the skeleton (mutable: the graph refines it)."""

    center: np.ndarray          # (3,) kji, mean of its voxels
    radius: float               # largest distance (mm) over its voxels
    alive: bool = True


@dataclass
class SkeletonChain:
    """Voxels between two nodes, in order, from node ``a``'s centre to node ``b``'s."""

    path: np.ndarray            # (n, 3) kji
    a: int
    b: int
    alive: bool = True


def trace(skeleton: Skeleton, tick: Callable[[float], None] = lambda fraction: None
          ) -> tuple[list[SkeletonNode], list[SkeletonChain]]:
    """Split skeleton voxels into nodes and the chains of voxels between them.

    A voxel with exactly two skeleton neighbours (26-connectivity) is inside a chain; every
    other voxel belongs to a node, and touching node voxels form one node, so a thick
    crossing or a staircase corner is one junction, not several. A ring with no node gets
    one. ``tick(fraction)`` is called as the work goes (progress, and the place to cancel).
    """
    voxels = skeleton.voxels_kji
    n = len(voxels)
    shape = np.asarray(skeleton.shape_kji) + 2
    key = ((voxels[:, 0] + 1) * shape[1] + voxels[:, 1] + 1) * shape[2] + voxels[:, 2] + 1
    order = np.argsort(key)
    voxels, key, dist = voxels[order], key[order], skeleton.distance_mm[order]
    half = [(dk, dj, di) for dk in (-1, 0, 1) for dj in (-1, 0, 1) for di in (-1, 0, 1)
            if (dk, dj, di) > (0, 0, 0)]
    first, second = [], []
    for dk, dj, di in half:
        target = key + (dk * shape[1] + dj) * shape[2] + di
        where = np.clip(np.searchsorted(key, target), 0, max(n - 1, 0))
        hit = key[where] == target
        first.append(np.flatnonzero(hit))
        second.append(where[hit])
    a = np.concatenate(first) if first else np.zeros(0, int)
    b = np.concatenate(second) if second else np.zeros(0, int)
    degree = np.bincount(np.concatenate([a, b]), minlength=n)
    chain = degree == 2
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for u, v in zip(a.tolist(), b.tolist()):
        neighbours[u].append(v)
        neighbours[v].append(u)

    both = ~chain[a] & ~chain[b]
    adjacency = coo_matrix((np.ones(int(both.sum())), (a[both], b[both])), shape=(n, n))
    _, cluster = connected_components(adjacency, directed=False)
    node_ids = {c: i for i, c in enumerate(sorted(set(cluster[~chain].tolist())))}
    node_of = np.full(n, -1)
    node_of[~chain] = [node_ids[c] for c in cluster[~chain].tolist()]
    nodes = [SkeletonNode(voxels[members].mean(axis=0), float(dist[members].max()))
             for members in _group(node_of[~chain], np.flatnonzero(~chain), len(node_ids))]

    edges: list[SkeletonChain] = []
    visited = np.zeros(n, bool)
    chain_list = chain.tolist()

    def walk(start: int, previous: int) -> tuple[list[int], int]:
        path, current = [start], start
        visited[start] = True
        for _ in range(n):
            step = neighbours[current][0] if neighbours[current][0] != previous else neighbours[current][1]
            if not chain_list[step]:
                return path, step
            if visited[step]:  # a ring closed on itself
                return path, -1
            visited[step] = True
            path.append(step)
            previous, current = current, step
        return path, -1

    node_voxels = np.flatnonzero(~chain).tolist()
    for count, u in enumerate(node_voxels):
        if count % 256 == 0:
            tick(count / max(len(node_voxels), 1))
        for w in neighbours[u]:
            if chain_list[w] and not visited[w]:
                path, end = walk(w, u)
                start_node = int(node_of[u])
                end_node = int(node_of[end]) if end >= 0 else start_node
                points = np.vstack([nodes[start_node].center, voxels[path], nodes[end_node].center])
                edges.append(SkeletonChain(points, start_node, end_node))
    for w in np.flatnonzero(chain & ~visited).tolist():  # rings with no node: give them one
        if visited[w]:
            continue
        nodes.append(SkeletonNode(voxels[w].astype(float), float(dist[w])))
        visited[w] = True
        path, _ = walk(neighbours[w][0], w)
        points = np.vstack([voxels[[w]], voxels[path], voxels[[w]]]).astype(float)
        edges.append(SkeletonChain(points, len(nodes) - 1, len(nodes) - 1))
    return nodes, edges


def _group(labels: np.ndarray, members: np.ndarray, count: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [members[order[bounds[i]:bounds[i + 1]]] for i in range(count)]
