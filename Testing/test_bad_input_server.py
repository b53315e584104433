"""A shared worker server against bad input and hostile clients: real subprocesses, real sockets.

Every case checks what the user (or the prober) is told and that the server serves on.
Hostile sockets connect from other loopback addresses (127.0.0.2...), as other machines would:
the server counts connections waiting to authenticate per address.
"""
from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from segforge.errors import AuthError, ProtocolMismatch, SegForgeError, WorkerBusy, WorkerDied, WorkerError
from segforge.image import Image
from segforge.interactive.prompts import PointPrompt
from segforge.worker import PROTOCOL_VERSION, WorkerClient
from segforge.worker.client import tls_context
from segforge.worker.interactive_client import RemoteSession
from segforge.worker.protocol import MAGIC, PREFIX
from worker_helpers import frame, raw_exchange, running_server, slow_job, wait_until_running

TOKEN = "t"


def small_image() -> Image:
    array = np.zeros((12, 16, 16), np.int16)
    array[4:8, 5:11, 5:11] = 300
    return Image(array + np.random.default_rng(0).normal(0, 5, array.shape).astype(np.int16))


def assert_serves(port: int, process: subprocess.Popen, **client: object) -> None:
    """The server is alive and runs a job correctly for a well-behaved client."""
    assert process.poll() is None, "the server died"
    with WorkerClient("127.0.0.1", port, TOKEN, **client) as friend:  # type: ignore[arg-type]
        result = friend.run("image.threshold", {"image": small_image()}, {"lower": 200})
        assert result.meta["voxels"] == 4 * 6 * 6


