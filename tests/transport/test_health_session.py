"""The post-session health check is nobody's to take over (docs/safety.md section 5,
docs/protocol.md Modes): after a controlling session ends, the check runs once the hand is
still, even when a new control session opened in between; while it is due or running `arm`,
`run`, `serve` and `reset` with `scene` answer `busy`, `stop` and `disarm` leave it alone, and
a session that opens and closes during it neither abandons it nor starts it again.

A real lockstep `raasd robot --sim` with its health check on; a raw-ish client (raas_client's
RemoteRobot) for each role."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon


@pytest.fixture
def robot(tmp_path: Path, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    d = start_daemon(tmp_path / "robot", issuer, health_check=True)
    yield d
    d.stop()


def _client(robot: RobotDaemon, issuer: LeaseIssuer, role: str = "control") -> RemoteRobot:
    c = RemoteRobot(
        robot.control, server_key=robot.key, lease=issuer.issue(scope=role), timeout_s=10
    )
    c.open(role)
    return c


def _code(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except RemoteError as exc:
        return exc.code
    return None


def _until(watch: RemoteRobot, ok: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict:
    """Poll `status` (which keeps `watch`'s session alive) until ok(status)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = watch.status()
        if ok(st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status mode {st['mode']} health {st['health']}")


def _step_a_little(c: RemoteRobot) -> None:
    c.arm()
    idle = c.info["spaces"]["action"]["idle"]
    for _ in range(5):
        obs = c.observation()
        c.act(obs.cycle, idle)


def _drive_a_session(robot: RobotDaemon, issuer: LeaseIssuer) -> None:
    """A controlling session that moved the hand and closed: the check is then due."""
    first = _client(robot, issuer)
    _step_a_little(first)
    first.close()


def test_a_session_opened_during_the_check_can_neither_move_the_hand_nor_end_the_check(
    robot: RobotDaemon, issuer: LeaseIssuer
) -> None:
    watch = _client(robot, issuer, "observe")
    try:
        _drive_a_session(robot, issuer)
        _until(watch, lambda st: st["mode"] == "health", 30)
        second = _client(robot, issuer)  # opening is allowed, and changes nothing
        try:
            assert second.status()["mode"] == "health"
            assert _code(second.arm) == "busy"
            assert _code(lambda: second.request("serve", {"horizon": 4})) == "busy"
            assert _code(lambda: second.request("run", {"episodes": 1})) == "busy"
            assert _code(lambda: second.reset_scene(0)) == "busy"
            assert second.stop()["mode"] == "health"  # nothing of this session's to stop
            assert second.disarm()["mode"] == "health"
            second.reset_episode()  # moves nothing: served
            st = second.status()
            assert (st["mode"], st["safety"]["state"]) == ("health", "running"), st["safety"]
        finally:
            second.close()
        st = _until(watch, lambda s: s["health"] is not None, 60)
        assert st["health"]["ok"], st["health"]
        # not abandoned at the close and started again from the beginning: armed twice in
        # all (the first session's arm, the check's), one check done
        counts = st["safety"]["transitions"]
        assert (counts.get("armed"), counts.get("health_check_done")) == (2, 1), counts
        assert st["mode"] == "hold"
        third = _client(robot, issuer)  # after the check: arming works again
        try:
            _until(third, lambda s: s["safety"]["state"] == "idle", 10)
            assert third.arm()["mode"] == "step"
        finally:
            third.close()
    finally:
        watch.close()


def test_a_session_opened_before_the_check_starts_does_not_postpone_it(
    robot: RobotDaemon, issuer: LeaseIssuer
) -> None:
    _drive_a_session(robot, issuer)
    second = _client(robot, issuer)  # at once: the check is due, not yet running
    try:
        code = _code(second.arm)
        assert code == "busy", code
        st = _until(second, lambda s: s["health"] is not None, 60)
        assert st["health"]["ok"], st["health"]
        assert second.arm()["mode"] == "step"
    finally:
        second.close()


def test_an_estop_during_the_check_ends_it_reported_failed(
    robot: RobotDaemon, issuer: LeaseIssuer
) -> None:
    watch = _client(robot, issuer, "observe")
    try:
        _drive_a_session(robot, issuer)
        _until(watch, lambda st: st["mode"] == "health", 30)
        watch.estop()
        st = _until(watch, lambda s: s["health"] is not None, 10)
        assert st["mode"] == "estop" and not st["health"]["ok"]
        completed = [c for c in st["health"]["checks"] if c["name"] == "completed"]
        assert completed and "e-stop" in completed[0]["detail"], st["health"]
    finally:
        watch.close()
