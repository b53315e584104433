"""The vessel mask: hysteresis, seeds in LPS on oblique grids, largest component, ROI, holes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import OBLIQUE
from segforge.errors import InputError
from segforge.image import Image
from segforge.vessel import VesselMaskParameters, vessel_mask, vesselness
from segforge.vessel import mask as masks
from segforge.vessel.vesselness import filter_reach_voxels
from test_vesselness import tube_image

ORIGIN = (-30.0, 12.0, 250.0)
SPACING = (0.9, 0.8, 1.4)
#: Two disjoint tubes in LPS mm: a thick long one and a thin short one.
THICK = ((-22.0, 22.0, 266.0), (8.0, 34.0, 266.0), 3.0)
THIN = ((-20.0, 26.0, 256.0), (-6.0, 26.0, 256.0), 1.5)


def two_tubes() -> Image:
    """The two tubes on an oblique, anisotropic grid whose box holds them both."""
    return tube_image((22, 34, 40), SPACING, [THICK, THIN], value=400.0, noise=10.0,
                      direction=OBLIQUE, origin_lps=_origin_for_centre((-7.0, 28.0, 261.0), (22, 34, 40)),
                      supersample=2)


def _origin_for_centre(centre_lps, shape_kji):
    half = np.array([(n - 1) / 2.0 for n in reversed(shape_kji)]) * np.asarray(SPACING)
    return tuple(np.asarray(centre_lps) - OBLIQUE @ half)


def tube_voxels(image: Image, segment) -> np.ndarray:
    """The voxels of ``image`` inside one tube (no partial volume, no noise)."""
    drawn = tube_image(image.array.shape, image.spacing, [segment], direction=image.direction_lps,
                       origin_lps=image.origin_lps, supersample=1)
    return drawn.array > 50


PARAMETERS = VesselMaskParameters(1.0, 3.0, 3, threshold=0.1, min_intensity=150.0)


@pytest.fixture(scope="module")
def image() -> Image:
    return two_tubes()


@pytest.fixture(scope="module")
def both(image) -> np.ndarray:
    return vessel_mask(image, PARAMETERS).array > 0


def recall(mask: np.ndarray, truth: np.ndarray) -> float:
    return float((mask & truth).sum() / truth.sum())


def test_both_tubes_are_found_and_nothing_else(image, both):
    thick, thin = tube_voxels(image, THICK), tube_voxels(image, THIN)
    assert recall(both, thick) > 0.7 and recall(both, thin) > 0.7
    assert (both & ~thick & ~thin).sum() < 0.1 * both.sum()  # no noise voxels worth counting


def test_seeds_in_lps_select_the_components_they_touch(image, both):
    thick, thin = tube_voxels(image, THICK), tube_voxels(image, THIN)
    on_thin = tuple(np.add(THIN[0], THIN[1]) / 2)
    on_thick = tuple(np.add(THICK[0], THICK[1]) / 2)
    only_thin = vessel_mask(image, replace(PARAMETERS, seeds_lps=(on_thin,))).array > 0
    assert recall(only_thin, thin) > 0.6 and not (only_thin & thick).any()
    only_thick = vessel_mask(image, replace(PARAMETERS, seeds_lps=[list(on_thick)])).array > 0
    assert recall(only_thick, thick) > 0.6 and not (only_thick & thin).any()
    # a click on the thick tube's wall (2.5 mm off its axis, 0.5 mm inside) still counts
    near = (on_thick[0], on_thick[1], on_thick[2] + 2.5)
    np.testing.assert_array_equal(vessel_mask(image, replace(PARAMETERS, seeds_lps=(near,))).array > 0, only_thick)
    both_seeds = vessel_mask(image, replace(PARAMETERS, seeds_lps=(on_thin, on_thick))).array > 0
    np.testing.assert_array_equal(both_seeds, only_thin | only_thick)


def test_largest_component_is_the_thick_tube(image):
    largest = vessel_mask(image, replace(PARAMETERS, largest_component=True)).array > 0
    assert recall(largest, tube_voxels(image, THICK)) > 0.6
    assert not (largest & tube_voxels(image, THIN)).any()


def test_a_seed_off_every_vessel_or_outside_the_image_is_refused(image):
    with pytest.raises(InputError, match="seed point 2"):
        vessel_mask(image, replace(PARAMETERS, seeds_lps=(THIN[0], (-7.0, 18.0, 254.0))))
    with pytest.raises(InputError, match="outside the image"):
        vessel_mask(image, replace(PARAMETERS, seeds_lps=((500.0, 0.0, 0.0),)))


def test_roi_keeps_only_what_lies_inside_its_lps_box(image, both):
    box = (-14.0, 20.0, 260.0, 10.0, 40.0, 272.0)  # around the thick tube's end, missing the thin one
    inside_box = masks.roi_voxels(image, box)
    assert inside_box.any() and not inside_box.all()
    in_roi = vessel_mask(image, replace(PARAMETERS, roi_lps=box)).array > 0
    assert in_roi.any() and not (in_roi & ~inside_box).any()
    assert recall(in_roi, tube_voxels(image, THICK) & inside_box) > 0.6
    with pytest.raises(InputError, match="misses the image"):
        vessel_mask(image, replace(PARAMETERS, roi_lps=(100.0, 100.0, 100.0, 110.0, 110.0, 110.0)))


def test_roi_crop_sees_the_same_neighbourhood_as_the_whole_volume(image):
    box = (-14.0, 20.0, 260.0, 10.0, 40.0, 272.0)
    parameters = replace(PARAMETERS, gamma=200.0)  # fixed: the automatic gamma depends on the crop
    crop, inner = masks.roi_crop(image, box, filter_reach_voxels(image, parameters))
    whole = vesselness(image, parameters).array
    start = [s.start for s in crop]
    origin = image.ijk_to_lps() @ np.array([start[2], start[1], start[0], 1.0])
    part = vesselness(Image(image.array[crop], image.spacing, tuple(origin[:3]), image.direction_lps), parameters)
    np.testing.assert_allclose(part.array[inner], whole[crop][inner], atol=1e-5)
    assert whole[crop][inner].max() > 0.1


def test_hysteresis_keeps_weak_voxels_only_when_they_reach_a_strong_one():
    response = np.zeros((5, 5, 12), np.float32)
    response[2, 2, 0:5] = [0.9, 0.4, 0.4, 0.4, 0.4]   # strong start, weak tail: kept whole
    response[2, 2, 7:12] = 0.4                         # weak only: dropped
    response[0, 0, 6] = 0.5                            # diagonal neighbour of nothing strong
    kept = masks.hysteresis(response, high=0.8, low=0.3)
    assert kept[2, 2, 0:5].all() and not kept[2, 2, 7:].any() and not kept[0, 0, 6]
    assert kept.sum() == 5
    # a corner-touching voxel belongs (26-connectivity)
    response[3, 3, 5] = 0.4
    assert masks.hysteresis(response, high=0.8, low=0.3)[3, 3, 5]
    # an excluded voxel breaks the chain
    allowed = np.ones(response.shape, bool)
    allowed[2, 2, 1] = False
    assert not masks.hysteresis(response, 0.8, 0.3, allowed)[2, 2, 2:5].any()


def test_hysteresis_grows_the_mask_along_the_tubes(image, both):
    grown = vessel_mask(image, replace(PARAMETERS, low_threshold=0.03)).array > 0
    assert both.sum() < grown.sum() and not (both & ~grown).any()


def test_enclosed_holes_are_filled_open_ones_are_not():
    shell = np.zeros((15, 15, 15), bool)
    k, j, i = np.indices(shell.shape)
    radius = np.sqrt((k - 7) ** 2 + (j - 7) ** 2 + (i - 7) ** 2)
    shell[(radius >= 4) & (radius <= 6)] = True
    filled = masks.fill_holes(shell)
    assert filled[7, 7, 7] and filled.sum() == (radius <= 6).sum()
    pipe = np.zeros((15, 15, 15), bool)
    ring = np.hypot(j - 7, i - 7)
    pipe[(ring >= 3) & (ring <= 5)] = True  # open at both ends along k
    np.testing.assert_array_equal(masks.fill_holes(pipe), pipe)
    # random blobs: exactly what scipy's binary_fill_holes gives
    from scipy import ndimage

    blobs = ndimage.gaussian_filter(np.random.default_rng(2).random((30, 34, 38)), 1.5) > 0.48
    assert blobs.any() and not np.array_equal(ndimage.binary_fill_holes(blobs), blobs)
    np.testing.assert_array_equal(masks.fill_holes(blobs), ndimage.binary_fill_holes(blobs))


def test_intensity_window_and_empty_results_say_what_to_do(image, both):
    assert np.all(image.array[both] >= 150.0)
    with pytest.raises(InputError) as caught:
        vessel_mask(image, replace(PARAMETERS, min_intensity=5000.0))
    assert "No voxel passed" in caught.value.what and "threshold" in caught.value.todo


def test_parameters_refuse_nonsense_and_take_json_lists():
    assert VesselMaskParameters(seeds_lps=[[1, 2, 3]]) == VesselMaskParameters(seeds_lps=((1.0, 2.0, 3.0),))
    assert VesselMaskParameters(roi_lps=[0, 0, 0, 1, 1, 1]).roi_lps == (0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    for bad in ({"seeds_lps": [[1, 2]]}, {"roi_lps": [0, 0, 0, -1, 1, 1]}, {"measure": "jerman2"},
                {"threshold": 0.2, "low_threshold": 0.3}, {"device": "tpu"}, {"min_intensity": 5, "max_intensity": 1},
                {"min_radius_mm": 3.0, "max_radius_mm": 2.0}):
        with pytest.raises(InputError):
            VesselMaskParameters(**bad)


def test_lumen_refinement_brings_the_edge_to_the_true_radius():
    """A bright cylinder with a blurred (partial-volume) edge: vesselness alone gives a mask
    wider than the lumen; the refined mask's volume is close to the true one."""
    from scipy import ndimage

    shape, radius = (40, 48, 48), 5.0
    k, j, i = np.indices(shape)
    inside = np.hypot(j - 24, i - 24) <= radius
    array = ndimage.gaussian_filter(inside.astype(np.float32) * 400 + 100, 1.0)
    array += np.random.default_rng(0).normal(0, 5, shape).astype(np.float32)
    image = Image(array.astype(np.int16), (1.0, 1.0, 1.0))
    plain = VesselMaskParameters(2.0, 8.0, 3, threshold=0.1, low_threshold=0.05, largest_component=True)
    wide = vessel_mask(image, plain).array.astype(bool)
    refined = vessel_mask(image, replace(plain, refine_lumen=True)).array.astype(bool)
    true_voxels = inside[2:-2].sum()
    error_wide = abs(wide[2:-2].sum() - true_voxels) / true_voxels
    error_refined = abs(refined[2:-2].sum() - true_voxels) / true_voxels
    assert error_refined < 0.1 and error_refined < error_wide / 2


