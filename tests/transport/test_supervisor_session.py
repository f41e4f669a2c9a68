"""The supervisor behind a remote session (real lockstep robot, real sockets): an e-stop reaches
the hand in the cycle it is received, and a re-arm after a hold starts from the measured pose."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from raas_client.session import RemoteRobot, Stream
from raas_drivers.hand.config import ACTUATOR_JOINT_INDEX, ACTUATOR_LIMITS

from raas.safety import SafetyConfig, SafetyState
from tests.transport.harness import LeaseIssuer, RobotDaemon

pytestmark = pytest.mark.system

IDX = np.array(ACTUATOR_JOINT_INDEX)
CFG = SafetyConfig()
LO = ACTUATOR_LIMITS[:, 0] + CFG.conditioning.soft_margin_rad
HI = ACTUATOR_LIMITS[:, 1] - CFG.conditioning.soft_margin_rad
QUANTUM = 1e-4  # the serial link's position resolution


def _collect(stream: Stream, until: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    """Steps by cycle and events, until `until(steps, events)` holds."""
    steps: dict[int, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
    events: list[dict[str, Any]] = []

    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not until(steps, events):
        got = stream.recv(0.5)
        if got is None:
            continue
        topic, header, arrays = got
        if topic.startswith("step"):
            steps[int(header["cycle"])] = (header, arrays)
        elif topic.startswith("event"):
            events.append(header)
    return {"steps": steps, "events": events}


def _step(robot: RemoteRobot, n: int, action: np.ndarray) -> int:
    cycle = -1
    for _ in range(n):
        obs = robot.observation(after=cycle)
        cycle = obs.cycle
        robot.act(cycle, action)
    return cycle


def _open_armed(ctl: RemoteRobot) -> None:
    """Open a control session and arm (clearing an e-stop an earlier test left latched)."""
    ctl.open("control")
    if ctl.status()["mode"] == "estop":
        ctl.clear_estop()
    ctl.arm()


def test_estop_reaches_the_hand_in_the_cycle_it_arrives(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    ctl = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    staff = RemoteRobot(
        daemon.control, server_key=daemon.key, lease=issuer.issue(scope="observe", sub="staff")
    )
    stream = ctl.stream()
    try:
        _open_armed(ctl)
        _step(ctl, 5, np.array(ctl.info["spaces"]["action"]["idle"]))
        staff.open("observe")
        assert staff.estop()["mode"] == "estop"

        def fault_seen(steps: dict[int, Any], events: list[dict[str, Any]]) -> bool:
            faults = [e for e in events if e.get("kind") == "safety" and e["to"] == "fault"]
            return bool(faults) and faults[0]["cycle"] in steps

        got = _collect(stream, fault_seen)
        fault = next(e for e in got["events"] if e.get("kind") == "safety" and e["to"] == "fault")
        assert fault["reason"] == "estop" and "staff" in fault["detail"]
        c = fault["cycle"]
        header, arrays = got["steps"][c]
        assert header["safety"] == SafetyState.FAULT  # the very cycle it was received in
        measured = np.clip(arrays["hand_pos"][IDX], LO, HI)
        np.testing.assert_allclose(arrays["applied"], measured, atol=QUANTUM)
        st = ctl.status()["safety"]
        assert (st["state"], st["reason"]) == ("fault", "estop")
    finally:
        stream.close()
        ctl.close()
        staff.close()


def test_rearm_after_hold_starts_from_the_measured_pose(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    ctl = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    stream = ctl.stream()
    try:
        _open_armed(ctl)
        # the stream is admitted once the session is open (within about a second): wait for it,
        # or the cycle below can pass before this subscriber receives anything
        deadline = time.monotonic() + 30.0
        while (got := stream.recv(0.2)) is None or not got[0].startswith("step"):
            assert time.monotonic() < deadline, "the stream never arrived"
            ctl.heartbeat()  # the session's liveness
        _step(ctl, 6, HI)  # far away: the rate limit walks the targets there
        ctl.disarm()
        assert ctl.status()["safety"]["state"] == "hold"
        ctl.arm()  # re-arm
        obs = ctl.observation()
        ctl.act(obs.cycle, LO)  # the other end of the range
        first = obs.cycle
        ctl.observation(after=first)  # the cycle was applied

        got = _collect(stream, lambda steps, events: first in steps)
        header, arrays = got["steps"][first]
        assert header["safety"] == SafetyState.RUNNING
        measured = np.clip(arrays["hand_pos"][IDX], LO, HI)
        step = min(CFG.conditioning.max_step_rad, CFG.conditioning.max_velocity_rad_s / 12.5)
        moved = np.abs(arrays["applied"] - measured)
        # From where the hand was measured, not from the held or the earlier far target.
        assert moved.max() <= step + 2 * QUANTUM, moved
        assert (np.abs(arrays["desired"] - LO) < 1e-12).all()  # the desired action is kept too
    finally:
        stream.close()
        ctl.close()
