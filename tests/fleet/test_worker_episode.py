"""One episode of a job on a real simulated robot, with a lease minted here (the service's part
is tested in test_worker_jobs.py): the scene is reset from seed + index, the bundle runs one
episode, the result and the session's recording come back; a stop request ends it early with no
result."""

from __future__ import annotations

from pathlib import Path

import pytest
from raas_client.session import RemoteRobot

from raas.fleet.episode import EpisodeOutcome, EpisodeRun, _follow, run_episode
from raas.fleet.reset import Resetter
from tests.transport.harness import LeaseIssuer, RobotDaemon

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _job(daemon: RobotDaemon, issuer: LeaseIssuer, bundle: Path, tmp: Path) -> EpisodeRun:
    return EpisodeRun(
        endpoint=daemon.control,
        server_key=daemon.key,
        lease=issuer.issue(sub="job-runner"),
        bundle=bundle,
        seed=10,
        robot="shadow-1",
        job_id=1,
        episodes=2,
        resetter=Resetter(None, ask_staff=False, log=print),
        work_dir=tmp,
        timeout_s=300,
    )


def test_two_episodes_each_reset_run_and_recorded(
    daemon: RobotDaemon, issuer: LeaseIssuer, small_bundle: Path, tmp_path: Path
) -> None:
    job = _job(daemon, issuer, small_bundle, tmp_path)
    sessions = set()
    for index in (0, 1):
        out = run_episode(job, index, lambda: None)
        assert out.ended in ("done", "held"), out
        assert out.is_result and out.reset == "scene"
        body = out.result(None)
        assert body["index"] == index and body["end_reason"] in (
            "dropped",
            "timeout",
            "held",
            "max_successes",
        )
        assert set(out.timing) >= {"reset_s", "upload_s", "load_s", "run_s", "fetch_s", "total_s"}
        assert out.recording is not None and out.recording.read_bytes()[:5] == b"\x89MCAP"
        sessions.add(out.session)
    assert len(sessions) == 2  # a session, and a recording, per episode


def test_a_stop_request_ends_the_episode_without_a_result(
    daemon: RobotDaemon, issuer: LeaseIssuer, small_bundle: Path, tmp_path: Path
) -> None:
    job = _job(daemon, issuer, small_bundle, tmp_path)
    out = run_episode(job, 0, lambda: "the hold ends")
    assert out.ended == "stopped" and out.message == "the hold ends"
    assert not out.is_result and out.recording is None


def test_an_estop_while_the_bundle_loads_is_an_estop_not_a_refused_bundle(
    daemon: RobotDaemon, issuer: LeaseIssuer, small_bundle: Path
) -> None:
    """The daemon answers a run it cannot start because of a latched e-stop with `run_failed`,
    as it does a bundle that does not load: the worker must tell them apart (a refused bundle
    fails the job; an e-stop only interrupts it)."""
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue(sub="job"))
    try:
        robot.open("control")
        robot.upload(small_bundle)
        robot.run(1, 0)
        robot.estop()  # served during the load pause
        out = EpisodeOutcome(0, "lost")
        _follow(robot, out, 60.0, lambda: None)
        assert out.ended == "estop" and "e-stop" in out.message, out
        assert not out.is_result
    finally:
        robot.clear_estop()
        robot.close()
