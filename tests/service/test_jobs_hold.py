"""Jobs and bookings share one calendar. A booking made while a job holds the robot shrinks the
hold (the next heartbeat answers the new `hold_until`); when the hold runs out the attempt is
stopped (its lease revoked) and the job requeued with its finished episodes kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.service.jobs_harness import (
    advance,
    attempt_url,
    beat,
    claim,
    episode,
    jobs_env,
    report_in,
    robot_headers,
    submit,
)


def _iso(value: str) -> str:
    return value.replace("Z", "+00:00")


def test_a_booking_during_a_job_shrinks_its_hold(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    h1 = robot_headers(env, "arm-1")
    with client:
        report_in(env, "arm-1")
        job = submit(env, episodes=10)
        got = claim(env, "arm-1").json()
        full = env.clock.now + timedelta(seconds=10 * 60 + 30)
        assert _iso(got["hold_until"]) == full.isoformat()
        r = beat(env, job, 1)
        assert r.json() == {"hold_until": got["hold_until"], "cancel": False}
        # staff book the robot in 5 minutes (bookings take precedence over job holds)
        booking = env.book("staff@lab", timedelta(minutes=5), timedelta(minutes=35))
        assert booking.status_code == 201, booking.text
        start = env.clock.now + timedelta(minutes=5)
        r = beat(env, job, 1)
        assert r.status_code == 200
        assert _iso(r.json()["hold_until"]) == start.isoformat() and r.json()["cancel"] is False
        # the calendar shows the hold ending where the booking starts
        busy = client.get(
            f"/robots/{env.seeded.robots['arm-1']}/availability",
            params={"starts_at": env.at(timedelta(0)), "ends_at": env.at(timedelta(hours=1))},
            headers=env.h("bob@lab"),
        ).json()["busy"]
        assert [(b["kind"], _iso(b["ends_at"])) for b in busy] == [
            ("job", start.isoformat()),
            ("reservation", (start + timedelta(minutes=30)).isoformat()),
        ]
        client.post(attempt_url(job, 1) + "/episodes", json=episode(0), headers=h1)
        # the worker keeps beating but does not stop: at the booking's start it is stopped
        for _ in range(30):
            advance(env, 15)
            report_in(env, "arm-1")
            if beat(env, job, 1).status_code != 200:
                break
        assert client.post(attempt_url(job, 1) + "/heartbeat", headers=h1).status_code == 409
        got = client.get(f"/jobs/{job['id']}", headers=env.h("alice@lab")).json()
        assert got["status"] == "queued" and got["episodes_done"] == 1
        assert "hold ended" in got["message"]
        feed = client.get(
            f"/robots/{env.seeded.robots['arm-1']}/revocations", params={"since": 0}, headers=h1
        ).json()["revocations"]
        assert [e["job_id"] for e in feed] == [job["id"]]
        # the robot is booked now: no claim until the booking is over
        assert claim(env, "arm-1").status_code == 204
        advance(env, 30 * 60)
        report_in(env, "arm-1")
        again = claim(env, "arm-1").json()
        assert again["attempt"] == 2 and again["job"]["episodes_done"] == 1
        # hold for the 9 episodes left
        left = env.clock.now + timedelta(seconds=9 * 60 + 30)
        assert _iso(again["hold_until"]) == left.isoformat()
