"""The claim: a free robot takes the next job it qualifies for, with a hold on its calendar and
a control lease until the hold's end; nothing when it is offline, in maintenance, e-stopped,
health-blocked or booked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from raas.leases import LeaseError, verify_lease
from raas.service.models import Job
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
        # the lease is one the robot's daemon accepts: signed by the service's key, for arm-1
        claims = verify_lease(
            got["lease"]["token"],
            env.state.signing_key.public_key(),
            robot="arm-1",
            now=env.clock.now.timestamp(),
            scope="control",
        )
        assert claims.sub == "alice@lab" and claims.exp == int(hold.timestamp())
        assert claims.rid == 0 and claims.jti == got["lease"]["jti"]
        with pytest.raises(LeaseError):
            verify_lease(
                got["lease"]["token"],
                env.state.signing_key.public_key(),
                robot="arm-2",
                now=env.clock.now.timestamp(),
            )
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


def test_no_claim_while_offline_in_maintenance_estopped_blocked_or_booked(
    database_url: str, tmp_path: Path
) -> None:
    env, client = jobs_env(database_url, tmp_path)
    rid = env.seeded.robots["arm-1"]
    staff = env.h("staff@lab")
    with client:
        submit(env, robot="arm-1")
        # offline: never reported in, then silent for longer than the heartbeat timeout
        assert claim(env).status_code == 204
        report_in(env)
        env.clock.advance(timedelta(seconds=60))  # > the 30 s heartbeat timeout
        assert claim(env).status_code == 204
        report_in(env)
        # in maintenance (status)
        assert client.patch(
            f"/robots/{rid}", json={"status": "maintenance"}, headers=staff
        ).is_success
        assert claim(env).status_code == 204
        assert client.patch(
            f"/robots/{rid}", json={"status": "available"}, headers=staff
        ).is_success
        # under a maintenance block running now
        r = client.post(
            "/maintenance",
            json={
                "robot_id": rid,
                "starts_at": env.at(timedelta(0)),
                "ends_at": env.at(timedelta(minutes=10)),
            },
            headers=staff,
        )
        assert r.status_code == 201, r.text
        assert claim(env).status_code == 204
        assert client.delete(f"/maintenance/{r.json()['id']}", headers=staff).status_code == 204
        # e-stopped (REST e-stop latched) and the daemon reporting fault
        assert (
            client.post(f"/robots/{rid}/estop", json={"note": "t"}, headers=staff).status_code
            == 202
        )
        assert claim(env).status_code == 204
        assert client.post(
            f"/robots/{rid}/clear-estop", json={"note": "t"}, headers=staff
        ).is_success
        report_in(env, safety={"state": "fault", "reason": "joint_limit"})
        assert claim(env).status_code == 204
        report_in(env, safety={"state": "idle"})
        # blocked after a failed health check
        report_in(env, health_ok=False, note="camera 2 dead")
        assert claim(env).status_code == 204
        assert client.post(
            f"/robots/{rid}/clear-health", json={"note": "ok"}, headers=staff
        ).is_success
        # booked now
        booking = env.book("bob@lab", timedelta(0), timedelta(minutes=30))
        assert booking.status_code == 201, booking.text
        assert claim(env).status_code == 204
        # a booking starting sooner than one episode (60 s) + margin (30 s): no claim either
        client.post(
            f"/reservations/{booking.json()['id']}/cancel", json={}, headers=env.h("bob@lab")
        )
        soon = env.book("bob@lab", timedelta(minutes=1), timedelta(minutes=30))
        assert soon.status_code == 201, soon.text
        assert claim(env).status_code == 204
        client.post(f"/reservations/{soon.json()['id']}/cancel", json={}, headers=env.h("bob@lab"))
        # a booking in 2 minutes: one episode fits, the hold ends at the booking's start
        later = env.book("bob@lab", timedelta(minutes=2), timedelta(minutes=30))
        assert later.status_code == 201, later.text
        r = claim(env)
        assert r.status_code == 200, r.text
        start = (env.clock.now + timedelta(minutes=2)).isoformat()
        assert r.json()["hold_until"].replace("Z", "+00:00") == start


def test_who_may_claim_and_which_jobs_qualify(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        report_in(env, "arm-1")
        for_2 = submit(env, robot="arm-2")
        # online but not registered in the directory (an older daemon): no claim
        rid2 = env.seeded.robots["arm-2"]
        plain = client.post(
            f"/robots/{rid2}/heartbeat", json={}, headers=robot_headers(env, "arm-2")
        )
        assert plain.status_code == 200
        assert claim(env, "arm-2").status_code == 204
        report_in(env, "arm-2")
        for_hand_2 = submit(env, hand_model=HANDS["arm-2"])
        # robots cannot claim for another robot; people cannot claim at all
        other = client.post(
            f"/robots/{env.seeded.robots['arm-2']}/jobs/claim", headers=robot_headers(env, "arm-1")
        )
        assert other.status_code == 403
        person = client.post(
            f"/robots/{env.seeded.robots['arm-1']}/jobs/claim", headers=env.h("staff@lab")
        )
        assert person.status_code == 403
        # neither job qualifies arm-1 (another robot's name, another hand)
        assert claim(env, "arm-1").status_code == 204
        first = claim(env, "arm-2").json()
        assert first["job"]["id"] == for_2["id"]
        # one job per robot at a time
        assert claim(env, "arm-2").status_code == 204
        r = client.post(
            attempt_url(for_2, 1) + "/finish",
            json={"outcome": "failed", "message": "bundle broken"},
            headers=robot_headers(env, "arm-2"),
        )
        assert r.json()["status"] == "failed" and r.json()["message"] == "bundle broken"
        assert claim(env, "arm-2").json()["job"]["id"] == for_hand_2["id"]


def test_deactivating_an_account_cancels_its_jobs(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    h1 = robot_headers(env, "arm-1")
    with client:
        report_in(env, "arm-1")
        running = submit(env, "bob@lab")
        got = claim(env, "arm-1").json()
        queued = submit(env, "bob@lab")
        bob = env.seeded.users["bob@lab"][0]
        r = client.patch(f"/users/{bob}", json={"active": False}, headers=env.h("admin@lab"))
        assert r.status_code == 200, r.text
        for job in (running, queued):
            read = client.get(f"/jobs/{job['id']}", headers=env.h("staff@lab")).json()
            assert read["status"] == "cancelled"
        feed = client.get(
            f"/robots/{env.seeded.robots['arm-1']}/revocations", params={"since": 0}, headers=h1
        ).json()["revocations"]
        assert [e["jti"] for e in feed] == [got["lease"]["jti"]]
        # a job of an inactive account is never claimed (nor its lease minted)
        with env.state.db.write() as db:
            db.get_one(Job, queued["id"]).status = "queued"
        assert claim(env, "arm-1").status_code == 204
