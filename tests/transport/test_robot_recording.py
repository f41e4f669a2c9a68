"""`raasd robot --record` records every controlling session to STATE_DIR/recordings/<session>.mcap
(docs/recording.md, docs/protocol.md Recordings), where `fetch` finds it; without it (the
default) nothing is recorded and the banner says how to turn it on."""

from __future__ import annotations

import time
from pathlib import Path

from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon


def _one_session(robot: RobotDaemon, issuer: LeaseIssuer) -> str:
    c = RemoteRobot(robot.control, server_key=robot.key, lease=issuer.issue(), timeout_s=10)
    try:
        session = str(c.open("control")["session"])
        c.arm()
        idle = c.info["spaces"]["action"]["idle"]
        for _ in range(5):
            obs = c.observation()
            c.act(obs.cycle, idle)
        status = c.status()
        assert status["recording"] == (session if "--record" in robot.proc.args else None)
    finally:
        c.close()
    return session


def test_record_writes_each_session_under_the_state_dir(
    tmp_path: Path, issuer: LeaseIssuer
) -> None:
    state = tmp_path / "state"
    robot = start_daemon(state, issuer, extra=("--record",))
    try:
        session = _one_session(robot, issuer)
        path = state / "recordings" / f"{session}.mcap"
        deadline = time.monotonic() + 20
        while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.exists(), sorted(p.name for p in state.rglob("*"))
        assert f"recording every controlling session to {state / 'recordings'}" in robot.output()
    finally:
        robot.stop()


def test_without_record_nothing_is_recorded_and_the_banner_says_so(
    tmp_path: Path, issuer: LeaseIssuer
) -> None:
    state = tmp_path / "state"
    robot = start_daemon(state, issuer)
    try:
        _one_session(robot, issuer)
        assert "not recording (raasd robot --record" in robot.output()
    finally:
        robot.stop()
    assert not list(state.rglob("*.mcap"))
