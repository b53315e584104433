"""The worker as users meet it: a real subprocess over real sockets."""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from segforge.errors import AuthError, Cancelled, InputError, ProtocolMismatch, SegForgeError, WorkerDied
from segforge.image import Image
from segforge.vessel import VesselMaskParameters, vessel_mask
from segforge.worker import PROTOCOL_VERSION, WorkerClient
from segforge.worker.protocol import MAGIC, PREFIX

from worker_helpers import frame, raw_exchange, running_server, slow_job, wait_until_running

OBLIQUE = np.array([[0.8660254, -0.5, 0.0], [0.5, 0.8660254, 0.0], [0.0, 0.0, 1.0]]) @ \
    np.array([[1.0, 0.0, 0.0], [0.0, 0.9659258, -0.2588190], [0.0, 0.2588190, 0.9659258]])


def tube_volume(shape=(40, 48, 56), radius=3.0) -> Image:
    """A bright tube along i on an oblique, anisotropic grid."""
    k, j, i = np.indices(shape)
    distance = np.hypot(k - shape[0] / 2, j - shape[1] / 2)
    array = np.where(distance <= radius, 400, 0).astype(np.int16)
    array += np.random.default_rng(0).normal(0, 10, shape).astype(np.int16)
    return Image(array, (0.8, 0.9, 1.7), (-12.5, 30.0, 101.0), OBLIQUE)


def slow_volume() -> tuple[Image, dict]:
    return slow_job()


@pytest.fixture
def client():
    with WorkerClient() as worker_client:
        yield worker_client


def test_progress_and_result_match_the_engine(client):
    image = tube_volume()
    params = {"min_radius_mm": 1.5, "max_radius_mm": 3.0, "scales": 2, "threshold": 0.2}
    job = client.submit("vessel.mask", {"image": image}, params)
    seen = []
    while not (status := job.poll()).finished:
        seen.append((status.fraction, status.message))
        time.sleep(0.02)
    assert status.state == "done"
    result = job.result()
    mask = result.outputs["mask"]
    expected = vessel_mask(image, VesselMaskParameters(**params))
    assert mask.same_grid(image)
    np.testing.assert_array_equal(mask.array, expected.array)
    assert result.meta["voxels"] == int(expected.array.sum()) > 0
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions), "progress went backwards"
    assert any("Vesselness" in m for _, m in seen)


def test_cancel_takes_effect_within_a_second_and_worker_lives_on(client):
    image, params = slow_volume()
    job = client.submit("vessel.mask", {"image": image}, params)
    wait_until_running(job)
    asked = time.monotonic()
    job.cancel()
    while not (status := job.poll()).finished:
        time.sleep(0.02)
    assert status.state == "cancelled"
    assert status.cancel_latency_s < 1.0  # timed inside the worker: the engine obeyed within a second
    assert time.monotonic() - asked < 10.0  # end to end, generous for a loaded CI machine
    with pytest.raises(Cancelled):
        job.result()
    follow_up = client.run("image.threshold", {"image": tube_volume()}, {"lower": 200})
    assert follow_up.meta["voxels"] > 0


def test_cancel_from_the_progress_callback_of_wait(client):
    image, params = slow_volume()
    job = client.submit("vessel.mask", {"image": image}, params)

    def impatient(fraction, message):
        if fraction > 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        job.wait(impatient, interval_s=0.05)
    deadline = time.monotonic() + 10.0
    while not (status := job.poll()).finished:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert status.state == "cancelled" and status.cancel_latency_s < 1.0


def test_sigkill_mid_job_is_reported_and_next_job_gets_a_fresh_worker(client):
    image, params = slow_volume()
    job = client.submit("vessel.mask", {"image": image}, params)
    wait_until_running(job)
    first_pid = client.pid
    os.kill(first_pid, signal.SIGKILL)
    with pytest.raises(WorkerDied) as caught:
        while not job.poll().finished:
            time.sleep(0.05)
    assert "SIGKILL" in caught.value.message and "again" in caught.value.todo
    with pytest.raises(WorkerDied):
        job.poll()  # the dead worker's job stays dead, even once a new worker runs
    result = client.run("image.threshold", {"image": tube_volume()}, {"lower": 200})
    assert client.pid != first_pid and result.meta["voxels"] > 0


