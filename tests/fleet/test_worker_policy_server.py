"""AutoEval end to end: a researcher keeps a policy server up (bound, admitting the robots'
keys, serving one episode after another), submits a job that names it, and `raasd worker` on
the robot runs each episode as `serve` with `dial` and `episode`: the daemon ends each episode
by itself, the worker posts its record and recording, the job succeeds. A job whose policy
server is down fails with a message that says so (the researcher's server, not the cell)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.fleet.service_harness import Service, linked_daemon, start_worker
from tests.transport.harness import ROOT, RobotDaemon
from tests.transport.test_policy_dial import BoundServer

pytestmark = [pytest.mark.system, pytest.mark.slow]

#: The cell's task: every judged cycle is a success, the third ends the episode (a few cycles
#: at 12.5 Hz once the first chunk came).
TASK = "[transport.task]\nsuccess_threshold_rad = 3.14159\nmax_successes = 3\n"


@pytest.fixture(scope="module")
def robot(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RobotDaemon]:
    d = linked_daemon(service, Path(tmp_path_factory.mktemp("cell")), TASK)
    yield d
    d.stop()


def _submit(service: Service, endpoint: str, key: str, episodes: int) -> dict[str, object]:
    body = {
        "policy_server": {"endpoint": endpoint, "server_key": key, "horizon": 8},
        "episodes": episodes,
        "robot": "shadow-1",
        "seed": 4,
    }
    r = service.call("POST", "/jobs", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, object] = r.json()
    return out


def _robot_keys(service: Service) -> dict[str, str]:
    """`raas robots` as a researcher runs it: robot name -> its key (serve-policy --robot-key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAAS_")}
    env.update(
        RAAS_SERVICE_URL=service.url,
        RAAS_TOKEN=service.seeded.token("alice@lab"),
        RAAS_CONFIG=os.devnull,
    )
    r = subprocess.run(
        [sys.executable, "-m", "raas_client.cli", "robots"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert "serve-policy --robot-key" in header
    return {row.split()[0]: row.split()[-1] for row in rows}


def test_a_job_naming_a_policy_server_runs_its_episodes_there(
    service: Service, robot: RobotDaemon, tmp_path: Path
) -> None:
    key = _robot_keys(service)["shadow-1"]  # from the directory: what the daemon registered
    assert key == robot.key
    other = zmq.curve_keypair()[0].decode("ascii")  # another robot's key: both may dial
    server = BoundServer([other, key], keep_serving=True)
    job = _submit(service, server.endpoint, server.key, episodes=2)
    assert job["bundle_sha256"] is None
    assert job["policy_server"] == {
        "endpoint": server.endpoint,
        "server_key": server.key,
        "horizon": 8,
        "blend": "newest",
    }
    worker = start_worker(service, tmp_path / "w", "--once", "--idle-exit", "120")
    try:
        assert worker.wait(300) == 0, worker.output()
    finally:
        worker.stop()
    stats = server.finish()
    out = worker.output()
    jid = job["id"]
    assert f"policy server {server.endpoint}" in out
    assert f"job {jid} succeeded" in out, out
    got = service.job(int(str(jid)))
    assert got["status"] == "succeeded" and got["episodes_done"] == 2, (got, out)
    results = sorted(got["results"], key=lambda r: r["index"])
    assert [r["index"] for r in results] == [0, 1]
    for r in results:
        # the daemon's record, posted unchanged: the task ended each episode
        assert r["end_reason"] == "max_successes" and r["successes"] == 3, r
        assert r["cycles"] == 3 and not r["safety_stop"]
        assert len(r["detail"]["seconds_per_goal"]) == 3
        assert set(r["detail"]["timing"]) >= {"reset_s", "run_s", "total_s"}
        rec = service.call("GET", f"/jobs/{jid}/episodes/{r['index']}/recording")
        assert rec.status_code == 200 and rec.content[:5] == b"\x89MCAP"
        assert hashlib.sha256(rec.content).hexdigest() == r["recording_sha256"]
    # the one bound server served both episodes, each a serving session of its own
    assert stats.sessions == 2 and stats.chunks >= 2 and stats.refused_peers == 0, stats
    assert robot.alive()


def test_a_job_whose_policy_server_is_down_fails_and_says_so(
    service: Service, robot: RobotDaemon, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = zmq.curve_keypair()[0].decode("ascii")
    job = _submit(service, f"tcp://127.0.0.1:{port}", key, episodes=2)
    worker = start_worker(
        service, tmp_path / "w", "--once", "--idle-exit", "120", "--first-chunk-timeout", "3"
    )
    try:
        assert worker.wait(120) == 0, worker.output()
    finally:
        worker.stop()
    got = service.job(int(str(job["id"])))
    assert got["status"] == "failed", (got, worker.output())
    assert "sent no chunk within 3 s" in got["message"]
    assert got["results"] == []  # nothing scored: no episode ran
    assert got["attempt"] == 1  # not requeued: the cell is fine
    # the robot is free again: the hand held, the session closed
    assert robot.alive()
