"""The wire protocol round-trips headers and arrays (zero-copy on receipt) and turns anything
malformed into ProtocolError, never another exception."""

from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from raas_client.errors import ProtocolError
from raas_client.wire import PROTOCOL_VERSION, Layout, decode, encode, layouts_from_spaces

V = PROTOCOL_VERSION
STEP = Layout.of("step", [("action", "f8", (20,))])


def test_round_trip_over_a_socket_is_zero_copy() -> None:
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-test")
    b.connect("inproc://wire-test")
    image = np.arange(480 * 640 * 3, dtype=np.uint8).reshape(480, 640, 3)
    vec = np.linspace(0, 1, 20)
    a.send_multipart(encode("obs", {"cycle": 7}, {"image": image, "vec": vec}), copy=False)
    frames = b.recv_multipart(copy=False)
    msg = decode(frames)
    assert msg.type == "obs" and msg.get("cycle") == 7 and msg.header["v"] == PROTOCOL_VERSION
    assert np.array_equal(msg.arrays["image"], image) and np.array_equal(msg.arrays["vec"], vec)
    # The array is a view on the received frame, not a copy.
    assert not msg.arrays["image"].flags.owndata
    assert np.shares_memory(msg.arrays["image"], np.frombuffer(frames[1].buffer, np.uint8))
    a.close()
    b.close()