def hostile(address: str, port: int) -> socket.socket:
    """A connection from another loopback address (as from another machine)."""
    sock = socket.socket()
    sock.bind((address, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``within_s`` seconds."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def read_reply(sock: socket.socket) -> dict:
    from segforge.worker.protocol import recv_message

    return recv_message(sock).header


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two self-signed certificates: one for 127.0.0.1, one made out to another name."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    made = {}
    for name, san in (("right", "IP:127.0.0.1"), ("other", "DNS:not-this-host.example")):
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        f"/CN={name}", "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        made[name] = (cert, key)
    return made


# -- the authentication deadline and the connection caps ------------------------------------
def test_a_trickling_client_is_dropped_at_the_deadline():
    with running_server(TOKEN, "--auth-deadline-s", "2") as (port, process):
        data = frame({"op": "hello", "protocol": PROTOCOL_VERSION, "token": TOKEN, "pad": "x" * 200})
        sock = hostile("127.0.0.2", port)
        started, sent = time.monotonic(), 0
        try:
            while sent < len(data) and time.monotonic() - started < 8:
                sock.sendall(data[sent:sent + 1])  # one byte every 0.25 s: each read gets something
                sent += 1
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed = time.monotonic() - started
        assert sent < len(data) and elapsed < 4.0, f"the trickle went on for {elapsed:.1f} s"
        assert_serves(port, process)


def test_a_silent_connection_is_told_why_it_was_closed():
    with running_server(TOKEN, "--auth-deadline-s", "1") as (port, process):
        with hostile("127.0.0.2", port) as sock:
            started = time.monotonic()
            reply = read_reply(sock)
            assert 0.8 < time.monotonic() - started < 3.0
        assert reply["ok"] is False and "within 1 s" in reply["error"]["why"]
        assert_serves(port, process)


def test_an_unauthenticated_flood_cannot_block_authenticated_clients():
    with running_server(TOKEN, "--auth-deadline-s", "30") as (port, process):
        with WorkerClient("127.0.0.1", port, TOKEN) as friend:
            friend.hello()  # authenticated before the flood
            flood = [hostile(f"127.0.0.{2 + n % 8}", port) for n in range(80)]  # idle: never send a byte
            try:
                time.sleep(0.5)
                # Beyond 16 waiting connections (4 per address) the rest are closed at once...
                closed = sum(closed_by_server(sock, 0.05) for sock in flood)
                assert closed >= 80 - 16
                # ...the authenticated client works on, and a new one from a quiet address gets in.
                assert friend.run("image.threshold", {"image": small_image()}, {"lower": 200}).meta["voxels"] == 144
                assert_serves(port, process)
            finally:
                for sock in flood:
                    sock.close()


def test_a_flood_from_one_address_leaves_room_for_the_others():
    with running_server(TOKEN, "--auth-deadline-s", "30") as (port, process):
        flood = [hostile("127.0.0.2", port) for _ in range(20)]
        try:
            time.sleep(0.3)
            assert sum(closed_by_server(sock, 0.05) for sock in flood) == 16  # 4 may wait per address
            assert_serves(port, process)
        finally:
            for sock in flood:
                sock.close()


def hello_once_there_is_room(client: WorkerClient, within_s: float = 10.0) -> dict:
    """The server counts a closed connection out when its thread sees the close, a moment later."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return client.hello()
        except WorkerBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_authenticated_clients_beyond_the_cap_are_told_to_try_again():
    with running_server(TOKEN, "--max-connections", "1") as (port, process):
        first = WorkerClient("127.0.0.1", port, TOKEN)
        first.hello()
        with WorkerClient("127.0.0.1", port, TOKEN) as second:
            with pytest.raises(WorkerBusy) as caught:
                second.hello()
            assert "1 clients are connected" in caught.value.why and "try again" in caught.value.todo
            first.close()
            assert hello_once_there_is_room(second)["protocol"] == PROTOCOL_VERSION  # the same client
        assert_serves(port, process)


# -- malformed requests -----------------------------------------------------------------------
def test_garbage_instead_of_a_header_is_refused():
    with running_server(TOKEN) as (port, process):
        reply = raw_exchange(port, bytes(range(256)) * 4)
        assert reply["ok"] is False and "not a SegForge worker message" in reply["error"]["what"]
        assert_serves(port, process)


def test_an_oversize_header_length_is_refused_without_waiting_for_it():
    with running_server(TOKEN) as (port, process):
        started = time.monotonic()
        reply = raw_exchange(port, PREFIX.pack(MAGIC, 0xFFFFFFFF, 0) + b"{}")
        assert time.monotonic() - started < 3.0
        assert "header is too large" in reply["error"]["what"] and str(0xFFFFFFFF) in reply["error"]["why"]
        assert_serves(port, process)


@pytest.mark.parametrize("shape, payload, expected", [
    ([-1, 4], b"", "non-negative"),
    ([2**20, 2**20, 2**20], b"", "do not match"),
    ([4, "4"], b"xxxx", "non-negative"),
    ([0, 2**40], b"", "too large for one dimension"),
])
def test_negative_or_huge_array_sizes_are_refused(shape, payload, expected):
    with running_server(TOKEN) as (port, process):
        reply = raw_exchange(port, frame({"op": "submit", "task": "image.threshold", "protocol": PROTOCOL_VERSION,
                                          "token": TOKEN, "arrays": [{"name": "image", "dtype": "uint8",
                                                                      "shape": shape}]}, payload))
        assert reply["ok"] is False and expected in reply["error"]["what"] + reply["error"]["why"]
        assert_serves(port, process)


def test_a_wrong_token_is_refused_with_what_to_do():
    with running_server(TOKEN) as (port, process):
        with WorkerClient("127.0.0.1", port, "not-the-token") as intruder:
            with pytest.raises(AuthError) as caught:
                intruder.hello()
        assert "token is wrong" in caught.value.why and "--token or SEGFORGE_TOKEN" in caught.value.todo
        assert_serves(port, process)


def test_a_wrong_protocol_version_is_refused_with_what_to_do():
    with running_server(TOKEN) as (port, process):
        reply = raw_exchange(port, frame({"op": "hello", "protocol": "1", "token": TOKEN}))
        error = SegForgeError.from_dict(reply["error"])
        assert isinstance(error, ProtocolMismatch) and "same SegForge version" in error.todo
        assert_serves(port, process)


# -- per-client limits --------------------------------------------------------------------------
def test_a_client_beyond_its_job_limit_is_refused_until_a_job_ends():
    with running_server(TOKEN, "--max-jobs-per-client", "2") as (port, process):
        image, params = slow_job()
        with WorkerClient("127.0.0.1", port, TOKEN) as greedy:
            first = greedy.submit("vessel.mask", {"image": image}, params)
            second = greedy.submit("vessel.mask", {"image": image}, params)
            with pytest.raises(WorkerBusy) as caught:
                greedy.submit("image.threshold", {"image": small_image()}, {"lower": 200})
            assert "2 jobs queued or running" in caught.value.why and "wait for a job" in caught.value.todo
            second.cancel()  # a queued job ends at once and frees its place
            wait_until_running(first)
            first.cancel()
            while not first.poll().finished:
                time.sleep(0.05)
            assert_serves(port, process)


def test_a_refused_request_leaves_the_connection_open_and_idle_as_long_as_it_likes():
    with running_server(TOKEN) as (port, process):
        with WorkerClient("127.0.0.1", port, TOKEN) as client:
            client.hello()
            connection = client._sock
            with pytest.raises(SegForgeError, match="no such job"):
                client._request({"op": "status", "job": "nope"})
            time.sleep(3.0)  # longer than the 2 s the server allows itself to send a refusal
            assert client.hello()["protocol"] == PROTOCOL_VERSION and client._sock is connection
        assert_serves(port, process)


def test_a_client_beyond_its_session_limit_is_refused_until_it_closes_one():
    with running_server(TOKEN, "--max-sessions-per-client", "1") as (port, process):
        with WorkerClient("127.0.0.1", port, TOKEN) as worker:
            first = RemoteSession(worker, small_image())
            with pytest.raises(WorkerBusy) as caught:
                RemoteSession(worker, small_image())
            assert "1 sessions in use" in caught.value.why and "close an interactive session" in caught.value.todo
            first.interact(PointPrompt((8.0, 8.0, 6.0)))  # the open session is not disturbed
            assert first.mask.any()
            first.close()
            second = RemoteSession(worker, small_image())
            second.close()
        assert_serves(port, process)


# -- the health check ---------------------------------------------------------------------------
def test_the_health_check_answers_ok_and_nothing_else():
    with running_server(TOKEN) as (port, process):
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b"ok\n"
            connection.close()
        reply = raw_exchange(port, b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n")  # anything else: the usual refusal
        assert reply["ok"] is False and "magic" in reply["error"]["why"]
        assert_serves(port, process)


def test_the_health_check_over_tls(certificates):
    import ssl

    cert, key = certificates["right"]
    with running_server(TOKEN, "--tls-cert", str(cert), "--tls-key", str(key)) as (port, process):
        context = ssl.create_default_context(cafile=str(cert))
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b"ok\n"
        assert_serves(port, process, tls=tls_context(str(cert)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def health(port: int, source: str = "127.0.0.1", timeout: float = 5) -> int | None:
    """The status a health probe from ``source`` gets; None when the server closes it unanswered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status if response.read() == b"ok\n" else -response.status
    except (ConnectionError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def test_a_health_probe_from_a_quiet_address_is_answered_while_every_pending_place_is_taken():
    """16 strangers from 4 addresses hold all the places for connections waiting to authenticate;
    the probe, from an address with none, takes the place of the busiest address's oldest."""
    with running_server(TOKEN, "--auth-deadline-s", "30") as (port, process):
        flood = [hostile(f"127.0.0.{2 + n % 4}", port) for n in range(16)]
        try:
            time.sleep(0.3)
            assert not any(closed_by_server(sock, 0.05) for sock in flood)  # all 16 wait: the cap is full
            assert [health(port) for _ in range(5)] == [200] * 5
            assert_serves(port, process)
        finally:
            for sock in flood:
                sock.close()


def test_the_health_port_answers_while_strangers_hold_the_probers_own_places():
    """Behind a proxy or NAT the prober shares its address with everyone: 4 idle sockets from it
    take that address's pending places and a probe on the worker's port is closed unanswered
    (a load balancer would take the server out). --health-port answers, flood or not."""
    health_port = free_port()
    with running_server(TOKEN, "--auth-deadline-s", "30", "--health-port", str(health_port)) as (port, process):
        flood = [hostile("127.0.0.1", port) for _ in range(4)]
        on_health = [hostile("127.0.0.9", health_port) for _ in range(300)]  # idle, on the health port too
        try:
            time.sleep(0.3)
            assert health(port) is None  # the shared places: refused
            started = time.monotonic()
            assert [health(health_port) for _ in range(20)] == [200] * 20
            assert time.monotonic() - started < 5
            assert health(health_port, source="127.0.0.9") == 200
        finally:
            for sock in flood + on_health:
                sock.close()
        time.sleep(0.3)
        assert_serves(port, process)  # (a client from the flooded address waits for the flood to go)


def test_the_health_port_answers_any_request_and_only_ok():
    health_port = free_port()
    with running_server(TOKEN, "--health-port", str(health_port)) as (port, process):
        assert health(health_port) == 200
        with socket.create_connection(("127.0.0.1", health_port), timeout=5) as sock:
            sock.sendall(b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200 OK") and reply.endswith(b"\r\n\r\nok\n")
        with socket.create_connection(("127.0.0.1", health_port), timeout=5) as silent:  # sends nothing
            assert silent.recv(4096).startswith(b"HTTP/1.0 200 OK")
            assert closed_by_server(silent, 4)  # and is closed within the linger time
        assert_serves(port, process)


# -- TLS connections and the authentication deadline -----------------------------------------
def client_hello(cert) -> tuple[bytes, object, object, object]:
    """A real TLS ClientHello, made in memory (to send at any pace), and what finishes the handshake."""
    import ssl

    context = ssl.create_default_context(cafile=str(cert))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read(), tls, incoming, outgoing


@pytest.mark.parametrize("pace", ["silent", "trickle"])
def test_a_tls_client_stalling_in_the_handshake_is_dropped_at_the_deadline(certificates, pace):
    cert, key = certificates["right"]
    with running_server(TOKEN, "--tls-cert", str(cert), "--tls-key", str(key), "--auth-deadline-s", "2") \
            as (port, process):
        hello, *_ = client_hello(cert)
        sock = hostile("127.0.0.2", port)
        started, sent = time.monotonic(), 0
        try:
            while pace == "trickle" and sent < len(hello) and time.monotonic() - started < 8:
                sock.sendall(hello[sent:sent + 1])  # one byte of the ClientHello every 0.1 s
                sent += 1
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_by_server(sock, 8)
        elapsed = time.monotonic() - started
        sock.close()
        assert 1.5 < elapsed < 4.0, f"dropped after {elapsed:.1f} s"
        assert sent < len(hello)
        assert_serves(port, process, tls=tls_context(str(cert)))


def test_the_tls_handshake_counts_against_the_one_deadline(certificates):
    """A handshake that takes most of the deadline leaves only the rest for the request: the
    connection is dropped 3 s after it was accepted, not 3 s after its handshake."""
    import ssl

    cert, key = certificates["right"]
    with running_server(TOKEN, "--tls-cert", str(cert), "--tls-key", str(key), "--auth-deadline-s", "3") \
            as (port, process):
        hello, tls, incoming, outgoing = client_hello(cert)
        sock = hostile("127.0.0.2", port)
        started = time.monotonic()
        for start in range(0, len(hello), len(hello) // 10 + 1):  # the ClientHello over about 2 s
            sock.sendall(hello[start:start + len(hello) // 10 + 1])
            time.sleep(0.2)
        while True:  # finish the handshake
            incoming.write(sock.recv(65536))  # type: ignore[attr-defined]
            try:
                tls.do_handshake()  # type: ignore[attr-defined]
                break
            except ssl.SSLWantReadError:
                pass
            finally:
                sock.sendall(outgoing.read())  # type: ignore[attr-defined]
        handshake_s = time.monotonic() - started
        assert handshake_s > 1.5
        tls.write(frame({"op": "hello", "protocol": PROTOCOL_VERSION, "token": TOKEN})[:5])  # type: ignore
        sock.sendall(outgoing.read())  # type: ignore[attr-defined]  # then nothing more
        assert closed_by_server(sock, 8)
        elapsed = time.monotonic() - started
        sock.close()
        assert elapsed < 3 + 1.2 and elapsed < handshake_s + 3, (handshake_s, elapsed)
        assert_serves(port, process, tls=tls_context(str(cert)))


# -- what the client says about TLS and connection problems ---------------------------------
def test_tls_client_meeting_a_plain_server_says_so():
    with running_server(TOKEN) as (port, process), pytest.MonkeyPatch.context() as env:
        env.setenv("SEGFORGE_SERVER", f"127.0.0.1:{port}")
        env.setenv("SEGFORGE_TOKEN", TOKEN)
        env.setenv("SEGFORGE_TLS", "1")
        with WorkerClient.from_environment() as client:
            with pytest.raises(WorkerError) as caught:
                client.hello()
        assert "does not speak TLS" in caught.value.why and "--tls-cert" in caught.value.todo
        assert isinstance(caught.value.__cause__, OSError)  # the raw error is kept as the cause only
        assert_serves(port, process)


def test_interactive_session_meeting_a_plain_server_with_tls_on_says_so(certificates):
    cert, _ = certificates["right"]
    with running_server(TOKEN) as (port, process):
        with WorkerClient("127.0.0.1", port, TOKEN, tls=tls_context(str(cert))) as client:
            with pytest.raises(WorkerError, match="does not speak TLS"):
                RemoteSession(client, small_image())
        assert_serves(port, process)


def test_a_server_certificate_from_another_ca_is_not_trusted(certificates):
    right, other = certificates["right"], certificates["other"]
    with running_server(TOKEN, "--tls-cert", str(right[0]), "--tls-key", str(right[1])) as (port, process):
        with WorkerClient("127.0.0.1", port, TOKEN, tls=tls_context(str(other[0]))) as client:
            with pytest.raises(WorkerError) as caught:
                client.hello()
        assert "not trusted" in caught.value.why and "SEGFORGE_TLS_CA" in caught.value.todo
        assert_serves(port, process, tls=tls_context(str(right[0])))


def test_a_certificate_made_out_to_another_host_is_a_name_mismatch(certificates):
    other = certificates["other"]
    with running_server(TOKEN, "--tls-cert", str(other[0]), "--tls-key", str(other[1])) as (port, process):
        with WorkerClient("127.0.0.1", port, TOKEN, tls=tls_context(str(other[0]))) as client:
            with pytest.raises(WorkerError) as caught:
                client.hello()
        assert "not made out to '127.0.0.1'" in caught.value.why and "SEGFORGE_SERVER" in caught.value.todo
        assert process.poll() is None


def test_a_missing_ca_file_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "ca.pem"
    monkeypatch.setenv("SEGFORGE_SERVER", "127.0.0.1:8765")
    monkeypatch.setenv("SEGFORGE_TLS_CA", str(missing))
    with pytest.raises(WorkerError) as caught:
        WorkerClient.from_environment()
    assert str(missing) in caught.value.what and "does not exist" in caught.value.what
    assert "SEGFORGE_TLS_CA" in caught.value.todo
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    monkeypatch.setenv("SEGFORGE_TLS_CA", str(garbage))
    with pytest.raises(WorkerError, match="cannot be used"):
        WorkerClient.from_environment()


def test_connection_refused_says_nothing_listens():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WorkerError) as caught:
        WorkerClient("127.0.0.1", port, TOKEN).hello()
    assert "connection refused" in caught.value.why and "segforge serve" in caught.value.todo
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_server_dying_mid_job_is_reported_with_what_to_do():
    with running_server(TOKEN) as (port, process):
        image, params = slow_job()
        with WorkerClient("127.0.0.1", port, TOKEN) as client:
            job = client.submit("vessel.mask", {"image": image}, params)
            wait_until_running(job)
            process.kill()
            process.wait()
            with pytest.raises(WorkerDied) as caught:
                job.poll()
            assert "Lost the connection" in caught.value.what and "closed the connection" in caught.value.why
            assert "run the job again" in caught.value.todo
            with pytest.raises(WorkerError, match="connection refused"):
                job.poll()  # the server stays gone: the next call says nothing listens


def test_a_reply_cut_short_is_reported_as_a_lost_connection():
    """A server that sends half a reply, then closes (it crashed while answering)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def half_answer() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            body = b'{"ok":true,"protocol":1,"version":"x","pid":1,"tasks":[],"arrays":[]}'
            connection.sendall(PREFIX.pack(MAGIC, len(body), 0) + body[:20])

    thread = threading.Thread(target=half_answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(WorkerDied) as caught:
            WorkerClient("127.0.0.1", port, TOKEN).hello()
        assert "closed the connection" in caught.value.why and "check the server" in caught.value.todo
    finally:
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("health_port, words", [("same", "Address already in use"), ("70000", "0-65535")])
def test_a_health_port_that_cannot_be_opened_is_named(health_port, words):
    """It was reported as the worker's port ("pick another --port") though that one was free."""
    import os
    import sys

    from conftest import REPO

    port = free_port()
    run = subprocess.run([sys.executable, "-m", "segforge.cli.main", "serve", "--port", str(port), "--token", TOKEN,
                          "--health-port", str(port) if health_port == "same" else health_port],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert f"cannot listen for health checks on 127.0.0.1:{health_port if health_port != 'same' else port}" in line
    assert words in line and "pick another --health-port" in line and "--port," not in line, line


def test_non_finite_voxels_are_refused_by_every_worker_task():
    """A NaN or infinite voxel (from the console or the Logic, where no file check ran) is
    refused by name before any filter spreads it into "no vessel found" or NaN statistics."""
    array = np.zeros((8, 8, 8), np.float32)
    array[2, 3, 4] = np.inf
    array[5, 5, 5] = np.nan
    image = Image(array, spacing=(1.0, 1.0, 1.0))
    with running_server(TOKEN) as (port, _process), WorkerClient("127.0.0.1", port, TOKEN) as client:
        for task in ("vessel.mask", "vessel.tree", "image.threshold"):
            params = {"lower": 0} if task == "image.threshold" else {}
            with pytest.raises(SegForgeError) as caught:
                client.submit(task, {"image": image}, params).wait()
            assert "NaN or infinite voxels" in caught.value.what, task
            assert "2 of its 512 voxels" in caught.value.why, task
