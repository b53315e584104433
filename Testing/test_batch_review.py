"""The defects a review of ``segforge batch`` found (issue 18), each pinned by a test that failed
before its fix: real files, a real Dask LocalCluster or the real command line where the defect
needs one."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from batch_cohort import local_client

from segforge.batch.cases import discover
from segforge.batch.resume import input_digests


def _volume(path, value: int = 0):
    array = np.full((4, 5, 6), value, np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _flip_a_data_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("header, data", [("case.mhd", "case.raw"), ("case.nhdr", "case.raw"),
                                          ("case.hdr", "case.img")])
def test_a_changed_detached_data_file_changes_the_input_hash(tmp_path, header, data):
    _volume(tmp_path / header)
    assert (tmp_path / data).is_file()
    case = discover(tmp_path, kind="folder").cases[0] if not header.endswith(".hdr") else None
    if case is None:  # .hdr is not a folder volume: a manifest names it
        (tmp_path / "m.csv").write_text(f"case_id,image\ncase,{header}\n")
        case = discover(tmp_path / "m.csv").cases[0]
    before = input_digests(case)
    assert before == input_digests(case) and len(before[0]["sha256"]) == 64
    _flip_a_data_byte(tmp_path / data)
    after = input_digests(case)
    assert after[0]["sha256"] != before[0]["sha256"]
    (tmp_path / data).unlink()
    assert "sha256" not in input_digests(case)[0]  # a missing data file: never reusable


def test_nrrd_and_metaimage_file_lists_are_hashed_file_by_file(tmp_path):
    for n in range(2):
        (tmp_path / f"slab{n}.raw").write_bytes(np.full((2, 5, 6), n, np.int16).tobytes())
    (tmp_path / "list.nhdr").write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 6 5 4\nencoding: raw\n"
                                        "endian: little\ndata file: LIST 3\nslab0.raw\nslab1.raw\n")
    (tmp_path / "pattern.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 6 5 4\nElementType = MET_SHORT\n"
                                          "ElementDataFile = slab%d.raw 0 1 1 2\n")
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "list.nhdr")))[3, 0, 0] == 1
    cases = {c.case_id: c for c in discover(tmp_path, kind="folder").cases}
    before = {name: input_digests(case)[0] for name, case in cases.items()}
    assert before["list"]["data_files"] == before["pattern"]["data_files"] == ["slab0.raw", "slab1.raw"]
    _flip_a_data_byte(tmp_path / "slab1.raw")
    assert all(input_digests(case)[0]["sha256"] != before[name]["sha256"] for name, case in cases.items())


def test_a_rerun_redoes_a_case_whose_raw_data_changed(tmp_path):
    from batch_cohort import small_ct

    from segforge.batch.run_case import CaseJob, run_case
    from segforge.image_io import to_sitk
    from segforge.organ.parameters import OrganParameters

    folder = tmp_path / "cts"
    folder.mkdir()
    sitk.WriteImage(to_sitk(small_ct()), str(folder / "ct.mhd"))  # ct.mhd + ct.raw
    job = CaseJob("organ", discover(folder).cases[0], OrganParameters(structures=("lungs",), device="cpu"),
                  str(tmp_path / "out"), {"statistics": True})
    assert run_case(job)["status"] == "done" and run_case(job)["status"] == "skipped"
    _flip_a_data_byte(folder / "ct.raw")
    assert run_case(job)["status"] == "done"


def _torchscript_vessel_net(path, level: float):
    """A tiny TorchScript vessel network (no trained weights: vessel where the windowed
    intensity passes ``level``); another level is another weights file."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self, level: float) -> None:
            super().__init__()
            self.level = level

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            vessel = 20.0 * (x - self.level)
            return torch.cat([-vessel, vessel], dim=1)

    torch.jit.script(Net(level)).save(str(path))
    return path