def _vmtk_case():
    from conftest import SAMPLE_DATA
    from segforge.image_io import read_volume

    folder = SAMPLE_DATA / "vmtk_aorta_cemra"
    image = read_volume(folder / "aorta.mha")
    reference = read_volume(folder / "aorta_mask_DERIVED_levelset_lt0.nii.gz").array > 0
    return image, reference


def _dice_in_grown_box(image: Image, reference: np.ndarray, ours: np.ndarray, grow_mm: float = 3.0) -> float:
    """Dice inside the reference's bounding box grown by ``grow_mm`` (the issue's comparison)."""
    pad = [int(np.ceil(grow_mm / s)) for s in reversed(image.spacing)]
    box = tuple(slice(max(0, int(w.min()) - p), int(w.max()) + p + 1) for w, p in zip(np.nonzero(reference), pad))
    return float(2 * (ours[box] & reference[box]).sum() / (ours[box].sum() + reference[box].sum()))


def test_mra_preset_against_vmtks_level_set():
    """Real CE-MRA: Dice with VMTK's level-set mask inside its box grown by 3 mm (target 0.90).

    VMTK's level set is grown between seeds at the two iliac ends and the aorta, so it
    stops there; the user's equivalent here is an ROI around the same vessels (its LPS box).
    With it: 0.939 (docs/vessel.md). Without it our mask rightly runs on past the level
    set's ends and into side branches inside the grown box: 0.880, guarded against regression.
    """
    from segforge.vessel.pipeline import preset

    image, reference = _vmtk_case()
    ijk = np.argwhere(reference)[:, ::-1].astype(float)
    matrix = image.ijk_to_lps()
    lps = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    roi = tuple(lps.min(axis=0)) + tuple(lps.max(axis=0))
    with_roi = vessel_mask(image, replace(preset("mra"), roi_lps=roi)).array > 0
    assert _dice_in_grown_box(image, reference, with_roi) >= 0.90
    whole = vessel_mask(image, preset("mra")).array > 0
    assert _dice_in_grown_box(image, reference, whole) >= 0.87


