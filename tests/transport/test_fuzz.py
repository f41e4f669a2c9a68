"""Fuzzed and malformed frames never crash the daemon nor make it miss a cycle (realtime rig)."""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from raas_client.session import RemoteRobot, connect_socket
from raas_client.wire import PROTOCOL_VERSION as V
from raas_client.wire import Layout, Topic, encode

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon, watch_stream

pytestmark = [pytest.mark.system, pytest.mark.slow]

RATE = 20.0


@pytest.fixture(scope="module")
def rt_daemon(
    tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer
) -> Iterator[RobotDaemon]:
    d = start_daemon(Path(tmp_path_factory.mktemp("rt")), issuer, clock="realtime", rate=RATE)
    yield d
    d.stop()


def _cases(rng: random.Random, lease: str) -> Iterator[list[Any]]:
    """Messages that are wrong in every layer: bytes, msgpack, header, arrays, semantics."""
    fixed: list[list[Any]] = [
        [b""],
        [b"\xff" * 10],
        [msgpack.packb([1, 2, 3])],
        [msgpack.packb({"v": 99, "t": "hello"})],
        [msgpack.packb({"v": V})],
        [msgpack.packb({"v": V, "t": 5})],
        [msgpack.packb({"v": V, "t": "nonsense", "id": 1})],
        [msgpack.packb({"v": V, "t": "open", "lease": 12, "role": "control"})],
        [msgpack.packb({"v": V, "t": "open", "lease": lease, "role": "king"})],
        [msgpack.packb({"v": V, "t": "step", "cycle": "x"})],
        [msgpack.packb({"v": V, "t": "hello", "a": [["x", "f8", [3]]]}), b"\x00" * 7],
        [msgpack.packb({"v": V, "t": "hello", "a": [["x", "zz", [1]]]}), b"\x00"],
        [msgpack.packb({"v": V, "t": "hello", "a": [["x", "f8", [1 << 40]]]}), b""],
        [msgpack.packb({"v": V, "t": "hello", "a": "nope"}), b""],
        [msgpack.packb({"v": V, "t": "hello"}), b"extra"],
        [msgpack.packb({"v": V, "t": "fetch", "session": ["x"], "offset": -1})],
        [msgpack.packb({"v": V, "t": "upload_begin", "name": "../../etc", "size": 1})],
        [msgpack.packb({"v": V, "t": "estop", "lease": "a.b.c"})],
        [msgpack.packb({"v": V, "t": "x" * 100_000})],
        [b"\x00"] * 100,
        encode("status", {"id": {"nested": [1, 2, {"deep": None}]}}),
    ]
    yield from fixed
    for _ in range(400):
        kind = rng.randrange(4)
        if kind == 0:
            yield [rng.randbytes(rng.randrange(0, 200)) for _ in range(rng.randrange(1, 4))]
        elif kind == 1:
            hdr = {"v": V, "t": rng.choice(["hello", "open", "step", "arm", "run", "status"])}
            for _ in range(rng.randrange(0, 4)):
                hdr[rng.choice(["id", "cycle", "lease", "role", "episodes", "a"])] = rng.choice(
                    [None, -1, 2**62, "s", 1.5, [1], {"k": "v"}, b"b"]
                )
            yield [msgpack.packb(hdr)]
        elif kind == 2:
            raw = bytearray(msgpack.packb({"v": V, "t": "status", "id": 3}))
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            yield [bytes(raw)]
        elif rng.randrange(2):
            yield encode("step", {"cycle": rng.randrange(-5, 10**6)}, {"action": _rand_array(rng)})
        else:  # a step block of any size, dtype and layout name
            a = _rand_array(rng)
            lay = Layout.of(
                rng.choice(["step", "obs", "x"]), [("action", a.dtype.str[1:], a.shape)]
            )
            yield encode("step", {"cycle": rng.randrange(-5, 10**6)}, layout=lay, block=a)


def _rand_array(rng: random.Random) -> Any:
    return np.zeros(rng.choice([0, 1, 19, 20, 21, 400]), dtype=rng.choice(["f8", "f4", "u1"]))


def test_fuzzed_frames_neither_crash_nor_cost_a_cycle(
    rt_daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    ctx = zmq.Context.instance()
    rng = random.Random(1234)
    fuzzers = [connect_socket(ctx, zmq.DEALER, rt_daemon.control, rt_daemon.key) for _ in range(3)]
    # A peer with a wrong server key never gets past the Curve handshake.
    stranger = connect_socket(ctx, zmq.DEALER, rt_daemon.control, "plain")
    cycles: list[int] = []
    # 50 MB of junk with a hello: refused as too_large (with its id) from the header alone.
    big = connect_socket(ctx, zmq.DEALER, rt_daemon.control, rt_daemon.key)
    big.send_multipart(encode("hello", {"id": 99}, {"junk": np.zeros(50_000_000, np.uint8)}))
    # The observer session after that send: encoding 50 MB on a loaded machine can take longer
    # than the liveness timeout, which would end the session and with it the stream.
    watcher, stream = watch_stream(rt_daemon, issuer, (Topic.STEP,))
    before = watcher.status()
    try:
        for sent, frames in enumerate(_cases(rng, issuer.issue()), start=1):
            fuzzers[sent % 3].send_multipart(frames)
            with contextlib.suppress(zmq.Again):  # never connects: its queue fills up
                stranger.send_multipart(frames, zmq.NOBLOCK)
            if sent % 20 == 0:
                watcher.heartbeat()
                while (got := stream.recv(timeout_s=0)) is not None:
                    cycles.append(got[1]["cycle"])
                time.sleep(0.01)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            watcher.heartbeat()
            got = stream.recv(timeout_s=0.2)
            if got is not None:
                cycles.append(got[1]["cycle"])
        assert rt_daemon.alive()
        assert big.poll(10_000), "no answer to a 50 MB hello"
        refused = msgpack.unpackb(big.recv_multipart()[0])
        assert (refused["t"], refused["code"], refused["id"]) == ("error", "too_large", 99)
        after = watcher.status()
        assert after["malformed"] + after["refused"] > before["malformed"] + before["refused"]
        assert len(cycles) > RATE  # the loop kept running throughout
        gaps = [(a, b) for a, b in itertools.pairwise(cycles) if b != a + 1]
        assert gaps == [], f"cycles missed while fuzzed: {gaps[:5]}"
        # And the robot still serves an honest client.
        honest = RemoteRobot(rt_daemon.control, server_key=rt_daemon.key, lease=issuer.issue())
        honest.open("control")
        honest.arm()
        assert honest.observation().cycle > 0
        honest.close()
    finally:
        for s in (*fuzzers, stranger, big):
            s.close(0)
        stream.close()
        watcher.close()
