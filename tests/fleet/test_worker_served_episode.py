"""One served episode of a job (a job that names a policy server) on a real simulated robot,
with a lease minted here: a server that stops answering mid-episode leaves the hand held by the
watchdog, and that is the episode's result (`held`, `client_late`), recorded as a bundle's
overrun would be; a robot that refuses the dial (`bad_dial`: a robot without CurveZMQ) ends it
`refused` with the daemon's message, and the session is closed (the robot is free at once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from raas_client.session import RemoteRobot

from raas.fleet.episode import EpisodeRun, run_episode
from raas.fleet.reset import Resetter
from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon
from tests.transport.test_policy_dial import BoundServer
from tests.transport.test_policy_serve import H

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _job(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp: Path, server: dict[str, object]
) -> EpisodeRun:
    return EpisodeRun(
        endpoint=daemon.control,
        server_key=daemon.key,
        lease=issuer.issue(sub="job-runner"),
        bundle=None,
        seed=10,
        robot="shadow-1",
        job_id=1,
        episodes=1,
        resetter=Resetter(None, ask_staff=False, log=print),
        work_dir=tmp,
        timeout_s=120,
        policy_server=server,
        first_chunk_s=30,
    )


def test_a_server_that_stops_answering_ends_the_episode_held(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    server = BoundServer(daemon.key, max_chunks=3)  # then it is gone
    job = _job(daemon, issuer, tmp_path, {"endpoint": server.endpoint, "server_key": server.key,
                                          "horizon": H})  # fmt: skip
    out = run_episode(job, 0, lambda: None)
    server.finish()
    assert out.ended == "held" and out.is_result, out
    body = out.result(None)
    assert body["end_reason"] == "held" and body["safety_stop"]
    assert body["safety_reason"] == "client_late"
    assert out.summary is not None and out.summary["chunks"] == 3
    assert out.recording is not None and out.recording.read_bytes()[:5] == b"\x89MCAP"


def test_a_refused_dial_ends_the_episode_refused_and_frees_the_robot(
    issuer: LeaseIssuer, tmp_path: Path
) -> None:
    plain = start_daemon(tmp_path / "robot", issuer, plain=True, rate=12.5)
    try:
        server = {"endpoint": "tcp://127.0.0.1:7000", "server_key": "x" * 40, "horizon": H}
        out = run_episode(_job(plain, issuer, tmp_path, server), 0, lambda: None)
        assert out.ended == "refused" and "bad_dial" in out.message, out
        assert "plain" in out.message and not out.is_result
        r = RemoteRobot(plain.control, server_key=plain.key, lease=issuer.issue(sub="next"))
        try:
            r.open("control")  # nobody holds the robot any more
        finally:
            r.close()
    finally:
        plain.stop()
