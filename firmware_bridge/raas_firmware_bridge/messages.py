"""The messages of the serial protocol: fixed little-endian layouts, fixed-point units.

API:
- `MsgType` (IntEnum of the type byte), `PROTOCOL_VERSION`, `MIN_PROTOCOL_VERSION`.
- One frozen dataclass per message: `Hello`, `HelloAck`, `SetTargets`, `StateRequest`, `State`,
  `Trigger`, `TriggerAck`, `Heartbeat`, `Fault`, `Estop`, `Reset`, `ResetAck`, `Error`. Each has
  `encode() -> bytes` (the payload) and `decode(payload) -> Self` (classmethod).
- `encode_message(msg, seq) -> bytes`: a complete frame (framing.encode_frame) for `msg`.
- `decode_message(frame) -> Message`: the message a good `Frame` carries. Raises only
  `MessageError` subclasses: UnknownMessageTypeError, PayloadLengthError, VersionMismatchError.
- `negotiate_version(a_min, a_max, b_min, b_max) -> int | None`: the highest common version.
- `quantise_targets(targets) -> ndarray`: the rad values the firmware will see for `targets`.
- Enums: `BoardKind`, `FaultFlag` (bits of fault_flags), `FaultCode`, `ErrorCode`, `EstopReason`.

Units on the wire (int16 fixed point, SI on this side; -32768 means "no valid reading" and
decodes to NaN): positions and targets 1e-4 rad, velocities 1e-3 rad/s, efforts 1e-3 of the
device's effort unit (N*m for the simulated hand), temperatures 0.01 degC. Decoding gives
float64 arrays that are read-only. Layouts and reasons: docs/protocol-serial.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import IntEnum, IntFlag
from typing import Any, ClassVar, Self

import numpy as np

from raas_firmware_bridge.errors import (
    MessageFieldError,
    PayloadLengthError,
    UnknownMessageTypeError,
    VersionMismatchError,
)
from raas_firmware_bridge.framing import PROTOCOL_VERSION, Frame, encode_frame

__all__ = [
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "BoardKind",
    "Error",
    "ErrorCode",
    "Estop",
    "EstopReason",
    "Fault",
    "FaultCode",
    "FaultFlag",
    "Heartbeat",
    "Hello",
    "HelloAck",
    "Message",
    "MsgType",
    "Reset",
    "ResetAck",
    "SetTargets",
    "State",
    "StateRequest",
    "Trigger",
    "TriggerAck",
    "decode_message",
    "encode_message",
    "negotiate_version",
    "quantise_targets",
]

#: The oldest protocol version this side still speaks.
MIN_PROTOCOL_VERSION = 1

N_ACTUATORS = 20
N_JOINTS = 24
#: Fixed-point scales: counts per SI unit.
POSITION_SCALE = 1e4  # 1 count = 1e-4 rad
VELOCITY_SCALE = 1e3  # 1 count = 1e-3 rad/s
EFFORT_SCALE = 1e3  # 1 count = 1e-3 effort unit (N*m)
TEMPERATURE_SCALE = 1e2  # 1 count = 0.01 degC
INVALID = -32768  # int16 reserved for "no valid reading"
INT16_MAX = 32767
#: applied_seq on the wire when no targets were applied yet (decodes to -1).
NO_SEQ = 0xFFFF_FFFF_FFFF_FFFF


class MsgType(IntEnum):
    HELLO = 0x01
    HELLO_ACK = 0x02
    SET_TARGETS = 0x10
    STATE_REQUEST = 0x11
    STATE = 0x12
    TRIGGER = 0x20
    TRIGGER_ACK = 0x21
    HEARTBEAT = 0x30
    FAULT = 0x31
    ESTOP = 0x32
    RESET = 0x33
    RESET_ACK = 0x34
    ERROR = 0x3F


class BoardKind(IntEnum):
    HAND = 1
    TRIGGER = 2


class FaultFlag(IntFlag):
    """Bits of State.fault_flags / Fault.flags / ResetAck.fault_flags: what is latched now."""

    WATCHDOG = 1 << 0  # no valid command for W ms: motors hold
    ESTOP = 1 << 1  # e-stop latched: motors hold
    OVERTEMP = 1 << 2
    SENSOR = 1 << 3
    MOTOR = 1 << 4
    POWER = 1 << 5
    BOOTED = 1 << 6  # the board (re)started and nobody sent RESET since
    LINK = 1 << 7  # the board saw more than its limit of bad frames in a row


class FaultCode(IntEnum):
    """Fault.code: which fault a FAULT message reports (detail is code-specific)."""

    WATCHDOG = 1  # detail: ms since the last valid command
    ESTOP = 2  # detail: EstopReason
    OVERTEMP = 3  # detail: actuator index
    SENSOR = 4  # detail: joint index
    MOTOR = 5  # detail: actuator index
    POWER = 6  # detail: supply voltage in mV
    BOOTED = 7  # detail: boot count
    LINK = 8  # detail: bad frames in a row


class ErrorCode(IntEnum):
    """Error.code: why the board refused the frame (ref_type, ref_seq) it names."""

    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    VERSION_UNSUPPORTED = 3
    NOT_READY = 4  # no HELLO yet
    BAD_VALUE = 5  # e.g. a target out of the actuator's range or INVALID
    FAULTED = 6  # a fault is latched: RESET first
    WRONG_BOARD = 7  # e.g. SET_TARGETS sent to the trigger board
    BAD_FRAME = 8  # CRC/COBS/length error (ref_* are 0: the frame could not be read)


class EstopReason(IntEnum):
    HOST = 1  # the host asked
    BUTTON = 2  # the e-stop input on the board
    FIRMWARE = 3  # the firmware decided (e.g. after repeated faults)


def negotiate_version(a_min: int, a_max: int, b_min: int, b_max: int) -> int | None:
    """The highest version both ranges contain, or None when they do not overlap."""
    best = min(a_max, b_max)
    return best if best >= max(a_min, b_min) else None


def _maybe_enum(enum: type[IntEnum], value: int) -> int:
    """Known codes become enum members; a newer peer's unknown code stays a plain int."""
    try:
        return enum(value)
    except ValueError:
        return value


