"""Claim order: priority first; then fair share (the submitter with the least robot time used
by jobs in the last 7 days); then age."""

from __future__ import annotations

from pathlib import Path

from tests.service.jobs_harness import (
    advance,
    attempt_url,
    claim,
    jobs_env,
    report_in,
    robot_headers,
    submit,
)


def test_priority_then_fair_share_then_age(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    h1 = robot_headers(env, "arm-1")

    def run_next() -> int:
        """Claim on arm-1, hold it 10 minutes, finish; answers the job's id."""
        report_in(env, "arm-1")
        got = claim(env, "arm-1")
        assert got.status_code == 200, got.text
        job = got.json()["job"]
        for _ in range(40):  # 10 min of heartbeats every 15 s
            advance(env, 15)
            client.post(attempt_url(job, got.json()["attempt"]) + "/heartbeat", headers=h1)
        report_in(env, "arm-1")
        client.post(
            attempt_url(job, got.json()["attempt"]) + "/finish",
            json={"outcome": "failed"},
            headers=h1,
        )
        return int(job["id"])

    with client:
        a1 = submit(env, "alice@lab", episodes=20)["id"]
        a2 = submit(env, "alice@lab", episodes=20)["id"]
        b1 = submit(env, "bob@lab", episodes=20)["id"]
        urgent = submit(env, "staff@lab", episodes=20, priority=9)["id"]
        # priority first, then age among equals (nobody has used the robot yet)
        assert run_next() == urgent
        assert run_next() == a1
        # alice used 10 minutes, bob none: bob's younger job goes before alice's older one
        assert run_next() == b1
        assert run_next() == a2
        assert claim(env, "arm-1").status_code == 204
