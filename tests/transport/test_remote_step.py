"""Remote step on the realtime rig: an action in time is applied; a late one is not (the loop's
fallback is, counted and reported with the step's timing). Also over ipc."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from raas_client.errors import SafetyStopError
from raas_client.session import RemoteRobot
from raas_client.wire import Msg

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]

RATE = 20.0
WAIT_MS = 10.0


@pytest.fixture(scope="module")
def rt_daemon(
    tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer
) -> Iterator[RobotDaemon]:
    d = start_daemon(
        Path(tmp_path_factory.mktemp("rt")),
        issuer,
        clock="realtime",
        rate=RATE,
        extra=("--action-wait", str(WAIT_MS)),
    )
    yield d
    d.stop()


def test_late_action_takes_the_fallback_and_is_reported(
    rt_daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    robot = RemoteRobot(rt_daemon.control, server_key=rt_daemon.key, lease=issuer.issue())
    try:
        robot.open("control")
        assert robot.arm()["action_wait_ms"] == WAIT_MS
        idle = np.array(robot.info["spaces"]["action"]["idle"])
        obs = robot.observation()
        # In time: answered at once.
        robot.act(obs.cycle, idle)
        nxt = robot.observation(after=obs.cycle)
        rep = nxt.report
        assert rep is not None and rep.cycle == obs.cycle
        assert rep.applied and rep.fallback == 0
        assert rep.obs_sent_ns <= rep.action_ns <= rep.applied_ns
        assert rep.round_trip_us is not None and rep.round_trip_us < WAIT_MS * 1000
        # Late: answered after the action deadline (well inside the cycle, so only the
        # deadline is missed).
        before = robot.status()["actions_late"]
        time.sleep(3 * WAIT_MS / 1000)
        robot.act(nxt.cycle, idle + 0.01)
        after = robot.observation(after=nxt.cycle)
        rep = after.report
        assert rep is not None and rep.cycle == nxt.cycle
        assert not rep.applied and rep.fallback in (1, 2)  # repeat last / idle
        assert rep.action_ns == -1
        st = robot.status()
        assert st["actions_late"] == before + 1
        assert st["actions_missing"] >= 1
    finally:
        robot.close()


def test_remote_step_over_ipc(tmp_path: Path, issuer: LeaseIssuer) -> None:
    d = start_daemon(tmp_path / "ipc", issuer, transport="ipc", clock="lockstep")
    try:
        assert d.control.startswith("ipc://") and d.server_key is None  # ipc is local: plain
        robot = RemoteRobot(d.control, lease=issuer.issue())
        robot.open("control")
        robot.arm()
        obs = robot.observation()
        idle = np.array(robot.info["spaces"]["action"]["idle"])
        applied = 0
        for _ in range(20):
            robot.act(obs.cycle, idle)
            obs = robot.observation(after=obs.cycle)
            applied += bool(obs.report and obs.report.applied)
        assert applied == 20
        robot.close()
    finally:
        d.stop()


def test_an_action_read_after_the_deadline_is_late(tmp_path: Path, issuer: LeaseIssuer) -> None:
    """The deadline is judged on the time the action is read, not on when the wait began: a
    step queued behind work that takes the daemon past the deadline (here 12 upload chunks of
    1 MiB, hashed and written in the wait) is late, never applied as on time."""
    d = start_daemon(
        tmp_path / "busy",
        issuer,
        transport="ipc",  # fast delivery: the whole burst is queued while the first chunk is hashed
        clock="realtime",
        rate=RATE,
        extra=("--action-wait", str(WAIT_MS)),
    )
    try:
        robot = RemoteRobot(d.control, lease=issuer.issue(), timeout_s=10)
        robot.open("control")
        robot.arm()
        idle = np.array(robot.info["spaces"]["action"]["idle"])
        chunk = np.zeros(1 << 20, dtype=np.uint8)
        bursts, per_burst = 4, 12
        robot.request(
            Msg.UPLOAD_BEGIN,
            {"name": "ballast", "size": bursts * per_burst * chunk.size, "sha256": "0" * 64},
        )
        offset, reports = 0, []
        obs = robot.observation()
        for _ in range(bursts):
            for _ in range(per_burst):
                robot._send(Msg.UPLOAD_CHUNK, {"offset": offset}, {"data": chunk})
                offset += chunk.size
            try:
                robot.act(obs.cycle, idle)
                obs = robot.observation(after=obs.cycle)
                if obs.report is not None:  # (the newest observation wins: one may be skipped)
                    reports.append(obs.report)
                robot.act(obs.cycle, idle)  # an honest answer in between
                obs = robot.observation(after=obs.cycle)
            except SafetyStopError:  # a busy machine may hold the robot (stale_sensor): re-arm
                robot.arm()
                obs = robot.observation()
        assert reports
        wait_ns = WAIT_MS * 1e6
        for rep in reports:
            if rep.applied:
                assert rep.action_ns - rep.obs_sent_ns <= wait_ns, (
                    f"cycle {rep.cycle}: read {(rep.action_ns - rep.obs_sent_ns) / 1e6:.1f} ms "
                    f"after its observation, applied as on time"
                )
        robot.close()
    finally:
        d.stop()
