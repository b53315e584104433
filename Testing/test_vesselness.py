"""Vesselness on synthetic tubes with known answers, and against SimpleITK's Frangi."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pytest
import torch

from conftest import OBLIQUE
from segforge.errors import Cancelled, InputError
from segforge.image import Image
from segforge.vessel import VesselMaskParameters, vesselness
from segforge.vessel.hessian import symmetric_eigenvalues
from segforge.vessel.vesselness import structureness_gamma

Segment = tuple[Sequence[float], Sequence[float], float]  # LPS end points (mm) and radius (mm)


def tube_image(shape_kji: Sequence[int], spacing: Sequence[float], segments: Sequence[Segment], *,
               value: float = 100.0, background: float = 0.0, noise: float = 0.0,
               direction=np.eye(3), origin_lps=(0.0, 0.0, 0.0), supersample: int = 3, seed: int = 0) -> Image:
    """Tubes (capsules) drawn in LPS millimetres on any grid, with partial volume.

    Each voxel holds the fraction of it inside a tube (``supersample``^3 points), so
    coarse and fine grids show the same object.
    """
    grid = Image(np.zeros(shape_kji, np.float32), spacing, origin_lps, direction)
    matrix = grid.ijk_to_lps()
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    k, j, i = np.indices(shape_kji, dtype=np.float64)
    fraction = np.zeros(shape_kji)
    for dk in offsets:
        for dj in offsets:
            for di in offsets:
                ijk = np.stack([i + di, j + dj, k + dk, np.ones_like(i)], axis=-1)
                points = ijk @ matrix.T[:, :3]
                inside = np.zeros(shape_kji, bool)
                for start, stop, radius in segments:
                    a, b = np.asarray(start, float), np.asarray(stop, float)
                    t = np.clip(((points - a) @ (b - a)) / np.dot(b - a, b - a), 0.0, 1.0)
                    inside |= np.linalg.norm(points - (a + t[..., None] * (b - a)), axis=-1) <= radius
                fraction += inside
    fraction /= supersample ** 3
    array = background + (value - background) * fraction
    if noise:
        array = array + np.random.default_rng(seed).normal(0.0, noise, shape_kji)
    return grid.with_array(array.astype(np.float32))


def straight_tube(spacing: Sequence[float], radius: float, size_mm: float = 24.0, **kwargs) -> Image:
    """One tube along the i axis through the middle of a ``size_mm`` cube."""
    shape = tuple(int(round(size_mm / s)) for s in reversed(spacing))
    centre = [(n // 2) * s for n, s in zip(reversed(shape), spacing)]  # LPS of the middle voxel (i, j, k)
    start, stop = list(centre), list(centre)
    start[0], stop[0] = -100.0, 100.0
    return tube_image(shape, spacing, [(start, stop, radius)], **kwargs)


def axis_value(response: Image) -> float:
    k, j, i = response.array.shape
    return float(response.array[k // 2, j // 2, i // 2])


def single_scale(radius: float, **kwargs) -> VesselMaskParameters:
    return VesselMaskParameters(radius, radius, 1, **kwargs)


#: Radii a factor sqrt(2) apart, in mm; gamma far above the Hessian keeps Frangi's
#: structureness term in its linear range, where the scale-normalised peak shows.
RADII = [2.0, 2.83, 4.0, 5.66, 8.0]
LINEAR = {"gamma": 1000.0}


@pytest.mark.parametrize("measure", ["frangi", "sato"])
@pytest.mark.parametrize("radius", [2.83, 4.0])
def test_a_tube_responds_most_at_the_scale_of_its_radius(measure, radius):
    image = straight_tube((0.5, 0.5, 0.5), radius, size_mm=28.0)
    on_axis = [axis_value(vesselness(image, single_scale(r, measure=measure, **LINEAR))) for r in RADII]
    assert RADII[int(np.argmax(on_axis))] == radius, on_axis
    # and it is a clear peak, not a plateau
    best = max(on_axis)
    assert on_axis[0] < 0.8 * best and on_axis[-1] < 0.8 * best


def test_bright_and_dark_vessels():
    bright = straight_tube((0.5, 0.5, 0.5), 2.0, size_mm=16.0, value=300.0, background=100.0)
    dark = bright.with_array(400.0 - bright.array)  # the same tube, dark on a bright background
    looking_for_bright = VesselMaskParameters(1.5, 3.0, 2, bright_vessels=True, gamma=50.0)
    looking_for_dark = VesselMaskParameters(1.5, 3.0, 2, bright_vessels=False, gamma=50.0)
    found = vesselness(bright, looking_for_bright)
    assert axis_value(found) > 0.5
    assert axis_value(vesselness(bright, looking_for_dark)) == 0.0
    assert axis_value(vesselness(dark, looking_for_bright)) == 0.0
    np.testing.assert_allclose(vesselness(dark, looking_for_dark).array, found.array, atol=1e-3 * found.array.max())


def test_anisotropic_voxels_give_the_isotropic_answer_in_millimetres():
    """A tube across 2 mm slices: the same best scale and axis response as on a 0.4 mm grid."""
    isotropic = straight_tube((0.4, 0.4, 0.4), 4.0)
    anisotropic = straight_tube((0.4, 0.4, 2.0), 4.0)
    assert anisotropic.array.shape == (12, 60, 60)

    def profile(image: Image) -> list[float]:
        return [axis_value(vesselness(image, single_scale(r, measure="sato"))) for r in RADII]

    expected, seen = profile(isotropic), profile(anisotropic)
    assert int(np.argmax(seen)) == int(np.argmax(expected)) == RADII.index(4.0)
    np.testing.assert_allclose(seen, expected, rtol=0.15)
    # Spacing matters: the same voxels read as isotropic 0.4 mm give another answer.
    squashed = anisotropic.with_array(anisotropic.array)
    squashed = Image(squashed.array, (0.4, 0.4, 0.4))
    assert not np.allclose(profile(squashed), expected, rtol=0.15)


def test_an_oblique_grid_changes_nothing_but_the_geometry():
    image = straight_tube((0.6, 0.7, 1.1), 2.0, size_mm=14.0, noise=5.0)
    oblique = Image(image.array, image.spacing, (-40.0, 12.5, 300.0), OBLIQUE)
    parameters = VesselMaskParameters(1.0, 3.0, 3)
    straight, turned = vesselness(image, parameters), vesselness(oblique, parameters)
    np.testing.assert_array_equal(turned.array, straight.array)
    assert turned.same_grid(oblique) and axis_value(turned) > 0.1


def test_slabs_give_the_same_answer_as_one_block():
    image = tube_image((40, 36, 44), (0.8, 0.9, 1.3), [((2, 3, 5), (30, 28, 40), 2.5), ((0, 30, 0), (35, 0, 50), 1.5)],
                       value=400.0, noise=20.0)
    parameters = VesselMaskParameters(1.0, 4.0, 3)
    whole = vesselness(image, parameters, chunk_voxels=10 ** 9).array
    for chunk in (36 * 44, 7 * 36 * 44):  # one slice, and 7 slices (the last slab is short)
        np.testing.assert_allclose(vesselness(image, parameters, chunk_voxels=chunk).array, whole,
                                   atol=1e-5 * whole.max())
    assert whole.max() > 0.1


def test_tap_and_matrix_smoothing_agree(monkeypatch):
    """CPU smooths with shifted multiply-adds, CUDA with matrix products: same numbers,
    borders included (both repeat the border's smoothed value outside the volume)."""
    from segforge.vessel import hessian

    image = tube_image((30, 36, 44), (0.8, 0.9, 1.3), [((2, 3, 5), (30, 28, 40), 2.5)], value=400.0, noise=20.0)
    parameters = VesselMaskParameters(1.0, 4.0, 3, device="cpu")
    taps = vesselness(image, parameters).array
    monkeypatch.setattr(hessian, "TAPS_MAX_RADIUS_J", -1)
    monkeypatch.setattr(hessian, "TAPS_MAX_RADIUS_I", -1)
    np.testing.assert_allclose(vesselness(image, parameters).array, taps, atol=1e-5)


def simpleitk_frangi(image: Image, parameters: VesselMaskParameters, gamma: float) -> np.ndarray:
    """The peer: SimpleITK's recursive Gaussian + ObjectnessMeasure, max over scales."""
    import SimpleITK as sitk

    source = sitk.GetImageFromArray(image.array.astype(np.float32))
    source.SetSpacing(image.spacing)
    result = None
    for sigma in parameters.sigmas_mm():
        smoothed = sitk.SmoothingRecursiveGaussian(source, sigma) * float(sigma ** 2)
        measure = sitk.ObjectnessMeasureImageFilter()
        measure.SetObjectDimension(1)
        measure.SetBrightObject(parameters.bright_vessels)
        measure.SetScaleObjectnessMeasure(False)
        measure.SetAlpha(parameters.alpha)
        measure.SetBeta(parameters.beta)
        measure.SetGamma(gamma)
        response = measure.Execute(smoothed)
        result = response if result is None else sitk.Maximum(result, response)
    return sitk.GetArrayFromImage(result)


@pytest.mark.parametrize("bright", [True, False])
def test_agrees_with_simpleitk_objectness(bright):
    segments = [((2, 3, 5), (30, 28, 40), 2.5), ((0, 30, 0), (35, 0, 50), 1.5), ((5, 5, 30), (40, 30, 30), 3.5)]
    image = tube_image((44, 40, 48), (0.8, 0.9, 1.2), segments, value=400.0 if bright else -400.0,
                       noise=25.0, seed=3)
    parameters = VesselMaskParameters(1.0, 4.0, 3, bright_vessels=bright)
    ours = vesselness(image, parameters).array
    theirs = simpleitk_frangi(image, parameters, structureness_gamma(image.array))
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= 0.99
    assert ours.max() > 0.1 and abs(ours.max() - theirs.max()) < 0.05 * theirs.max()


def test_closed_form_eigenvalues_match_torch():
    rng = np.random.default_rng(5)
    matrices = rng.normal(size=(2000, 3, 3)).astype(np.float64)
    matrices = matrices + matrices.transpose(0, 2, 1)
    matrices[:3] = np.diag([2.0, 2.0, 2.0])  # repeated eigenvalues
    matrices[3] = 0.0
    values = torch.from_numpy(matrices)
    parts = [values[:, 0, 0], values[:, 1, 1], values[:, 2, 2], values[:, 0, 1], values[:, 0, 2], values[:, 1, 2]]
    largest, middle, smallest = symmetric_eigenvalues(*[p.clone() for p in parts])
    expected = torch.linalg.eigvalsh(values)  # ascending
    np.testing.assert_allclose(largest, expected[:, 2], atol=1e-6)
    np.testing.assert_allclose(middle, expected[:, 1], atol=1e-6)
    np.testing.assert_allclose(smallest, expected[:, 0], atol=1e-6)


def test_nothing_tubular_gives_no_response_and_no_mask():
    from segforge.vessel import vessel_mask

    flat = Image(np.full((20, 20, 20), 300, np.int16), (0.7, 0.7, 1.5))
    assert not vesselness(flat, VesselMaskParameters(1.0, 3.0, 2)).array.any()
    with pytest.raises(InputError) as caught:
        vessel_mask(flat, VesselMaskParameters(1.0, 3.0, 2))
    assert "No vessel" in caught.value.what and caught.value.todo


def test_progress_climbs_and_cancel_lands_within_a_second():
    image = Image(np.random.default_rng(1).normal(0, 100, (128, 128, 128)).astype(np.float32))
    parameters = VesselMaskParameters(1.0, 8.0, 12, device="cpu")  # a GPU finishes before 0.3 s
    seen: list[float] = []
    started = time.monotonic()
    asked: list[float] = []

    def impatient(fraction: float, message: str) -> None:
        seen.append(fraction)
        assert "Vesselness" in message
        now = time.monotonic()
        if asked:
            raise Cancelled()
        if now - started > 0.3:
            asked.append(now)

    with pytest.raises(Cancelled):
        vesselness(image, parameters, impatient)
    assert time.monotonic() - asked[0] < 1.0
    assert 0 < seen[-1] < 1 and seen == sorted(seen)


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="CUDA"):
        vesselness(straight_tube((1.0, 1.0, 1.0), 2.0, size_mm=10.0), VesselMaskParameters(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu():
    """Same answer on the GPU, up to rounding. Frangi is discontinuous where |l1| = |l2|
    (the magnitude order swaps), so rounding may flip a few voxels on that edge."""
    image = tube_image((40, 36, 44), (0.8, 0.9, 1.3), [((2, 3, 5), (30, 28, 40), 2.5)], value=400.0, noise=20.0)
    cpu = vesselness(image, VesselMaskParameters(1.0, 4.0, 3, device="cpu")).array
    gpu = vesselness(image, VesselMaskParameters(1.0, 4.0, 3, device="cuda")).array
    close = np.abs(gpu - cpu) <= 1e-4 + 1e-3 * np.abs(cpu)
    assert close.mean() > 0.999, (close.mean(), np.abs(gpu - cpu).max())
    assert np.corrcoef(gpu.ravel(), cpu.ravel())[0, 1] > 0.999
