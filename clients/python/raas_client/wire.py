"""The raas wire protocol, defined once (the daemon imports it from here).

A message is a list of ZeroMQ frames:

    [header, block?, array_0, array_1, ...]

`header` is a msgpack map with at least `v` (protocol version) and `t` (message type).

- `b` names a **block layout** when the second frame is a block: the small arrays of an
  observation, a stream step or an action packed at fixed offsets in ONE frame. The layouts are
  fixed per robot and announced in hello's `spaces.layouts` (`Layout`), so both sides agree on
  names, dtypes, shapes and offsets without sending them per message, and the daemon fills its
  block in place every cycle (no allocation).
- `a` lists the loose arrays (images, upload and fetch chunks) as `[name, dtype, shape]` in frame
  order; each travels as its raw bytes (C order) in a frame of its own.

The receiver wraps blocks and arrays with `numpy.frombuffer` (no copy): images cost one memcpy
on the sender at most, none on the receiver.

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
import zmq

from raas_client.errors import ProtocolError

#: Bumped on any incompatible change; a daemon refuses other versions with `unsupported_version`
#: (answered in the request's own version, so that an older client can read the refusal).
#: 1: one frame per array. 2: the small arrays packed in one block frame (`b`, `Layout`).
PROTOCOL_VERSION = 2

#: Largest header a receiver accepts (bytes).
MAX_HEADER_BYTES = 64 * 1024
#: Largest request (all frames) the daemon accepts, except `upload_chunk` (docs/protocol.md).
MAX_MESSAGE_BYTES = 64 * 1024
#: Most array frames in one message.
MAX_ARRAYS = 64
#: Frames read as they are: their len() is their size in bytes, and numpy and msgpack read
#: them through the buffer protocol (a memoryview on a zmq.Frame costs more than the read).
_DIRECT = (bytes, zmq.Frame)
_DTYPES = frozenset({"f4", "f8", "i4", "i8", "u1", "u2", "b1"})
_unpackb = msgpack.unpackb


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
    SERVE = "serve"  # horizon, blend: this session is a policy server sending action chunks
    CHUNK = "chunk"  # session, cycle, recv_ns, send_ns, arrays: actions (horizon x actuators)
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
    BAD_CHUNK = "bad_chunk"  # an action chunk refused: wrong session, bad cycle, size, values
    BAD_DIAL = "bad_dial"  # serve's dial: not tcp, a bad key, or a robot without Curve keys


@dataclass(slots=True)
class Message:
    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    #: The block's layout name (`b`), when the message carried a block.
    block: str | None = None

    @property
    def type(self) -> str:
        return str(self.header.get("t", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.header.get(key, default)


#: Offsets in a block are multiples of this (every array starts aligned for its dtype).
BLOCK_ALIGN = 8
#: Most arrays in one block layout.
MAX_BLOCK_ARRAYS = 64


@dataclass(frozen=True, slots=True)
class Layout:
    """A block layout: named arrays at fixed offsets in one frame of exactly `size` bytes.

    Announced in hello's `spaces.layouts` as `{"bytes": size, "arrays": [[name, dtype, shape,
    offset], ...]}`; offsets are multiples of 8, padding bytes are zero."""

    name: str
    arrays: tuple[tuple[str, str, tuple[int, ...], int], ...]
    size: int
    #: (name, dtype, count, offset, shape or None when 1-D): what views() needs, parsed once.
    _plan: tuple[tuple[str, np.dtype[Any], int, int, tuple[int, ...] | None], ...] = field(
        init=False, repr=False, compare=False
    )
    #: The whole block as one numpy record (a structured dtype, a field per array at its
    #: offset), when the layout can be one: views() then makes one 0-d array on the block and
    #: takes each array as a field of it, which costs less than one frombuffer per array
    #: (an observation's six: 0.9 against 1.3 us).
    _record: np.dtype[Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple(
            (n, np.dtype(d), _count(s), o, None if len(s) == 1 else s) for n, d, s, o in self.arrays
        )
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_record", _record_dtype(self.arrays, self.size, plan))

    @classmethod
    def of(cls, name: str, arrays: Sequence[tuple[str, str, Sequence[int]]]) -> Layout:
        """Place arrays (name, dtype, shape) one after the other, each offset aligned."""
        placed = []
        offset = 0
        for n, dtype, shape in arrays:
            placed.append((n, dtype, tuple(int(x) for x in shape), offset))
            nbytes = _count(shape) * np.dtype(dtype).itemsize
            offset += nbytes + (-nbytes % BLOCK_ALIGN)
        return cls(name, tuple(placed), offset)

    @classmethod
    def from_spec(cls, name: str, spec: Any) -> Layout:
        """A layout from hello's announcement; ProtocolError if it is not a valid layout."""
        try:
            size, entries = spec["bytes"], spec["arrays"]
            if not (isinstance(size, int) and isinstance(entries, list)):
                raise TypeError
            arrays = []
            for n, dtype, shape, offset in entries:
                if (
                    not isinstance(n, str)
                    or dtype not in _DTYPES
                    or not isinstance(offset, int)
                    or not _valid_shape(shape)
                    or offset < 0
                    or offset % BLOCK_ALIGN
                    or offset + _count(shape) * np.dtype(dtype).itemsize > size
                ):
                    raise ValueError
                arrays.append((n, dtype, tuple(shape), offset))
        except (KeyError, TypeError, ValueError):
            raise ProtocolError(f"bad block layout {name!r}: {spec!r}"[:200]) from None
        if len(arrays) > MAX_BLOCK_ARRAYS:
            raise ProtocolError(f"block layout {name!r} has more than {MAX_BLOCK_ARRAYS} arrays")
        return cls(name, tuple(arrays), size)

    def spec(self) -> dict[str, Any]:
        return {"bytes": self.size, "arrays": [[n, d, list(s), o] for n, d, s, o in self.arrays]}

    def views(self, buf: Any) -> dict[str, np.ndarray]:
        """The arrays as views on `buf` (a block of exactly `size` bytes; not checked here)."""
        record = self._record
        if record is not None:
            r = np.ndarray((), record, buf)
            return {n: r[n] for n in record.names}  # type: ignore[union-attr]
        out: dict[str, np.ndarray] = {}
        frombuffer = np.frombuffer
        for n, dtype, count, offset, shape in self._plan:
            if count == 0:
                out[n] = np.zeros(shape or (0,), dtype=dtype)
            elif shape is None:
                out[n] = frombuffer(buf, dtype, count, offset)
            else:
                out[n] = frombuffer(buf, dtype, count, offset).reshape(shape)
        return out

    def allocate(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A zeroed block (uint8) and its arrays as views on it: fill the views, send the
        block."""
        block = np.zeros(self.size, dtype=np.uint8)
        return block, self.views(block)


def _record_dtype(
    arrays: Sequence[tuple[str, str, tuple[int, ...], int]],
    size: int,
    plan: Sequence[tuple[str, np.dtype[Any], int, int, tuple[int, ...] | None]],
) -> np.dtype[Any] | None:
    """The structured dtype of a layout (a field per array, at its offset, of its dtype and
    shape; itemsize the block's size), or None when views() must make the arrays one by one:
    no arrays, an empty array (a fresh zero array, not a view), a name used twice, or arrays
    numpy does not accept as fields; and fewer than three arrays (a field costs about 100 ns,
    the record about 400, one frombuffer about 200: the record pays from three arrays on, e.g.
    the six of an observation, not for the one of a step)."""
    names = [n for n, _, _, _ in arrays]
    if len(arrays) < 3 or len(set(names)) != len(names) or any(c == 0 for _, _, c, _, _ in plan):
        return None
    try:
        return np.dtype(
            {
                "names": names,
                "formats": [(np.dtype(d), s) for _, d, s, _ in arrays],
                "offsets": [o for _, _, _, o in arrays],
                "itemsize": size,
            }
        )
    except (TypeError, ValueError):
        return None


def layouts_from_spaces(spaces: Mapping[str, Any]) -> dict[str, Layout]:
    """The block layouts a robot announced in hello's `spaces`."""
    announced = spaces.get("layouts")
    if not isinstance(announced, Mapping):
        raise ProtocolError("hello's spaces announce no block layouts ('layouts')")
    return {str(n): Layout.from_spec(str(n), s) for n, s in announced.items()}


def encode(
    kind: str,
    fields: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    layout: Layout | None = None,
    block: Any = None,
    version: int = PROTOCOL_VERSION,
    pack: Callable[[Any], bytes] | None = None,
) -> list[Any]:
    """Frames for one message: the header, the block (when `layout` is given: `block` holds its
    bytes, e.g. from `Layout.allocate`), then the loose arrays as buffers (no copy here).

    `pack`: a reused `msgpack.Packer().pack` of the caller's thread (a packer is not shared
    between threads); without it each header builds its own packer."""
    header: dict[str, Any] = {"v": version, "t": kind}
    if fields:
        header.update(fields)
    frames: list[Any] = [b""]
    if layout is not None:
        header["b"] = layout.name
        frames.append(block)
    if arrays:
        spec = []
        for name, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            spec.append([name, a.dtype.str[1:], list(a.shape)])
            frames.append(a.data.cast("B") if a.size else b"")
        header["a"] = spec
    frames[0] = pack(header) if pack is not None else msgpack.packb(header, use_bin_type=True)
    return frames


def step_header_parts(layout: str) -> tuple[bytes, bytes]:
    """The msgpack bytes of a `step` header `{"v", "t": "step", "cycle": ?, "b": layout}` before
    and after the cycle's value: `head + pack(cycle) + tail` is `pack(header)` (msgpack writes a
    map as its size, then each key and value in order). What RemoteRobot.act sends."""
    p = msgpack.Packer()
    head = p.pack_map_header(4) + b"".join(
        p.pack(x) for x in ("v", PROTOCOL_VERSION, "t", Msg.STEP, "cycle")
    )
    return head, p.pack("b") + p.pack(layout)


class StepReader:
    """The daemon's reading of a `step` request written as raas_client writes it: the header
    exactly `step_header_parts(layout)`'s head, the cycle (an integer) and tail, then a block
    of the layout's size. `read` gives what decode() would give for those frames (the cycle
    and the block's arrays) from a comparison of bytes, where decode() builds a msgpack map of
    four string keys and checks the version, the type and the size limit, which such a
    message always passes. Anything else (another message, the same header written in another
    order or with an `id`, a block of another size) gives None: decode() reads it and says what
    is wrong. The wire is the same either way; this spares the daemon work on every step."""

    __slots__ = ("_longest", "_shortest", "head", "layout", "tail")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.head, self.tail = step_header_parts(layout.name)
        fixed = len(self.head) + len(self.tail)
        self._shortest, self._longest = fixed + 1, fixed + 9  # msgpack ints: 1 to 9 bytes

    def read(self, header: Any, block: Any) -> tuple[int, dict[str, np.ndarray]] | None:
        """(cycle, the block's arrays as views), or None: decode() must read these frames."""
        if type(header) not in _DIRECT or type(block) not in _DIRECT:
            return None
        n = len(header)
        if n < self._shortest or n > self._longest or len(block) != self.layout.size:
            return None
        raw = header if type(header) is bytes else header.bytes
        head, tail = self.head, self.tail
        if not (raw.startswith(head) and raw.endswith(tail)):
            return None
        try:
            cycle = msgpack.unpackb(raw[len(head) : n - len(tail)])
        except Exception:  # not one msgpack value: decode() says what it is
            return None
        if type(cycle) is not int:
            return None
        return cycle, self.layout.views(block)


def request_limit(kind: str, chunk_bytes: int) -> int:
    """The size limit of a request of type `kind`, all frames (docs/protocol.md, Size limits):
    64 KiB, and 64 KiB + `chunk_bytes` for an `upload_chunk`."""
    return MAX_MESSAGE_BYTES + chunk_bytes if kind == Msg.UPLOAD_CHUNK else MAX_MESSAGE_BYTES


def decode(
    frames: Sequence[Any],
    limit: Callable[[str], int] | None = None,
    layouts: Mapping[str, Layout] | None = None,
) -> Message:
    """Parse frames (bytes, memoryviews or zmq.Frame) into a Message; arrays are views.

    `limit(t)`: the largest message of type t in bytes (all frames); a larger one is refused
    once its header is read, before its arrays are looked at. `layouts`: the block layouts
    (hello's `spaces.layouts`); a message with a block `b` needs its layout there.

    Raises ProtocolError for anything malformed; never anything else. Once the header is read
    as a map, the error carries the request's `id` (`request_id`)."""
    if not frames:
        raise ProtocolError("empty message")
    first = frames[0]
    if type(first) in _DIRECT:  # bytes or a zmq.Frame: read as it is (see _raw)
        raw, nbytes = first, len(first)
    else:
        raw, nbytes = _raw(first)
    if nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {nbytes} bytes exceeds {MAX_HEADER_BYTES}", too_large=True)
    try:  # msgpack >= 1.0: raw=False and strict_map_key=True are the defaults
        header = _unpackb(raw, max_bin_len=0, max_ext_len=0, max_array_len=4096)
    except Exception as exc:  # msgpack raises many types on garbage
        text = str(exc)
        if "map key" in text:  # strict_map_key: a number as a key
            raise ProtocolError("header map keys must be strings") from None
        if "max_bin_len" in text:  # a bin key or value: arrays travel in their own frames
            raise ProtocolError(
                "header carries binary data: its keys and texts must be strings (arrays go "
                "in frames of their own)"
            ) from None
        raise ProtocolError(f"header is not msgpack: {type(exc).__name__}") from None
    if type(header) is not dict:  # msgpack makes maps as dict, never a subclass
        raise ProtocolError("header is not a map")
    get = header.get
    rid = get("id")
    v = get("v")
    if v != PROTOCOL_VERSION or type(v) is not int:  # 2.0 == 2 in Python: another version
        raise ProtocolError(_version_message(v), version=True, request_id=rid, peer_version=v)
    kind = get("t")
    if type(kind) is not str:  # msgpack makes strings as str, never a subclass
        raise ProtocolError("header has no message type 't'", request_id=rid)
    if limit is not None:
        size, most = sum(map(_nbytes, frames)), limit(kind)
        if size > most:
            raise ProtocolError(
                f"{kind!r} of {size} bytes exceeds its limit of {most}"[:200],
                too_large=True,
                request_id=rid,
            )
    spec = header.pop("a", None)
    name = header.pop("b", None)
    n = len(frames)
    if name is not None and spec is None and n == 2:  # a block alone: an observation, a step
        layout = layouts.get(name) if layouts is not None and type(name) is str else None
        block = frames[1]
        if layout is not None and type(block) in _DIRECT and len(block) == layout.size:
            return Message(header, layout.views(block), name)
    arrays: dict[str, np.ndarray] = {}
    try:
        if name is not None:
            arrays = _block(name, frames[1] if n > 1 else None, layouts)
            if spec is None:  # a block alone (an observation, a step): the usual message
                if n > 2:
                    raise ProtocolError("array frames without an array list 'a'")
                return Message(header, arrays, name)
            rest = frames[2:]
        else:
            rest = frames[1:]
        if spec is None:
            if rest:
                raise ProtocolError("array frames without an array list 'a'")
            return Message(header, arrays, name)
        if not isinstance(spec, list) or len(spec) != len(rest):
            raise ProtocolError("array list 'a' does not match the frames")
        if len(spec) > MAX_ARRAYS:
            raise ProtocolError(f"at most {MAX_ARRAYS} loose arrays in a message, not {len(spec)}")
        for entry, frame in zip(spec, rest, strict=True):
            arrays.update([_array(entry, *_raw(frame))])
    except ProtocolError as exc:
        exc.request_id = rid
        raise
    return Message(header, arrays, name)


def _version_message(v: object) -> str:
    if type(v) is int:
        return (
            f"protocol {v} is not spoken here (protocol {PROTOCOL_VERSION}): update the older "
            "side (raas_client: pip install -U ./clients/python; docs/protocol.md, Versions)"
        )
    return f"unsupported protocol version {v!r}"[:200]


def _block(name: object, frame: Any, layouts: Mapping[str, Layout] | None) -> dict[str, np.ndarray]:
    layout = layouts.get(name) if layouts is not None and isinstance(name, str) else None
    if layout is None:
        raise ProtocolError(f"unknown block layout {name!r} (hello's spaces.layouts)"[:200])
    if frame is None:
        raise ProtocolError(f"block {layout.name!r} is missing")
    buf, nbytes = _raw(frame)
    if nbytes != layout.size:
        raise ProtocolError(
            f"block {layout.name!r} of {nbytes} bytes: its layout has {layout.size}"
        )
    return layout.views(buf)


def _count(shape: Sequence[int]) -> int:
    n = 1
    for x in shape:
        n *= int(x)
    return n


def _valid_shape(shape: object) -> bool:
    return (
        isinstance(shape, list)
        and len(shape) <= 4
        and all(isinstance(n, int) and 0 <= n < 1 << 31 for n in shape)
    )


def _nbytes(frame: Any) -> int:
    return len(frame) if type(frame) in _DIRECT else _buffer(frame).nbytes


def _raw(frame: Any) -> tuple[Any, int]:
    """`frame` as something numpy and msgpack read (bytes and a zmq.Frame as they are, anything
    else as a memoryview), and its size in bytes."""
    if type(frame) in _DIRECT:
        return frame, len(frame)
    buf = _buffer(frame)
    return buf, buf.nbytes


def _buffer(frame: Any) -> memoryview:
    if type(frame) is bytes:  # what a copying recv gives: the common case first
        return memoryview(frame)
    buf = getattr(frame, "buffer", None)
    if buf is not None:
        return memoryview(buf)
    try:
        return memoryview(frame)
    except TypeError:
        raise ProtocolError(f"frame of type {type(frame).__name__} is not a buffer") from None


def _array(entry: Any, buf: Any, nbytes: int) -> tuple[str, np.ndarray]:
    if not (isinstance(entry, list) and len(entry) == 3):
        raise ProtocolError("array entry is not [name, dtype, shape]")
    name, dtype, shape = entry
    if not isinstance(name, str) or dtype not in _DTYPES or not isinstance(shape, list):
        raise ProtocolError(f"bad array entry {entry!r}"[:200])
    if not _valid_shape(shape):
        raise ProtocolError(f"bad array shape {shape!r}"[:200])
    dt = np.dtype(dtype)
    count = _count(shape)
    if count * dt.itemsize != nbytes:
        raise ProtocolError(f"array {name!r}: {nbytes} bytes do not make {dtype}{shape}")
    if count == 0:
        return name, np.zeros(shape, dtype=dt)
    return name, np.frombuffer(buf, dtype=dt).reshape(shape)