def _exact(payload: bytes, size: int, name: str) -> None:
    if len(payload) != size:
        raise PayloadLengthError(f"{name} payload has {len(payload)} bytes, expected {size}")


def _pack(s: struct.Struct, name: str, *values: int) -> bytes:
    try:
        return s.pack(*values)
    except struct.error as exc:
        raise MessageFieldError(f"{name}: {exc}") from None


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


_SAFE_SUM_SQ = float(INT16_MAX) ** 2
_INVALID_BYTES = INVALID.to_bytes(2, "little", signed=True)


def _si_to_counts(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """SI -> int16 counts, rounded to nearest, saturated at +-32767, NaN -> INVALID.

    Fast path: when the sum of squares is at most 32767**2, every value is in range and none is
    NaN (NaN makes the sum NaN and the comparison false), so rounding and casting is all."""
    v = values * scale
    if np.dot(v, v) <= _SAFE_SUM_SQ:
        fast: np.ndarray = np.rint(v, out=v).astype("<i2")
        return fast
    nan = np.isnan(v)
    np.rint(v, out=v)
    np.clip(v, -INT16_MAX, INT16_MAX, out=v)
    v[nan] = INVALID
    counts: np.ndarray = v.astype("<i2")
    return counts


def _counts_to_si(payload: bytes, offset: int, count: int, scale: np.ndarray) -> np.ndarray:
    """int16 counts at payload[offset:] -> SI float64, INVALID -> NaN.

    Dividing (not multiplying by 1/scale) gives the double nearest to the decimal value, so
    1234 counts decode to exactly 0.1234 as Python writes it.

    Fast path: INVALID is the byte pair 00 80; when it appears nowhere in the bytes, no count
    can be INVALID (a hit at an odd offset is a false alarm that only costs the exact check)."""
    counts = np.frombuffer(payload, "<i2", count, offset)
    v: np.ndarray = counts / scale
    if payload.find(_INVALID_BYTES, offset) >= 0:
        v[counts == INVALID] = np.nan
    return v


class Message:
    """Base of every message: MSG_TYPE, encode() -> payload bytes, decode(payload) -> message.

    SCALES maps array fields to their counts-per-SI-unit (used by vectors.py)."""

    __slots__ = ()
    MSG_TYPE: ClassVar[MsgType]
    SCALES: ClassVar[dict[str, float]] = {}

    def encode(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        raise NotImplementedError


# -- handshake (layouts frozen across protocol versions; longer payloads are accepted) ----------

_HELLO = struct.Struct("<BB")
_HELLO_ACK = struct.Struct("<BBBBBBHHHBBI")


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Host -> board: the protocol versions the host speaks. Answered by HELLO_ACK."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.HELLO
    min_version: int = MIN_PROTOCOL_VERSION
    max_version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        return _pack(_HELLO, "HELLO", self.min_version, self.max_version)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        if len(payload) < _HELLO.size:
            raise PayloadLengthError(f"HELLO payload has {len(payload)} bytes, at least 2")
        return cls(*_HELLO.unpack_from(payload))


@dataclass(frozen=True, slots=True)
class HelloAck(Message):
    """Board -> host: the chosen version (0: none in common) and what the board is."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.HELLO_ACK
    version: int
    board_kind: int  # BoardKind
    min_version: int
    max_version: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    watchdog_ms: int  # W: no valid command for this long -> motors hold, FAULT(WATCHDOG)
    servo_hz: int  # the board's control tick
    actuator_count: int
    joint_count: int
    serial_number: int

    def encode(self) -> bytes:
        return _pack(
            _HELLO_ACK,
            "HELLO_ACK",
            self.version,
            self.board_kind,
            self.min_version,
            self.max_version,
            self.fw_major,
            self.fw_minor,
            self.fw_patch,
            self.watchdog_ms,
            self.servo_hz,
            self.actuator_count,
            self.joint_count,
            self.serial_number,
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        if len(payload) < _HELLO_ACK.size:
            raise PayloadLengthError(
                f"HELLO_ACK payload has {len(payload)} bytes, at least {_HELLO_ACK.size}"
            )
        v = list(_HELLO_ACK.unpack_from(payload))
        v[1] = _maybe_enum(BoardKind, v[1])
        return cls(*v)


# -- hand ---------------------------------------------------------------------------------------

_SET_TARGETS_HEAD = struct.Struct("<Q")
_SET_TARGETS_SIZE = _SET_TARGETS_HEAD.size + 2 * N_ACTUATORS  # 48
_TARGET_SCALE = np.full(N_ACTUATORS, POSITION_SCALE)
TARGET_LIMIT_RAD = INT16_MAX / POSITION_SCALE  # 3.2767 rad


def quantise_targets(targets: np.ndarray) -> np.ndarray:
    """The targets (20,) rad exactly as the firmware will receive them (1e-4 rad steps).

    Raises MessageFieldError for a wrong shape, a non-finite value or |target| > 3.2767 rad."""
    quantised: np.ndarray = _targets_to_counts(targets) / _TARGET_SCALE
    return quantised


def _targets_to_counts(targets: np.ndarray) -> np.ndarray:
    t = np.asarray(targets, dtype=np.float64)
    if t.shape != (N_ACTUATORS,):
        raise MessageFieldError(f"targets must have shape ({N_ACTUATORS},), got {t.shape}")
    counts = np.rint(t * _TARGET_SCALE)
    if not np.isfinite(counts).all() or np.abs(counts).max() > INT16_MAX:
        raise MessageFieldError(f"targets must be finite and within +-{TARGET_LIMIT_RAD} rad")
    wire: np.ndarray = counts.astype("<i2")
    return wire


@dataclass(frozen=True, slots=True, eq=False)
class SetTargets(Message):
    """Host -> hand: position targets (20,) rad in ACTUATOR_NAMES order, tagged target_seq.

    The hand applies them at its next servo tick and reports target_seq as State.applied_seq.
    No answer on success; ERROR(BAD_VALUE / FAULTED / NOT_READY) when refused."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.SET_TARGETS
    SCALES: ClassVar[dict[str, float]] = {"targets": POSITION_SCALE}
    target_seq: int
    targets: np.ndarray

    def encode(self) -> bytes:
        head = _pack(_SET_TARGETS_HEAD, "SET_TARGETS", self.target_seq)
        return head + _targets_to_counts(self.targets).tobytes()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _SET_TARGETS_SIZE, "SET_TARGETS")
        (seq,) = _SET_TARGETS_HEAD.unpack_from(payload)
        targets = _counts_to_si(payload, _SET_TARGETS_HEAD.size, N_ACTUATORS, _TARGET_SCALE)
        return cls(seq, _readonly(targets))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SetTargets)
            and self.target_seq == other.target_seq
            and np.array_equal(self.targets, other.targets, equal_nan=True)
        )

    __hash__ = None  # type: ignore[assignment]