def test_a_rerun_redoes_a_vessel_case_when_auto_resolves_to_another_model_or_weights(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from http_fixture import model_record, write_catalog

    from segforge.batch.run_case import CaseJob, run_case
    from segforge.catalog import CATALOG_ENV, load_catalog
    from segforge.catalog.cache import HOME_ENV
    from segforge.catalog.download import download
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(CATALOG_ENV, str(tmp_path / "catalog.json"))
    folder = tmp_path / "cta"
    folder.mkdir()
    array = np.random.default_rng(0).normal(0, 20, (32, 32, 32)).astype(np.float32)
    k, j, i = np.indices(array.shape)
    array[(j - 16) ** 2 + (i - 16) ** 2 < 9] += 400
    sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / "p1.nii.gz"))

    def install(level: float) -> None:
        net = _torchscript_vessel_net(tmp_path / f"net{level}.pt", level)
        body = net.read_bytes()
        write_catalog(tmp_path / "catalog.json", [model_record(
            "test-vessel-net", net.as_uri(), body, workflow="vessel", labels={"1": "vessels"}, min_gpu_memory_gb=0,
            input={"modality": ["CT"], "spacing_mm": None, "intensity_window": [0, 400], "patch_size": [32, 32, 32]})])
        download(load_catalog().get("test-vessel-net"), force=True)

    write_catalog(tmp_path / "catalog.json", [])
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False, stenoses=False))
    assert parameters.mask.model == "auto"
    job = CaseJob("vessel", discover(folder).cases[0], parameters, str(tmp_path / "out"),
                  {"allow_gaps": False, "segment_name": "Vessels"})
    assert run_case(job)["status"] == "done"  # the builtin filter
    assert run_case(job)["status"] == "skipped"
    install(0.5)  # "auto" now stands for a deep model
    first = run_case(job)
    assert first["status"] == "done", first.get("error")
    import json
    record = json.loads((tmp_path / "out" / "p1" / "run_record.json").read_text())
    assert record["models"] == [{"id": "test-vessel-net", "sha256": load_catalog().get("test-vessel-net").sha256}]
    assert run_case(job)["status"] == "skipped"
    install(0.25)  # the same id, other weights
    assert run_case(job)["status"] == "done"
    assert run_case(job)["status"] == "skipped"


def test_the_models_of_organ_and_interactive_cases_are_resolved(tmp_path):
    from segforge.batch.cases import Case
    from segforge.batch.resume import models_used
    from segforge.organ.parameters import OrganParameters

    case = Case("c", image=str(tmp_path / "x.nii.gz"))
    assert models_used("organ", OrganParameters(), case) == [{"id": "ct-tissues", "sha256": None}]
    assert models_used("interactive", {"backend": "random-walker", "device": "cpu", "segment_name": "L"}, case) == []
    assert models_used("vessel", None, Case("s", segment=str(tmp_path / "seg.nii.gz"))) == []  # no model runs


def test_a_second_workflow_into_the_same_out_is_refused_and_the_first_kept(tmp_path):
    from batch_cohort import run_segforge, small_ct

    from segforge.image_io import write_image
    from segforge.output_set import verify_manifest

    folder = tmp_path / "cts"
    folder.mkdir()
    write_image(small_ct(), folder / "p1.nii.gz")
    out = tmp_path / "out"
    first = run_segforge("batch", "organ", str(folder), "--out", str(out), "--workers", "1", "--structures", "lungs")
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_segforge("batch", "vessel", str(folder), "--out", str(out), "--workers", "1")
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert "holds the results of an organ batch" in second.stderr + second.stdout
    assert "give the vessel batch its own --out" in (second.stderr + second.stdout).lower()
    assert verify_manifest(out / "cases" / "p1") == [] and (out / "cases" / "p1" / "organs.seg.nrrd").is_file()
    (out / "batch.json").unlink()  # the case's own run record says it as well
    third = run_segforge("batch", "vessel", str(folder), "--out", str(out), "--workers", "1")
    assert third.returncode != 0 and "cases/p1/run_record.json names the organ workflow" in third.stderr + third.stdout
    assert (out / "cases" / "p1" / "organs.seg.nrrd").is_file()


