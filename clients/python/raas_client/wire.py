"""The raas wire protocol, defined once (the daemon imports it from here).

A message is a list of ZeroMQ frames:

    [header, array_0, array_1, ...]

`header` is a msgpack map with at least `v` (protocol version) and `t` (message type); when the
message carries arrays, `a` lists them as `[name, dtype, shape]` in frame order and each array
travels as its raw bytes (C order) in a frame of its own. The receiver wraps those bytes with
`numpy.frombuffer` (no copy): images cost one memcpy on the sender at most, none on the receiver.

On the ROUTER control socket the daemon sees `[identity, header, ...]`; a client's DEALER sends
and receives `[header, ...]`. On the PUB stream each message is prefixed by a topic frame
(`step`, `image`, `event`) so subscribers filter with ZeroMQ's prefix subscriptions.

docs/protocol.md is the reference for every message type and error code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from raas_client.errors import ProtocolError

#: Bumped on any incompatible change; a daemon refuses other versions with `unsupported_version`.
PROTOCOL_VERSION = 1

#: Largest header a receiver accepts (bytes).
MAX_HEADER_BYTES = 64 * 1024
#: Largest request (all frames) the daemon accepts, except `upload_chunk` (docs/protocol.md).
MAX_MESSAGE_BYTES = 64 * 1024
#: Most array frames in one message.
MAX_ARRAYS = 64
_DTYPES = frozenset({"f4", "f8", "i4", "i8", "u1", "u2", "b1"})


class Msg:
    """Message types (`t`). Requests carry an `id` the reply repeats."""

    # client -> daemon
    HELLO = "hello"
    OPEN = "open"  # lease, role: control | observe
    CLOSE = "close"
    ARM = "arm"  # enter remote-step mode
    DISARM = "disarm"  # hold
    STEP = "step"  # cycle, arrays: action
    RESET = "reset"  # hold one cycle, start a new episode
    HEARTBEAT = "heartbeat"
    UPLOAD_BEGIN = "upload_begin"  # name, size, sha256
    UPLOAD_CHUNK = "upload_chunk"  # offset, arrays: data (u1)
    UPLOAD_END = "upload_end"
    RUN = "run"  # episodes, seed
    STOP = "stop"  # stop a policy run, hold
    ESTOP = "estop"  # lease (any scope): hold where measured, latched
    CLEAR_ESTOP = "clear_estop"
    STATUS = "status"
    FETCH = "fetch"  # session, offset, length
    # daemon -> client
    OK = "ok"
    ERROR = "error"  # code, message
    OBS = "obs"  # observation k for the controller (remote step), report of k-1
    EVENT = "event"  # session closed, run progress, e-stop ...


class Topic:
    STEP = b"step"
    IMAGE = b"image"
    EVENT = b"event"


class ErrorCode:
    BAD_REQUEST = "bad_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    LEASE_MALFORMED = "lease_malformed"
    LEASE_SIGNATURE_INVALID = "lease_signature_invalid"
    LEASE_EXPIRED = "lease_expired"
    LEASE_NOT_YET_VALID = "lease_not_yet_valid"
    LEASE_WRONG_ROBOT = "lease_wrong_robot"
    LEASE_WRONG_SCOPE = "lease_wrong_scope"
    LEASE_REVOKED = "lease_revoked"
    NO_SESSION = "no_session"
    NOT_CONTROLLER = "not_controller"
    CONTROLLER_BUSY = "controller_busy"
    ESTOPPED = "estopped"
    FAULT = "fault"  # a latched fault other than an e-stop (e.g. a lost device): staff clear it
    BUSY = "busy"
    TOO_LARGE = "too_large"
    UPLOAD_FAILED = "upload_failed"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"


@dataclass(slots=True)
class Message:
    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.header.get("t", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.header.get(key, default)


def encode(
    kind: str,
    fields: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
) -> list[Any]:
    """Frames for one message. Arrays go as buffers (C-contiguous, no copy here)."""
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "t": kind}
    if fields:
        header.update(fields)
    frames: list[Any] = [b""]
    if arrays:
        spec = []
        for name, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            spec.append([name, a.dtype.str[1:], list(a.shape)])
            frames.append(a.data.cast("B") if a.size else b"")
        header["a"] = spec
    frames[0] = msgpack.packb(header, use_bin_type=True)
    return frames


def request_limit(kind: str, chunk_bytes: int) -> int:
    """The size limit of a request of type `kind`, all frames (docs/protocol.md, Size limits):
    64 KiB, and 64 KiB + `chunk_bytes` for an `upload_chunk`."""
    return MAX_MESSAGE_BYTES + chunk_bytes if kind == Msg.UPLOAD_CHUNK else MAX_MESSAGE_BYTES


def decode(frames: Sequence[Any], limit: Callable[[str], int] | None = None) -> Message:
    """Parse frames (bytes, memoryviews or zmq.Frame) into a Message; arrays are views.

    `limit(t)`: the largest message of type t in bytes (all frames); a larger one is refused
    once its header is read, before its arrays are looked at.

    Raises ProtocolError for anything malformed; never anything else. Once the header is read
    as a map, the error carries the request's `id` (`request_id`)."""
    if not frames:
        raise ProtocolError("empty message")
    raw = _buffer(frames[0])
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0, max_array_len=4096
        )
    except Exception as exc:  # msgpack raises many types on garbage
        raise ProtocolError(f"header is not msgpack: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    rid = header.get("id")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {header.get('v')!r}", version=True, request_id=rid
        )
    kind = header.get("t")
    if not isinstance(kind, str):
        raise ProtocolError("header has no message type 't'", request_id=rid)
    if limit is not None:
        size, most = sum(_buffer(f).nbytes for f in frames), limit(kind)
        if size > most:
            raise ProtocolError(
                f"{kind!r} of {size} bytes exceeds its limit of {most}"[:200],
                too_large=True,
                request_id=rid,
            )
    spec = header.pop("a", None)
    arrays: dict[str, np.ndarray] = {}
    try:
        if spec is None:
            if len(frames) > 1:
                raise ProtocolError("array frames without an array list 'a'")
            return Message(header, arrays)
        if not isinstance(spec, list) or len(spec) != len(frames) - 1 or len(spec) > MAX_ARRAYS:
            raise ProtocolError("array list 'a' does not match the frames")
        for entry, frame in zip(spec, frames[1:], strict=True):
            arrays.update([_array(entry, _buffer(frame))])
    except ProtocolError as exc:
        exc.request_id = rid
        raise
    return Message(header, arrays)


def _buffer(frame: Any) -> memoryview:
    buf = getattr(frame, "buffer", None)
    if buf is not None:
        return memoryview(buf)
    try:
        return memoryview(frame)
    except TypeError:
        raise ProtocolError(f"frame of type {type(frame).__name__} is not a buffer") from None


def _array(entry: Any, buf: memoryview) -> tuple[str, np.ndarray]:
    if not (isinstance(entry, list) and len(entry) == 3):
        raise ProtocolError("array entry is not [name, dtype, shape]")
    name, dtype, shape = entry
    if not isinstance(name, str) or dtype not in _DTYPES or not isinstance(shape, list):
        raise ProtocolError(f"bad array entry {entry!r}"[:200])
    if len(shape) > 4 or not all(isinstance(n, int) and 0 <= n < 1 << 31 for n in shape):
        raise ProtocolError(f"bad array shape {shape!r}"[:200])
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dt.itemsize != buf.nbytes:
        raise ProtocolError(f"array {name!r}: {buf.nbytes} bytes do not make {dtype}{shape}")
    if count == 0:
        return name, np.zeros(shape, dtype=dt)
    return name, np.frombuffer(buf, dtype=dt).reshape(shape)
