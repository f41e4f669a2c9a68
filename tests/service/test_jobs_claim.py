"""The claim: a free robot takes the next job it qualifies for, with a hold on its calendar and
a control lease until the hold's end; nothing when it is offline, in maintenance, e-stopped,
health-blocked or booked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt

from tests.service.jobs_harness import (
    HANDS,
    attempt_url,
    claim,
    episode,
    jobs_env,
    report_in,
    robot_headers,
    submit,
)


def test_a_claim_holds_the_robot_and_mints_a_lease(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        report_in(env, "arm-1")
        job = submit(env, episodes=3)
        assert job["status"] == "queued" and job["attempt"] == 0
        r = claim(env, "arm-1")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["job"]["id"] == job["id"] and got["job"]["status"] == "running"
        assert got["job"]["claimed_by"] == "arm-1" and got["attempt"] == 1
        assert got["endpoint"].startswith("tcp://127.0.0.1:")
        # hold = 3 episodes x 60 s + 30 s margin (the defaults)
        hold = env.clock.now + timedelta(seconds=3 * 60 + 30)
        assert got["hold_until"].replace("Z", "+00:00") == hold.isoformat()
        claims = jwt.decode(got["lease"]["token"], options={"verify_signature": False})
        assert claims["robot"] == "arm-1" and claims["scope"] == "control"
        assert claims["sub"] == "alice@lab" and claims["exp"] == int(hold.timestamp())
        # the hold is on the calendar
        busy = client.get(
            f"/robots/{env.seeded.robots['arm-1']}/availability",
            params={"starts_at": env.at(timedelta(0)), "ends_at": env.at(timedelta(hours=1))},
            headers=env.h("bob@lab"),
        ).json()["busy"]
        assert [b["kind"] for b in busy] == ["job"]
        # nothing else to claim
        assert claim(env, "arm-1").status_code == 204
        # the worker runs it through
        for i in range(3):
            r = client.post(
                attempt_url(job, 1) + "/episodes",
                json=episode(i),
                headers=robot_headers(env, "arm-1"),
            )
            assert r.status_code == 200, r.text
        r = client.post(
            attempt_url(job, 1) + "/finish",
            json={"outcome": "succeeded"},
            headers=robot_headers(env, "arm-1"),
        )
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["status"] == "succeeded" and done["episodes_done"] == 3
        kinds = [
            e["kind"]
            for e in client.get(f"/jobs/{job['id']}/logs", headers=env.h("alice@lab")).json()
        ]
        assert kinds == ["submitted", "claimed", "episode", "episode", "episode", "finished"]
        assert HANDS
