"""Scale-normalised Hessians of a volume slab in millimetres, and their eigenvalues, in torch.

Why this shape (measured on our 2-core CPU, see ``../shared/NOTES.md``):

- Gaussian smoothing is separable. Along k, one matrix product with a small banded
  matrix per slab; along j and i, shifted multiply-adds on CPU for small kernels and
  matrix products otherwise (always on CUDA). Both are several times faster on CPU than
  ``conv3d`` with 1-D kernels. Borders repeat the edge ("replicate"), and the voxel
  outside each border repeats the border's smoothed value, as ITK's Hessian assumes.
- Second derivatives are central differences of the smoothed slab (Lindeberg's discrete
  scale-space derivatives; ITK's ``HessianImageFilter`` does the same): 3 smoothing
  passes per scale instead of 15 with derivative-of-Gaussian kernels.
- The eigenvalues of the symmetric 3x3 Hessian come in closed form (trigonometric
  solution of the characteristic cubic), about 9x faster than ``torch.linalg.eigvalsh``.

Sigma is given in millimetres and divided by each axis' spacing, so anisotropic voxels
need no resampling; derivatives are divided by the spacing too, so the Hessian is in
intensity per mm^2 and multiplied by sigma^2 so that responses compare across scales.
Orientation (the direction matrix) does not matter: eigenvalues are rotation invariant.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

#: A Gaussian is cut at this many sigmas (the kernel keeps > 99.99 % of its mass).
TRUNCATE = 4.0


def gaussian_kernel(sigma_voxels: float) -> np.ndarray:
    """Sampled, normalised 1-D Gaussian; a unit impulse for (near) zero sigma."""
    if sigma_voxels < 0.05:
        return np.ones(1)
    radius = max(1, int(math.ceil(TRUNCATE * sigma_voxels)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma_voxels) ** 2)
    return weights / weights.sum()


def smoothing_matrix(length: int, sigma_voxels: float) -> np.ndarray:
    """``(length + 2, length)`` matrix: Gaussian smoothing along one axis, plus one extra
    output on each side that repeats the border (zero-flux padding for the differences).

    Samples beyond the border repeat the border sample ("replicate").
    """
    kernel = gaussian_kernel(sigma_voxels)
    radius = len(kernel) // 2
    outputs = np.clip(np.arange(-1, length + 1), 0, length - 1)
    matrix = np.zeros((length + 2, length))
    rows = np.repeat(np.arange(length + 2), len(kernel))
    columns = np.clip(outputs[:, None] + np.arange(-radius, radius + 1)[None, :], 0, length - 1).ravel()
    np.add.at(matrix, (rows, columns), np.tile(kernel, length + 2))
    return matrix


def kernel_radius(sigma_voxels: float) -> int:
    """How many samples a smoothing reaches on each side."""
    return len(gaussian_kernel(sigma_voxels)) // 2


#: On CPU, smooth along j (i) with shifted multiply-adds up to this kernel radius, beyond
#: it with a dense matrix product (measured crossovers on our 2-core CPU; CUDA always uses
#: the matrix product, one kernel instead of one per tap).
TAPS_MAX_RADIUS_J = 16
TAPS_MAX_RADIUS_I = 12


class SlabSmoother:
    """Smooths slabs ``[k0, k1)`` of a volume at one scale, for the Hessian of those slices.

    Holds the axis kernels (or matrices) on the compute device; :meth:`smooth` returns
    the smoothed slab padded by one voxel on every side (border voxels repeated).
    """

    def __init__(self, shape_kji: Sequence[int], sigma_voxels_kji: Sequence[float],
                 device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        self.shape = tuple(int(n) for n in shape_kji)
        self.radius_k = kernel_radius(sigma_voxels_kji[0])
        as_tensor = lambda m: torch.as_tensor(m, dtype=dtype, device=device)  # noqa: E731
        self.matrix_k = as_tensor(smoothing_matrix(self.shape[0], sigma_voxels_kji[0]))
        self.plans = []
        for axis, limit in ((1, TAPS_MAX_RADIUS_J), (2, TAPS_MAX_RADIUS_I)):
            kernel = gaussian_kernel(sigma_voxels_kji[axis])
            length = self.shape[axis]
            if device.type == "cpu" and len(kernel) // 2 <= limit:
                radius = len(kernel) // 2
                index = torch.arange(-1 - radius, length + 1 + radius, device=device).clamp_(0, length - 1)
                self.plans.append((axis, [float(w) for w in kernel], index))
            else:
                matrix = smoothing_matrix(length, sigma_voxels_kji[axis])
                self.plans.append((axis, as_tensor(matrix if axis == 1 else matrix.T.copy()), None))

    def input_range(self, k0: int, k1: int) -> tuple[int, int]:
        """The input slices ``[lo, hi)`` that smoothing slices ``k0-1 .. k1`` reads."""
        return max(0, k0 - 1 - self.radius_k), min(self.shape[0], k1 + 1 + self.radius_k)

    def smooth(self, slab: torch.Tensor, slab_start: int, k0: int, k1: int) -> torch.Tensor:
        """``slab`` holds input slices from ``slab_start`` on (at least :meth:`input_range`).

        Returns the smoothed slices ``k0-1 .. k1`` (``k1 - k0 + 2`` of them), each padded
        to ``(J + 2, I + 2)``.
        """
        lo, hi = self.input_range(k0, k1)
        source = slab[lo - slab_start:hi - slab_start]
        n_in, n_j, n_i = source.shape
        rows = self.matrix_k[k0:k1 + 2, lo:hi]  # matrix row r is output slice r - 1
        result = (rows @ source.reshape(n_in, n_j * n_i)).reshape(-1, n_j, n_i)
        for axis, kernel, index in self.plans:
            result = _along(result, axis, kernel, index)
        return result


def _along(volume: torch.Tensor, axis: int, kernel, index) -> torch.Tensor:
    """Smooth along ``axis`` (1 or 2), growing it by one repeated voxel on each side."""
    if index is None:  # dense matrix: (n + 2, n) for axis 1, its transpose for axis 2
        if axis == 1:
            return torch.matmul(kernel, volume)
        return torch.matmul(volume, kernel)
    padded = volume.index_select(axis, index)  # border-replicated copy, one gather
    length = volume.shape[axis] + 2
    taps = [padded.narrow(axis, q, length) for q in range(len(kernel))]
    result = taps[0] * kernel[0]
    for tap, weight in zip(taps[1:], kernel[1:]):
        result.add_(tap, alpha=weight)
    # the extra outputs repeat the border outputs, as the matrix rows do
    result.narrow(axis, 0, 1).copy_(result.narrow(axis, 1, 1))
    result.narrow(axis, length - 1, 1).copy_(result.narrow(axis, length - 2, 1))
    return result


def hessian_from_smoothed(smoothed: torch.Tensor, spacing_kji: Sequence[float],
                          sigma_mm: float) -> tuple[torch.Tensor, ...]:
    """Scale-normalised Hessian ``(hkk, hjj, hii, hkj, hki, hji)`` of the padded slab's
    inner voxels, by central differences, in intensity (sigma^2 x intensity per mm^2)."""
    f = smoothed
    sk, sj, si = (float(s) for s in spacing_kji)
    s2 = float(sigma_mm) ** 2
    inner = (slice(1, -1),) * 3
    c = f[inner]

    def second(plus, minus, spacing: float) -> torch.Tensor:
        return _scaled(torch.add(plus, minus).sub_(c, alpha=2.0), s2 / (spacing * spacing))

    hkk = second(f[2:, 1:-1, 1:-1], f[:-2, 1:-1, 1:-1], sk)
    hjj = second(f[1:-1, 2:, 1:-1], f[1:-1, :-2, 1:-1], sj)
    hii = second(f[1:-1, 1:-1, 2:], f[1:-1, 1:-1, :-2], si)
    along_k = f[2:] - f[:-2]  # first differences, shared by two cross terms
    hkj = _scaled(along_k[:, 2:, 1:-1] - along_k[:, :-2, 1:-1], s2 / (4 * sk * sj))
    hki = _scaled(along_k[:, 1:-1, 2:] - along_k[:, 1:-1, :-2], s2 / (4 * sk * si))
    del along_k
    along_j = f[1:-1, 2:] - f[1:-1, :-2]
    hji = _scaled(along_j[:, :, 2:] - along_j[:, :, :-2], s2 / (4 * sj * si))
    return hkk, hjj, hii, hkj, hki, hji


def _scaled(values: torch.Tensor, factor: float) -> torch.Tensor:
    return values if factor == 1.0 else values.mul_(factor)


def symmetric_eigenvalues(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
                          e: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues ``(largest, middle, smallest)`` of ``[[a, d, e], [d, b, f], [e, f, c]]``,
    element-wise, in closed form (Smith 1961). Inputs are consumed (overwritten).

    Written as few whole-array passes as possible (fused multiply-adds, in place): on
    CPU each pass over a cache-resident slab costs about the same, whatever it computes.
    """
    q = torch.add(a, b).add_(c).mul_(1.0 / 3.0)
    a.sub_(q)
    b.sub_(q)
    c.sub_(q)
    # det of the shifted matrix: a (bc - f^2) - d (dc - fe) + e (df - be)
    det = torch.mul(b, c).addcmul_(f, f, value=-1.0).mul_(a)
    det.addcmul_(d, torch.mul(d, c).addcmul_(f, e, value=-1.0), value=-1.0)
    det.addcmul_(e, torch.mul(d, f).addcmul_(b, e, value=-1.0))
    sum_squares = a.mul_(a).addcmul_(b, b).addcmul_(c, c)
    sum_squares.addcmul_(d, d, value=2.0).addcmul_(e, e, value=2.0).addcmul_(f, f, value=2.0)
    p_squared = sum_squares.mul_(1.0 / 6.0)
    p = p_squared.sqrt()
    # r = det / (2 p^3), in [-1, 1]; zero where the matrix is a multiple of the identity
    twice_p_cubed = p_squared.mul_(p).mul_(2.0).clamp_(min=torch.finfo(p.dtype).tiny)
    phi = det.div_(twice_p_cubed).clamp_(-1.0, 1.0).acos_().mul_(1.0 / 3.0)
    two_p = p.mul_(2.0)
    largest = torch.cos(phi).mul_(two_p).add_(q)
    smallest = phi.add_(2.0 * math.pi / 3.0).cos_().mul_(two_p).add_(q)
    middle = q.mul_(3.0).sub_(largest).sub_(smallest)
    return largest, middle, smallest
