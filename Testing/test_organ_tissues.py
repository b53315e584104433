"""ct-tissues: body, lungs, airway, bones, fat and muscle of a CT without model weights.

Accuracy is measured on a real abdominal CT bundled with its TotalSegmentator labels
(``Resources/SampleData/ts_ct_abdomen_3mm``, Apache-2.0). Lungs are compared with the union
of the lung lobes, bones with the union of every skeletal label (vertebrae, sacrum, ribs,
sternum, hips, femurs, humeri, scapulae, claviculae, skull); the costal cartilages are
cartilage (60-130 HU, as dense as muscle), not bone, and stay out of the reference (their
figure is printed too). TotalSegmentator has no body, fat or muscle label in ``total``:
those get plausibility checks.

Geometry: the same voxels stored in another axis order, flipped and on an oblique
direction must give the same labels in patient space; an anisotropic grid the same anatomy.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import OBLIQUE, SAMPLE_DATA
from segforge.errors import Cancelled, InputError
from segforge.image import Image
from segforge.image_io import read_image
from segforge.organ import LabelResult, TISSUE_LABELS, ct_tissues

SAMPLE = SAMPLE_DATA / "ts_ct_abdomen_3mm"
CTA = SAMPLE_DATA / "ts_thoracic_cta_aorta"

LUNG_NAMES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right")
BONE_PREFIXES = ("vertebrae_", "rib_", "sacrum", "sternum", "hip_", "femur_", "humerus_", "scapula_",
                 "clavicula_", "skull")
MUSCLE_NAMES = ("autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right")
ORGAN_NAMES = ("liver", "spleen", "kidney_left", "kidney_right")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


def reference_values(*, names: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> list[int]:
    table = json.loads((SAMPLE / "label_names.json").read_text())["total"]
    return [int(v) for v, n in table.items() if n in names or n.startswith(prefixes or ("\0",))]


@pytest.fixture(scope="module")
def sample() -> Image:
    return read_image(SAMPLE / "example_ct_sm.nii.gz")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return read_image(SAMPLE / "example_seg.nii.gz").array


@pytest.fixture(scope="module")
def result(sample: Image) -> LabelResult:
    return ct_tissues(sample)


def test_dice_against_totalsegmentator(result: LabelResult, sample: Image, reference: np.ndarray,
                                       record_property) -> None:
    labels = result.labels.array
    lungs_ref = np.isin(reference, reference_values(names=LUNG_NAMES))
    bones_ref = np.isin(reference, reference_values(prefixes=BONE_PREFIXES))
    cartilage = np.isin(reference, reference_values(names=("costal_cartilages",)))
    muscles = np.isin(reference, reference_values(names=MUSCLE_NAMES))
    organs = np.isin(reference, reference_values(names=ORGAN_NAMES))
    figures = {
        "lungs": dice(labels == 2, lungs_ref),
        "bones": dice(labels == 4, bones_ref),
        "bones_with_costal_cartilage": dice(labels == 4, bones_ref | cartilage),
        # Every structure TotalSegmentator found lies in the body (labels 1..6).
        "reference_inside_body": float((labels[reference > 0] > 0).mean()),
        "muscle_reference_as_muscle": float((labels[muscles] == 6).mean()),
        "organs_as_muscle": float((labels[organs] == 6).mean()),  # the documented caveat
    }
    for name, value in figures.items():
        record_property(name, round(value, 4))
    print({name: round(value, 4) for name, value in figures.items()},
          {name: round(ml, 1) for name, ml in result.volumes_ml().items()},
          {name: round(s, 3) for name, s in result.seconds.items()})
    assert figures["lungs"] >= 0.95
    assert figures["bones"] >= 0.85
    assert figures["reference_inside_body"] >= 0.999
    assert figures["muscle_reference_as_muscle"] >= 0.8
    # No trachea in this field of view (it starts at the lung bases): no airway, and TotalSegmentator agrees.
    assert not (labels == 3).any() and not np.isin(reference, reference_values(names=("trachea",))).any()


def test_fat_and_muscle_are_plausible(result: LabelResult, sample: Image) -> None:
    hu = sample.array
    labels = result.labels.array
    fat, muscle = hu[labels == 5], hu[labels == 6]
    assert -150 < np.median(fat) < -60 and 0 < np.median(muscle) < 80
    volumes = result.volumes_ml()
    body_ml = sum(volumes.values())
    assert 0.15 < volumes["fat"] / body_ml < 0.5 and 0.3 < volumes["muscle"] / body_ml < 0.7
    assert set(np.unique(labels)) == {0, 1, 2, 4, 5, 6}


def test_result_sits_on_the_input_grid(result: LabelResult, sample: Image) -> None:
    assert result.labels.same_grid(sample) and result.labels.array.dtype == np.uint8
    assert dict(result.names) == {value: name for name, value in TISSUE_LABELS.items()}
    assert result.mask("lungs").sum() == (result.labels.array == 2).sum()


def reorient(image: Image, order: tuple[int, int, int], flips: tuple[bool, bool, bool],
             rotation: np.ndarray = np.eye(3)) -> Image:
    """The same voxels stored with new axis i, j, k along old axis ``order[n]`` (backwards
    where flipped), the whole grid turned by ``rotation`` in patient space."""
    array = image.array.transpose(2, 1, 0).transpose(order)
    permutation, start = np.zeros((3, 3)), np.zeros(3)
    for new, (old, flip) in enumerate(zip(order, flips)):
        permutation[old, new] = -1.0 if flip else 1.0
        if flip:
            array = np.flip(array, new)
            start[old] = image.shape_ijk[old] - 1
    matrix = image.ijk_to_lps()
    axes = rotation @ matrix[:3, :3] @ permutation
    origin = rotation @ (matrix @ np.r_[start, 1.0])[:3]
    spacing = np.linalg.norm(axes, axis=0)
    return Image(np.ascontiguousarray(array.transpose(2, 1, 0)), tuple(spacing), tuple(origin), axes / spacing)


def restore(labels: np.ndarray, order: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> np.ndarray:
    """Undo :func:`reorient`'s voxel order."""
    array = labels.transpose(2, 1, 0)
    for new, flip in enumerate(flips):
        if flip:
            array = np.flip(array, new)
    return array.transpose(np.argsort(order)).transpose(2, 1, 0)


