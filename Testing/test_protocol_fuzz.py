"""Property-based fuzzing of the worker's wire format (Hypothesis).

Arbitrary bytes and mutated valid frames, delivered in arbitrary pieces, either decode to
exactly what a valid frame carried or raise the protocol's own errors: never another
exception, never an allocation beyond the declared limits. The last property sends such
frames to a real server on a real socket and checks that it answers a good client after each.
"""
from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segforge.errors import SegForgeError
from segforge.image import Image
from segforge.worker import PROTOCOL_VERSION, WorkerClient
from segforge.worker.protocol import ALLOWED_DTYPES, MAGIC, PREFIX, recv_message, send_message
from segforge.worker.server import WorkerServer

#: What a receiver may raise on bad input: the stream ended (EOFError, ConnectionError) or a
#: SegForge error (MalformedMessage and the worker's refusals are all SegForgeErrors).
ALLOWED_ERRORS = (EOFError, ConnectionError, SegForgeError)
MAX_PAYLOAD = 1 << 20


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data) -> None:
        self.data += bytes(data)


class Source:
    """A socket that hands out ``data`` in the given piece sizes, then EOF."""

    def __init__(self, data: bytes, pieces: list[int]) -> None:
        self._data, self._pieces, self._at = memoryview(data), pieces or [1 << 30], 0

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        limit = min(nbytes or len(view), len(view), self._pieces[self._at % len(self._pieces)] or 1)
        chunk = self._data[:limit]
        view[:len(chunk)] = chunk
        self._data = self._data[len(chunk):]
        self._at += 1
        return len(chunk)


def encode(header: dict, arrays: dict) -> bytes:
    sink = Sink()
    send_message(sink, header, arrays)  # type: ignore[arg-type]
    return bytes(sink.data)


dtypes = st.sampled_from(sorted(ALLOWED_DTYPES))
arrays = dtypes.flatmap(lambda d: hnp.arrays(np.dtype(d), hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)
headers = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "arrays"), json_values, max_size=4)
pieces = st.lists(st.integers(1, 64), max_size=6)


@st.composite
def valid_frames(draw) -> tuple[bytes, dict, dict]:
    header = draw(headers)
    named = draw(st.dictionaries(st.text(min_size=1, max_size=6), arrays, max_size=3))
    if named and draw(st.booleans()):  # one of them as an Image with geometry
        name, array = next(iter(named.items()))
        if array.ndim == 3 and array.size:
            named[name] = Image(array, (0.5, 1.0, 2.0), (1.0, -2.0, 3.0))
    return encode(header, named), header, named


def check_decoded(data: bytes, message) -> None:
    """A decoded message is what its header declares: every array's dtype, shape and bytes."""
    specs = message.header.get("arrays", [])  # absent: no arrays
    assert [s["name"] for s in specs] == list(message.arrays)
    total = 0
    for spec in specs:
        value = message.arrays[spec["name"]]
        array = getattr(value, "array", value)
        assert array.dtype.name == spec["dtype"] and list(array.shape) == spec["shape"]
        total += array.nbytes
    assert total == PREFIX.unpack(data[:PREFIX.size])[2]


@settings(max_examples=300, deadline=None)
@given(valid_frames(), pieces)
def test_valid_frames_decode_to_exactly_what_was_sent(frame, split):
    data, header, sent = frame
    message = recv_message(Source(data, split), MAX_PAYLOAD)  # type: ignore[arg-type]
    assert {k: v for k, v in message.header.items() if k != "arrays"} == header
    assert list(message.arrays) == list(sent)
    for name, value in sent.items():
        got = message.arrays[name]
        assert type(got) is type(value)
        np.testing.assert_array_equal(getattr(got, "array", got), getattr(value, "array", value))
        if isinstance(value, Image):
            assert got.same_grid(value)
    check_decoded(data, message)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), pieces)
def test_arbitrary_bytes_raise_only_the_protocols_errors(data, split):
    try:
        message = recv_message(Source(data, split), MAX_PAYLOAD)  # type: ignore[arg-type]
    except ALLOWED_ERRORS:
        return
    check_decoded(data, message)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), pieces)
def test_arbitrary_bytes_after_a_valid_prefix_raise_only_the_protocols_errors(body, split):
    for payload in (0, len(body) // 2, 1 << 40):
        data = PREFIX.pack(MAGIC, len(body), payload) + body
        try:
            message = recv_message(Source(data, split), MAX_PAYLOAD)  # type: ignore[arg-type]
        except ALLOWED_ERRORS:
            continue
        check_decoded(data, message)


@st.composite
def mutated_frames(draw) -> bytes:
    data = bytearray(draw(valid_frames())[0])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:  # rewrite a JSON value inside the header: sizes, shapes, dtypes, geometry
            text = bytes(data[PREFIX.size:]).decode("latin-1")
            for needle in ('"shape":[', '"dtype":"', '"spacing":[', '"direction_lps":['):
                if needle in text and draw(st.booleans()):
                    text = text.replace(needle, needle + draw(st.sampled_from(
                        ["-1,", "99999999999,", "1e308,", '"x",', "[[[]]],", "0,", "true,", "int64"])), 1)
            data[PREFIX.size:] = text.encode("latin-1")
    return bytes(data)


@settings(max_examples=500, deadline=None)
@given(mutated_frames(), pieces)
def test_mutated_frames_decode_correctly_or_raise_the_protocols_errors(data, split):
    try:
        message = recv_message(Source(data, split), MAX_PAYLOAD)  # type: ignore[arg-type]
    except ALLOWED_ERRORS:
        return
    check_decoded(data, message)


def test_a_header_nested_too_deep_is_malformed_not_a_crash():
    from segforge.worker.protocol import MalformedMessage

    for body in (b"[" * 100_000, b'{"a":' + b"1" * 5000 + b"}"):
        with pytest.raises(MalformedMessage, match="not valid JSON"):
            recv_message(Source(PREFIX.pack(MAGIC, len(body), 0) + body, []))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server():
    worker = WorkerServer(token="t", max_payload=MAX_PAYLOAD)
    thread = threading.Thread(target=worker.serve_forever, daemon=True)
    thread.start()
    yield worker, thread
    worker.stop()
    thread.join(5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(mutated_frames(), st.binary(max_size=200)), st.booleans())
def test_the_server_survives_any_frame_and_serves_on(server, data, as_stranger):
    worker, thread = server
    if not as_stranger and data[:4] == MAGIC:  # an authenticated caller with a broken request
        header = b'{"op":"hello","protocol":%d,"token":"t"}' % PROTOCOL_VERSION
        data = PREFIX.pack(MAGIC, len(header), 0) + header + data
    with socket.create_connection(worker.address, timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # no more bytes: the server must answer or close, not wait
            while sock.recv(65536):
                pass
        except OSError:  # the server closed first (reset, broken pipe, not connected)
            pass
    assert thread.is_alive()
    with WorkerClient(*worker.address, "t") as client:  # type: ignore[misc]
        assert client.hello()["protocol"] == PROTOCOL_VERSION
