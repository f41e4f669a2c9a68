"""Evaluation jobs end to end, the robot side: the real service (its jobs API), a real simulated
robot daemon linked to it, and `raasd worker` processes. A submitted job is claimed, its
episodes run on the robot one at a time (scene reset between them), each episode's result and
recording land in the service, the job succeeds. A worker SIGKILLed mid-job: after the claim
timeout the job is requeued and a second worker finishes it, the first one's finished episodes
kept."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from tests.fleet.service_harness import Service, start_worker, wait_until
from tests.transport.harness import RobotDaemon

pytestmark = [pytest.mark.system, pytest.mark.slow]


def test_a_job_runs_on_the_robot_and_its_results_land_in_the_service(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    sha = service.upload(small_bundle.read_bytes())
    job = service.submit(sha, episodes=2, seed=5)
    worker = start_worker(service, tmp_path / "w", "--once", "--idle-exit", "120")
    try:
        assert worker.wait(300) == 0, worker.output()
    finally:
        worker.stop()
    out = worker.output()
    jid = job["id"]
    assert f"job {jid} claimed (attempt 1): 2 of 2 episode(s) to run" in out
    assert f"job {jid} episode 1/2: " in out and f"job {jid} episode 2/2: " in out
    assert "(reset scene " in out
    assert f"job {jid} succeeded" in out
    got = service.job(jid)
    assert got["status"] == "succeeded" and got["episodes_done"] == 2, (got, out)
    results = sorted(got["results"], key=lambda r: r["index"])
    assert [r["index"] for r in results] == [0, 1]
    for r in results:
        assert r["robot"] == "shadow-1" and r["attempt"] == 1
        assert r["end_reason"] in ("dropped", "timeout", "max_successes", "held")
        assert set(r["detail"]["timing"]) >= {"reset_s", "upload_s", "run_s", "total_s"}
        rec = service.call("GET", f"/jobs/{jid}/episodes/{r['index']}/recording")
        assert rec.status_code == 200 and rec.content[:5] == b"\x89MCAP"
        assert hashlib.sha256(rec.content).hexdigest() == r["recording_sha256"]
    # the bundle came from the service once, checked by its hash, and is cached by it
    assert (tmp_path / "w" / "bundles" / f"{sha}.bundle").read_bytes() == small_bundle.read_bytes()


def test_a_killed_worker_s_job_is_finished_by_another_with_its_episodes_kept(
    service: Service, linked_robot: RobotDaemon, small_bundle: Path, tmp_path: Path
) -> None:
    sha = service.upload(small_bundle.read_bytes())
    job = service.submit(sha, episodes=3, seed=1)
    jid = job["id"]
    first = start_worker(service, tmp_path / "w1")
    try:
        wait_until(lambda: service.job(jid)["episodes_done"] >= 1, 180, "a first episode")
        first.proc.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.stop()
    before = service.job(jid)
    kept = {r["index"]: r for r in before["results"]}
    assert before["status"] == "running" and before["attempt"] == 1 and kept
    # after the claim timeout the service requeues the job; a second worker takes it over
    second = start_worker(service, tmp_path / "w2", "--once", "--idle-exit", "120")
    try:
        assert second.wait(300) == 0, second.output()
    finally:
        second.stop()
    got = service.job(jid)
    assert got["status"] == "succeeded" and got["attempt"] >= 2, (got, second.output())
    results = {r["index"]: r for r in got["results"]}
    assert sorted(results) == [0, 1, 2]  # each episode once
    for index, r in kept.items():  # the first worker's episodes were kept, not run again
        assert results[index]["attempt"] == 1
        assert results[index]["recording_sha256"] == r["recording_sha256"]
    assert any(r["attempt"] >= 2 for r in results.values())
    out = second.output()
    assert f"job {jid} claimed (attempt {got['attempt']}): {3 - len(kept)} of 3" in out
    logs = service.call("GET", f"/jobs/{jid}/logs").json()
    assert "requeued" in [e["kind"] for e in logs]
    assert linked_robot.alive()