def test_job_errors_arrive_structured(client):
    thin = Image(np.zeros((1, 32, 32), np.int16))
    with pytest.raises(InputError) as caught:
        client.run("vessel.mask", {"image": thin})
    assert "2D" in caught.value.what and caught.value.todo
    with pytest.raises(InputError, match="Unknown parameter"):
        client.run("vessel.mask", {"image": tube_volume()}, {"radius": 3})
    with pytest.raises(SegForgeError, match="no task"):
        client.submit("organ.nonexistent", {"image": tube_volume()})


def test_geometry_survives_the_trip_and_masks_come_back_cropped(client):
    image = tube_volume()
    small = image.array.copy()
    small[:] = 0
    small[5:9, 10:12, 30:41] = 7
    sent = image.with_array(small)
    job = client.submit("image.threshold", {"image": sent}, {"lower": 5})
    while not job.poll().finished:
        time.sleep(0.01)
    reply = client._request({"op": "result", "job": job.id})
    assert reply.header["cropped"]["mask"]["offset_kji"] == [5, 10, 30]
    assert reply.arrays["mask"].array.shape == (4, 2, 11)
    # The cropped box itself sits where the voxels are in the world.
    box = reply.arrays["mask"]
    corner = image.ijk_to_lps() @ np.array([30, 10, 5, 1.0])
    np.testing.assert_allclose(box.origin_lps, corner[:3], atol=1e-9)
    # And the public API pastes it back onto the full grid exactly.
    result = client.run("image.threshold", {"image": sent}, {"lower": 5})
    mask = result.outputs["mask"]
    assert mask.same_grid(image, tol=1e-12)
    np.testing.assert_array_equal(mask.array, (small >= 5).astype(np.uint8))


def test_empty_mask_comes_back_empty_on_the_full_grid(client):
    image = tube_volume()
    result = client.run("image.threshold", {"image": image}, {"lower": 10_000})
    assert result.outputs["mask"].array.shape == image.array.shape
    assert not result.outputs["mask"].array.any()


def _tiny_torchscript(path):
    torch = pytest.importorskip("torch")

    class Sign(torch.nn.Module):
        def forward(self, x):
            return torch.cat([-x, x], dim=1)

    torch.jit.script(Sign()).save(str(path))


def test_two_jobs_back_to_back_reuse_the_loaded_model(client, tmp_path):
    model = tmp_path / "sign.pt"
    _tiny_torchscript(model)
    array = np.full((24, 24, 24), -100, np.int16)
    array[:, :, 12:] = 100
    image = Image(array, (0.5, 0.7, 2.0), (3, 4, 5), OBLIQUE)
    params = {"model_path": str(model), "roi_size": [16, 16, 16], "device": "cpu"}
    first = client.run("segment.torchscript", {"image": image}, params)
    second = client.run("segment.torchscript", {"image": image}, params)
    assert first.meta["model_cached"] is False and second.meta["model_cached"] is True
    assert second.meta["model_loads"] == 1 and first.meta["tiles"] == 8
    for result in (first, second):
        labels = result.outputs["labels"]
        assert labels.same_grid(image)
        np.testing.assert_array_equal(labels.array, (array > 0).astype(np.uint8))


def test_missing_model_is_a_clear_error(client, tmp_path):
    from segforge.errors import ModelError

    with pytest.raises(ModelError) as caught:
        client.run("segment.torchscript", {"image": tube_volume()}, {"model_path": str(tmp_path / "none.pt")})
    assert "download" in caught.value.todo


def test_shared_server_wrong_token_is_refused_before_reading_the_volume():
    with running_server("right") as (port, _):
        with WorkerClient("127.0.0.1", port, "wrong") as intruder:
            with pytest.raises(AuthError):
                intruder.hello()
        # A stranger with the right protocol but the wrong token, declaring a huge payload, is
        # refused on the token alone: the server neither waits for nor allocates the bytes.
        header = b'{"op":"hello","protocol":%d,"token":"wrong"}' % PROTOCOL_VERSION
        reply = raw_exchange(port, PREFIX.pack(MAGIC, len(header), 4 << 30) + header)
        assert reply["error"]["code"] == "auth"
        with WorkerClient("127.0.0.1", port, "right") as friend:
            assert friend.run("image.threshold", {"image": tube_volume()}, {"lower": 200}).meta["voxels"] > 0


