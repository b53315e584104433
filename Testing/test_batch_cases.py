"""The cases of a cohort (folder, manifest, DICOM tree) and the resume rule, without Dask."""
from __future__ import annotations

import shutil

import pytest
from batch_cohort import dicom_tree, organ_folder, vessel_manifest

from segforge.batch.cases import SeriesRule, discover
from segforge.batch.resume import fingerprint, input_digests, reusable
from segforge.errors import InputError
from segforge.organ.parameters import OrganParameters


def test_a_folder_gives_a_case_per_volume_named_by_its_file(tmp_path):
    folder = organ_folder(tmp_path / "cts", copies=2)
    (folder / ".hidden.nii.gz").write_bytes(b"x")
    (folder / "notes.txt").write_text("not a volume")
    (folder / "ct1.prompts.json").write_text("{}")
    cohort = discover(folder)
    assert cohort.kind == "folder"
    assert [c.case_id for c in cohort.cases] == ["ct0", "ct1", "truncated", "wrong_modality_mr"]
    assert all(c.image and c.image.startswith(str(folder)) for c in cohort.cases)
    assert cohort.cases[1].prompts == str(folder / "ct1.prompts.json") and cohort.cases[0].prompts is None


def test_a_manifest_gives_paths_labels_seeds_and_ids(tmp_path):
    manifest = vessel_manifest(tmp_path / "m")
    cohort = discover(manifest, segment_label="aorta")
    assert cohort.kind == "manifest"
    a, b = cohort.cases
    assert (a.case_id, b.case_id) == ("A-1", "B_2")  # "B 2" made a folder name
    assert a.segment == f"{tmp_path / 'm' / 'seg_a.nii.gz'}:aorta" and b.segment.endswith("seg_b.nii.gz:aorta")
    csv = tmp_path / "m" / "seeds.csv"
    csv.write_text("image,seeds\nct.nii.gz,\"1,2,3;4,5,6.5\"\n\n")
    (case,) = discover(csv).cases
    assert case.case_id == "ct" and case.seeds_lps == ((1, 2, 3), (4, 5, 6.5))


@pytest.mark.parametrize("text, message", [
    ("image,sedes\na.nii.gz,1\n", "columns SegForge does not know (sedes)"),
    ("case_id\nx\n", "names no input"),
    ("image,seeds\na.nii.gz,\"1,2\"\n", "seeds of the manifest's row 2"),
    ("case_id,image\nx,a.nii.gz\nx,b.nii.gz\n", "Two cases of"),
    ("image\n", "No case in"),
])
def test_a_bad_manifest_is_one_message_before_any_work(tmp_path, text, message):
    path = tmp_path / "cohort.csv"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        discover(path)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_a_dicom_tree_gives_a_case_per_selected_series_and_lists_the_rest(tmp_path):
    root = dicom_tree(tmp_path / "tree")
    cohort = discover(root, rule=SeriesRule(modality="ct", description="abdomen"))
    assert cohort.kind == "dicom"
    assert [c.case_id for c in cohort.cases] == ["patient1_ct", "patient2_ct"]
    reasons = {entry["path"].split("/tree/")[1]: entry["reason"] for entry in cohort.left_out}
    assert reasons["patient2/mr"] == "modality MR, not CT"
    assert "no readable DICOM series" in reasons["patient3"]
    only_first = discover(root, rule=SeriesRule(description="^ABDOMEN 3mm$"))
    assert [c.case_id for c in only_first.cases] == ["patient1_ct", "patient2_ct"]  # case-insensitive
    with pytest.raises(InputError, match="No case in"):
        discover(root, rule=SeriesRule(modality="PT"))


def test_resume_needs_the_same_inputs_parameters_and_a_whole_folder(tmp_path):
    folder = organ_folder(tmp_path / "cts", copies=1)
    (case,) = [c for c in discover(folder).cases if c.case_id == "ct0"]
    lungs, bones = OrganParameters(structures=("lungs",)), OrganParameters(structures=("bones",))
    assert fingerprint("organ", lungs, {}, case) == fingerprint("organ", OrganParameters(structures=("lungs",)), {},
                                                                 case)
    assert fingerprint("organ", lungs, {}, case) != fingerprint("organ", bones, {}, case)
    assert fingerprint("organ", lungs, {}, case) != fingerprint("organ", lungs, {"statistics": False}, case)
    digests = input_digests(case)
    assert digests[0]["role"] == "image" and len(digests[0]["sha256"]) == 64
    result = tmp_path / "result"
    result.mkdir()
    assert reusable(result, digests, fingerprint("organ", lungs, {}, case)) is None  # no record
    tree = dicom_tree(tmp_path / "tree")
    (series,) = discover(tree / "patient1").cases
    before = input_digests(series)
    shutil.copy(tree / "patient2" / "ct" / sorted(p.name for p in (tree / "patient2" / "ct").iterdir())[3],
                tree / "patient1" / "ct" / sorted(p.name for p in (tree / "patient1" / "ct").iterdir())[3])
    assert input_digests(series)[0]["sha256"] != before[0]["sha256"]  # one slice changed: another input
