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
from raas_client.wire import PROTOCOL_VERSION, decode, encode


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
        [msgpack.packb({"v": 2, "t": "x"})],
        [msgpack.packb({"v": 1, "t": "x", "a": [["a", "f8", [2]]]}), b"123"],
        [msgpack.packb({"v": 1, "t": "x", "a": [["a", "O", [1]]]}), b"1"],
        [msgpack.packb({"v": 1, "t": "x"}), b"stray"],
        [b"\x00" * 70_000],
        [object()],
    ],
)
def test_malformed_is_protocol_error(frames: list[object]) -> None:
    with pytest.raises(ProtocolError):
        decode(frames)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_fuzzed_bytes_only_raise_protocol_error(frames: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        decode(frames)