def test_protocol_version_mismatch_is_refused_with_a_clear_message():
    with running_server("t") as (port, _):
        reply = raw_exchange(port, frame({"op": "hello", "protocol": PROTOCOL_VERSION + 1, "token": "t"}))
        error = ProtocolMismatch.from_dict(reply["error"])
        assert isinstance(error, ProtocolMismatch)
        assert "version" in error.why and "same SegForge version" in error.todo


@pytest.mark.parametrize("data, expected", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "magic"),
    (None, "not valid JSON"),
    ("array", "malformed array"),
    ("size", "do not match"),
])
def test_malformed_requests_are_refused(data, expected):
    with running_server("t") as (port, process):
        if data is None:
            data = frame({}, header_bytes=b"{not json")
        elif data == "array":
            data = frame({"op": "submit", "protocol": PROTOCOL_VERSION, "token": "t",
                          "arrays": [{"name": "image", "dtype": "object", "shape": [2]}]}, b"xx")
        elif data == "size":
            data = frame({"op": "submit", "protocol": PROTOCOL_VERSION, "token": "t",
                          "arrays": [{"name": "image", "dtype": "uint8", "shape": [4, 4, 4]}]}, b"x" * 10)
        reply = raw_exchange(port, data)
        assert reply["ok"] is False and expected in (reply["error"]["what"] + reply["error"]["why"])
        assert process.poll() is None, "a bad request must not kill the server"


def test_oversized_request_is_refused_and_server_serves_on():
    with running_server("t", "--max-request-mb", "1") as (port, _):
        # The server refuses on the declared size alone, without waiting for the bytes...
        declared = PREFIX.pack(MAGIC, 2, 2 << 20) + b"{}"
        reply = raw_exchange(port, declared)
        assert "too large" in reply["error"]["what"] and "--max-request-mb" in reply["error"]["todo"]
        # ...and a client says so before sending them.
        big = Image(np.zeros((64, 128, 128), np.int16))  # 2 MiB
        with WorkerClient("127.0.0.1", port, "t") as remote:
            with pytest.raises(SegForgeError, match="too large"):
                remote.submit("image.threshold", {"image": big})
            small = Image(np.ones((8, 8, 8), np.int16))
            assert remote.run("image.threshold", {"image": small}, {"lower": 1}).meta["voxels"] == 512


def test_server_answers_several_clients_and_queues_their_jobs():
    with running_server("t") as (port, _):
        with WorkerClient("127.0.0.1", port, "t") as a, WorkerClient("127.0.0.1", port, "t") as b:
            image = tube_volume()
            job_a = a.submit("vessel.mask", {"image": image}, {"scales": 2})
            job_b = b.submit("image.threshold", {"image": image}, {"lower": 200})
            result_b, result_a = job_b.wait(), job_a.wait()
            assert result_a.meta["voxels"] > 0 and result_b.meta["voxels"] > 0


def test_unreachable_server_says_what_to_do():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SegForgeError) as caught:
        WorkerClient("127.0.0.1", port, "t").hello()
    assert "segforge serve" in caught.value.todo


def test_shared_server_over_tls(tmp_path, monkeypatch):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    with running_server("t", "--tls-cert", str(cert), "--tls-key", str(key)) as (port, _):
        monkeypatch.setenv("SEGFORGE_SERVER", f"127.0.0.1:{port}")
        monkeypatch.setenv("SEGFORGE_TOKEN", "t")
        monkeypatch.setenv("SEGFORGE_TLS_CA", str(cert))
        with WorkerClient.from_environment() as secure:
            result = secure.run("image.threshold", {"image": tube_volume()}, {"lower": 200})
            assert result.meta["voxels"] > 0
        monkeypatch.delenv("SEGFORGE_TLS_CA")
        with WorkerClient.from_environment() as plain:  # no TLS: refused, with a reason
            with pytest.raises(SegForgeError) as caught:
                plain.hello()
            assert "SEGFORGE_TLS_CA" in caught.value.todo


