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


def test_a_remote_run_names_the_bundle_by_its_own_hash(tmp_path: Path, issuer: LeaseIssuer) -> None:
    """`run_started` and the recording carry the bundle's hash (over its files, the one
    `raasd replay` compares and a researcher cites), the upload's hash beside it."""
    from raas_client.report import format as fmt
    from raas_client.report.reader import RecordingFile

    from raas.policy.bundle import bundle_hash
    from raas.policy.examples import ensure_examples

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    state = tmp_path / "state"
    robot = start_daemon(state, issuer, rate=12.5, extra=("--record",))  # the bundle's rate
    c = RemoteRobot(robot.control, server_key=robot.key, lease=issuer.issue(), timeout_s=10)
    try:
        session = str(c.open("control")["session"])
        upload_sha = c.upload(bundle)
        c.run(episodes=1)
        events: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            c.heartbeat()
            events += c.events(0.2)
            if {"run_started", "run_failed"} & {e["kind"] for e in events}:
                break
        c.stop()
    finally:
        c.close()
        robot.stop()
    [started] = [e for e in events if e["kind"] == "run_started"] or [events]
    assert started["sha256"] == bundle_hash(bundle) != upload_sha
    assert started["upload_sha256"] == upload_sha
    path = state / "recordings" / f"{session}.mcap"
    deadline = time.monotonic() + 20  # the recorder closes the file after the session
    while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    rf = RecordingFile(path)
    rf.scan_metadata()
    assert rf.metadata[fmt.META_SESSION]["bundle_sha256"] == bundle_hash(bundle)


def test_a_two_episode_remote_run_replays_identical(tmp_path: Path, issuer: LeaseIssuer) -> None:
    """Between episodes the task, not the policy, holds the idle action; replay leaves those
    cycles out (it compared them with the policy's action and called the run DIFFERENT)."""
    from raas.policy.examples import ensure_examples
    from raas.recording.replay import replay_file

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    state = tmp_path / "state"
    robot = start_daemon(state, issuer, rate=12.5, extra=("--record",))
    c = RemoteRobot(robot.control, server_key=robot.key, lease=issuer.issue(), timeout_s=10)
    try:
        session = str(c.open("control")["session"])
        c.upload(bundle)
        c.run(episodes=2)
        kinds: list[object] = []
        deadline = time.monotonic() + 300
        while "run_done" not in kinds and "run_failed" not in kinds:
            assert time.monotonic() < deadline, kinds
            c.heartbeat()
            kinds += [e["kind"] for e in c.events(0.2)]
        assert kinds.count("episode_end") == 2, kinds
    finally:
        c.close()
        robot.stop()
    path = state / "recordings" / f"{session}.mcap"
    deadline = time.monotonic() + 20
    while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    report = replay_file(path, bundle)
    assert report.identical, report.format()
    assert report.skipped_task >= 2  # the cycle each episode ended in
    assert report.recorded_bundle == report.replayed_bundle