def test_refill_after_lost_workers_submits_nothing_unit_with_a_fake_client(monkeypatch):
    """Unit level, a fake Dask client (the defect is arithmetic): a case ends while two of three
    workers are lost; fewer slots than running cases must submit none (``waiting[:-1]`` would
    have submitted all but one of the waiting cases)."""
    from unittest import mock

    import distributed

    from segforge.batch import runner
    from segforge.batch.cases import Case
    from segforge.batch.run_case import CaseJob

    class Future:
        status = "pending"

    class Client:
        threads = {"w1": 1, "w2": 1, "w3": 1}
        submitted: list = []

        def submit(self, function, job, key, pure, resources):
            self.submitted.append(job)
            return Future()

        def nthreads(self):
            return dict(self.threads)

    client = Client()
    jobs = [CaseJob("organ", Case(f"c{n}", image="/x"), None, "/tmp") for n in range(10)]
    waits = []

    def wait(futures, timeout, return_when):
        waits.append(len(client.submitted))
        if len(waits) == 1:
            client.threads = {"w1": 1}  # w2 and w3 (running two cases) lost, not restarted yet
            return mock.Mock(done={futures[0]})
        raise KeyboardInterrupt  # the test ends here: what was submitted after the refill is known

    monkeypatch.setattr(distributed, "wait", wait)
    monkeypatch.setattr(runner, "_outcome", lambda future, case, cluster: {"case_id": case.case_id, "status": "done"})
    state = mock.Mock(summary=runner.BatchSummary(runner.Path("/tmp")))
    with pytest.raises(KeyboardInterrupt):
        runner._collect(client, jobs, {}, None, state, False, lambda *a: None)
    assert waits == [3, 3]  # 3 slots at first, then 1 slot for 2 running cases: none submitted


def _tube_segment(path):
    array = np.zeros((40, 20, 20), np.uint8)
    array[3:37, 7:13, 7:13] = 1
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


@pytest.mark.parametrize("stenoses", [False, True])
def test_the_cohort_table_leaves_findings_empty_when_the_analysis_did_not_run(tmp_path, stenoses):
    from segforge.batch.run_case import CaseJob, run_case
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters

    (tmp_path / "segs").mkdir()
    _tube_segment(tmp_path / "segs" / "tube.nii.gz")
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False, stenoses=stenoses))
    outcome = run_case(CaseJob("vessel", discover(tmp_path / "segs", segments=True).cases[0], parameters,
                               str(tmp_path / "out"), {"allow_gaps": False, "segment_name": "Vessels"}))
    assert outcome["status"] == "done" and outcome["rows"]
    findings = {(row["stenoses"], row["dilatations"]) for row in outcome["rows"]}
    if stenoses:
        assert all(isinstance(n, int) for pair in findings for n in pair)  # looked for: counted, 0 included
    else:
        assert findings == {(None, None)}  # not looked for: empty cells, not "0 stenoses"


def test_manifest_seeds_keep_the_segment_components_they_touch(tmp_path):
    from segforge.batch.run_case import CaseJob, run_case
    from segforge.vessel.pipeline import VesselOutputs, VesselPipelineParameters

    (tmp_path / "segs").mkdir()
    array = np.zeros((40, 30, 30), np.uint8)
    array[3:37, 4:10, 4:10] = 1  # two separate tubes
    array[3:37, 18:24, 18:24] = 1
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "segs" / "two.nii.gz"))
    (tmp_path / "m.csv").write_text('case_id,segment,seeds\nseeded,segs/two.nii.gz,"6.5,6.5,20"\n'
                                    "all,segs/two.nii.gz,\n"
                                    'astray,segs/two.nii.gz,"15,15,20"\n')
    parameters = VesselPipelineParameters(outputs=VesselOutputs(surface=False, stenoses=False))
    outcomes = {case.case_id: run_case(CaseJob("vessel", case, parameters, str(tmp_path / "out"),
                                               {"allow_gaps": False, "segment_name": "V"}))
                for case in discover(tmp_path / "m.csv").cases}
    assert len(outcomes["all"]["rows"]) == 2
    assert outcomes["seeded"]["status"] == "done" and len(outcomes["seeded"]["rows"]) == 1  # the tube at the seed
    assert all(row["mean_diameter_mm"] for row in outcomes["seeded"]["rows"])
    astray = outcomes["astray"]
    assert astray["status"] == "failed" and "seed point 1" in astray["error"]["what"] and astray["error"]["todo"]