def test_a_volume_too_big_for_the_workers_memory_is_refused_and_the_worker_lives_on():
    with running_server("t", memory_limit_bytes=1500 << 20) as (port, process):
        with WorkerClient("127.0.0.1", port, "t") as remote:
            huge = Image(np.zeros((600, 1024, 1024), np.int16))  # 1.2 GiB: cannot even be received
            with pytest.raises(SegForgeError) as caught:
                remote.submit("image.threshold", {"image": huge})
            assert "not enough memory" in caught.value.what and "crop" in caught.value.todo
            volume = Image(np.zeros((20, 64, 64), np.int16))
            assert remote.run("image.threshold", {"image": volume}, {"upper": 0}).meta["voxels"] == volume.array.size
        assert process.poll() is None


@pytest.mark.parametrize("failure", [MemoryError("numpy could not allocate 3 GiB"),
                                     RuntimeError("ITK: Failed to allocate memory for image.")])
def test_a_job_out_of_memory_is_reported_as_such(failure):
    from segforge.errors import JobFailed
    from segforge.worker.jobs import Job, JobQueue

    def greedy(inputs, params, job):
        raise failure

    queue = JobQueue()
    job = queue.submit(Job("vessel.mask", greedy, {}, {}))
    deadline = time.monotonic() + 10
    while job.state not in ("failed", "done"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    queue.stop()
    assert isinstance(job.error, JobFailed) and "ran out of memory" in job.error.what
    assert "crop" in job.error.todo


def test_client_meeting_a_worker_of_another_version_says_update(tmp_path):
    """A worker of another SegForge release (its protocol constant changed) on a real socket."""
    import subprocess
    import sys

    from worker_helpers import ROOT

    other_release = ("import sys, segforge.worker.server as server; server.PROTOCOL_VERSION += 1; "
                     "sys.exit(server.main(sys.argv[1:]))")
    process = subprocess.Popen([sys.executable, "-c", other_release, "--port", "0", "--token", "t"],
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        port = int(process.stdout.readline().split("port=")[1].split()[0])
        with WorkerClient("127.0.0.1", port, "t") as client:
            with pytest.raises(ProtocolMismatch) as caught:
                client.hello()
        assert f"version {PROTOCOL_VERSION + 1}" in caught.value.why
        assert f"version {PROTOCOL_VERSION}" in caught.value.why and "same SegForge version" in caught.value.todo
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- what the review found: each a real failure once ------------------------------------

def test_big_endian_arrays_arrive_with_their_values(client):
    array = np.arange(24 * 24 * 24, dtype=">i2").reshape(24, 24, 24)
    result = client.run("image.threshold", {"image": Image(array)}, {"lower": 100, "upper": 300})
    np.testing.assert_array_equal(result.outputs["mask"].array, ((array >= 100) & (array <= 300)).astype(np.uint8))


@pytest.mark.parametrize("spec, payload, expected", [
    ({"name": "image", "dtype": "uint8", "shape": [2 ** 32, 2 ** 32]}, b"", "do not match"),  # int64 wrap-around
    ([{"name": "a", "dtype": "uint8", "shape": [1]}, {"name": "a", "dtype": "uint8", "shape": [1]}], b"xy",
     "used twice"),
])
def test_shapes_that_overflow_or_repeat_are_refused(spec, payload, expected):
    specs = spec if isinstance(spec, list) else [spec]
    with running_server("t") as (port, process):
        reply = raw_exchange(port, frame({"op": "submit", "task": "image.threshold", "protocol": PROTOCOL_VERSION,
                                          "token": "t", "arrays": specs}, payload))
        assert reply["ok"] is False and expected in reply["error"]["what"] + reply["error"]["why"]
        assert process.poll() is None


def test_protocol_must_be_the_integer_version():
    with running_server("t") as (port, _):
        for version in (True, float(PROTOCOL_VERSION), str(PROTOCOL_VERSION)):
            reply = raw_exchange(port, frame({"op": "hello", "protocol": version, "token": "t"}))
            assert reply["error"]["code"] == "protocol", version


def test_a_hung_worker_becomes_an_error_not_a_frozen_gui():
    with WorkerClient(request_timeout_s=2.0) as client:
        client.hello()
        os.kill(client.pid, signal.SIGSTOP)
        while Path(f"/proc/{client.pid}/stat").read_text().split(")")[-1].split()[0] != "T":
            time.sleep(0.01)  # the stop has really taken effect before we ask
        started = time.monotonic()
        with pytest.raises(WorkerDied) as caught:
            client.hello()
        assert time.monotonic() - started < 10 and "did not answer" in caught.value.why
        assert client.run("image.threshold", {"image": tube_volume()}, {"lower": 200}).meta["voxels"] > 0


def test_next_job_after_an_idle_worker_died_just_works(client):
    client.hello()
    first = client.pid
    os.kill(first, signal.SIGKILL)
    time.sleep(0.3)
    assert client.run("image.threshold", {"image": tube_volume()}, {"lower": 200}).meta["voxels"] > 0
    assert client.pid != first


def test_cancel_on_a_dead_worker_ends_the_module_job(client):
    from segforge.worker import ModuleJob

    image, params = slow_volume()
    job = ModuleJob(client.submit("vessel.mask", {"image": image}, params), lambda result: result)
    wait_until_running(job)
    os.kill(client.pid, signal.SIGKILL)
    time.sleep(0.3)
    job.cancel()
    status = job.poll()
    assert status.finished and status.state == "failed" and "SIGKILL" in status.message
    with pytest.raises(WorkerDied):
        job.finish()


def test_local_worker_ignores_a_segforge_folder_where_the_caller_runs(tmp_path, monkeypatch):
    fake = tmp_path / "segforge"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('the wrong segforge was imported')\n")
    monkeypatch.chdir(tmp_path)
    with WorkerClient() as client:
        assert "vessel.mask" in client.hello()["tasks"]


def test_a_shared_server_only_opens_models_in_its_cache(tmp_path):
    with running_server("t") as (port, _):
        with WorkerClient("127.0.0.1", port, "t") as remote:
            with pytest.raises(SegForgeError) as caught:
                remote.run("segment.torchscript", {"image": tube_volume()}, {"model_path": "/etc/passwd"})
            assert "model cache" in caught.value.what


def test_wrongly_typed_parameters_are_the_users_error(client):
    with pytest.raises(InputError, match="scales"):
        client.run("vessel.mask", {"image": tube_volume()}, {"scales": 2.5})
    with pytest.raises(InputError, match="not numbers"):
        client.run("image.threshold", {"image": tube_volume()}, {"lower": "abc"})


def test_server_without_port_in_the_environment_says_how(monkeypatch):
    monkeypatch.setenv("SEGFORGE_SERVER", "gpu-server")
    with pytest.raises(SegForgeError, match="host:port"):
        WorkerClient.from_environment()


def test_big_reply_headers_reach_the_client_but_big_request_headers_are_refused():
    """A whole-thorax vessel tree's branch rows exceed 1 MiB of JSON: the client reads such a
    reply from its worker, while a server still refuses request headers that size before
    checking the token."""
    import threading

    from segforge.worker.protocol import (MAX_HEADER_BYTES, MAX_REPLY_HEADER_BYTES, MalformedMessage,
                                          recv_message, send_message)

    rows = [{"id": n, "length_mm": 12.5, "mean_radius_mm": 2.25, "parent": n - 1} for n in range(30000)]
    header = {"type": "result", "meta": {"branch_rows": rows}}

    def send(sock):
        try:
            send_message(sock, header, {"a": np.arange(5)})
        except OSError:  # the refusing side hung up: expected there
            pass

    for limit, accepted in ((MAX_REPLY_HEADER_BYTES, True), (MAX_HEADER_BYTES, False)):
        sender, receiver = socket.socketpair()
        with sender, receiver:
            thread = threading.Thread(target=send, args=(sender,))
            thread.start()
            if accepted:
                message = recv_message(receiver, max_header=limit)
                assert len(message.header["meta"]["branch_rows"]) == 30000
                assert message.arrays["a"].tolist() == [0, 1, 2, 3, 4]
            else:
                with pytest.raises(MalformedMessage, match="header is too large"):
                    recv_message(receiver, max_header=limit)
                receiver.close()
            thread.join(10)
