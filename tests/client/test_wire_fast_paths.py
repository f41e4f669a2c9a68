"""The two shortcuts of a remote step's decoding give what the general path gives: a block's
arrays as fields of one numpy record (Layout.views), and the daemon's reading of a `step`
written as raas_client writes it (wire.StepReader) beside decode()."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq
from raas_client.wire import (
    PROTOCOL_VERSION,
    Layout,
    StepReader,
    decode,
    encode,
    request_limit,
    step_header_parts,
)

STEP = Layout.of("step", [("action", "f8", (20,))])
OBS = Layout.of(
    "obs",
    [
        ("hand_pos", "f8", (24,)),
        ("hand_vel", "f8", (24,)),
        ("hand_effort", "f8", (20,)),
        ("mocap", "f8", (13, 3)),
        ("mocap_visible", "b1", (13,)),
        ("goal", "f8", (7,)),
    ],
)


def _one_by_one(layout: Layout) -> Layout:
    """The same layout, its views made one frombuffer per array (the general path)."""
    plain = Layout(layout.name, layout.arrays, layout.size)
    object.__setattr__(plain, "_record", None)
    return plain


@pytest.mark.parametrize(
    "arrays",
    [
        OBS.arrays,
        Layout.of("x", [("a", "f8", ()), ("b", "i4", (2, 3)), ("c", "u1", (1,))]).arrays,
        Layout.of("x", [("a", "u2", (2, 1, 3, 2)), ("b", "f4", (3,)), ("c", "b1", (9,))]).arrays,
    ],
)
def test_a_block_as_one_record_gives_the_same_writable_views(arrays: tuple) -> None:  # type: ignore[type-arg]
    layout = Layout("x", arrays, max(o for *_, o in arrays) + 64)
    assert layout._record is not None  # the record path is the one tested
    block = np.random.default_rng(1).integers(0, 2, layout.size, dtype=np.uint8)
    got, want = layout.views(block), _one_by_one(layout).views(block)
    assert list(got) == list(want)  # the same names in the same order
    for name in want:
        g, w = got[name], want[name]
        assert type(g) is np.ndarray and g.shape == w.shape and g.dtype == w.dtype, name
        assert np.array_equal(g, w) and g.flags.writeable and g.flags.c_contiguous, name
        assert np.shares_memory(g, block), name
    got[arrays[0][0]][...] = 1  # a write lands in the block, where the other view sees it
    assert np.array_equal(want[arrays[0][0]], np.ones_like(want[arrays[0][0]]))


def test_a_block_received_as_a_frame_gives_record_views_on_the_frame() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://fast-paths-record")
    b.connect("inproc://fast-paths-record")
    block, views = OBS.allocate()
    views["mocap"][:] = np.arange(39.0).reshape(13, 3)
    views["mocap_visible"][::2] = True
    a.send_multipart(encode("obs", {"cycle": 3}, layout=OBS, block=block))
    frames = [b.recv(copy=False), b.recv(copy=False)]
    msg = decode(frames, layouts={"obs": OBS})
    for name, want in views.items():
        assert np.array_equal(msg.arrays[name], want) and msg.arrays[name].flags.writeable
        assert np.shares_memory(msg.arrays[name], np.frombuffer(frames[1].buffer, np.uint8))
    a.close()
    b.close()


@pytest.mark.parametrize(
    "arrays",
    [
        [("a", "f8", (3,)), ("b", "f8", (2,))],  # two arrays: one frombuffer each costs less
        [("a", "f8", (3,)), ("none", "f8", (0, 3)), ("b", "f8", (2,))],  # an empty array
    ],
)
def test_layouts_a_record_does_not_fit_are_viewed_one_by_one(arrays: list) -> None:  # type: ignore[type-arg]
    layout = Layout.of("x", arrays)
    assert layout._record is None
    _, views = layout.allocate()
    assert [v.shape for v in views.values()] == [tuple(s) for _, _, s in arrays]


def test_a_layout_naming_an_array_twice_is_viewed_one_by_one() -> None:
    spec = {"bytes": 24, "arrays": [["a", "f8", [1], 0], ["a", "f8", [1], 8], ["b", "f8", [1], 16]]}
    layout = Layout.from_spec("x", spec)
    assert layout._record is None and list(layout.views(bytes(24))) == ["a", "b"]


def _step_frames(cycle: int) -> list[bytes]:
    head, tail = step_header_parts("step")
    return [head + msgpack.packb(cycle) + tail, np.arange(20.0).tobytes()]


def _limit(kind: str) -> int:
    return request_limit(kind, 1 << 20)


@pytest.mark.parametrize("cycle", [0, 1, 127, 128, 65535, 2**32, 2**63, -1, -33, -(2**40)])
def test_the_step_reader_reads_what_decode_reads(cycle: int) -> None:
    frames = _step_frames(cycle)
    got = StepReader(STEP).read(*frames)
    msg = decode(frames, _limit, {"step": STEP})
    assert got is not None
    assert msg.header == {"v": PROTOCOL_VERSION, "t": "step", "cycle": cycle}
    assert msg.block == "step" and msg.get("id") is None
    assert got[0] == cycle and list(got[1]) == list(msg.arrays) == ["action"]
    assert np.array_equal(got[1]["action"], msg.arrays["action"])


def test_the_step_reader_reads_zmq_frames() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://fast-paths-step")
    b.connect("inproc://fast-paths-step")
    a.send_multipart(_step_frames(12345))
    frames = [b.recv(copy=False), b.recv(copy=False)]
    got = StepReader(STEP).read(*frames)
    assert got is not None and got[0] == 12345
    assert np.array_equal(got[1]["action"], np.arange(20.0)) and got[1]["action"].flags.writeable
    a.close()
    b.close()


def _others() -> dict[str, list[bytes]]:
    """Steps the reader must leave to decode(): the same header written otherwise, or not a
    valid step at all (decode() refuses those with its own message)."""
    head, tail = step_header_parts("step")
    block = np.zeros(20).tobytes()
    pack = msgpack.packb
    return {
        "with an id": [pack({"v": 2, "t": "step", "id": 1, "cycle": 3, "b": "step"}), block],
        "keys in another order": [pack({"t": "step", "v": 2, "cycle": 3, "b": "step"}), block],
        "a float cycle": [head + pack(3.0) + tail, block],
        "a nil cycle": [head + pack(None) + tail, block],
        "a string cycle": [head + pack("3") + tail, block],
        "a bool cycle": [head + pack(True) + tail, block],
        "two values for one": [head + pack(3) + pack(4) + tail, block],
        "a truncated cycle": [head + b"\xcd\x01" + tail, block],
        "a short block": [head + pack(3) + tail, block[:-8]],
        "a long block": [head + pack(3) + tail, block + bytes(8)],
        "protocol 1": [pack({"v": 1, "t": "step", "cycle": 3, "b": "step"}), block],
        "another layout": [pack({"v": 2, "t": "step", "cycle": 3, "b": "obs"}), block],
        "no block": [head + pack(3) + tail, b""],
    }


@pytest.mark.parametrize("case", sorted(_others()))
def test_the_step_reader_leaves_every_other_encoding_to_decode(case: str) -> None:
    frames = _others()[case]
    assert StepReader(STEP).read(*frames) is None
