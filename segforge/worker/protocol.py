"""The worker's wire format: one JSON header and raw array bytes, length-prefixed.

A message is ``PREFIX`` (magic, header length, payload length), a UTF-8 JSON object,
then the raw bytes of each array it declares, back to back. Arrays never become JSON
voxel lists and nothing is ever unpickled: the receiver checks every declared dtype,
shape and size against hard limits before it allocates a byte, and reads the bytes
straight into the final numpy buffer (one copy, no intermediate ``bytes``).
"""
from __future__ import annotations

import json
import math
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import ProtocolMismatch, WorkerError
from ..image import Image

#: Bumped on any incompatible change; client and worker refuse to talk across versions.
#: 2: the ``interactive.withdraw`` task and a box prompt's ``axes`` (a worker of version 1
#: read a turned box as the patient-axis box around it, silently).
PROTOCOL_VERSION = 2
MAGIC = b"SGF1"
PREFIX = struct.Struct("!4sIQ")
#: Header ceiling for requests (read before the token is checked, so kept small).
MAX_HEADER_BYTES = 1 << 20
#: Header ceiling for replies a client reads from its own worker: a whole-thorax vessel
#: tree's branch and finding rows alone take over 1 MiB of JSON.
MAX_REPLY_HEADER_BYTES = 256 << 20
#: Default ceiling for one message's arrays (a 1024^3 float32 volume is 4 GiB).
DEFAULT_MAX_PAYLOAD_BYTES = 8 << 30
ALLOWED_DTYPES = frozenset({"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32",
                            "uint64", "int64", "float32", "float64"})
MAX_ARRAY_DIMS = 4
#: Largest extent of one array dimension (numpy refuses larger ones even when the array is empty).
MAX_DIMENSION = 2**31 - 1


class MalformedMessage(WorkerError):
    """A message broke the wire format; the connection is closed after the reply."""

    code = "malformed"


@dataclass
class Message:
    """A decoded message: the JSON header and the arrays it carried, by name.

    An array sent with geometry arrives as an :class:`~segforge.image.Image`.
    """

    header: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)


def _geometry(image: Image) -> dict[str, Any]:
    return {"spacing": list(image.spacing), "origin_lps": list(image.origin_lps),
            "direction_lps": image.direction_lps.ravel().tolist()}


def _native(array: np.ndarray) -> np.ndarray:
    """C-contiguous, native byte order (the wire carries raw native bytes); no copy if already so."""
    array = np.asarray(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))


def _wire_array(value: Any) -> tuple[np.ndarray, Optional[dict[str, Any]]]:
    if isinstance(value, Image):
        return _native(value.array), _geometry(value)
    return _native(value), None


def send_message(sock: socket.socket, header: dict[str, Any], arrays: Optional[dict[str, Any]] = None) -> None:
    """Send a header and arrays (numpy arrays or Images) without copying the voxels."""
    specs, buffers = [], []
    for name, value in (arrays or {}).items():
        array, geometry = _wire_array(value)
        if array.dtype.name not in ALLOWED_DTYPES:
            raise WorkerError(f"Cannot send array {name!r}", f"its type {array.dtype} is not supported",
                              "convert it to an integer or float type")
        specs.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                      "geometry": geometry})
        buffers.append(memoryview(array).cast("B") if array.nbytes else b"")
    body = json.dumps({**header, "arrays": specs}, separators=(",", ":")).encode("utf-8")
    payload = sum(len(buffer) for buffer in buffers)
    sock.sendall(PREFIX.pack(MAGIC, len(body), payload) + body)
    for buffer in buffers:
        sock.sendall(buffer)


def _recv_exactly(sock: socket.socket, view: memoryview) -> None:
    received = 0
    while received < len(view):
        count = sock.recv_into(view[received:])
        if count == 0:
            raise ConnectionError("the connection closed in the middle of a message")
        received += count


def protocol_mismatch(worker_version: object, worker_protocol: object, client_protocol: object) -> ProtocolMismatch:
    """The refusal when client and worker speak different protocols (both sides say the same)."""
    return ProtocolMismatch("The SegForge worker speaks another protocol version",
                            f"the worker (SegForge {worker_version}) speaks version {worker_protocol}, "
                            f"the client speaks version {client_protocol}",
                            "install the same SegForge version on both sides (update the extension or the server)")


def too_large(payload_size: int, max_payload: int) -> MalformedMessage:
    """The refusal of a request over the worker's size limit (client and server say the same)."""
    return MalformedMessage("The request is too large for this worker",
                            f"it carries {payload_size / 2**20:.1f} MiB, more than the limit of "
                            f"{max_payload / 2**20:.1f} MiB",
                            "crop the volume to the region of interest, or raise the server's --max-request-mb")


def payload_size(arrays: Optional[dict[str, Any]]) -> int:
    """Bytes the arrays (or Images) will take on the wire."""
    return sum(int(getattr(value, "array", value).nbytes) for value in (arrays or {}).values())