_CYCLE = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class StateRequest(Message):
    """Host -> hand: send the State sampled now, tagged with the loop's cycle."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.STATE_REQUEST
    cycle: int

    def encode(self) -> bytes:
        return _pack(_CYCLE, "STATE_REQUEST", self.cycle)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _CYCLE.size, "STATE_REQUEST")
        return cls(*_CYCLE.unpack(payload))


_STATE_HEAD = struct.Struct("<QQQI")
_STATE_VALUES = 2 * N_JOINTS + 2 * N_ACTUATORS  # 88 int16
_STATE_SIZE = _STATE_HEAD.size + 2 * _STATE_VALUES  # 28 + 176 = 204
_STATE_SCALE = np.concatenate(
    [
        np.full(N_JOINTS, POSITION_SCALE),
        np.full(N_JOINTS, VELOCITY_SCALE),
        np.full(N_ACTUATORS, EFFORT_SCALE),
        np.full(N_ACTUATORS, TEMPERATURE_SCALE),
    ]
)
_J2 = 2 * N_JOINTS
_J2A = _J2 + N_ACTUATORS


@dataclass(frozen=True, slots=True, eq=False)
class State(Message):
    """Hand -> host: the hand's state sampled at the STATE_REQUEST of `cycle`.

    positions, velocities: (24,) rad, rad/s in JOINT_NAMES order; efforts (20,) device effort
    unit, temperatures (20,) degC in ACTUATOR_NAMES order. fw_time_us: the board's microsecond
    clock at sampling. applied_seq: target_seq of the last applied SET_TARGETS (-1: none yet).
    fault_flags: FaultFlag bits latched now. Values beyond the int16 range saturate; NaN (no
    valid reading) travels as -32768."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.STATE
    SCALES: ClassVar[dict[str, float]] = {
        "positions": POSITION_SCALE,
        "velocities": VELOCITY_SCALE,
        "efforts": EFFORT_SCALE,
        "temperatures": TEMPERATURE_SCALE,
    }
    cycle: int
    fw_time_us: int
    applied_seq: int
    fault_flags: int
    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray
    temperatures: np.ndarray

    def encode(self) -> bytes:
        try:
            values = np.concatenate(
                (self.positions, self.velocities, self.efforts, self.temperatures), dtype=np.float64
            )
        except ValueError as exc:
            raise MessageFieldError(f"STATE arrays: {exc}") from None
        if values.shape != (_STATE_VALUES,) or self.positions.shape != (N_JOINTS,):
            raise MessageFieldError(
                f"STATE needs {N_JOINTS} positions and velocities, {N_ACTUATORS} efforts and "
                "temperatures"
            )
        applied = NO_SEQ if self.applied_seq == -1 else self.applied_seq
        head = _pack(_STATE_HEAD, "STATE", self.cycle, self.fw_time_us, applied, self.fault_flags)
        return head + _si_to_counts(values, _STATE_SCALE).tobytes()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _STATE_SIZE, "STATE")
        cycle, fw_time_us, applied, flags = _STATE_HEAD.unpack_from(payload)
        v = _readonly(_counts_to_si(payload, _STATE_HEAD.size, _STATE_VALUES, _STATE_SCALE))
        return cls(
            cycle,
            fw_time_us,
            -1 if applied == NO_SEQ else applied,
            flags,
            v[:N_JOINTS],
            v[N_JOINTS:_J2],
            v[_J2:_J2A],
            v[_J2A:],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return False
        return (
            self.cycle == other.cycle
            and self.fw_time_us == other.fw_time_us
            and self.applied_seq == other.applied_seq
            and self.fault_flags == other.fault_flags
            and all(
                np.array_equal(getattr(self, f), getattr(other, f), equal_nan=True)
                for f in State.SCALES
            )
        )

    __hash__ = None  # type: ignore[assignment]


# -- trigger board ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger(Message):
    """Host -> trigger board: pulse the camera and motion-capture sync lines for `cycle`."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.TRIGGER
    cycle: int

    def encode(self) -> bytes:
        return _pack(_CYCLE, "TRIGGER", self.cycle)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _CYCLE.size, "TRIGGER")
        return cls(*_CYCLE.unpack(payload))


_TWO_U64 = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class TriggerAck(Message):
    """Trigger board -> host: the pulse of `cycle` went out at hw_time_us (board clock, us)."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.TRIGGER_ACK
    cycle: int
    hw_time_us: int

    def encode(self) -> bytes:
        return _pack(_TWO_U64, "TRIGGER_ACK", self.cycle, self.hw_time_us)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _TWO_U64.size, "TRIGGER_ACK")
        return cls(*_TWO_U64.unpack(payload))