def _dicom_slices(folder_of, uid: str, slices: int = 6):
    for z in range(slices):
        image = sitk.GetImageFromArray(np.full((1, 8, 8), z, np.int16))
        for key, value in {"0020|000e": uid, "0020|000d": "1.2.3", "0008|0060": "CT", "0020|0013": str(z + 1),
                           "0020|0032": f"0\\0\\{z}", "0020|0037": "1\\0\\0\\0\\1\\0", "0008|0018": f"{uid}.{z + 1}",
                           "0008|0016": "1.2.840.10008.5.1.4.1.1.2"}.items():
            image.SetMetaData(key, value)
        folder = folder_of(z)
        folder.mkdir(parents=True, exist_ok=True)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{z:03d}.dcm"))
        writer.Execute(image)


def test_a_dicom_series_split_across_folders_is_no_half_volume_case(tmp_path):
    root = tmp_path / "tree"
    _dicom_slices(lambda z: root / "patient1" / ("part_a" if z < 3 else "part_b"), "1.2.826.0.1.3680043.2.1125.1.99")
    _dicom_slices(lambda z: root / "patient2" / "ct", "1.2.826.0.1.3680043.2.1125.1.98")
    cohort = discover(root)
    assert [case.case_id for case in cohort.cases] == ["patient2_ct"]
    split = {entry["path"].split("/tree/")[1]: entry["reason"] for entry in cohort.left_out}
    assert set(split) == {"patient1/part_a", "patient1/part_b"}
    assert "split across 2 folders (also in patient1/part_b)" in split["patient1/part_a"]
    assert "move the series' files into one folder" in split["patient1/part_b"]


def test_a_dicom_seg_in_the_tree_is_no_case(tmp_path, shared_data):
    """A SEG (an earlier --dicom run's, or another tool's) has pixel data, so GDCM lists it as a
    series; it is left out as a derived object, whatever the series rule, as in a PACS cohort."""
    import shutil

    root = tmp_path / "tree"
    _dicom_slices(lambda z: root / "patient2" / "ct", "1.2.826.0.1.3680043.2.1125.1.98")
    (root / "patient2" / "results").mkdir(parents=True)
    shutil.copy(shared_data / "dicom" / "dcmqi_ct3slice_seg" / "liver.dcm", root / "patient2" / "results")
    cohort = discover(root)
    assert [case.case_id for case in cohort.cases] == ["patient2_ct"]
    (left,) = [entry for entry in cohort.left_out if entry["path"].endswith("results")]
    assert left["reason"] == "a derived object (SEG), not images"


def test_seg_nrrd_files_are_segments_not_image_cases(tmp_path):
    for name in ("ct1.nrrd", "ct2.nii.gz", "ct1.seg.nrrd", "ct2_vessels.seg.nrrd"):
        _volume(tmp_path / name)
    cohort = discover(tmp_path)
    assert cohort.kind == "folder" and [(c.case_id, c.image.rsplit("/", 1)[1]) for c in cohort.cases] == [
        ("ct1", "ct1.nrrd"), ("ct2", "ct2.nii.gz")]
    segments = tmp_path / "segs"
    segments.mkdir()
    (tmp_path / "ct1.seg.nrrd").rename(segments / "ct1.seg.nrrd")
    (only,) = discover(segments, segments=True).cases  # with --segments they are the cases
    assert only.case_id == "ct1" and only.segment.endswith("ct1.seg.nrrd")


@pytest.mark.parametrize("options, message", [
    (["--description", "abdomen("], "is not a regular expression"),
    (["--scheduler", "http://127.0.0.1:8786"], "http:// is not a Dask address scheme"),
    (["--scheduler", "127.0.0.1:notaport"], "The Dask scheduler address '127.0.0.1:notaport' cannot be used"),
    (["--memory-limit", "4 gigs"], "The memory limit '4 gigs' cannot be read"),
    (["--workers", "2", "--gpus", "1"], "--workers 2 with --gpus 1"),
])
def test_bad_batch_settings_are_one_line_before_any_work(tmp_path, options, message):
    from batch_cohort import run_segforge

    root = tmp_path / "tree"
    _dicom_slices(lambda z: root / "p1", "1.2.826.0.1.3680043.2.1125.1.97", slices=3)
    run = run_segforge("batch", "organ", str(root), "--out", str(tmp_path / "out"), "--kind", "dicom", *options,
                       timeout=60)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    (line,) = [text for text in run.stderr.splitlines() if text.strip()]
    assert line.startswith("segforge: error: ") and message in line
    assert not (tmp_path / "out").exists()  # nothing was run or written


