"""Messages: every type round-trips, fixed-point units quantise as documented, bad payloads
raise only the codec's own errors."""

from __future__ import annotations

import numpy as np
import pytest
from raas_firmware_bridge.errors import (
    MessageFieldError,
    PayloadLengthError,
    UnknownMessageTypeError,
    VersionMismatchError,
)
from raas_firmware_bridge.framing import Frame, FrameDecoder, decode_frame
from raas_firmware_bridge.messages import (
    MESSAGE_CLASSES,
    PROTOCOL_VERSION,
    BoardKind,
    Error,
    ErrorCode,
    Estop,
    EstopReason,
    Fault,
    FaultCode,
    FaultFlag,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    MsgType,
    Reset,
    ResetAck,
    SetTargets,
    State,
    StateRequest,
    Trigger,
    TriggerAck,
    decode_message,
    encode_message,
    negotiate_version,
    quantise_targets,
)

RNG = np.random.default_rng(4)


def sample_state(**kw: object) -> State:
    q = lambda a, s: np.rint(a * s) / s  # noqa: E731 - values already on the grid
    fields: dict[str, object] = {
        "cycle": 2**40 + 3,
        "fw_time_us": 2**50 + 17,
        "applied_seq": 2**33,
        "fault_flags": int(FaultFlag.OVERTEMP | FaultFlag.BOOTED),
        "positions": q(RNG.uniform(-1.6, 1.6, 24), 1e4),
        "velocities": q(RNG.uniform(-20, 20, 24), 1e3),
        "efforts": q(RNG.uniform(-2, 2, 20), 1e3),
        "temperatures": q(RNG.uniform(20, 80, 20), 1e2),
    }
    fields.update(kw)
    return State(**fields)  # type: ignore[arg-type]


def one_of_each() -> list[Message]:
    return [
        Hello(1, 1),
        HelloAck(1, BoardKind.HAND, 1, 1, 0, 3, 258, 50, 1000, 20, 24, 0xDEADBEEF),
        SetTargets(2**63, quantise_targets(RNG.uniform(-1.5, 1.5, 20))),
        StateRequest(12345678901),
        sample_state(),
        sample_state(applied_seq=-1),
        Trigger(2**64 - 1),
        TriggerAck(99, 1_700_000_000_000_000),
        Heartbeat(5, 4),
        Fault(FaultCode.WATCHDOG, int(FaultFlag.WATCHDOG), 51),
        Estop(EstopReason.BUTTON),
        Reset(0xCAFE),
        ResetAck(0xCAFE, 0),
        Error(ErrorCode.BAD_VALUE, MsgType.SET_TARGETS, 65535, 7),
    ]


def test_every_message_type_is_covered() -> None:
    assert {type(m) for m in one_of_each()} == set(MESSAGE_CLASSES.values())
    assert set(MESSAGE_CLASSES) == set(MsgType)


@pytest.mark.parametrize("msg", one_of_each(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_a_frame(msg: Message) -> None:
    wire = encode_message(msg, 70000)
    (frame,) = FrameDecoder().feed(wire)
    assert frame.msg_type == msg.MSG_TYPE and frame.seq == 70000 % 65536
    assert decode_message(frame) == msg


def test_decoded_arrays_are_read_only() -> None:
    got = decode_message(decode_frame(encode_message(sample_state(), 1)[:-1]))
    assert isinstance(got, State)
    with pytest.raises(ValueError):
        got.positions[0] = 1.0


def test_every_int16_count_round_trips_exactly_through_si() -> None:
    counts = np.arange(-32767, 32768)
    for scale in (1e4, 1e3, 1e2):
        si = counts / scale
        assert np.array_equal(np.rint(si * scale), counts)


def test_state_quantisation_is_half_a_count_saturates_and_carries_nan() -> None:
    pos = RNG.uniform(-3, 3, 24)
    vel = np.full(24, np.nan)
    eff = np.full(20, 1e6)
    temp = RNG.uniform(-40, 150, 20)
    sent = State(1, 2, 3, 0, pos, vel, eff, temp)
    got = State.decode(sent.encode())
    assert np.abs(got.positions - pos).max() <= 0.5e-4 + 1e-12
    assert np.abs(got.temperatures - temp).max() <= 0.5e-2 + 1e-12
    assert np.isnan(got.velocities).all()
    assert np.all(got.efforts == 32.767)


def test_targets_refuse_non_finite_out_of_range_and_wrong_shape() -> None:
    for bad in (np.full(20, np.nan), np.full(20, 3.3), np.zeros(19), np.full(20, -np.inf)):
        with pytest.raises(MessageFieldError):
            SetTargets(1, bad).encode()
    t = RNG.uniform(-1.5, 1.5, 20)
    assert np.abs(quantise_targets(t) - t).max() <= 0.5e-4 + 1e-12
    got = SetTargets.decode(SetTargets(1, t).encode())
    assert np.array_equal(got.targets, quantise_targets(t))


def test_fields_that_do_not_fit_raise_message_field_error() -> None:
    with pytest.raises(MessageFieldError):
        Trigger(2**64).encode()
    with pytest.raises(MessageFieldError):
        Heartbeat(-1).encode()
    with pytest.raises(MessageFieldError):
        State(1, 2, 3, 0, np.zeros(23), np.zeros(25), np.zeros(20), np.zeros(20)).encode()


def test_decode_errors_are_the_codecs_own() -> None:
    with pytest.raises(UnknownMessageTypeError):
        decode_message(Frame(0x7E, 0, b""))
    with pytest.raises(PayloadLengthError):
        decode_message(Frame(MsgType.STATE, 0, bytes(203)))
    with pytest.raises(PayloadLengthError):
        decode_message(Frame(MsgType.HELLO, 0, b"\x01"))
    with pytest.raises(VersionMismatchError):
        decode_message(Frame(MsgType.TRIGGER, 0, bytes(8), PROTOCOL_VERSION + 1))


def test_hello_crosses_versions_and_may_grow() -> None:
    # a future version's HELLO with extra bytes still decodes, so negotiation always works
    assert decode_message(Frame(MsgType.HELLO, 0, b"\x01\x05extra", 5)) == Hello(1, 5)


def test_unknown_codes_from_a_newer_peer_stay_plain_ints() -> None:
    got = decode_message(Frame(MsgType.ERROR, 0, Error(200).encode()))
    assert isinstance(got, Error) and got.code == 200
    known = decode_message(Frame(MsgType.ERROR, 0, Error(1).encode()))
    assert isinstance(known, Error) and known.code is ErrorCode.UNKNOWN_TYPE


def test_version_negotiation_picks_the_highest_common_version() -> None:
    assert negotiate_version(1, 3, 2, 5) == 3
    assert negotiate_version(1, 1, 1, 1) == 1
    assert negotiate_version(1, 1, 2, 3) is None