# -- both boards --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Either way: time_us is the sender's clock; a reply echoes the request's time_us in echo_us
    (0 in a request), which gives the round trip and the clock offset."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    time_us: int
    echo_us: int = 0

    def encode(self) -> bytes:
        return _pack(_TWO_U64, "HEARTBEAT", self.time_us, self.echo_us)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _TWO_U64.size, "HEARTBEAT")
        return cls(*_TWO_U64.unpack(payload))


_FAULT = struct.Struct("<HII")


@dataclass(frozen=True, slots=True)
class Fault(Message):
    """Board -> host, unsolicited: fault `code` (FaultCode) happened; flags = all latched now."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.FAULT
    code: int
    flags: int
    detail: int = 0

    def encode(self) -> bytes:
        return _pack(_FAULT, "FAULT", self.code, self.flags, self.detail)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _FAULT.size, "FAULT")
        code, flags, detail = _FAULT.unpack(payload)
        return cls(_maybe_enum(FaultCode, code), flags, detail)


_U16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class Estop(Message):
    """Host -> board: stop now (motors hold, latched until RESET). Answered by FAULT(ESTOP)."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ESTOP
    reason: int = EstopReason.HOST

    def encode(self) -> bytes:
        return _pack(_U16, "ESTOP", self.reason)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _U16.size, "ESTOP")
        return cls(_maybe_enum(EstopReason, _U16.unpack(payload)[0]))