def test_empty_and_bool_arrays() -> None:
    msg = decode(encode("x", None, {"e": np.zeros((0, 3)), "b": np.array([True, False])}))
    assert msg.arrays["e"].shape == (0, 3)
    assert msg.arrays["b"].tolist() == [True, False]


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b""],
        [msgpack.packb({"v": 1, "t": "x"})],
        [msgpack.packb({"v": V, "t": "x", "a": [["a", "f8", [2]]]}), b"123"],
        [msgpack.packb({"v": V, "t": "x", "a": [["a", "O", [1]]]}), b"1"],
        [msgpack.packb({"v": V, "t": "x"}), b"stray"],
        [msgpack.packb({"v": V, "t": "x", "b": "nope"}), b"\0" * 8],
        [msgpack.packb({"v": V, "t": "x", "b": "step"})],
        [msgpack.packb({"v": V, "t": "x", "b": "step"}), b"\0" * 152],
        [msgpack.packb({"v": V, "t": "x", "b": ["step"]}), b"\0" * 160],
        [b"\x00" * 70_000],
        [object()],
    ],
)
def test_malformed_is_protocol_error(frames: list[object]) -> None:
    with pytest.raises(ProtocolError):
        decode(frames, layouts={"step": STEP})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_fuzzed_bytes_only_raise_protocol_error(frames: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        decode(frames)


def _layouts() -> dict[str, Layout]:
    arrays = [
        ("hand_pos", "f8", (24,)),
        ("mocap", "f8", (13, 3)),
        ("mocap_visible", "b1", (13,)),  # 13 bytes: the next array starts aligned again
        ("goal", "f8", (7,)),
        ("none", "f8", (0, 3)),
        ("count", "i4", (3,)),
        ("raw", "u1", (5,)),
        ("half", "u2", (3,)),
        ("f", "f4", (2, 2)),
        ("big", "i8", (1,)),
    ]
    return {"obs": Layout.of("obs", arrays), "step": STEP}


def test_every_array_of_a_block_round_trips_through_the_announced_layout() -> None:
    """The daemon's side: arrays are views on one preallocated block, filled in place and
    sent as one frame; the client's side: the layouts as hello announces them (msgpack round
    trip) give views on the received frame with the same values."""
    mine = _layouts()
    block, views = mine["obs"].allocate()
    rng = np.random.default_rng(3)
    for arr in views.values():
        arr[...] = (
            rng.integers(0, 2, arr.shape) if arr.dtype == np.bool_ else rng.random(arr.shape) * 100
        )
    sent = {n: a.copy() for n, a in views.items()}
    assert all(off % 8 == 0 for _, _, _, off in mine["obs"].arrays)
    announced = msgpack.unpackb(msgpack.packb({"layouts": {n: x.spec() for n, x in mine.items()}}))
    theirs = layouts_from_spaces(announced)
    assert theirs == mine
    frames = encode(
        "obs",
        {"cycle": 4},
        {"image": np.ones((2, 2, 3), np.uint8)},
        layout=mine["obs"],
        block=block,
    )
    assert len(frames) == 3  # header, the block, the image: never one frame per small array
    wire_frames = [bytes(f) for f in frames]
    msg = decode(wire_frames, layouts=theirs)
    assert msg.block == "obs" and msg.get("cycle") == 4 and "b" not in msg.header
    assert set(msg.arrays) == set(sent) | {"image"}
    for name, value in sent.items():
        got = msg.arrays[name]
        assert got.dtype == value.dtype and got.shape == value.shape, name
        assert np.array_equal(got, value), name
    assert msg.arrays["image"].shape == (2, 2, 3)


def test_a_block_is_received_without_a_copy() -> None:
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-block")
    b.connect("inproc://wire-block")
    block, views = STEP.allocate()
    views["action"][:] = np.arange(20)
    a.send_multipart(encode("step", {"cycle": 1}, layout=STEP, block=block))
    frames = b.recv_multipart(copy=False)
    msg = decode(frames, layouts={"step": STEP})
    assert msg.arrays["action"].tolist() == list(range(20))
    assert np.shares_memory(msg.arrays["action"], np.frombuffer(frames[1].buffer, np.uint8))
    a.close()
    b.close()


def test_a_block_of_the_wrong_size_names_both_sizes_and_keeps_the_id() -> None:
    frames = [msgpack.packb({"v": V, "t": "step", "id": "s1", "b": "step"}), b"\0" * 152]
    with pytest.raises(ProtocolError, match="152 bytes: its layout has 160") as err:
        decode(frames, layouts={"step": STEP})
    assert err.value.request_id == "s1"


def test_an_older_version_is_refused_with_its_version_and_id() -> None:
    with pytest.raises(ProtocolError, match="protocol 1 is not spoken here") as err:
        decode([msgpack.packb({"v": 1, "t": "hello", "id": 9})])
    assert err.value.version and err.value.peer_version == 1 and err.value.request_id == 9


@pytest.mark.parametrize(
    "spec",
    [
        {"bytes": 8, "arrays": [["a", "f8", [2], 0]]},  # past the end
        {"bytes": 16, "arrays": [["a", "f8", [1], 4]]},  # unaligned
        {"bytes": 16, "arrays": [["a", "O", [1], 0]]},
        {"bytes": 16, "arrays": [["a", "f8", [1]]]},
        {"arrays": []},
        "nope",
    ],
)
def test_a_bad_announced_layout_is_protocol_error(spec: object) -> None:
    with pytest.raises(ProtocolError):
        layouts_from_spaces({"layouts": {"x": spec}})


def test_a_reused_packer_encodes_the_same_frames() -> None:
    """encode(pack=...) (the daemon's and RemoteRobot's reused msgpack Packer) changes nothing
    on the wire, message after message."""
    block, views = STEP.allocate()
    views["action"][:] = np.linspace(-1, 1, 20)
    pack = msgpack.Packer().pack
    for cycle in (0, 1, 2**40):
        fields = {"cycle": cycle, "report": {"cycle": cycle - 1, "fallback": 0}}
        reused = encode("obs", fields, layout=STEP, block=block, pack=pack)
        fresh = encode("obs", fields, layout=STEP, block=block)
        assert reused[0] == fresh[0] and reused[1] is fresh[1] is block


def test_a_header_as_bytes_and_a_block_as_frame_decode_to_writable_views() -> None:
    """What RemoteRobot receives (the header copied into bytes, the block a zmq.Frame): the
    observation's arrays stay writable views on the received block, as before."""
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-test-mixed")
    b.connect("inproc://wire-test-mixed")
    block, views = STEP.allocate()
    views["action"][:] = np.arange(20.0)
    a.send_multipart(encode("step", {"cycle": 3}, layout=STEP, block=block))
    header = b.recv()
    frame = b.recv(copy=False)
    msg = decode([header, frame], layouts={"step": STEP})
    assert msg.get("cycle") == 3 and msg.block == "step"
    action = msg.arrays["action"]
    assert np.array_equal(action, np.arange(20.0))
    assert np.shares_memory(action, np.frombuffer(frame.buffer, np.uint8))
    assert action.flags.writeable
    a.close()
    b.close()


def test_a_step_header_from_its_parts_is_the_packed_header() -> None:
    """RemoteRobot.act sends head + pack(cycle) + tail: the same bytes as packing the header
    map, whatever the cycle's msgpack size, and the daemon reads the cycle back."""
    from raas_client.session import step_header_parts

    head, tail = step_header_parts("step")
    pack = msgpack.Packer().pack
    for cycle in (0, 1, 127, 128, 255, 65536, 2**31, 2**40, -1, -33):
        header = {"v": V, "t": "step", "cycle": cycle, "b": "step"}
        assert head + pack(cycle) + tail == msgpack.packb(header)
        msg = decode([head + pack(cycle) + tail, bytes(STEP.size)], layouts={"step": STEP})
        assert msg.get("cycle") == cycle and msg.type == "step" and msg.block == "step"


def test_frames_received_as_zmq_frames_decode_and_count_toward_the_limit() -> None:
    """What the daemon and RemoteRobot receive now (every part a zmq.Frame, read without a
    memoryview): a block and a loose array are writable views on their frames, and a message
    over its limit is refused by its size in bytes with the request's id."""
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-test-frames")
    b.connect("inproc://wire-test-frames")
    block, views = STEP.allocate()
    views["action"][:] = np.arange(20.0)
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    a.send_multipart(encode("obs", {"id": 5}, {"image": image}, layout=STEP, block=block))
    frames = b.recv_multipart(copy=False)
    assert all(type(f) is zmq.Frame for f in frames)
    msg = decode(frames, limit=lambda kind: 64 * 1024, layouts={"step": STEP})
    action, got = msg.arrays["action"], msg.arrays["image"]
    assert np.array_equal(action, np.arange(20.0)) and np.array_equal(got, image)
    assert np.shares_memory(action, np.frombuffer(frames[1].buffer, np.uint8))
    assert np.shares_memory(got, np.frombuffer(frames[2].buffer, np.uint8))
    assert action.flags.writeable and got.flags.writeable
    big = np.zeros(64 * 1024, dtype=np.uint8)
    a.send_multipart(encode("upload_chunk", {"id": 6}, {"data": big}))
    frames = b.recv_multipart(copy=False)
    with pytest.raises(ProtocolError) as exc:
        decode(frames, limit=lambda kind: 64 * 1024)
    assert exc.value.too_large and exc.value.request_id == 6
    assert f"of {len(frames[0]) + big.nbytes} bytes" in str(exc.value)
    a.close()
    b.close()


def test_refusals_name_what_is_wrong() -> None:
    """An oversized header is `too_large`; bin or number keys and too many loose arrays say so
    instead of 'not msgpack' or 'does not match'."""
    big = msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", "pad": "x" * 70_000})
    with pytest.raises(ProtocolError, match="header of") as err:
        decode([big])
    assert err.value.too_large
    with pytest.raises(ProtocolError) as version:  # 2.0 == 2 in Python, not on the wire
        decode([msgpack.packb({"v": float(PROTOCOL_VERSION), "t": "hello", "id": 9})])
    assert version.value.version and version.value.request_id == 9
    with pytest.raises(ProtocolError, match="keys must be strings"):
        decode([msgpack.packb({1: 2, "v": PROTOCOL_VERSION})])
    with pytest.raises(ProtocolError, match="binary data"):
        decode([msgpack.packb({b"t": "hello", "v": PROTOCOL_VERSION})])
    spec = [{"n": f"a{i}", "d": "<f4", "s": [1]} for i in range(65)]
    header = msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", "a": spec})
    with pytest.raises(ProtocolError, match="at most 64 loose arrays"):
        decode([header] + [b"\0\0\0\0"] * 65)
