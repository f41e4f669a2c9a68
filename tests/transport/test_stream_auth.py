"""The observation stream reaches open sessions only (docs/protocol.md, "Who receives the
stream"): the server key alone gets nothing; an `open` session's subscription gets steps; when
the session closes or its lease ends the subscription stops within the documented bound (about
one cycle after the close; asserted with a wide margin), while other sessions keep receiving."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import zmq
from raas_client.session import RemoteRobot, Stream, connect_socket, stream_endpoint_for
from raas_client.wire import Topic, decode, encode

from raas.transport.config import TransportConfig
from raas.transport.sockets import RobotSockets
from tests.transport.harness import LeaseIssuer, RobotDaemon, watch_stream

BOUND_S = 1.0  # documented: the close's cycle plus one; 1 s is the wide margin of a busy box


def _steps(stream: Stream, robots: list[RemoteRobot], seconds: float) -> list[int]:
    """The `mono_ns` of every step received within `seconds` (heartbeating the sessions)."""
    got: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for r in robots:
            if r.session is not None:
                r.heartbeat()
        m = stream.recv(timeout_s=0.1)
        if m is not None and m[0] == "step":
            got.append(int(m[1]["mono_ns"]))
    return got


def test_the_server_key_alone_gets_nothing(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue(scope="observe"))
    info = robot.hello()
    endpoint = stream_endpoint_for(daemon.control, str(info["stream_endpoint"]))
    stranger = Stream(zmq.Context.instance(), endpoint, daemon.key, (b"",))  # own fresh keys
    mine = robot.stream((Topic.STEP, Topic.EVENT, Topic.IMAGE))  # before open: nothing yet
    try:
        assert _steps(stranger, [], 2.0) == []
        assert _steps(mine, [], 1.0) == []
        robot.open("observe")
        assert _steps(mine, [robot], 3.0), "an observer session's subscription got no steps"
        # The open session's key is this client's; another key with the same server key is not.
        assert _steps(stranger, [robot], 1.0) == []
        # A key given in `open` that is not a Curve key is refused, naming the field.
        raw = connect_socket(zmq.Context.instance(), zmq.DEALER, daemon.control, daemon.key)
        raw.send_multipart(encode("open", {"id": 1, "lease": robot.lease, "stream_key": "x"}))
        assert raw.poll(5000)
        err = decode(raw.recv_multipart(copy=False))
        assert (err.type, err.get("code")) == ("error", "bad_request")
        assert "stream_key" in str(err.get("message"))
        raw.close(0)
    finally:
        stranger.close()
        mine.close()
        robot.close()


def test_a_closed_session_stops_receiving_others_go_on(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    a, a_stream = watch_stream(daemon, issuer, (Topic.STEP,), sub="a")
    b, b_stream = watch_stream(daemon, issuer, (Topic.STEP,), sub="b")
    try:
        assert _steps(a_stream, [a, b], 0.5) and _steps(b_stream, [a, b], 0.5)
        closed_ns = time.monotonic_ns()
        a.request("close")
        a.session = None
        late = _steps(a_stream, [b], 3.0)
        after = max(late, default=closed_ns) - closed_ns
        print(f"last step to a closed session: {after / 1e6:.1f} ms after close")
        assert after < BOUND_S * 1e9, f"a closed session still got steps {after / 1e9:.3f} s on"
        # The other observer is dropped too (the stream is rebound) and comes back by itself.
        assert _steps(b_stream, [b], 3.0), "the other observer's stream did not come back"
    finally:
        for r, s in ((a, a_stream), (b, b_stream)):
            s.close()
            r.close()


def test_an_ended_lease_stops_the_stream(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    lease = issuer.issue(scope="observe", sub="short", exp=time.time() + 4)
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=lease)
    robot.open("observe")
    stream = robot.stream((Topic.STEP,))
    try:
        got: list[int] = []
        closed: dict[str, Any] | None = None
        end = stop = time.monotonic() + 12
        while time.monotonic() < end and (closed is None or time.monotonic() < stop):
            if closed is None:
                robot.heartbeat()
                closed = next(
                    (e for e in robot.events(0.05) if e.get("kind") == "session_closed"), None
                )
                stop = time.monotonic() + 3.0
            m = stream.recv(timeout_s=0.1)
            if m is not None and m[0] == "step":
                got.append(int(m[1]["mono_ns"]))
        assert closed is not None and closed["reason"] == "lease_expired", closed
        assert got, "the session got no steps while its lease held"
        after = max(got) - int(closed["closed_ns"])
        print(f"last step after the lease ended: {after / 1e6:.1f} ms")
        assert after < BOUND_S * 1e9, f"steps went on {after / 1e9:.3f} s after the lease ended"
    finally:
        stream.close()
        robot.close()


def test_an_ipc_stream_is_for_the_daemons_user_only(tmp_path: Path) -> None:
    """ipc is not lease-gated (no Curve keys there): its socket file's mode is, 0600."""
    cfg = TransportConfig(
        control_endpoint=f"ipc://{tmp_path}/c.sock", stream_endpoint=f"ipc://{tmp_path}/s.sock"
    )
    sockets = RobotSockets(cfg, zmq.Context())
    try:
        assert sockets.stream_gate is None
        assert stat.S_IMODE((tmp_path / "s.sock").stat().st_mode) == 0o600
    finally:
        sockets.close()