_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Reset(Message):
    """Host -> board: clear latched faults (the only way out of WATCHDOG, ESTOP, LINK, BOOTED)
    and forget the last targets. Answered by RESET_ACK with the same token."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.RESET
    token: int

    def encode(self) -> bytes:
        return _pack(_U32, "RESET", self.token)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _U32.size, "RESET")
        return cls(*_U32.unpack(payload))


_TWO_U32 = struct.Struct("<II")


@dataclass(frozen=True, slots=True)
class ResetAck(Message):
    """Board -> host: RESET `token` done; fault_flags = faults still present (hardware ones)."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.RESET_ACK
    token: int
    fault_flags: int = 0

    def encode(self) -> bytes:
        return _pack(_TWO_U32, "RESET_ACK", self.token, self.fault_flags)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _TWO_U32.size, "RESET_ACK")
        return cls(*_TWO_U32.unpack(payload))


_ERROR = struct.Struct("<HBHI")


@dataclass(frozen=True, slots=True)
class Error(Message):
    """Board -> host: the frame (ref_type, ref_seq) was refused with `code` (ErrorCode)."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ERROR
    code: int
    ref_type: int = 0
    ref_seq: int = 0
    detail: int = 0

    def encode(self) -> bytes:
        return _pack(_ERROR, "ERROR", self.code, self.ref_type, self.ref_seq, self.detail)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _exact(payload, _ERROR.size, "ERROR")
        code, ref_type, ref_seq, detail = _ERROR.unpack(payload)
        return cls(_maybe_enum(ErrorCode, code), ref_type, ref_seq, detail)


# -- dispatch -----------------------------------------------------------------------------------

MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.MSG_TYPE: cls
    for cls in (
        Hello,
        HelloAck,
        SetTargets,
        StateRequest,
        State,
        Trigger,
        TriggerAck,
        Heartbeat,
        Fault,
        Estop,
        Reset,
        ResetAck,
        Error,
    )
}
#: Types whose layout never changes, so they decode whatever version the header names.
VERSION_FREE = frozenset({MsgType.HELLO, MsgType.HELLO_ACK})


def encode_message(msg: Message, seq: int, version: int = PROTOCOL_VERSION) -> bytes:
    """A complete frame (delimiter included) carrying `msg` with sequence number `seq`.

    Raises MessageFieldError when a field does not fit its wire type."""
    return encode_frame(msg.MSG_TYPE, seq, msg.encode(), version)


def decode_message(frame: Frame) -> Message:
    """The message in a good frame. Raises UnknownMessageTypeError, VersionMismatchError or
    PayloadLengthError (all MessageError) and nothing else."""
    cls = MESSAGE_CLASSES.get(frame.msg_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown message type 0x{frame.msg_type:02x}")
    if frame.version != PROTOCOL_VERSION and frame.msg_type not in VERSION_FREE:
        raise VersionMismatchError(
            f"{cls.__name__} in protocol version {frame.version}, this side speaks "
            f"{PROTOCOL_VERSION}"
        )
    return cls.decode(frame.payload)


def message_fields(msg: Message) -> dict[str, Any]:
    """Field name -> value (arrays as they are): for tests, logs and vectors."""
    return {f.name: getattr(msg, f.name) for f in fields(msg)}  # type: ignore[arg-type]