def test_oblique_permuted_flipped_grid_gives_the_same_labels(result: LabelResult, sample: Image) -> None:
    order, flips = (2, 0, 1), (True, False, True)
    moved = reorient(sample, order, flips, OBLIQUE)
    assert moved.is_oblique
    point = np.array([7.0, 11.0, 5.0, 1.0])  # one voxel, addressed in both grids, is one place
    moved_point = np.zeros(4)
    moved_point[3] = 1.0
    for new, (old, flip) in enumerate(zip(order, flips)):
        moved_point[new] = sample.shape_ijk[old] - 1 - point[old] if flip else point[old]
    np.testing.assert_allclose(moved.ijk_to_lps() @ moved_point, np.r_[OBLIQUE @ (sample.ijk_to_lps() @ point)[:3], 1])
    turned = ct_tissues(moved)
    assert turned.labels.same_grid(moved)
    back = restore(turned.labels.array, order, flips)
    expected = result.labels.array
    assert (back == expected).mean() >= 0.999
    for value in (1, 2, 4, 5, 6):
        assert dice(back == value, expected == value) >= 0.99, value


def test_anisotropic_grid_gives_the_same_anatomy(result: LabelResult, sample: Image, reference: np.ndarray) -> None:
    """Columns split in two (1.5 x 3 x 3 mm): every size is in mm, so the anatomy stays."""
    half = sample.spacing[0] / 2
    origin = np.asarray(sample.origin_lps) - sample.direction_lps[:, 0] * half / 2
    fine = Image(np.repeat(sample.array, 2, axis=2), (half,) + sample.spacing[1:], tuple(origin),
                 sample.direction_lps)
    labels = ct_tissues(fine).labels.array[:, :, ::2]
    coarse = result.labels.array
    assert dice(labels == 2, coarse == 2) >= 0.95 and dice(labels == 4, coarse == 4) >= 0.9
    assert dice(labels > 0, coarse > 0) >= 0.99
    assert dice(labels == 2, np.isin(reference, reference_values(names=LUNG_NAMES))) >= 0.95
    assert dice(labels == 4, np.isin(reference, reference_values(prefixes=BONE_PREFIXES))) >= 0.83