@pytest.mark.parametrize("name", ["cta", "mra", "dark"])
def test_pure_noise_says_no_vessels_were_found(name):
    """Relative thresholds find something in any image; the contrast check refuses chance."""
    from segforge.vessel.pipeline import preset

    rng = np.random.default_rng(7)
    level = 300.0 if name == "cta" else 100.0
    noise = Image(rng.normal(level, 25.0, (48, 64, 64)).astype(np.float32), (0.8, 0.8, 1.0),
                  direction_lps=OBLIQUE)
    with pytest.raises(InputError, match="No vessels were found") as error:
        vessel_mask(noise, preset(name))
    assert "noise standard deviations" in str(error.value)


def test_contrast_to_noise_tells_a_real_vessel_from_chance():
    image, reference = _vmtk_case()
    assert masks.contrast_to_noise(image.array, reference) > 20
    noise = np.random.default_rng(3).normal(0, 10, (32, 32, 32)).astype(np.float32)
    blob = np.zeros(noise.shape, bool)
    blob[10:20, 10:20, 10:20] = True
    assert abs(masks.contrast_to_noise(noise, blob)) < 1.5
    noise[blob] += 100.0
    assert masks.contrast_to_noise(noise, blob) > 8
    wide = np.zeros(noise.shape, bool)  # vesselness blurs: a mask 2.7 times the lumen still counts
    wide[8:22, 8:22, 8:22] = True
    assert masks.contrast_to_noise(noise, wide) > 8
    assert masks.contrast_to_noise(np.zeros((8, 8, 8)), np.zeros((8, 8, 8), bool)) == float("-inf")
