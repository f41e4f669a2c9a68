"""A `step` written as raas_client writes it is read without decode() (wire.StepReader), and
is still refused exactly as the same step written another way (decode()'s path): a lease that
ended or was revoked closes the session and refuses it with the lease's code, a client without
a session gets `no_session`, an observer `not_controller`; and an accepted one is taken.

The real SessionController on inproc sockets, driven in this thread; the steps are sent as raw
frames on the client's own socket so that the error replies (`id` null) can be read."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from raas_client.session import RemoteRobot
from raas_client.wire import ErrorCode, decode, step_header_parts
from raas_drivers.hand.shape import HandShape

from raas.core.observation import Observation
from raas.leases import LeaseClaims, generate_private_key, sign_lease
from raas.safety import SafetyConfig, supervisor_for_hand
from raas.transport.config import TransportConfig
from raas.transport.leases import LeaseGate
from raas.transport.session import SessionController
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker

JTI = "lease-1"


@dataclasses.dataclass
class Cell:
    ctl: SessionController
    client: RemoteRobot
    obs: Observation


def _encode(how: str, cycle: int, action: np.ndarray) -> list[bytes]:
    """`canonical`: raas_client's bytes (the reader's path); `reordered`: the same header map
    with its keys in another order (decode()'s path)."""
    if how == "canonical":
        head, tail = step_header_parts("step")
        header = head + msgpack.packb(cycle) + tail
    else:
        header = msgpack.packb({"b": "step", "cycle": cycle, "t": "step", "v": 2})
    return [header, action.tobytes()]


@pytest.fixture
def cell(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cell]:
    role = getattr(request, "param", "control")
    key = generate_private_key()
    now = int(time.time())
    claims = LeaseClaims(
        iss="test", sub="alice", robot="t", rid=1, scope=role,  # type: ignore[arg-type]
        nbf=now - 5, exp=now + 600, jti=JTI,
    )  # fmt: skip
    name = uuid.uuid4().hex
    cfg = TransportConfig(
        robot="t",
        control_endpoint=f"inproc://refusals-{name}",
        stream_endpoint=f"inproc://refusals-stream-{name}",
        plain=True,
        key_dir=tmp_path,
        liveness_timeout_s=30,
        action_wait_ms=1000,
    )
    hand = HandShape.shadow()
    packer = ObservationPacker(hand, ())  # type: ignore[arg-type]
    sup = supervisor_for_hand(hand, SafetyConfig(), 0.08)  # type: ignore[arg-type]
    ctl = SessionController(
        RobotSockets(cfg, zmq.Context.instance()), LeaseGate("t", key.public_key()), cfg,
        packer, rate_hz=12.5, decide_budget_ns=2_000_000_000, realtime=True, supervisor=sup,
    )  # fmt: skip
    client = RemoteRobot(ctl.sockets.control_endpoint, lease=sign_lease(key, claims), timeout_s=10)
    obs = Observation()
    out = np.zeros(len(packer.actuators))
    stop = threading.Event()

    def serve() -> None:  # the daemon's loop while the client opens (and arms)
        while not stop.is_set():
            ctl.decide(obs, out)
            time.sleep(0.001)

    th = threading.Thread(target=serve)
    th.start()
    try:
        client.open(role)
        if role == "control":
            client.arm()
    finally:
        stop.set()
        th.join()
    try:
        yield Cell(ctl, client, obs)
    finally:
        client.sock.close(0)
        ctl.sockets.close()


def _observation(cell: Cell, k: int) -> None:
    """Observation k goes out and its action is awaited (what RemoteStep.decide does)."""
    st = cell.ctl.stepping
    t = st.timing
    cell.obs.cycle = k
    t.cycle, t.action_ns, st.have_action = k, -1, False
    t.obs_sent_ns = st.observation(cell.obs)
    t.deadline_ns = t.obs_sent_ns + 10**9


def _step(cell: Cell, sock: zmq.Socket[bytes], how: str, cycle: int, action: Any) -> str | None:
    """Send a step, let the daemon handle it; the error code it answers, or None."""
    ctl = cell.ctl
    sock.send_multipart(_encode(how, cycle, np.asarray(action, dtype=np.float64)))
    got = ctl.sockets.recv_wait(5000)
    assert got is not None
    # the path this encoding takes: the reader for raas_client's bytes, decode() otherwise
    assert (ctl._steps.read(got[1], got[2]) is not None) == (how == "canonical")
    ctl._dispatch(got)
    while sock.poll(200):
        msg = decode(sock.recv_multipart(), layouts=cell.client.layouts)
        if msg.type == "error":
            return str(msg.get("code"))
    return None


HOW = ("canonical", "reordered")


@pytest.mark.parametrize("how", HOW)
def test_a_step_on_time_is_taken(cell: Cell, how: str) -> None:
    _observation(cell, 5)
    action = np.linspace(-0.1, 0.1, 20)
    assert _step(cell, cell.client.sock, how, 5, action) is None
    st = cell.ctl.stepping
    assert st.have_action and np.array_equal(st.action, action)
    assert cell.ctl.counters.actions_on_time == 1


@pytest.mark.parametrize("how", HOW)
def test_a_step_after_the_lease_was_revoked_is_refused(cell: Cell, how: str) -> None:
    _observation(cell, 5)
    cell.ctl.gate.revoke(JTI, time.time() + 600)
    code = _step(cell, cell.client.sock, how, 5, np.zeros(20))
    assert code == ErrorCode.LEASE_REVOKED
    assert cell.ctl.controller is None and not cell.ctl.stepping.have_action
    assert cell.ctl.counters.sessions_closed == {ErrorCode.LEASE_REVOKED: 1}


@pytest.mark.parametrize("how", HOW)
def test_a_step_after_the_lease_ended_is_refused(cell: Cell, how: str) -> None:
    _observation(cell, 5)
    peer = cell.ctl.controller
    assert peer is not None
    peer.claims = peer.claims.model_copy(update={"exp": int(time.time()) - 1})
    code = _step(cell, cell.client.sock, how, 5, np.zeros(20))
    assert code == ErrorCode.LEASE_EXPIRED
    assert cell.ctl.controller is None and not cell.ctl.stepping.have_action


@pytest.mark.parametrize("how", HOW)
def test_a_step_without_a_session_is_refused(cell: Cell, how: str) -> None:
    _observation(cell, 5)
    stranger: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    stranger.linger = 0
    stranger.connect(cell.ctl.sockets.control_endpoint)
    try:
        assert _step(cell, stranger, how, 5, np.zeros(20)) == ErrorCode.NO_SESSION
    finally:
        stranger.close(0)
    assert not cell.ctl.stepping.have_action and cell.ctl.controller is not None


@pytest.mark.parametrize("cell", ["observe"], indirect=True)
@pytest.mark.parametrize("how", HOW)
def test_a_step_from_an_observer_is_refused(cell: Cell, how: str) -> None:
    assert _step(cell, cell.client.sock, how, 5, np.zeros(20)) == ErrorCode.NOT_CONTROLLER
    assert cell.ctl.counters.refused == 1


def _error(cell: Cell, frames: list[bytes]) -> Any:
    """Any request's frames, served by the robot: the error message it answered, or None."""
    ctl, sock = cell.ctl, cell.client.sock
    sock.send_multipart(frames)
    got = ctl.sockets.recv_wait(5000)
    assert got is not None
    ctl._dispatch(got)
    while sock.poll(200):
        msg = decode(sock.recv_multipart(), layouts=cell.client.layouts)
        if msg.type == "error":
            return msg
    return None


def _send_header(cell: Cell, header: dict[str, Any], block: bytes) -> tuple[str, str] | None:
    """A step with this header (decode()'s path): (code, message) of its error, or None."""
    msg = _error(cell, [msgpack.packb(header), block])
    return None if msg is None else (str(msg.get("code")), str(msg.get("message")))


@pytest.mark.parametrize("cycle", ["5", 5.0, True, None, [5]])
def test_a_step_whose_cycle_is_not_an_integer_is_refused(cell: Cell, cycle: Any) -> None:
    """`bad_request` ("a field has the wrong type"), with the request's id; not counted as a
    late action, and the action is not taken."""
    _observation(cell, 5)
    header = {"v": 2, "t": "step", "id": 41, "cycle": cycle, "b": "step"}
    if cycle is None:
        del header["cycle"]
    got = _send_header(cell, header, np.zeros(20).tobytes())
    assert got is not None and got[0] == ErrorCode.BAD_REQUEST, got
    assert "cycle must be an integer" in got[1]
    assert cell.ctl.counters.actions_late == 0 and not cell.ctl.stepping.have_action


def test_a_step_in_the_obs_layout_is_refused_naming_the_step_block(cell: Cell) -> None:
    """`obs` is announced in hello's layouts, but it is the robot's, not an action layout."""
    _observation(cell, 5)
    size = cell.client.layouts["obs"].size
    got = _send_header(cell, {"v": 2, "t": "step", "cycle": 5, "b": "obs"}, bytes(size))
    assert got is not None and got[0] == ErrorCode.BAD_REQUEST, got
    assert "'step' block, not in the 'obs' block" in got[1] and "not action layouts" in got[1]
    assert not cell.ctl.stepping.have_action


def _refusal(cell: Cell, frames: list[bytes]) -> tuple[str, Any] | None:
    """Any request's frames, served: (code, id) of the error it got, or None."""
    msg = _error(cell, frames)
    return None if msg is None else (str(msg.get("code")), msg.get("id"))


def test_a_float_version_is_refused(cell: Cell) -> None:
    """`v` is the integer 2: 2.0 (equal to 2 in Python) is another version."""
    got = _refusal(cell, [msgpack.packb({"v": 2.0, "t": "status", "id": 3})])
    assert got == (ErrorCode.UNSUPPORTED_VERSION, 3)
    assert _refusal(cell, [msgpack.packb({"v": 2, "t": "status", "id": 4})]) is None


def test_a_block_on_any_request_but_a_step_is_refused(cell: Cell) -> None:
    size = cell.client.layouts["step"].size
    got = _refusal(
        cell, [msgpack.packb({"v": 2, "t": "status", "id": 5, "b": "step"}), bytes(size)]
    )
    assert got == (ErrorCode.BAD_REQUEST, 5)
