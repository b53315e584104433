"""``--gpus``: GPUs as Dask resources, on a real LocalCluster, without a GPU.

What can be checked on this CPU-only machine: the batch's own cluster gets one worker per GPU,
each declaring the resource ``GPU=1`` and shown only its own GPU (``CUDA_VISIBLE_DEVICES``, set
by the worker plugin before any case initialises CUDA), every case asks for one GPU so at most
one case runs per GPU even where a worker has more threads, each run record names the GPU its
case was shown, and a cluster without the resource is refused before anything is submitted.
The cases themselves run on the CPU (``device="cpu"``); the speed on a real GPU is measured by
``benchmarks/batch_cohort.py --gpus 1`` where one is lent.
"""
from __future__ import annotations

import json
import logging

import pytest
from batch_cohort import organ_folder

from segforge.batch import discover, run_batch
from segforge.batch.resume import RECORD
from segforge.batch.runner import ClusterSettings
from segforge.errors import InputError
from segforge.organ.parameters import OrganParameters

ORGAN = OrganParameters(structures=("lungs",), device="cpu")


def test_one_worker_per_gpu_each_shown_its_own_and_one_case_per_gpu(tmp_path):
    folder = organ_folder(tmp_path / "cts", copies=4, bad=False)
    out = tmp_path / "out"
    settings = ClusterSettings(gpus=2, threads_per_worker=2)  # two threads each, but one GPU each
    summary = run_batch("organ", discover(folder).cases, out, ORGAN, {}, cluster=settings, progress=False)
    assert sorted(summary.succeeded) == ["ct0", "ct1", "ct2", "ct3"] and not summary.failed
    workers = [json.loads((out / "cases" / f"ct{n}" / RECORD).read_text())["worker"] for n in range(4)]
    gpu_of = {}
    for worker in workers:
        assert worker["gpu"] in ("0", "1")
        assert gpu_of.setdefault(worker["pid"], worker["gpu"]) == worker["gpu"]  # a worker keeps its GPU
    assert len(set(gpu_of.values())) == len(gpu_of)  # no two workers share a GPU
    record = json.loads((out / "batch.json").read_text())
    assert record["cluster"]["gpus"] == 2 and len(record["workers_peak_rss_mb"]) == 2


def test_gpu_cases_never_overlap_on_one_gpu(tmp_path):
    """The cluster's scheduler holds a case back while its worker's GPU is taken: with one GPU
    and a worker of four threads, the cases run one after the other (Dask's task stream)."""
    from distributed import Client, LocalCluster, get_task_stream

    logging.getLogger("distributed").setLevel(logging.ERROR)
    folder = organ_folder(tmp_path / "cts", copies=3, bad=False)
    with LocalCluster(n_workers=1, threads_per_worker=4, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR, resources={"GPU": 1}) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            summary = run_batch("organ", discover(folder).cases, tmp_path / "out", ORGAN, {}, client=client,
                                cluster=ClusterSettings(gpus=1), progress=False)
        assert len(summary.succeeded) == 3
    cases = [task for task in stream.data if str(task["key"]).startswith("segforge-case-")]
    spans = sorted((part["start"], part["stop"]) for task in cases for part in task["startstops"]
                   if part["action"] == "compute")
    assert len(spans) == 3
    assert all(later[0] >= earlier[1] - 1e-3 for earlier, later in zip(spans, spans[1:]))


def test_a_cluster_without_gpus_is_refused_before_anything_runs(tmp_path):
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    folder = organ_folder(tmp_path / "cts", copies=1, bad=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        with pytest.raises(InputError, match="No Dask worker declares a GPU"):
            run_batch("organ", discover(folder).cases, tmp_path / "out", ORGAN, {}, client=client,
                      cluster=ClusterSettings(gpus=1), progress=False)
    assert not list((tmp_path / "out" / "cases").glob("*"))