def test_case_ids_that_differ_only_by_letter_case_are_refused(tmp_path):
    from segforge.errors import InputError

    (tmp_path / "m.csv").write_text("case_id,image\nPatient1,a.nii.gz\npatient1,b.nii.gz\n")
    with pytest.raises(InputError) as caught:
        discover(tmp_path / "m.csv")
    assert "the ids 'Patient1' and 'patient1'" in caught.value.message and caught.value.todo


def test_a_pacs_cache_folder_is_named_by_a_sanitized_series_uid(tmp_path):
    from pathlib import Path

    from segforge.batch.cases import Case, case_id_of
    from segforge.batch.pacs_cases import PACS_CACHE, with_cache

    hostile = "../../../home/user/results"
    (case,) = with_cache([Case(case_id_of(hostile), pacs_study="1.2", pacs_series=hostile)], tmp_path / "out")
    assert Path(case.image).resolve().parent == (tmp_path / "out" / PACS_CACHE).resolve()
    (plain,) = with_cache([Case("1.2.3", pacs_study="1.2", pacs_series="1.2.840.113619.2.5")], tmp_path / "out")
    assert Path(plain.image).name == "1.2.840.113619.2.5"  # a UID's name stays the same


@pytest.fixture(scope="module")
def client():
    with local_client(1) as client:
        yield client


def test_ctrl_c_after_the_last_case_still_writes_the_final_tables(tmp_path, client, monkeypatch):
    import json

    from batch_cohort import organ_folder

    from segforge.batch import runner
    from segforge.organ.parameters import OrganParameters

    def interrupted(_client):
        raise KeyboardInterrupt  # Ctrl-C while the workers' peak memory is asked for, after the last case

    monkeypatch.setattr(runner, "_workers_peak", interrupted)
    monkeypatch.setattr(runner, "TABLE_INTERVAL_S", 3600.0)  # no rewrite while the cases run: only the final one
    out = tmp_path / "out"
    cases = discover(organ_folder(tmp_path / "cts", copies=2, bad=False)).cases
    try:
        summary = runner.run_batch("organ", cases, out, OrganParameters(structures=("lungs",)), {"statistics": True},
                                   client=client, progress=False)
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped run_batch before its final tables were written")
    assert summary.interrupted and summary.not_run == [] and sorted(summary.succeeded) == ["ct0", "ct1"]
    assert (out / "cohort_organ.csv").read_text().count("\n") == 3  # header + a lungs row per case
    record = json.loads((out / "batch.json").read_text())
    assert record["succeeded"] == ["ct0", "ct1"] and record["interrupted"] is True
    assert summary.line().startswith("interrupted (0 not run): 2 succeeded")


def test_a_cancelled_case_is_recorded_with_a_real_reason(client):
    import time

    from segforge.batch.cases import Case
    from segforge.batch.runner import ClusterSettings, _outcome

    future = client.submit(time.sleep, 30, pure=False)
    client.cancel(future)
    deadline = time.monotonic() + 10
    while future.status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    error = _outcome(future, Case("c1", image="/x"), ClusterSettings())["error"]
    assert "NoneType" not in error["why"] and "cancelled" in error["why"]
    assert error["what"] == "The case c1 did not finish on the cluster" and "run the batch again" in error["todo"]


def test_a_second_batch_on_the_same_out_is_refused_while_one_runs(tmp_path):
    """The first batch holds a lock in --out (here: this test holds it, as a running batch does);
    a second one there is one line and touches nothing."""
    from batch_cohort import run_segforge, small_ct

    from segforge.batch.runner import LOCK_FILE
    from segforge.file_lock import file_lock
    from segforge.image_io import write_image

    folder, out = tmp_path / "cts", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    write_image(small_ct(), folder / "ct0.nii.gz")
    with file_lock(out / LOCK_FILE, wait=False) as held:
        assert held
        run = run_segforge("batch", "organ", str(folder), "--out", str(out), "--workers", "1",
                           "--structures", "lungs")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Another segforge batch is writing into" in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "cases"] and not list((out / "cases").iterdir())
    again = run_segforge("batch", "organ", str(folder), "--out", str(out), "--workers", "1", "--structures", "lungs")
    assert again.returncode == 0, again.stdout + again.stderr  # free once the first is done
