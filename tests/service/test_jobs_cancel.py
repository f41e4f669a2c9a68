"""Cancelling a running job revokes its lease at once (the robot's daemon stops the run and
holds the hand), the worker's next heartbeat answers `cancel: true`, and its later results are
refused; the hold ends on the calendar."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.service.jobs_harness import (
    attempt_url,
    beat,
    claim,
    episode,
    jobs_env,
    report_in,
    robot_headers,
    submit,
)


def test_cancel_a_running_job_revokes_its_lease(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    h1 = robot_headers(env, "arm-1")
    rid = env.seeded.robots["arm-1"]
    with client:
        report_in(env, "arm-1")
        job = submit(env, "alice@lab", episodes=5)
        got = claim(env, "arm-1").json()
        feed = f"/robots/{rid}/revocations"
        assert client.get(feed, params={"since": 0}, headers=h1).json()["revocations"] == []
        r = client.post(f"/jobs/{job['id']}/cancel", headers=env.h("alice@lab"))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert r.json()["claimed_by"] is None
        entries = client.get(feed, params={"since": 0}, headers=h1).json()["revocations"]
        assert [e["jti"] for e in entries] == [got["lease"]["jti"]]
        assert "cancelled" in entries[0]["reason"]
        # the worker learns it from its heartbeat; its results are refused
        assert beat(env, job, 1).json()["cancel"] is True
        r = client.post(attempt_url(job, 1) + "/episodes", json=episode(0), headers=h1)
        assert r.status_code == 409 and r.json()["error"] == "stale_attempt"
        # finish after a cancel answers the cancelled job (nothing to do)
        r = client.post(
            attempt_url(job, 1) + "/finish", json={"outcome": "interrupted"}, headers=h1
        )
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        # the hold ended: the calendar is free from now on, and the robot may claim again
        busy = client.get(
            f"/robots/{rid}/availability",
            params={
                "starts_at": env.at(timedelta(minutes=1)),
                "ends_at": env.at(timedelta(hours=1)),
            },
            headers=env.h("bob@lab"),
        ).json()["busy"]
        assert busy == []
        submit(env, "bob@lab")
        assert claim(env, "arm-1").status_code == 200