def recv_header(sock: socket.socket, max_payload: int = DEFAULT_MAX_PAYLOAD_BYTES,
                max_header: int = MAX_HEADER_BYTES) -> tuple[dict[str, Any], int]:
    """Read and check the prefix and JSON header; returns the header and payload size.

    Raises ``EOFError`` on a clean close before any byte, :class:`MalformedMessage` on
    anything that breaks the format or the limits.
    """
    prefix = bytearray(PREFIX.size)
    first = sock.recv_into(prefix)
    if first == 0:
        raise EOFError("connection closed")
    _recv_exactly(sock, memoryview(prefix)[first:])
    magic, header_size, payload_size = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise MalformedMessage("The request is not a SegForge worker message",
                               "its first bytes are not the protocol's magic number",
                               "connect with a SegForge client of the same version")
    if header_size > max_header:
        raise MalformedMessage("The message header is too large",
                               f"it declares {header_size} bytes, more than {max_header}",
                               "send parameters as a small JSON object and voxels as arrays")
    if payload_size > max_payload:
        raise too_large(payload_size, max_payload)
    body = bytearray(header_size)
    _recv_exactly(sock, memoryview(body))
    try:
        header = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, 5000-digit numbers, [[[[...
        raise MalformedMessage("The request header is not valid JSON", str(error) or type(error).__name__,
                               "connect with a SegForge client of the same version") from error
    if not isinstance(header, dict):
        raise MalformedMessage("The request header is not a JSON object", f"it is a {type(header).__name__}",
                               "connect with a SegForge client of the same version")
    return header, payload_size


def _checked_specs(header: dict[str, Any], payload_size: int) -> list[tuple[str, np.dtype, tuple[int, ...], Any]]:
    specs = header.get("arrays", [])
    if not isinstance(specs, list):
        raise MalformedMessage("The request's array list is malformed", "'arrays' is not a list")
    checked, total, names = [], 0, set()
    for spec in specs:
        try:
            name, dtype_name, shape = str(spec["name"]), spec["dtype"], spec["shape"]
            if dtype_name not in ALLOWED_DTYPES:
                raise ValueError(f"dtype {dtype_name!r} is not allowed")
            if (not isinstance(shape, list) or not 1 <= len(shape) <= MAX_ARRAY_DIMS
                    or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
                raise ValueError(f"shape {shape!r} is not 1 to {MAX_ARRAY_DIMS} non-negative integers")
            if name in names:
                raise ValueError(f"array name {name!r} is used twice")
        except (KeyError, TypeError, ValueError) as error:
            raise MalformedMessage("The request declares a malformed array", str(error)) from error
        names.add(name)
        dtype = np.dtype(dtype_name)
        total += math.prod(shape) * dtype.itemsize  # Python integers: no overflow to fool the check
        checked.append((name, dtype, tuple(shape), spec.get("geometry")))
    if total != payload_size:
        raise MalformedMessage("The request's arrays do not match its size",
                               f"they declare {total} bytes but the message carries {payload_size}")
    for name, _, shape, _ in checked:  # only an empty array gets here with a dimension numpy cannot make
        if any(n > MAX_DIMENSION for n in shape):
            raise MalformedMessage("The request declares a malformed array",
                                   f"array {name!r}: shape {list(shape)!r} is too large for one dimension "
                                   f"(at most {MAX_DIMENSION})")
    return checked


def _discard(sock: socket.socket, count: int, chunk: int = 1 << 20) -> None:
    """Read and drop ``count`` bytes with a small buffer (the sender is still sending them)."""
    buffer = memoryview(bytearray(min(chunk, max(count, 1))))
    while count > 0:
        got = sock.recv_into(buffer[:min(count, len(buffer))])
        if got == 0:
            raise ConnectionError("the connection closed in the middle of a message")
        count -= got


def recv_arrays(sock: socket.socket, header: dict[str, Any], payload_size: int) -> dict[str, Any]:
    """Read the arrays declared in ``header`` straight into numpy buffers."""
    received, consumed = [], 0
    for name, dtype, shape, geometry in _checked_specs(header, payload_size):
        try:
            array = np.empty(shape, dtype=dtype)
        except (MemoryError, ValueError):
            received.clear()  # free what was read, skip the rest: the stream stays in step
            _discard(sock, payload_size - consumed)
            raise WorkerError("The worker has not enough memory for this volume",
                              f"it could not allocate {math.prod(shape) * dtype.itemsize / 2**20:.0f} "
                              "MiB to receive it",
                              "crop the volume to the region of interest, or use a worker with more memory") from None
        if array.nbytes:
            _recv_exactly(sock, memoryview(array).cast("B"))
        consumed += array.nbytes
        received.append((name, array, geometry))
    # Geometry is checked only once every byte is read, so a refused image leaves the
    # stream in step for the next request.
    return {name: _with_geometry(name, array, geometry) for name, array, geometry in received}


def _with_geometry(name: str, array: np.ndarray, geometry: Any) -> Any:
    if geometry is None:
        return array
    try:
        return Image(array, tuple(geometry["spacing"]), tuple(geometry["origin_lps"]),
                     np.asarray(geometry["direction_lps"], dtype=np.float64).reshape(3, 3))
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise MalformedMessage(f"The geometry of image {name!r} is malformed", str(error)) from error


def recv_message(sock: socket.socket, max_payload: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 max_header: int = MAX_HEADER_BYTES) -> Message:
    """Read one whole message (header and arrays)."""
    header, payload_size = recv_header(sock, max_payload, max_header)
    return Message(header, recv_arrays(sock, header, payload_size))
