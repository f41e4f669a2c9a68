"""RemoteRobot waits for a message with one blocking receive (ZMQ_RCVTIMEO, set when the timeout
changes): a timeout still ends the wait with RobotTimeoutError, a later request with another
timeout is answered, and queued observations still leave only the newest. A real ROUTER on a
loopback socket plays the robot."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest
import zmq
from raas_client.errors import RobotTimeoutError
from raas_client.session import RemoteRobot
from raas_client.wire import Layout, Msg, encode

OBS = Layout.of("obs", [("hand_pos", "f8", (3,))])


@pytest.fixture
def router() -> Iterator[zmq.Socket[bytes]]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    yield sock
    sock.close(0)


def _robot(router: zmq.Socket[bytes]) -> RemoteRobot:
    robot = RemoteRobot(router.getsockopt_string(zmq.LAST_ENDPOINT), server_key="plain")
    robot.layouts = {"obs": OBS}
    return robot


def test_a_request_times_out_then_another_timeout_is_answered(
    router: zmq.Socket[bytes],
) -> None:
    robot = _robot(router)
    try:
        t0 = time.monotonic()
        with pytest.raises(RobotTimeoutError):
            robot.request(Msg.STATUS, timeout_s=0.3)
        assert time.monotonic() - t0 >= 0.29  # the wait lasted its timeout, not less
        assert router.poll(5000)
        ident, header = router.recv_multipart()
        assert msgpack.unpackb(header)["t"] == Msg.STATUS
        # The next request, with another timeout, gets its answer (sent before it asks).
        rid = msgpack.unpackb(header)["id"] + 1
        router.send_multipart([ident, *encode(Msg.OK, {"id": rid, "mode": "hold"})])
        assert robot.request(Msg.STATUS, timeout_s=5.0)["mode"] == "hold"
    finally:
        robot.sock.close(0)


def test_queued_observations_leave_the_newest_with_writable_arrays(
    router: zmq.Socket[bytes],
) -> None:
    robot = _robot(router)
    try:
        robot.heartbeat()  # the ROUTER learns the client's identity
        assert router.poll(5000)
        ident = router.recv_multipart()[0]
        block, views = OBS.allocate()
        for cycle in (1, 2, 3):
            views["hand_pos"][:] = cycle
            router.send_multipart(
                [ident, *encode(Msg.OBS, {"cycle": cycle}, layout=OBS, block=block)]
            )
        time.sleep(0.2)  # all three queued on the client's side
        obs = robot.observation(timeout_s=5.0)
        assert obs.cycle == 3
        assert np.array_equal(obs["hand_pos"], [3.0, 3.0, 3.0])
        obs["hand_pos"][0] = -1.0  # a view on the received block, writable as before
        with pytest.raises(RobotTimeoutError):
            robot.observation(after=3, timeout_s=0.2)
    finally:
        robot.sock.close(0)