def test_structure_subset_skips_work(result: LabelResult, sample: Image) -> None:
    bones = ct_tissues(sample, ["bones"])
    assert dict(bones.names) == {4: "bones"} and set(np.unique(bones.labels.array)) == {0, 4}
    assert "lungs" not in bones.seconds and "soft" not in bones.seconds
    np.testing.assert_array_equal(bones.labels.array == 4, result.labels.array == 4)
    lungs = ct_tissues(sample, ("lungs", "airway"))
    assert "bones" not in lungs.seconds and set(lungs.names.values()) == {"lungs", "airway"}
    np.testing.assert_array_equal(lungs.labels.array == 2, result.labels.array == 2)
    with pytest.raises(InputError, match="Unknown structure 'liver'"):
        ct_tissues(sample, ["bones", "liver"])
    with pytest.raises(InputError, match="No structure"):
        ct_tissues(sample, [])


def chest_phantom(spacing=(2.0, 2.0, 2.5)) -> tuple[Image, dict[str, np.ndarray]]:
    """A supine chest: fat and muscle, two lungs, a trachea whose bronchi enter both lungs,
    a vertebra (cortex and marrow) and, 5 mm below the back, a 4 mm table shell."""
    ni, nj, nk = int(300 / spacing[0]), int(240 / spacing[1]), int(200 / spacing[2])
    z, y, x = np.meshgrid(np.arange(nk) * spacing[2], np.arange(nj) * spacing[1] - 110.0,
                          np.arange(ni) * spacing[0] - 150.0, indexing="ij")
    hu = np.full((nk, nj, ni), -1000.0)
    body = (x / 130.0) ** 2 + (y / 90.0) ** 2 <= 1.0
    hu[body] = -100.0
    hu[(x / 120.0) ** 2 + (y / 80.0) ** 2 <= 1.0] = 40.0
    for side in (-1, 1):
        hu[((x - side * 60) / 45.0) ** 2 + ((y + 5) / 55.0) ** 2 + ((z - 90) / 80.0) ** 2 <= 1.0] = -850.0
    trachea = body & (x ** 2 + (y + 20) ** 2 <= 9.0 ** 2) & (z >= 120)
    hu[trachea] = -1000.0
    for side in (-1, 1):
        along = np.clip(x * side / 45.0, 0, 1)
        hu[(x * side >= 0) & (x * side <= 50) & ((z - 120 + 25 * along) ** 2 + (y + 20) ** 2 <= 36.0)] = -1000.0
    spine = x ** 2 + (y - 55) ** 2 <= 18.0 ** 2
    hu[spine] = 700.0
    hu[x ** 2 + (y - 55) ** 2 <= 14.0 ** 2] = 200.0
    table = (np.abs(x) < 140) & (y > 95) & (y < 99)
    hu[table] = 300.0
    hu += np.random.default_rng(0).normal(0, 15, hu.shape)
    return Image(hu.astype(np.int16), spacing, (-150.0, -110.0, -300.0)), {"trachea": trachea, "spine": spine,
                                                                           "table": table}


def test_chest_phantom_airway_lungs_and_table() -> None:
    image, truth = chest_phantom()
    labels = ct_tissues(image).labels.array
    assert (labels[truth["trachea"]] == 3).mean() >= 0.95
    assert ndimage.label(labels == 3, structure=np.ones((3, 3, 3)))[1] == 1
    lungs, count = ndimage.label(labels == 2)
    assert count == 2 and np.bincount(lungs.ravel())[1:].min() * 0.02 > 600  # two lungs over 600 ml each
    assert (labels[truth["spine"]] == 4).mean() >= 0.95  # cortex and marrow
    assert not labels[truth["table"]].any()


