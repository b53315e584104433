"""Load test of a shared worker server on loopback: legitimate clients with and without hostile sockets.

A real ``segforge serve`` subprocess; 8 legitimate clients, each on its own connection:
4 interactive sessions clicking with the random-walker backend on a small synthetic volume,
and 4 clients submitting small jobs (vessel.mask and organ.segment with ct-tissues) in a loop.
The first half of ``--seconds`` runs them alone, the second half with hostile sockets from
other loopback addresses: idle connections, slow tricklers (one byte a second) and garbage
senders (connect, random bytes, close, as fast as they can).

Reported per phase: per-click latency p50/p95, jobs per minute, errors. Every job result is
compared with the engine's own, in this process; every session's final mask with an
in-process session given the same prompts. Leaks: the server's open file descriptors, RSS
and open sessions, sampled after warm-up, after each phase, and once the clients have
closed their sessions. The server runs with ``--max-sessions-per-client 4``: all clients
share 127.0.0.1, and the default allows one address 2 sessions.

Run: ``python benchmarks/server_load.py [--seconds 60] [--out out/benchmarks/server_load.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segforge.image import Image  # noqa: E402
from segforge.interactive.prompts import PointPrompt  # noqa: E402
from segforge.interactive.session import InteractiveSession  # noqa: E402
from segforge.worker import PROTOCOL_VERSION, WorkerClient  # noqa: E402
from segforge.worker.interactive_client import RemoteSession  # noqa: E402
from segforge.worker.protocol import MAGIC, PREFIX  # noqa: E402

TOKEN = "load-test-token"
VESSEL_PARAMS = {"min_radius_mm": 1.5, "max_radius_mm": 3.0, "scales": 2, "threshold": 0.2}


def tube_volume() -> Image:
    shape = (32, 40, 48)
    k, j, _ = np.indices(shape)
    array = np.where(np.hypot(k - 16, j - 20) <= 3.0, 400, 0).astype(np.int16)
    array += np.random.default_rng(0).normal(0, 10, shape).astype(np.int16)
    return Image(array, (0.8, 0.9, 1.2))


def ct_volume() -> Image:
    """Air around a soft-tissue body with fat and a bone: what ct-tissues labels."""
    shape = (24, 48, 48)
    k, j, i = np.indices(shape)
    body = np.hypot(j - 24, i - 24) < 20
    array = np.where(body, 40, -1000).astype(np.int16)
    array[body & (np.hypot(j - 24, i - 24) > 16)] = -100
    array[np.hypot(j - 24, i - 30) < 4] = 700
    array += np.random.default_rng(1).normal(0, 5, shape).astype(np.int16)
    return Image(array, (1.5, 1.0, 1.0))


def lesion_volume() -> Image:
    shape = (24, 40, 40)
    k, j, i = np.indices(shape)
    ball = np.sqrt((k - 12) ** 2 + (j - 20) ** 2 + (i - 20) ** 2) <= 6
    array = 200.0 * ball + np.random.default_rng(2).normal(0, 20, shape)
    return Image(array.astype(np.float32))


def server_usage(pid: int) -> dict:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    with WorkerClient("127.0.0.1", PORT, TOKEN) as probe:
        load = probe.hello()["load"]
    return {"fds": fds, "rss_mib": round(rss / 1024, 1), "sessions": load["sessions"], "jobs": load["jobs"],
            "authenticated_connections": load["connections"] - 1}  # less the probe itself


class Phase:
    def __init__(self) -> None:
        self.name = "warm-up"
        self.clicks: dict[str, list[float]] = {"clean": [], "hostile": []}
        self.jobs: dict[str, int] = {"clean": 0, "hostile": 0}
        self.errors: list[str] = []
        self.wrong: list[str] = []
        self.lock = threading.Lock()


def interactive_client(number: int, phase: Phase, stop: threading.Event, checks: list) -> None:
    image = lesion_volume()
    rng = random.Random(number)
    centre = image.ijk_to_lps() @ np.array([20.0, 20.0, 12.0, 1.0])
    with WorkerClient("127.0.0.1", PORT, TOKEN) as worker:
        session = RemoteSession(worker, image)
        try:
            while not stop.is_set():
                offset = np.array([rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-2, 2)])
                prompt = PointPrompt(tuple(centre[:3] + offset), positive=not session.history or rng.random() > 0.2)
                started = time.perf_counter()
                try:
                    session.interact(prompt)
                except Exception as error:  # noqa: BLE001 - counted, the load goes on
                    with phase.lock:
                        phase.errors.append(f"click {number}: {error}")
                    continue
                seconds = time.perf_counter() - started
                with phase.lock:
                    if phase.name in phase.clicks:
                        phase.clicks[phase.name].append(seconds)
                if len(session.history) >= 6:
                    session.reset()
            checks.append((image, list(session.history), session.mask.copy()))
        finally:
            session.close()


def job_client(number: int, phase: Phase, stop: threading.Event, expected: dict) -> None:
    task = "vessel.mask" if number % 2 == 0 else "organ.segment"
    image, params, output = expected[task]
    with WorkerClient("127.0.0.1", PORT, TOKEN) as worker:
        while not stop.is_set():
            try:
                result = worker.run(task, {"image": image}, params)
            except Exception as error:  # noqa: BLE001
                with phase.lock:
                    phase.errors.append(f"job {number}: {error}")
                continue
            name = "mask" if task == "vessel.mask" else "labels"
            ok = np.array_equal(result.outputs[name].array, output)
            with phase.lock:
                if not ok:
                    phase.wrong.append(f"{task} from client {number}")
                if phase.name in phase.jobs:
                    phase.jobs[phase.name] += 1


def hostile_sockets(stop: threading.Event, counts: dict) -> list[threading.Thread]:
    def idle(address: str) -> None:
        held: list[socket.socket] = []
        while not stop.is_set():
            try:
                sock = socket.socket()
                sock.bind((address, 0))
                sock.connect(("127.0.0.1", PORT))
                held.append(sock)
                counts["idle"] += 1
            except OSError:
                pass
            held = [s for s in held if _alive(s)]
            time.sleep(0.2)
        for sock in held:
            sock.close()

    def trickle(address: str) -> None:
        data = PREFIX.pack(MAGIC, 60, 0) + b'{"op":"hello","protocol":%d,"token":"guess"' % PROTOCOL_VERSION
        while not stop.is_set():
            try:
                with socket.socket() as sock:
                    sock.bind((address, 0))
                    sock.connect(("127.0.0.1", PORT))
                    counts["trickle"] += 1
                    for byte in data:
                        if stop.is_set():
                            break
                        sock.sendall(bytes([byte]))
                        time.sleep(1.0)
            except OSError:
                pass

    def garbage(address: str) -> None:
        rng = random.Random(address)
        while not stop.is_set():
            try:
                with socket.socket() as sock:
                    sock.bind((address, 0))
                    sock.settimeout(2)
                    sock.connect(("127.0.0.1", PORT))
                    sock.sendall(rng.randbytes(rng.randint(1, 400)))
                    counts["garbage"] += 1
            except OSError:
                pass
            time.sleep(0.01)

    threads = [threading.Thread(target=body, args=(f"127.0.0.{n}",), daemon=True)
               for n, body in ((2, idle), (3, idle), (4, trickle), (5, trickle), (6, trickle), (7, garbage))]
    for thread in threads:
        thread.start()
    return threads


def _alive(sock: socket.socket) -> bool:
    try:
        sock.setblocking(False)
        data = sock.recv(1, socket.MSG_PEEK)
        if data == b"":
            sock.close()
            return False
        return True
    except BlockingIOError:
        return True
    except OSError:
        sock.close()
        return False


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total load time, half clean, half hostile")
    parser.add_argument("--out", default=str(ROOT / "out" / "benchmarks" / "server_load.json"))
    args = parser.parse_args()

    from segforge.organ.parameters import OrganParameters
    from segforge.organ.pipeline import segment_organs
    from segforge.vessel import VesselMaskParameters, vessel_mask

    tube, ct = tube_volume(), ct_volume()
    organ_params = {"model": "ct-tissues", "statistics": False, "device": "cpu"}
    expected = {
        "vessel.mask": (tube, VESSEL_PARAMS, vessel_mask(tube, VesselMaskParameters(**VESSEL_PARAMS)).array),
        "organ.segment": (ct, organ_params, segment_organs(ct, OrganParameters(model="ct-tissues",
                                                                                device="cpu")).labels.array),
    }

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "segforge.cli.main", "serve", "--port", "0", "--token", TOKEN,
                               "--max-sessions-per-client", "4"], stdout=subprocess.PIPE, text=True, env=env)
    line = server.stdout.readline()  # type: ignore[union-attr]
    PORT = int(dict(part.split("=") for part in line.split()[1:])["port"])
    phase, stop, checks = Phase(), threading.Event(), []
    clients = [threading.Thread(target=interactive_client, args=(n, phase, stop, checks)) for n in range(4)]
    clients += [threading.Thread(target=job_client, args=(n, phase, stop, expected)) for n in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(5.0)  # warm-up: sessions open, first clicks and jobs (imports, numba...)
    usage = {"after_warm_up": server_usage(server.pid)}
    half = args.seconds / 2
    with phase.lock:
        phase.name = "clean"
    time.sleep(half)
    usage["after_clean"] = server_usage(server.pid)
    counts = {"idle": 0, "trickle": 0, "garbage": 0}
    hostile_stop = threading.Event()
    hostiles = hostile_sockets(hostile_stop, counts)
    with phase.lock:
        phase.name = "hostile"
    time.sleep(half)
    with phase.lock:
        phase.name = "done"
    usage["during_hostile"] = server_usage(server.pid)
    hostile_stop.set()
    for thread in hostiles:
        thread.join(15)
    stop.set()
    for thread in clients:
        thread.join(120)
    time.sleep(11.0)  # past the authentication deadline: every hostile leftover is gone
    usage["after_all_closed"] = server_usage(server.pid)

    mismatched = 0
    for image, history, mask in checks:
        reference = InteractiveSession(image)
        for prompt in history:
            reference.interact(prompt)
        mismatched += int(not np.array_equal(reference.mask, mask))
    server.terminate()
    server.wait(10)

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": {"nproc": os.cpu_count(), "cpu": _cpu_model(),
                                                             "python": platform.python_version()},
        "seconds": args.seconds, "clients": {"interactive": 4, "jobs": 4},
        "hostile_connections_made": counts,
        "phases": {name: {"clicks": len(phase.clicks[name]),
                          "click_p50_ms": round(1000 * percentile(phase.clicks[name], 50), 1),
                          "click_p95_ms": round(1000 * percentile(phase.clicks[name], 95), 1),
                          "jobs_per_minute": round(phase.jobs[name] / (half / 60), 1)}
                   for name in ("clean", "hostile")},
        "errors": phase.errors[:20], "error_count": len(phase.errors), "wrong_results": phase.wrong,
        "sessions_checked": len(checks), "sessions_mismatched": mismatched,
        "server_usage": usage,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    clean = not phase.errors and not phase.wrong and not mismatched
    return 0 if clean else 1


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


PORT = 0

if __name__ == "__main__":
    sys.exit(main())