@pytest.mark.parametrize("array, why", [
    (np.random.default_rng(0).uniform(0, 3000, (12, 20, 20)), "below -500"),       # MR-like
    (np.random.default_rng(0).uniform(0, 4095, (12, 20, 20)).astype(np.int16), "intercept"),  # CT without intercept
    (np.full((12, 20, 20), -1000, np.int16), "constant"),
    (np.where(np.arange(12 * 20 * 20).reshape(12, 20, 20) % 7, -1000.0, np.nan), "NaN"),
    (np.zeros((12, 20, 20), bool), "mask"),
    (np.full((1, 20, 20), -1000, np.int16), "2D"),
])
def test_refuses_what_is_not_a_ct(array: np.ndarray, why: str) -> None:
    with pytest.raises(InputError, match=why):
        ct_tissues(Image(array, (1.0, 1.0, 2.0)))


def test_tiny_image_gives_a_result() -> None:
    array = np.full((4, 5, 6), -1000, np.int16)
    array[1:3, 1:4, 1:5] = 40
    result = ct_tissues(Image(array, (3.0, 3.0, 3.0), (1.0, 2.0, 3.0), OBLIQUE))
    assert result.labels.array.shape == array.shape
    assert set(np.unique(result.labels.array)) <= set(TISSUE_LABELS.values()) | {0}
    assert (result.labels.array[1:3, 1:4, 1:5] > 0).all() and (result.labels.array[0] == 0).all()


def test_progress_reaches_the_end_and_cancel_stops(sample: Image) -> None:
    seen: list[float] = []
    ct_tissues(sample, progress=lambda fraction, message: seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)

    def cancel(fraction: float, message: str) -> None:
        if "bones" in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        ct_tissues(sample, progress=cancel)


def test_contrast_blood_is_not_bone() -> None:
    """Bundled CTA (early arterial): the contrast-filled aorta, as dense as bone, stays out
    of bone except where it touches it; the lungs and a trachea are found."""
    image = read_image(CTA / "cta_thorax_1p5mm.nii.gz")
    aorta = read_image(CTA / "pred_aorta.nii.gz").array > 0
    result = ct_tissues(image, ["lungs", "airway", "bones"])
    labels = result.labels.array
    as_bone = float((labels[aorta] == 4).mean())
    print({"aorta_as_bone": round(as_bone, 3), **{n: round(v, 1) for n, v in result.volumes_ml().items()}})
    assert as_bone < 0.2
    assert 1500 < result.volumes_ml()["lungs"] < 5000 and 10 < result.volumes_ml()["airway"] < 150


def test_chest_ct_lungs_and_airway(shared_data) -> None:
    """pyradiomics' lung1 (512x512x48, 0.57 x 0.57 x 5 mm): two lungs, one airway tube that
    reaches up into the neck."""
    path = shared_data / "lesions" / "pyradiomics" / "lung1_image.nrrd"
    if not path.exists():
        pytest.skip(f"{path} not found")
    image = read_image(path)
    result = ct_tissues(image, ["lungs", "airway"])
    labels = result.labels.array
    lungs, count = ndimage.label(labels == 2)
    sizes_ml = np.bincount(lungs.ravel())[1:] * np.prod(image.spacing) / 1000
    airway, tubes = ndimage.label(labels == 3, structure=np.ones((3, 3, 3)))
    top = np.flatnonzero((labels == 3).any(axis=(1, 2)))
    print({"lungs_ml": sizes_ml.round(1).tolist(), "airway_ml": round(result.volumes_ml()["airway"], 1),
           "airway_slices": [int(top[0]), int(top[-1])], "seconds": round(sum(result.seconds.values()), 2)})
    assert count == 2 and sizes_ml.min() > 500
    assert tubes == 1 and top[-1] >= labels.shape[0] - 6 and top[-1] - top[0] >= 20
